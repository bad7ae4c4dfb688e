/* test_firestore.c — what is specific to the Firestore backend, against the
 * real Cloud Firestore emulator started by scripts/firestore-ctl: layout,
 * invalid-id keys, client-time tolerance, renewals under polling, a
 * transactional SyncGuard-TS-style acquirer (plain REST calls), credentials
 * rules, outage and recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "firestore.h"
#include "helpers.h"
#include "syncguard.h"

static const char *url, *emu;
static sg_backend *B;
static char docs[256]; /* projects/P/databases/(default)/documents */


static size_t collect(char *d, size_t s, size_t n, void *ud)
{
    char **buf = ud;
    size_t old = *buf ? strlen(*buf) : 0;
    *buf = realloc(*buf, old + s * n + 1);
    memcpy(*buf + old, d, s * n);
    (*buf)[old + s * n] = '\0';
    return s * n;
}

/* POST a REST call to the emulator; returns the parsed reply and the HTTP code. */
static cJSON *post(const char *suffix, const char *body, long *code)
{
    char u[512];
    snprintf(u, sizeof u, "http://%s/v1/%s%s", emu, docs, suffix);
    CURL *c = curl_easy_init();
    char *out = NULL;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Authorization: Bearer owner");
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    cJSON *j = cJSON_Parse(out ? out : "");
    free(out);
    return j;
}

/* The stored document (found) for collection/id, or NULL. Caller deletes root. */
static const cJSON *get_doc(const char *coll, const char *id, cJSON **root)
{
    char body[4096];
    snprintf(body, sizeof body, "{\"documents\":[\"%s/%s/%s\"]}", docs, coll, id);
    long code;
    *root = post(":batchGet", body, &code);
    assert_int_equal(code, 200);
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(*root, 0), "found");
}

static int group_setup(void **state)
{
    (void)state;
    emu = getenv("FIRESTORE_EMULATOR_HOST");
    if (!emu || open_from_env("test_firestore", "SG_TEST_FS_URL", "SG_FS_CTL", &url, &B) != 0)
        return -1;
    snprintf(docs, sizeof docs, "projects/%s/databases/(default)/documents",
             url + strlen("firestore://"));
    /* a cold emulator (JVM warm-up) may take seconds over its first requests */
    sg_lock_info info;
    for (int i = 0; i < 60 && sg_lookup_key(B, "warm-up", &info, NULL) == SG_ERROR; i++)
        ;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sg_backend_close(B);
    return 0;
}

static void layout_matches_syncguard(void **state)
{
    (void)state;
    sg_lock a;
    assert_int_equal(sg_acquire(B, "fs-layout:1", 10000, &a, NULL), SG_OK);
    cJSON *root;
    const cJSON *d = get_doc("locks", "fs-layout:1", &root);
    assert_non_null(d);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(d, "fields");
    assert_string_equal(fst_get_str(f, "lockId"), a.lock_id);
    assert_string_equal(fst_get_str(f, "key"), "fs-layout:1");
    assert_string_equal(fst_get_str(f, "fence"), a.fence);
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(f, "expiresAtMs");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(exp, "integerValue"));
    int64_t v;
    assert_true(fst_get_int(f, "acquiredAtMs", &v));
    assert_int_equal(v, a.acquired_at_ms);
    cJSON_Delete(root);
    d = get_doc("fence_counters", "fence:fs-layout:1", &root);
    assert_non_null(d);
    f = cJSON_GetObjectItemCaseSensitive(d, "fields");
    assert_string_equal(fst_get_str(f, "fence"), a.fence); /* a string, never a transform */
    assert_string_equal(fst_get_str(f, "keyDebug"), "fs-layout:1");
    cJSON_Delete(root);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    d = get_doc("locks", "fs-layout:1", &root);
    assert_null(d);
    cJSON_Delete(root);
}

static void keys_that_are_not_document_ids(void **state)
{
    (void)state;
    const char *keys[] = {"a/b/c", ".", "..", "__reserved__", "x/"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        sg_lock a;
        sg_error err;
        assert_int_equal(sg_acquire(B, keys[i], 10000, &a, &err), SG_OK);
        assert_int_equal(sg_acquire(B, keys[i], 10000, NULL, &err), SG_CONTENDED);
        sg_lock_info info;
        assert_int_equal(sg_lookup_key_raw(B, keys[i], &info, &err), SG_OK);
        assert_string_equal(info.key, keys[i]);
        char id[FST_ID_MAX + 1];
        assert_int_equal(fst_doc_id(keys[i], id, sizeof id, NULL), SG_OK);
        assert_true(!strncmp(id, "sg~", 3) && strlen(id) >= 513);
        cJSON *root;
        assert_non_null(get_doc("locks", id, &root));
        cJSON_Delete(root);
        assert_int_equal(sg_release(B, a.lock_id, &err), SG_OK);
    }
}

static void client_time_expiry_with_tolerance(void **state)
{
    (void)state;
    sg_lock a;
    bool locked = false;
    assert_int_equal(sg_acquire(B, "fs-tol", 100, &a, NULL), SG_OK);
    msleep(400);
    assert_int_equal(sg_is_locked(B, "fs-tol", &locked, NULL), SG_OK);
    assert_true(locked); /* expired, within the 1 s tolerance */
    assert_int_equal(sg_acquire(B, "fs-tol", 1000, NULL, NULL), SG_CONTENDED);
    msleep(900);
    assert_int_equal(sg_is_locked(B, "fs-tol", &locked, NULL), SG_OK);
    assert_false(locked);
    assert_int_equal(sg_extend(B, a.lock_id, 10000, NULL, NULL), SG_ABSENT);
    assert_int_equal(sg_acquire(B, "fs-tol", 1000, &a, NULL), SG_OK);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
}

static atomic_bool stop_polling;
static atomic_int poller_wins;
static void *poller(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_polling)) {
        sg_lock l;
        sg_error err;
        sg_status st = sg_acquire(B, "fs-renew", 10000, &l, &err);
        if (st == SG_OK) {
            atomic_fetch_add(&poller_wins, 1);
            sg_release(B, l.lock_id, &err);
        }
        msleep(10);
    }
    return NULL;
}

static void renewals_succeed_while_waiters_poll(void **state)
{
    (void)state;
    sg_lock a;
    assert_int_equal(sg_acquire(B, "fs-renew", 2000, &a, NULL), SG_OK);
    atomic_store(&stop_polling, false);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, poller, NULL);
    int ok = 0;
    for (int i = 0; i < 30; i++) {
        sg_error err;
        sg_status st = sg_extend(B, a.lock_id, 2000, NULL, &err);
        if (st != SG_OK)
            fail_msg("renewal %d failed: %s", i, st == SG_ABSENT ? "absent" : err.message);
        ok++;
        msleep(100);
    }
    atomic_store(&stop_polling, true);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(ok, 30);
    assert_int_equal(atomic_load(&poller_wins), 0);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
}

/* SyncGuard TS acquires inside a Firestore transaction: beginTransaction,
 * transactional reads of the lock and counter, then one commit. */
static bool ts_acquire(const char *key, int hold_ms)
{
    long code;
    cJSON *r = post(":beginTransaction", "{}", &code);
    assert_int_equal(code, 200);
    char tx[512];
    snprintf(tx, sizeof tx, "%s",
             cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "transaction")));
    cJSON_Delete(r);
    char body[4096];
    snprintf(body, sizeof body,
             "{\"documents\":[\"%s/locks/%s\",\"%s/fence_counters/fence:%s\"],"
             "\"transaction\":\"%s\"}", docs, key, docs, key, tx);
    r = post(":batchGet", body, &code);
    assert_int_equal(code, 200);
    int64_t now = sg_now_ms(), exp = 0, counter = 0;
    bool live = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, r) {
        const cJSON *found = cJSON_GetObjectItemCaseSensitive(item, "found");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(found, "name"));
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(found, "fields");
        if (!name)
            continue;
        if (strstr(name, "/locks/") && fst_get_int(f, "expiresAtMs", &exp))
            live = exp > now - 1000;
        const char *fs = fst_get_str(f, "fence");
        if (strstr(name, "/fence_counters/") && fs)
            counter = atoll(fs);
    }
    cJSON_Delete(r);
    msleep(hold_ms);
    if (live) {
        snprintf(body, sizeof body, "{\"transaction\":\"%s\"}", tx);
        cJSON_Delete(post(":rollback", body, &code));
        return false;
    }
    snprintf(body, sizeof body,
             "{\"transaction\":\"%s\",\"writes\":["
             "{\"update\":{\"name\":\"%s/fence_counters/fence:%s\",\"fields\":{"
             "\"fence\":{\"stringValue\":\"%015lld\"},\"keyDebug\":{\"stringValue\":\"%s\"}}}},"
             "{\"update\":{\"name\":\"%s/locks/%s\",\"fields\":{"
             "\"lockId\":{\"stringValue\":\"TSTSTSTSTSTSTSTSTSTSTS\"},"
             "\"expiresAtMs\":{\"integerValue\":\"%lld\"},\"acquiredAtMs\":{\"integerValue\":\"%lld\"},"
             "\"key\":{\"stringValue\":\"%s\"},\"fence\":{\"stringValue\":\"%015lld\"}}}}]}",
             tx, docs, key, (long long)counter + 1, key, docs, key, (long long)now + 30000,
             (long long)now, key, (long long)counter + 1);
    r = post(":commit", body, &code);
    cJSON_Delete(r);
    return code == 200;
}

typedef struct ts_arg {
    const char *key;
    bool won;
} ts_arg;

static void *ts_thread(void *arg)
{
    ts_arg *a = arg;
    a->won = ts_acquire(a->key, 300);
    return NULL;
}

static void ts_transactional_acquirer_and_this_backend_never_both_hold(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        char key[32];
        snprintf(key, sizeof key, "fs-ts-%d-%d", getpid(), round);
        ts_arg ta = {.key = key};
        pthread_t t;
        pthread_create(&t, NULL, ts_thread, &ta);
        msleep(100); /* TS has read inside its transaction */
        sg_lock a;
        sg_error err;
        sg_status st = sg_acquire(B, key, 30000, &a, &err);
        pthread_join(t, NULL);
        assert_false(ta.won && st == SG_OK);
        /* whoever won holds it; the other side sees it held */
        if (st == SG_OK) {
            assert_false(ts_acquire(key, 0));
            assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
        } else if (ta.won) {
            assert_int_equal(sg_acquire(B, key, 30000, NULL, NULL), SG_CONTENDED);
        }
    }
    /* ours held → the transactional acquirer backs off; fences share one counter */
    sg_lock a;
    assert_int_equal(sg_acquire(B, "fs-ts-shared", 30000, &a, NULL), SG_OK);
    assert_false(ts_acquire("fs-ts-shared", 0));
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    assert_true(ts_acquire("fs-ts-shared", 0));
    sg_lock_info info;
    assert_int_equal(sg_lookup_key(B, "fs-ts-shared", &info, NULL), SG_OK);
    assert_true(strcmp(info.fence, a.fence) > 0);
}

static void bad_urls_and_credentials(void **state)
{
    (void)state;
    const char *bad[] = {"firestore://", "firestore://p?collection=a/b", "firestore://p?collection=",
                         "firestore://p?collection=x&fence_collection=x", "firestore://p/d/e",
                         "firestore://p?bogus=1", "firestore://p q", "firestore://p?timeout_ms=0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sg_backend *b = NULL;
        sg_error err;
        assert_int_equal(sg_backend_open(bad[i], NULL, &b, &err), SG_ERROR);
        if (err.code != SG_E_INVALID_ARGUMENT)
            fail_msg("%s: %s", bad[i], err.message);
    }
    /* with the emulator configured, credentials are never even read */
    setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json", 1);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(url, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "fs-creds", 1000, &a, &err), SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    /* without the emulator and without credentials: AuthFailed, before any request */
    unsetenv("FIRESTORE_EMULATOR_HOST");
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    assert_int_equal(sg_backend_open("firestore://p", NULL, &b, &err), SG_OK);
    assert_int_equal(sg_acquire(b, "k", 1000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    sg_backend_close(b);
    setenv("FIRESTORE_EMULATOR_HOST", emu, 1);
}

static void hostile_http_replies_are_errors_not_crashes(void **state)
{
    (void)state;
    const char *modes[] = {"http-html", "http-truncated", "http-wrongtypes", "http-hostile-commit"};
    int port = atoi(getenv("SG_TEST_FS_PORT_BASE")) + 10;
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        pid_t pid = hostile_start(modes[i], port);
        setenv("FIRESTORE_EMULATOR_HOST", host, 1);
        sg_backend *b;
        sg_error err;
        assert_int_equal(sg_backend_open("firestore://p?timeout_ms=1000", NULL, &b, &err), SG_OK);
        setenv("FIRESTORE_EMULATOR_HOST", emu, 1);
        sg_lock a;
        sg_lock_info info;
        sg_status st = sg_acquire(b, "hostile", 1000, &a, &err);
        assert_int_equal(st, SG_ERROR);
        if (!strcmp(modes[i], "http-html"))
            assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE); /* HTTP 502, no error body */
        assert_int_equal(sg_lookup_key(b, "hostile", &info, &err), SG_ERROR);
        /* a runQuery answer without documents reads as "no match": never a false hit */
        assert_int_not_equal(sg_lookup_id(b, "AAAAAAAAAAAAAAAAAAAAAA", &info, &err), SG_OK);
        sg_backend_close(b);
        hostile_stop(pid);
    }
}

/* Like "until PING answers" for the other servers: the emulator's first
 * document requests after a start can take seconds (JVM warm-up), so wait,
 * through a backend of its own, until one is served. */
static void wait_until_serving(const char *host)
{
    setenv("FIRESTORE_EMULATOR_HOST", host, 1);
    sg_backend *w;
    sg_error err;
    assert_int_equal(sg_backend_open(url, NULL, &w, &err), SG_OK);
    setenv("FIRESTORE_EMULATOR_HOST", emu, 1);
    sg_lock_info info;
    sg_status st = SG_ERROR;
    for (int i = 0; i < 60 && st == SG_ERROR; i++)
        st = sg_lookup_key(w, "warm-up", &info, &err);
    assert_int_not_equal(st, SG_ERROR);
    sg_backend_close(w);
}

static void emulator_outage_then_recovery(void **state)
{
    (void)state;
    int port = atoi(getenv("SG_TEST_FS_PORT_BASE"));
    char cmd[512], host[64];
    snprintf(cmd, sizeof cmd, "%s start outage %d", getenv("SG_FS_CTL"), port);
    assert_int_equal(system(cmd), 0);
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    wait_until_serving(host);
    setenv("FIRESTORE_EMULATOR_HOST", host, 1);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(url, NULL, &b, &err), SG_OK);
    setenv("FIRESTORE_EMULATOR_HOST", emu, 1);
    sg_lock a;
    if (sg_acquire(b, "fs-outage", 10000, &a, &err) != SG_OK)
        fail_msg("first acquire: %s", err.message);
    snprintf(cmd, sizeof cmd, "%s stop outage", getenv("SG_FS_CTL"));
    assert_int_equal(system(cmd), 0);
    assert_int_equal(sg_acquire(b, "fs-outage-2", 10000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE);
    assert_int_equal(sg_extend(b, a.lock_id, 10000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE);
    snprintf(cmd, sizeof cmd, "%s start outage %d", getenv("SG_FS_CTL"), port);
    assert_int_equal(system(cmd), 0);
    wait_until_serving(host);
    if (sg_acquire(b, "fs-outage-2", 10000, &a, &err) != SG_OK)
        fail_msg("acquire after the restart: %s (%s)", err.message, err.cause);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    snprintf(cmd, sizeof cmd, "%s stop outage", getenv("SG_FS_CTL"));
    assert_int_equal(system(cmd), 0);
}

/* Issue 9 item 4: an emulator restart leaves every pooled keep-alive
 * connection dead; none of that reaches a caller once it answers again. */
static void no_error_after_emulator_restart_with_a_full_pool(void **state)
{
    (void)state;
    int port = atoi(getenv("SG_TEST_FS_PORT_BASE")) + 1;
    char cmd[512], host[64];
    snprintf(cmd, sizeof cmd, "%s start restarted %d", getenv("SG_FS_CTL"), port);
    assert_int_equal(system(cmd), 0);
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    setenv("FIRESTORE_EMULATOR_HOST", host, 1);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(url, NULL, &b, &err), SG_OK);
    setenv("FIRESTORE_EMULATOR_HOST", emu, 1);
    fill_pool(b);
    snprintf(cmd, sizeof cmd, "%s stop restarted && %s start restarted %d", getenv("SG_FS_CTL"),
             getenv("SG_FS_CTL"), port);
    assert_int_equal(system(cmd), 0); /* start returns once it answers */
    wait_until_serving(host);
    int errors = count_errors(b, "fs-restart", 50);
    fprintf(stderr, "firestore: %d operations after an emulator restart with a full pool: "
                    "%d errors\n", 50 * 6, errors);
    assert_int_equal(errors, 0);
    sg_backend_close(b);
    snprintf(cmd, sizeof cmd, "%s stop restarted", getenv("SG_FS_CTL"));
    assert_int_equal(system(cmd), 0);
}

/* A stalled connection (packets dropped, no FIN or RST) bounds every call
 * by the command timeout (curl's CURLOPT_TIMEOUT_MS). */
static void stalled_connection_fails_within_the_command_timeout(void **state)
{
    (void)state;
    int fport = atoi(getenv("SG_TEST_FS_PORT_BASE")) + 11;
    const char *colon = strrchr(emu, ':');
    assert_non_null(colon);
    pid_t fwd = stall_start(fport, atoi(colon + 1));
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", fport);
    setenv("FIRESTORE_EMULATOR_HOST", host, 1);
    sg_open_opts o = {.command_timeout_ms = 600};
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(url, &o, &b, &err), SG_OK);
    setenv("FIRESTORE_EMULATOR_HOST", emu, 1);
    int64_t worst = check_stalled_calls(b, fwd, "firestore", 600);
    fprintf(stderr, "firestore: slowest stalled call %lld ms (command timeout 600 ms)\n",
            (long long)worst);
    hostile_stop(fwd);
    sg_backend_close(b);
}

/* HTTPS endpoints (endpoint=, ca_file=) through a local TLS forwarder in
 * front of the emulator: the right CA works, another CA is AuthFailed; a
 * plain http:// endpoint is refused outside the emulator. */
static void https_endpoint_with_ca_file(void **state)
{
    (void)state;
    const char *tls = getenv("SG_TEST_TLS_DIR");
    assert_non_null(tls);
    int fport = atoi(getenv("SG_TEST_FS_PORT_BASE")) + 12;
    const char *colon = strrchr(emu, ':');
    assert_non_null(colon);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 %s/tls_forwarder.py %d %d %s/server.crt %s/server.key %d >/dev/null 2>&1 "
             "& echo $!",
             getenv("SG_TEST_SRCDIR"), fport, atoi(colon + 1), tls, tls, (int)getpid());
    FILE *f = popen(cmd, "r");
    int pid = 0;
    assert_true(f && fscanf(f, "%d", &pid) == 1);
    pclose(f);
    char probe[160];
    snprintf(probe, sizeof probe,
             "python3 -c \"import socket; socket.create_connection(('127.0.0.1', %d), 0.1)\" "
             "2>/dev/null",
             fport);
    for (int i = 0; i < 200 && system(probe) != 0; i++)
        msleep(25);
    char u[512];
    sg_backend *b;
    sg_error err;
    sg_lock a;
    snprintf(u, sizeof u, "%s?endpoint=https://localhost:%d&ca_file=%s/ca.crt", url, fport, tls);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    assert_int_equal(sg_acquire(b, "fs-https", 5000, &a, &err), SG_OK);
    int64_t exp;
    assert_int_equal(sg_extend(b, a.lock_id, 10000, &exp, &err), SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    const char *bad[] = {"other-ca.crt", "wrongname.crt"}; /* not a CA of the server's */
    for (int i = 0; i < 2; i++) {
        char q[256];
        snprintf(q, sizeof q, "ca_file=%s/%s", tls, bad[i]);
        snprintf(u, sizeof u, "%s?endpoint=https://localhost:%d&%s", url, fport, q);
        assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
        assert_int_equal(sg_acquire(b, "fs-https", 5000, &a, &err), SG_ERROR);
        fprintf(stderr, "firestore over https with %s: %s: %s (%s)\n", q,
                sg_code_name(err.code), err.message, err.cause);
        assert_int_equal(err.code, SG_E_AUTH_FAILED);
        sg_backend_close(b);
    }
    /* the system CAs do not know the test CA: verification is on by default */
    snprintf(u, sizeof u, "%s?endpoint=https://localhost:%d", url, fport);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    assert_int_equal(sg_acquire(b, "fs-https", 5000, &a, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    sg_backend_close(b);
    kill(pid, SIGKILL);
    unsetenv("FIRESTORE_EMULATOR_HOST");
    assert_int_equal(sg_backend_open("firestore://p?endpoint=http://127.0.0.1:1", NULL, &b, &err),
                     SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_backend_open("firestore://p?endpoint=https://h/path", NULL, &b, &err),
                     SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    setenv("FIRESTORE_EMULATOR_HOST", emu, 1);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layout_matches_syncguard),
        cmocka_unit_test(keys_that_are_not_document_ids),
        cmocka_unit_test(client_time_expiry_with_tolerance),
        cmocka_unit_test(renewals_succeed_while_waiters_poll),
        cmocka_unit_test(ts_transactional_acquirer_and_this_backend_never_both_hold),
        cmocka_unit_test(bad_urls_and_credentials),
        cmocka_unit_test(hostile_http_replies_are_errors_not_crashes),
        cmocka_unit_test(emulator_outage_then_recovery),
        cmocka_unit_test(no_error_after_emulator_restart_with_a_full_pool),
        cmocka_unit_test(stalled_connection_fails_within_the_command_timeout),
        cmocka_unit_test(https_endpoint_with_ca_file),
    };
    int rc = cmocka_run_group_tests_name("firestore", tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
