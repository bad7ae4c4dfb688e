/* renewer.c — keeps many leases alive under the one lease rule of lease.c
 * (SPEC section 5, "Renewal and loss"), and the heartbeat built on a
 * one-lease renewer (heartbeat.c).
 *
 * The renewer has one timing thread and a few workers. The timing thread
 * sleeps on a min-heap keyed on each lease's next event (renewal due, or its
 * deadline while an extend is queued or in flight), moves due leases to the
 * work queue and declares loss at the deadline; it never makes a backend call,
 * so no hung call can delay a loss. Workers take leases from the queue and
 * extend them, one operation per lease at a time; a hung call pins its worker
 * only. Everything is guarded by one mutex that is never held across a
 * backend call or a callback.
 *
 * Batches: when the backend extends many locks in one round trip
 * (extend_many: Redis, PostgreSQL), the timing thread queues renewals due
 * within a window (batch_window_ms) together and a worker takes up to
 * SG_EXTEND_BATCH_MAX of them into one sg_extend_many (renewer_batch.c). Each
 * lease gets its own result; a hung batch pins one worker, and its leases
 * are lost at their own deadlines like any lease with a call in flight.
 *
 * Lifetime: a lease with an operation in flight belongs to that operation
 * (it is freed by whoever finishes the call once the lease has been removed,
 * lost or stopped). The renewer is reference-counted: the owner, each thread
 * (all detached) and each sg_renewer_extend in progress hold a reference, so
 * sg_renewer_stop never waits for a backend call and nothing is freed under a
 * call still running. */
#include "syncguard.h"
#include "syncguard_backend.h"
#include "random_i.h"
#include "renewer_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the renewer (its state: renewer_i.h) ---- */
#define NO_INDEX UINT32_MAX
/* Renewals due within ttl/100 (at most 20 ms) are taken in one wake-up of
 * the timing thread: renewing that little early costs nothing and batches
 * the wake-ups of many leases. Deadlines are never early. */
static int64_t renew_slack_ms(int64_t ttl_ms)
{
    return ttl_ms / 100 < 20 ? ttl_ms / 100 : 20;
}

/* Batched renewers gather more: renewals due within ttl/20 (at most 250 ms)
 * go out together, so 10 000 renewals/s make a few wake-ups and full
 * batches (never later than the lease rule, at most 15 % of its interval
 * early). */
static int64_t batch_window_ms(int64_t ttl_ms)
{
    return ttl_ms / 20 < 250 ? ttl_ms / 20 : 250;
}

/* The renewer whose on_lost this thread is running (stop called from it must
 * not wait for itself). */
static _Thread_local sg_renewer *tl_in_callback;

static void lease_free(lease *l)
{
    free(l->last_err);
    free(l);
}

/* ---- heap on wake_ms ---- */
static void heap_sift(sg_renewer *r, size_t i)
{
    slot x = r->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (r->heap[p].wake_ms <= x.wake_ms)
            break;
        r->heap[i] = r->heap[p];
        r->heap[i].l->heap_idx = (uint32_t)i;
        i = p;
    }
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= r->heap_n)
            break;
        if (c + 1 < r->heap_n && r->heap[c + 1].wake_ms < r->heap[c].wake_ms)
            c++;
        if (r->heap[c].wake_ms >= x.wake_ms)
            break;
        r->heap[i] = r->heap[c];
        r->heap[i].l->heap_idx = (uint32_t)i;
        i = c;
    }
    r->heap[i] = x;
    x.l->heap_idx = (uint32_t)i;
}

static void heap_remove(sg_renewer *r, lease *l)
{
    size_t i = l->heap_idx;
    l->heap_idx = NO_INDEX;
    if (i != --r->heap_n) {
        r->heap[i] = r->heap[r->heap_n];
        heap_sift(r, i);
    }
}

/* Recompute l's next event, reposition it, and wake the timing thread if it
 * now comes before the time it sleeps until. */
static void set_wake(sg_renewer *r, lease *l)
{
    int64_t wake =
        l->state == L_IDLE && l->due_ms < l->deadline_ms ? l->due_ms : l->deadline_ms;
    r->heap[l->heap_idx].wake_ms = wake;
    heap_sift(r, l->heap_idx);
    if (wake < r->timer_wake_ms)
        pthread_cond_signal(&r->timer_cv);
}

/* ---- id → lease ---- */
static size_t bucket_of(const sg_renewer *r, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 32) & (r->nbuckets - 1);
}

static lease *find(const sg_renewer *r, uint64_t id)
{
    if (!r->nbuckets)
        return NULL;
    lease *l = r->buckets[bucket_of(r, id)];
    while (l && l->id != id)
        l = l->hnext;
    return l;
}

static bool hash_grow(sg_renewer *r)
{
    size_t n = r->nbuckets ? r->nbuckets * 2 : 64;
    lease **nb = calloc(n, sizeof *nb);
    if (!nb)
        return false;
    lease **old = r->buckets;
    size_t oldn = r->nbuckets;
    r->buckets = nb;
    r->nbuckets = n;
    for (size_t i = 0; i < oldn; i++)
        for (lease *l = old[i], *next; l; l = next) {
            next = l->hnext;
            size_t b = bucket_of(r, l->id);
            l->hnext = nb[b];
            nb[b] = l;
        }
    free(old);
    return true;
}

static void hash_unlink(sg_renewer *r, lease *l)
{
    lease **p = &r->buckets[bucket_of(r, l->id)];
    while (*p != l)
        p = &(*p)->hnext;
    *p = l->hnext;
    l->hnext = NULL;
    r->count--;
}

/* ---- work queue (FIFO) ---- */
static void queue_push(sg_renewer *r, lease *l)
{
    l->qnext = NULL;
    l->qprev = r->qtail;
    if (r->qtail)
        r->qtail->qnext = l;
    else
        r->qhead = l;
    r->qtail = l;
}

void renewer_queue_unlink(sg_renewer *r, lease *l)
{
    if (l->qprev)
        l->qprev->qnext = l->qnext;
    else
        r->qhead = l->qnext;
    if (l->qnext)
        l->qnext->qprev = l->qprev;
    else
        r->qtail = l->qprev;
    l->qprev = l->qnext = NULL;
}

/* ---- lifetime ---- */
static void renewer_destroy(sg_renewer *r)
{
    free(r->heap);
    free(r->buckets);
    pthread_cond_destroy(&r->timer_cv);
    pthread_cond_destroy(&r->work_cv);
    pthread_cond_destroy(&r->op_cv);
    pthread_cond_destroy(&r->quiet_cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Drop a reference; mu held on entry, released on return. */
static void unref_unlock(sg_renewer *r)
{
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        renewer_destroy(r);
}

/* Take l out of the map, the heap and the queue with the given fate. A lease
 * with an operation in flight is left to that operation to free. */
static void detach(sg_renewer *r, lease *l, uint8_t fate)
{
    hash_unlink(r, l);
    heap_remove(r, l);
    if (l->state == L_QUEUED)
        renewer_queue_unlink(r, l);
    l->fate = fate;
    if (l->state != L_BUSY)
        lease_free(l);
    if (r->op_waiters)
        pthread_cond_broadcast(&r->op_cv);
}

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ms)
{
    struct timespec ts = {(time_t)(until_ms / 1000), (long)(until_ms % 1000) * 1000000L};
    pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- loss ---- */
typedef struct loss {
    uint64_t id;
    char lock_id[SG_LOCK_ID_LEN + 1];
    sg_error why;
} loss;

static void copy_text(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Describe the loss of l into *lo. */
static void describe(const lease *l, bool at_deadline, loss *lo)
{
    lo->id = l->id;
    memcpy(lo->lock_id, l->lock_id, sizeof lo->lock_id);
    sg_error_clear(&lo->why);
    if (at_deadline) {
        sg_error_set(&lo->why, SG_E_NETWORK_TIMEOUT,
                     "renewal deadline passed: no extend succeeded within %lld ms of the "
                     "last one sent",
                     (long long)(l->ttl_ms - sg_lease_margin_ms(l->ttl_ms)));
        if (l->last_err) {
            char buf[sizeof lo->why.cause + 256];
            copy_text(lo->why.cause, sizeof lo->why.cause,
                      sg_error_format(l->last_err, buf, sizeof buf));
        } else {
            copy_text(lo->why.cause, sizeof lo->why.cause,
                      l->state == L_BUSY ? "an extend was still in flight"
                                         : "no extend could be sent in time");
        }
    } else {
        sg_error_set(&lo->why, SG_E_INTERNAL, "lock expired or was released elsewhere");
    }
    memcpy(lo->why.lock_id, l->lock_id, sizeof lo->why.lock_id);
}

/* Declare l lost (mu held): describe it into *lo, count it, detach it. */
static void lose(sg_renewer *r, lease *l, bool at_deadline, loss *lo)
{
    describe(l, at_deadline, lo);
    r->lost++;
    detach(r, l, F_LOST);
}

/* Run on_lost for *lo without the lock (mu held on entry and on return). */
static void report(sg_renewer *r, const loss *lo)
{
    if (r->stopping || !r->on_lost)
        return;
    r->callbacks++;
    sg_renewer *outer = tl_in_callback;
    tl_in_callback = r;
    pthread_mutex_unlock(&r->mu);
    r->on_lost(lo->id, lo->lock_id, &lo->why, r->ud);
    pthread_mutex_lock(&r->mu);
    tl_in_callback = outer;
    r->callbacks--;
    if (r->stopping)
        pthread_cond_broadcast(&r->quiet_cv);
}

static int64_t renew_after(const sg_renewer *r, int64_t ttl_ms)
{
    return r->fixed_interval_ms ? r->fixed_interval_ms
                                : sg_lease_renew_after_ms(ttl_ms, sg_uniform01());
}

static void warn_retry(sg_renewer *r, const lease *l, const sg_error *e, int64_t now)
{
    if (now - r->warned_ms < 1000 && r->warned_ms) {
        r->unwarned++;
        return;
    }
    char buf[600];
    sg_log(SG_LOG_WARN, "extend of lease %llu failed, retrying before its deadline: %s%s",
           (unsigned long long)l->id, sg_error_format(e, buf, sizeof buf),
           r->unwarned ? " (and other failures in the last second)" : "");
    r->warned_ms = now;
    r->unwarned = 0;
}

void renewer_call_ended(sg_renewer *r, bool counted)
{
    r->calls -= counted;
    if (r->stopping)
        pthread_cond_broadcast(&r->quiet_cv);
    if (r->op_waiters)
        pthread_cond_broadcast(&r->op_cv);
}

/* Extend l (state L_BUSY, mu held; released during the call) and apply the
 * result (renewer_apply). */
static sg_status extend_once(sg_renewer *r, lease *l, int64_t ttl_ms, bool user,
                             int64_t *expires_at_ms, sg_error *e)
{
    r->calls += !user; /* a caller's own extend is not the renewer's to wait for */
    pthread_mutex_unlock(&r->mu);
    sg_error_clear(e);
    int64_t exp = 0, sent = sg_monotonic_ms();
    /* l->lock_id is not written while l is busy, nor l freed */
    sg_status st = sg_extend(r->backend, l->lock_id, ttl_ms, &exp, e);
    pthread_mutex_lock(&r->mu);
    renewer_call_ended(r, !user);
    return renewer_apply(r, l, st, exp, sent, ttl_ms, user, expires_at_ms, e);
}

sg_status renewer_apply(sg_renewer *r, lease *l, sg_status st, int64_t exp, int64_t sent,
                        int64_t ttl_ms, bool user, int64_t *expires_at_ms, const sg_error *e)
{
    if (l->fate != F_LIVE) {
        /* Removed, lost or stopped during the call: the result is ignored.
         * But a lease lost at its deadline whose extend went through holds
         * the lock again: release it so it is not left held. */
        bool release = st == SG_OK && l->fate == F_LOST && !r->stopping;
        char lock_id[SG_LOCK_ID_LEN + 1];
        memcpy(lock_id, l->lock_id, sizeof lock_id);
        lease_free(l);
        if (release) {
            r->calls++;
            pthread_mutex_unlock(&r->mu);
            sg_error re;
            if (sg_release(r->backend, lock_id, &re) == SG_ERROR)
                sg_log(SG_LOG_WARN, "could not release lock %s after a late extend: %s",
                       lock_id, re.message);
            pthread_mutex_lock(&r->mu);
            r->calls--;
            if (r->stopping)
                pthread_cond_broadcast(&r->quiet_cv);
        }
        return SG_ABSENT;
    }
    l->state = L_IDLE;
    if (st == SG_OK) {
        r->renewed++;
        l->ttl_ms = ttl_ms;
        l->deadline_ms = sg_lease_deadline_ms(sent, ttl_ms);
        l->due_ms = sent + renew_after(r, ttl_ms);
        l->expires_at_ms = exp;
        free(l->last_err);
        l->last_err = NULL;
        set_wake(r, l);
        if (expires_at_ms)
            *expires_at_ms = exp;
        return SG_OK;
    }
    r->failed++;
    if (st == SG_ABSENT && user) {
        /* on_lost runs on a renewer thread, never on the caller's (which
         * may hold a lock its on_lost takes): hand it to the timing thread. */
        r->lost++;
        l->state = L_BUSY; /* kept: it carries the report */
        detach(r, l, F_LOST);
        l->qnext = r->pending;
        r->pending = l;
        pthread_cond_signal(&r->timer_cv);
        return SG_ABSENT;
    }
    if (st == SG_ABSENT) {
        loss lo;
        lose(r, l, false, &lo);
        report(r, &lo);
        return SG_ABSENT;
    }
    /* Transient: remember why (the cause of a loss at the deadline). */
    if (!l->last_err)
        l->last_err = malloc(sizeof *l->last_err);
    if (l->last_err)
        *l->last_err = *e;
    if (!user) {
        int64_t now = sg_monotonic_ms();
        l->due_ms = now + sg_lease_retry_after_ms(l->ttl_ms, now, l->deadline_ms, sg_uniform01());
        warn_retry(r, l, e, now);
    }
    set_wake(r, l);
    return SG_ERROR;
}

static void *timer_main(void *arg)
{
    sg_renewer *r = arg;
    pthread_mutex_lock(&r->mu);
    unsigned queued = 0; /* since the workers were last woken */
    while (!r->stopping) {
        int64_t now = sg_monotonic_ms();
        lease *l = r->heap_n ? r->heap[0].l : NULL;
        int64_t slack = !l             ? 0
                        : r->batched ? batch_window_ms(l->ttl_ms)
                                     : renew_slack_ms(l->ttl_ms);
        if (l && l->state == L_IDLE && l->due_ms <= now + slack && l->deadline_ms > now) {
            l->state = L_QUEUED;
            queue_push(r, l);
            set_wake(r, l);
            queued++;
            continue;
        }
        if (r->batched) /* a worker per batch */
            queued = (queued + SG_EXTEND_BATCH_MAX - 1) / SG_EXTEND_BATCH_MAX;
        for (unsigned i = 0; i < queued && i < r->idle_workers; i++)
            pthread_cond_signal(&r->work_cv);
        queued = 0;
        if (r->pending) {
            lease *p = r->pending;
            r->pending = p->qnext;
            loss lo;
            describe(p, false, &lo);
            lease_free(p);
            report(r, &lo);
            continue;
        }
        if (l && l->deadline_ms <= now) {
            loss lo;
            lose(r, l, true, &lo);
            report(r, &lo);
            continue;
        }
        r->timer_wake_ms = l ? r->heap[0].wake_ms : INT64_MAX;
        if (l)
            timed_wait(&r->timer_cv, &r->mu, r->timer_wake_ms);
        else
            pthread_cond_wait(&r->timer_cv, &r->mu);
        r->timer_wake_ms = INT64_MIN;
    }
    unref_unlock(r);
    return NULL;
}

static void *worker_main(void *arg)
{
    sg_renewer *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stopping && !r->qhead) {
            r->idle_workers++;
            pthread_cond_wait(&r->work_cv, &r->mu);
            r->idle_workers--;
        }
        if (r->stopping)
            break;
        if (r->batched) {
            renewer_extend_batch(r);
            continue;
        }
        lease *l = r->qhead;
        renewer_queue_unlink(r, l);
        l->state = L_BUSY;
        sg_error e;
        extend_once(r, l, l->ttl_ms, false, NULL, &e);
    }
    unref_unlock(r);
    return NULL;
}

static bool spawn(sg_renewer *r, void *(*fn)(void *))
{
    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&r->mu);
    r->refs++;
    pthread_mutex_unlock(&r->mu);
    int rc = pthread_create(&t, &a, fn, r);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        pthread_mutex_lock(&r->mu);
        r->refs--;
        pthread_mutex_unlock(&r->mu);
    }
    return rc == 0;
}

static sg_status start(sg_backend *b, unsigned workers, int64_t fixed_interval_ms, bool batched,
                       sg_lease_lost_fn on_lost, void *ud, sg_renewer **out, sg_error *err)
{
    if (!b || !out)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "renewer: no backend");
    sg_renewer *r = calloc(1, sizeof *r);
    if (!r)
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->timer_cv, &ca);
    pthread_cond_init(&r->quiet_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&r->work_cv, NULL);
    pthread_cond_init(&r->op_cv, NULL);
    pthread_mutex_init(&r->mu, NULL);
    r->backend = b;
    r->on_lost = on_lost;
    r->ud = ud;
    r->fixed_interval_ms = fixed_interval_ms;
    r->batched = batched;
    r->timer_wake_ms = INT64_MIN;
    r->refs = 1;
    if (!hash_grow(r)) {
        renewer_destroy(r);
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    }
    if (!spawn(r, timer_main)) {
        renewer_destroy(r);
        return sg_error_set(err, SG_E_INTERNAL, "cannot start the renewer's timing thread");
    }
    unsigned started = 0;
    for (unsigned i = 0; i < (workers ? workers : 8); i++)
        started += spawn(r, worker_main);
    if (!started) {
        sg_renewer_stop(r);
        return sg_error_set(err, SG_E_INTERNAL, "cannot start the renewer's workers");
    }
    *out = r;
    return SG_OK;
}

sg_status sg_renewer_start_fixed(sg_backend *b, unsigned workers, int64_t fixed_interval_ms,
                                 sg_lease_lost_fn on_lost, void *ud, sg_renewer **out,
                                 sg_error *err)
{
    return start(b, workers, fixed_interval_ms, false, on_lost, ud, out, err);
}

sg_status sg_renewer_start(sg_backend *b, unsigned workers, sg_lease_lost_fn on_lost, void *ud,
                           sg_renewer **out, sg_error *err)
{
    return start(b, workers, 0, b && b->ops->extend_many, on_lost, ud, out, err);
}

uint64_t sg_renewer_add(sg_renewer *r, const char *lock_id, int64_t ttl_ms, int64_t sent_ms)
{
    if (!r || !sg_lock_id_valid(lock_id) || sg_ttl_check(ttl_ms, NULL) != SG_OK)
        return 0;
    lease *l = calloc(1, sizeof *l);
    if (!l)
        return 0;
    memcpy(l->lock_id, lock_id, sizeof l->lock_id);
    l->ttl_ms = ttl_ms;
    l->deadline_ms = sg_lease_deadline_ms(sent_ms, ttl_ms);
    l->state = L_IDLE;
    l->fate = F_LIVE;
    pthread_mutex_lock(&r->mu);
    l->due_ms = sent_ms + renew_after(r, ttl_ms);
    if (r->heap_n == r->heap_cap) {
        size_t cap = r->heap_cap ? r->heap_cap * 2 : 64;
        slot *h = realloc(r->heap, cap * sizeof *h);
        if (!h)
            goto fail;
        r->heap = h;
        r->heap_cap = cap;
    }
    if (r->stopping || (r->count >= r->nbuckets && !hash_grow(r)))
        goto fail;
    l->id = ++r->next_id;
    size_t b = bucket_of(r, l->id);
    l->hnext = r->buckets[b];
    r->buckets[b] = l;
    r->count++;
    l->heap_idx = (uint32_t)r->heap_n;
    r->heap[r->heap_n++].l = l;
    set_wake(r, l);
    uint64_t id = l->id;
    pthread_mutex_unlock(&r->mu);
    return id;
fail:
    pthread_mutex_unlock(&r->mu);
    free(l);
    return 0;
}

bool sg_renewer_remove(sg_renewer *r, uint64_t id)
{
    if (!r)
        return false;
    pthread_mutex_lock(&r->mu);
    lease *l = find(r, id);
    if (l)
        detach(r, l, F_REMOVED);
    pthread_mutex_unlock(&r->mu);
    return l != NULL;
}

sg_status sg_renewer_extend(sg_renewer *r, uint64_t id, int64_t ttl_ms, int64_t *expires_at_ms,
                            sg_error *err)
{
    sg_error_clear(err);
    if (!r)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "renewer: none");
    if (sg_ttl_check(ttl_ms, err) != SG_OK)
        return SG_ERROR;
    pthread_mutex_lock(&r->mu);
    r->refs++; /* the renewer outlives this call, even if stopped meanwhile */
    lease *l;
    r->op_waiters++;
    while ((l = find(r, id)) && l->state == L_BUSY)
        pthread_cond_wait(&r->op_cv, &r->mu); /* re-found each time: it may be freed */
    r->op_waiters--;
    if (!l) {
        unref_unlock(r);
        return SG_ABSENT;
    }
    if (l->state == L_QUEUED)
        renewer_queue_unlink(r, l);
    l->state = L_BUSY;
    set_wake(r, l);
    sg_error e;
    sg_status st = extend_once(r, l, ttl_ms, true, expires_at_ms, &e);
    if (st == SG_ERROR && err)
        *err = e;
    unref_unlock(r);
    return st;
}

int64_t sg_renewer_deadline(sg_renewer *r, uint64_t id)
{
    if (!r)
        return 0;
    pthread_mutex_lock(&r->mu);
    lease *l = find(r, id);
    int64_t d = l ? l->deadline_ms : 0;
    pthread_mutex_unlock(&r->mu);
    return d;
}

int64_t sg_renewer_expires_at(sg_renewer *r, uint64_t id)
{
    if (!r)
        return 0;
    pthread_mutex_lock(&r->mu);
    lease *l = find(r, id);
    int64_t e = l ? l->expires_at_ms : 0;
    pthread_mutex_unlock(&r->mu);
    return e;
}

void sg_renewer_stats(sg_renewer *r, uint64_t *renewed, uint64_t *failed, uint64_t *lost)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    if (renewed)
        *renewed = r->renewed;
    if (failed)
        *failed = r->failed;
    if (lost)
        *lost = r->lost;
    pthread_mutex_unlock(&r->mu);
}

bool sg_renewer_stop_wait(sg_renewer *r, int64_t wait_ms)
{
    if (!r)
        return true;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    for (size_t i = 0; i < r->nbuckets; i++) {
        for (lease *l = r->buckets[i], *next; l; l = next) {
            next = l->hnext;
            l->hnext = l->qprev = l->qnext = NULL;
            l->heap_idx = NO_INDEX;
            l->fate = F_STOPPED;
            if (l->state != L_BUSY)
                lease_free(l); /* else its call frees it when it returns */
        }
        r->buckets[i] = NULL;
    }
    r->count = r->heap_n = 0;
    r->qhead = r->qtail = NULL;
    while (r->pending) {
        lease *p = r->pending;
        r->pending = p->qnext;
        lease_free(p);
    }
    pthread_cond_broadcast(&r->timer_cv);
    pthread_cond_broadcast(&r->work_cv);
    pthread_cond_broadcast(&r->op_cv);
    unsigned self = tl_in_callback == r;
    while (r->callbacks > self)
        pthread_cond_wait(&r->quiet_cv, &r->mu);
    int64_t end = wait_ms > 0 ? sg_monotonic_ms() + wait_ms : 0;
    while (r->calls > 0 && wait_ms != 0) {
        if (wait_ms < 0)
            pthread_cond_wait(&r->quiet_cv, &r->mu);
        else if (sg_monotonic_ms() < end)
            timed_wait(&r->quiet_cv, &r->mu, end);
        else
            break;
    }
    bool quiet = r->calls == 0;
    unref_unlock(r);
    return quiet;
}

void sg_renewer_stop(sg_renewer *r)
{
    sg_renewer_stop_wait(r, 0);
}
