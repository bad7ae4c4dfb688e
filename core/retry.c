/* retry.c — acquisition with retries (SyncGuard's lock() in C) and the
 * scope-bound lock. (The heartbeat is a lease user: lease.c.) */
#include "syncguard.h"
#include "random_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

sg_acquire_opts sg_acquire_opts_default(void)
{
    return (sg_acquire_opts){
        .timeout_ms = 5000,
        .max_retries = 10,
        .retry_delay_ms = 100,
        .backoff = SG_BACKOFF_EXPONENTIAL,
        .jitter = SG_JITTER_EQUAL,
    };
}

/* Zero fields take the defaults, so `sg_acquire_opts o = {0}` works. */
static sg_acquire_opts effective(const sg_acquire_opts *o)
{
    sg_acquire_opts d = sg_acquire_opts_default();
    if (!o)
        return d;
    sg_acquire_opts e = *o;
    if (e.timeout_ms <= 0)
        e.timeout_ms = d.timeout_ms;
    if (e.max_retries == 0)
        e.max_retries = d.max_retries;
    else if (e.max_retries < 0)
        e.max_retries = 0;
    if (e.retry_delay_ms <= 0)
        e.retry_delay_ms = d.retry_delay_ms;
    return e;
}

int64_t sg_retry_delay_ms(const sg_acquire_opts *opts, int n, int64_t remaining_ms, double r)
{
    sg_acquire_opts o = effective(opts);
    if (remaining_ms <= 0)
        return 0;
    double d = (double)o.retry_delay_ms;
    if (o.backoff == SG_BACKOFF_EXPONENTIAL && n > 1)
        for (int i = 1; i < n && d < 1e12; i++)
            d *= 2;
    if (o.max_delay_ms > 0 && d > (double)o.max_delay_ms)
        d = (double)o.max_delay_ms;
    if (r < 0 || r >= 1)
        r = 0;
    switch (o.jitter) {
    case SG_JITTER_EQUAL: d = d / 2 + r * (d / 2); break;
    case SG_JITTER_FULL: d = r * d; break;
    case SG_JITTER_NONE: break;
    }
    int64_t ms = (int64_t)d;
    return ms > remaining_ms ? remaining_ms : ms;
}

double sg_uniform01(void)
{
    static _Thread_local uint64_t state;
    if (state == 0) {
        if (getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state || state == 0)
            state = (uint64_t)sg_monotonic_ms() * 0x9E3779B97F4A7C15ULL + 1;
    }
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

/* The flag is a plain int in the public struct (C++-safe); read it atomically. */
static bool aborted(const volatile int *flag)
{
    return flag && __atomic_load_n(flag, __ATOMIC_ACQUIRE) != 0;
}

/* Where a waiting acquire hears of wake-ups (sg_watch_key): a counter under
 * a mutex, and a condition on CLOCK_MONOTONIC. Lives on the waiter's stack;
 * sg_unwatch guarantees no callback runs after it returns. */
typedef struct wake_slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned long woken, seen;
} wake_slot;

static void on_wake(void *ud)
{
    wake_slot *s = ud;
    pthread_mutex_lock(&s->mu);
    s->woken++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Wait until the monotonic time `until`, a wake-up, or the abort flag
 * (checked every 10 ms when set). 1 woken, 0 time is up, -1 aborted. */
static int wait_wake(wake_slot *s, int64_t until, const volatile int *flag)
{
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    for (;;) {
        if (s->woken != s->seen) {
            s->seen = s->woken;
            rc = 1;
            break;
        }
        if (aborted(flag)) {
            rc = -1;
            break;
        }
        int64_t left = until - sg_monotonic_ms();
        if (left <= 0)
            break;
        int64_t slice = flag && left > 10 ? 10 : left;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += slice / 1000;
        ts.tv_nsec += (slice % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Attempts come from two sources. Timer attempts follow the backoff (and
 * count towards max_retries); a due time is brought forward to the moment
 * the holder's lock stops being live when the backend said when that is
 * (an expiry or a release that announces nothing). Wake-up attempts come at
 * once when the backend announces a release of the key (sg_watch_key); they
 * do not count and do not advance the backoff — a wake-up is the backend
 * saying "now", not a guess. The timeout bounds everything. */
sg_status sg_acquire_retry(sg_backend *b, const char *key, int64_t ttl_ms,
                           const sg_acquire_opts *opts, sg_lock *out, sg_error *err)
{
    sg_acquire_opts o = effective(opts);
    int64_t start = sg_monotonic_ms(), due = start;
    int attempts = o.max_retries + 1;
    int n = 0;        /* timer attempts made */
    bool timer = true; /* the next attempt is a timer attempt */
    wake_slot slot = {.woken = 0, .seen = 0};
    pthread_mutex_init(&slot.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&slot.cv, &ca);
    pthread_condattr_destroy(&ca);
    sg_watch *watch = NULL;
    bool watch_tried = false;
    sg_status st;
    for (;;) {
        if (aborted(o.abort)) {
            st = sg_error_set(err, SG_E_ABORTED, "acquisition of %.64s aborted", key);
            goto done;
        }
        sg_holder holder;
        st = sg_acquire_holder(b, key, ttl_ms, out, &holder, err);
        if (st != SG_CONTENDED)
            goto done; /* acquired, or an error (validation, backend) */
        int64_t now = sg_monotonic_ms();
        int64_t remaining = o.timeout_ms - (now - start);
        if (!watch_tried) { /* wake-ups from now on (its first one closes the race) */
            watch_tried = true;
            watch = sg_watch_key(b, key, on_wake, &slot);
        }
        if (timer) {
            n++;
            if (n >= attempts || remaining <= 0)
                break;
            due = now + sg_retry_delay_ms(&o, n, remaining, sg_uniform01());
        } else if (remaining <= 0) {
            break;
        }
        if (holder.free_at_mono_ms > 0 && holder.free_at_mono_ms < due)
            due = holder.free_at_mono_ms > now ? holder.free_at_mono_ms : now + 1;
        int64_t until = due < start + o.timeout_ms ? due : start + o.timeout_ms;
        int w = wait_wake(&slot, until, o.abort);
        if (w < 0) {
            st = sg_error_set(err, SG_E_ABORTED, "acquisition of %.64s aborted", key);
            goto done;
        }
        timer = w == 0;
        if (timer && sg_monotonic_ms() - start >= o.timeout_ms)
            break;
    }
    st = sg_error_set(err, SG_E_ACQUISITION_TIMEOUT,
                      "could not acquire %.64s within %lld ms (%d attempts at most)", key,
                      (long long)o.timeout_ms, attempts);
    if (err)
        snprintf(err->key, sizeof err->key, "%s", key);
done:
    sg_unwatch(b, watch);
    pthread_cond_destroy(&slot.cv);
    pthread_mutex_destroy(&slot.mu);
    return st;
}

static void report_release_error(sg_release_error_fn fn, void *ud, const sg_error *e,
                                 const sg_lock *lock)
{
    if (fn) {
        fn(e, lock, ud);
        return;
    }
    char buf[512];
    sg_log(SG_LOG_WARN, "release of %.64s failed: %s", lock->key,
           sg_error_format(e, buf, sizeof buf));
}

static void release_reporting(sg_backend *b, const sg_lock *lock, sg_release_error_fn fn,
                              void *ud)
{
    sg_error e;
    sg_status st = sg_release(b, lock->lock_id, &e);
    if (st == SG_ERROR)
        report_release_error(fn, ud, &e, lock);
    else if (st == SG_ABSENT)
        sg_log(SG_LOG_INFO, "lock %.64s had already expired or been released", lock->key);
}

sg_status sg_with_lock(sg_backend *b, const char *key, int64_t ttl_ms,
                       const sg_acquire_opts *o, int (*fn)(const sg_lock *lock, void *arg),
                       void *arg, int *fn_result, sg_error *err)
{
    sg_lock lock;
    if (sg_acquire_retry(b, key, ttl_ms, o, &lock, err) != SG_OK)
        return SG_ERROR;
    int r = fn(&lock, arg);
    release_reporting(b, &lock, o ? o->on_release_error : NULL, o ? o->ud : NULL);
    if (fn_result)
        *fn_result = r;
    return SG_OK;
}

sg_status sg_hold(sg_backend *b, const char *key, int64_t ttl_ms, const sg_acquire_opts *o,
                  sg_held *h, sg_error *err)
{
    memset(h, 0, sizeof *h);
    if (sg_acquire_retry(b, key, ttl_ms, o, &h->lock, err) != SG_OK)
        return SG_ERROR;
    h->backend = b;
    h->held = true;
    h->on_release_error = o ? o->on_release_error : NULL;
    h->ud = o ? o->ud : NULL;
    return SG_OK;
}

void sg_held_release(sg_held *h)
{
    if (!h || !h->held)
        return;
    h->held = false;
    release_reporting(h->backend, &h->lock, h->on_release_error, h->ud);
}
