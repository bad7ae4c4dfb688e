/* metrics.h — syncguardfs counters and their Prometheus text (MOUNT/metrics). */
#ifndef SGFS_METRICS_H
#define SGFS_METRICS_H
#include <stddef.h>
#include <stdint.h>

#include "syncguard.h"

typedef enum { M_ACQUIRE, M_RELEASE, M_EXTEND, M_LOOKUP, M_LIST, M_OPS } metrics_op;
typedef enum { M_RENEWED, M_RENEW_FAILED, M_LOST, M_INTERRUPTED, M_WAKE_PUSH, M_WAKE_EXPIRY,
               M_EVENTS } metrics_event;

/* Microseconds on CLOCK_MONOTONIC, to time a backend call. */
int64_t metrics_now_us(void);
/* Count one backend call that started at t0_us, by result and error code
 * (calls the telemetry decorator does not see: listing). */
void metrics_op_done(metrics_op op, sg_status st, const sg_error *err, int64_t t0_us);
/* The telemetry decorator's callback: every acquire, release, extend (the
 * renewer's too) and lookup of the daemon's backend, with its duration. */
void metrics_on_event(const sg_event *ev, void *ud);
void metrics_event_add(metrics_event ev);
/* Set a counter kept elsewhere (the renewer's renewals). */
void metrics_event_set(metrics_event ev, uint64_t value);
/* The text served at offset 0 of MOUNT/metrics. Caller frees; NULL on OOM. */
char *metrics_text(int held, int waiters, int draining, size_t *len);
#endif
