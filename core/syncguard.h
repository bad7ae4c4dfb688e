/* syncguard.h — the whole public API of libsyncguard.
 *
 * Conventions
 * - Every operation returns an sg_status: SG_OK, a non-error outcome
 *   (SG_CONTENDED, SG_ABSENT) or SG_ERROR; on SG_ERROR the caller-provided
 *   sg_error is filled (code, message, context). `err` may be NULL.
 * - Contention is a result, not an error.
 * - Strings passed in are borrowed; results are written into caller-owned,
 *   fixed-size structs (lockId 22 chars, fence 15 digits). Functions that
 *   return heap memory say so; every *_free(NULL) / *_close(NULL) is a no-op.
 * - The library never prints except through the log hook (sg_log_set).
 * - Backend handles are safe to use from many threads at once.
 */
#ifndef SYNCGUARD_H
#define SYNCGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ------------------------------------------------------------
 * The header's version; sg_version() is the library's (they differ only when
 * a program runs against another build than it was compiled with). 0.x: no
 * ABI promise yet — each minor release gets its own soname (docs/install.md). */
#define SG_VERSION_MAJOR 0
#define SG_VERSION_MINOR 1
#define SG_VERSION_PATCH 0
#define SG_VERSION "0.1.0"
/* "0.1.0" (static string) */
const char *sg_version(void);

/* ---- Constants of the contract (SPEC section 3) ------------------------ */
#define SG_KEY_MAX 512                 /* bytes of UTF-8 after NFC */
#define SG_TTL_DEFAULT_MS 30000
#define SG_TTL_MAX_MS 2147483647LL     /* 2^31 - 1 */
#define SG_TOLERANCE_MS 1000           /* liveness tolerance */
#define SG_LOCK_ID_LEN 22              /* base64url of 16 random bytes */
#define SG_FENCE_LEN 15                /* zero-padded decimal digits */
#define SG_FENCE_WARN UINT64_C(90000000000000) /* "090000000000000": log a warning above */
#define SG_FENCE_MAX UINT64_C(900000000000000) /* above: acquisition fails Internal */
#define SG_HASH_LEN 24                 /* keyHash / lockIdHash hex chars */

/* ---- Errors -------------------------------------------------------------- */
typedef enum sg_code {
    SG_E_NONE = 0,
    SG_E_ACQUISITION_TIMEOUT,
    SG_E_SERVICE_UNAVAILABLE,
    SG_E_AUTH_FAILED,
    SG_E_INVALID_ARGUMENT,
    SG_E_RATE_LIMITED,
    SG_E_NETWORK_TIMEOUT,
    SG_E_ABORTED,
    SG_E_INTERNAL,
} sg_code;

typedef struct sg_error {
    sg_code code;
    bool unknown_outcome;        /* a mutation was sent; its effect is unknown */
    bool too_long;               /* InvalidArgument for a length limit (ENAMETOOLONG) */
    char message[256];           /* human text, never contains secrets */
    char key[SG_KEY_MAX + 1];    /* context: the user key, or "" */
    char lock_id[SG_LOCK_ID_LEN + 1]; /* context: the lockId, or "" */
    char cause[160];             /* context: underlying library/server text */
} sg_error;

typedef enum sg_status {
    SG_ERROR = -1,
    SG_OK = 0,        /* acquired / released / extended / found */
    SG_CONTENDED = 1, /* acquire: the key is held by someone else */
    SG_ABSENT = 2,    /* release/extend: not ours or not live; lookup: none */
} sg_status;

/* "AcquisitionTimeout", "ServiceUnavailable", ... (static string). */
const char *sg_code_name(sg_code code);
/* errno the filesystem reports for a code (EWOULDBLOCK, EIO, ...). */
int sg_code_errno(sg_code code);
/* errno for an error: sg_code_errno, but ENAMETOOLONG for a key over its limit. */
int sg_error_errno(const sg_error *err);
/* Fill err (if non-NULL) and return SG_ERROR. printf-style message. */
sg_status sg_error_set(sg_error *err, sg_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sg_error_clear(sg_error *err);
/* "Code: message (key=..., lockId=..., cause=...)" into buf; returns buf. */
const char *sg_error_format(const sg_error *err, char *buf, size_t size);

/* ---- Logging hook ------------------------------------------------------- */
typedef enum sg_log_level { SG_LOG_ERR, SG_LOG_WARN, SG_LOG_INFO, SG_LOG_DEBUG } sg_log_level;
typedef void (*sg_log_fn)(sg_log_level level, const char *msg, void *ud);
/* Default: WARN and ERR to stderr (DEBUG too when SYNCGUARD_DEBUG is set).
 * fn NULL restores the default. */
void sg_log_set(sg_log_fn fn, void *ud);
void sg_log(sg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Keys, lockIds, fences, time --------------------------------------- */
/* Validate key (len bytes; UTF-8, no NUL, non-empty), NFC-normalize it into
 * out (SG_KEY_MAX+1 bytes, NUL-terminated); *out_len gets its length. */
sg_status sg_key_normalize(const char *key, size_t len, char out[SG_KEY_MAX + 1],
                           size_t *out_len, sg_error *err);
/* 16 bytes of getrandom() as 22 base64url chars + NUL. */
sg_status sg_lock_id_generate(char out[SG_LOCK_ID_LEN + 1], sg_error *err);
bool sg_lock_id_valid(const char *lock_id);
/* 15-digit zero padded; value must be < 10^15. */
void sg_fence_format(uint64_t fence, char out[SG_FENCE_LEN + 1]);
/* Exactly 15 digits → value; else SG_ERROR (Internal: a corrupt fence). */
sg_status sg_fence_parse(const char *s, uint64_t *out, sg_error *err);
/* TTL: 1 .. 2^31-1 ms, else InvalidArgument. */
sg_status sg_ttl_check(int64_t ttl_ms, sg_error *err);
/* A duration as written by people: digits with an optional unit ms|s|m|h
 * (bare digits are ms), whitespace around allowed, at most 2^31-1 ms; buf
 * need not be NUL-terminated. SG_OK or SG_ERROR (InvalidArgument). Callers
 * apply their own minimum (a TTL write needs 1 s). */
sg_status sg_duration_parse(const char *buf, size_t len, int64_t *out_ms, sg_error *err);
/* The one liveness predicate: expiresAtMs > nowMs - 1000. */
static inline bool sg_is_live(int64_t expires_at_ms, int64_t now_ms)
{
    return expires_at_ms > now_ms - SG_TOLERANCE_MS;
}
int64_t sg_now_ms(void);       /* wall clock, ms since epoch */
int64_t sg_monotonic_ms(void); /* CLOCK_MONOTONIC, ms */
/* keyHash of SyncGuard: three 32-bit rolling hashes over UTF-16 code units. */
void sg_key_hash(const char *s, char out[SG_HASH_LEN + 1]);

/* ---- Locks and backends ------------------------------------------------- */
typedef struct sg_lock {
    char key[SG_KEY_MAX + 1];          /* normalized key */
    char lock_id[SG_LOCK_ID_LEN + 1];
    char fence[SG_FENCE_LEN + 1];
    int64_t acquired_at_ms;
    int64_t expires_at_ms;             /* from the backend's time authority */
} sg_lock;

typedef struct sg_lock_info {
    char key_hash[SG_HASH_LEN + 1];
    char lock_id_hash[SG_HASH_LEN + 1];
    char fence[SG_FENCE_LEN + 1];
    int64_t acquired_at_ms;
    int64_t expires_at_ms;
    /* Only filled by the *_raw lookups (and by backends, before the core
     * sanitizes them): */
    char key[SG_KEY_MAX + 1];
    char lock_id[SG_LOCK_ID_LEN + 1];
} sg_lock_info;

typedef enum sg_time_authority { SG_TIME_SERVER, SG_TIME_CLIENT } sg_time_authority;

typedef struct sg_capabilities {
    const char *name;             /* "redis", "postgres", "firestore", ... */
    bool supports_fencing;
    sg_time_authority time_authority;
} sg_capabilities;

/* An open backend (opaque: its vtable and layout are the backend writers',
 * in core/syncguard_backend.h, which is not installed in 0.x). */
typedef struct sg_backend sg_backend;

#define SG_CURSOR_LEN 1800 /* holds any storage key */
/* Called once per live lock by sg_list with its normalized key. */
typedef void (*sg_list_fn)(const char *key, void *ud);

/* What a contended acquire learned about the current holder, so a waiter
 * can try again when the lock stops being live instead of polling blindly.
 * Backend fields are on the backend's clock (its time authority); 0 =
 * unknown (e.g. someone else won a race the backend did not see the end of). */
typedef struct sg_holder {
    int64_t expires_at_ms;   /* the holder's expiresAtMs */
    int64_t free_at_ms;      /* when the backend stops treating it as live:
                              * expiresAtMs on Redis (PX), expiresAtMs + 1000
                              * on PostgreSQL and Firestore */
    int64_t now_ms;          /* the backend's clock when it decided */
    int64_t free_at_mono_ms; /* filled by the core: free_at_ms on this host's
                              * CLOCK_MONOTONIC (sg_monotonic_ms), converted
                              * with the offset measured by this very reply */
} sg_holder;

/* Called on the backend's subscriber thread when a release of a watched key
 * may have happened. Keep it short; it must not call sg_unwatch. */
typedef void (*sg_wake_fn)(void *ud);
typedef struct sg_watch sg_watch;

/* One lock of a batched extend (sg_extend_many): lock_id and ttl_ms in;
 * status (SG_OK, SG_ABSENT or SG_ERROR), expires_at_ms (SG_OK, from the
 * backend's time authority) and code (SG_ERROR) out. */
typedef struct sg_extend_item {
    const char *lock_id;
    int64_t ttl_ms;
    sg_status status;
    int64_t expires_at_ms;
    sg_code code;
} sg_extend_item;

/* Options common to every backend; unset fields (0/NULL) take defaults. */
typedef struct sg_open_opts {
    const char *password;        /* overrides the URL's; never logged */
    const char *password_file;   /* read by sg_backend_open when password is NULL */
    int connect_timeout_ms;      /* default 2000 */
    int command_timeout_ms;      /* default 2000 */
    bool require_durable_fences; /* refuse a server that may lose fence INCRs */
} sg_open_opts;

/* Open a backend by URL scheme (redis://, unix://, postgres://,
 * postgresql://, firestore://). *out is owned by the caller: sg_backend_close.
 * Implemented by the backends part of libsyncguard (backends/registry.c). */
sg_status sg_backend_open(const char *url, const sg_open_opts *opts, sg_backend **out,
                          sg_error *err);
void sg_backend_close(sg_backend *b);
/* What the backend is ("redis", ...), whether it fences, whose clock it uses.
 * Valid while b is open. */
const sg_capabilities *sg_backend_capabilities(const sg_backend *b);
/* Comma-separated list of the schemes this build supports (static). */
const char *sg_backend_schemes(void);
/* The backend URL (any scheme, or a libpq key=value string) with every secret
 * removed — the password in the userinfo, secret parameters (password=,
 * sslpassword=, token=, ...) — for logs, fsname and argv; unparsable input
 * shows only its scheme. malloc'd, caller frees; NULL on allocation failure. */
char *sg_url_redact(const char *url);

/* ---- Lock operations (single attempt; validate input before any I/O) ----- */
/* Generates the lockId. On an unknown outcome releases it (best effort)
 * before returning the error. */
sg_status sg_acquire(sg_backend *b, const char *key, int64_t ttl_ms, sg_lock *out,
                     sg_error *err);
/* sg_acquire that also says, on SG_CONTENDED, what the backend knows about
 * the holder (*holder zeroed when nothing; holder may be NULL). */
sg_status sg_acquire_holder(sg_backend *b, const char *key, int64_t ttl_ms, sg_lock *out,
                            sg_holder *holder, sg_error *err);
sg_status sg_release(sg_backend *b, const char *lock_id, sg_error *err);
sg_status sg_extend(sg_backend *b, const char *lock_id, int64_t ttl_ms,
                    int64_t *expires_at_ms, sg_error *err);
/* Extend many locks, each exactly as sg_extend (its own outcome in its
 * item), in one round trip per SG_EXTEND_BATCH_MAX where the backend can
 * (Redis, PostgreSQL), else one lock after the other. SG_OK: every item has
 * its outcome (err, if an item failed: the first failure's text). SG_ERROR:
 * a batch failed as a whole (err filled; its items are SG_ERROR with err's
 * code, their outcome unknown on a timeout); the other items keep theirs. */
#define SG_EXTEND_BATCH_MAX 256
sg_status sg_extend_many(sg_backend *b, sg_extend_item *items, size_t n, sg_error *err);
sg_status sg_is_locked(sg_backend *b, const char *key, bool *locked, sg_error *err);
/* Sanitized: hashes only; key/lock_id fields are left empty. */
sg_status sg_lookup_key(sg_backend *b, const char *key, sg_lock_info *out, sg_error *err);
sg_status sg_lookup_id(sg_backend *b, const char *lock_id, sg_lock_info *out, sg_error *err);
/* Raw: also the key and lockId. Handle with care (the lockId releases). */
sg_status sg_lookup_key_raw(sg_backend *b, const char *key, sg_lock_info *out, sg_error *err);
sg_status sg_lookup_id_raw(sg_backend *b, const char *lock_id, sg_lock_info *out,
                           sg_error *err);

/* List live locks one page at a time: cursor "" starts, and is "" again
 * after the last page. A page may hold fewer than `page` keys (even none)
 * before the end. Keys are listed at least once per full pass. */
sg_status sg_list(sg_backend *b, char cursor[SG_CURSOR_LEN], size_t page, sg_list_fn fn,
                  void *ud, sg_error *err);

/* ---- Wake-ups: a release announced by the backend ---------------------- *
 * Redis: this project's release script PUBLISHes on a per-key channel;
 * PostgreSQL: its release transaction NOTIFYs the table's channel. One
 * subscriber connection (and thread) per backend handle, subscribed only to
 * keys someone watches. fn(ud) runs on that thread: once as soon as the
 * subscription is in place (a release between the caller's last attempt
 * and the watch is not missed), at every announced release of key, and
 * after the subscriber reconnects (releases may have been missed). A wake-up
 * is a hint: try again. Releases by SyncGuard TS and expiries announce
 * nothing (use sg_holder's free_at_mono_ms and keep polling as the safety
 * net). Returns NULL when the backend has no push wake-ups (Firestore), the
 * key is invalid or memory ran out. Owned by the caller: sg_unwatch. */
sg_watch *sg_watch_key(sg_backend *b, const char *key, sg_wake_fn fn, void *ud);
/* Stop; when it returns fn is not running and will not run again. Never
 * call it from fn, nor while holding a lock fn takes. NULL is a no-op. */
void sg_unwatch(sg_backend *b, sg_watch *w);

/* ---- Retry helper: lock(fn, {key, ttlMs, acquisition}) ------------------ */
typedef enum sg_backoff { SG_BACKOFF_EXPONENTIAL, SG_BACKOFF_FIXED } sg_backoff;
typedef enum sg_jitter { SG_JITTER_EQUAL, SG_JITTER_FULL, SG_JITTER_NONE } sg_jitter;

typedef void (*sg_release_error_fn)(const sg_error *err, const sg_lock *lock, void *ud);

typedef struct sg_acquire_opts {
    int64_t timeout_ms;        /* whole loop; default 5000 → AcquisitionTimeout */
    int max_retries;           /* default 10 (up to 11 attempts); -1 = none */
    int64_t retry_delay_ms;    /* default 100 */
    int64_t max_delay_ms;      /* cap per delay; 0 = no cap */
    sg_backoff backoff;        /* default exponential */
    sg_jitter jitter;          /* default equal */
    /* Non-zero = abort: checked before each attempt and every 10 ms of a sleep.
     * A plain int so the header stays C++-compatible; set it from a signal
     * handler (a volatile sig_atomic_t is an int here) or from another thread
     * with __atomic_store_n(&flag, 1, __ATOMIC_RELEASE) (C++: std::atomic_ref). */
    const volatile int *abort;
    sg_release_error_fn on_release_error; /* default: log (sg_log) */
    void *ud;
} sg_acquire_opts;

/* Defaults as in SyncGuard. Zero-initialized opts mean these too. */
sg_acquire_opts sg_acquire_opts_default(void);
/* The delay before retry number n (1-based), given the remaining time and a
 * uniform random value r in [0,1). Never more than remaining_ms. */
int64_t sg_retry_delay_ms(const sg_acquire_opts *o, int n, int64_t remaining_ms, double r);
/* Acquire with retries: SG_OK, or SG_ERROR (AcquisitionTimeout, Aborted or
 * the backend error). */
sg_status sg_acquire_retry(sg_backend *b, const char *key, int64_t ttl_ms,
                           const sg_acquire_opts *o, sg_lock *out, sg_error *err);
/* Run fn under the lock, then always release (failures → on_release_error).
 * Returns SG_ERROR if the lock was not acquired; otherwise fn's return value
 * is stored in *fn_result (if non-NULL) and SG_OK returned. */
sg_status sg_with_lock(sg_backend *b, const char *key, int64_t ttl_ms,
                       const sg_acquire_opts *o, int (*fn)(const sg_lock *lock, void *arg),
                       void *arg, int *fn_result, sg_error *err);

/* Scope-bound lock: released when the variable leaves scope.
 *     SG_SCOPED sg_held h = {0};
 *     if (sg_hold(b, "job", 30000, NULL, &h, &err) != SG_OK) ...            */
typedef struct sg_held {
    sg_backend *backend;
    sg_lock lock;
    bool held;
    sg_release_error_fn on_release_error;
    void *ud;
} sg_held;
sg_status sg_hold(sg_backend *b, const char *key, int64_t ttl_ms, const sg_acquire_opts *o,
                  sg_held *h, sg_error *err);
void sg_held_release(sg_held *h);
#define SG_SCOPED __attribute__((cleanup(sg_held_release)))

/* Heartbeat: keeps lock_id alive with a one-lease renewer (see Leases below):
 * extends by ttl_ms every interval_ms (0: about ttl/3 with jitter; a value
 * above ttl/2 is taken as ttl/2 so a failed extend can still be retried),
 * retries transient failures until the deadline, which counts from this
 * call (start it right after acquiring or extending). on_lost runs once,
 * from a renewer thread, when an extend finds the lock gone (Internal) or at
 * the deadline even while an extend hangs (NetworkTimeout, "renewal
 * deadline passed", cause: the last extend error). *out is owned by the
 * caller: sg_heartbeat_stop. */
typedef struct sg_heartbeat sg_heartbeat;
typedef void (*sg_lost_fn)(const char *lock_id, const sg_error *err, void *ud);
sg_status sg_heartbeat_start(sg_backend *b, const char *lock_id, int64_t ttl_ms,
                             int64_t interval_ms, sg_lost_fn on_lost, void *ud,
                             sg_heartbeat **out, sg_error *err);
/* Stops and frees; returns true if the lock was still being renewed. Waits
 * for an on_lost in progress (unless called from it) and for an extend in
 * flight to return (bounded by the backend's command timeout), so the
 * backend may be closed afterwards. */
bool sg_heartbeat_stop(sg_heartbeat *hb);

/* ---- Leases: one renewal and loss rule for every holder ----------------- *
 * Times are CLOCK_MONOTONIC ms (sg_monotonic_ms) on the holder's clock. A
 * lease's deadline is the send time of its last successful extend (or of the
 * acquire) + TTL - margin; past it, or when an extend finds the lock gone,
 * the lease is lost. Used by the heartbeat, syncguardfs and the CLI. */
int64_t sg_lease_margin_ms(int64_t ttl_ms);                /* min(ttl/10, 2000) */
/* ttl/3 * (0.9 + 0.2 r), at least 100 but at most ttl/2; r in [0,1). */
int64_t sg_lease_renew_after_ms(int64_t ttl_ms, double r);
int64_t sg_lease_deadline_ms(int64_t sent_ms, int64_t ttl_ms); /* sent + ttl - margin */
/* Delay before retrying a failed (transient) extend: clamp(ttl/10, 100, 1000)
 * with equal jitter (uniform in [d/2, d]), never past the deadline (0 if it
 * has passed). */
int64_t sg_lease_retry_after_ms(int64_t ttl_ms, int64_t now_ms, int64_t deadline_ms, double r);

typedef struct sg_renewer sg_renewer;
/* Called once per lost lease, from a renewer thread (the timing thread for
 * a deadline: keep it short), never with the renewer's lock held. why:
 * SG_ABSENT → Internal "lock expired or was released elsewhere"; deadline →
 * NetworkTimeout "renewal deadline passed", cause: the last extend error (or
 * "extend in flight"). lock_id and why are valid during the call only. */
typedef void (*sg_lease_lost_fn)(uint64_t lease, const char *lock_id, const sg_error *why,
                                 void *ud);
/* A renewer keeps many leases alive: one timing thread (a min-heap on the
 * next event: renewal due or deadline) and up to `workers` extends in flight
 * (0 → 8), each lease at most one at a time. Deadlines fire on time even
 * while every worker is blocked in a hung call; those calls only delay other
 * leases' renewals. *out owned by caller: sg_renewer_stop. */
sg_status sg_renewer_start(sg_backend *b, unsigned workers, sg_lease_lost_fn on_lost, void *ud,
                           sg_renewer **out, sg_error *err);
/* Track a lock acquired (or last extended) by a request sent at sent_ms with
 * ttl_ms. Returns a lease id > 0 (never reused), or 0 on allocation failure
 * or invalid input (lockId, TTL). */
uint64_t sg_renewer_add(sg_renewer *r, const char *lock_id, int64_t ttl_ms, int64_t sent_ms);
/* Stop tracking. Returns promptly (never waits for a backend call); a result
 * arriving later for it is ignored (no release: the lock is the caller's).
 * true: the lease was live, and no on_lost for it will ever start. false:
 * unknown, or already lost (its on_lost may be running or about to run:
 * callers look leases up by id under their own lock and ignore unknown ids). */
bool sg_renewer_remove(sg_renewer *r, uint64_t lease);
/* Extend now with ttl_ms (a user's TTL write) from the calling thread, after
 * any in-flight extend of this lease finishes (one operation per lease at a
 * time). SG_OK: the new TTL becomes the lease's renewal TTL and the deadline
 * moves to send time + ttl - margin. SG_ABSENT: the lease is lost (now, or
 * while waiting: on_lost is called as for any loss), removed or unknown.
 * SG_ERROR: err filled, lease unchanged (still renewed). */
sg_status sg_renewer_extend(sg_renewer *r, uint64_t lease, int64_t ttl_ms,
                            int64_t *expires_at_ms, sg_error *err);
/* The lease's current deadline (monotonic ms), 0 if unknown/lost. */
int64_t sg_renewer_deadline(sg_renewer *r, uint64_t lease);
/* expiresAtMs (the backend's clock) from the lease's last successful extend;
 * 0 before the first one, or if unknown/lost. */
int64_t sg_renewer_expires_at(sg_renewer *r, uint64_t lease);
/* Counters since start: successful and failed extends, leases lost. */
void sg_renewer_stats(sg_renewer *r, uint64_t *renewed, uint64_t *failed, uint64_t *lost);
/* Stop the threads and free; does not release locks. Returns promptly: calls
 * in flight are abandoned to finish on their own (the renewer's memory lives
 * until the last returns; results ignored). Waits only for an on_lost in
 * progress, unless called from one. Those abandoned calls still use the
 * backend: close it only after they return (sg_renewer_stop_wait). */
void sg_renewer_stop(sg_renewer *r);
/* sg_renewer_stop, then wait up to wait_ms (< 0: no limit) for the calls in
 * flight to return. true if none remain, so the backend may be closed. */
bool sg_renewer_stop_wait(sg_renewer *r, int64_t wait_ms);

/* ---- Telemetry decorator ------------------------------------------------ */
typedef enum sg_event_type {
    SG_EV_ACQUIRE, SG_EV_RELEASE, SG_EV_EXTEND, SG_EV_IS_LOCKED, SG_EV_LOOKUP
} sg_event_type;

typedef struct sg_event {
    sg_event_type type;
    bool ok;                          /* result: ok | fail */
    const char *reason;               /* NULL, "locked", "expired", "not-found" */
    char key_hash[SG_HASH_LEN + 1];   /* "" when not known */
    char lock_id_hash[SG_HASH_LEN + 1];
    const char *key;                  /* raw, only with include_raw */
    const char *lock_id;              /* raw, only with include_raw */
    const sg_error *error;            /* set when the operation failed */
    int64_t duration_us;              /* how long the backend call took */
} sg_event;

typedef void (*sg_event_fn)(const sg_event *ev, void *ud);
/* Wrap inner (ownership passes to the wrapper: closing it closes inner).
 * Returns NULL on allocation failure (inner is then left untouched). */
sg_backend *sg_with_telemetry(sg_backend *inner, sg_event_fn on_event, void *ud,
                              bool include_raw);
const char *sg_event_type_name(sg_event_type t);

#ifdef __cplusplus
}
#endif
#endif
