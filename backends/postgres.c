/* postgres.c — the PostgreSQL backend (libpq 15): SyncGuard's tables, one
 * network round trip per operation through pipeline mode, a connection pool.
 *
 * Mutations send BEGIN; SELECT pg_advisory_xact_lock(hashtext(storage key));
 * <decide + write>; COMMIT together and read the four results. The decision
 * is a later statement than the lock, so under READ COMMITTED it sees a fresh
 * snapshot taken after the wait: a row written by whoever held the advisory
 * lock before us (SyncGuard TS takes the same lock) is visible to it.
 *
 * This file holds the SQL and the lock operations; connections, the pool and
 * pipelines are postgres_conn.c's. */
#include "postgres_conn.h"
#include "postgres_wake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_LIMIT 1700
#define SKEY_MAX 1800

#define NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

/* Statement texts (prepared on every connection by postgres_conn.c); {T} is
 * the locks table, {F} the fence table. */
const char *const sg_pg_sql_text[Q_COUNT] = {
    [Q_LOCK_KEY] = "SELECT pg_advisory_xact_lock(hashtext($1))",
    [Q_LOCK_ID] = "SELECT pg_advisory_xact_lock(hashtext(key)) FROM {T} WHERE lock_id = $1",
    /* $1 storage key, $2 fence key, $3 user key, $4 lockId, $5 ttl */
    [Q_ACQUIRE] =
        /* cur: the live row of the key, read once (one index scan; a CTE
         * used three times is computed once) */
        "WITH t AS (SELECT " NOW_MS " AS now_ms), "
        "cur AS (SELECT l.lock_id, l.expires_at_ms, l.acquired_at_ms, l.fence FROM {T} l, t "
        "  WHERE l.key = $1 AND l.expires_at_ms > t.now_ms - 1000), "
        "free AS (SELECT t.now_ms FROM t WHERE NOT EXISTS (SELECT 1 FROM cur)), "
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
        "UNION ALL SELECT fence, expires_at_ms, acquired_at_ms FROM cur WHERE lock_id = $4 "
        /* held by another: fence NULL, the holder's expiresAtMs and our now */
        "UNION ALL SELECT NULL, cur.expires_at_ms, t.now_ms FROM cur, t WHERE cur.lock_id <> $4",
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
    /* The advisory locks of many keys at once — a group of operations that
     * share a transaction (postgres_group.c), a renewal batch: $1 storage
     * keys (acquires), $2 lockIds (release, extend) — taken in ascending
     * order (volatile functions of the target list run after the sort), so
     * two such transactions never wait for each other in a cycle, and every
     * other transaction takes one lock */
    [Q_LOCK_GROUP] = "SELECT pg_advisory_xact_lock(h) FROM (SELECT hashtext(k) AS h "
                     "FROM unnest($1::text[]) k UNION SELECT hashtext(key) FROM {T} "
                     "WHERE lock_id = ANY($2::text[])) s ORDER BY h",
    [Q_LOOKUP_KEY] = "SELECT lock_id, expires_at_ms, acquired_at_ms, user_key, fence FROM {T} "
                     "WHERE key = $1 AND expires_at_ms > " NOW_MS " - 1000",
    [Q_LOOKUP_ID] = "SELECT lock_id, expires_at_ms, acquired_at_ms, user_key, fence FROM {T} "
                    "WHERE lock_id = $1 AND expires_at_ms > " NOW_MS " - 1000",
    /* $1 cursor (last storage key seen), $2 page size */
    [Q_LIST] = "SELECT key, user_key FROM {T} WHERE key > $1 AND expires_at_ms > " NOW_MS
               " - 1000 ORDER BY key LIMIT $2::int",
};
const char *const sg_pg_sql_name[Q_COUNT] = {"sg_lock_key", "sg_lock_id", "sg_acquire",
                                             "sg_release", "sg_extend", "sg_lookup_key",
                                             "sg_lookup_id", "sg_list",
                                             "sg_extend_many", "sg_lock_group"};

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
    PGresult *r = sg_pg_run(pb, Q_LOCK_KEY, sk, Q_ACQUIRE, 5, params, OP_WRITE, err);
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
    PGresult *r = sg_pg_run(pb, Q_LOCK_ID, lock_id, Q_RELEASE, 2, params, OP_RELEASE, err);
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
    PGresult *r = sg_pg_run(b->impl, Q_LOCK_ID, lock_id, Q_EXTEND, 2, params, OP_WRITE, err);
    if (!r)
        return SG_ERROR;
    sg_status st = SG_ABSENT;
    if (PQntuples(r) == 1)
        st = get_i64(r, 0, 0, exp) ? SG_OK
                                   : sg_error_set(err, SG_E_INTERNAL, "bad extend result");
    PQclear(r);
    return st;
}

/* One pipelined transaction for the whole batch (see sg_backend_ops, and
 * sg_pg_run: the implicit transaction of one pipeline sync):
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
    PGresult *r = sg_pg_run(b->impl, Q_LOCK_GROUP, ids, Q_EXTEND_MANY, 2, params, OP_WRITE, err);
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
    PGresult *r = sg_pg_run(b->impl, -1, NULL, Q_LOOKUP_KEY, 1, params, OP_READ, err);
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
    PGresult *r = sg_pg_run(b->impl, -1, NULL, Q_LOOKUP_ID, 1, params, OP_READ, err);
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
    PGresult *r = sg_pg_run(b->impl, -1, NULL, Q_LIST, 2, params, OP_READ, err);
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

static void p_close(sg_backend *b)
{
    pg_backend *pb = b->impl;
    sg_wake_free(pb->wake);
    sg_pool_destroy(&pb->pool);
    sg_pg_group_destroy(pb);
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
        st = sg_pg_conn_error(c, err);
    else if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        st = sg_pg_result_error(r, err);
    PQclear(r);
    return st;
}

/* Create the tables and SyncGuard's indexes when missing (idempotent). */
static sg_status setup_schema(pg_backend *pb, sg_error *err)
{
    pb->kw[pb->n_kv] = pb->kv[pb->n_kv] = NULL;
    PGconn *c = PQconnectdbParams((const char *const *)pb->kw, (const char *const *)pb->kv, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        sg_status st = sg_pg_conn_error(c, err);
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
        sg_pg_expand("CREATE TABLE IF NOT EXISTS {T} (key TEXT PRIMARY KEY, lock_id TEXT NOT NULL, "
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
    sg_backend *b = sg_backend_alloc(&pg_ops, (sg_capabilities){"postgres", true, SG_TIME_SERVER},
                                     sizeof(pg_backend), err);
    if (!b)
        return SG_ERROR;
    pg_backend *pb = b->impl;
    sg_pg_pool_init(pb);
    sg_pg_group_init(pb);
    snprintf(pb->table, sizeof pb->table, "syncguard_locks");
    snprintf(pb->fence_table, sizeof pb->fence_table, "syncguard_fence_counters");
    pb->command_timeout_ms = o.command_timeout_ms > 0 ? o.command_timeout_ms : 5000;
    int cto = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 5000;
    int cto_s = cto < 2000 ? 2 : (cto + 999) / 1000; /* libpq: ≥ 2 s */
    pb->pool_size = PG_POOL_DEFAULT;
    sg_status st = sg_pg_params(pb, url, cto_s, o.password, err);
    snprintf(pb->channel, sizeof pb->channel, "%s_wake", pb->table);
    sg_pool_set_max(&pb->pool, pb->pool_size);
    if (st == SG_OK)
        st = setup_schema(pb, err);
    if (st == SG_OK) { /* a first pooled connection: prepares, proves the setup */
        PGconn *c = sg_pool_borrow(&pb->pool, err);
        if (!c)
            st = SG_ERROR;
        else
            sg_pg_give_back(pb, c, true);
    }
    if (st == SG_OK && !(pb->wake = sg_pg_wake_new(sg_pg_connect_listener, pb->channel,
                                                   pb->command_timeout_ms, pb)))
        sg_log(SG_LOG_WARN, "postgres: no memory for wake-ups; waiters will poll");
    if (st != SG_OK) {
        p_close(b);
        return SG_ERROR;
    }
    *out = b;
    return SG_OK;
}
