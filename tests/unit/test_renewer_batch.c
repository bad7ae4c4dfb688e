/* test_renewer_batch.c — batched renewals: the renewer gathering due leases
 * into extend_many calls, per-lock outcomes within a batch, hung and failed
 * batches, and sg_extend_many itself (runs, limits, the fallback without
 * extend_many, the telemetry decorator). Driven by the scripted backend of
 * fake_backend.h with extend_many (BB). Times are CLOCK_MONOTONIC ms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake_backend.h"

/* ---- batches: a backend with extend_many ---- */
static sg_renewer *start_batched(unsigned workers)
{
    sg_renewer *r = NULL;
    sg_error err;
    assert_int_equal(sg_renewer_start(&BB, workers, on_lost, NULL, &r, &err), SG_OK);
    assert_non_null(r);
    return r;
}

static void wait_renewed(sg_renewer *r, uint64_t n)
{
    uint64_t renewed = 0;
    for (int i = 0; i < 3000 && renewed < n; i++) {
        sg_renewer_stats(r, &renewed, NULL, NULL);
        sleep_ms(1);
    }
}

static void batched_renewer_extends_many_due_leases_in_one_call(void **state)
{
    (void)state;
    enum { N = 500 };
    static uint64_t ids[N];
    sg_renewer *r = start_batched(0);
    int64_t t0 = sg_monotonic_ms();
    for (int i = 0; i < N; i++)
        ids[i] = add(r, 1000 + i, 3000, t0);
    /* due at 900..1100 ms (ttl/3 +- 10 %); gathered within ttl/20 = 150 ms */
    for (int i = 0; i < N; i++)
        assert_true(wait_extends(1000 + i, 1, 3000));
    wait_renewed(r, N);
    pthread_mutex_lock(&T.mu);
    int nb = T.batches, sizes[256], total = 0, biggest = 0;
    memcpy(sizes, T.batch_size, sizeof sizes);
    pthread_mutex_unlock(&T.mu);
    snap();
    assert_between(nb, 2, 12); /* 500 single extends before batching */
    for (int k = 0; k < nb; k++) {
        total += sizes[k];
        biggest = sizes[k] > biggest ? sizes[k] : biggest;
    }
    assert_int_equal(total, N);
    assert_int_equal(biggest, SG_EXTEND_BATCH_MAX); /* the first wake-up filled one */
    for (int i = 0; i < N; i++) {
        char id[SG_LOCK_ID_LEN + 1];
        make_id(1000 + i, id);
        const entry *e = snap_entry(id);
        assert_int_equal(e->extends, 1);
        /* never later than the lease rule, at most the window early */
        assert_between(e->extend_ms[0] - t0, 900 - 150, 1100 + LATE_MS);
        int64_t d = sg_renewer_deadline(r, ids[i]);
        assert_between(d, t0 + 750 + 2700, e->extend_ms[0] + 2700);
        assert_true(sg_renewer_expires_at(r, ids[i]) > 0);
    }
    uint64_t renewed, failed, lost;
    sg_renewer_stats(r, &renewed, &failed, &lost);
    assert_int_equal(renewed, N);
    assert_int_equal(failed + lost, 0);
    sg_renewer_stop(r);
}

static void per_lock_outcomes_in_a_batch_are_their_own(void **state)
{
    (void)state;
    script(30, M_HANG, 0, SG_OK); /* holds the only worker until the others queue up */
    script(32, M_ABSENT, 0, SG_OK);
    script(33, M_OK, 1, SG_OK); /* its first extend fails, then fine */
    sg_renewer *r = start_batched(1);
    int64_t t0 = sg_monotonic_ms();
    uint64_t h = add(r, 30, 1000, t0 - 320); /* due now, deadline t0 + 580 */
    uint64_t a = add(r, 31, 1000, t0), b = add(r, 32, 1000, t0), c = add(r, 33, 1000, t0);
    assert_true(wait_hung(1, 2000));
    int64_t left = 450 - (sg_monotonic_ms() - t0); /* 31..33 due at 300..366: queued */
    sleep_ms(left > 0 ? left : 0);
    let_go();
    assert_true(wait_lost(1, 2000));
    assert_true(wait_extends(33, 2, 2000)); /* the retry */
    wait_renewed(r, 3);
    pthread_mutex_lock(&T.mu);
    int size1 = T.batch_size[1];
    pthread_mutex_unlock(&T.mu);
    assert_int_equal(size1, 3); /* 31, 32 and 33 in one call */
    snap();
    assert_int_equal(S.n_lost, 1);
    assert_int_equal(S.lost[0].lease, b);
    assert_int_equal(S.lost[0].code, SG_E_INTERNAL);
    assert_string_equal(S.lost[0].message, "lock expired or was released elsewhere");
    const entry *e31 = snap_entry("L000000000000000000031");
    const entry *e33 = snap_entry("L000000000000000000033");
    assert_true(sg_renewer_deadline(r, a) >= e31->extend_ms[0] - 5 + 900);
    assert_true(sg_renewer_deadline(r, h) > t0 + 580); /* the hung one came back in time */
    /* 33 failed alone: retried 50..100 ms later, renewed, not lost */
    assert_between(e33->extend_ms[1] - e33->extend_ms[0], 45, 300);
    assert_true(sg_renewer_deadline(r, c) >= e33->extend_ms[1] - 5 + 900);
    uint64_t failed;
    sg_renewer_stats(r, NULL, &failed, NULL);
    assert_int_equal(failed, 2); /* 32 absent, 33 once */
    sg_renewer_stop(r);
}

static void hung_batch_is_lost_at_its_deadline_and_delays_no_other_batch(void **state)
{
    (void)state;
    script(41, M_HANG, 0, SG_OK); /* goes through after all: released */
    sg_renewer *r = start_batched(2);
    int64_t t0 = sg_monotonic_ms();
    uint64_t hung = add(r, 41, 600, t0); /* due 180..220, deadline 540 */
    add(r, 43, 600, t0 + 100);           /* due 280..320: another batch */
    assert_true(wait_hung(1, 2000));
    assert_true(wait_extends(43, 3, 2000)); /* ~300, ~500, ~700: despite the hang */
    assert_true(wait_lost(1, 2000));
    snap();
    assert_int_equal(S.lost[0].lease, hung);
    assert_between(S.lost[0].at_ms, t0 + 540, t0 + 540 + LATE_MS);
    assert_int_equal(S.lost[0].hung_then, 1); /* before the call returned */
    assert_int_equal(S.lost[0].code, SG_E_NETWORK_TIMEOUT);
    assert_string_equal(S.lost[0].cause, "an extend was still in flight");
    let_go(); /* the batch succeeds late: the lost lock is released */
    assert_true(wait_releases(41, 1, 2000));
    assert_true(wait_extends(43, 5, 2000));
    assert_int_equal(n_lost(), 1);
    snap();
    assert_int_equal(snap_entry("L000000000000000000043")->releases, 0);
    sg_renewer_stop_wait(r, -1);
}

static void failed_batch_is_retried_and_lost_only_at_the_deadline(void **state)
{
    (void)state;
    sg_renewer *r = start_batched(0);
    pthread_mutex_lock(&T.mu);
    T.fail_batches = 2; /* two timeouts, then fine */
    pthread_mutex_unlock(&T.mu);
    int64_t t0 = sg_monotonic_ms();
    uint64_t a = add(r, 51, 1000, t0);
    assert_true(wait_extends(51, 3, 3000));
    wait_renewed(r, 1);
    uint64_t renewed, failed, lost;
    sg_renewer_stats(r, &renewed, &failed, &lost);
    assert_int_equal(renewed, 1);
    assert_int_equal(failed, 2);
    assert_int_equal(lost, 0);
    assert_true(sg_renewer_deadline(r, a) > t0 + 900);
    sg_renewer_remove(r, a);

    pthread_mutex_lock(&T.mu);
    T.fail_batches = 1000; /* every batch times out */
    pthread_mutex_unlock(&T.mu);
    t0 = sg_monotonic_ms();
    uint64_t b = add(r, 52, 1000, t0);
    assert_true(wait_lost(1, 3000));
    snap();
    assert_int_equal(S.lost[0].lease, b);
    assert_between(S.lost[0].at_ms, t0 + 900, t0 + 900 + LATE_MS);
    assert_int_equal(S.lost[0].code, SG_E_NETWORK_TIMEOUT);
    assert_non_null(strstr(S.lost[0].cause, "batch timed out"));
    int n = snap_entry("L000000000000000000052")->extends;
    assert_true(n >= 4 && n <= 13);
    sg_renewer_stop(r);
}

static int n_events;
static void count_event(const sg_event *ev, void *ud)
{
    (void)ud;
    n_events += ev->type == SG_EV_EXTEND;
}

static void extend_many_answers_each_lock_in_as_few_calls_as_allowed(void **state)
{
    (void)state;
    enum { N = 303 };
    static sg_extend_item it[N];
    static char ids[N][SG_LOCK_ID_LEN + 1];
    script(60, M_ABSENT, 0, SG_OK);
    script(61, M_FAIL, 0, SG_OK);
    for (int i = 0; i < N; i++) {
        make_id(60 + i, ids[i]);
        it[i] = (sg_extend_item){.lock_id = ids[i], .ttl_ms = 5000};
    }
    it[10].lock_id = "not-a-lock-id"; /* answered here, never sent */
    it[20].ttl_ms = 0;
    sg_error err;
    int64_t before = sg_now_ms();
    /* with extend_many: runs of valid items, at most SG_EXTEND_BATCH_MAX each */
    assert_int_equal(sg_extend_many(&BB, it, N, &err), SG_OK);
    assert_int_equal(T.batches, 4); /* 0..9, 11..19, 21..276, 277..302 */
    assert_int_equal(T.batch_size[0], 10);
    assert_int_equal(T.batch_size[1], 9);
    assert_int_equal(T.batch_size[2], SG_EXTEND_BATCH_MAX);
    assert_int_equal(T.batch_size[3], 26);
    assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE); /* the first failure: item 1 */
    for (int i = 0; i < N; i++) {
        sg_status want = i == 0 ? SG_ABSENT : i == 1 || i == 10 || i == 20 ? SG_ERROR : SG_OK;
        assert_int_equal(it[i].status, want);
        if (want == SG_OK)
            assert_between(it[i].expires_at_ms, before + 5000, sg_now_ms() + 5000);
    }
    assert_int_equal(it[1].code, SG_E_SERVICE_UNAVAILABLE);
    assert_int_equal(it[10].code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(it[20].code, SG_E_INVALID_ARGUMENT);
    snap();
    assert_int_equal(snap_entry(ids[20])->extends, 0);

    /* a batch failing as a whole: each of its items failed, outcome unknown */
    T.fail_batches = 1;
    assert_int_equal(sg_extend_many(&BB, it + 21, 50, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_NETWORK_TIMEOUT);
    assert_true(err.unknown_outcome);
    for (int i = 21; i < 71; i++) {
        assert_int_equal(it[i].status, SG_ERROR);
        assert_int_equal(it[i].code, SG_E_NETWORK_TIMEOUT);
    }

    /* without extend_many: one extend per lock, same answers */
    int batches = T.batches;
    assert_int_equal(sg_extend_many(&B, it, 30, &err), SG_OK);
    assert_int_equal(T.batches, batches);
    assert_int_equal(it[0].status, SG_ABSENT);
    assert_int_equal(it[1].status, SG_ERROR);
    assert_int_equal(it[2].status, SG_OK);
    assert_int_equal(it[10].code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_extend_many(&B, it, 0, &err), SG_OK);
    assert_int_equal(sg_extend_many(&BB, NULL, 3, &err), SG_ERROR); /* bad input, no I/O */
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(T.batches, batches);

    /* the telemetry decorator keeps the batch and reports each lock */
    sg_backend *tb = sg_with_telemetry(&BB, count_event, NULL, false);
    sg_backend *tsingle = sg_with_telemetry(&B, count_event, NULL, false);
    assert_non_null(tb->ops->extend_many);
    assert_null(tsingle->ops->extend_many);
    n_events = 0;
    assert_int_equal(sg_extend_many(tb, it + 100, 40, &err), SG_OK);
    assert_int_equal(n_events, 40);
    assert_int_equal(T.batches, batches + 1);
    sg_backend_close(tb); /* closes BB: a no-op */
    free(tsingle->impl);
    free(tsingle);
}

int main(void)
{
#define CASE(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
    const struct CMUnitTest tests[] = {
        CASE(batched_renewer_extends_many_due_leases_in_one_call),
        CASE(per_lock_outcomes_in_a_batch_are_their_own),
        CASE(hung_batch_is_lost_at_its_deadline_and_delays_no_other_batch),
        CASE(failed_batch_is_retried_and_lost_only_at_the_deadline),
        CASE(extend_many_answers_each_lock_in_as_few_calls_as_allowed),
    };
    return cmocka_run_group_tests_name("renewer_batch", tests, NULL, NULL);
}
