/* heartbeat.c — keep one lock alive for a long task: a renewer with one
 * lease, so the heartbeat follows the one lease rule (retries until the
 * deadline, loss at the deadline even while an extend hangs). */
#include "syncguard.h"
#include "renewer_i.h"

#include <stdlib.h>

struct sg_heartbeat {
    sg_renewer *renewer;
    uint64_t lease;
    sg_lost_fn on_lost;
    void *ud;
};

static void heartbeat_lost(uint64_t id, const char *lock_id, const sg_error *why, void *ud)
{
    (void)id;
    sg_heartbeat *hb = ud;
    if (hb->on_lost)
        hb->on_lost(lock_id, why, hb->ud);
}

sg_status sg_heartbeat_start(sg_backend *b, const char *lock_id, int64_t ttl_ms,
                             int64_t interval_ms, sg_lost_fn on_lost, void *ud,
                             sg_heartbeat **out, sg_error *err)
{
    if (!sg_lock_id_valid(lock_id))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "lockId must be 22 base64url characters");
    if (sg_ttl_check(ttl_ms, err) != SG_OK)
        return SG_ERROR;
    sg_heartbeat *hb = calloc(1, sizeof *hb);
    if (!hb)
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    hb->on_lost = on_lost;
    hb->ud = ud;
    int64_t interval = 0;
    if (interval_ms > 0) {
        int64_t cap = ttl_ms / 2 > 0 ? ttl_ms / 2 : 1;
        interval = interval_ms < cap ? interval_ms : cap;
    }
    int64_t now = sg_monotonic_ms();
    if (sg_renewer_start_fixed(b, 1, interval, heartbeat_lost, hb, &hb->renewer, err) != SG_OK) {
        free(hb);
        return SG_ERROR;
    }
    hb->lease = sg_renewer_add(hb->renewer, lock_id, ttl_ms, now);
    if (!hb->lease) {
        sg_renewer_stop(hb->renewer);
        free(hb);
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    }
    *out = hb;
    return SG_OK;
}

bool sg_heartbeat_stop(sg_heartbeat *hb)
{
    if (!hb)
        return false;
    bool alive = sg_renewer_remove(hb->renewer, hb->lease);
    /* Wait for the extend in flight: the caller may close the backend next. */
    sg_renewer_stop_wait(hb->renewer, -1);
    free(hb);
    return alive;
}
