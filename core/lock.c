/* lock.c — the public lock operations: validate input before any I/O, call
 * the backend once, apply the unknown-outcome rule and sanitize lookups; and
 * the backend handle itself (allocation for backends, capabilities, close). */
#include "syncguard_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void context(sg_error *err, const char *key, const char *lock_id)
{
    if (!err)
        return;
    if (key && !err->key[0])
        snprintf(err->key, sizeof err->key, "%s", key);
    if (lock_id && !err->lock_id[0] && sg_lock_id_valid(lock_id))
        memcpy(err->lock_id, lock_id, SG_LOCK_ID_LEN + 1);
}

static sg_status check_lock_id(const char *lock_id, sg_error *err)
{
    if (!sg_lock_id_valid(lock_id))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "lockId must be 22 base64url characters");
    return SG_OK;
}

sg_status sg_acquire(sg_backend *b, const char *key, int64_t ttl_ms, sg_lock *out,
                     sg_error *err)
{
    return sg_acquire_holder(b, key, ttl_ms, out, NULL, err);
}

/* The holder's free time on this host's monotonic clock: the backend said
 * "free at F, now N" in a reply received at recv, so it is free F - N later
 * (late by at most half a round trip, never early by the clocks' offset). */
static void holder_to_local(sg_holder *h, int64_t recv_mono_ms)
{
    if (h->free_at_ms <= 0 || h->now_ms <= 0) {
        h->free_at_mono_ms = 0;
        return;
    }
    int64_t in = h->free_at_ms - h->now_ms;
    if (in < 0)
        in = 0;
    if (in > SG_TTL_MAX_MS + SG_TOLERANCE_MS)
        in = SG_TTL_MAX_MS + SG_TOLERANCE_MS;
    h->free_at_mono_ms = recv_mono_ms + in;
}

sg_status sg_acquire_holder(sg_backend *b, const char *key, int64_t ttl_ms, sg_lock *out,
                            sg_holder *holder, sg_error *err)
{
    sg_holder hl;
    memset(&hl, 0, sizeof hl);
    sg_error_clear(err);
    char nkey[SG_KEY_MAX + 1];
    if (sg_key_normalize(key, key ? strlen(key) : 0, nkey, NULL, err) != SG_OK ||
        sg_ttl_check(ttl_ms, err) != SG_OK) {
        context(err, key && strlen(key) <= SG_KEY_MAX ? key : NULL, NULL);
        return SG_ERROR;
    }
    char lock_id[SG_LOCK_ID_LEN + 1];
    if (sg_lock_id_generate(lock_id, err) != SG_OK)
        return SG_ERROR;
    sg_lock got;
    memset(&got, 0, sizeof got);
    sg_error local;
    sg_error *e = err ? err : &local;
    sg_error_clear(e);
    sg_status st = b->ops->acquire(b, nkey, lock_id, ttl_ms, &got, &hl, e);
    if (st == SG_CONTENDED && holder) {
        holder_to_local(&hl, sg_monotonic_ms());
        *holder = hl;
    }
    if (st == SG_ERROR) {
        context(e, nkey, lock_id);
        if (e->unknown_outcome) {
            /* The lock may exist under our lockId: release the ghost now,
             * or a retry would contend with it until its TTL runs out. */
            sg_error rel;
            sg_error_clear(&rel);
            if (b->ops->release(b, lock_id, &rel) == SG_ERROR)
                sg_log(SG_LOG_WARN, "could not release lock %s after an unknown outcome: %s",
                       lock_id, rel.message);
        }
        return SG_ERROR;
    }
    if (st == SG_OK) {
        memcpy(got.key, nkey, strlen(nkey) + 1); /* normalized: at most SG_KEY_MAX */
        memcpy(got.lock_id, lock_id, sizeof lock_id);
        if (out)
            *out = got;
    }
    return st;
}

sg_watch *sg_watch_key(sg_backend *b, const char *key, sg_wake_fn fn, void *ud)
{
    char nkey[SG_KEY_MAX + 1];
    if (!b || !b->ops->watch || !fn ||
        sg_key_normalize(key, key ? strlen(key) : 0, nkey, NULL, NULL) != SG_OK)
        return NULL;
    return b->ops->watch(b, nkey, fn, ud);
}

void sg_unwatch(sg_backend *b, sg_watch *w)
{
    if (b && w && b->ops->unwatch)
        b->ops->unwatch(b, w);
}

sg_status sg_release(sg_backend *b, const char *lock_id, sg_error *err)
{
    sg_error_clear(err);
    if (check_lock_id(lock_id, err) != SG_OK)
        return SG_ERROR;
    sg_status st = b->ops->release(b, lock_id, err);
    if (st == SG_ERROR)
        context(err, NULL, lock_id);
    return st;
}

sg_status sg_extend(sg_backend *b, const char *lock_id, int64_t ttl_ms,
                    int64_t *expires_at_ms, sg_error *err)
{
    sg_error_clear(err);
    if (check_lock_id(lock_id, err) != SG_OK || sg_ttl_check(ttl_ms, err) != SG_OK)
        return SG_ERROR;
    int64_t exp = 0;
    sg_status st = b->ops->extend(b, lock_id, ttl_ms, &exp, err);
    if (st == SG_ERROR)
        context(err, NULL, lock_id);
    else if (st == SG_OK && expires_at_ms)
        *expires_at_ms = exp;
    return st;
}

/* One run of valid items (n <= SG_EXTEND_BATCH_MAX): one backend call, or
 * one extend per item without extend_many. Fills every item; *e gets the
 * first failure's text. */
static sg_status extend_run(sg_backend *b, sg_extend_item *it, size_t n, sg_error *e)
{
    if (!b->ops->extend_many) {
        for (size_t i = 0; i < n; i++) {
            sg_error one;
            sg_error_clear(&one);
            it[i].expires_at_ms = 0;
            it[i].status = b->ops->extend(b, it[i].lock_id, it[i].ttl_ms, &it[i].expires_at_ms,
                                          &one);
            it[i].code = it[i].status == SG_ERROR ? one.code : SG_E_NONE;
            if (it[i].status == SG_ERROR && e->code == SG_E_NONE) {
                *e = one;
                context(e, NULL, it[i].lock_id);
            }
        }
        return SG_OK;
    }
    sg_error one;
    sg_error_clear(&one);
    sg_status st = b->ops->extend_many(b, n, it, &one);
    for (size_t i = 0; i < n && st == SG_ERROR; i++) {
        it[i].status = SG_ERROR;
        it[i].code = one.code;
    }
    if (one.code != SG_E_NONE && e->code == SG_E_NONE)
        *e = one;
    return st == SG_ERROR ? SG_ERROR : SG_OK;
}

sg_status sg_extend_many(sg_backend *b, sg_extend_item *items, size_t n, sg_error *err)
{
    sg_error local;
    sg_error *e = err ? err : &local;
    sg_error_clear(e);
    if (n && !items)
        return sg_error_set(e, SG_E_INVALID_ARGUMENT, "sg_extend_many: no items");
    sg_status result = SG_OK;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        /* invalid items are answered here and cut the run of valid ones */
        bool valid = i < n && sg_lock_id_valid(items[i].lock_id) &&
                     sg_ttl_check(items[i].ttl_ms, NULL) == SG_OK;
        if (valid && i - start < SG_EXTEND_BATCH_MAX)
            continue;
        if (i > start && extend_run(b, items + start, i - start, e) == SG_ERROR)
            result = SG_ERROR;
        start = i;
        if (i < n && !valid) {
            items[i].status = SG_ERROR;
            items[i].code = SG_E_INVALID_ARGUMENT;
            items[i].expires_at_ms = 0;
            if (e->code == SG_E_NONE)
                sg_error_set(e, SG_E_INVALID_ARGUMENT,
                             "lockId must be 22 base64url characters and TTL 1..2^31-1 ms");
            start = i + 1;
        }
    }
    return result;
}

sg_status sg_is_locked(sg_backend *b, const char *key, bool *locked, sg_error *err)
{
    sg_error_clear(err);
    char nkey[SG_KEY_MAX + 1];
    if (sg_key_normalize(key, key ? strlen(key) : 0, nkey, NULL, err) != SG_OK)
        return SG_ERROR;
    bool l = false;
    sg_status st;
    if (b->ops->is_locked) {
        st = b->ops->is_locked(b, nkey, &l, err);
    } else {
        sg_lock_info info;
        st = b->ops->lookup_key(b, nkey, &info, err);
        l = st == SG_OK;
        if (st == SG_ABSENT)
            st = SG_OK;
    }
    if (st == SG_ERROR)
        context(err, nkey, NULL);
    else if (locked)
        *locked = l;
    return st;
}

static void finish_info(sg_lock_info *info, bool raw)
{
    sg_key_hash(info->key, info->key_hash);
    sg_key_hash(info->lock_id, info->lock_id_hash);
    if (!raw) {
        memset(info->key, 0, sizeof info->key);
        memset(info->lock_id, 0, sizeof info->lock_id);
    }
}

static sg_status lookup_key(sg_backend *b, const char *key, sg_lock_info *out, bool raw,
                            sg_error *err)
{
    sg_error_clear(err);
    char nkey[SG_KEY_MAX + 1];
    if (sg_key_normalize(key, key ? strlen(key) : 0, nkey, NULL, err) != SG_OK)
        return SG_ERROR;
    sg_lock_info info;
    memset(&info, 0, sizeof info);
    sg_status st = b->ops->lookup_key(b, nkey, &info, err);
    if (st == SG_ERROR)
        context(err, nkey, NULL);
    if (st != SG_OK)
        return st;
    finish_info(&info, raw);
    if (out)
        *out = info;
    return SG_OK;
}

static sg_status lookup_id(sg_backend *b, const char *lock_id, sg_lock_info *out, bool raw,
                           sg_error *err)
{
    sg_error_clear(err);
    if (check_lock_id(lock_id, err) != SG_OK)
        return SG_ERROR;
    sg_lock_info info;
    memset(&info, 0, sizeof info);
    sg_status st = b->ops->lookup_id(b, lock_id, &info, err);
    if (st == SG_ERROR)
        context(err, NULL, lock_id);
    if (st != SG_OK)
        return st;
    finish_info(&info, raw);
    if (out)
        *out = info;
    return SG_OK;
}

sg_status sg_lookup_key(sg_backend *b, const char *key, sg_lock_info *out, sg_error *err)
{
    return lookup_key(b, key, out, false, err);
}

sg_status sg_lookup_key_raw(sg_backend *b, const char *key, sg_lock_info *out, sg_error *err)
{
    return lookup_key(b, key, out, true, err);
}

sg_status sg_lookup_id(sg_backend *b, const char *lock_id, sg_lock_info *out, sg_error *err)
{
    return lookup_id(b, lock_id, out, false, err);
}

sg_status sg_lookup_id_raw(sg_backend *b, const char *lock_id, sg_lock_info *out,
                           sg_error *err)
{
    return lookup_id(b, lock_id, out, true, err);
}

sg_status sg_list(sg_backend *b, char cursor[SG_CURSOR_LEN], size_t page, sg_list_fn fn,
                  void *ud, sg_error *err)
{
    sg_error_clear(err);
    if (!b->ops->list)
        return sg_error_set(err, SG_E_INTERNAL, "the %s backend cannot list locks",
                            b->caps.name);
    if (page == 0 || page > 10000)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "page size must be 1..10000");
    return b->ops->list(b, cursor, page, fn, ud, err);
}

void sg_backend_close(sg_backend *b)
{
    if (b)
        b->ops->close(b);
}

const sg_capabilities *sg_backend_capabilities(const sg_backend *b)
{
    return &b->caps;
}

sg_backend *sg_backend_alloc(const sg_backend_ops *ops, sg_capabilities caps, size_t impl_size,
                             sg_error *err)
{
    sg_backend *b = calloc(1, sizeof *b);
    void *impl = calloc(1, impl_size);
    if (!b || !impl) {
        free(b);
        free(impl);
        sg_error_set(err, SG_E_INTERNAL, "out of memory");
        return NULL;
    }
    *b = (sg_backend){ops, caps, impl};
    return b;
}
