/* postgres.c — the PostgreSQL backend (libpq 15): SyncGuard's tables, one
 * network round trip per operation through pipeline mode, a connection pool.
 *
 * Mutations send BEGIN; SELECT pg_advisory_xact_lock(hashtext(storage key));
 * <decide + write>; COMMIT together and read the four results. The decision
 * is a later statement than the lock, so under READ COMMITTED it sees a fresh
 * snapshot taken after the wait: a row written by whoever held the advisory
 * lock before us (SyncGuard TS takes the same lock) is visible to it. */
#include "backends.h"
#include "pool.h"
#include "postgres_wake.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define PG_LIMIT 1700
#define SKEY_MAX 1800

#define PG_MAX_PARAMS 64
/* Connections per backend. More callers than this queue (FIFO) for the next
 * free one: the server runs each transaction on one process and commits with
 * a WAL flush, so beyond a few connections per server CPU more of them only
 * add context switches and lock waits (docs/benchmarks.md, "concurrent"). */
#define PG_POOL_DEFAULT 8

typedef struct pg_backend {
    /* libpq keywords/values (NULL-terminated; later ones win): our defaults,
     * then the URL's, then the password from options. Never logged. */
    char *kw[PG_MAX_PARAMS + 1], *kv[PG_MAX_PARAMS + 1];
    int n_kv;
    char table[64], fence_table[64];
    int command_timeout_ms;
    int pool_size; /* connections at most (pool_size=; default PG_POOL_DEFAULT) */
    sg_pool pool; /* of PGconn, statements prepared, in pipeline mode */
    char channel[72]; /* "<table>_wake" (≤ 53 bytes): release NOTIFYs, waiters LISTEN */
    sg_wake *wake;    /* the listener (postgres_wake.c); NULL: no memory for it */
} pg_backend;

enum { Q_LOCK_KEY, Q_LOCK_ID, Q_ACQUIRE, Q_RELEASE, Q_EXTEND, Q_LOOKUP_KEY, Q_LOOKUP_ID,
       Q_LIST, Q_LOCK_IDS, Q_EXTEND_MANY, Q_COUNT };

#define NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

/* Statement texts; {T} is the locks table, {F} the fence table. */
static const char *const sql_text[Q_COUNT] = {
    [Q_LOCK_KEY] = "SELECT pg_advisory_xact_lock(hashtext($1))",
    [Q_LOCK_ID] = "SELECT pg_advisory_xact_lock(hashtext(key)) FROM {T} WHERE lock_id = $1",
    /* $1 storage key, $2 fence key, $3 user key, $4 lockId, $5 ttl */
    [Q_ACQUIRE] =
        "WITH t AS (SELECT " NOW_MS " AS now_ms), "
        "free AS (SELECT t.now_ms FROM t WHERE NOT EXISTS ("
        "  SELECT 1 FROM {T} l WHERE l.key = $1 AND l.expires_at_ms > t.now_ms - 1000)), "
        "f AS (INSERT INTO {F} AS c (fence_key, fence, key_debug) "
        "  SELECT $2, 1, $3 FROM free "
        "  ON CONFLICT (fence_key) DO UPDATE SET fence = c.fence + 1 RETURNING c.fence), "
        "w AS (INSERT INTO {T} AS l (key, lock_id, expires_at_ms, acquired_at_ms, fence, user_key) "
        "  SELECT $1, $4, free.now_ms + $5::bigint, free.now_ms, lpad(f.fence::text, 15, '0'), $3 "
        "  FROM free, f "
        "  ON CONFLICT (key) DO UPDATE SET lock_id = EXCLUDED.lock_id, "
        "    expires_at_ms = EXCLUDED.expires_at_ms, acquired_at_ms = EXCLUDED.acquired_at_ms, "
        "    fence = EXCLUDED.fence, user_key = EXCLUDED.user_key "
        "  RETURNING l.fence, l.expires_at_ms, l.acquired_at_ms) "
        "SELECT fence, expires_at_ms, acquired_at_ms FROM w "
        /* a retry of this very acquire (same lockId) answers what it did */
        "UNION ALL SELECT l.fence, l.expires_at_ms, l.acquired_at_ms FROM {T} l, t "
        "WHERE l.key = $1 AND l.lock_id = $4 AND l.expires_at_ms > t.now_ms - 1000 "
        /* held by another: fence NULL, the holder's expiresAtMs and our now */
        "UNION ALL SELECT NULL, l.expires_at_ms, t.now_ms FROM {T} l, t "
        "WHERE l.key = $1 AND l.lock_id <> $4 AND l.expires_at_ms > t.now_ms - 1000",
    /* $1 lockId, $2 the table's wake-up channel: NOTIFY in the release
     * transaction (delivered at its COMMIT) with md5(storage key) — only when
     * some listener waits for the key: listeners hold a shared advisory lock
     * (hashtext(channel), first 32 bits of the md5) while they do, so our
     * exclusive try fails (postgres_wake.c). A NOTIFY serializes commits
     * server-wide (docs/decisions.md: half the release throughput at 16 in
     * flight), so releases nobody waits for must not pay it. */
    [Q_RELEASE] = "WITH d AS (DELETE FROM {T} WHERE lock_id = $1 AND expires_at_ms > " NOW_MS
                  " - 1000 RETURNING key) SELECT 1, CASE WHEN pg_try_advisory_xact_lock("
                  "hashtext($2), ('x' || left(md5(d.key), 8))::bit(32)::int) THEN NULL "
                  "ELSE pg_notify($2, md5(d.key)) END FROM d",
    /* $1 lockId, $2 ttl */
    [Q_EXTEND] = "WITH t AS (SELECT " NOW_MS " AS now_ms) "
                 "UPDATE {T} l SET expires_at_ms = t.now_ms + $2::bigint FROM t "
                 "WHERE l.lock_id = $1 AND l.expires_at_ms > t.now_ms - 1000 "
                 "RETURNING l.expires_at_ms",
    /* Q_LOCK_ID for a batch ($1 lockIds): the keys' advisory locks in
     * ascending order (volatile functions of the target list run after the
     * sort), so two batches never wait for each other in a cycle */
    [Q_LOCK_IDS] = "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext(key) AS h "
                   "FROM {T} WHERE lock_id = ANY($1::text[])) s ORDER BY h",
    /* Q_EXTEND for a batch: $1 lockIds, $2 their ttls; one clock reading for
     * all, the same liveness rule; returns the 1-based index of each
     * extended lock with its expiresAtMs (the others are absent) */
    [Q_EXTEND_MANY] =
        "WITH t AS (SELECT " NOW_MS " AS now_ms), "
        "u AS (SELECT * FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY "
        "  AS u(lock_id, ttl, i)) "
        "UPDATE {T} l SET expires_at_ms = t.now_ms + u.ttl FROM t, u "
        "WHERE l.lock_id = u.lock_id AND l.expires_at_ms > t.now_ms - 1000 "
        "RETURNING u.i, l.expires_at_ms",
    [Q_LOOKUP_KEY] = "SELECT lock_id, expires_at_ms, acquired_at_ms, user_key, fence FROM {T} "
                     "WHERE key = $1 AND expires_at_ms > " NOW_MS " - 1000",
    [Q_LOOKUP_ID] = "SELECT lock_id, expires_at_ms, acquired_at_ms, user_key, fence FROM {T} "
                    "WHERE lock_id = $1 AND expires_at_ms > " NOW_MS " - 1000",
    /* $1 cursor (last storage key seen), $2 page size */
    [Q_LIST] = "SELECT key, user_key FROM {T} WHERE key > $1 AND expires_at_ms > " NOW_MS
               " - 1000 ORDER BY key LIMIT $2::int",
};
static const char *const sql_name[Q_COUNT] = {"sg_lock_key", "sg_lock_id", "sg_acquire",
                                              "sg_release", "sg_extend", "sg_lookup_key",
                                              "sg_lookup_id", "sg_list", "sg_lock_ids",
                                              "sg_extend_many"};

/* ---- errors ---- */
static sg_status map_sqlstate(const char *state, const char *msg, sg_error *err)
{
    if (err)
        snprintf(err->cause, sizeof err->cause, "%s%s%s", state ? state : "",
                 state ? ": " : "", msg ? msg : "");
    if (!state)
        return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "PostgreSQL connection failed");
    if (!strncmp(state, "28", 2) || !strcmp(state, "42501"))
        return sg_error_set(err, SG_E_AUTH_FAILED, "PostgreSQL refused access");
    if (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
        !strcmp(state, "57P03"))
        return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "PostgreSQL is unavailable");
    if (!strcmp(state, "57014"))
        return sg_error_set(err, SG_E_NETWORK_TIMEOUT, "PostgreSQL statement timed out");
    if (!strcmp(state, "53300"))
        return sg_error_set(err, SG_E_RATE_LIMITED, "PostgreSQL has too many connections");
    if (!strncmp(state, "53", 2))
        return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "PostgreSQL is out of resources");
    if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strncmp(state, "55P03", 5))
        return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE,
                            "PostgreSQL aborted the transaction (contention)");
    if (!strncmp(state, "22", 2))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "PostgreSQL rejected a value");
    if (!strcmp(state, "42P01"))
        return sg_error_set(err, SG_E_INTERNAL, "a lock table is missing");
    return sg_error_set(err, SG_E_INTERNAL, "PostgreSQL error");
}

static sg_status conn_error(PGconn *c, sg_error *err)
{
    const char *m = c ? PQerrorMessage(c) : "out of memory";
    if (err)
        snprintf(err->cause, sizeof err->cause, "%.*s", (int)strcspn(m, "\n"), m);
    if (strstr(m, "password authentication failed") || strstr(m, "no pg_hba.conf entry") ||
        strstr(m, "no password supplied") || strstr(m, "role \"") ||
        strstr(m, "permission denied"))
        return sg_error_set(err, SG_E_AUTH_FAILED, "PostgreSQL refused the connection");
    if (strstr(m, "timeout expired"))
        return sg_error_set(err, SG_E_NETWORK_TIMEOUT, "PostgreSQL connect timed out");
    /* TLS (sslmode=verify-ca/verify-full): a server we cannot verify, or one
     * without TLS when TLS is required, is refused, not retried as an outage */
    if (strstr(m, "certificate verify failed") || strstr(m, "does not match host name") ||
        strstr(m, "server certificate for"))
        return sg_error_set(err, SG_E_AUTH_FAILED,
                            "PostgreSQL TLS: the server's certificate was not accepted (check "
                            "sslrootcert= and the host name)");
    if (strstr(m, "does not support SSL") || strstr(m, "SSL connection is required") ||
        strstr(m, "no encryption"))
        return sg_error_set(err, SG_E_AUTH_FAILED,
                            "PostgreSQL TLS: sslmode requires TLS and the two sides could not "
                            "agree on it");
    if (strstr(m, "root certificate file") || strstr(m, "could not read root certificate") ||
        strstr(m, "could not load private key") || strstr(m, "could not open certificate"))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "PostgreSQL TLS: cannot read a certificate or key file (sslrootcert=, "
                            "sslcert=, sslkey=)");
    if (strstr(m, "SSL error") || strstr(m, "alert"))
        return sg_error_set(err, SG_E_AUTH_FAILED, "PostgreSQL TLS handshake refused");
    return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "PostgreSQL connection failed");
}

static sg_status result_error(const PGresult *r, sg_error *err)
{
    return map_sqlstate(PQresultErrorField(r, PG_DIAG_SQLSTATE),
                        PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY), err);
}

/* ---- identifiers and URL ---- */
static bool valid_identifier(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 48 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static sg_status add_kv(pg_backend *pb, const char *k, const char *v, sg_error *err)
{
    if (pb->n_kv >= PG_MAX_PARAMS)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "too many connection parameters");
    char *ks = strdup(k), *vs = strdup(v);
    if (!ks || !vs) {
        free(ks);
        free(vs);
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    }
    pb->kw[pb->n_kv] = ks;
    pb->kv[pb->n_kv++] = vs;
    return SG_OK;
}

/* This project's parameters (table=, fence_table=, command_timeout_ms=, pool_size=),
 * which libpq would reject; *ours tells whether name is one of them. */
static sg_status own_param(pg_backend *pb, const char *name, const char *v, bool *ours,
                           sg_error *err)
{
    *ours = true;
    if (!strcmp(name, "table") || !strcmp(name, "fence_table")) {
        if (!valid_identifier(v))
            return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                "table names must be lowercase SQL identifiers "
                                "([a-z_][a-z0-9_]*, at most 48 bytes)");
        snprintf(name[0] == 't' ? pb->table : pb->fence_table, sizeof pb->table, "%s", v);
    } else if (!strcmp(name, "command_timeout_ms")) {
        char *end;
        long t = strtol(v, &end, 10);
        if (*end || end == v || t < 1 || t > 3600000)
            return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                "command_timeout_ms must be 1..3600000");
        pb->command_timeout_ms = (int)t;
    } else if (!strcmp(name, "pool_size")) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || end == v || n < 1 || n > SG_POOL_MAX)
            return sg_error_set(err, SG_E_INVALID_ARGUMENT, "pool_size must be 1..%d",
                                SG_POOL_MAX);
        pb->pool_size = (int)n;
    } else {
        *ours = false;
    }
    return SG_OK;
}

/* "a,b,c" from the hosts' names or ports into out (size bytes). */
static bool join_hosts(const sg_url *u, bool ports, char *out, size_t size)
{
    size_t j = 0;
    bool any = false;
    out[0] = '\0';
    for (size_t i = 0; i < u->n_hosts; i++) {
        char item[300] = "";
        if (ports && u->hosts[i].port)
            snprintf(item, sizeof item, "%d", u->hosts[i].port);
        else if (!ports)
            snprintf(item, sizeof item, "%s", u->hosts[i].name);
        any = any || item[0];
        int n = snprintf(out + j, size - j, "%s%s", i ? "," : "", item);
        if (n < 0 || (size_t)n >= size - j)
            return false;
        j += (size_t)n;
    }
    return any;
}

/* The libpq parameters from the parsed URL (url.c): a postgres:// URI's
 * hosts, ports, user, password, dbname and query, or a key=value string's
 * items, minus this project's own parameters; defaults that bound every
 * call on a stalled network come first so the URL can override them. */
static sg_status build_params(pg_backend *pb, const sg_url *u, int connect_timeout_s,
                              const char *password, sg_error *err)
{
    for (size_t i = 0; i < u->n_params; i++) {
        bool ours;
        if (own_param(pb, u->params[i].name, u->params[i].value, &ours, err) != SG_OK)
            return SG_ERROR;
    }
    if (!strcmp(pb->table, pb->fence_table))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "table and fence_table must differ");
    char cto[16], tut[16];
    snprintf(cto, sizeof cto, "%d", connect_timeout_s);
    snprintf(tut, sizeof tut, "%d", pb->command_timeout_ms);
    /* dead peers are noticed: unacknowledged data for command_timeout_ms, or
     * an idle connection silent for 10 + 3 * 2 s, ends the connection */
    const char *defaults[][2] = {{"connect_timeout", cto}, {"keepalives", "1"},
                                 {"keepalives_idle", "10"}, {"keepalives_interval", "2"},
                                 {"keepalives_count", "3"}, {"tcp_user_timeout", tut}};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (add_kv(pb, defaults[i][0], defaults[i][1], err) != SG_OK)
            return SG_ERROR;
    if (u->kind == SG_URL_POSTGRES) {
        char list[2048];
        if (u->n_hosts && join_hosts(u, false, list, sizeof list) &&
            add_kv(pb, "host", list, err) != SG_OK)
            return SG_ERROR;
        if (u->n_hosts && join_hosts(u, true, list, sizeof list) &&
            add_kv(pb, "port", list, err) != SG_OK)
            return SG_ERROR;
        if ((u->user && add_kv(pb, "user", u->user, err) != SG_OK) ||
            (u->password && add_kv(pb, "password", u->password, err) != SG_OK) ||
            (u->path && *u->path && add_kv(pb, "dbname", u->path, err) != SG_OK))
            return SG_ERROR;
    }
    for (size_t i = 0; i < u->n_params; i++) {
        const char *k = u->params[i].name, *v = u->params[i].value;
        bool ours;
        own_param(pb, k, v, &ours, NULL);
        if (ours)
            continue;
        if (u->kind == SG_URL_POSTGRES && !strcmp(k, "ssl") && !strcmp(v, "true"))
            k = "sslmode", v = "require"; /* libpq's URI alias */
        if (add_kv(pb, k, v, err) != SG_OK)
            return SG_ERROR;
    }
    if (password && add_kv(pb, "password", password, err) != SG_OK)
        return SG_ERROR;
    return SG_OK;
}

/* ---- connections ---- */
static int64_t deadline_after(int ms)
{
    return sg_monotonic_ms() + ms;
}

/* The next result, waiting for input until the deadline. *timed_out tells a
 * timeout (the caller shuts the socket down and discards the connection). */
static PGresult *next_result(PGconn *c, int64_t deadline, bool *timed_out, bool *failed)
{
    while (PQisBusy(c)) {
        int64_t left = deadline - sg_monotonic_ms();
        if (left <= 0) {
            *timed_out = true;
            return NULL;
        }
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0) {
            *timed_out = true;
            return NULL;
        }
        if (!PQconsumeInput(c)) {
            *failed = true;
            return NULL;
        }
    }
    return PQgetResult(c);
}

/* A timed-out connection: never PQcancel here (libpq 15's connects and waits
 * without any timeout, forever through a stalled network). Shut the socket
 * down so nothing more is read or sent on it; the caller discards it, and a
 * mutation in flight on it has an unknown outcome. The server side ends the
 * statement by itself (statement_timeout, lock_timeout). */
static void abandon(PGconn *c)
{
    int fd = PQsocket(c);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

/* Read a pipeline's results up to its SYNC. Each query's results end with
 * NULL. main_idx: the query whose result is kept in *main (or -1). */
typedef struct pipe_out {
    PGresult *main;
    bool timed_out, dropped;
    int completed; /* statements that completed (their results arrived) */
    sg_status st;
} pipe_out;

static void read_pipeline(PGconn *c, int nqueries, int main_idx, int64_t deadline,
                          pipe_out *o, sg_error *err)
{
    int idx = 0;
    o->st = SG_OK;
    while (idx <= nqueries) {
        bool failed = false;
        PGresult *r = next_result(c, deadline, &o->timed_out, &failed);
        if (!r) {
            if (o->timed_out || failed || PQstatus(c) != CONNECTION_OK) {
                o->dropped = !o->timed_out;
                return;
            }
            idx++; /* end of one query's results */
            continue;
        }
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
            o->completed++;
        if (s == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return;
        }
        if (s == PGRES_FATAL_ERROR && o->st == SG_OK)
            o->st = result_error(r, err);
        if (idx == main_idx && (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) && !o->main)
            o->main = r;
        else
            PQclear(r);
    }
}

/* Copy tpl into out with {T} and {F} replaced by the (validated) table names. */
static void expand(const char *tpl, const char *t, const char *f, char *out, size_t size)
{
    size_t j = 0;
    for (const char *p = tpl; *p && j + 1 < size; p++) {
        const char *sub = !strncmp(p, "{T}", 3) ? t : !strncmp(p, "{F}", 3) ? f : NULL;
        if (!sub) {
            out[j++] = *p;
            continue;
        }
        size_t n = strlen(sub);
        if (j + n >= size)
            break;
        memcpy(out + j, sub, n);
        j += n;
        p += 2;
    }
    out[j] = '\0';
}

/* A new connection (the pool's connect): server-side timeouts set and the
 * statements prepared in one pipelined round trip, bounded by the command
 * timeout. */
static void *connect_one(void *ud, sg_error *err)
{
    pg_backend *pb = ud;
    pb->kw[pb->n_kv] = pb->kv[pb->n_kv] = NULL;
    PGconn *c = PQconnectdbParams((const char *const *)pb->kw, (const char *const *)pb->kv, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        conn_error(c, err);
        PQfinish(c);
        return NULL;
    }
    char qt[80], qf[80], sql[4096], ms[16];
    char *t = PQescapeIdentifier(c, pb->table, strlen(pb->table));
    char *f = PQescapeIdentifier(c, pb->fence_table, strlen(pb->fence_table));
    bool ok = t && f;
    if (ok) {
        snprintf(qt, sizeof qt, "%s", t);
        snprintf(qf, sizeof qf, "%s", f);
    }
    PQfreemem(t);
    PQfreemem(f);
    snprintf(ms, sizeof ms, "%d", pb->command_timeout_ms);
    const char *set_params[1] = {ms};
    /* the server gives up on a statement (or a lock wait) about when we do */
    ok = ok && PQenterPipelineMode(c) &&
         PQsendQueryParams(c,
                           "SELECT set_config('statement_timeout', $1, false), "
                           "set_config('lock_timeout', $1, false)",
                           1, NULL, set_params, NULL, NULL, 0);
    for (int i = 0; ok && i < Q_COUNT; i++) {
        expand(sql_text[i], qt, qf, sql, sizeof sql);
        ok = PQsendPrepare(c, sql_name[i], sql, 0, NULL);
    }
    ok = ok && PQpipelineSync(c) && PQflush(c) == 0;
    pipe_out o = {0};
    if (ok) {
        read_pipeline(c, Q_COUNT + 1, -1, deadline_after(pb->command_timeout_ms), &o, err);
        if (o.timed_out) {
            abandon(c);
            sg_error_set(err, SG_E_NETWORK_TIMEOUT,
                         "PostgreSQL did not answer the connection setup within %d ms",
                         pb->command_timeout_ms);
        }
    }
    if (!ok || o.dropped || (o.st == SG_OK && !o.timed_out && PQstatus(c) != CONNECTION_OK)) {
        conn_error(c, err);
        o.st = SG_ERROR;
    }
    if (o.st != SG_OK || o.timed_out) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void close_one(void *c)
{
    PQfinish(c);
}

static bool alive_one(void *c)
{
    return sg_pool_fd_idle(PQsocket(c));
}

/* Return a connection; a broken one (or one in an unknown state) is closed. */
static void give_back(pg_backend *pb, PGconn *c, bool healthy)
{
    sg_pool_return(&pb->pool, c,
                   healthy && PQstatus(c) == CONNECTION_OK &&
                       PQtransactionStatus(c) == PQTRANS_IDLE);
}

/* Every call is retried once on a fresh connection when its connection was
 * dropped (closed, reset or terminated, not timed out): reads, extend
 * (expiry = now + ttl again) and acquire (idempotent per lockId: Q_ACQUIRE
 * answers a retry with the row the first run wrote) are safe to run twice.
 * A release is retried only when none of its statements completed (the
 * server flushes every completion before a FATAL), so it cannot report
 * "absent" for a release that ran. */
typedef enum op_kind { OP_READ, OP_WRITE /* idempotent */, OP_RELEASE } op_kind;

/* libpq keeps a failed send quiet and lets the read report the closed
 * connection; its message says which it was. */
static bool send_failed(PGconn *c)
{
    return strstr(PQerrorMessage(c), "could not send data to server") != NULL;
}

/* Run a pipeline: optionally BEGIN; lock statement; main statement;
 * COMMIT. Returns the main statement's result (caller clears) or NULL with
 * err set. A connection found dropped is replaced and the call retried once
 * (see op_kind). */
static PGresult *run(pg_backend *pb, int lock_q, const char *lock_arg, int main_q, int nparams,
                     const char *const *params, op_kind kind, sg_error *err)
{
    bool tx = lock_q >= 0;
    /* waiting for a free connection counts against the command timeout */
    int64_t queued_until = deadline_after(pb->command_timeout_ms);
    for (int conn_try = 0;; conn_try++) {
        PGconn *c = sg_pool_borrow_by(&pb->pool, queued_until, err);
        if (!c)
            return NULL;
        bool ok = true;
        if (tx) {
            ok = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
                 PQsendQueryPrepared(c, sql_name[lock_q], 1, &lock_arg, NULL, NULL, 0);
        }
        ok = ok && PQsendQueryPrepared(c, sql_name[main_q], nparams, params, NULL, NULL, 0);
        if (tx)
            ok = ok && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
        ok = ok && PQpipelineSync(c) && PQflush(c) == 0;
        pipe_out o = {0};
        if (ok)
            read_pipeline(c, tx ? 4 : 1, tx ? 2 : 0, deadline_after(pb->command_timeout_ms), &o,
                          err);
        bool unsent = !ok || (o.dropped && !o.completed && send_failed(c));
        if ((!ok || o.dropped) && conn_try == 0 && (kind != OP_RELEASE || !o.completed)) {
            PQclear(o.main);
            give_back(pb, c, false);
            sg_error_clear(err);
            sg_log(SG_LOG_DEBUG, "postgres: connection dropped; retrying on a fresh one");
            continue;
        }
        if (o.timed_out) {
            abandon(c);
            o.st = sg_error_set(err, SG_E_NETWORK_TIMEOUT,
                                "PostgreSQL did not answer within %d ms",
                                pb->command_timeout_ms);
        } else if (!ok || o.dropped) {
            o.st = conn_error(c, err);
        }
        if ((o.timed_out || o.dropped || !ok) && err)
            err->unknown_outcome = kind != OP_READ && !unsent;
        if (o.st == SG_OK && !o.main)
            o.st = sg_error_set(err, SG_E_INTERNAL, "no result from PostgreSQL");
        /* after an error the transaction block may be left aborted */
        give_back(pb, c, o.st == SG_OK);
        if (o.st != SG_OK) {
            PQclear(o.main);
            return NULL;
        }
        return o.main;
    }
}

/* ---- keys ---- */
static sg_status keys_for(const char *key, char *storage, char *fence, sg_error *err)
{
    if (sg_storage_key("", key, PG_LIMIT, 0, storage, SKEY_MAX, err) != SG_OK)
        return SG_ERROR;
    if (fence && sg_fence_key("", storage, PG_LIMIT, 0, fence, SKEY_MAX, err) != SG_OK)
        return SG_ERROR;
    return SG_OK;
}

static bool get_i64(const PGresult *r, int row, int col, int64_t *out)
{
    if (PQgetisnull(r, row, col))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(PQgetvalue(r, row, col), &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* ---- operations ---- */
static sg_status p_acquire(sg_backend *b, const char *key, const char *lock_id, int64_t ttl,
                           sg_lock *out, sg_holder *holder, sg_error *err)
{
    pg_backend *pb = b->impl;
    char sk[SKEY_MAX], fk[SKEY_MAX], ttl_s[24];
    if (keys_for(key, sk, fk, err) != SG_OK)
        return SG_ERROR;
    snprintf(ttl_s, sizeof ttl_s, "%lld", (long long)ttl);
    const char *params[5] = {sk, fk, key, lock_id, ttl_s};
    PGresult *r = run(pb, Q_LOCK_KEY, sk, Q_ACQUIRE, 5, params, OP_WRITE, err);
    if (!r)
        return SG_ERROR;
    sg_status st;
    if (PQntuples(r) == 0) {
        st = SG_CONTENDED;
    } else if (PQntuples(r) == 1 && PQnfields(r) == 3 && PQgetisnull(r, 0, 0)) {
        st = SG_CONTENDED;
        if (get_i64(r, 0, 1, &holder->expires_at_ms) && get_i64(r, 0, 2, &holder->now_ms))
            holder->free_at_ms = holder->expires_at_ms + SG_TOLERANCE_MS;
        else
            memset(holder, 0, sizeof *holder);
    } else {
        uint64_t fence;
        const char *f = PQgetvalue(r, 0, 0);
        if (PQntuples(r) != 1 || PQnfields(r) != 3 || sg_fence_parse(f, &fence, NULL) != SG_OK ||
            !get_i64(r, 0, 1, &out->expires_at_ms) || !get_i64(r, 0, 2, &out->acquired_at_ms)) {
            st = sg_error_set(err, SG_E_INTERNAL, "unexpected acquire result from PostgreSQL");
            if (err)
                err->unknown_outcome = true;
        } else if ((st = sg_fence_check(fence, key, err)) != SG_OK) {
            if (err)
                err->unknown_outcome = true; /* written: the core gives it back */
        } else {
            memcpy(out->fence, f, SG_FENCE_LEN + 1);
        }
    }
    PQclear(r);
    return st;
}

static sg_status p_release(sg_backend *b, const char *lock_id, sg_error *err)
{
    pg_backend *pb = b->impl;
    const char *params[2] = {lock_id, pb->channel};
    PGresult *r = run(pb, Q_LOCK_ID, lock_id, Q_RELEASE, 2, params, OP_RELEASE, err);
    if (!r)
        return SG_ERROR;
    sg_status st = PQntuples(r) == 1 ? SG_OK : SG_ABSENT;
    PQclear(r);
    return st;
}

static sg_status p_extend(sg_backend *b, const char *lock_id, int64_t ttl, int64_t *exp,
                          sg_error *err)
{
    char ttl_s[24];
    snprintf(ttl_s, sizeof ttl_s, "%lld", (long long)ttl);
    const char *params[2] = {lock_id, ttl_s};
    PGresult *r = run(b->impl, Q_LOCK_ID, lock_id, Q_EXTEND, 2, params, OP_WRITE, err);
    if (!r)
        return SG_ERROR;
    sg_status st = SG_ABSENT;
    if (PQntuples(r) == 1)
        st = get_i64(r, 0, 0, exp) ? SG_OK
                                   : sg_error_set(err, SG_E_INTERNAL, "bad extend result");
    PQclear(r);
    return st;
}

/* One pipelined transaction for the whole batch (see sg_backend_ops): BEGIN;
 * the advisory locks of all its keys; one UPDATE over the arrays; COMMIT. */
static sg_status p_extend_many(sg_backend *b, size_t n, sg_extend_item *items, sg_error *err)
{
    if (n == 0)
        return SG_OK;
    /* "{id,id,...}" and "{ttl,ttl,...}": lockIds are base64url, no quoting */
    char *ids = malloc(n * (SG_LOCK_ID_LEN + 1) + 2), *ttls = malloc(n * 21 + 2);
    if (!ids || !ttls) {
        free(ids);
        free(ttls);
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    }
    char *p = ids, *q = ttls;
    *p++ = '{';
    *q++ = '{';
    for (size_t i = 0; i < n; i++) {
        memcpy(p, items[i].lock_id, SG_LOCK_ID_LEN);
        p += SG_LOCK_ID_LEN;
        *p++ = i + 1 < n ? ',' : '}';
        q += sprintf(q, "%lld%c", (long long)items[i].ttl_ms, i + 1 < n ? ',' : '}');
        items[i].status = SG_ABSENT; /* unless the UPDATE returns it */
        items[i].expires_at_ms = 0;
        items[i].code = SG_E_NONE;
    }
    *p = '\0';
    const char *params[2] = {ids, ttls};
    PGresult *r = run(b->impl, Q_LOCK_IDS, ids, Q_EXTEND_MANY, 2, params, OP_WRITE, err);
    free(ids);
    free(ttls);
    if (!r)
        return SG_ERROR;
    sg_status st = PQnfields(r) == 2 ? SG_OK : SG_ERROR;
    for (int row = 0; st == SG_OK && row < PQntuples(r); row++) {
        int64_t i, exp;
        if (!get_i64(r, row, 0, &i) || i < 1 || (size_t)i > n || !get_i64(r, row, 1, &exp))
            st = SG_ERROR;
        else {
            items[i - 1].status = SG_OK;
            items[i - 1].expires_at_ms = exp;
        }
    }
    PQclear(r);
    return st == SG_OK ? SG_OK : sg_error_set(err, SG_E_INTERNAL, "bad extend result");
}

static sg_status parse_info(PGresult *r, sg_lock_info *out, sg_error *err)
{
    if (PQntuples(r) == 0)
        return SG_ABSENT;
    uint64_t fence;
    const char *id = PQgetvalue(r, 0, 0), *key = PQgetvalue(r, 0, 3);
    if (PQnfields(r) != 5 || !sg_lock_id_valid(id) || !get_i64(r, 0, 1, &out->expires_at_ms) ||
        !get_i64(r, 0, 2, &out->acquired_at_ms) || strlen(key) > SG_KEY_MAX ||
        sg_fence_parse(PQgetvalue(r, 0, 4), &fence, NULL) != SG_OK)
        return sg_error_set(err, SG_E_INTERNAL, "corrupt lock row in PostgreSQL");
    memcpy(out->lock_id, id, SG_LOCK_ID_LEN + 1);
    snprintf(out->key, sizeof out->key, "%s", key);
    memcpy(out->fence, PQgetvalue(r, 0, 4), SG_FENCE_LEN + 1);
    return SG_OK;
}

static sg_status p_lookup_key(sg_backend *b, const char *key, sg_lock_info *out, sg_error *err)
{
    char sk[SKEY_MAX];
    if (keys_for(key, sk, NULL, err) != SG_OK)
        return SG_ERROR;
    const char *params[1] = {sk};
    PGresult *r = run(b->impl, -1, NULL, Q_LOOKUP_KEY, 1, params, OP_READ, err);
    if (!r)
        return SG_ERROR;
    sg_status st = parse_info(r, out, err);
    PQclear(r);
    return st;
}

static sg_status p_lookup_id(sg_backend *b, const char *lock_id, sg_lock_info *out,
                             sg_error *err)
{
    const char *params[1] = {lock_id};
    PGresult *r = run(b->impl, -1, NULL, Q_LOOKUP_ID, 1, params, OP_READ, err);
    if (!r)
        return SG_ERROR;
    sg_status st = parse_info(r, out, err);
    PQclear(r);
    return st;
}

static sg_status p_list(sg_backend *b, char cursor[SG_CURSOR_LEN], size_t page, sg_list_fn fn,
                        void *ud, sg_error *err)
{
    char n[24];
    snprintf(n, sizeof n, "%zu", page);
    const char *params[2] = {cursor, n};
    PGresult *r = run(b->impl, -1, NULL, Q_LIST, 2, params, OP_READ, err);
    if (!r)
        return SG_ERROR;
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        const char *k = PQgetvalue(r, i, 1);
        if (*k && strlen(k) <= SG_KEY_MAX)
            fn(k, ud);
    }
    if ((size_t)rows < page)
        cursor[0] = '\0';
    else
        snprintf(cursor, SG_CURSOR_LEN, "%s", PQgetvalue(r, rows - 1, 0));
    PQclear(r);
    return SG_OK;
}

/* Wake-ups: md5(storage key) on the table's channel, one LISTEN connection. */
static sg_watch *p_watch(sg_backend *b, const char *key, sg_wake_fn fn, void *ud)
{
    pg_backend *pb = b->impl;
    char sk[SKEY_MAX], topic[33];
    if (!pb->wake || keys_for(key, sk, NULL, NULL) != SG_OK)
        return NULL;
    sg_pg_wake_topic(sk, topic);
    return sg_wake_watch(pb->wake, topic, fn, ud);
}

static void p_unwatch(sg_backend *b, sg_watch *w)
{
    pg_backend *pb = b->impl;
    if (pb->wake)
        sg_wake_unwatch(pb->wake, w);
}

/* The listener's connection: plain (no pipeline, nothing prepared). */
static void *connect_listener(void *ud)
{
    pg_backend *pb = ud;
    pb->kw[pb->n_kv] = pb->kv[pb->n_kv] = NULL;
    PGconn *c = PQconnectdbParams((const char *const *)pb->kw, (const char *const *)pb->kv, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        sg_error e;
        conn_error(c, &e);
        sg_log(SG_LOG_DEBUG, "wake-ups: cannot connect to PostgreSQL: %s", e.message);
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void p_close(sg_backend *b)
{
    pg_backend *pb = b->impl;
    sg_wake_free(pb->wake);
    sg_pool_destroy(&pb->pool);
    for (int i = 0; i < pb->n_kv; i++) {
        free(pb->kw[i]);
        explicit_bzero(pb->kv[i], strlen(pb->kv[i]));
        free(pb->kv[i]);
    }
    free(pb);
    free(b);
}

static const sg_backend_ops pg_ops = {
    .acquire = p_acquire,
    .release = p_release,
    .extend = p_extend,
    .extend_many = p_extend_many,
    .lookup_key = p_lookup_key,
    .lookup_id = p_lookup_id,
    .list = p_list,
    .close = p_close,
    .watch = p_watch,
    .unwatch = p_unwatch,
};

/* ---- schema ---- */
static sg_status exec_simple(PGconn *c, const char *sql, sg_error *err)
{
    PGresult *r = PQexec(c, sql);
    sg_status st = SG_OK;
    if (!r)
        st = conn_error(c, err);
    else if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        st = result_error(r, err);
    PQclear(r);
    return st;
}

/* Create the tables and SyncGuard's indexes when missing (idempotent). */
static sg_status setup_schema(pg_backend *pb, sg_error *err)
{
    pb->kw[pb->n_kv] = pb->kv[pb->n_kv] = NULL;
    PGconn *c = PQconnectdbParams((const char *const *)pb->kw, (const char *const *)pb->kv, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        sg_status st = conn_error(c, err);
        PQfinish(c);
        return st;
    }
    char sql[2048];
    snprintf(sql, sizeof sql, "SELECT to_regclass('%s') IS NOT NULL, to_regclass('%s') IS NOT NULL",
             pb->table, pb->fence_table);
    PGresult *r = PQexec(c, sql);
    bool have = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                !strcmp(PQgetvalue(r, 0, 0), "t") && !strcmp(PQgetvalue(r, 0, 1), "t");
    PQclear(r);
    sg_status st = SG_OK;
    if (!have) {
        /* identifiers were validated as [a-z_][a-z0-9_]*: safe to splice */
        expand("CREATE TABLE IF NOT EXISTS {T} (key TEXT PRIMARY KEY, lock_id TEXT NOT NULL, "
               "expires_at_ms BIGINT NOT NULL, acquired_at_ms BIGINT NOT NULL, "
               "fence TEXT NOT NULL, user_key TEXT NOT NULL);"
               "CREATE UNIQUE INDEX IF NOT EXISTS idx_{T}_lock_id ON {T} (lock_id);"
               "CREATE INDEX IF NOT EXISTS idx_{T}_expires ON {T} (expires_at_ms);"
               "CREATE TABLE IF NOT EXISTS {F} (fence_key TEXT PRIMARY KEY, "
               "fence BIGINT NOT NULL DEFAULT 0, key_debug TEXT);",
               pb->table, pb->fence_table, sql, sizeof sql);
        st = exec_simple(c, sql, err);
        if (st == SG_OK)
            sg_log(SG_LOG_INFO, "postgres: created lock tables %s and %s", pb->table,
                   pb->fence_table);
        else if (err)
            sg_error_set(err, err->code,
                         "cannot create missing lock table %s or %s (grant CREATE, or create "
                         "them as docs/postgres.md shows)",
                         pb->table, pb->fence_table);
    }
    PQfinish(c);
    return st;
}

sg_status sg_postgres_open(const sg_url *url, const sg_open_opts *opts, sg_backend **out,
                           sg_error *err)
{
    sg_open_opts o = opts ? *opts : (sg_open_opts){0};
    sg_backend *b = sg_backend_alloc(&pg_ops, (sg_capabilities){"postgres", true, SG_TIME_SERVER}, sizeof(pg_backend), err);
    if (!b)
        return SG_ERROR;
    pg_backend *pb = b->impl;
    sg_pool_init(&pb->pool, connect_one, close_one, alive_one, pb);
    snprintf(pb->table, sizeof pb->table, "syncguard_locks");
    snprintf(pb->fence_table, sizeof pb->fence_table, "syncguard_fence_counters");
    pb->command_timeout_ms = o.command_timeout_ms > 0 ? o.command_timeout_ms : 5000;
    int cto = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 5000;
    int cto_s = cto < 2000 ? 2 : (cto + 999) / 1000; /* libpq: ≥ 2 s */
    pb->pool_size = PG_POOL_DEFAULT;
    sg_status st = build_params(pb, url, cto_s, o.password, err);
    snprintf(pb->channel, sizeof pb->channel, "%s_wake", pb->table);
    sg_pool_set_max(&pb->pool, pb->pool_size);
    if (st == SG_OK)
        st = setup_schema(pb, err);
    if (st == SG_OK) { /* a first pooled connection: prepares, proves the setup */
        PGconn *c = sg_pool_borrow(&pb->pool, err);
        if (!c)
            st = SG_ERROR;
        else
            give_back(pb, c, true);
    }
    if (st == SG_OK && !(pb->wake = sg_pg_wake_new(connect_listener, pb->channel,
                                                   pb->command_timeout_ms, pb)))
        sg_log(SG_LOG_WARN, "postgres: no memory for wake-ups; waiters will poll");
    if (st != SG_OK) {
        p_close(b);
        return SG_ERROR;
    }
    *out = b;
    return SG_OK;
}
