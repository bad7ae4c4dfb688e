/* redis_transport.h — private to the backends: the one Redis transport.
 *
 * Every Redis connection (the backend's pool, a pipelined one, a subscriber)
 * is a socket of ours — TCP, a unix socket, or TCP under OpenSSL TLS — with
 * hiredis's command formatter (redisFormatCommandArgv) and reply reader
 * (redisReader), and a deadline per request kept with poll(). hiredis 0.14
 * has no TLS and its async API cannot carry one (SPEC section 2); this file
 * is why nothing else needs to know.
 *
 * Use: sg_redis_config_parse once per backend (it builds the TLS context),
 * then sg_redis_connect per connection. Request/response callers use
 * sg_redis_command; a subscriber uses sg_redis_send, sg_redis_fd (to poll
 * with its other descriptors) and sg_redis_read; the shared pipelined
 * connections (redis_mux.c) sg_redis_write and sg_redis_read. A connection
 * is used by one thread at a time. */
#ifndef SG_REDIS_TRANSPORT_H
#define SG_REDIS_TRANSPORT_H
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "syncguard.h"
#include "url.h"

typedef struct sg_redis_config {
    char host[256];        /* TCP: a name or an IP literal (IPv6 without brackets) */
    int port;
    char socket_path[108]; /* unix:// instead of host/port */
    int db;
    char *user, *password; /* owned; the password is wiped by sg_redis_config_free */
    int connect_timeout_ms, command_timeout_ms;
    bool tls;              /* rediss:// */
    bool tls_insecure;     /* tls_insecure=1: no certificate or name check */
    void *ssl_ctx;         /* SSL_CTX *, built by sg_redis_config_parse, shared */
} sg_redis_config;

/* Fill cfg from a redis://, rediss:// or unix:// URL and the open options:
 * host, port, db (path or db=), user and password (URL, opts->password,
 * password_file=, $SYNCGUARD_REDIS_PASSWORD), connect_timeout_ms and
 * command_timeout_ms (default: opts, else 2000), tls_ca=, tls_cert=,
 * tls_key=, tls_insecure=. Parameters named in `extra` (NULL-terminated,
 * e.g. {"prefix", NULL}) are left to the caller; any other is
 * InvalidArgument. Loads the CA, client certificate and key now, so a bad
 * file fails at open, not at the first call. Free cfg with
 * sg_redis_config_free, also after an error. */
sg_status sg_redis_config_parse(sg_redis_config *cfg, const sg_url *u, const sg_open_opts *o,
                                const char *const *extra, sg_error *err);
void sg_redis_config_free(sg_redis_config *cfg);

typedef struct sg_redis_conn sg_redis_conn;

/* A new connection: TCP/unix connect, TLS handshake with verification,
 * then AUTH and SELECT (and PING over TLS when neither is needed, so a
 * refused client certificate fails here), all within connect_timeout_ms.
 * NULL + err: AuthFailed for a refused password or certificate (ours or the
 * server's), NetworkTimeout, ServiceUnavailable, InvalidArgument when the
 * port does not speak TLS. cfg must outlive the connection. */
sg_redis_conn *sg_redis_connect(const sg_redis_config *cfg, sg_error *err);
/* The same, finished by deadline_ms (sg_monotonic_ms) too when that comes
 * first: a connection made for requests already waiting is bounded by
 * their deadline. */
sg_redis_conn *sg_redis_connect_by(const sg_redis_config *cfg, int64_t deadline_ms,
                                   sg_error *err);
/* Close (TLS close_notify when the connection is healthy); NULL is a no-op. */
void sg_redis_close(sg_redis_conn *c);

/* One request within command_timeout_ms: send argv, read one reply.
 * Returns the reply (free with freeReplyObject; an error reply is returned
 * as such, not mapped) or NULL with err set from the transport failure
 * (sg_redis_error). *sent says whether any byte of the request may have
 * reached the server. */
redisReply *sg_redis_command(sg_redis_conn *c, int argc, const char **argv, bool *sent,
                             sg_error *err);

/* Pipelining and subscribers. deadline_ms is absolute on sg_monotonic_ms(),
 * or -1 for none. sg_redis_send queues argv and writes everything queued;
 * sg_redis_read returns the next reply (already buffered ones first, so it
 * may be called until it would wait). A deadline of "now" reads only what
 * is already there: SG_ERROR with NetworkTimeout then means "nothing yet"
 * and — unlike every other failure — leaves the connection usable. */
sg_status sg_redis_send(sg_redis_conn *c, int argc, const char **argv, int64_t deadline_ms,
                        sg_error *err);
sg_status sg_redis_read(sg_redis_conn *c, int64_t deadline_ms, redisReply **out, sg_error *err);
/* A reply already read and complete, without any I/O; NULL when there is
 * none (or the connection failed: sg_redis_read reports why). After one
 * sg_redis_read, this hands out the rest of what that read brought in. */
redisReply *sg_redis_buffered(sg_redis_conn *c);
/* Write commands already formatted (redisFormatCommandArgv, concatenated)
 * after anything queued, before deadline_ms; *sent says whether any byte of
 * them may have reached the server (false: provably not executed). */
sg_status sg_redis_write(sg_redis_conn *c, const char *cmds, size_t len, int64_t deadline_ms,
                         bool *sent, sg_error *err);
/* The socket, for poll() next to other descriptors (POLLIN). Over TLS check
 * sg_redis_pending first: decrypted bytes may wait inside OpenSSL. */
int sg_redis_fd(const sg_redis_conn *c);
bool sg_redis_pending(const sg_redis_conn *c);

/* State after a failure: broken connections must be closed (the pool drops
 * them); dropped means closed or reset under us — not a timeout — so a
 * request that failed that way may be retried on a fresh connection. */
bool sg_redis_broken(const sg_redis_conn *c);
bool sg_redis_dropped(const sg_redis_conn *c);
/* The pool's check of an idle connection: nothing to read and not hung up
 * (a TLS session ticket is read and does not count). */
bool sg_redis_idle_alive(sg_redis_conn *c);

/* The error of the last failure of c, as the contract's codes (see
 * docs/redis.md "Connections and errors"). */
sg_status sg_redis_error(const sg_redis_conn *c, sg_error *err);
/* An error reply mapped: NOAUTH/WRONGPASS → AuthFailed, LOADING/READONLY →
 * ServiceUnavailable, OOM → RateLimited, CROSSSLOT/MOVED → InvalidArgument,
 * the rest Internal. */
sg_status sg_redis_reply_error(const redisReply *r, sg_error *err);
#endif
