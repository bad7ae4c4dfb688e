/* lease.c — one renewal and loss rule for every holder of a lock (SPEC
 * section 5, "Renewal and loss"): when to renew, when a lease is lost, how
 * soon to retry. The renewer (renewer.c) applies it to many leases; the
 * heartbeat, syncguardfs and the CLI all go through it. */
#include "syncguard.h"

/* ---- arithmetic ---- */
int64_t sg_lease_margin_ms(int64_t ttl_ms)
{
    int64_t m = ttl_ms / 10;
    if (m < 0)
        return 0;
    return m > 2000 ? 2000 : m;
}

int64_t sg_lease_renew_after_ms(int64_t ttl_ms, double r)
{
    if (!(r >= 0 && r < 1))
        r = 0;
    int64_t v = (int64_t)((double)ttl_ms / 3 * (0.9 + 0.2 * r));
    if (v < 100)
        v = 100;
    /* Tiny TTLs: renew before the deadline, with room for one retry. */
    if (v > ttl_ms / 2)
        v = ttl_ms / 2;
    return v > 1 ? v : 1;
}

int64_t sg_lease_deadline_ms(int64_t sent_ms, int64_t ttl_ms)
{
    return sent_ms + ttl_ms - sg_lease_margin_ms(ttl_ms);
}

int64_t sg_lease_retry_after_ms(int64_t ttl_ms, int64_t now_ms, int64_t deadline_ms, double r)
{
    int64_t left = deadline_ms - now_ms;
    if (left <= 0)
        return 0;
    if (!(r >= 0 && r < 1))
        r = 0;
    int64_t d = ttl_ms / 10;
    d = d < 100 ? 100 : d > 1000 ? 1000 : d;
    int64_t v = d / 2 + (int64_t)(r * (double)(d - d / 2));
    return v > left ? left : v;
}
