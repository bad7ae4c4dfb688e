/* test_postgres_wake.c — the PostgreSQL backend's wake-ups against the real
 * PostgreSQL scripts/test starts (pg_fixture.h): NOTIFY in the release
 * transaction only when someone waits, one LISTEN connection per handle whose
 * shared advisory locks follow the waiters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#define SG_SUITE "test_postgres_wake"
#include "pg_fixture.h"

/* ---- wake-ups: NOTIFY in the release transaction, one LISTEN connection ---- */
/* Shared advisory locks of the two-int4 space: one per key with a waiter,
 * held by the listener so releases know to notify. */
static int waiter_locks(void)
{
    PGresult *r = sql(Q, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                         "objsubid = 2 AND mode = 'ShareLock' AND granted");
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static int unlisten_sessions(void)
{
    PGresult *r = sql(Q, "SELECT count(*) FROM pg_stat_activity WHERE query = "
                         "'UNLISTEN syncguard_locks_wake'");
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* Notifications on the channel seen by the plain client Q (LISTENing). */
static int q_notifications(void)
{
    msleep(100);
    PQconsumeInput(Q);
    int n = 0;
    PGnotify *x;
    while ((x = PQnotifies(Q))) {
        n++;
        PQfreemem(x);
    }
    return n;
}

static void release_notifies_only_when_waited_for_and_listening_follows(void **state)
{
    (void)state;
    sg_backend *b;
    sg_error err;
    PQclear(sql(Q, "LISTEN syncguard_locks_wake"));
    assert_int_equal(sg_backend_open(url, NULL, &b, &err), SG_OK);
    int locks_before = waiter_locks();
    sg_lock l;
    /* nobody waits: the release does not pay for a NOTIFY */
    assert_int_equal(sg_acquire(B, "wk:none", 10000, &l, &err), SG_OK);
    assert_int_equal(sg_release(B, l.lock_id, &err), SG_OK);
    assert_int_equal(q_notifications(), 0);

    wake_count ca = {PTHREAD_MUTEX_INITIALIZER, 0}, cb = ca;
    sg_watch *wa = sg_watch_key(b, "wk:a", count_wake, &ca);
    sg_watch *wb = sg_watch_key(b, "wk:b", count_wake, &cb);
    assert_true(wait_wakes(&ca, 1, 3000) && wait_wakes(&cb, 1, 3000));
    assert_int_equal(waiter_locks(), locks_before + 2);
    assert_int_equal(sg_acquire(B, "wk:a", 10000, &l, &err), SG_OK);
    assert_int_equal(sg_release(B, l.lock_id, &err), SG_OK);
    assert_true(wait_wakes(&ca, 2, 3000));
    assert_int_equal(q_notifications(), 1);
    assert_int_equal(wakes(&cb), 1); /* the payload names the key */
    assert_int_equal(sg_release(B, l.lock_id, &err), SG_ABSENT);
    assert_int_equal(q_notifications(), 0); /* nothing deleted, nothing announced */
    assert_int_equal(wakes(&ca), 2);

    sg_unwatch(b, wa);
    for (int i = 0; i < 300 && waiter_locks() != locks_before + 1; i++)
        msleep(10);
    assert_int_equal(waiter_locks(), locks_before + 1);
    sg_unwatch(b, wb);
    for (int i = 0; i < 300 && (waiter_locks() != locks_before || !unlisten_sessions()); i++)
        msleep(10);
    assert_int_equal(waiter_locks(), locks_before);
    assert_true(unlisten_sessions() >= 1);
    sg_backend_close(b);
    PQclear(sql(Q, "UNLISTEN *"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(release_notifies_only_when_waited_for_and_listening_follows),
    };
    return cmocka_run_group_tests_name("postgres_wake", tests, group_setup, group_teardown);
}
