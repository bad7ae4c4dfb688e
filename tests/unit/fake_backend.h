/* fake_backend.h — the scripted in-process backend shared by the lease and
 * renewer-batch unit tests (test_lease.c, test_renewer_batch.c): its extend
 * can succeed, find the lock absent, fail, or hang until the test lets it go
 * (a test double for core logic, not a server); B is the plain backend, BB
 * the same one with extend_many (batching). Include once per test program.
 * Times are CLOCK_MONOTONIC ms. */
#ifndef SG_TEST_FAKE_BACKEND_H
#define SG_TEST_FAKE_BACKEND_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
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

static inline void assert_in_range_signed(int64_t v, int64_t lo, int64_t hi)
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

static inline void make_id(int i, char out[SG_LOCK_ID_LEN + 1])
{
    snprintf(out, SG_LOCK_ID_LEN + 1, "L%021d", i);
}

/* mu held */
static inline entry *entry_of(const char *id)
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

static inline void script(int i, mode m, int fail_next, sg_status after_hang)
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

static inline sg_status s_extend(sg_backend *b, const char *id, int64_t ttl, int64_t *exp,
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

static inline sg_status s_release(sg_backend *b, const char *id, sg_error *err)
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
static inline sg_status s_extend_many(sg_backend *b, size_t n, sg_extend_item *items,
                                       sg_error *err)
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

static inline void s_close(sg_backend *b)
{
    (void)b;
}

static const sg_backend_ops script_ops = {.extend = s_extend, .release = s_release};
static const sg_backend_ops batch_ops = {
    .extend = s_extend, .release = s_release, .close = s_close, .extend_many = s_extend_many};
static sg_backend BB; /* B, batching */

static inline void on_lost(uint64_t lease, const char *lock_id, const sg_error *why, void *ud)
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

static inline int setup(void **state)
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
static inline int teardown(void **state)
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
static inline void let_go(void)
{
    pthread_mutex_lock(&T.mu);
    T.let_go = true;
    pthread_cond_broadcast(&T.cv);
    while (T.in_flight)
        pthread_cond_wait(&T.cv, &T.mu);
    pthread_mutex_unlock(&T.mu);
}

/* Wait (on T.cv, mu held) until pred() or timeout; returns pred(). */
static inline bool wait_for(bool (*pred)(void *), void *arg, int64_t timeout_ms)
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

static inline bool lost_at_least(void *n)
{
    return T.n_lost >= *(int *)n;
}

static inline bool some_hung(void *n)
{
    return T.hung >= *(int *)n;
}

typedef struct count_of {
    int lock;
    int n;
    bool releases;
} count_of;

static inline bool count_reached(void *arg)
{
    count_of *c = arg;
    char id[SG_LOCK_ID_LEN + 1];
    make_id(c->lock, id);
    entry *e = entry_of(id);
    return (c->releases ? e->releases : e->extends) >= c->n;
}

static inline int extends_of(int i)
{
    char id[SG_LOCK_ID_LEN + 1];
    make_id(i, id);
    pthread_mutex_lock(&T.mu);
    int n = entry_of(id)->extends;
    pthread_mutex_unlock(&T.mu);
    return n;
}

static inline bool wait_extends(int lock, int n, int64_t timeout_ms)
{
    count_of c = {lock, n, false};
    pthread_mutex_lock(&T.mu);
    bool ok = wait_for(count_reached, &c, timeout_ms);
    pthread_mutex_unlock(&T.mu);
    return ok;
}

static inline bool wait_lost(int n, int64_t timeout_ms)
{
    pthread_mutex_lock(&T.mu);
    bool ok = wait_for(lost_at_least, &n, timeout_ms);
    pthread_mutex_unlock(&T.mu);
    return ok;
}

static inline bool wait_hung(int n, int64_t timeout_ms)
{
    pthread_mutex_lock(&T.mu);
    bool ok = wait_for(some_hung, &n, timeout_ms);
    pthread_mutex_unlock(&T.mu);
    return ok;
}

static inline bool wait_releases(int lock, int n, int64_t timeout_ms)
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

static inline void snap(void)
{
    pthread_mutex_lock(&T.mu);
    memcpy(S.e, T.e, sizeof S.e);
    S.n = T.n;
    memcpy(S.lost, T.lost, sizeof S.lost);
    S.n_lost = T.n_lost;
    pthread_mutex_unlock(&T.mu);
}

static inline const entry *snap_entry(const char *id)
{
    for (int i = 0; i < S.n; i++)
        if (!strcmp(S.e[i].id, id))
            return &S.e[i];
    static const entry none; /* never called */
    return &none;
}

static inline int n_lost(void)
{
    pthread_mutex_lock(&T.mu);
    int n = T.n_lost;
    pthread_mutex_unlock(&T.mu);
    return n;
}

static inline void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1)
        ;
}

static inline sg_renewer *start(unsigned workers)
{
    sg_renewer *r = NULL;
    sg_error err;
    assert_int_equal(sg_renewer_start(&B, workers, on_lost, NULL, &r, &err), SG_OK);
    assert_non_null(r);
    return r;
}

static inline uint64_t add(sg_renewer *r, int i, int64_t ttl, int64_t sent)
{
    char id[SG_LOCK_ID_LEN + 1];
    make_id(i, id);
    uint64_t lease = sg_renewer_add(r, id, ttl, sent);
    assert_true(lease > 0);
    return lease;
}

#endif
