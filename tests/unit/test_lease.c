/* test_lease.c — the lease rule and the renewer: arithmetic, renewals,
 * retries, loss on SG_ABSENT and at the deadline while calls hang, removal,
 * user extends, late results, and the heartbeat built on it. Driven by the
 * scripted in-process backend of fake_backend.h; the batched renewals
 * (extend_many) are in test_renewer_batch.c. Times are CLOCK_MONOTONIC ms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>

#include "fake_backend.h"

/* ---- arithmetic ---- */
static void lease_arithmetic_follows_the_rule(void **state)
{
    (void)state;
    assert_int_equal(sg_lease_margin_ms(1000), 100);
    assert_int_equal(sg_lease_margin_ms(30000), 2000);
    assert_int_equal(sg_lease_margin_ms(SG_TTL_MAX_MS), 2000);
    assert_int_equal(sg_lease_margin_ms(5), 0);
    assert_int_equal(sg_lease_deadline_ms(1000, 30000), 1000 + 30000 - 2000);
    assert_int_equal(sg_lease_deadline_ms(50, 1000), 50 + 1000 - 100);

    assert_int_equal(sg_lease_renew_after_ms(30000, 0.0), 9000);
    assert_int_equal(sg_lease_renew_after_ms(30000, 0.5), 10000);
    assert_int_equal(sg_lease_renew_after_ms(30000, 2.0), 9000);  /* r out of range → 0 */
    assert_int_equal(sg_lease_renew_after_ms(30, 0.5), 15);       /* tiny TTL: at most ttl/2 */
    assert_int_equal(sg_lease_renew_after_ms(1, 0.5), 1);

    srand(11);
    const int64_t ttls[] = {1, 100, 250, 300, 1000, 1234, 30000, 86400000, SG_TTL_MAX_MS};
    for (size_t t = 0; t < sizeof ttls / sizeof ttls[0]; t++) {
        int64_t ttl = ttls[t];
        for (int i = 0; i < 2000; i++) {
            double r = rand() / ((double)RAND_MAX + 1);
            int64_t v = sg_lease_renew_after_ms(ttl, r);
            int64_t half = ttl / 2 > 1 ? ttl / 2 : 1;
            assert_true(v >= 1 && v <= half);
            if (half >= 100)
                assert_true(v >= 100);
            if ((double)ttl / 3 * 0.9 >= 100) { /* the ±10 % window around ttl/3 */
                assert_true(v >= (int64_t)((double)ttl / 3 * 0.9));
                assert_true(v <= (int64_t)((double)ttl / 3 * 1.1));
            }
            /* a renewal is always due before the deadline */
            if (ttl >= 3)
                assert_true(v < ttl - sg_lease_margin_ms(ttl));

            int64_t now = rand() % 100000, deadline = now - 500 + rand() % 3000;
            int64_t d = sg_lease_retry_after_ms(ttl, now, deadline, r);
            int64_t base = ttl / 10 < 100 ? 100 : ttl / 10 > 1000 ? 1000 : ttl / 10;
            assert_true(d >= 0);
            assert_true(now + d <= deadline || d == 0);
            assert_true(d <= base);
            if (deadline - now >= base)
                assert_true(d >= base / 2);
        }
    }
    assert_int_equal(sg_lease_retry_after_ms(1000, 500, 400, 0.5), 0); /* past: now */
    assert_int_equal(sg_lease_retry_after_ms(1000, 500, 520, 0.5), 20); /* capped */
    assert_int_equal(sg_lease_retry_after_ms(30000, 0, 100000, 0.0), 500);
    assert_int_equal(sg_lease_retry_after_ms(30000, 0, 100000, 0.999999), 999);
}

/* ---- renewals ---- */
static void renewals_happen_about_every_third_of_the_ttl(void **state)
{
    (void)state;
    sg_renewer *r = start(0);
    int64_t t0 = sg_monotonic_ms();
    uint64_t lease = add(r, 1, 600, t0);
    assert_int_equal(sg_renewer_deadline(r, lease), t0 + 540);
    assert_true(wait_extends(1, 4, 5000));
    uint64_t renewed = 0, failed, lost;
    for (int i = 0; i < 1000 && renewed < 4; i++) { /* the 4th result applied */
        sg_renewer_stats(r, &renewed, &failed, &lost);
        sleep_ms(1);
    }
    snap();
    const entry *e = snap_entry("L000000000000000000001");
    int64_t prev = t0;
    for (int i = 0; i < 4; i++) {
        int64_t gap = e->extend_ms[i] - prev;
        /* 600/3 ± 10 % = 180..220; generous for a loaded machine */
        assert_between(gap, 170, 400);
        assert_int_equal(e->ttl[i], 600);
        prev = e->extend_ms[i];
    }
    assert_true(sg_renewer_deadline(r, lease) >= prev + 540 - 5);
    sg_renewer_stats(r, &renewed, &failed, &lost);
    assert_true(renewed >= 4);
    assert_int_equal(failed, 0);
    assert_int_equal(lost, 0);
    assert_int_equal(n_lost(), 0);
    assert_true(sg_renewer_remove(r, lease));
    assert_false(sg_renewer_remove(r, lease));
    assert_int_equal(sg_renewer_deadline(r, lease), 0);
    assert_true(sg_renewer_stop_wait(r, -1));
}

static void transient_failure_is_retried_and_the_lease_survives(void **state)
{
    (void)state;
    script(2, M_OK, 2, SG_OK); /* two failed extends, then fine */
    sg_renewer *r = start(0);
    int64_t t0 = sg_monotonic_ms();
    uint64_t lease = add(r, 2, 1000, t0); /* renew ~333, deadline 900 */
    assert_true(wait_extends(2, 3, 5000));
    uint64_t renewed = 0, failed, lost;
    for (int i = 0; i < 500 && renewed == 0; i++) {
        sg_renewer_stats(r, &renewed, &failed, &lost);
        sleep_ms(1);
    }
    assert_int_equal(renewed, 1);
    assert_int_equal(failed, 2);
    assert_int_equal(lost, 0);
    snap();
    const entry *e = snap_entry("L000000000000000000002");
    /* retries come after clamp(ttl/10,100,1000)/2 .. that: 50..100 ms */
    for (int i = 1; i < 3; i++) {
        int64_t gap = e->extend_ms[i] - e->returned_ms[i - 1];
        assert_between(gap, 45, 300);
    }
    int64_t third = e->extend_ms[2];
    assert_true(sg_renewer_deadline(r, lease) >= third + 900 - 5);
    assert_true(wait_extends(2, 5, 5000)); /* renewing as usual again */
    assert_int_equal(n_lost(), 0);
    sg_renewer_stop(r);
}

static void absent_means_lost_once(void **state)
{
    (void)state;
    script(3, M_ABSENT, 0, SG_OK);
    sg_renewer *r = start(0);
    uint64_t lease = add(r, 3, 300, sg_monotonic_ms());
    assert_true(wait_lost(1, 5000));
    sleep_ms(400); /* past the TTL: nothing more */
    assert_int_equal(n_lost(), 1);
    assert_int_equal(extends_of(3), 1);
    snap();
    assert_int_equal(S.lost[0].lease, lease);
    assert_string_equal(S.lost[0].lock_id, "L000000000000000000003");
    assert_int_equal(S.lost[0].code, SG_E_INTERNAL);
    assert_string_equal(S.lost[0].message, "lock expired or was released elsewhere");
    uint64_t lost;
    sg_renewer_stats(r, NULL, NULL, &lost);
    assert_int_equal(lost, 1);
    assert_int_equal(sg_renewer_deadline(r, lease), 0);
    assert_false(sg_renewer_remove(r, lease));
    sg_renewer_stop(r);
}

static void hung_extend_is_lost_at_the_deadline_before_it_returns(void **state)
{
    (void)state;
    script(4, M_HANG, 0, SG_ERROR);
    sg_renewer *r = start(0);
    int64_t t0 = sg_monotonic_ms();
    uint64_t lease = add(r, 4, 600, t0);
    int64_t deadline = sg_renewer_deadline(r, lease);
    assert_int_equal(deadline, t0 + 540);
    assert_true(wait_lost(1, 5000));
    snap();
    assert_between(S.lost[0].at_ms, deadline, deadline + LATE_MS);
    assert_int_equal(S.lost[0].hung_then, 1); /* the extend had not returned */
    assert_int_equal(S.lost[0].code, SG_E_NETWORK_TIMEOUT);
    assert_non_null(strstr(S.lost[0].message, "renewal deadline passed"));
    assert_string_equal(S.lost[0].cause, "an extend was still in flight");
    let_go(); /* returns an error: nothing to release */
    sg_renewer_stop_wait(r, -1);
    snap();
    assert_int_equal(snap_entry("L000000000000000000004")->releases, 0);
    assert_int_equal(n_lost(), 1);
}

static void failing_extends_are_lost_at_the_deadline_with_the_last_error(void **state)
{
    (void)state;
    script(5, M_FAIL, 0, SG_OK);
    sg_renewer *r = start(0);
    int64_t t0 = sg_monotonic_ms();
    uint64_t lease = add(r, 5, 1000, t0);
    assert_true(wait_lost(1, 5000));
    snap();
    assert_between(S.lost[0].at_ms, t0 + 900, t0 + 900 + LATE_MS);
    assert_int_equal(S.lost[0].lease, lease);
    assert_non_null(strstr(S.lost[0].cause, "connection reset"));
    /* renewal at ~333, then retries every 50..100 ms until the deadline */
    int n = snap_entry("L000000000000000000005")->extends;
    assert_true(n >= 4 && n <= 13);
    sg_renewer_stop(r);
}

static void hung_extend_does_not_delay_another_lease(void **state)
{
    (void)state;
    script(6, M_HANG, 0, SG_ERROR);
    sg_renewer *r = start(2);
    int64_t t0 = sg_monotonic_ms();
    add(r, 6, 600, t0);
    add(r, 7, 600, t0 + 20);
    assert_true(wait_hung(1, 2000));
    assert_true(wait_extends(7, 3, 2000)); /* ~200, ~400, ~600 after t0: despite the hang */
    assert_true(wait_lost(1, 2000));
    snap();
    assert_string_equal(S.lost[0].lock_id, "L000000000000000000006");
    assert_between(S.lost[0].at_ms, t0 + 540, t0 + 540 + LATE_MS);
    assert_true(wait_extends(7, 5, 2000));
    assert_int_equal(n_lost(), 1);
    let_go();
    sg_renewer_stop(r);
}

static void deadlines_fire_on_time_when_every_worker_hangs(void **state)
{
    (void)state;
    script(8, M_HANG, 0, SG_ERROR);
    script(9, M_HANG, 0, SG_ERROR);
    sg_renewer *r = start(2);
    int64_t t0 = sg_monotonic_ms();
    add(r, 8, 600, t0);
    add(r, 9, 600, t0);
    add(r, 10, 600, t0 + 100); /* fine, but no worker is free: the documented limit */
    assert_true(wait_hung(2, 2000));
    assert_true(wait_lost(3, 3000));
    snap();
    for (int i = 0; i < 3; i++) {
        int64_t deadline = t0 + 540 + (!strcmp(S.lost[i].lock_id, "L000000000000000000010") ? 100 : 0);
        assert_between(S.lost[i].at_ms, deadline, deadline + LATE_MS);
        assert_int_equal(S.lost[i].hung_then, 2);
    }
    assert_int_equal(snap_entry("L000000000000000000010")->extends, 0);
    let_go();
    sg_renewer_stop(r);
}

static void remove_during_an_extend_ignores_its_result(void **state)
{
    (void)state;
    script(11, M_HANG, 0, SG_ABSENT);
    script(12, M_HANG, 0, SG_OK);
    sg_renewer *r = start(0);
    int64_t t0 = sg_monotonic_ms();
    uint64_t a = add(r, 11, 1000, t0), b = add(r, 12, 1000, t0);
    assert_true(wait_hung(2, 2000));
    int64_t before = sg_monotonic_ms();
    assert_true(sg_renewer_remove(r, a));
    assert_true(sg_renewer_remove(r, b));
    assert_true(sg_monotonic_ms() - before < 50); /* never waits for the call */
    let_go();
    sleep_ms(1100); /* past both deadlines */
    assert_int_equal(n_lost(), 0);
    snap();
    assert_int_equal(snap_entry("L000000000000000000012")->releases, 0); /* the caller's lock */
    uint64_t renewed, lost;
    sg_renewer_stats(r, &renewed, NULL, &lost);
    assert_int_equal(renewed, 0);
    assert_int_equal(lost, 0);
    sg_renewer_stop(r);
}

static void late_success_after_a_deadline_loss_releases_the_lock(void **state)
{
    (void)state;
    script(13, M_HANG, 0, SG_OK);
    sg_renewer *r = start(0);
    uint64_t lease = add(r, 13, 300, sg_monotonic_ms());
    assert_true(wait_lost(1, 2000));
    assert_int_equal(sg_renewer_deadline(r, lease), 0);
    let_go(); /* the extend succeeds after all: the lock exists again */
    assert_true(wait_releases(13, 1, 2000));
    uint64_t renewed;
    sg_renewer_stats(r, &renewed, NULL, NULL);
    assert_int_equal(renewed, 0); /* a late success does not count */
    assert_int_equal(n_lost(), 1);
    sg_renewer_stop_wait(r, -1);
}

typedef struct user_extend {
    sg_renewer *r;
    uint64_t lease;
    int64_t ttl, called_ms, returned_ms, expires;
    sg_status st;
    sg_error err;
} user_extend;

static void *do_user_extend(void *arg)
{
    user_extend *u = arg;
    u->called_ms = sg_monotonic_ms();
    u->st = sg_renewer_extend(u->r, u->lease, u->ttl, &u->expires, &u->err);
    u->returned_ms = sg_monotonic_ms();
    return NULL;
}

static void user_extend_waits_for_the_extend_in_flight_and_moves_the_deadline(void **state)
{
    (void)state;
    script(14, M_HANG, 0, SG_OK);
    sg_renewer *r = start(0);
    int64_t t0 = sg_monotonic_ms();
    uint64_t lease = add(r, 14, 1000, t0); /* renewal hangs at ~333, deadline 900 */
    assert_true(wait_hung(1, 2000));
    script(14, M_OK, 0, SG_OK);
    user_extend u = {.r = r, .lease = lease, .ttl = 5000};
    pthread_t t;
    pthread_create(&t, NULL, do_user_extend, &u);
    sleep_ms(100);
    assert_int_equal(extends_of(14), 1); /* still waiting behind the hung one */
    let_go();
    pthread_join(t, NULL);
    assert_int_equal(u.st, SG_OK);
    assert_true(u.expires > sg_now_ms() + 4000);
    snap();
    const entry *e = snap_entry("L000000000000000000014");
    assert_int_equal(e->extends, 2);
    assert_int_equal(e->ttl[1], 5000);
    assert_true(e->extend_ms[1] >= e->returned_ms[0]); /* one operation at a time */
    int64_t sent = e->extend_ms[1];
    int64_t d = sg_renewer_deadline(r, lease);
    assert_true(d >= sent + 4500 - 5 && d <= sent + 4500 + 5);
    /* the new TTL is the renewal TTL: next renewal ~5000/3 later, with 5000 */
    assert_true(wait_extends(14, 3, 4000));
    snap();
    assert_int_equal(e->ttl[2], 5000);
    assert_true(e->extend_ms[2] - sent >= 1400);

    /* an error leaves the lease as it was; absent loses it */
    script(14, M_FAIL, 0, SG_OK);
    sg_error err;
    /* this one also waits out (and applies) a renewal that began before */
    assert_int_equal(sg_renewer_extend(r, lease, 2000, NULL, &err), SG_ERROR);
    int64_t before = sg_renewer_deadline(r, lease);
    assert_int_equal(sg_renewer_extend(r, lease, 2000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE);
    assert_int_equal(sg_renewer_deadline(r, lease), before);
    assert_int_equal(sg_renewer_extend(r, lease, 0, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    script(14, M_ABSENT, 0, SG_OK);
    assert_int_equal(sg_renewer_extend(r, lease, 2000, NULL, &err), SG_ABSENT);
    assert_true(wait_lost(1, 1000));
    assert_int_equal(sg_renewer_extend(r, lease, 2000, NULL, &err), SG_ABSENT);
    assert_int_equal(sg_renewer_extend(r, 999999, 2000, NULL, &err), SG_ABSENT);
    sg_renewer_stop(r);
    assert_int_equal(n_lost(), 1);
}

static void user_extend_waiting_on_a_hung_call_returns_at_the_deadline(void **state)
{
    (void)state;
    script(15, M_HANG, 0, SG_OK);
    sg_renewer *r = start(0);
    int64_t t0 = sg_monotonic_ms();
    uint64_t lease = add(r, 15, 600, t0);
    assert_true(wait_hung(1, 2000));
    user_extend u = {.r = r, .lease = lease, .ttl = 5000};
    pthread_t t;
    pthread_create(&t, NULL, do_user_extend, &u);
    pthread_join(t, NULL); /* the hung call is still hung */
    assert_int_equal(u.st, SG_ABSENT);
    assert_between(u.returned_ms, t0 + 540, t0 + 540 + LATE_MS);
    assert_int_equal(n_lost(), 1);
    let_go(); /* late success of a lost lease: released */
    assert_true(wait_releases(15, 1, 2000));
    sg_renewer_stop_wait(r, -1);
}

static void ten_thousand_leases_come_and_go_without_leaks(void **state)
{
    (void)state;
    sg_renewer *r = start(0);
    enum { N = 10000 };
    static uint64_t ids[N];
    char id[SG_LOCK_ID_LEN + 1];
    int64_t now = sg_monotonic_ms();
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            make_id(100000 + i, id);
            ids[i] = sg_renewer_add(r, id, 30000, now);
            assert_true(ids[i] > 0);
            assert_true(i == 0 || ids[i] > ids[i - 1]); /* never reused */
        }
        assert_int_equal(sg_renewer_deadline(r, ids[N / 2]), now + 28000);
        for (int i = 0; i < N; i += 2)
            assert_true(sg_renewer_remove(r, ids[i]));
        for (int i = 0; i < N; i += 2)
            assert_false(sg_renewer_remove(r, ids[i]));
        for (int i = 1; i < N; i += 2)
            assert_int_equal(sg_renewer_deadline(r, ids[i]), now + 28000);
        if (round == 0)
            for (int i = 1; i < N; i += 2)
                assert_true(sg_renewer_remove(r, ids[i]));
        /* round 1: half are left for stop to free */
    }
    assert_int_equal(sg_renewer_add(r, "bad", 30000, now), 0);
    assert_int_equal(sg_renewer_add(r, "L000000000000000000001", 0, now), 0);
    assert_int_equal(n_lost(), 0);
    sg_renewer_stop(r);
}

static void stop_with_a_call_in_flight_returns_at_once_and_is_safe(void **state)
{
    (void)state;
    script(16, M_HANG, 0, SG_OK);
    sg_renewer *r = start(0);
    uint64_t lease = add(r, 16, 300, sg_monotonic_ms());
    add(r, 17, 30000, sg_monotonic_ms());
    assert_true(wait_hung(1, 2000));
    user_extend u = {.r = r, .lease = lease, .ttl = 5000};
    pthread_t t;
    pthread_create(&t, NULL, do_user_extend, &u); /* waits behind the hung call */
    sleep_ms(20);
    int64_t before = sg_monotonic_ms();
    assert_false(sg_renewer_stop_wait(r, 30)); /* still in flight after 30 ms */
    int64_t took = sg_monotonic_ms() - before;
    assert_between(took, 25, 500);
    pthread_join(t, NULL); /* woken by the stop, not by the call */
    assert_int_equal(u.st, SG_ABSENT);
    assert_between(u.returned_ms - before, 0, 500);
    assert_int_equal(extends_of(16), 1);
    let_go(); /* the abandoned call returns into a stopped renewer: ignored */
    sleep_ms(50);
    assert_int_equal(n_lost(), 0);
    snap();
    assert_int_equal(snap_entry("L000000000000000000016")->releases, 0);
}

/* ---- heartbeat ---- */
static atomic_int hb_lost;
static int64_t hb_lost_ms;
static int hb_hung_then;
static sg_code hb_code;
static void on_hb_lost(const char *id, const sg_error *e, void *ud)
{
    (void)id, (void)ud;
    pthread_mutex_lock(&T.mu);
    hb_lost_ms = sg_monotonic_ms();
    hb_hung_then = T.hung;
    hb_code = e->code;
    T.n_lost++;
    pthread_cond_broadcast(&T.cv);
    pthread_mutex_unlock(&T.mu);
    atomic_fetch_add(&hb_lost, 1);
}

static void heartbeat_survives_a_failed_extend(void **state)
{
    (void)state;
    atomic_store(&hb_lost, 0);
    script(20, M_OK, 1, SG_OK);
    sg_heartbeat *hb;
    assert_int_equal(sg_heartbeat_start(&B, "L000000000000000000020", 600, 0, on_hb_lost, NULL,
                                        &hb, NULL),
                     SG_OK);
    assert_true(wait_extends(20, 4, 5000)); /* 1 failure, a retry, then renewals */
    assert_int_equal(atomic_load(&hb_lost), 0);
    assert_true(sg_heartbeat_stop(hb));
}

static void heartbeat_reports_loss_at_the_deadline_while_hung(void **state)
{
    (void)state;
    atomic_store(&hb_lost, 0);
    script(21, M_HANG, 0, SG_ERROR);
    sg_heartbeat *hb;
    int64_t t0 = sg_monotonic_ms();
    assert_int_equal(sg_heartbeat_start(&B, "L000000000000000000021", 600, 0, on_hb_lost, NULL,
                                        &hb, NULL),
                     SG_OK);
    assert_true(wait_lost(1, 3000));
    snap();
    assert_between(hb_lost_ms, t0 + 540, t0 + 541 + LATE_MS);
    assert_int_equal(hb_hung_then, 1);
    assert_int_equal(hb_code, SG_E_NETWORK_TIMEOUT);
    let_go();
    assert_false(sg_heartbeat_stop(hb));
    assert_int_equal(atomic_load(&hb_lost), 1);
}

int main(void)
{
#define CASE(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
    const struct CMUnitTest tests[] = {
        CASE(lease_arithmetic_follows_the_rule),
        CASE(renewals_happen_about_every_third_of_the_ttl),
        CASE(transient_failure_is_retried_and_the_lease_survives),
        CASE(absent_means_lost_once),
        CASE(hung_extend_is_lost_at_the_deadline_before_it_returns),
        CASE(failing_extends_are_lost_at_the_deadline_with_the_last_error),
        CASE(hung_extend_does_not_delay_another_lease),
        CASE(deadlines_fire_on_time_when_every_worker_hangs),
        CASE(remove_during_an_extend_ignores_its_result),
        CASE(late_success_after_a_deadline_loss_releases_the_lock),
        CASE(user_extend_waits_for_the_extend_in_flight_and_moves_the_deadline),
        CASE(user_extend_waiting_on_a_hung_call_returns_at_the_deadline),
        CASE(ten_thousand_leases_come_and_go_without_leaks),
        CASE(stop_with_a_call_in_flight_returns_at_once_and_is_safe),
        CASE(heartbeat_survives_a_failed_extend),
        CASE(heartbeat_reports_loss_at_the_deadline_while_hung),
    };
    return cmocka_run_group_tests_name("lease", tests, NULL, NULL);
}
