/* test_redis_tls.c — rediss:// against a real redis-server with TLS.
 * scripts/test makes the certificates (scripts/tls-certs → SG_TEST_TLS_DIR)
 * and gives the main server a TLS port (SG_TEST_REDISS_URL: verified with
 * the test CA, client certificates optional); tests that need another
 * server configuration start their own on SG_TEST_REDIS_PORT_BASE + 12..19
 * (and a forwarder on + 24), each with a plain port next to the TLS one (for
 * redis-ctl's PING and for counting connections). Ports from + 51 on are
 * PostgreSQL's with scripts/test's default ports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "syncguard.h"

static const char *url, *tls;
static sg_backend *B;

#define ctl(...) ctl("SG_REDIS_CTL", __VA_ARGS__)

static int private_port(int n)
{
    return atoi(getenv("SG_TEST_REDIS_PORT_BASE")) + n;
}

/* Start redis-server NAME with TLS on private_port(n) and a plain port on
 * private_port(n + 1), certificate CERT (server or wrongname), clients auth
 * AUTH (yes, no, optional), then extra redis-server options. */
static void start_tls(const char *name, int n, const char *cert, const char *auth,
                      const char *extra)
{
    ctl("start %s %d --tls-port %d --tls-cert-file %s/%s.crt --tls-key-file %s/%s.key "
        "--tls-ca-cert-file %s/ca.crt --tls-auth-clients %s %s",
        name, private_port(n + 1), private_port(n), tls, cert, tls, cert, tls, auth, extra);
}

/* Connections the server with plain port p has accepted so far. */
static long long connections_received(int p)
{
    redisContext *c = redisConnect("127.0.0.1", p);
    assert_true(c && !c->err);
    redisReply *r = redisCommand(c, "INFO stats");
    assert_non_null(r);
    const char *s = strstr(r->str, "total_connections_received:");
    assert_non_null(s);
    long long n = atoll(s + strlen("total_connections_received:"));
    freeReplyObject(r);
    redisFree(c);
    return n - 1; /* not this one */
}

/* open url and expect failure with code; returns the message. */
static void open_fails(const char *u, sg_code code, const char *needle)
{
    sg_backend *b = NULL;
    sg_error err;
    int64_t t0 = sg_monotonic_ms();
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
    int64_t took = sg_monotonic_ms() - t0;
    fprintf(stderr, "%s\n  -> %s: %s (%s) after %lld ms\n", u, sg_code_name(err.code),
            err.message, err.cause, (long long)took);
    assert_null(b);
    assert_int_equal(err.code, code);
    if (needle && !strstr(err.message, needle) && !strstr(err.cause, needle))
        fail_msg("'%s' not in '%s' / '%s'", needle, err.message, err.cause);
}

static int group_setup(void **state)
{
    (void)state;
    tls = getenv("SG_TEST_TLS_DIR");
    if (!tls) {
        fprintf(stderr, "test_redis_tls: SG_TEST_TLS_DIR not set: run through scripts/test\n");
        return -1;
    }
    return open_from_env("test_redis_tls", "SG_TEST_REDISS_URL", "SG_REDIS_CTL", &url, &B);
}

static int group_teardown(void **state)
{
    (void)state;
    sg_backend_close(B);
    return 0;
}

static void acquire_extend_release_over_tls(void **state)
{
    (void)state;
    sg_lock a, b;
    sg_error err;
    assert_int_equal(sg_acquire(B, "tls:life", 10000, &a, &err), SG_OK);
    assert_int_equal(sg_acquire(B, "tls:life", 10000, &b, &err), SG_CONTENDED);
    int64_t exp = 0;
    assert_int_equal(sg_extend(B, a.lock_id, 20000, &exp, &err), SG_OK);
    assert_true(exp > a.expires_at_ms);
    sg_lock_info info;
    assert_int_equal(sg_lookup_id_raw(B, a.lock_id, &info, &err), SG_OK);
    assert_string_equal(info.key, "tls:life");
    /* the same data as over the plain port of the same server */
    redisContext *c = redisConnect("127.0.0.1", atoi(getenv("SG_TEST_REDIS_PORT")));
    redisReply *r = redisCommand(c, "GET syncguard:id:%s", a.lock_id);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "syncguard:tls:life");
    freeReplyObject(r);
    redisFree(c);
    assert_int_equal(sg_release(B, a.lock_id, &err), SG_OK);
    assert_int_equal(sg_release(B, a.lock_id, &err), SG_ABSENT);
}

/* Verification is on by default: the system CAs do not know the test CA. */
static void system_cas_by_default_refuse_an_unknown_ca(void **state)
{
    (void)state;
    char u[512];
    snprintf(u, sizeof u, "rediss://127.0.0.1:%d", atoi(getenv("SG_TEST_REDISS_PORT")));
    open_fails(u, SG_E_AUTH_FAILED, "certificate");
}

/* A wrong CA fails AuthFailed at once: one connection, no retry storm, and
 * nothing is acquired. */
static void wrong_ca_is_auth_failed_without_retries(void **state)
{
    (void)state;
    int plain = atoi(getenv("SG_TEST_REDIS_PORT"));
    char u[512];
    snprintf(u, sizeof u, "rediss://127.0.0.1:%d?tls_ca=%s/other-ca.crt",
             atoi(getenv("SG_TEST_REDISS_PORT")), tls);
    long long before = connections_received(plain);
    open_fails(u, SG_E_AUTH_FAILED, "certificate");
    long long after = connections_received(plain);
    fprintf(stderr, "connections for a refused open: %lld\n", after - before - 1);
    assert_true(after - before - 1 <= 1); /* minus connections_received's own */
}

static void wrong_host_name_is_auth_failed(void **state)
{
    (void)state;
    start_tls("tlsname", 12, "wrongname", "no", "");
    char u[512];
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (int i = 0; i < 2; i++) {
        snprintf(u, sizeof u, "rediss://%s:%d?tls_ca=%s/ca.crt", hosts[i], private_port(12),
                 tls);
        open_fails(u, SG_E_AUTH_FAILED, "mismatch");
    }
    /* the right CA and the right name through "localhost" on the main server */
    snprintf(u, sizeof u, "rediss://localhost:%d/0?tls_ca=%s/ca.crt",
             atoi(getenv("SG_TEST_REDISS_PORT")), tls);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "tls:byname", 5000, &a, &err), SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    ctl("stop tlsname");
}

static int warnings;
static void count_warnings(sg_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level == SG_LOG_WARN && strstr(msg, "tls_insecure=1") && strstr(msg, "NOT VERIFIED"))
        warnings++;
}

/* tls_insecure=1 connects to a server whose name does not match, and says
 * loudly that nothing is verified. */
static void insecure_mode_works_and_warns(void **state)
{
    (void)state;
    start_tls("tlsinsecure", 14, "wrongname", "no", "");
    char u[512];
    snprintf(u, sizeof u, "rediss://127.0.0.1:%d?tls_insecure=1", private_port(14));
    warnings = 0;
    sg_log_set(count_warnings, NULL);
    sg_backend *b;
    sg_error err;
    sg_status st = sg_backend_open(u, NULL, &b, &err);
    sg_log_set(NULL, NULL);
    assert_int_equal(st, SG_OK);
    assert_int_equal(warnings, 1);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "tls:insecure", 5000, &a, &err), SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    ctl("stop tlsinsecure");
}

/* A server that requires client certificates: none, or one from another CA,
 * is AuthFailed and nothing is acquired; ours works, with AUTH and SELECT
 * over TLS. */
static void client_certificate_required(void **state)
{
    (void)state;
    start_tls("tlsclient", 16, "server", "yes", "--requirepass s3cret");
    char u[1024];
    snprintf(u, sizeof u, "rediss://:s3cret@127.0.0.1:%d/2?tls_ca=%s/ca.crt", private_port(16),
             tls);
    open_fails(u, SG_E_AUTH_FAILED, "client certificate");
    /* a certificate the server's CA did not sign: the server itself */
    snprintf(u, sizeof u,
             "rediss://:s3cret@127.0.0.1:%d/2?tls_ca=%s/ca.crt&tls_cert=%s/other-ca.crt"
             "&tls_key=%s/other-ca.key",
             private_port(16), tls, tls, tls);
    open_fails(u, SG_E_AUTH_FAILED, NULL);
    snprintf(u, sizeof u,
             "rediss://:s3cret@127.0.0.1:%d/2?tls_ca=%s/ca.crt&tls_cert=%s/client.crt"
             "&tls_key=%s/client.key",
             private_port(16), tls, tls, tls);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "tls:client", 5000, &a, &err), SG_OK);
    redisContext *c = redisConnect("127.0.0.1", private_port(17));
    redisReply *r = redisCommand(c, "AUTH s3cret");
    freeReplyObject(r);
    r = redisCommand(c, "SELECT 2");
    freeReplyObject(r);
    r = redisCommand(c, "KEYS *");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3); /* this lock only: lock, index, counter in db 2 */
    freeReplyObject(r);
    redisFree(c);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    ctl("stop tlsclient");
}

static void settings_are_checked_at_open(void **state)
{
    (void)state;
    char u[512];
    int p = atoi(getenv("SG_TEST_REDISS_PORT"));
    snprintf(u, sizeof u, "redis://127.0.0.1:%d?tls_ca=%s/ca.crt", p, tls);
    open_fails(u, SG_E_INVALID_ARGUMENT, "rediss://");
    snprintf(u, sizeof u, "rediss://127.0.0.1:%d?tls_ca=%s/missing.crt", p, tls);
    open_fails(u, SG_E_INVALID_ARGUMENT, "tls_ca");
    snprintf(u, sizeof u, "rediss://127.0.0.1:%d?tls_ca=%s/ca.crt&tls_cert=%s/client.crt", p,
             tls, tls);
    open_fails(u, SG_E_INVALID_ARGUMENT, "go together");
    snprintf(u, sizeof u,
             "rediss://127.0.0.1:%d?tls_ca=%s/ca.crt&tls_cert=%s/client.crt&tls_key=%s/server.key",
             p, tls, tls, tls);
    open_fails(u, SG_E_INVALID_ARGUMENT, "not the private key");
    snprintf(u, sizeof u, "rediss://127.0.0.1:%d?tls_insecure=yes", p);
    open_fails(u, SG_E_INVALID_ARGUMENT, "tls_insecure");
    /* TLS to a plain port: a clear error within the connect timeout */
    snprintf(u, sizeof u, "rediss://127.0.0.1:%d?tls_ca=%s/ca.crt&connect_timeout_ms=500",
             atoi(getenv("SG_TEST_REDIS_PORT")), tls);
    sg_backend *b = NULL;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
    fprintf(stderr, "rediss:// to a plain port: %s: %s (%s)\n", sg_code_name(err.code),
            err.message, err.cause);
    assert_true(err.code == SG_E_NETWORK_TIMEOUT || err.code == SG_E_INVALID_ARGUMENT);
    assert_non_null(strstr(err.cause, "TLS"));
    /* the key's path is never in a message */
    snprintf(u, sizeof u,
             "rediss://127.0.0.1:%d?tls_ca=%s/ca.crt&tls_cert=%s/client.crt&tls_key=%s/nokey.key",
             p, tls, tls, tls);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
    assert_null(strstr(err.message, "nokey"));
    assert_null(strstr(err.cause, "nokey"));
    char *shown = sg_url_redact(u);
    assert_null(strstr(shown, "nokey"));
    assert_non_null(strstr(shown, "client.crt"));
    free(shown);
}

/* The same pool, reconnect and timeouts as plain connections: a restart
 * with a full pool costs no call; a stalled TLS connection fails each call
 * within the command timeout. */
static void restart_and_stall_behave_as_plain(void **state)
{
    (void)state;
    start_tls("tlsrestart", 18, "server", "no", "");
    char u[512];
    snprintf(u, sizeof u, "rediss://127.0.0.1:%d?tls_ca=%s/ca.crt", private_port(18), tls);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    int errors = 0;
    const char *how[2] = {"stop", "kill9"};
    for (int k = 0; k < 2; k++) {
        fill_pool(b);
        ctl("%s tlsrestart", how[k]);
        ctl("restart tlsrestart");
        errors += count_errors(b, how[k], 30);
    }
    fprintf(stderr, "rediss: %d operations after 2 restarts with a full pool: %d errors\n",
            2 * 30 * 6, errors);
    assert_int_equal(errors, 0);
    sg_backend_close(b);

    pid_t fwd = stall_start(private_port(24), private_port(18));
    snprintf(u, sizeof u, "rediss://127.0.0.1:%d?tls_ca=%s/ca.crt", private_port(24), tls);
    sg_open_opts o = {.command_timeout_ms = 300};
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_OK);
    int64_t worst = check_stalled_calls(b, fwd, "rediss", 300);
    fprintf(stderr, "rediss: slowest stalled call %lld ms (command timeout 300 ms)\n",
            (long long)worst);
    hostile_stop(fwd);
    sg_backend_close(b);
    ctl("stop tlsrestart");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(acquire_extend_release_over_tls),
        cmocka_unit_test(system_cas_by_default_refuse_an_unknown_ca),
        cmocka_unit_test(wrong_ca_is_auth_failed_without_retries),
        cmocka_unit_test(wrong_host_name_is_auth_failed),
        cmocka_unit_test(insecure_mode_works_and_warns),
        cmocka_unit_test(client_certificate_required),
        cmocka_unit_test(settings_are_checked_at_open),
        cmocka_unit_test(restart_and_stall_behave_as_plain),
    };
    return cmocka_run_group_tests_name("redis-tls", tests, group_setup, group_teardown);
}
