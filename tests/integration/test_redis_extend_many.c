/* test_redis_extend_many.c — the Redis backend's batched extends (extend_many,
 * what the renewer's batches call) against the real redis-server scripts/test
 * starts (redis_fixture.h): per-lock answers, the stored records a batch
 * writes, and batches over the limit and with a key prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SG_SUITE "test_redis_extend_many"
#include "redis_fixture.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(extend_many_answers_each_lock_as_a_single_extend_would),
        cmocka_unit_test(extend_many_over_a_batch_limit_and_with_a_prefix),
    };
    return cmocka_run_group_tests_name("redis_extend_many", tests, group_setup, group_teardown);
}
