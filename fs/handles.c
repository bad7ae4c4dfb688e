/* handles.c — open descriptors of locks/<name> and their states: owning
 * (holds the lock, renewed by the core's renewer), watching (does not),
 * lost (held it; the lock expired, was released elsewhere, or renewal
 * failed before its deadline). Each handle has at most one backend
 * operation in flight (`busy`). */
#include "sgfs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "proc.h"

/* ---- small shared helpers ---- */
int sgfs_log_error(const char *what, const sg_error *e)
{
    char buf[900];
    sg_log(SG_LOG_WARN, "%s failed: %s", what, sg_error_format(e, buf, sizeof buf));
    return sg_error_errno(e);
}

double sgfs_rand01(void)
{
    static _Thread_local unsigned int seed;
    if (!seed)
        seed = (unsigned)(sg_monotonic_ms() ^ (uintptr_t)&seed ^ (unsigned)getpid());
    return rand_r(&seed) / ((double)RAND_MAX + 1);
}

void sgfs_cond_wait_ms(sgfs *fs, pthread_cond_t *cv, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, &fs->mu, &ts);
}

/* ---- backend calls (counted by the telemetry decorator, see lockfs.c) ---- */
sg_status sgfs_b_release(sgfs *fs, const char *lock_id, sg_error *e)
{
    return sg_release(fs->b, lock_id, e);
}

sg_status sgfs_b_lookup(sgfs *fs, const char *key, sg_lock_info *info, sg_error *e)
{
    memset(info, 0, sizeof *info);
    return sg_lookup_key_raw(fs->b, key, info, e);
}

/* ---- lease id → owning handle (mu held) ---- */
static handle **lease_slot(sgfs *fs, uint64_t lease)
{
    handle **pp = &fs->leases[lease % fs->leases_size];
    while (*pp && (*pp)->lease != lease)
        pp = &(*pp)->lnext;
    return pp;
}

static void lease_map_grow(sgfs *fs)
{
    size_t size = fs->leases_size ? fs->leases_size * 2 : 1024;
    handle **t = calloc(size, sizeof *t);
    if (!t)
        return;
    for (size_t i = 0; i < fs->leases_size; i++)
        for (handle *h = fs->leases[i], *next; h; h = next) {
            next = h->lnext;
            h->lnext = t[h->lease % size];
            t[h->lease % size] = h;
        }
    free(fs->leases);
    fs->leases = t;
    fs->leases_size = size;
}

static void lease_map_add(sgfs *fs, handle *h)
{
    if ((size_t)fs->held >= fs->leases_size)
        lease_map_grow(fs);
    if (!fs->leases_size)
        return;
    handle **head = &fs->leases[h->lease % fs->leases_size];
    h->lnext = *head;
    *head = h;
}

static void lease_map_remove(sgfs *fs, handle *h)
{
    if (!fs->leases_size || !h->lease)
        return;
    handle **pp = lease_slot(fs, h->lease);
    if (*pp == h)
        *pp = h->lnext;
    h->lnext = NULL;
}

/* ---- handle life ---- */
handle *sgfs_handle_new(sgfs *fs, node *n, fuse_req_t req)
{
    handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->state = H_WATCHING;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    h->pid = sgfs_proc_tgid(ctx->pid);
    h->uid = ctx->uid;
    if (n) {
        pthread_mutex_lock(&fs->mu);
        h->node = n;
        n->nopen++;
        h->nnext = n->handles;
        n->handles = h;
        pthread_mutex_unlock(&fs->mu);
    }
    return h;
}

void sgfs_handle_free(sgfs *fs, handle *h)
{
    pthread_mutex_lock(&fs->mu);
    node *n = h->node;
    if (n) {
        handle **pp = &n->handles;
        while (*pp && *pp != h)
            pp = &(*pp)->nnext;
        if (*pp)
            *pp = h->nnext;
        n->nopen--;
        sgfs_node_maybe_free(fs, n);
    }
    pthread_mutex_unlock(&fs->mu);
    if (h->ph)
        fuse_pollhandle_destroy(h->ph);
    free(h->snap);
    free(h);
}

static void begin_op(sgfs *fs, handle *h)
{
    while (h->busy)
        pthread_cond_wait(&fs->idle_cv, &fs->mu);
    h->busy = true;
}

static void end_op(sgfs *fs, handle *h)
{
    h->busy = false;
    pthread_cond_broadcast(&fs->idle_cv);
}

/* The handle now owns `lock`, acquired by a request sent at sent_ms. mu held;
 * the lease is registered by the caller after dropping mu. */
static void become_owner(sgfs *fs, handle *h, const sg_lock *lock, uid_t uid)
{
    h->state = H_OWNING;
    memcpy(h->lock.lock_id, lock->lock_id, sizeof h->lock.lock_id);
    memcpy(h->lock.fence, lock->fence, sizeof h->lock.fence);
    h->lock.acquired_at_ms = lock->acquired_at_ms;
    h->lock.expires_at_ms = lock->expires_at_ms;
    h->uid = uid;
    h->flushed_ms = 0;
    free(h->snap);
    h->snap = NULL;
    fs->held++;
    if (fs->journal)
        sgfs_journal_held(fs->journal, lock->lock_id, h->pid, h->pid_start);
}

/* Owning → watching or lost (the lock is no longer ours). mu held. Returns
 * the lease to remove from the renewer (after dropping mu), or 0. */
static uint64_t stop_owning(sgfs *fs, handle *h, hstate to)
{
    if (h->state != H_OWNING)
        return 0;
    uint64_t lease = h->lease;
    lease_map_remove(fs, h);
    h->lease = 0;
    h->state = to;
    h->posix = false;
    fs->held--;
    if (fs->journal)
        sgfs_journal_released(fs->journal, h->lock.lock_id);
    free(h->snap);
    h->snap = NULL;
    return lease;
}

void sgfs_mark_lost(sgfs *fs, handle *h, const char *why)
{
    if (h->state != H_OWNING)
        return;
    stop_owning(fs, h, H_LOST); /* its lease: lost by the renewer already */
    metrics_event_add(M_LOST);
    char name[SGFS_NAME_MAX + 1];
    sgfs_name_encode(h->node->key, name);
    sg_log(SG_LOG_WARN, "lock %.200s lost (fence %s): %s", name, h->lock.fence, why);
    if (h->ph) {
        fuse_lowlevel_notify_poll(h->ph);
        fuse_pollhandle_destroy(h->ph);
        h->ph = NULL;
    }
    if (fs->cfg.loss_signal && h->pid > 0) {
        int rc = sgfs_proc_signal(h->pid, h->pid_start, fs->cfg.loss_signal, fs->cfg.loss_group);
        if (rc)
            sg_log(SG_LOG_INFO, "on_loss: process %d is gone or was replaced: not signalled",
                   (int)h->pid);
    }
    sgfs_wake_waiters(fs, h->node);
}

/* The renewer's verdict: past the deadline, or an extend found it gone. */
void sgfs_on_lease_lost(uint64_t lease, const char *lock_id, const sg_error *why, void *ud)
{
    sgfs *fs = ud;
    (void)lock_id;
    pthread_mutex_lock(&fs->mu);
    handle *h = fs->leases_size ? *lease_slot(fs, lease) : NULL;
    if (h && h->state == H_OWNING)
        sgfs_mark_lost(fs, h, why && why->message[0] ? why->message : "lost");
    pthread_mutex_unlock(&fs->mu);
}

/* Register the lease of a fresh acquisition (mu not held). */
static void start_lease(sgfs *fs, handle *h, const char *lock_id, int64_t sent_ms)
{
    uint64_t lease = sg_renewer_add(fs->renewer, lock_id, fs->cfg.ttl_ms, sent_ms);
    pthread_mutex_lock(&fs->mu);
    if (h->state == H_OWNING && !strcmp(h->lock.lock_id, lock_id) && lease) {
        h->lease = lease;
        lease_map_add(fs, h);
        lease = 0;
    }
    pthread_mutex_unlock(&fs->mu);
    if (lease) /* let go while we registered it */
        sg_renewer_remove(fs->renewer, lease);
    else if (!h->lease)
        sg_log(SG_LOG_ERR, "out of memory: a lock is not renewed and will expire");
}

int sgfs_release_handle(sgfs *fs, handle *h, hstate to)
{
    pthread_mutex_lock(&fs->mu);
    begin_op(fs, h);
    if (h->state != H_OWNING) {
        if (h->state == H_LOST && to == H_WATCHING)
            h->state = H_WATCHING;
        end_op(fs, h);
        pthread_mutex_unlock(&fs->mu);
        return 0;
    }
    held_lock lock = h->lock;
    uint64_t lease = stop_owning(fs, h, to);
    pthread_mutex_unlock(&fs->mu);
    /* stop renewing first: a renewal racing the release is ignored, never a false loss */
    if (lease)
        sg_renewer_remove(fs->renewer, lease);
    sg_error e;
    int rc = 0;
    if (sgfs_b_release(fs, lock.lock_id, &e) == SG_ERROR)
        rc = sgfs_log_error("release", &e); /* it expires by its TTL */
    pthread_mutex_lock(&fs->mu);
    end_op(fs, h);
    sgfs_wake_waiters(fs, h->node);
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

/* A descriptor of this mount that owns n's key and was just closed (its
 * RELEASE is on its way: close() returns before the daemon sees it). */
static bool closing_owner(sgfs *fs, handle *self)
{
    handle *o = sgfs_key_owner(fs, self->node);
    return o && o != self && o->flushed_ms;
}

sg_status sgfs_try_acquire(sgfs *fs, handle *h, uid_t uid, sg_holder *holder, sg_error *e)
{
    if (atomic_load(&fs->draining))
        return sg_error_set(e, SG_E_SERVICE_UNAVAILABLE, "shutting down: no new locks");
    /* the opener's identity, for the journal and on_loss (read once, outside mu) */
    uint64_t start = h->pid_start ? 0 : sgfs_proc_start_time(h->pid);
    pthread_mutex_lock(&fs->mu);
    begin_op(fs, h);
    if (!h->pid_start)
        h->pid_start = start;
    pthread_mutex_unlock(&fs->mu);
    for (int round = 0;; round++) {
        sg_lock lock;
        int64_t sent = sg_monotonic_ms();
        sg_status st = sg_acquire_holder(fs->b, h->node->key, fs->cfg.ttl_ms, &lock, holder, e);
        pthread_mutex_lock(&fs->mu);
        uint64_t stale = 0;
        if (st == SG_OK) {
            stale = stop_owning(fs, h, H_WATCHING); /* cannot happen: one op per handle */
            become_owner(fs, h, &lock, uid);
        }
        /* Held by a local descriptor that was just closed: wait up to 50 ms
         * for its RELEASE, then try once more. */
        bool retry = false;
        if (st == SG_CONTENDED && round == 0) {
            int64_t until = sg_monotonic_ms() + LOCAL_RELEASE_WAIT_MS;
            bool waited = false;
            while (closing_owner(fs, h) && sg_monotonic_ms() < until) {
                sgfs_cond_wait_ms(fs, &fs->idle_cv, until - sg_monotonic_ms());
                waited = true;
            }
            retry = waited && !sgfs_key_owner(fs, h->node);
        }
        if (!retry)
            end_op(fs, h);
        pthread_mutex_unlock(&fs->mu);
        if (stale)
            sg_renewer_remove(fs->renewer, stale);
        if (st == SG_OK)
            start_lease(fs, h, lock.lock_id, sent);
        if (!retry)
            return st;
    }
}

int sgfs_handle_extend(sgfs *fs, handle *h, int64_t ttl_ms)
{
    pthread_mutex_lock(&fs->mu);
    begin_op(fs, h);
    hstate state = h->state;
    uint64_t lease = h->lease;
    pthread_mutex_unlock(&fs->mu);
    int rc = 0;
    if (state == H_WATCHING) {
        rc = ENOLCK;
    } else if (state == H_LOST) {
        rc = ESTALE;
    } else {
        sg_error err;
        int64_t exp = 0;
        sg_status st = lease ? sg_renewer_extend(fs->renewer, lease, ttl_ms, &exp, &err)
                             : sg_error_set(&err, SG_E_INTERNAL, "lock is not renewed");
        pthread_mutex_lock(&fs->mu);
        if (st == SG_OK && h->state == H_OWNING) {
            h->lock.expires_at_ms = exp;
        } else if (st == SG_ABSENT) {
            sgfs_mark_lost(fs, h, "extend found the lock gone");
            rc = ESTALE;
        } else if (st == SG_ERROR) {
            rc = sgfs_log_error("extend", &err);
        }
        pthread_mutex_unlock(&fs->mu);
    }
    pthread_mutex_lock(&fs->mu);
    end_op(fs, h);
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

void sgfs_release_all(sgfs *fs)
{
    for (;;) {
        handle *h = NULL;
        for (size_t i = 0; i < fs->leases_size && !h; i++)
            for (handle *x = fs->leases[i]; x && !h; x = x->lnext)
                h = x;
        if (!h) {
            /* owning handles whose lease registration failed (ENOMEM) */
            for (size_t i = 0; i < fs->table_size && !h; i++)
                for (node *n = fs->table[i]; n && !h; n = n->hnext)
                    for (node *x = n; x && !h; x = x->older)
                        for (handle *o = x->handles; o && !h; o = o->nnext)
                            if (o->state == H_OWNING)
                                h = o;
        }
        if (!h)
            return;
        if (h->busy) {
            pthread_cond_wait(&fs->idle_cv, &fs->mu);
            continue;
        }
        h->busy = true;
        held_lock lock = h->lock;
        uint64_t lease = stop_owning(fs, h, H_LOST);
        pthread_mutex_unlock(&fs->mu);
        if (lease)
            sg_renewer_remove(fs->renewer, lease);
        sg_error err;
        if (sgfs_b_release(fs, lock.lock_id, &err) == SG_ERROR)
            sgfs_log_error("release at shutdown", &err);
        pthread_mutex_lock(&fs->mu);
        end_op(fs, h);
    }
}

/* A predecessor's lock: its holder is gone → release now; it still runs →
 * on_loss treatment, and the lock expires by its TTL (the holder may still
 * be inside its critical section). */
static void recover_one(const char *lock_id, pid_t pid, uint64_t start_time, bool holder_alive,
                        void *ud)
{
    sgfs *fs = ud;
    if (holder_alive) {
        sg_log(SG_LOG_WARN, "lock %.6s... of a previous daemon: its holder (pid %d) still runs; "
                            "left to expire by its TTL",
               lock_id, (int)pid);
        if (fs->cfg.loss_signal)
            sgfs_proc_signal(pid, start_time, fs->cfg.loss_signal, fs->cfg.loss_group);
        return;
    }
    sg_error e;
    sg_status st = sgfs_b_release(fs, lock_id, &e);
    if (st == SG_OK)
        sg_log(SG_LOG_INFO, "released lock %.6s... left by a previous daemon", lock_id);
    else if (st == SG_ERROR)
        sgfs_log_error("releasing a previous daemon's lock", &e);
}

void sgfs_recover(sgfs *fs)
{
    if (fs->journal)
        sgfs_journal_recover(fs->journal, recover_one, fs);
}
