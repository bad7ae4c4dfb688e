/* telemetry.c — opt-in decorator: wraps any backend and reports each
 * operation to a callback. An unwrapped backend pays nothing. */
#include "syncguard_backend.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct telemetry {
    sg_backend *inner;
    sg_event_fn on_event;
    void *ud;
    bool include_raw;
    sg_backend_ops ops; /* telemetry_ops, without extend_many if the inner lacks it */
} telemetry;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void emit(sg_backend *b, sg_event_type type, sg_status st, const char *key,
                 const char *lock_id, const sg_error *err, int64_t t0_us)
{
    telemetry *t = b->impl;
    sg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.duration_us = now_us() - t0_us;
    ev.ok = st == SG_OK;
    if (st == SG_CONTENDED)
        ev.reason = "locked";
    else if (st == SG_ABSENT)
        ev.reason = "not-found";
    if (key)
        sg_key_hash(key, ev.key_hash);
    if (lock_id)
        sg_key_hash(lock_id, ev.lock_id_hash);
    if (t->include_raw) {
        ev.key = key;
        ev.lock_id = lock_id;
    }
    ev.error = st == SG_ERROR ? err : NULL;
    /* The callback's own failures cannot reach the caller: its return is
     * void and the operation's result is already decided. */
    t->on_event(&ev, t->ud);
}

static sg_backend *inner(sg_backend *b)
{
    return ((telemetry *)b->impl)->inner;
}

static sg_status t_acquire(sg_backend *b, const char *key, const char *lock_id, int64_t ttl,
                           sg_lock *out, sg_holder *holder, sg_error *err)
{
    int64_t t0 = now_us();
    sg_status st = inner(b)->ops->acquire(inner(b), key, lock_id, ttl, out, holder, err);
    emit(b, SG_EV_ACQUIRE, st, key, lock_id, err, t0);
    return st;
}

static sg_status t_release(sg_backend *b, const char *lock_id, sg_error *err)
{
    int64_t t0 = now_us();
    sg_status st = inner(b)->ops->release(inner(b), lock_id, err);
    emit(b, SG_EV_RELEASE, st, NULL, lock_id, err, t0);
    return st;
}

static sg_status t_extend(sg_backend *b, const char *lock_id, int64_t ttl, int64_t *exp,
                          sg_error *err)
{
    int64_t t0 = now_us();
    sg_status st = inner(b)->ops->extend(inner(b), lock_id, ttl, exp, err);
    emit(b, SG_EV_EXTEND, st, NULL, lock_id, err, t0);
    return st;
}

/* One event per lock, each with the batch's duration. */
static sg_status t_extend_many(sg_backend *b, size_t n, sg_extend_item *items, sg_error *err)
{
    int64_t t0 = now_us();
    sg_status st = inner(b)->ops->extend_many(inner(b), n, items, err);
    for (size_t i = 0; i < n; i++)
        emit(b, SG_EV_EXTEND, st == SG_ERROR ? SG_ERROR : items[i].status, NULL,
             items[i].lock_id, err, t0);
    return st;
}

static sg_status t_is_locked(sg_backend *b, const char *key, bool *locked, sg_error *err)
{
    int64_t t0 = now_us();
    sg_status st = sg_is_locked(inner(b), key, locked, err); /* the inner may have none */
    emit(b, SG_EV_IS_LOCKED, st, key, NULL, err, t0);
    return st;
}

static sg_status t_lookup_key(sg_backend *b, const char *key, sg_lock_info *out,
                              sg_error *err)
{
    int64_t t0 = now_us();
    sg_status st = inner(b)->ops->lookup_key(inner(b), key, out, err);
    emit(b, SG_EV_LOOKUP, st, key, NULL, err, t0);
    return st;
}

static sg_status t_lookup_id(sg_backend *b, const char *lock_id, sg_lock_info *out,
                             sg_error *err)
{
    int64_t t0 = now_us();
    sg_status st = inner(b)->ops->lookup_id(inner(b), lock_id, out, err);
    emit(b, SG_EV_LOOKUP, st, NULL, lock_id, err, t0);
    return st;
}

static sg_status t_list(sg_backend *b, char cursor[SG_CURSOR_LEN], size_t page, sg_list_fn fn,
                        void *ud, sg_error *err)
{
    return sg_list(inner(b), cursor, page, fn, ud, err);
}

/* Wake-ups are not lock operations: no events, straight to the inner backend. */
static sg_watch *t_watch(sg_backend *b, const char *key, sg_wake_fn fn, void *ud)
{
    return sg_watch_key(inner(b), key, fn, ud);
}

static void t_unwatch(sg_backend *b, sg_watch *w)
{
    sg_unwatch(inner(b), w);
}

static void t_close(sg_backend *b)
{
    sg_backend_close(inner(b));
    free(b->impl);
    free(b);
}

static const sg_backend_ops telemetry_ops = {
    .acquire = t_acquire,
    .release = t_release,
    .extend = t_extend,
    .is_locked = t_is_locked,
    .lookup_key = t_lookup_key,
    .lookup_id = t_lookup_id,
    .list = t_list,
    .close = t_close,
    .watch = t_watch,
    .unwatch = t_unwatch,
    .extend_many = t_extend_many,
};

sg_backend *sg_with_telemetry(sg_backend *in, sg_event_fn on_event, void *ud, bool include_raw)
{
    if (!in || !on_event)
        return NULL;
    sg_backend *b = sg_backend_alloc(&telemetry_ops, in->caps, sizeof(telemetry), NULL);
    if (!b)
        return NULL;
    telemetry *t = b->impl;
    *t = (telemetry){in, on_event, ud, include_raw, telemetry_ops};
    /* batching is the inner backend's ability: the renewer asks the op */
    if (!in->ops->extend_many)
        t->ops.extend_many = NULL;
    b->ops = &t->ops;
    return b;
}

const char *sg_event_type_name(sg_event_type type)
{
    static const char *const names[] = {"acquire", "release", "extend", "isLocked", "lookup"};
    return (unsigned)type < 5 ? names[type] : "unknown";
}
