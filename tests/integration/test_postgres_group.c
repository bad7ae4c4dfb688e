/* test_postgres_group.c — concurrent lock operations grouped into shared
 * transactions (backends/postgres_group.c), against the real PostgreSQL
 * scripts/test starts (pg_fixture.h): grouping happens, callers on one key
 * still exclude each other with fences in order, and an operation whose
 * statement fails does not fail the others of its group. */
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

#define SG_SUITE "test_postgres_group"
#include "pg_fixture.h"

enum { MAX_CALLERS = 64 };

typedef struct caller {
    int idx, cycles, ok, errors;
    const char *key; /* NULL: a key of its own */
    pthread_barrier_t *start;
    /* one shared key: holders now, order of acquisition, fences by order */
    atomic_int *holders, *seq;
    int max_holders;
    uint64_t *fences;
} caller;

static void *cycle_caller(void *arg)
{
    caller *c = arg;
    char own[48];
    snprintf(own, sizeof own, "group-%d", c->idx);
    const char *key = c->key ? c->key : own;
    pthread_barrier_wait(c->start);
    for (int i = 0; i < c->cycles; i++) {
        sg_lock l;
        sg_error err;
        sg_status st = sg_acquire(B, key, 30000, &l, &err);
        if (st == SG_CONTENDED)
            continue;
        if (st != SG_OK) {
            c->errors++;
            continue;
        }
        if (c->holders) {
            int h = atomic_fetch_add(c->holders, 1) + 1;
            c->max_holders = h > c->max_holders ? h : c->max_holders;
            int s = atomic_fetch_add(c->seq, 1);
            c->fences[s] = strtoull(l.fence, NULL, 10);
            atomic_fetch_sub(c->holders, 1);
        }
        if (sg_release(B, l.lock_id, &err) == SG_OK)
            c->ok++;
        else
            c->errors++;
    }
    return NULL;
}

static void run_callers(caller *c, int n)
{
    pthread_t th[MAX_CALLERS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        c[i].idx = i;
        c[i].start = &start;
        pthread_create(&th[i], NULL, cycle_caller, &c[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
}

/* The next transaction id the server will assign: every transaction that
 * writes takes one, so the difference counts committed or aborted writers. */
static long long next_xid(void)
{
    PGresult *r = sql(Q, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint");
    long long x = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return x;
}

/* 64 callers cycling on keys of their own: every operation succeeds, and
 * the server sees far fewer transactions than operations (one each before
 * grouping: at least 2 560 here). */
static void concurrent_lock_operations_share_transactions(void **state)
{
    (void)state;
    caller c[MAX_CALLERS] = {0};
    for (int i = 0; i < MAX_CALLERS; i++)
        c[i].cycles = 20;
    long long x0 = next_xid();
    run_callers(c, MAX_CALLERS);
    long long xacts = next_xid() - x0;
    int ok = 0, errors = 0;
    for (int i = 0; i < MAX_CALLERS; i++)
        ok += c[i].ok, errors += c[i].errors;
    fprintf(stderr, "postgres: %d acquire+release cycles of 64 callers in %lld transactions\n",
            ok, xacts);
    assert_int_equal(errors, 0);
    assert_int_equal(ok, MAX_CALLERS * 20);
    assert_true(xacts < ok * 2 / 2); /* at most half as many as operations */
}

/* 32 callers on one key, many of their operations in one transaction: never
 * two holders at once, and the fences, in the order the lock was taken,
 * strictly increase. */
static void one_key_in_a_group_still_has_one_holder(void **state)
{
    (void)state;
    enum { N = 32, CYCLES = 30 };
    atomic_int holders = 0, seq = 0;
    uint64_t *fences = calloc(N * CYCLES, sizeof *fences);
    caller c[N] = {0};
    for (int i = 0; i < N; i++)
        c[i] = (caller){.cycles = CYCLES, .key = "group-one-key", .holders = &holders,
                        .seq = &seq, .fences = fences};
    run_callers(c, N);
    int max = 0, errors = 0;
    for (int i = 0; i < N; i++) {
        max = c[i].max_holders > max ? c[i].max_holders : max;
        errors += c[i].errors;
    }
    int taken = atomic_load(&seq);
    fprintf(stderr, "postgres: one key, %d callers: taken %d times, most holders at once %d\n",
            N, taken, max);
    assert_int_equal(errors, 0);
    assert_true(taken > 0);
    assert_int_equal(max, 1);
    for (int i = 1; i < taken; i++)
        assert_true(fences[i] > fences[i - 1]);
    free(fences);
}

/* One key's fence counter at PostgreSQL's bigint maximum: its acquire fails
 * in SQL (bigint out of range), rolling back whatever transaction it is in.
 * Every other caller's operations, grouped with it, still succeed. */
static void a_failing_operation_does_not_fail_its_group(void **state)
{
    (void)state;
    sg_lock l;
    sg_error err;
    assert_int_equal(sg_acquire(B, "group-overflow", 30000, &l, &err), SG_OK);
    assert_int_equal(sg_release(B, l.lock_id, &err), SG_OK);
    PQclear(sql(Q, "UPDATE syncguard_fence_counters SET fence = 9223372036854775807 "
                   "WHERE key_debug = 'group-overflow'"));
    caller c[MAX_CALLERS] = {0};
    for (int i = 0; i < MAX_CALLERS; i++)
        c[i].cycles = 10;
    for (int i = 0; i < 8; i++)
        c[i].key = "group-overflow";
    run_callers(c, MAX_CALLERS);
    int overflow_ok = 0, overflow_errors = 0, others_ok = 0, others_errors = 0;
    for (int i = 0; i < MAX_CALLERS; i++) {
        if (i < 8)
            overflow_ok += c[i].ok, overflow_errors += c[i].errors;
        else
            others_ok += c[i].ok, others_errors += c[i].errors;
    }
    fprintf(stderr, "postgres: overflowing key: %d ok, %d errors; the others: %d ok, %d errors\n",
            overflow_ok, overflow_errors, others_ok, others_errors);
    assert_int_equal(overflow_ok, 0);
    assert_int_equal(overflow_errors, 8 * 10);
    assert_int_equal(others_errors, 0);
    assert_int_equal(others_ok, (MAX_CALLERS - 8) * 10);
    assert_int_equal(sg_acquire(B, "group-overflow", 30000, &l, &err), SG_ERROR);
    sg_lock_info info;
    assert_int_equal(sg_lookup_key(B, "group-overflow", &info, &err), SG_ABSENT);
    PQclear(sql(Q, "DELETE FROM syncguard_fence_counters WHERE key_debug = 'group-overflow'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_lock_operations_share_transactions),
        cmocka_unit_test(one_key_in_a_group_still_has_one_holder),
        cmocka_unit_test(a_failing_operation_does_not_fail_its_group),
    };
    return cmocka_run_group_tests_name("postgres_group", tests, group_setup, group_teardown);
}
