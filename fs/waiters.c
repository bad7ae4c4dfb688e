/* waiters.c — parked flock/SETLKW requests. A blocking lock request is not
 * answered from its worker thread: it is parked here and the scheduler
 * retries it with the mount's backoff (capped, jittered) — brought forward
 * to the moment the holder's lock stops being live when the backend said
 * when that is, at once when a local holder of the key lets go, at once
 * when the backend announces a release of the key (a wake-up subscription
 * per key with waiters: subscribed when its first waiter parks, dropped
 * when its last leaves) — and answers EINTR as soon as libfuse reports an
 * interrupt. The queue itself (order, per-key counts) is waitq.c's; this
 * file is its FUSE side and the attempts. */
#include "sgfs.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static waiter *waiter_of(wq_entry *e)
{
    return (waiter *)((char *)e - offsetof(waiter, q));
}

static void on_interrupt(fuse_req_t req, void *data)
{
    waiter *w = data;
    sgfs *fs = sgfs_of(req);
    pthread_mutex_lock(&fs->mu);
    w->q.interrupted = true;
    pthread_cond_broadcast(&fs->sched_cv);
    pthread_mutex_unlock(&fs->mu);
}

/* Schedule w's next attempt and put it on the list. mu held. */
static void link_waiter(sgfs *fs, waiter *w, int64_t now)
{
    sg_acquire_opts o = {.retry_delay_ms = fs->cfg.retry_delay_ms,
                         .max_delay_ms = fs->cfg.max_delay_ms,
                         .backoff = fs->cfg.backoff,
                         .jitter = fs->cfg.jitter};
    int64_t next_ms = now + sg_retry_delay_ms(&o, w->attempt, INT64_MAX / 4, sgfs_rand01());
    if (w->free_at_ms > 0 && w->free_at_ms < next_ms) {
        next_ms = w->free_at_ms > now ? w->free_at_ms : now + 1;
        metrics_event_add(M_WAKE_EXPIRY);
    }
    if (waitq_push(&fs->wq, &w->q, next_ms)) { /* the key's first waiter */
        w->q.kw->tried = false;
        fs->keywatch_dirty = true;
    }
    pthread_cond_broadcast(&fs->sched_cv);
}

static void unlink_waiter(sgfs *fs, waiter *w)
{
    if (waitq_remove(&fs->wq, &w->q)) /* the key's last waiter */
        fs->keywatch_dirty = true;
}

/* A release of kw's key was announced (or its subscription is in place, or
 * the subscriber reconnected): attempt its waiters now. Runs on the
 * backend's subscriber thread; takes mu (never held while calling the core). */
static void on_key_wake(void *ud)
{
    waitq_key *kw = ud;
    sgfs *fs = kw->owner;
    pthread_mutex_lock(&fs->mu);
    kw->woken++;
    if (waitq_wake_key(&fs->wq, kw->key, sg_monotonic_ms()) > 0) {
        metrics_event_add(M_WAKE_PUSH);
        pthread_cond_broadcast(&fs->sched_cv);
    }
    pthread_mutex_unlock(&fs->mu);
}

/* Subscribe keys that gained waiters, unsubscribe and free those that have
 * none left. Scheduler thread only; mu held, dropped around the core calls
 * (unwatch waits for a running on_key_wake, which takes mu). */
static void keywatches_sync(sgfs *fs)
{
    if (!fs->keywatch_dirty)
        return;
    fs->keywatch_dirty = false;
    for (waitq_key *kw = fs->wq.keys, *next; kw; kw = next) {
        if (kw->waiters > 0 && !kw->watch && !kw->tried) {
            kw->tried = true; /* once per episode: Firestore has no push */
            pthread_mutex_unlock(&fs->mu);
            sg_watch *x = sg_watch_key(fs->b, kw->key, on_key_wake, kw);
            pthread_mutex_lock(&fs->mu);
            kw->watch = x;
        } else if (kw->waiters == 0) {
            if (kw->watch) {
                sg_watch *x = kw->watch;
                kw->watch = NULL;
                pthread_mutex_unlock(&fs->mu);
                sg_unwatch(fs->b, x);
                pthread_mutex_lock(&fs->mu);
            }
            if (kw->waiters == 0) { /* nobody parked meanwhile */
                /* keys are only added at the head and only this thread
                 * removes them: kw->next is still the next one */
                next = kw->next;
                waitq_key_free(&fs->wq, kw);
                continue;
            }
            kw->tried = false;
            fs->keywatch_dirty = true;
        }
        next = kw->next;
    }
}

void sgfs_keywatches_free(sgfs *fs)
{
    pthread_mutex_lock(&fs->mu);
    waitq_key *kw;
    while ((kw = waitq_key_pop(&fs->wq))) {
        pthread_mutex_unlock(&fs->mu);
        sg_unwatch(fs->b, kw->watch);
        free(kw);
        pthread_mutex_lock(&fs->mu);
    }
    pthread_mutex_unlock(&fs->mu);
}

void sgfs_park(sgfs *fs, fuse_req_t req, handle *h, wkind kind, uint64_t posix_owner, uid_t uid,
               const sg_holder *holder)
{
    waiter *w = calloc(1, sizeof *w);
    if (!w) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    w->req = req;
    w->h = h;
    w->kind = kind;
    w->attempt = 1;
    w->posix_owner = posix_owner;
    w->uid = uid;
    w->free_at_ms = holder ? holder->free_at_mono_ms : 0;
    pthread_mutex_lock(&fs->mu);
    w->q.kw = waitq_key_get(&fs->wq, h->node->key, fs);
    w->q.key = h->node->key;
    link_waiter(fs, w, sg_monotonic_ms());
    pthread_mutex_unlock(&fs->mu);
    /* not under mu: libfuse may call on_interrupt right here */
    fuse_req_interrupt_func(req, on_interrupt, w);
}

void sgfs_wake_waiters(sgfs *fs, const node *n)
{
    waitq_wake_key(&fs->wq, n->key, sg_monotonic_ms());
    pthread_cond_broadcast(&fs->sched_cv);
    pthread_cond_broadcast(&fs->idle_cv);
}

/* Reply to a parked request and free it (mu not held). */
static void finish(waiter *w, int err)
{
    /* Unregister first: this waits for a running interrupt callback, after
     * which none can touch w. */
    fuse_req_interrupt_func(w->req, NULL, NULL);
    if (err == EINTR)
        metrics_event_add(M_INTERRUPTED);
    fuse_reply_err(w->req, err);
    free(w);
}

/* One attempt for a due waiter (mu held on entry and exit, dropped inside). */
static void attempt(sgfs *fs, waiter *w)
{
    unlink_waiter(fs, w);
    unsigned long woken = w->q.kw ? w->q.kw->woken : 0;
    pthread_mutex_unlock(&fs->mu);
    sg_error err;
    sg_holder holder;
    sg_status st = sgfs_try_acquire(fs, w->h, w->uid, &holder, &err);
    pthread_mutex_lock(&fs->mu);
    if (st == SG_OK && w->kind == W_SETLK) {
        w->h->posix = true;
        w->h->posix_owner = w->posix_owner;
    }
    int reply = -1;
    if (w->q.interrupted) {
        reply = EINTR;
        if (st == SG_OK) { /* granted after the caller gave up: give it back */
            pthread_mutex_unlock(&fs->mu);
            sgfs_release_handle(fs, w->h, H_WATCHING);
            pthread_mutex_lock(&fs->mu);
        }
    } else if (st == SG_OK) {
        reply = 0;
    } else if (st == SG_ERROR) {
        reply = sgfs_log_error("waiting acquire", &err);
    } else {
        w->attempt++;
        w->free_at_ms = holder.free_at_mono_ms;
        link_waiter(fs, w, sg_monotonic_ms());
        if (w->q.kw && w->q.kw->woken != woken) /* announced while we were asking */
            w->q.next_ms = sg_monotonic_ms();
    }
    if (reply >= 0) {
        pthread_mutex_unlock(&fs->mu);
        finish(w, reply);
        pthread_mutex_lock(&fs->mu);
    }
}

int64_t sgfs_waiters_run(sgfs *fs, int64_t now)
{
    keywatches_sync(fs);
    /* one at a time, in the queue's order (waitq.h): the list changes
     * while mu is dropped, so the next one is looked up afresh */
    wq_entry *e;
    while ((e = waitq_first_due(&fs->wq, now, atomic_load(&fs->draining)))) {
        waiter *w = waiter_of(e);
        if (e->interrupted) {
            unlink_waiter(fs, w);
            pthread_mutex_unlock(&fs->mu);
            finish(w, EINTR);
            pthread_mutex_lock(&fs->mu);
        } else {
            attempt(fs, w);
            now = sg_monotonic_ms();
        }
    }
    keywatches_sync(fs); /* keys whose last waiter was just served */
    return waitq_next_ms(&fs->wq);
}

void sgfs_waiters_free(sgfs *fs)
{
    while (fs->wq.head) {
        waiter *w = waiter_of(fs->wq.head);
        unlink_waiter(fs, w);
        free(w);
    }
}
