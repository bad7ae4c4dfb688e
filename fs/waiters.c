/* waiters.c — parked flock/SETLKW requests. A blocking lock request is not
 * answered from its worker thread: it is parked here and the scheduler
 * retries it with the mount's backoff (capped, jittered) — brought forward
 * to the moment the holder's lock stops being live when the backend said
 * when that is, at once when a local holder of the key lets go, at once
 * when the backend announces a release of the key (a wake-up subscription
 * per key with waiters: subscribed when its first waiter parks, dropped
 * when its last leaves) — and answers EINTR as soon as libfuse reports an
 * interrupt. */
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

/* The key's subscription entry, created if needed (NULL on ENOMEM: the
 * waiter polls). mu held. */
static keywatch *keywatch_get(sgfs *fs, const char *key)
{
    for (keywatch *kw = fs->keywatches; kw; kw = kw->next)
        if (!strcmp(kw->key, key))
            return kw;
    size_t n = strlen(key) + 1;
    keywatch *kw = calloc(1, sizeof *kw + n);
    if (!kw)
        return NULL;
    kw->fs = fs;
    memcpy(kw->key, key, n);
    kw->next = fs->keywatches;
    fs->keywatches = kw;
    return kw;
}

/* Schedule w's next attempt and put it on the list. mu held. */
static void link_waiter(sgfs *fs, waiter *w, int64_t now)
{
    sg_acquire_opts o = {.retry_delay_ms = fs->cfg.retry_delay_ms,
                         .max_delay_ms = fs->cfg.max_delay_ms,
                         .backoff = fs->cfg.backoff,
                         .jitter = fs->cfg.jitter};
    w->next_ms = now + sg_retry_delay_ms(&o, w->attempt, INT64_MAX / 4, sgfs_rand01());
    if (w->free_at_ms > 0 && w->free_at_ms < w->next_ms) {
        w->next_ms = w->free_at_ms > now ? w->free_at_ms : now + 1;
        metrics_event_add(M_WAKE_EXPIRY);
    }
    if (w->kw && w->kw->waiters++ == 0) {
        w->kw->tried = false;
        fs->keywatch_dirty = true;
    }
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
    if (w->kw && --w->kw->waiters == 0)
        fs->keywatch_dirty = true;
}

/* A release of kw's key was announced (or its subscription is in place, or
 * the subscriber reconnected): attempt its waiters now. Runs on the
 * backend's subscriber thread; takes mu (never held while calling the core). */
static void on_key_wake(void *ud)
{
    keywatch *kw = ud;
    sgfs *fs = kw->fs;
    pthread_mutex_lock(&fs->mu);
    int64_t now = sg_monotonic_ms();
    bool any = false;
    kw->woken++;
    for (waiter *w = fs->waiters; w; w = w->next)
        if (w->kw == kw) {
            w->next_ms = now;
            any = true;
        }
    if (any) {
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
    for (keywatch **pp = &fs->keywatches; *pp;) {
        keywatch *kw = *pp;
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
                /* new entries are only added at the head: *pp is still kw's link
                 * unless kw was the head and one was added; find it again */
                pp = &fs->keywatches;
                while (*pp != kw)
                    pp = &(*pp)->next;
                *pp = kw->next;
                free(kw);
                continue;
            }
            kw->tried = false;
            fs->keywatch_dirty = true;
        }
        pp = &(*pp)->next;
    }
}

void sgfs_keywatches_free(sgfs *fs)
{
    pthread_mutex_lock(&fs->mu);
    while (fs->keywatches) {
        keywatch *kw = fs->keywatches;
        fs->keywatches = kw->next;
        for (waiter *w = fs->waiters; w; w = w->next)
            if (w->kw == kw)
                w->kw = NULL;
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
    w->kw = keywatch_get(fs, h->node->key);
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
    unsigned long woken = w->kw ? w->kw->woken : 0;
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
        w->free_at_ms = holder.free_at_mono_ms;
        link_waiter(fs, w, sg_monotonic_ms());
        if (w->kw && w->kw->woken != woken) /* announced while we were asking */
            w->next_ms = sg_monotonic_ms();
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
    keywatches_sync(fs); /* keys whose last waiter was just served */
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
