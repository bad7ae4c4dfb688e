/* renewer_i.h — private to core/: the renewer's state (renewer.c), shared
 * with its batched path (renewer_batch.c), and the heartbeat's renewer whose
 * renewals come every fixed_interval_ms. See renewer.c for the design. */
#ifndef SG_RENEWER_I_H
#define SG_RENEWER_I_H
#include "syncguard.h"

#include <pthread.h>

/* A renewer whose renewals come every fixed_interval_ms (the heartbeat's
 * interval_ms) instead of the lease rule's TTL/3; 0 means the lease rule.
 * Never batched. Otherwise as sg_renewer_start. */
sg_status sg_renewer_start_fixed(sg_backend *b, unsigned workers, int64_t fixed_interval_ms,
                                 sg_lease_lost_fn on_lost, void *ud, sg_renewer **out,
                                 sg_error *err);

enum { L_IDLE, L_QUEUED, L_BUSY };             /* lease.state */
enum { F_LIVE, F_REMOVED, F_LOST, F_STOPPED }; /* lease.fate */

typedef struct lease {
    uint64_t id;
    int64_t ttl_ms;               /* renewal TTL */
    int64_t deadline_ms;          /* lost at this monotonic time */
    int64_t due_ms;               /* next renewal (or retry) while idle */
    int64_t expires_at_ms;        /* from the last successful extend, 0 before one */
    sg_error *last_err;           /* last failed extend since the last success, or NULL */
    struct lease *hnext;          /* hash chain */
    struct lease *qprev, *qnext;  /* work queue, while queued */
    uint32_t heap_idx;            /* NO_INDEX once detached */
    uint8_t state, fate;
    char lock_id[SG_LOCK_ID_LEN + 1];
} lease;

/* A heap slot carries its key, so sifting never touches the leases. */
typedef struct slot {
    int64_t wake_ms; /* idle: min(due, deadline); queued or busy: deadline */
    lease *l;
} slot;

struct sg_renewer {
    pthread_mutex_t mu;
    pthread_cond_t timer_cv; /* the timing thread sleeps here */
    pthread_cond_t work_cv;  /* idle workers */
    pthread_cond_t op_cv;    /* an operation on a lease ended, or a lease went away */
    pthread_cond_t quiet_cv; /* a callback or a call ended (stop waits) */
    sg_backend *backend;
    sg_lease_lost_fn on_lost;
    void *ud;
    int64_t fixed_interval_ms; /* the heartbeat's interval_ms; 0: the lease rule */
    bool batched;              /* renewals go out in batches (sg_extend_many) */

    slot *heap;
    size_t heap_n, heap_cap;
    lease **buckets; /* id → lease, chained; power-of-two size */
    size_t nbuckets, count;
    lease *qhead, *qtail;
    lease *pending; /* found absent by sg_renewer_extend: the timing thread reports them */
    uint64_t next_id;

    int64_t timer_wake_ms; /* when the timing thread wakes by itself; INT64_MIN while awake */
    unsigned idle_workers, op_waiters;
    unsigned refs;      /* owner + threads + sg_renewer_extend calls in progress */
    unsigned callbacks; /* on_lost calls running */
    unsigned calls;     /* backend calls in flight from renewer threads */
    bool stopping;
    uint64_t renewed, failed, lost;
    int64_t warned_ms;  /* rate limit of the "extend failed" warning */
    unsigned unwarned;
};

/* renewer.c, mu held: take l out of the work queue. */
void renewer_queue_unlink(sg_renewer *r, lease *l);
/* renewer.c, mu held: a backend call has ended (counted: one of the renewer
 * threads', in `calls`). */
void renewer_call_ended(sg_renewer *r, bool counted);
/* renewer.c, mu held (released and retaken around callbacks and a release):
 * apply the result of an extend of l (state L_BUSY) sent at sent_ms with
 * ttl_ms; user: a caller's sg_renewer_extend, not a renewal. Returns the
 * status, SG_ABSENT when the lease is no longer live. */
sg_status renewer_apply(sg_renewer *r, lease *l, sg_status st, int64_t exp, int64_t sent_ms,
                        int64_t ttl_ms, bool user, int64_t *expires_at_ms, const sg_error *e);
/* renewer_batch.c, mu held and the work queue not empty: extend up to
 * SG_EXTEND_BATCH_MAX queued leases with one sg_extend_many. */
void renewer_extend_batch(sg_renewer *r);
#endif
