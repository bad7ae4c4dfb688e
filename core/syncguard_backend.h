/* syncguard_backend.h — for backend writers only: the vtable a backend
 * implements, the layout of an sg_backend, and the core's helpers for the
 * storage layout (storage keys, fence keys, fence thresholds, base64url).
 *
 * Not installed in 0.x (docs/decisions.md): the backend interface still
 * changes, so backends are built into libsyncguard, and none of the functions
 * below is exported from libsyncguard.so (the version script is generated
 * from syncguard.h alone). Library users, syncguardfs (fs/) and the command
 * line (cli/) include syncguard.h only. */
#ifndef SYNCGUARD_BACKEND_H
#define SYNCGUARD_BACKEND_H

#include "syncguard.h"

/* fs/ and cli/ are built with SG_USERS_ONLY: they see what a user sees. */
#ifdef SG_USERS_ONLY
#error "syncguard_backend.h is for backends and the core; include syncguard.h"
#endif

/* What a backend implements. Keys arrive normalized and validated, lockIds
 * validated, TTLs checked; each call is one attempt (no retry on
 * contention). An acquire that fails after its request was sent sets
 * err->unknown_outcome so the core can release the ghost; a contended one
 * fills *holder (never NULL) as far as it knows, zeroes otherwise. Lookups
 * fill the raw fields of sg_lock_info; the core derives hashes and
 * sanitizes. */
typedef struct sg_backend_ops {
    sg_status (*acquire)(sg_backend *b, const char *key, const char *lock_id, int64_t ttl_ms,
                         sg_lock *out, sg_holder *holder, sg_error *err);
    sg_status (*release)(sg_backend *b, const char *lock_id, sg_error *err);
    sg_status (*extend)(sg_backend *b, const char *lock_id, int64_t ttl_ms,
                        int64_t *expires_at_ms, sg_error *err);
    /* NULL: the core answers from lookup_key (one read either way). */
    sg_status (*is_locked)(sg_backend *b, const char *key, bool *locked, sg_error *err);
    sg_status (*lookup_key)(sg_backend *b, const char *key, sg_lock_info *out, sg_error *err);
    sg_status (*lookup_id)(sg_backend *b, const char *lock_id, sg_lock_info *out,
                           sg_error *err);
    /* One bounded page of live locks (see sg_list); NULL if unsupported. */
    sg_status (*list)(sg_backend *b, char cursor[SG_CURSOR_LEN], size_t page,
                      sg_list_fn fn, void *ud, sg_error *err);
    /* Frees everything, b->impl and b included. */
    void (*close)(sg_backend *b);
    /* Push wake-ups; both NULL when the backend has none (Firestore). See
     * sg_watch_key. watch returns NULL on failure (the caller polls). */
    sg_watch *(*watch)(sg_backend *b, const char *key, sg_wake_fn fn, void *ud);
    void (*unwatch)(sg_backend *b, sg_watch *w);
    /* Optional (NULL: the core extends one lock at a time). Extend n locks
     * (lockIds validated, TTLs checked, n <= SG_EXTEND_BATCH_MAX) in one round
     * trip, each exactly as `extend` would: SG_OK with every item's own
     * outcome (err: the first item error's text), or SG_ERROR when the batch
     * failed as a whole (err filled, unknown_outcome if it may have run;
     * items untouched). */
    sg_status (*extend_many)(sg_backend *b, size_t n, sg_extend_item *items, sg_error *err);
} sg_backend_ops;

struct sg_backend {
    const sg_backend_ops *ops;
    sg_capabilities caps;
    void *impl; /* the backend's own state */
};

/* A backend with a zeroed impl of impl_size bytes (both freed by its close,
 * with free()). NULL + err (Internal) when out of memory. */
sg_backend *sg_backend_alloc(const sg_backend_ops *ops, sg_capabilities caps, size_t impl_size,
                             sg_error *err);

/* ---- The storage layout (SPEC section 3) ---------------------------------- */
/* storage_key(prefix, key, limit, reserve): see SPEC section 3. The key is
 * NFC-normalized (any length). Writes a NUL-terminated string into out. */
sg_status sg_storage_key(const char *prefix, const char *key, size_t limit, size_t reserve,
                         char *out, size_t out_size, sg_error *err);
/* storage_key(prefix, "fence:" + base, limit, reserve). */
sg_status sg_fence_key(const char *prefix, const char *base, size_t limit, size_t reserve,
                       char *out, size_t out_size, sg_error *err);
/* Thresholds of a new fence: warns above SG_FENCE_WARN, fails Internal above
 * SG_FENCE_MAX. */
sg_status sg_fence_check(uint64_t fence, const char *key, sg_error *err);
/* base64url without padding of n bytes; out needs 4*ceil(n/3)+1 bytes. */
void sg_base64url(const unsigned char *in, size_t n, char *out);

#endif
