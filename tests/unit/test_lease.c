/* test_lease.c — the lease rule and the renewer: arithmetic, renewals,
 * retries, loss on SG_ABSENT and at the deadline while calls hang, removal,
 * user extends, late results, and the heartbeat built on it. Driven by a
 * scripted in-process backend whose extend can succeed, find the lock
 * absent, fail, or hang until the test lets it go (a test double for core
 * logic, not a server); a second one also extends many locks in one call
 * (extend_many), which makes the renewer batch. Times are CLOCK_MONOTONIC ms. */
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
#include <time.h>
#include <unistd.h>

#include "syncguard_backend.h"

/* How late a loss may be reported after its deadline (thread wake-ups on a
 * loaded machine; the hung call itself never returns before it). */
#define LATE_MS 50
/* Assert lo <= v <= hi, printing the values when not. */
#define assert_between(v, lo, hi) assert_in_range_signed((int64_t)(v), (int64_t)(lo), (int64_t)(hi))

static void assert_in_range_signed(int64_t v, int64_t lo, int64_t hi)
{
    if (v < lo || v > hi)
        fail_msg("%lld not in [%lld, %lld] (off by %lld)", (long long)v, (long long)lo,
                 (long long)hi, (long long)(v < lo ? v - lo : v - hi));
}

/* ---- the scripted backend ---- */
typedef enum mode { M_OK, M_ABSENT, M_FAIL, M_HANG } mode;

typedef struct entry {
    char id[SG_LOCK_ID_LEN + 1];
    mode mode;
    int fail_next;        /* fail this many extends first (ServiceUnavailable) */
    sg_status after_hang; /* what a hung extend returns once let go */
    int extends, releases;
    int64_t extend_ms[64]; /* when each extend arrived */
    int64_t ttl[64];       /* with which TTL */
    int64_t returned_ms[64];
} entry;

typedef struct lost_rec {
    uint64_t lease;
    char lock_id[SG_LOCK_ID_LEN + 1];
    sg_code code;
    char message[256];
    char cause[160];
    int64_t at_ms;
    int hung_then; /* calls hung when the loss was reported */
} lost_rec;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every backend call and every loss */
    entry e[512];
    int n;
    bool let_go; /* hung calls return */
    int batches;          /* extend_many calls */
    int batch_size[256];  /* the size of each */
    int64_t batch_ms[256];
    int fail_batches;     /* fail this many batches as a whole (a timeout) */
    int hung, in_flight;
    lost_rec lost[64];
    int n_lost;
} T = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static sg_backend B;

static void make_id(int i, char out[SG_LOCK_ID_LEN + 1])
{
    snprintf(out, SG_LOCK_ID_LEN + 1, "L%021d", i);
}

/* mu held */
static entry *entry_of(const char *id)
{
    for (int i = 0; i < T.n; i++)
        if (!strcmp(T.e[i].id, id))
            return &T.e[i];
    if (T.n == 512)
        return NULL;
    entry *e = &T.e[T.n++];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->after_hang = SG_OK;
    return e;
}

static void script(int i, mode m, int fail_next, sg_status after_hang)
{
    char id[SG_LOCK_ID_LEN + 1];
    make_id(i, id);
    pthread_mutex_lock(&T.mu);
    entry *e = entry_of(id);
    e->mode = m;
    e->fail_next = fail_next;
    e->after_hang = after_hang;
    pthread_mutex_unlock(&T.mu);
}

static sg_status s_extend(sg_backend *b, const char *id, int64_t ttl, int64_t *exp,
                          sg_error *err)
{
    (void)b;
    pthread_mutex_lock(&T.mu);
    T.in_flight++;
    entry *e = entry_of(id);
    int k = e->extends++ % 64;
    e->extend_ms[k] = sg_monotonic_ms();
    e->ttl[k] = ttl;
    sg_status st = SG_OK;
    if (e->fail_next > 0) {
        e->fail_next--;
        st = sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "scripted: connection reset");
    } else if (e->mode == M_ABSENT) {
        st = SG_ABSENT;
    } else if (e->mode == M_FAIL) {
        st = sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "scripted: connection reset");
    } else if (e->mode == M_HANG) {
        T.hung++;
        pthread_cond_broadcast(&T.cv);
        while (!T.let_go)
            pthread_cond_wait(&T.cv, &T.mu);
        T.hung--;
        st = e->after_hang;
        if (st == SG_ERROR)
            sg_error_set(err, SG_E_NETWORK_TIMEOUT, "scripted: command timeout");
    }
    if (st == SG_OK && exp)
        *exp = sg_now_ms() + ttl;
    e->returned_ms[k] = sg_monotonic_ms();
    T.in_flight--;
    pthread_cond_broadcast(&T.cv);
    pthread_mutex_unlock(&T.mu);
    return st;
}

static sg_status s_release(sg_backend *b, const char *id, sg_error *err)
{
    (void)b, (void)err;
    pthread_mutex_lock(&T.mu);
    entry_of(id)->releases++;
    pthread_cond_broadcast(&T.cv);
    pthread_mutex_unlock(&T.mu);
    return SG_OK;
}

/* A batch: each item as s_extend would answer it, except that one item in
 * M_HANG hangs the whole call (as a stalled connection would), and
 * fail_batches fails whole calls first. */
static sg_status s_extend_many(sg_backend *b, size_t n, sg_extend_item *items, sg_error *err)
{
    (void)b;
    pthread_mutex_lock(&T.mu);
    T.in_flight++;
    int k = T.batches++;
    if (k < 256) {
        T.batch_size[k] = (int)n;
        T.batch_ms[k] = sg_monotonic_ms();
    }
    bool hang = false;
    for (size_t i = 0; i < n; i++) {
        entry *e = entry_of(items[i].lock_id);
        int j = e->extends++ % 64;
        e->extend_ms[j] = sg_monotonic_ms();
        e->ttl[j] = items[i].ttl_ms;
        hang |= e->mode == M_HANG;
    }
    sg_status st = SG_OK;
    if (hang) {
        T.hung++;
        pthread_cond_broadcast(&T.cv);
        while (!T.let_go)
            pthread_cond_wait(&T.cv, &T.mu);
        T.hung--;
    }
    if (T.fail_batches > 0) {
        T.fail_batches--;
        st = sg_error_set(err, SG_E_NETWORK_TIMEOUT, "scripted: batch timed out");
        err->unknown_outcome = true;
    }
    for (size_t i = 0; i < n && st == SG_OK; i++) {
        entry *e = entry_of(items[i].lock_id);
        items[i].status = SG_OK;
        items[i].code = SG_E_NONE;
        if (e->mode == M_HANG) {
            items[i].status = e->after_hang;
            items[i].code = e->after_hang == SG_ERROR ? SG_E_NETWORK_TIMEOUT : SG_E_NONE;
        } else if (e->fail_next > 0 || e->mode == M_FAIL) {
            e->fail_next -= e->fail_next > 0;
            items[i].status = SG_ERROR;
            items[i].code = SG_E_SERVICE_UNAVAILABLE;
            if (err->code == SG_E_NONE)
                sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "scripted: item failed");
        } else if (e->mode == M_ABSENT) {
            items[i].status = SG_ABSENT;
        }
        if (items[i].status == SG_OK)
            items[i].expires_at_ms = sg_now_ms() + items[i].ttl_ms;
        int j = (e->extends - 1) % 64;
        e->returned_ms[j] = sg_monotonic_ms();
    }
    T.in_flight--;
    pthread_cond_broadcast(&T.cv);
    pthread_mutex_unlock(&T.mu);
    return st;
}

static void s_close(sg_backend *b)
{
    (void)b;
}

static const sg_backend_ops script_ops = {.extend = s_extend, .release = s_release};
static const sg_backend_ops batch_ops = {
    .extend = s_extend, .release = s_release, .close = s_close, .extend_many = s_extend_many};
static sg_backend BB; /* B, batching */

static void on_lost(uint64_t lease, const char *lock_id, const sg_error *why, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&T.mu);
    if (T.n_lost < 64) {
        lost_rec *r = &T.lost[T.n_lost];
        r->lease = lease;
        snprintf(r->lock_id, sizeof r->lock_id, "%s", lock_id);
        r->code = why->code;
        snprintf(r->message, sizeof r->message, "%s", why->message);
        snprintf(r->cause, sizeof r->cause, "%s", why->cause);
        r->at_ms = sg_monotonic_ms();
        r->hung_then = T.hung;
    }
    T.n_lost++;
    pthread_cond_broadcast(&T.cv);
    pthread_mutex_unlock(&T.mu);
}

static int setup(void **state)
{
    (void)state;
    pthread_mutex_lock(&T.mu);
    T.n = T.n_lost = T.hung = T.in_flight = T.batches = T.fail_batches = 0;
    T.let_go = false;
    pthread_mutex_unlock(&T.mu);
    B = (sg_backend){&script_ops, {"script", true, SG_TIME_CLIENT}, NULL};
    BB = (sg_backend){&batch_ops, {"script-batch", true, SG_TIME_CLIENT}, NULL};
    return 0;
}

/* After each test, even a failed one: let hung calls go, wait (bounded)
 * until none is in flight, so the next test starts clean. */
static int teardown(void **state)
{
    (void)state;
    pthread_mutex_lock(&T.mu);
    T.let_go = true;
    pthread_cond_broadcast(&T.cv);
    for (int i = 0; i < 400 && T.in_flight; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&T.cv, &T.mu, &ts);
    }
    int left = T.in_flight;
    pthread_mutex_unlock(&T.mu);
    return left ? -1 : 0;
}

/* Let hung calls go and wait until none is in flight. */
static void let_go(void)
{
    pthread_mutex_lock(&T.mu);
    T.let_go = true;
    pthread_cond_broadcast(&T.cv);
    while (T.in_flight)
        pthread_cond_wait(&T.cv, &T.mu);
    pthread_mutex_unlock(&T.mu);
}

/* Wait (on T.cv, mu held) until pred() or timeout; returns pred(). */
static bool wait_for(bool (*pred)(void *), void *arg, int64_t timeout_ms)
{
    int64_t end = sg_monotonic_ms() + timeout_ms;
    while (!pred(arg)) {
        int64_t now = sg_monotonic_ms();
        if (now >= end)
            return false;
        int64_t until = now + 5 < end ? now + 5 : end; /* also re-check on a clock */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(until - now) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&T.cv, &T.mu, &ts);
    }
    return true;
}

static bool lost_at_least(void *n)
{
    return T.n_lost >= *(int *)n;
}

static bool some_hung(void *n)
{
    return T.hung >= *(int *)n;
}

typedef struct count_of {
    int lock;
    int n;
    bool releases;
} count_of;

static bool count_reached(void *arg)
{
    count_of *c = arg;
    char id[SG_LOCK_ID_LEN + 1];
    make_id(c->lock, id);
    entry *e = entry_of(id);
    return (c->releases ? e->releases : e->extends) >= c->n;
}

static int extends_of(int i)
{
    char id[SG_LOCK_ID_LEN + 1];
    make_id(i, id);
    pthread_mutex_lock(&T.mu);
    int n = entry_of(id)->extends;
    pthread_mutex_unlock(&T.mu);
    return n;
}

static bool wait_extends(int lock, int n, int64_t timeout_ms)
{
    count_of c = {lock, n, false};
    pthread_mutex_lock(&T.mu);
    bool ok = wait_for(count_reached, &c, timeout_ms);
    pthread_mutex_unlock(&T.mu);
    return ok;
}

static bool wait_lost(int n, int64_t timeout_ms)
{
    pthread_mutex_lock(&T.mu);
    bool ok = wait_for(lost_at_least, &n, timeout_ms);
    pthread_mutex_unlock(&T.mu);
    return ok;
}

static bool wait_hung(int n, int64_t timeout_ms)
{
    pthread_mutex_lock(&T.mu);
    bool ok = wait_for(some_hung, &n, timeout_ms);
    pthread_mutex_unlock(&T.mu);
    return ok;
}

static bool wait_releases(int lock, int n, int64_t timeout_ms)
{
    count_of c = {lock, n, true};
    pthread_mutex_lock(&T.mu);
    bool ok = wait_for(count_reached, &c, timeout_ms);
    pthread_mutex_unlock(&T.mu);
    return ok;
}

/* Tests assert on a copy taken under the lock: a failed assertion jumps out
 * of the test, and must not leave T.mu held. */
static struct {
    entry e[512];
    int n;
    lost_rec lost[64];
    int n_lost;
} S;

static void snap(void)
{
    pthread_mutex_lock(&T.mu);
    memcpy(S.e, T.e, sizeof S.e);
    S.n = T.n;
    memcpy(S.lost, T.lost, sizeof S.lost);
    S.n_lost = T.n_lost;
    pthread_mutex_unlock(&T.mu);
}

static const entry *snap_entry(const char *id)
{
    for (int i = 0; i < S.n; i++)
        if (!strcmp(S.e[i].id, id))
            return &S.e[i];
    static const entry none; /* never called */
    return &none;
}

static int n_lost(void)
{
    pthread_mutex_lock(&T.mu);
    int n = T.n_lost;
    pthread_mutex_unlock(&T.mu);
    return n;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1)
        ;
}

static sg_renewer *start(unsigned workers)
{
    sg_renewer *r = NULL;
    sg_error err;
    assert_int_equal(sg_renewer_start(&B, workers, on_lost, NULL, &r, &err), SG_OK);
    assert_non_null(r);
    return r;
}

static uint64_t add(sg_renewer *r, int i, int64_t ttl, int64_t sent)
{
    char id[SG_LOCK_ID_LEN + 1];
    make_id(i, id);
    uint64_t lease = sg_renewer_add(r, id, ttl, sent);
    assert_true(lease > 0);
    return lease;
}

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
        CASE(batched_renewer_extends_many_due_leases_in_one_call),
        CASE(per_lock_outcomes_in_a_batch_are_their_own),
        CASE(hung_batch_is_lost_at_its_deadline_and_delays_no_other_batch),
        CASE(failed_batch_is_retried_and_lost_only_at_the_deadline),
        CASE(extend_many_answers_each_lock_in_as_few_calls_as_allowed),
        CASE(heartbeat_survives_a_failed_extend),
        CASE(heartbeat_reports_loss_at_the_deadline_while_hung),
    };
    return cmocka_run_group_tests_name("lease", tests, NULL, NULL);
}
