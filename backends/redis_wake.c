/* redis_wake.c — the Redis transport of wake-ups (wake.h): one subscriber
 * connection per backend handle, SUBSCRIBE/UNSUBSCRIBE per key channel
 * (`<lock storage key>:wake`, published by this project's release script),
 * replies read with hiredis's reader.
 *
 * The connection is the project's one Redis transport (redis_transport.h:
 * plain, unix or TLS, AUTH and SELECT done by the backend's own connect
 * function); all socket handling is in conn_open / conn_send / conn_read. */
#include "redis_wake.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "redis_transport.h"

#define SEND_TIMEOUT_MS 2000

typedef struct rwake {
    void *(*connect)(void *ud, sg_error *err);
    void (*close)(void *conn);
    void *ud;
    sg_redis_conn *c;
    sg_wake *w;
    bool refused; /* an error reply (e.g. LOADING after a restart): start over */
} rwake;

/* ---- the connection: open, send one command, read what has arrived ---- */
static int conn_open(rwake *r)
{
    sg_error err;
    sg_error_clear(&err);
    r->c = r->connect(r->ud, &err);
    if (!r->c) {
        sg_log(SG_LOG_DEBUG, "wake-ups: cannot connect to Redis: %s", err.message);
        return -1;
    }
    return sg_redis_fd(r->c);
}

static bool conn_send(rwake *r, const char *cmd, const char *arg)
{
    const char *argv[2] = {cmd, arg};
    sg_error err;
    return sg_redis_send(r->c, 2, argv, sg_monotonic_ms() + SEND_TIMEOUT_MS, &err) == SG_OK;
}

/* The socket is readable: hand every complete reply already there (TLS
 * records buffered inside OpenSSL included) to fn. false on EOF, an I/O
 * error or a protocol error. */
static bool conn_read(rwake *r, void (*fn)(redisReply *, void *), void *ud)
{
    for (;;) {
        redisReply *reply = NULL;
        sg_error err;
        /* a deadline of "now" reads only what is there; NetworkTimeout = no more */
        if (sg_redis_read(r->c, sg_monotonic_ms(), &reply, &err) != SG_OK)
            return err.code == SG_E_NETWORK_TIMEOUT;
        fn(reply, ud);
        freeReplyObject(reply);
    }
}

/* ---- the protocol: ["subscribe", ch, n] / ["message", ch, payload] ---- */
static void on_reply(redisReply *m, void *ud)
{
    rwake *r = ud;
    sg_wake *w = r->w;
    if (m->type == REDIS_REPLY_ERROR) { /* a SUBSCRIBE refused: never confirmed */
        sg_log(SG_LOG_DEBUG, "wake-ups: Redis refused a subscription: %.100s",
               m->str ? m->str : "");
        r->refused = true;
        return;
    }
    if (m->type != REDIS_REPLY_ARRAY || m->elements < 3 ||
        m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_STRING ||
        strlen(m->element[1]->str) != m->element[1]->len)
        return; /* not for us (a PING reply, an error): ignored */
    const char *kind = m->element[0]->str, *ch = m->element[1]->str;
    if (!strcmp(kind, "message"))
        sg_wake_fire(w, ch);
    else if (!strcmp(kind, "subscribe"))
        sg_wake_ready(w, ch);
}

static int t_connect(void *ud)
{
    return conn_open(ud);
}

static bool t_subscribe(void *ud, sg_wake *w, const char *topic, bool on)
{
    (void)w; /* confirmed later by a "subscribe" reply */
    return conn_send(ud, on ? "SUBSCRIBE" : "UNSUBSCRIBE", topic);
}

static bool t_input(void *ud, sg_wake *w)
{
    rwake *r = ud;
    r->w = w;
    r->refused = false;
    return conn_read(r, on_reply, r) && !r->refused;
}

static void t_disconnect(void *ud)
{
    rwake *r = ud;
    if (r->c)
        r->close(r->c);
    r->c = NULL;
}

static void t_free(void *ud)
{
    t_disconnect(ud);
    free(ud);
}

static const sg_wake_transport redis_transport = {t_connect, t_subscribe, t_input, t_disconnect,
                                                  t_free};

sg_wake *sg_redis_wake_new(void *(*connect)(void *ud, sg_error *err), void (*close)(void *conn),
                           void *ud)
{
    rwake *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    *r = (rwake){connect, close, ud, NULL, NULL, false};
    sg_wake *w = sg_wake_new(&redis_transport, r);
    if (!w)
        free(r);
    return w;
}
