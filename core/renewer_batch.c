/* renewer_batch.c — the renewer's batched path: a worker takes up to
 * SG_EXTEND_BATCH_MAX queued leases and extends them with one
 * sg_extend_many, one round trip for all of them where the backend can.
 * Each lease's result is applied exactly as a single extend's would be
 * (renewer_apply): success moves its deadline, absent loses it, an error
 * (the batch's own, e.g. a timeout, or the lease's) is retried until its
 * deadline. The send time of the batch is every lease's send time. */
#include "renewer_i.h"

#include <pthread.h>
#include <string.h>

void renewer_extend_batch(sg_renewer *r)
{
    lease *ls[SG_EXTEND_BATCH_MAX];
    sg_extend_item items[SG_EXTEND_BATCH_MAX];
    size_t n = 0;
    while (r->qhead && n < SG_EXTEND_BATCH_MAX) {
        lease *l = r->qhead;
        renewer_queue_unlink(r, l);
        l->state = L_BUSY; /* from here its lock_id is stable and l not freed */
        ls[n] = l;
        items[n] = (sg_extend_item){.lock_id = l->lock_id, .ttl_ms = l->ttl_ms};
        n++;
    }
    r->calls++;
    pthread_mutex_unlock(&r->mu);
    sg_error e;
    int64_t sent = sg_monotonic_ms();
    sg_extend_many(r->backend, items, n, &e);
    pthread_mutex_lock(&r->mu);
    renewer_call_ended(r, true);
    sg_error one; /* a failed item whose code differs from the first failure's */
    for (size_t i = 0; i < n; i++) {
        const sg_error *why = &e;
        if (items[i].status == SG_ERROR && items[i].code != e.code) {
            sg_error_clear(&one);
            sg_error_set(&one, items[i].code, "extend in a batch failed (%.200s)", e.message);
            why = &one;
        }
        renewer_apply(r, ls[i], items[i].status, items[i].expires_at_ms, sent, items[i].ttl_ms,
                      false, NULL, why);
    }
}
