/* wake.h — private to the backends: push wake-ups (sg_watch_key) over one
 * subscriber connection per backend handle. This module keeps the watchers
 * by topic, runs the subscriber thread (connect, subscribe only to topics
 * someone watches, unsubscribe when none are left, reconnect with backoff)
 * and calls the watchers back; a transport (redis_wake.c, postgres_wake.c)
 * speaks the server's protocol. A topic is the transport's name for one key:
 * a Redis channel, a PostgreSQL NOTIFY payload. */
#ifndef SG_WAKE_H
#define SG_WAKE_H
#include <stdbool.h>

#include "syncguard.h"

typedef struct sg_wake sg_wake;

/* Called on the subscriber thread, never with the registry's lock held. */
typedef struct sg_wake_transport {
    /* Connect (bounded by the backend's timeouts); the fd to poll, or -1. */
    int (*connect)(void *ud);
    /* Ask for (on) or drop (!on) a topic's announcements. Report the
     * subscription in place with sg_wake_ready, now or later from input.
     * false: the connection is broken. */
    bool (*subscribe)(void *ud, sg_wake *w, const char *topic, bool on);
    /* The fd is readable: read, report with sg_wake_ready/sg_wake_fire.
     * false: the connection is broken (closed, reset, garbage). */
    bool (*input)(void *ud, sg_wake *w);
    void (*disconnect)(void *ud);
    void (*free)(void *ud);
} sg_wake_transport;

/* A registry; its thread starts with the first watch. NULL on ENOMEM. */
sg_wake *sg_wake_new(const sg_wake_transport *t, void *ud);
/* Stop the thread, disconnect, free (transport ud too). NULL is a no-op. */
void sg_wake_free(sg_wake *w);
sg_watch *sg_wake_watch(sg_wake *w, const char *topic, sg_wake_fn fn, void *ud);
void sg_wake_unwatch(sg_wake *w, sg_watch *x);
/* From the transport: topic's subscription is in place (NULL: every topic). */
void sg_wake_ready(sg_wake *w, const char *topic);
/* From the transport: a release of topic was announced. */
void sg_wake_fire(sg_wake *w, const char *topic);
/* Counters: wake-ups delivered, reconnects. */
void sg_wake_stats(sg_wake *w, unsigned long *delivered, unsigned long *connects);
#endif
