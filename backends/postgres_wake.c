/* postgres_wake.c — the PostgreSQL transport of wake-ups (wake.h): one
 * LISTEN connection per backend handle on the table's channel
 * ("<table>_wake"), listening while any key is watched. A release NOTIFYs
 * that channel in its own transaction with md5(storage key) as payload
 * (postgres.c, Q_RELEASE) — only if a listener waits for that key: for
 * each watched key this connection holds a session-level shared advisory
 * lock (hashtext(channel), first 32 bits of the md5), which the release's
 * exclusive try-lock sees. The two-int4 lock space is not the bigint one
 * SyncGuard's pg_advisory_xact_lock(hashtext(key)) uses, and no table is
 * touched. Order: LISTEN is in place before the lock, the lock before the
 * watcher is told "ready" (and attempts once more), so a release either
 * sees the lock and notifies, or happened before that attempt. */
#include "postgres_wake.h"

#include <errno.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pwake {
    void *(*connect)(void *ud);
    void *ud;
    char channel[64];
    int timeout_ms;
    PGconn *c;
    int topics; /* subscribed topics: LISTEN while > 0 */
} pwake;

void sg_pg_wake_topic(const char *storage_key, char out[33])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(storage_key, strlen(storage_key), d, &n, EVP_md5(), NULL) || n != 16) {
        out[0] = '\0';
        return;
    }
    for (unsigned i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Run one statement and wait for its result, bounded (libpq keeps any
 * notification that arrives meanwhile for PQnotifies). */
static bool command(pwake *p, const char *sql)
{
    if (!PQsendQuery(p->c, sql) || PQflush(p->c) != 0)
        return false;
    int64_t deadline = sg_monotonic_ms() + p->timeout_ms;
    bool ok = true;
    for (;;) {
        while (PQisBusy(p->c)) {
            int64_t left = deadline - sg_monotonic_ms();
            struct pollfd pfd = {.fd = PQsocket(p->c), .events = POLLIN};
            int rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
            if (rc < 0 && errno == EINTR)
                continue;
            if (rc <= 0 || !PQconsumeInput(p->c))
                return false; /* timed out or broken: the caller reconnects */
        }
        PGresult *r = PQgetResult(p->c);
        if (!r)
            return ok;
        ok = ok && (PQresultStatus(r) == PGRES_COMMAND_OK ||
                    PQresultStatus(r) == PGRES_TUPLES_OK);
        PQclear(r);
    }
}

static int t_connect(void *ud)
{
    pwake *p = ud;
    p->c = p->connect(p->ud);
    p->topics = 0;
    return p->c ? PQsocket(p->c) : -1;
}

/* Hand over the notifications libpq has read. */
static void drain(pwake *p, sg_wake *w)
{
    PGnotify *n;
    while ((n = PQnotifies(p->c))) {
        if (!strcmp(n->relname, p->channel) && n->extra)
            sg_wake_fire(w, n->extra);
        PQfreemem(n);
    }
}

/* LISTEN/UNLISTEN the channel (a validated identifier). */
static bool listen_cmd(pwake *p, bool on)
{
    char sql[96];
    snprintf(sql, sizeof sql, "%s %s", on ? "LISTEN" : "UNLISTEN", p->channel);
    return command(p, sql);
}

/* Take or drop the shared advisory lock that tells releases a listener
 * waits for topic (md5 hex: its first 8 digits are the lock's second key). */
static bool waiter_lock(pwake *p, const char *topic, bool on)
{
    char sql[192];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_%slock_shared(hashtext('%s'), "
                              "('x' || '%.8s')::bit(32)::int)",
             on ? "" : "un", p->channel, topic);
    for (const char *c = topic; *c; c++) /* hex only: it is spliced */
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return true;
    return command(p, sql);
}

static bool t_subscribe(void *ud, sg_wake *w, const char *topic, bool on)
{
    pwake *p = ud;
    if (on && p->topics++ == 0 && !listen_cmd(p, true))
        return false;
    if (!waiter_lock(p, topic, on))
        return false;
    if (!on && --p->topics == 0 && !listen_cmd(p, false))
        return false;
    drain(p, w); /* read while waiting for the command */
    if (on)
        sg_wake_ready(w, topic); /* LISTEN has completed: in place */
    return true;
}

static bool t_input(void *ud, sg_wake *w)
{
    pwake *p = ud;
    if (!PQconsumeInput(p->c))
        return false;
    drain(p, w);
    return PQstatus(p->c) == CONNECTION_OK;
}

static void t_disconnect(void *ud)
{
    pwake *p = ud;
    PQfinish(p->c);
    p->c = NULL;
    p->topics = 0;
}

static void t_free(void *ud)
{
    t_disconnect(ud);
    free(ud);
}

static const sg_wake_transport pg_transport = {t_connect, t_subscribe, t_input, t_disconnect,
                                               t_free};

sg_wake *sg_pg_wake_new(void *(*connect)(void *ud), const char *channel, int timeout_ms,
                        void *ud)
{
    pwake *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->connect = connect;
    p->ud = ud;
    snprintf(p->channel, sizeof p->channel, "%s", channel);
    p->timeout_ms = timeout_ms;
    sg_wake *w = sg_wake_new(&pg_transport, p);
    if (!w)
        free(p);
    return w;
}
