/* test_redis.c — the Redis backend against a real redis-server.
 * scripts/test starts the main server (SG_TEST_REDIS_URL / SG_TEST_REDIS_PORT,
 * AOF with appendfsync always); tests that kill or reconfigure a server start
 * their own through scripts/redis-ctl on SG_TEST_REDIS_PORT_BASE + n. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "syncguard.h"

static const char *url;
static int port;
static sg_backend *B;
static redisContext *R; /* a plain client for checking the stored layout */

#define ctl(...) ctl("SG_REDIS_CTL", __VA_ARGS__)

static int private_port(int n)
{
    return atoi(getenv("SG_TEST_REDIS_PORT_BASE")) + n;
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(R, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static int group_setup(void **state)
{
    (void)state;
    if (open_from_env("test_redis", "SG_TEST_REDIS_URL", "SG_REDIS_CTL", &url, &B) != 0)
        return -1;
    port = atoi(getenv("SG_TEST_REDIS_PORT") ? getenv("SG_TEST_REDIS_PORT") : "0");
    R = redisConnect("127.0.0.1", port);
    return R && !R->err ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    sg_backend_close(B);
    redisFree(R);
    return 0;
}

static void full_lifecycle(void **state)
{
    (void)state;
    sg_lock lock;
    sg_error err;
    bool locked = false;
    assert_int_equal(sg_acquire(B, "life:1", 10000, &lock, &err), SG_OK);
    assert_true(sg_lock_id_valid(lock.lock_id));
    assert_int_equal(lock.expires_at_ms - lock.acquired_at_ms, 10000);
    assert_true(llabs(lock.acquired_at_ms - sg_now_ms()) < 5000);
    assert_int_equal(sg_is_locked(B, "life:1", &locked, &err), SG_OK);
    assert_true(locked);
    int64_t exp = 0;
    assert_int_equal(sg_extend(B, lock.lock_id, 20000, &exp, &err), SG_OK);
    assert_true(exp > lock.expires_at_ms);
    assert_int_equal(sg_release(B, lock.lock_id, &err), SG_OK);
    assert_int_equal(sg_is_locked(B, "life:1", &locked, &err), SG_OK);
    assert_false(locked);
    assert_int_equal(sg_acquire(B, "life:1", 10000, &lock, &err), SG_OK);
    assert_int_equal(sg_release(B, lock.lock_id, &err), SG_OK);
}

static void contention_reports_locked(void **state)
{
    (void)state;
    sg_lock a, b;
    assert_int_equal(sg_acquire(B, "contended", 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_acquire(B, "contended", 10000, &b, NULL), SG_CONTENDED);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    assert_int_equal(sg_acquire(B, "contended", 10000, &b, NULL), SG_OK);
    assert_int_equal(sg_release(B, b.lock_id, NULL), SG_OK);
}

static void release_never_deletes_other_owners_lock(void **state)
{
    (void)state;
    sg_lock a;
    char other[SG_LOCK_ID_LEN + 1];
    assert_int_equal(sg_acquire(B, "owned", 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_lock_id_generate(other, NULL), SG_OK);
    assert_int_equal(sg_release(B, other, NULL), SG_ABSENT);
    assert_int_equal(sg_extend(B, other, 50000, NULL, NULL), SG_ABSENT);
    /* a stale index pointing at this lock does not make another lockId its owner */
    redisReply *r = cmd("SET syncguard:id:%s syncguard:owned PX 10000", other);
    freeReplyObject(r);
    assert_int_equal(sg_release(B, other, NULL), SG_ABSENT);
    assert_int_equal(sg_extend(B, other, 50000, NULL, NULL), SG_ABSENT);
    bool locked = false;
    assert_int_equal(sg_is_locked(B, "owned", &locked, NULL), SG_OK);
    assert_true(locked);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
}

static void double_release_is_absent(void **state)
{
    (void)state;
    sg_lock a;
    assert_int_equal(sg_acquire(B, "double", 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_ABSENT);
}

static void extend_replaces_ttl_and_keeps_unknown_fields(void **state)
{
    (void)state;
    sg_lock a;
    assert_int_equal(sg_acquire(B, "ext", 60000, &a, NULL), SG_OK);
    /* a field SyncGuard does not know survives extend */
    redisReply *r = cmd("EVAL %s 1 syncguard:ext",
                        "local d = cjson.decode(redis.call('GET', KEYS[1])) d.extra = 'x' "
                        "redis.call('SET', KEYS[1], cjson.encode(d), 'KEEPTTL') return 1");
    freeReplyObject(r);
    int64_t exp = 0;
    assert_int_equal(sg_extend(B, a.lock_id, 2000, &exp, NULL), SG_OK);
    assert_true(exp < a.expires_at_ms); /* replaced, not added */
    assert_true(exp - sg_now_ms() <= 2000 + 1000);
    r = cmd("PTTL syncguard:ext");
    assert_true(r->integer > 0 && r->integer <= 2000);
    freeReplyObject(r);
    r = cmd("PTTL syncguard:id:%s", a.lock_id);
    assert_true(r->integer > 0 && r->integer <= 2000);
    freeReplyObject(r);
    r = cmd("GET syncguard:ext");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(r->str, "\"extra\":\"x\""));
    freeReplyObject(r);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
}

static void extend_never_resurrects_an_expired_lock(void **state)
{
    (void)state;
    sg_lock a;
    assert_int_equal(sg_acquire(B, "resurrect", 100, &a, NULL), SG_OK);
    msleep(250);
    assert_int_equal(sg_extend(B, a.lock_id, 60000, NULL, NULL), SG_ABSENT);
    bool locked = true;
    assert_int_equal(sg_is_locked(B, "resurrect", &locked, NULL), SG_OK);
    assert_false(locked);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_ABSENT);
}

/* A PTTL just set to ttl (ms): a little of it may have passed. */
static void assert_between_ttl(int64_t v, int64_t ttl)
{
    if (v <= ttl - 2000 || v > ttl)
        fail_msg("PTTL %lld, set to %lld", (long long)v, (long long)ttl);
}

static char *get_str(const char *key)
{
    redisReply *r = cmd("GET %s", key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *v = strdup(r->str);
    freeReplyObject(r);
    return v;
}

static int64_t pttl(const char *key)
{
    redisReply *r = cmd("PTTL %s", key);
    int64_t v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Two stored lock records hold the same fields and values, but for
 * expiresAtMs (cjson may order the fields differently from one write to the
 * next; SyncGuard TS parses them). */
static void same_but_expiry(const char *k1, const char *k2)
{
    redisReply *r = cmd("EVAL %s 2 %s %s",
                        "local a = cjson.decode(redis.call('GET', KEYS[1])) "
                        "local b = cjson.decode(redis.call('GET', KEYS[2])) "
                        "a.expiresAtMs, b.expiresAtMs = nil, nil "
                        "for k, v in pairs(a) do if b[k] ~= v then return k end end "
                        "for k, v in pairs(b) do if a[k] ~= v then return k end end "
                        "return 'same'",
                        k1, k2);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "same");
    freeReplyObject(r);
}

/* The renewer's batches: live, expired, foreign, released and corrupt locks
 * in one call each get what sg_extend gives them, and a batch writes exactly
 * what a single extend writes (SyncGuard TS reads the same record). */
static void extend_many_answers_each_lock_as_a_single_extend_would(void **state)
{
    (void)state;
    sg_lock live[3], expired, released;
    char key[32], foreign[SG_LOCK_ID_LEN + 1], corrupt[SG_LOCK_ID_LEN + 1];
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "many:live:%d", i);
        assert_int_equal(sg_acquire(B, key, 60000, &live[i], NULL), SG_OK);
    }
    freeReplyObject(cmd("EVAL %s 1 syncguard:many:live:1",
                        "local d = cjson.decode(redis.call('GET', KEYS[1])) d.extra = 'x' "
                        "redis.call('SET', KEYS[1], cjson.encode(d), 'KEEPTTL') return 1"));
    assert_int_equal(sg_acquire(B, "many:expired", 100, &expired, NULL), SG_OK);
    assert_int_equal(sg_acquire(B, "many:released", 60000, &released, NULL), SG_OK);
    assert_int_equal(sg_release(B, released.lock_id, NULL), SG_OK);
    /* another owner's lockId, with a stale index pointing at a live lock */
    assert_int_equal(sg_lock_id_generate(foreign, NULL), SG_OK);
    freeReplyObject(cmd("SET syncguard:id:%s syncguard:many:live:0 PX 10000", foreign));
    /* a corrupt record behind a valid index */
    assert_int_equal(sg_lock_id_generate(corrupt, NULL), SG_OK);
    freeReplyObject(cmd("SET syncguard:many:corrupt %s PX 10000", "not json"));
    freeReplyObject(cmd("SET syncguard:id:%s syncguard:many:corrupt PX 10000", corrupt));
    msleep(250);
    char *before1 = get_str("syncguard:many:live:1");

    sg_extend_item it[] = {
        {.lock_id = live[0].lock_id, .ttl_ms = 2000}, /* shorter: replaced, not added */
        {.lock_id = expired.lock_id, .ttl_ms = 60000},
        {.lock_id = foreign, .ttl_ms = 60000},
        {.lock_id = live[1].lock_id, .ttl_ms = 5000},
        {.lock_id = corrupt, .ttl_ms = 5000},
        {.lock_id = live[2].lock_id, .ttl_ms = 3000},
        {.lock_id = released.lock_id, .ttl_ms = 5000},
    };
    sg_error err;
    int64_t t0 = sg_now_ms();
    freeReplyObject(cmd("SCRIPT FLUSH")); /* NOSCRIPT: loaded and run */
    assert_int_equal(sg_extend_many(B, it, 7, &err), SG_OK);
    int64_t t1 = sg_now_ms();
    const sg_status want[] = {SG_OK, SG_ABSENT, SG_ABSENT, SG_OK, SG_ERROR, SG_OK, SG_ABSENT};
    for (int i = 0; i < 7; i++)
        assert_int_equal(it[i].status, want[i]);
    assert_int_equal(it[4].code, SG_E_INTERNAL);
    assert_int_equal(err.code, SG_E_INTERNAL);
    /* TIME of the server (this host): now + ttl */
    for (int i = 0; i < 6; i += i == 0 ? 3 : 2) {
        assert_true(it[i].expires_at_ms >= t0 - 50 + it[i].ttl_ms);
        assert_true(it[i].expires_at_ms <= t1 + 50 + it[i].ttl_ms);
    }
    /* the stored records: as SyncGuard wrote them, expiresAtMs and PX renewed */
    char want_exp[64];
    for (int i = 0; i < 3; i++) {
        const sg_extend_item *x = &it[i == 0 ? 0 : i == 1 ? 3 : 5];
        snprintf(key, sizeof key, "syncguard:many:live:%d", i);
        char *v = get_str(key);
        snprintf(want_exp, sizeof want_exp, "\"expiresAtMs\":%lld", (long long)x->expires_at_ms);
        assert_non_null(strstr(v, want_exp));
        snprintf(want_exp, sizeof want_exp, "\"acquiredAtMs\":%lld",
                 (long long)live[i].acquired_at_ms);
        assert_non_null(strstr(v, want_exp));
        snprintf(want_exp, sizeof want_exp, "\"fence\":\"%s\"", live[i].fence);
        assert_non_null(strstr(v, want_exp));
        free(v);
        assert_between_ttl(pttl(key), x->ttl_ms);
        char ik[64];
        snprintf(ik, sizeof ik, "syncguard:id:%s", live[i].lock_id);
        assert_between_ttl(pttl(ik), x->ttl_ms);
        sg_lock_info info;
        snprintf(key, sizeof key, "many:live:%d", i);
        assert_int_equal(sg_lookup_key(B, key, &info, NULL), SG_OK);
        assert_int_equal(info.expires_at_ms, x->expires_at_ms);
    }
    char *after1 = get_str("syncguard:many:live:1");
    assert_non_null(strstr(after1, "\"extra\":\"x\"")); /* unknown fields survive */
    /* what a single extend writes, field for field, but for expiresAtMs
     * (cjson may order the fields differently from one write to the next) */
    freeReplyObject(cmd("SET many:before-record %s", before1));
    freeReplyObject(cmd("SET many:batch-record %s", after1));
    int64_t exp = 0;
    assert_int_equal(sg_extend(B, live[1].lock_id, 5000, &exp, NULL), SG_OK);
    same_but_expiry("many:before-record", "many:batch-record");
    same_but_expiry("many:batch-record", "syncguard:many:live:1");
    freeReplyObject(cmd("DEL many:batch-record many:before-record"));
    free(before1);
    free(after1);
    /* nothing resurrected or created */
    bool locked = true;
    assert_int_equal(sg_is_locked(B, "many:expired", &locked, NULL), SG_OK);
    assert_false(locked);
    assert_int_equal(sg_is_locked(B, "many:released", &locked, NULL), SG_OK);
    assert_false(locked);
    redisReply *r = cmd("EXISTS syncguard:id:%s", released.lock_id);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sg_release(B, live[i].lock_id, NULL), SG_OK);
    freeReplyObject(cmd("DEL syncguard:many:corrupt syncguard:id:%s syncguard:id:%s", corrupt,
                        foreign));
}

static void extend_many_over_a_batch_limit_and_with_a_prefix(void **state)
{
    (void)state;
    enum { N = 300 }; /* two calls */
    char u[200];
    snprintf(u, sizeof u, "%s%sprefix=bat:ch", url, strchr(url, '?') ? "&" : "?");
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    static sg_lock locks[N];
    static sg_extend_item it[N];
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(sg_acquire(b, key, 60000, &locks[i], &err), SG_OK);
        it[i] = (sg_extend_item){.lock_id = locks[i].lock_id, .ttl_ms = 7000 + i};
    }
    assert_int_equal(sg_release(b, locks[150].lock_id, NULL), SG_OK);
    assert_int_equal(sg_extend_many(b, it, N, &err), SG_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(it[i].status, i == 150 ? SG_ABSENT : SG_OK);
        if (i == 150)
            continue;
        char key[64];
        snprintf(key, sizeof key, "bat:ch:k%d", i);
        assert_between_ttl(pttl(key), 7000 + i);
        snprintf(key, sizeof key, "bat:ch:id:%s", locks[i].lock_id);
        assert_between_ttl(pttl(key), 7000 + i);
        assert_int_equal(sg_release(b, locks[i].lock_id, NULL), SG_OK);
    }
    sg_backend_close(b);
}

static void expiry_is_exactly_the_ttl(void **state)
{
    (void)state;
    sg_lock a;
    assert_int_equal(sg_acquire(B, "expiry", 400, &a, NULL), SG_OK);
    assert_int_equal(a.expires_at_ms - a.acquired_at_ms, 400);
    redisReply *r = cmd("PTTL syncguard:expiry");
    assert_true(r->integer > 0 && r->integer <= 400);
    freeReplyObject(r);
    /* Redis deletes the key at expiresAtMs: poll until gone, check when */
    bool locked = true;
    while (locked) {
        assert_int_equal(sg_is_locked(B, "expiry", &locked, NULL), SG_OK);
        if (locked)
            msleep(5);
    }
    r = cmd("TIME");
    int64_t now = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    assert_true(now >= a.expires_at_ms);
    assert_true(now < a.expires_at_ms + 200);
    assert_int_equal(sg_acquire(B, "expiry", 400, &a, NULL), SG_OK);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
}

static void fences_increase_per_key_and_are_independent(void **state)
{
    (void)state;
    char prev_a[16] = "", prev_b[16] = "";
    for (int i = 0; i < 20; i++) {
        sg_lock a, b;
        assert_int_equal(sg_acquire(B, "fence-a", 10000, &a, NULL), SG_OK);
        assert_int_equal(strlen(a.fence), 15);
        assert_true(strcmp(a.fence, prev_a) > 0);
        strcpy(prev_a, a.fence);
        assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
        if (i % 4 == 0) {
            assert_int_equal(sg_acquire(B, "fence-b", 10000, &b, NULL), SG_OK);
            assert_true(strcmp(b.fence, prev_b) > 0);
            strcpy(prev_b, b.fence);
            assert_int_equal(sg_release(B, b.lock_id, NULL), SG_OK);
        }
    }
    uint64_t fa, fb;
    sg_fence_parse(prev_a, &fa, NULL);
    sg_fence_parse(prev_b, &fb, NULL);
    assert_true(fa >= 20 && fb >= 5 && fa != fb);
    /* the counter key has no TTL and survives the lock */
    redisReply *r = cmd("PTTL syncguard:fence:syncguard:fence-a");
    assert_int_equal(r->integer, -1);
    freeReplyObject(r);
}

static void stored_layout_matches_syncguard(void **state)
{
    (void)state;
    sg_lock a;
    assert_int_equal(sg_acquire(B, "payment:123", 10000, &a, NULL), SG_OK);
    redisReply *r = cmd("GET syncguard:payment:123");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char want[128];
    snprintf(want, sizeof want, "\"lockId\":\"%s\"", a.lock_id);
    assert_non_null(strstr(r->str, want));
    snprintf(want, sizeof want, "\"fence\":\"%s\"", a.fence);
    assert_non_null(strstr(r->str, want));
    snprintf(want, sizeof want, "\"expiresAtMs\":%lld", (long long)a.expires_at_ms);
    assert_non_null(strstr(r->str, want));
    snprintf(want, sizeof want, "\"acquiredAtMs\":%lld", (long long)a.acquired_at_ms);
    assert_non_null(strstr(r->str, want));
    assert_non_null(strstr(r->str, "\"key\":\"payment:123\""));
    freeReplyObject(r);
    r = cmd("GET syncguard:id:%s", a.lock_id);
    assert_string_equal(r->str, "syncguard:payment:123");
    freeReplyObject(r);
    r = cmd("GET syncguard:fence:syncguard:payment:123");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    uint64_t f;
    sg_fence_parse(a.fence, &f, NULL);
    assert_int_equal(strtoull(r->str, NULL, 10), f);
    freeReplyObject(r);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    /* a long key is stored under the hashed storage key */
    char key[600];
    memset(key, 'a', 512);
    key[512] = 0;
    assert_int_equal(sg_acquire(B, key, 10000, &a, NULL), SG_OK);
    sg_lock_info info;
    assert_int_equal(sg_lookup_key_raw(B, key, &info, NULL), SG_OK);
    assert_string_equal(info.key, key);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
}

static void reserved_keys_are_rejected_and_counters_survive(void **state)
{
    (void)state;
    sg_lock a;
    sg_error err;
    assert_int_equal(sg_acquire(B, "victim", 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    redisReply *r = cmd("GET syncguard:fence:syncguard:victim");
    char before[32];
    snprintf(before, sizeof before, "%s", r->str);
    freeReplyObject(r);
    assert_int_equal(sg_acquire(B, "fence:syncguard:victim", 10000, &a, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    char idkey[40];
    snprintf(idkey, sizeof idkey, "id:%s", "AAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(sg_acquire(B, idkey, 10000, &a, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_lookup_key(B, "fence:syncguard:victim", NULL, &err), SG_ERROR);
    r = cmd("GET syncguard:fence:syncguard:victim");
    assert_string_equal(r->str, before);
    r->integer = 0;
    freeReplyObject(r);
    r = cmd("PTTL syncguard:fence:syncguard:victim");
    assert_int_equal(r->integer, -1);
    freeReplyObject(r);
    /* ordinary look-alikes stay valid */
    assert_int_equal(sg_acquire(B, "id:42", 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    assert_int_equal(sg_acquire(B, "fence", 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
}

static void lookups_are_sanitized_and_empty_after_expiry(void **state)
{
    (void)state;
    sg_lock a;
    sg_lock_info info;
    assert_int_equal(sg_acquire(B, "look", 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_lookup_key(B, "look", &info, NULL), SG_OK);
    assert_string_equal(info.key, "");
    assert_string_equal(info.lock_id, "");
    assert_string_equal(info.fence, a.fence);
    assert_int_equal(info.expires_at_ms, a.expires_at_ms);
    assert_int_equal(info.acquired_at_ms, a.acquired_at_ms);
    char h[SG_HASH_LEN + 1];
    sg_key_hash("look", h);
    assert_string_equal(info.key_hash, h);
    assert_int_equal(sg_lookup_id(B, a.lock_id, &info, NULL), SG_OK);
    sg_key_hash(a.lock_id, h);
    assert_string_equal(info.lock_id_hash, h);
    assert_int_equal(sg_lookup_id_raw(B, a.lock_id, &info, NULL), SG_OK);
    assert_string_equal(info.lock_id, a.lock_id);
    assert_string_equal(info.key, "look");
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    assert_int_equal(sg_lookup_key(B, "look", &info, NULL), SG_ABSENT);
    assert_int_equal(sg_lookup_id(B, a.lock_id, &info, NULL), SG_ABSENT);
    assert_int_equal(sg_acquire(B, "look", 50, &a, NULL), SG_OK);
    msleep(120);
    assert_int_equal(sg_lookup_key(B, "look", &info, NULL), SG_ABSENT);
    assert_int_equal(sg_lookup_id(B, a.lock_id, &info, NULL), SG_ABSENT);
}

static void hostile_stored_data_is_an_error_not_a_crash(void **state)
{
    (void)state;
    const char *bad[] = {
        "not json", "{\"lockId\":5}", "[]", "{\"expiresAtMs\":\"soon\"}",
        "{\"lockId\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"expiresAtMs\":99999999999999,"
        "\"acquiredAtMs\":1,\"key\":\"hostile\",\"fence\":42}",
        "{\"lockId\":\"../etc\",\"expiresAtMs\":99999999999999,\"acquiredAtMs\":1,"
        "\"key\":\"hostile\",\"fence\":\"000000000000001\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        freeReplyObject(cmd("SET syncguard:hostile %s PX 10000", bad[i]));
        sg_lock_info info;
        sg_error err;
        sg_status st = sg_lookup_key(B, "hostile", &info, &err);
        assert_int_equal(st, SG_ERROR);
        assert_int_equal(err.code, SG_E_INTERNAL);
        sg_lock a;
        st = sg_acquire(B, "hostile", 1000, &a, &err);
        assert_true(st == SG_ERROR || st == SG_CONTENDED);
    }
    freeReplyObject(cmd("DEL syncguard:hostile"));
}

static void invalid_input_is_rejected_before_any_io(void **state)
{
    (void)state;
    /* a backend whose server is gone: only validation can answer */
    int p = private_port(1);
    ctl("start noio %d", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    ctl("stop noio");
    assert_int_equal(sg_acquire(b, "", 1000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_acquire(b, "k", 0, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_release(b, "nope", &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_extend(b, "AAAAAAAAAAAAAAAAAAAAAA", 0, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    /* and a real call now fails as the outage it is */
    assert_int_equal(sg_acquire(b, "k", 1000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE);
    sg_backend_close(b);
}

static void bad_urls_are_invalid_argument(void **state)
{
    (void)state;
    const char *bad[] = {
        "redis://127.0.0.1:0",       "redis://127.0.0.1:99999",  "redis://127.0.0.1:abc",
        "redis://127.0.0.1:1/x",     "redis://h?prefix=a:fence:b", "redis://h?prefix=myfence",
        "redis://h?bogus=1",         "redis://h?db",               "unix://relative.sock",
        "redis://:pa%zzss@h",        "redis://:pa%00ss@h",         "redis://h?command_timeout_ms=0",
        "ftp://x",                   "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sg_backend *b = NULL;
        sg_error err;
        assert_int_equal(sg_backend_open(bad[i], NULL, &b, &err), SG_ERROR);
        if (err.code != SG_E_INVALID_ARGUMENT)
            fail_msg("%s: %s", bad[i], err.message);
        assert_null(b);
    }
}

static void unix_socket_url(void **state)
{
    (void)state;
    int p = private_port(7);
    char sock[256], u[320];
    FILE *f = popen("\"$SG_REDIS_CTL\" dir unixsock", "r");
    assert_non_null(f);
    assert_non_null(fgets(sock, sizeof sock, f));
    pclose(f);
    sock[strcspn(sock, "\n")] = '\0';
    strcat(sock, "/redis.sock");
    ctl("start unixsock %d --unixsocket %s --unixsocketperm 700", p, sock);
    snprintf(u, sizeof u, "unix://%s?db=3", sock);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "over-a-socket", 10000, &a, &err), SG_OK);
    /* it landed in database 3 */
    redisContext *c = redisConnectUnix(sock);
    redisReply *r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS syncguard:over-a-socket");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    ctl("stop unixsock");
}

static void ignore_key(const char *key, void *ud)
{
    (void)key, (void)ud;
}

static void hostile_server_replies_are_errors_not_crashes(void **state)
{
    (void)state;
    const char *modes[] = {"redis-status", "redis-garbage", "redis-array", "redis-truncated"};
    int hport = private_port(8);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        pid_t pid = hostile_start(modes[i], hport);
        char u[96];
        snprintf(u, sizeof u, "redis://127.0.0.1:%d?command_timeout_ms=500", hport);
        sg_backend *b = NULL;
        sg_error err;
        if (sg_backend_open(u, NULL, &b, &err) == SG_OK) {
            sg_lock a;
            sg_lock_info info;
            assert_int_equal(sg_acquire(b, "hostile", 1000, &a, &err), SG_ERROR);
            assert_true(err.code == SG_E_INTERNAL || err.code == SG_E_SERVICE_UNAVAILABLE);
            assert_int_equal(sg_lookup_key(b, "hostile", &info, &err), SG_ERROR);
            assert_int_equal(sg_release(b, "AAAAAAAAAAAAAAAAAAAAAA", &err), SG_ERROR);
            char cursor[SG_CURSOR_LEN] = "";
            assert_int_equal(sg_list(b, cursor, 10, ignore_key, NULL, &err), SG_ERROR);
            sg_backend_close(b);
        } else {
            assert_true(err.code == SG_E_INTERNAL || err.code == SG_E_SERVICE_UNAVAILABLE);
        }
        hostile_stop(pid);
    }
}

static void password_protected_server(void **state)
{
    (void)state;
    int p = private_port(2);
    ctl("start auth %d --requirepass s3cret", p);
    char u[128];
    sg_backend *b = NULL;
    sg_error err;
    snprintf(u, sizeof u, "redis://:wrong@127.0.0.1:%d", p);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    assert_null(strstr(err.message, "wrong"));
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    snprintf(u, sizeof u, "redis://:s3cret@127.0.0.1:%d/2", p);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "authed", 1000, &a, &err), SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    /* from the environment, and from a file */
    setenv("SYNCGUARD_REDIS_PASSWORD", "s3cret", 1);
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_backend_close(b);
    unsetenv("SYNCGUARD_REDIS_PASSWORD");
    char path[] = "/tmp/sg-pw-XXXXXX";
    int fd = mkstemp(path);
    assert_true(write(fd, "s3cret\n", 7) == 7);
    close(fd);
    snprintf(u, sizeof u, "redis://127.0.0.1:%d?password_file=%s", p, path);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_backend_close(b);
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p); /* the option every backend takes */
    sg_open_opts po = {.password_file = path};
    assert_int_equal(sg_backend_open(u, &po, &b, &err), SG_OK);
    sg_backend_close(b);
    unlink(path);
    assert_int_equal(sg_backend_open(u, &po, &b, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    ctl("stop auth");
}

static void fences_survive_kill9_with_appendfsync_always(void **state)
{
    (void)state;
    int p = private_port(3);
    ctl("start durable %d --appendonly yes --appendfsync always", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    sg_backend *b;
    sg_error err;
    sg_open_opts o = {.require_durable_fences = true};
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_OK);
    check_fences_survive_kill9(b, "SG_REDIS_CTL", "durable");
    sg_backend_close(b);
    ctl("stop durable");
}

static void non_durable_server_warns_or_is_refused(void **state)
{
    (void)state;
    int p = private_port(4);
    ctl("start volatile %d --appendonly no --maxmemory-policy allkeys-lru", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    sg_backend *b = NULL;
    sg_error err;
    sg_open_opts o = {.require_durable_fences = true};
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_ERROR);
    assert_non_null(strstr(err.message, "allkeys-lru"));
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK); /* warns only */
    sg_backend_close(b);
    ctl("stop volatile");
}

static void outage_then_recovery(void **state)
{
    (void)state;
    int p = private_port(5);
    ctl("start outage %d", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d?connect_timeout_ms=500", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "outage", 10000, &a, &err), SG_OK);
    ctl("stop outage");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sg_acquire(b, "outage2", 10000, NULL, &err), SG_ERROR);
        assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE);
    }
    ctl("restart outage");
    sg_status st = SG_ERROR;
    for (int i = 0; i < 3 && st != SG_OK; i++)
        st = sg_acquire(b, "outage2", 10000, &a, &err);
    assert_int_equal(st, SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    ctl("stop outage");
}

static void command_timeout_is_network_timeout(void **state)
{
    (void)state;
    int p = private_port(6);
    ctl("start slow %d --enable-debug-command yes", p);
    char u[96];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d?command_timeout_ms=100", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    redisContext *c = redisConnect("127.0.0.1", p);
    redisAppendCommand(c, "DEBUG SLEEP 0.6");
    int done = 0;
    redisBufferWrite(c, &done);
    msleep(50);
    assert_int_equal(sg_acquire(b, "slow", 10000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_NETWORK_TIMEOUT);
    assert_true(err.unknown_outcome);
    redisReply *r;
    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    freeReplyObject(r);
    redisFree(c);
    /* the backend works again afterwards on a fresh connection */
    sg_lock a;
    sg_status st = SG_ERROR;
    for (int i = 0; i < 50 && st != SG_OK; i++) {
        st = sg_acquire(b, "slow-after", 10000, &a, &err);
        if (st != SG_OK)
            msleep(50);
    }
    assert_int_equal(st, SG_OK);
    sg_backend_close(b);
    ctl("stop slow");
}

static int listed_count;
static bool listed[40];
static void on_listed(const char *key, void *ud)
{
    (void)ud;
    int n;
    if (sscanf(key, "listed:%d", &n) == 1 && n >= 0 && n < 40) {
        listed[n] = true;
        listed_count++;
    }
    assert_false(!strncmp(key, "fence:syncguard:", 16)); /* a counter, never a lock */
}

static void list_pages_through_live_locks_only(void **state)
{
    (void)state;
    sg_lock locks[40];
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "listed:%d", i);
        assert_int_equal(sg_acquire(B, key, 10000, &locks[i], NULL), SG_OK);
    }
    assert_int_equal(sg_release(B, locks[7].lock_id, NULL), SG_OK);
    freeReplyObject(cmd("SET syncguard:junk notjson"));
    freeReplyObject(cmd("LPUSH syncguard:alist x"));
    char cursor[SG_CURSOR_LEN] = "";
    int pages = 0;
    do {
        assert_int_equal(sg_list(B, cursor, 10, on_listed, NULL, NULL), SG_OK);
        pages++;
    } while (cursor[0] && pages < 1000);
    assert_false(cursor[0]);
    assert_true(pages > 1);
    for (int i = 0; i < 40; i++)
        assert_true(listed[i] == (i != 7));
    for (int i = 0; i < 40; i++)
        if (i != 7)
            assert_int_equal(sg_release(B, locks[i].lock_id, NULL), SG_OK);
    freeReplyObject(cmd("DEL syncguard:junk syncguard:alist"));
}

static const char *const id_like[] = {"id:42", "id:", "id:AAAAAAAAAAAAAAAAAAAAA",
                                      "id:AAAAAAAAAAAAAAAAAAAAAAA", "fence:x", "fence:"};
static bool id_like_seen[6];
static void on_id_like(const char *key, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < 6; i++)
        if (!strcmp(key, id_like[i]))
            id_like_seen[i] = true;
    assert_int_not_equal(strncmp(key, "syncguard:", 10), 0);
}

/* Only real lockId index entries ("id:" + exactly 22 base64url chars) and
 * counters are skipped by the listing: keys that merely start with "id:" or
 * "fence:" are ordinary locks and show in ls locks/. */
static void keys_starting_id_or_fence_are_listed(void **state)
{
    (void)state;
    sg_lock locks[6];
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(sg_acquire(B, id_like[i], 10000, &locks[i], NULL), SG_OK);
    char cursor[SG_CURSOR_LEN] = "";
    int pages = 0;
    do {
        assert_int_equal(sg_list(B, cursor, 50, on_id_like, NULL, NULL), SG_OK);
    } while (cursor[0] && ++pages < 10000);
    for (size_t i = 0; i < 6; i++) {
        if (!id_like_seen[i])
            fail_msg("lock '%s' is held but not listed", id_like[i]);
        assert_int_equal(sg_release(B, locks[i].lock_id, NULL), SG_OK);
    }
}

/* Issue 9 item 4: after a restart (clean or kill -9) every pooled connection
 * is dead; none of that reaches a caller once PING answers again. */
static void no_error_after_restart_with_a_full_pool(void **state)
{
    (void)state;
    int p = private_port(9);
    ctl("start restarted %d", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    int errors = 0, ops = 0;
    const char *how[2] = {"stop", "kill9"};
    for (int k = 0; k < 2; k++) {
        fill_pool(b);
        ctl("%s restarted", how[k]);
        ctl("restart restarted"); /* returns once PING answers */
        errors += count_errors(b, how[k], 50);
        ops += 50 * 6;
    }
    fprintf(stderr, "redis: %d operations after 2 restarts with a full pool: %d errors\n", ops,
            errors);
    assert_int_equal(errors, 0);
    sg_backend_close(b);
    ctl("stop restarted");
}

/* SPEC section 4/7: a stalled connection (packets dropped, no FIN or RST)
 * bounds every call by command_timeout_ms (hiredis socket timeouts). */
static void stalled_connection_fails_within_the_command_timeout(void **state)
{
    (void)state;
    pid_t fwd = stall_start(private_port(10), port);
    char u[96];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", private_port(10));
    sg_open_opts o = {.command_timeout_ms = 300};
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_OK);
    int64_t worst = check_stalled_calls(b, fwd, "redis", 300);
    fprintf(stderr, "redis: slowest stalled call %lld ms (command timeout 300 ms)\n",
            (long long)worst);
    hostile_stop(fwd);
    sg_backend_close(b);
}

/* many threads contending on one key never both hold it */
static atomic_int inside, max_inside, sections;
static void *contender(void *arg)
{
    (void)arg;
    sg_acquire_opts o = {.timeout_ms = 20000, .retry_delay_ms = 2, .max_delay_ms = 20,
                         .max_retries = 100000};
    for (int i = 0; i < 25; i++) {
        sg_lock lock;
        sg_error err;
        if (sg_acquire_retry(B, "mutex", 10000, &o, &lock, &err) != SG_OK)
            fail_msg("acquire failed: %s", err.message);
        int now = atomic_fetch_add(&inside, 1) + 1;
        int m = atomic_load(&max_inside);
        while (now > m && !atomic_compare_exchange_weak(&max_inside, &m, now))
            ;
        usleep(200);
        atomic_fetch_sub(&inside, 1);
        atomic_fetch_add(&sections, 1);
        if (sg_release(B, lock.lock_id, &err) != SG_OK)
            fail_msg("release failed");
    }
    return NULL;
}

static void many_threads_never_both_hold(void **state)
{
    (void)state;
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, contender, NULL);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&max_inside), 1);
    assert_int_equal(atomic_load(&sections), 200);
}

/* ---- wake-ups: PUBLISH in the release script, one subscriber per handle ---- */
typedef struct wake_count {
    pthread_mutex_t mu;
    int n;
} wake_count;

static void count_wake(void *ud)
{
    wake_count *c = ud;
    pthread_mutex_lock(&c->mu);
    c->n++;
    pthread_mutex_unlock(&c->mu);
}

static int wakes(wake_count *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static bool wait_wakes(wake_count *c, int want, int ms)
{
    for (int i = 0; i < ms / 10 && wakes(c) < want; i++)
        msleep(10);
    return wakes(c) >= want;
}

static long long numsub(redisContext *r, const char *channel)
{
    redisReply *x = redisCommand(r, "PUBSUB NUMSUB %s", channel);
    assert_non_null(x);
    long long n = x->type == REDIS_REPLY_ARRAY && x->elements == 2 ? x->element[1]->integer : -1;
    freeReplyObject(x);
    return n;
}

/* Clients in subscriber mode with exactly `subs` channels. */
static int subscribers_with(redisContext *r, int subs)
{
    redisReply *x = redisCommand(r, "CLIENT LIST");
    assert_non_null(x);
    char needle[32];
    snprintf(needle, sizeof needle, " sub=%d ", subs);
    int n = 0;
    for (const char *p = x->str; p && (p = strstr(p, needle)); p++)
        n++;
    freeReplyObject(x);
    return n;
}

static void release_publishes_and_subscriptions_follow_the_waiters(void **state)
{
    (void)state;
    sg_backend *b; /* a fresh handle: its subscriber is the only one with 3 channels */
    sg_error err;
    assert_int_equal(sg_backend_open(url, NULL, &b, &err), SG_OK);
    wake_count c1 = {PTHREAD_MUTEX_INITIALIZER, 0}, c2 = c1, c3 = c1;
    sg_watch *w1 = sg_watch_key(b, "wk:a", count_wake, &c1);
    sg_watch *w2 = sg_watch_key(b, "wk:a", count_wake, &c2); /* two waiters, one channel */
    sg_watch *w3 = sg_watch_key(b, "wk:b", count_wake, &c3);
    assert_non_null(w1);
    assert_non_null(w2);
    assert_non_null(w3);
    /* each is told once that its subscription is in place */
    assert_true(wait_wakes(&c1, 1, 3000) && wait_wakes(&c2, 1, 3000) && wait_wakes(&c3, 1, 3000));
    assert_int_equal(numsub(R, "syncguard:wk:a:wake"), 1);
    assert_int_equal(numsub(R, "syncguard:wk:b:wake"), 1);
    assert_int_equal(subscribers_with(R, 2), 1); /* one connection for both keys */

    /* a release by another handle (another process) wakes the key's waiters only */
    sg_lock l;
    assert_int_equal(sg_acquire(B, "wk:a", 10000, &l, &err), SG_OK);
    assert_int_equal(sg_release(B, l.lock_id, &err), SG_OK);
    assert_true(wait_wakes(&c1, 2, 3000) && wait_wakes(&c2, 2, 3000));
    msleep(50);
    assert_int_equal(wakes(&c3), 1);
    /* a release that deletes nothing announces nothing */
    assert_int_equal(sg_release(B, l.lock_id, &err), SG_ABSENT);
    msleep(100);
    assert_int_equal(wakes(&c1), 2);

    /* the last waiter of a key gone: unsubscribed */
    sg_unwatch(b, w1);
    msleep(100);
    assert_int_equal(numsub(R, "syncguard:wk:a:wake"), 1); /* w2 still waits */
    sg_unwatch(b, w2);
    sg_unwatch(b, w3);
    for (int i = 0; i < 300 && (numsub(R, "syncguard:wk:a:wake") || numsub(R, "syncguard:wk:b:wake")); i++)
        msleep(10);
    assert_int_equal(numsub(R, "syncguard:wk:a:wake"), 0);
    assert_int_equal(numsub(R, "syncguard:wk:b:wake"), 0);
    sg_backend_close(b);
}

static void subscriber_resubscribes_after_a_restart(void **state)
{
    (void)state;
    int p = private_port(11);
    ctl("start wakerestart %d --appendonly yes --appendfsync always", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d?connect_timeout_ms=300", p);
    sg_backend *b, *other;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    assert_int_equal(sg_backend_open(u, NULL, &other, &err), SG_OK);
    wake_count c = {PTHREAD_MUTEX_INITIALIZER, 0};
    sg_watch *w = sg_watch_key(b, "wk:restart", count_wake, &c);
    assert_true(wait_wakes(&c, 1, 3000));
    ctl("kill9 wakerestart");
    ctl("restart wakerestart");
    assert_true(wait_wakes(&c, 2, 10000)); /* reconnected, subscribed again: woken once */
    int before = wakes(&c);
    sg_lock l;
    assert_int_equal(sg_acquire(other, "wk:restart", 10000, &l, &err), SG_OK);
    assert_int_equal(sg_release(other, l.lock_id, &err), SG_OK);
    assert_true(wait_wakes(&c, before + 1, 3000)); /* and announcements arrive again */
    sg_unwatch(b, w);
    sg_backend_close(b);
    sg_backend_close(other);
    ctl("stop wakerestart");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_lifecycle),
        cmocka_unit_test(contention_reports_locked),
        cmocka_unit_test(release_never_deletes_other_owners_lock),
        cmocka_unit_test(double_release_is_absent),
        cmocka_unit_test(extend_replaces_ttl_and_keeps_unknown_fields),
        cmocka_unit_test(extend_never_resurrects_an_expired_lock),
        cmocka_unit_test(extend_many_answers_each_lock_as_a_single_extend_would),
        cmocka_unit_test(extend_many_over_a_batch_limit_and_with_a_prefix),
        cmocka_unit_test(expiry_is_exactly_the_ttl),
        cmocka_unit_test(fences_increase_per_key_and_are_independent),
        cmocka_unit_test(stored_layout_matches_syncguard),
        cmocka_unit_test(reserved_keys_are_rejected_and_counters_survive),
        cmocka_unit_test(lookups_are_sanitized_and_empty_after_expiry),
        cmocka_unit_test(hostile_stored_data_is_an_error_not_a_crash),
        cmocka_unit_test(invalid_input_is_rejected_before_any_io),
        cmocka_unit_test(bad_urls_are_invalid_argument),
        cmocka_unit_test(unix_socket_url),
        cmocka_unit_test(hostile_server_replies_are_errors_not_crashes),
        cmocka_unit_test(password_protected_server),
        cmocka_unit_test(fences_survive_kill9_with_appendfsync_always),
        cmocka_unit_test(non_durable_server_warns_or_is_refused),
        cmocka_unit_test(outage_then_recovery),
        cmocka_unit_test(command_timeout_is_network_timeout),
        cmocka_unit_test(list_pages_through_live_locks_only),
        cmocka_unit_test(keys_starting_id_or_fence_are_listed),
        cmocka_unit_test(no_error_after_restart_with_a_full_pool),
        cmocka_unit_test(stalled_connection_fails_within_the_command_timeout),
        cmocka_unit_test(many_threads_never_both_hold),
        cmocka_unit_test(release_publishes_and_subscriptions_follow_the_waiters),
        cmocka_unit_test(subscriber_resubscribes_after_a_restart),
    };
    return cmocka_run_group_tests_name("redis", tests, group_setup, group_teardown);
}
