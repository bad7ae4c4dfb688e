/* test_postgres_extend_many.c — the PostgreSQL backend's batched extends
 * (extend_many, what the renewer's batches call) against the real PostgreSQL
 * scripts/test starts (pg_fixture.h): per-lock answers by the server's clock
 * and tolerance, and batches over shared keys that never deadlock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define SG_SUITE "test_postgres_extend_many"
#include "pg_fixture.h"

static int64_t server_now_ms(void)
{
    PGresult *r = sql(Q, "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint");
    int64_t v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* The renewer's batches: live, expired (by the 1 000 ms tolerance of the
 * server's clock), foreign and released lockIds in one call each get what
 * sg_extend gives them; only expires_at_ms changes, as a single extend. */
static void extend_many_answers_each_lock_as_a_single_extend_would(void **state)
{
    (void)state;
    sg_lock live[3], tolerated, expired, released;
    char key[32], foreign[SG_LOCK_ID_LEN + 1];
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "many:live:%d", i);
        assert_int_equal(sg_acquire(B, key, 60000, &live[i], NULL), SG_OK);
    }
    assert_int_equal(sg_acquire(B, "many:tolerated", 60000, &tolerated, NULL), SG_OK);
    assert_int_equal(sg_acquire(B, "many:expired", 60000, &expired, NULL), SG_OK);
    assert_int_equal(sg_acquire(B, "many:released", 60000, &released, NULL), SG_OK);
    assert_int_equal(sg_release(B, released.lock_id, NULL), SG_OK);
    assert_int_equal(sg_lock_id_generate(foreign, NULL), SG_OK);
    /* expired 500 ms ago: still live by the tolerance; 1 500 ms ago: gone */
    PQclear(sql(Q, "UPDATE syncguard_locks SET expires_at_ms = (extract(epoch from "
                   "clock_timestamp()) * 1000)::bigint - 500 WHERE lock_id = '%s'",
                tolerated.lock_id));
    PQclear(sql(Q, "UPDATE syncguard_locks SET expires_at_ms = (extract(epoch from "
                   "clock_timestamp()) * 1000)::bigint - 1500 WHERE lock_id = '%s'",
                expired.lock_id));
    sg_extend_item it[] = {
        {.lock_id = live[0].lock_id, .ttl_ms = 2000}, /* shorter: replaced, not added */
        {.lock_id = expired.lock_id, .ttl_ms = 60000},
        {.lock_id = foreign, .ttl_ms = 60000},
        {.lock_id = live[1].lock_id, .ttl_ms = 5000},
        {.lock_id = tolerated.lock_id, .ttl_ms = 4000},
        {.lock_id = live[2].lock_id, .ttl_ms = 3000},
        {.lock_id = released.lock_id, .ttl_ms = 5000},
    };
    sg_error err;
    int64_t t0 = server_now_ms();
    assert_int_equal(sg_extend_many(B, it, 7, &err), SG_OK);
    int64_t t1 = server_now_ms();
    const sg_status want[] = {SG_OK, SG_ABSENT, SG_ABSENT, SG_OK, SG_OK, SG_OK, SG_ABSENT};
    const sg_lock *of[] = {&live[0], &expired, NULL, &live[1], &tolerated, &live[2], &released};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(it[i].status, want[i]);
        if (want[i] != SG_OK)
            continue;
        /* the server's clock, read inside the statement: now + ttl */
        assert_true(it[i].expires_at_ms >= t0 + it[i].ttl_ms);
        assert_true(it[i].expires_at_ms <= t1 + it[i].ttl_ms);
        PGresult *r = sql(Q, "SELECT key, expires_at_ms, acquired_at_ms, fence, user_key "
                             "FROM syncguard_locks WHERE lock_id = '%s'", of[i]->lock_id);
        assert_int_equal(PQntuples(r), 1);
        assert_int_equal(atoll(PQgetvalue(r, 0, 1)), it[i].expires_at_ms);
        assert_int_equal(atoll(PQgetvalue(r, 0, 2)), of[i]->acquired_at_ms);
        assert_string_equal(PQgetvalue(r, 0, 3), of[i]->fence);
        assert_string_equal(PQgetvalue(r, 0, 0), of[i]->key);
        assert_string_equal(PQgetvalue(r, 0, 4), of[i]->key);
        PQclear(r);
    }
    /* the expired one was not resurrected, the others not touched */
    PGresult *r = sql(Q, "SELECT expires_at_ms < (extract(epoch from clock_timestamp()) * "
                         "1000)::bigint - 1000 FROM syncguard_locks WHERE lock_id = '%s'",
                      expired.lock_id);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    r = sql(Q, "SELECT count(*) FROM syncguard_locks WHERE lock_id IN ('%s', '%s')", foreign,
            released.lock_id);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    /* a lock extended by a batch is extended by a single extend as before */
    int64_t exp = 0;
    assert_int_equal(sg_extend(B, tolerated.lock_id, 9000, &exp, NULL), SG_OK);
    assert_true(exp > it[4].expires_at_ms);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sg_release(B, live[i].lock_id, NULL), SG_OK);
    assert_int_equal(sg_release(B, tolerated.lock_id, NULL), SG_OK);
    assert_int_equal(sg_release(B, expired.lock_id, NULL), SG_ABSENT);
}

/* Two batches over the same locks in opposite orders, many times over, from
 * two threads: the advisory locks are taken in one order, so neither waits
 * for the other in a cycle (a deadlock would fail a batch). */
typedef struct batch_arg {
    sg_extend_item *it;
    size_t n;
    int failures;
} batch_arg;

static void *batch_loop(void *arg)
{
    batch_arg *a = arg;
    for (int round = 0; round < 30; round++) {
        sg_error err;
        if (sg_extend_many(B, a->it, a->n, &err) != SG_OK)
            a->failures++;
        for (size_t i = 0; i < a->n; i++)
            a->failures += a->it[i].status != SG_OK;
    }
    return NULL;
}

static void extend_many_batches_over_shared_keys_never_deadlock(void **state)
{
    (void)state;
    enum { N = 300 }; /* also over the batch limit: two transactions */
    static sg_lock locks[N];
    static sg_extend_item fwd[N], rev[N];
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "many:order:%d", i);
        assert_int_equal(sg_acquire(B, key, 60000, &locks[i], NULL), SG_OK);
    }
    for (int i = 0; i < N; i++) {
        fwd[i] = (sg_extend_item){.lock_id = locks[i].lock_id, .ttl_ms = 60000};
        rev[i] = (sg_extend_item){.lock_id = locks[N - 1 - i].lock_id, .ttl_ms = 60000};
    }
    batch_arg a = {fwd, N, 0}, b = {rev, N, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, batch_loop, &a);
    pthread_create(&tb, NULL, batch_loop, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.failures + b.failures, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(sg_release(B, locks[i].lock_id, NULL), SG_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(extend_many_answers_each_lock_as_a_single_extend_would),
        cmocka_unit_test(extend_many_batches_over_shared_keys_never_deadlock),
    };
    return cmocka_run_group_tests_name("postgres_extend_many", tests, group_setup, group_teardown);
}
