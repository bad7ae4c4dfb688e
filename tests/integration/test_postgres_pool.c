/* test_postgres_pool.c — many callers on one PostgreSQL backend (issue 13),
 * against the real PostgreSQL scripts/test starts (pg_fixture.h): every cycle
 * completes on a bounded pool, and a stalled network fails every caller in
 * time and leaks nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SG_SUITE "test_postgres_pool"
#include "pg_fixture.h"

/* ---- many callers on one backend (issue 13) ---- */
typedef struct caller {
    sg_backend *b;
    int idx, cycles, ok, timeouts, other;
    int64_t slowest_ms;
    pthread_barrier_t *start;
} caller;

static void *cycle_caller(void *arg)
{
    caller *c = arg;
    char key[48];
    snprintf(key, sizeof key, "many-callers-%d", c->idx);
    pthread_barrier_wait(c->start);
    for (int i = 0; i < c->cycles; i++) {
        sg_lock l;
        sg_error err;
        int64_t t0 = sg_monotonic_ms();
        sg_status st = sg_acquire(c->b, key, 30000, &l, &err);
        if (st == SG_OK)
            st = sg_release(c->b, l.lock_id, &err);
        int64_t t = sg_monotonic_ms() - t0;
        c->slowest_ms = t > c->slowest_ms ? t : c->slowest_ms;
        if (st == SG_OK)
            c->ok++;
        else if (st == SG_ERROR && err.code == SG_E_NETWORK_TIMEOUT)
            c->timeouts++;
        else
            c->other++;
    }
    return NULL;
}

/* Run n callers of `cycles` acquire+release each on distinct keys; totals into *sum. */
static void run_callers(sg_backend *b, int n, int cycles, caller *sum)
{
    pthread_t th[256];
    caller c[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        c[i] = (caller){.b = b, .idx = i, .cycles = cycles, .start = &start};
        pthread_create(&th[i], NULL, cycle_caller, &c[i]);
    }
    *sum = (caller){0};
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        sum->ok += c[i].ok, sum->timeouts += c[i].timeouts, sum->other += c[i].other;
        sum->slowest_ms = c[i].slowest_ms > sum->slowest_ms ? c[i].slowest_ms : sum->slowest_ms;
    }
    pthread_barrier_destroy(&start);
}

static int server_connections(const char *app)
{
    PGresult *r = sql(Q, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'",
                      app);
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* 64 and 256 callers share the pool: every cycle completes, no errors, and the
 * server never sees more connections than pool_size (callers queue FIFO). */
static void many_callers_all_complete_on_a_bounded_pool(void **state)
{
    (void)state;
    char u[512];
    snprintf(u, sizeof u, "%s%sapplication_name=sg_many&pool_size=4", url,
             strchr(url, '?') ? "&" : "?");
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    caller sum;
    run_callers(b, 64, 20, &sum);
    fprintf(stderr, "postgres: 64 callers x 20 cycles on 4 connections: %d ok, %d errors, "
                    "slowest cycle %lld ms\n", sum.ok, sum.timeouts + sum.other,
            (long long)sum.slowest_ms);
    assert_int_equal(sum.ok, 64 * 20);
    /* never more than the pool's bound (concurrent lock operations share
     * a few grouped transactions: fewer may be enough) */
    int conns = server_connections("sg_many");
    assert_true(conns >= 1 && conns <= 4);
    run_callers(b, 256, 4, &sum);
    assert_int_equal(sum.ok, 256 * 4);
    conns = server_connections("sg_many");
    assert_true(conns >= 1 && conns <= 4);
    sg_backend_close(b);
    for (int i = 0; i < 100 && server_connections("sg_many") > 0; i++)
        msleep(20); /* server processes exit a moment after the client closes */
    assert_int_equal(server_connections("sg_many"), 0);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* A stalled network under 16 callers on 4 connections: every caller fails
 * with NetworkTimeout, bounded by its own command timeout (the queue wait
 * counts against it) plus at most one connect attempt; the timed-out
 * connections are discarded and nothing (descriptor, memory) leaks. */
static void stalled_pool_fails_every_caller_and_leaks_nothing(void **state)
{
    (void)state;
    int fds0 = open_fds();
    int fport = atoi(getenv("SG_TEST_PG_PORT_BASE")) + 4;
    pid_t fwd = stall_start(fport, port);
    char u[256];
    snprintf(u, sizeof u, "postgres://postgres@127.0.0.1:%d/postgres?pool_size=4", fport);
    sg_open_opts o = {.command_timeout_ms = 300, .connect_timeout_ms = 2000};
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_OK);
    caller sum;
    run_callers(b, 16, 1, &sum); /* opens the 4 connections */
    assert_int_equal(sum.ok, 16);
    stall_now(fwd);
    run_callers(b, 16, 1, &sum);
    fprintf(stderr, "postgres stalled, 16 callers on 4 connections: %d NetworkTimeout, %d "
                    "other, slowest %lld ms (command timeout 300 ms, connect timeout 2 s)\n",
            sum.timeouts, sum.ok + sum.other, (long long)sum.slowest_ms);
    assert_int_equal(sum.timeouts, 16);
    /* acquire: 300 ms (+ the core's release of the unknown outcome, 300 ms) or a
     * connect attempt in a freed slot (libpq's 2 s) */
    assert_true(sum.slowest_ms <= 2 * 300 + 2000 + 1000);
    sg_backend_close(b);
    hostile_stop(fwd);
    assert_int_equal(open_fds(), fds0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_callers_all_complete_on_a_bounded_pool),
        cmocka_unit_test(stalled_pool_fails_every_caller_and_leaks_nothing),
    };
    return cmocka_run_group_tests_name("postgres_pool", tests, group_setup, group_teardown);
}
