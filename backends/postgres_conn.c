/* postgres_conn.c — the PostgreSQL backend's connections: libpq parameters
 * from the parsed URL, connections with server-side timeouts and the
 * statements prepared, the pool, pipelines read against a deadline (never
 * PQcancel: a timed-out connection is shut down and dropped), one retry on a
 * fresh connection when a connection was dropped, and libpq's errors as
 * sg_codes. The statements and what they mean are postgres.c's. */
#include "postgres_conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

sg_status sg_pg_conn_error(PGconn *c, sg_error *err)
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

sg_status sg_pg_result_error(const PGresult *r, sg_error *err)
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

/* (postgres_conn.h) */
sg_status sg_pg_params(pg_backend *pb, const sg_url *u, int connect_timeout_s,
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
void sg_pg_abandon(PGconn *c)
{
    int fd = PQsocket(c);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

void sg_pg_read_pipeline(PGconn *c, int nqueries, int64_t deadline, sg_pg_pipe *o, sg_error *err)
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
        bool done = s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK;
        o->completed += done;
        if (s == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            o->synced = true;
            return;
        }
        if (s == PGRES_FATAL_ERROR && o->st == SG_OK)
            o->st = sg_pg_result_error(r, err);
        /* the server's own errors carry a SQLSTATE; libpq's (a lost
         * connection, no memory for a result) do not */
        if (s == PGRES_FATAL_ERROR && PQresultErrorField(r, PG_DIAG_SQLSTATE))
            o->server_error = true;
        if (done && o->res && idx < nqueries && !o->res[idx])
            o->res[idx] = r;
        else
            PQclear(r);
    }
}

bool sg_pg_flush(PGconn *c, int64_t deadline, bool *timed_out)
{
    for (;;) {
        int r = PQflush(c);
        if (r <= 0)
            return r == 0;
        int64_t left = deadline - sg_monotonic_ms();
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN | POLLOUT};
        int n = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *timed_out = n == 0;
            return false;
        }
        if ((p.revents & POLLIN) && !PQconsumeInput(c))
            return false;
    }
}

/* Copy tpl into out with {T} and {F} replaced by the (validated) table names. */
void sg_pg_expand(const char *tpl, const char *t, const char *f, char *out, size_t size)
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
        sg_pg_conn_error(c, err);
        PQfinish(c);
        return NULL;
    }
    /* sends are bounded by deadlines too (sg_pg_flush), never by TCP's give-up */
    if (PQsetnonblocking(c, 1) != 0) {
        sg_pg_conn_error(c, err);
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
    /* The server gives up on a statement (or a lock wait) about when we do.
     * Every statement of ours touches a handful of rows through an index;
     * a locks table churned faster than autovacuum cleans it looks small to
     * the planner while its pages are many, and it would scan them all
     * (docs/postgres.md, "Connections and errors"). */
    ok = ok && PQenterPipelineMode(c) &&
         PQsendQueryParams(c,
                           "SELECT set_config('statement_timeout', $1, false), "
                           "set_config('lock_timeout', $1, false), "
                           "set_config('enable_seqscan', 'off', false)",
                           1, NULL, set_params, NULL, NULL, 0);
    /* One 4 MB value, made and freed: glibc's malloc (Linux servers) then
     * raises this server process's mmap threshold to 4 MB and its trim
     * threshold to 8 MB. Otherwise a statement of ours that needs ~100 KB
     * (each index scan takes ~27 KB) grows the heap with brk and the free
     * shrinks it again: 20-30 % of the server's CPU in brk and page faults
     * at 16 in flight on this VM; with it, none (docs/postgres.md). */
    ok = ok && PQsendQueryParams(c, "SELECT length(repeat('x', 4194304))", 0, NULL, NULL, NULL,
                                 NULL, 0);
    for (int i = 0; ok && i < Q_COUNT; i++) {
        sg_pg_expand(sg_pg_sql_text[i], qt, qf, sql, sizeof sql);
        ok = PQsendPrepare(c, sg_pg_sql_name[i], sql, 0, NULL);
    }
    int64_t deadline = sg_monotonic_ms() + pb->command_timeout_ms;
    sg_pg_pipe o = {0};
    ok = ok && PQpipelineSync(c) && sg_pg_flush(c, deadline, &o.timed_out);
    if (ok)
        sg_pg_read_pipeline(c, Q_COUNT + 2, deadline, &o, err);
    if (o.timed_out) {
        sg_pg_abandon(c);
        sg_error_set(err, SG_E_NETWORK_TIMEOUT,
                     "PostgreSQL did not answer the connection setup within %d ms",
                     pb->command_timeout_ms);
    } else if (!ok || o.dropped || (o.st == SG_OK && !o.timed_out && PQstatus(c) != CONNECTION_OK)) {
        sg_pg_conn_error(c, err);
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

void sg_pg_give_back(pg_backend *pb, PGconn *c, bool healthy)
{
    sg_pool_return(&pb->pool, c,
                   healthy && PQstatus(c) == CONNECTION_OK &&
                       PQtransactionStatus(c) == PQTRANS_IDLE);
}

void sg_pg_pool_init(pg_backend *pb)
{
    sg_pool_init(&pb->pool, connect_one, close_one, alive_one, pb);
}

bool sg_pg_send_failed(PGconn *c)
{
    return strstr(PQerrorMessage(c), "could not send data to server") != NULL;
}

void *sg_pg_connect_listener(void *ud)
{
    pg_backend *pb = ud;
    pb->kw[pb->n_kv] = pb->kv[pb->n_kv] = NULL;
    PGconn *c = PQconnectdbParams((const char *const *)pb->kw, (const char *const *)pb->kv, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        sg_error e;
        sg_pg_conn_error(c, &e);
        sg_log(SG_LOG_DEBUG, "wake-ups: cannot connect to PostgreSQL: %s", e.message);
        PQfinish(c);
        return NULL;
    }
    return c;
}
