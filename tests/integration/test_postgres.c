/* test_postgres.c — what is specific to the PostgreSQL backend, against a
 * real PostgreSQL 15 started by scripts/pg-ctl (pg_fixture.h): schema, custom
 * tables, the tolerance, auth, outages, timeouts, TLS, and a SyncGuard-TS-style
 * acquirer (plain SQL doing what the TypeScript library does) on the same
 * tables. Also: test_postgres_extend_many.c, test_postgres_pool.c (many
 * callers on one backend), test_postgres_wake.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SG_SUITE "test_postgres"
#include "pg_fixture.h"

static void expiry_has_one_second_tolerance(void **state)
{
    (void)state;
    sg_lock a, b;
    bool locked = false;
    assert_int_equal(sg_acquire(B, "pg-tol", 100, &a, NULL), SG_OK);
    msleep(400); /* expired, within tolerance: still live */
    assert_int_equal(sg_is_locked(B, "pg-tol", &locked, NULL), SG_OK);
    assert_true(locked);
    assert_int_equal(sg_acquire(B, "pg-tol", 1000, &b, NULL), SG_CONTENDED);
    msleep(900);
    assert_int_equal(sg_is_locked(B, "pg-tol", &locked, NULL), SG_OK);
    assert_false(locked);
    assert_int_equal(sg_acquire(B, "pg-tol", 1000, &b, NULL), SG_OK);
    assert_int_equal(sg_release(B, b.lock_id, NULL), SG_OK);
}

static void layout_matches_syncguard(void **state)
{
    (void)state;
    sg_lock a;
    assert_int_equal(sg_acquire(B, "payment:123", 10000, &a, NULL), SG_OK);
    PGresult *r = sql(Q, "SELECT key, lock_id, expires_at_ms, acquired_at_ms, fence, user_key "
                         "FROM syncguard_locks WHERE lock_id = '%s'", a.lock_id);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "payment:123");
    assert_int_equal(atoll(PQgetvalue(r, 0, 2)), a.expires_at_ms);
    assert_string_equal(PQgetvalue(r, 0, 4), a.fence);
    assert_string_equal(PQgetvalue(r, 0, 5), "payment:123");
    PQclear(r);
    r = sql(Q, "SELECT fence, key_debug FROM syncguard_fence_counters "
               "WHERE fence_key = 'fence:payment:123'");
    assert_int_equal(PQntuples(r), 1);
    assert_int_equal(atoll(PQgetvalue(r, 0, 0)), atoll(a.fence));
    PQclear(r);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    r = sql(Q, "SELECT count(*) FROM syncguard_fence_counters WHERE fence_key = "
               "'fence:payment:123'");
    assert_string_equal(PQgetvalue(r, 0, 0), "1"); /* counters are never deleted */
    PQclear(r);
    r = sql(Q, "SELECT indexname FROM pg_indexes WHERE tablename = 'syncguard_locks' "
               "ORDER BY 1");
    assert_int_equal(PQntuples(r), 3);
    assert_string_equal(PQgetvalue(r, 0, 0), "idx_syncguard_locks_expires");
    assert_string_equal(PQgetvalue(r, 1, 0), "idx_syncguard_locks_lock_id");
    PQclear(r);
}

static void schema_is_idempotent_and_tables_configurable(void **state)
{
    (void)state;
    char u[256];
    snprintf(u, sizeof u, "%s?sslmode=disable&table=custom_locks&fence_table=custom_fences", url);
    sg_backend *b1, *b2;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b1, &err), SG_OK);
    assert_int_equal(sg_backend_open(u, NULL, &b2, &err), SG_OK); /* again: no error */
    sg_lock a;
    assert_int_equal(sg_acquire(b1, "c", 10000, &a, &err), SG_OK);
    assert_int_equal(sg_acquire(b2, "c", 10000, NULL, &err), SG_CONTENDED);
    bool locked = true;
    assert_int_equal(sg_is_locked(B, "c", &locked, &err), SG_OK); /* other tables */
    assert_false(locked);
    assert_int_equal(sg_release(b2, a.lock_id, &err), SG_OK);
    PGresult *r = sql(Q, "SELECT indexname FROM pg_indexes WHERE tablename = 'custom_locks' "
                         "AND indexname LIKE 'idx%%' ORDER BY 1");
    assert_int_equal(PQntuples(r), 2);
    assert_string_equal(PQgetvalue(r, 0, 0), "idx_custom_locks_expires");
    assert_string_equal(PQgetvalue(r, 1, 0), "idx_custom_locks_lock_id");
    PQclear(r);
    sg_backend_close(b1);
    sg_backend_close(b2);
    const char *bad[] = {"?table=Bad", "?table=x;drop", "?table=a&fence_table=a",
                         "?fence_table=", "?table=a%20b", "?command_timeout_ms=0",
                         "?table=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(u, sizeof u, "%s%s", url, bad[i]);
        sg_backend *b = NULL;
        assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
        if (err.code != SG_E_INVALID_ARGUMENT)
            fail_msg("%s: %s", bad[i], err.message);
    }
    snprintf(u, sizeof u, "%s?bogus_libpq_param=1", url); /* libpq's own verdict */
    sg_backend *b = NULL;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
}

static void wrong_password_is_auth_failed(void **state)
{
    (void)state;
    char u[256];
    sg_backend *b = NULL;
    sg_error err;
    snprintf(u, sizeof u, "postgres://sgpass:wrong@127.0.0.1:%d/postgres", port);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    assert_null(strstr(err.message, "wrong"));
    snprintf(u, sizeof u, "postgres://sgpass:pgsecret@127.0.0.1:%d/postgres?table=pw_locks"
                          "&fence_table=pw_fences", port);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "pw", 1000, &a, &err), SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    /* the password from options (e.g. a password file) */
    snprintf(u, sizeof u, "postgres://sgpass@127.0.0.1:%d/postgres?table=pw_locks"
                          "&fence_table=pw_fences", port);
    sg_open_opts o = {.password = "pgsecret"};
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_OK);
    sg_backend_close(b);
}

static void missing_tables_without_create_right_are_named(void **state)
{
    (void)state;
    char u[256];
    snprintf(u, sizeof u, "postgres://sgnocreate@127.0.0.1:%d/postgres?table=nc_locks"
                          "&fence_table=nc_fences", port);
    sg_backend *b = NULL;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    assert_non_null(strstr(err.message, "nc_locks"));
    assert_null(b);
}

static void hostile_rows_are_errors_not_crashes(void **state)
{
    (void)state;
    PQclear(sql(Q, "INSERT INTO syncguard_locks VALUES ('hostile', 'not-a-lock-id', %lld, 1, "
                   "'abc', 'hostile') ON CONFLICT (key) DO NOTHING",
                (long long)sg_now_ms() + 60000));
    sg_lock_info info;
    sg_error err;
    assert_int_equal(sg_lookup_key(B, "hostile", &info, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INTERNAL);
    assert_int_equal(sg_acquire(B, "hostile", 1000, NULL, &err), SG_CONTENDED);
    PQclear(sql(Q, "DELETE FROM syncguard_locks WHERE key = 'hostile'"));
}

/* A SyncGuard-TS-style acquire, statement by statement as the TypeScript
 * library sends them, holding its transaction open for hold_ms before COMMIT. */
typedef struct ts_acquire {
    const char *key;
    int hold_ms;
    bool acquired;
    pthread_barrier_t *inside;
} ts_acquire;

static void *ts_acquirer(void *arg)
{
    ts_acquire *t = arg;
    PGconn *c = PQconnectdb(url);
    PQclear(sql(c, "BEGIN"));
    PQclear(sql(c, "SELECT pg_advisory_xact_lock(hashtext('%s'))", t->key));
    PGresult *r = sql(c, "SELECT (EXTRACT(EPOCH FROM NOW()) * 1000)::bigint");
    long long now = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    r = sql(c, "SELECT expires_at_ms FROM syncguard_locks WHERE key = '%s'", t->key);
    bool live = PQntuples(r) == 1 && atoll(PQgetvalue(r, 0, 0)) > now - 1000;
    PQclear(r);
    if (!live) {
        PQclear(sql(c, "INSERT INTO syncguard_fence_counters (fence_key, fence, key_debug) "
                       "VALUES ('fence:%s', 0, '%s') ON CONFLICT (fence_key) DO NOTHING",
                    t->key, t->key));
        r = sql(c, "UPDATE syncguard_fence_counters SET fence = fence + 1 "
                   "WHERE fence_key = 'fence:%s' RETURNING fence", t->key);
        long long fence = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
        PQclear(sql(c, "INSERT INTO syncguard_locks (key, lock_id, expires_at_ms, "
                       "acquired_at_ms, fence, user_key) VALUES ('%s', 'TSTSTSTSTSTSTSTSTSTSTS', "
                       "%lld, %lld, lpad('%lld', 15, '0'), '%s') ON CONFLICT (key) DO UPDATE SET "
                       "lock_id = EXCLUDED.lock_id, expires_at_ms = EXCLUDED.expires_at_ms, "
                       "acquired_at_ms = EXCLUDED.acquired_at_ms, fence = EXCLUDED.fence, "
                       "user_key = EXCLUDED.user_key",
                    t->key, now + 30000, now, fence, t->key));
    }
    if (t->inside)
        pthread_barrier_wait(t->inside);
    msleep(t->hold_ms);
    PQclear(sql(c, "COMMIT"));
    PQfinish(c);
    t->acquired = !live;
    return NULL;
}

/* Start a TS-style acquirer in a thread; returns once it holds the advisory
 * lock with its row written (not yet committed). */
static pthread_t ts_start(ts_acquire *t, pthread_barrier_t *inside)
{
    pthread_barrier_init(inside, NULL, 2);
    t->inside = inside;
    pthread_t th;
    pthread_create(&th, NULL, ts_acquirer, t);
    pthread_barrier_wait(inside);
    return th;
}

static void ts_style_acquirer_and_this_backend_exclude_each_other(void **state)
{
    (void)state;
    /* TS holds the advisory lock with its row written but not committed: our
     * acquire waits for it, then must see the committed row → contended. */
    pthread_barrier_t inside;
    ts_acquire t = {.key = "ts-mixed", .hold_ms = 300};
    pthread_t th = ts_start(&t, &inside);
    sg_error err;
    assert_int_equal(sg_acquire(B, "ts-mixed", 10000, NULL, &err), SG_CONTENDED);
    pthread_join(th, NULL);
    assert_true(t.acquired);
    PQclear(sql(Q, "DELETE FROM syncguard_locks WHERE key = 'ts-mixed'"));
    /* ours held → the TS-style acquirer sees a live row and does not write */
    sg_lock a;
    assert_int_equal(sg_acquire(B, "ts-mixed", 10000, &a, &err), SG_OK);
    ts_acquire t2 = {.key = "ts-mixed", .hold_ms = 0};
    ts_acquirer(&t2);
    assert_false(t2.acquired);
    sg_lock_info info;
    assert_int_equal(sg_lookup_key_raw(B, "ts-mixed", &info, &err), SG_OK);
    assert_string_equal(info.lock_id, a.lock_id);
    /* and fences from both sides share one counter */
    assert_int_equal(sg_release(B, a.lock_id, &err), SG_OK);
    ts_acquire t3 = {.key = "ts-mixed", .hold_ms = 0};
    ts_acquirer(&t3);
    assert_true(t3.acquired);
    PGresult *r = sql(Q, "SELECT fence FROM syncguard_locks WHERE key = 'ts-mixed'");
    assert_true(strcmp(PQgetvalue(r, 0, 0), a.fence) > 0);
    PQclear(r);
    PQclear(sql(Q, "DELETE FROM syncguard_locks WHERE key = 'ts-mixed'"));
}

static void statement_timeout_is_network_timeout_without_a_ghost(void **state)
{
    (void)state;
    char u[256];
    snprintf(u, sizeof u, "%s?command_timeout_ms=300", url);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    pthread_barrier_t inside;
    ts_acquire t = {.key = "pg-slow", .hold_ms = 1500};
    pthread_t th = ts_start(&t, &inside);
    assert_int_equal(sg_acquire(b, "pg-slow", 10000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_NETWORK_TIMEOUT);
    /* unknown_outcome depends on which side timed out first (the client's
     * deadline, or the server's statement_timeout, which aborts the
     * transaction: a known outcome); either way no ghost may remain */
    pthread_join(th, NULL);
    /* the cancelled transaction left nothing of ours behind */
    PGresult *r = sql(Q, "SELECT lock_id FROM syncguard_locks WHERE key = 'pg-slow'");
    assert_string_equal(PQgetvalue(r, 0, 0), "TSTSTSTSTSTSTSTSTSTSTS");
    PQclear(r);
    PQclear(sql(Q, "DELETE FROM syncguard_locks WHERE key = 'pg-slow'"));
    sg_lock a;
    assert_int_equal(sg_acquire(b, "pg-slow", 10000, &a, &err), SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
}

/* A lock operation's statements are one transaction: the advisory lock its
 * first statement takes is still held while its write runs, and goes with
 * the commit. Checked by blocking the write on a row lock another session
 * holds and asking, meanwhile, for the key's advisory lock. */
typedef struct span_op {
    const char *key;
    const char *lock_id; /* release this one; NULL: acquire key */
    sg_status st;
} span_op;

static void *span_run(void *arg)
{
    span_op *o = arg;
    sg_lock l;
    o->st = o->lock_id ? sg_release(B, o->lock_id, NULL) : sg_acquire(B, o->key, 10000, &l, NULL);
    if (!o->lock_id && o->st == SG_OK)
        sg_release(B, l.lock_id, NULL);
    return NULL;
}

static bool advisory_free(const char *key)
{
    PQclear(sql(Q, "BEGIN"));
    PGresult *r = sql(Q, "SELECT pg_try_advisory_xact_lock(hashtext('%s'))", key);
    bool free = !strcmp(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    PQclear(sql(Q, "ROLLBACK"));
    return free;
}

static void span_check(const char *key, const char *row_lock_sql, const char *lock_id)
{
    PGconn *h = PQconnectdb(url);
    assert_int_equal(PQstatus(h), CONNECTION_OK);
    PQclear(sql(h, "BEGIN"));
    PGresult *r = sql(h, "%s", row_lock_sql);
    assert_int_equal(PQntuples(r), 1);
    PQclear(r);
    span_op o = {.key = key, .lock_id = lock_id, .st = SG_ERROR};
    pthread_t th;
    pthread_create(&th, NULL, span_run, &o);
    bool waiting = false; /* our write waits for h's row lock */
    for (int i = 0; i < 500 && !waiting; i++) {
        r = sql(Q, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND pid <> %d AND pid <> pg_backend_pid()", PQbackendPID(h));
        waiting = atoi(PQgetvalue(r, 0, 0)) > 0;
        PQclear(r);
        if (!waiting)
            msleep(10);
    }
    assert_true(waiting);
    assert_false(advisory_free(key)); /* still held by the blocked operation */
    PQclear(sql(h, "COMMIT"));
    PQfinish(h);
    pthread_join(th, NULL);
    assert_int_equal(o.st, SG_OK);
    assert_true(advisory_free(key)); /* released with the commit */
}

static void lock_op_holds_its_advisory_lock_until_commit(void **state)
{
    (void)state;
    sg_lock a;
    /* release: its DELETE waits on the lock row */
    assert_int_equal(sg_acquire(B, "pg-span", 10000, &a, NULL), SG_OK);
    span_check("pg-span", "SELECT 1 FROM syncguard_locks WHERE key = 'pg-span' FOR UPDATE",
               a.lock_id);
    /* acquire: its fence upsert waits on the fence row (made by the first acquire) */
    span_check("pg-span",
               "SELECT 1 FROM syncguard_fence_counters WHERE key_debug = 'pg-span' FOR UPDATE",
               NULL);
    sg_lock_info info;
    assert_int_equal(sg_lookup_key_raw(B, "pg-span", &info, NULL), SG_ABSENT);
}

static void outage_recovery_and_fences_across_restart(void **state)
{
    (void)state;
    int p = atoi(getenv("SG_TEST_PG_PORT_BASE"));
    ctl("start restart %d", p);
    char u[256];
    snprintf(u, sizeof u, "postgres://postgres@127.0.0.1:%d/postgres", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    check_fences_survive_kill9(b, "SG_PG_CTL", "restart");
    sg_backend_close(b);
    ctl("stop restart");
}

/* Issue 9 item 4: a server restart (fast shutdown, kill -9) or
 * pg_terminate_backend kills every pooled connection; none of that reaches
 * a caller once pg_isready answers again. */
static void no_error_after_restart_or_terminate_with_a_full_pool(void **state)
{
    (void)state;
    int p = atoi(getenv("SG_TEST_PG_PORT_BASE")) + 2;
    ctl("start restarted %d", p);
    char u[256];
    snprintf(u, sizeof u, "postgres://postgres@127.0.0.1:%d/postgres", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    int errors = 0, ops = 0;
    const char *how[2] = {"stop", "kill9"};
    for (int k = 0; k < 2; k++) {
        fill_pool(b);
        ctl("%s restarted", how[k]);
        ctl("restart restarted"); /* pg_ctl -w: returns once it accepts connections */
        errors += count_errors(b, how[k], 50);
        ops += 50 * 6;
    }
    fill_pool(b);
    PGconn *q = PQconnectdb(u);
    assert_int_equal(PQstatus(q), CONNECTION_OK);
    PGresult *r = PQexec(q, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_true(atoi(PQgetvalue(r, 0, 0)) > 1);
    PQclear(r);
    PQfinish(q);
    errors += count_errors(b, "terminate", 50);
    ops += 50 * 6;
    fprintf(stderr, "postgres: %d operations after 2 restarts and a pg_terminate_backend with "
                    "a full pool: %d errors\n", ops, errors);
    assert_int_equal(errors, 0);
    sg_backend_close(b);
    ctl("stop restarted");
}

/* SPEC section 4: a stalled connection (packets dropped, no FIN or RST)
 * bounds every call by command_timeout_ms, without PQcancel (which would
 * hang on the same stalled network). */
static void stalled_connection_fails_within_the_command_timeout(void **state)
{
    (void)state;
    int fport = atoi(getenv("SG_TEST_PG_PORT_BASE")) + 3;
    pid_t fwd = stall_start(fport, atoi(getenv("SG_TEST_PG_PORT")));
    char u[256];
    snprintf(u, sizeof u, "postgres://postgres@127.0.0.1:%d/postgres", fport);
    sg_open_opts o = {.command_timeout_ms = 300};
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_OK);
    int64_t worst = check_stalled_calls(b, fwd, "postgres", 300);
    fprintf(stderr, "postgres: slowest stalled call %lld ms (command timeout 300 ms)\n",
            (long long)worst);
    hostile_stop(fwd);
    sg_backend_close(b);
}

/* TLS through libpq: sslmode=verify-full with the test CA works; another CA,
 * a name the certificate does not carry, and sslmode=require against a server
 * without TLS are refused as AuthFailed with a clear message. */
static void tls_verify_full_and_refusals(void **state)
{
    (void)state;
    const char *tls = getenv("SG_TEST_TLS_DIR");
    assert_non_null(tls);
    int p = atoi(getenv("SG_TEST_PG_PORT_BASE")) + 5;
    ctl("start tls %d tls %s/server.crt %s/server.key", p, tls, tls);
    char u[512];
    sg_backend *b;
    sg_error err;
    snprintf(u, sizeof u,
             "postgres://postgres@localhost:%d/postgres?sslmode=verify-full&sslrootcert=%s/ca.crt",
             p, tls);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "pg-tls", 5000, &a, &err), SG_OK);
    int64_t exp;
    assert_int_equal(sg_extend(b, a.lock_id, 10000, &exp, &err), SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    const char *bad[][2] = {
        {"localhost", "other-ca.crt"}, /* wrong CA */
        {"127.0.0.2", "ca.crt"},       /* a name the certificate does not carry */
    };
    for (int i = 0; i < 2; i++) {
        snprintf(u, sizeof u,
                 "postgres://postgres@%s:%d/postgres?sslmode=verify-full&sslrootcert=%s/%s&"
                 "hostaddr=127.0.0.1",
                 bad[i][0], p, tls, bad[i][1]);
        b = NULL;
        sg_status st = sg_backend_open(u, NULL, &b, &err);
        if (st == SG_OK) /* the backend may connect lazily */
            st = sg_acquire(b, "pg-tls", 5000, &a, &err);
        fprintf(stderr, "postgres TLS %s/%s: %s: %s (%s)\n", bad[i][0], bad[i][1],
                sg_code_name(err.code), err.message, err.cause);
        assert_int_equal(st, SG_ERROR);
        assert_int_equal(err.code, SG_E_AUTH_FAILED);
        sg_backend_close(b);
    }
    ctl("stop tls");
    /* the main server has no TLS */
    snprintf(u, sizeof u, "postgres://postgres@127.0.0.1:%s/postgres?sslmode=require",
             getenv("SG_TEST_PG_PORT"));
    b = NULL;
    sg_status st = sg_backend_open(u, NULL, &b, &err);
    if (st == SG_OK)
        st = sg_acquire(b, "pg-tls", 5000, &a, &err);
    fprintf(stderr, "postgres sslmode=require without TLS: %s: %s (%s)\n",
            sg_code_name(err.code), err.message, err.cause);
    assert_int_equal(st, SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    sg_backend_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(expiry_has_one_second_tolerance),
        cmocka_unit_test(layout_matches_syncguard),
        cmocka_unit_test(schema_is_idempotent_and_tables_configurable),
        cmocka_unit_test(wrong_password_is_auth_failed),
        cmocka_unit_test(missing_tables_without_create_right_are_named),
        cmocka_unit_test(hostile_rows_are_errors_not_crashes),
        cmocka_unit_test(ts_style_acquirer_and_this_backend_exclude_each_other),
        cmocka_unit_test(statement_timeout_is_network_timeout_without_a_ghost),
        cmocka_unit_test(lock_op_holds_its_advisory_lock_until_commit),
        cmocka_unit_test(outage_recovery_and_fences_across_restart),
        cmocka_unit_test(no_error_after_restart_or_terminate_with_a_full_pool),
        cmocka_unit_test(stalled_connection_fails_within_the_command_timeout),
        cmocka_unit_test(tls_verify_full_and_refusals),
    };
    return cmocka_run_group_tests_name("postgres", tests, group_setup, group_teardown);
}
