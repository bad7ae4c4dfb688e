/* test_redis.c — the Redis backend against a real redis-server: the lock
 * lifecycle, contention, extends, expiry, fences, the stored layout, reserved
 * keys, lookups, hostile stored data, URLs, listing and many contenders.
 * scripts/test starts the main server (SG_TEST_REDIS_URL / SG_TEST_REDIS_PORT,
 * AOF with appendfsync always; redis_fixture.h). Also: test_redis_extend_many.c,
 * test_redis_servers.c (servers a test starts, kills or stalls), test_redis_wake.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SG_SUITE "test_redis"
#include "redis_fixture.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_lifecycle),
        cmocka_unit_test(contention_reports_locked),
        cmocka_unit_test(release_never_deletes_other_owners_lock),
        cmocka_unit_test(double_release_is_absent),
        cmocka_unit_test(extend_replaces_ttl_and_keeps_unknown_fields),
        cmocka_unit_test(extend_never_resurrects_an_expired_lock),
        cmocka_unit_test(expiry_is_exactly_the_ttl),
        cmocka_unit_test(fences_increase_per_key_and_are_independent),
        cmocka_unit_test(stored_layout_matches_syncguard),
        cmocka_unit_test(reserved_keys_are_rejected_and_counters_survive),
        cmocka_unit_test(lookups_are_sanitized_and_empty_after_expiry),
        cmocka_unit_test(hostile_stored_data_is_an_error_not_a_crash),
        cmocka_unit_test(bad_urls_are_invalid_argument),
        cmocka_unit_test(list_pages_through_live_locks_only),
        cmocka_unit_test(keys_starting_id_or_fence_are_listed),
        cmocka_unit_test(many_threads_never_both_hold),
    };
    return cmocka_run_group_tests_name("redis", tests, group_setup, group_teardown);
}
