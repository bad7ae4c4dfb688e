/* redis_mux.h — private to the backends: a few Redis connections shared by
 * any number of threads, pipelined. Commands of concurrent callers are
 * written together (one write for everything queued) and the replies matched
 * to them in order; each caller blocks until its own reply, error or
 * timeout. There is no I/O thread: the caller that finds nobody doing a
 * connection's I/O does it (writes, reads, hands replies out) until its own
 * reply is in, then frees the role for the next caller to arrive and wakes
 * the oldest one still waiting to take it if nobody does
 * ("leader/follower"), so one caller alone pays no context switch.
 *
 * Per request, as on a connection of its own: the deadline is
 * command_timeout_ms from the call; a failure of the connection (timeout,
 * reset, protocol error) fails every request written on it and replaces it;
 * requests not yet written when it failed (provably not executed) move to
 * the fresh connection once. AUTH and SELECT are redone by every new
 * connection (sg_redis_connect). The connections are the one transport's
 * (redis_transport.h): plain, unix or TLS. */
#ifndef SG_REDIS_MUX_H
#define SG_REDIS_MUX_H
#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "redis_transport.h"

#define SG_REDIS_MUX_MAX 16     /* the most connections= accepts */
#define SG_REDIS_MUX_DEFAULT 2 /* connections when the URL does not say */

typedef struct sg_redis_mux sg_redis_mux;

/* Up to `connections` shared connections of cfg (which must outlive the
 * mux), each opened on first use (no I/O, no thread here). NULL when out of
 * memory. */
sg_redis_mux *sg_redis_mux_new(const sg_redis_config *cfg, int connections);
/* Close every connection; no call may be in flight. NULL is a no-op. */
void sg_redis_mux_free(sg_redis_mux *m);

/* One request on the least loaded connection: as sg_redis_command (the
 * reply, or NULL + err), plus *sent (any byte of it may have reached the
 * server) and *dropped (its connection was closed or reset under it — not
 * a timeout — so running it again on a fresh connection is the caller's
 * choice). */
redisReply *sg_redis_mux_command(sg_redis_mux *m, int argc, const char **argv, bool *sent,
                                 bool *dropped, sg_error *err);
#endif
