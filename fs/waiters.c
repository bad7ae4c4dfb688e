/* waiters.c — parked flock/SETLKW requests. A blocking lock request is not
 * answered from its worker thread: it is parked here and the scheduler
 * retries it with the mount's backoff (capped, jittered), at once when a
 * local holder of the key lets go, and answers EINTR as soon as libfuse
 * reports an interrupt. */
#include "sgfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static void on_interrupt(fuse_req_t req, void *data)
{
    waiter *w = data;
    sgfs *fs = sgfs_of(req);
    pthread_mutex_lock(&fs->mu);
    w->interrupted = true;
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
    w->next_ms = now + sg_retry_delay_ms(&o, w->attempt, INT64_MAX / 4, sgfs_rand01());
    w->prev = NULL;
    w->next = fs->waiters;
    if (fs->waiters)
        fs->waiters->prev = w;
    fs->waiters = w;
    fs->n_waiters++;
    pthread_cond_broadcast(&fs->sched_cv);
}

static void unlink_waiter(sgfs *fs, waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        fs->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    fs->n_waiters--;
}

void sgfs_park(sgfs *fs, fuse_req_t req, handle *h, wkind kind, uint64_t posix_owner, uid_t uid)
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
    pthread_mutex_lock(&fs->mu);
    link_waiter(fs, w, sg_monotonic_ms());
    pthread_mutex_unlock(&fs->mu);
    /* not under mu: libfuse may call on_interrupt right here */
    fuse_req_interrupt_func(req, on_interrupt, w);
}

void sgfs_wake_waiters(sgfs *fs, const node *n)
{
    int64_t now = sg_monotonic_ms();
    for (waiter *w = fs->waiters; w; w = w->next)
        if (w->h->node == n || !strcmp(w->h->node->key, n->key))
            w->next_ms = now;
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
    pthread_mutex_unlock(&fs->mu);
    sg_error err;
    sg_status st = sgfs_try_acquire(fs, w->h, w->uid, &err);
    pthread_mutex_lock(&fs->mu);
    if (st == SG_OK && w->kind == W_SETLK) {
        w->h->posix = true;
        w->h->posix_owner = w->posix_owner;
    }
    int reply = -1;
    if (w->interrupted) {
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
        link_waiter(fs, w, sg_monotonic_ms());
    }
    if (reply >= 0) {
        pthread_mutex_unlock(&fs->mu);
        finish(w, reply);
        pthread_mutex_lock(&fs->mu);
    }
}

int64_t sgfs_waiters_run(sgfs *fs, int64_t now)
{
    for (waiter *w = fs->waiters, *next; w; w = next) {
        next = w->next;
        if (w->interrupted) {
            unlink_waiter(fs, w);
            pthread_mutex_unlock(&fs->mu);
            finish(w, EINTR);
            pthread_mutex_lock(&fs->mu);
            next = fs->waiters; /* the list may have changed */
        } else if (w->next_ms <= now || atomic_load(&fs->draining)) {
            attempt(fs, w);
            next = fs->waiters;
            now = sg_monotonic_ms();
        }
    }
    int64_t wake = INT64_MAX;
    for (waiter *w = fs->waiters; w; w = w->next)
        if (w->next_ms < wake)
            wake = w->next_ms;
    return wake;
}

void sgfs_waiters_free(sgfs *fs)
{
    while (fs->waiters) {
        waiter *w = fs->waiters;
        unlink_waiter(fs, w);
        free(w);
    }
}
