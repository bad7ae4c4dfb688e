/* metrics.c — lock-free counters of syncguardfs and their Prometheus text. */
#include "metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *const op_names[M_OPS] = {"acquire", "release", "extend", "lookup", "list"};
static atomic_uint_fast64_t ops[M_OPS][3]; /* ok, contended/absent, error */
static atomic_uint_fast64_t errors[SG_E_INTERNAL + 1];
static atomic_uint_fast64_t lat_us[M_OPS], lat_n[M_OPS];
static atomic_uint_fast64_t events[M_EVENTS];
/* 1 unless the last backend call failed to reach a usable backend (the daemon
 * opened it before mounting, so it starts up). */
static atomic_int backend_up = 1;

int64_t metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Count one backend call: slot 0 ok, 1 contended/absent, 2 error. */
static void count(metrics_op op, int slot, const sg_error *err, int64_t duration_us)
{
    atomic_fetch_add(&ops[op][slot], 1);
    if (slot == 2 && err && err->code <= SG_E_INTERNAL)
        atomic_fetch_add(&errors[err->code], 1);
    atomic_fetch_add(&lat_us[op], (uint64_t)(duration_us > 0 ? duration_us : 0));
    atomic_fetch_add(&lat_n[op], 1);
    if (slot != 2)
        atomic_store(&backend_up, 1);
    else if (err && (err->code == SG_E_SERVICE_UNAVAILABLE || err->code == SG_E_NETWORK_TIMEOUT ||
                     err->code == SG_E_AUTH_FAILED))
        atomic_store(&backend_up, 0); /* other errors (bad input, ...) say nothing about it */
}

void metrics_op_done(metrics_op op, sg_status st, const sg_error *err, int64_t t0_us)
{
    count(op, st == SG_OK ? 0 : st == SG_ERROR ? 2 : 1, err, metrics_now_us() - t0_us);
}

void metrics_on_event(const sg_event *ev, void *ud)
{
    (void)ud;
    metrics_op op = ev->type == SG_EV_ACQUIRE   ? M_ACQUIRE
                    : ev->type == SG_EV_RELEASE ? M_RELEASE
                    : ev->type == SG_EV_EXTEND  ? M_EXTEND
                                                : M_LOOKUP;
    count(op, ev->ok ? 0 : ev->error ? 2 : 1, ev->error, ev->duration_us);
}

void metrics_event_set(metrics_event ev, uint64_t value)
{
    atomic_store(&events[ev], value);
}

void metrics_event_add(metrics_event ev)
{
    atomic_fetch_add(&events[ev], 1);
}

char *metrics_text(int held, int waiters, int draining, size_t *len)
{
    size_t cap = 8192;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t n = 0;
#define EMIT(...) n += (size_t)snprintf(s + n, n < cap ? cap - n : 0, __VA_ARGS__)
    static const char *const results[3] = {"ok", "contended_or_absent", "error"};
    EMIT("# HELP syncguardfs_build_info The daemon's version (the value is always 1).\n"
         "# TYPE syncguardfs_build_info gauge\nsyncguardfs_build_info{version=\"%s\"} 1\n",
         sg_version());
    EMIT("# HELP syncguardfs_backend_up 1 if the last backend call reached the backend, 0 if "
         "it was unavailable, timed out or refused the credentials.\n"
         "# TYPE syncguardfs_backend_up gauge\nsyncguardfs_backend_up %d\n",
         atomic_load(&backend_up));
    EMIT("# HELP syncguardfs_operations_total Backend operations by kind and result.\n"
         "# TYPE syncguardfs_operations_total counter\n");
    for (int op = 0; op < M_OPS; op++)
        for (int r = 0; r < 3; r++)
            EMIT("syncguardfs_operations_total{op=\"%s\",result=\"%s\"} %" PRIuFAST64 "\n",
                 op_names[op], results[r], atomic_load(&ops[op][r]));
    EMIT("# HELP syncguardfs_errors_total Failed backend operations by LockError code.\n"
         "# TYPE syncguardfs_errors_total counter\n");
    for (int c = 1; c <= SG_E_INTERNAL; c++)
        EMIT("syncguardfs_errors_total{code=\"%s\"} %" PRIuFAST64 "\n", sg_code_name((sg_code)c),
             atomic_load(&errors[c]));
    EMIT("# HELP syncguardfs_backend_latency_seconds Backend call latency.\n"
         "# TYPE syncguardfs_backend_latency_seconds summary\n");
    for (int op = 0; op < M_OPS; op++) {
        EMIT("syncguardfs_backend_latency_seconds_sum{op=\"%s\"} %.6f\n", op_names[op],
             (double)atomic_load(&lat_us[op]) / 1e6);
        EMIT("syncguardfs_backend_latency_seconds_count{op=\"%s\"} %" PRIuFAST64 "\n",
             op_names[op], atomic_load(&lat_n[op]));
    }
    EMIT("# HELP syncguardfs_locks_held Locks held through this mount.\n"
         "# TYPE syncguardfs_locks_held gauge\nsyncguardfs_locks_held %d\n", held);
    EMIT("# HELP syncguardfs_waiters Requests parked waiting for a lock.\n"
         "# TYPE syncguardfs_waiters gauge\nsyncguardfs_waiters %d\n", waiters);
    EMIT("# HELP syncguardfs_renewals_total Renewals (extends) by result.\n"
         "# TYPE syncguardfs_renewals_total counter\n"
         "syncguardfs_renewals_total{result=\"ok\"} %" PRIuFAST64 "\n"
         "syncguardfs_renewals_total{result=\"failed\"} %" PRIuFAST64 "\n",
         atomic_load(&events[M_RENEWED]), atomic_load(&events[M_RENEW_FAILED]));
    EMIT("# HELP syncguardfs_locks_lost_total Owned locks that were lost.\n"
         "# TYPE syncguardfs_locks_lost_total counter\nsyncguardfs_locks_lost_total %" PRIuFAST64
         "\n",
         atomic_load(&events[M_LOST]));
    EMIT("# HELP syncguardfs_interrupted_waits_total Waits ended by a signal.\n"
         "# TYPE syncguardfs_interrupted_waits_total counter\n"
         "syncguardfs_interrupted_waits_total %" PRIuFAST64 "\n",
         atomic_load(&events[M_INTERRUPTED]));
    EMIT("# HELP syncguardfs_wakeups_total Waiter attempts brought forward: by a release the "
         "backend announced (push), or to the holder's expiry (expiry).\n"
         "# TYPE syncguardfs_wakeups_total counter\n"
         "syncguardfs_wakeups_total{source=\"push\"} %" PRIuFAST64 "\n"
         "syncguardfs_wakeups_total{source=\"expiry\"} %" PRIuFAST64 "\n",
         atomic_load(&events[M_WAKE_PUSH]), atomic_load(&events[M_WAKE_EXPIRY]));
    EMIT("# HELP syncguardfs_shutting_down 1 while draining after SIGTERM.\n"
         "# TYPE syncguardfs_shutting_down gauge\nsyncguardfs_shutting_down %d\n",
         draining ? 1 : 0);
#undef EMIT
    if (n >= cap)
        n = cap - 1;
    *len = n;
    return s;
}
