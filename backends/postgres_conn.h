/* postgres_conn.h — private to the PostgreSQL backend: its state, and the
 * connection side (postgres_conn.c) that postgres.c's lock operations use —
 * libpq parameters from the URL, connections with the statements prepared,
 * the pool, pipelines with their deadlines, and libpq's errors as sg_codes. */
#ifndef SG_POSTGRES_CONN_H
#define SG_POSTGRES_CONN_H
#include <libpq-fe.h>
#include <pthread.h>

#include "backends.h"
#include "pool.h"
#include "wake.h"

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
    /* postgres_group.c: operations waiting to join a transaction, and the
     * transactions of grouped operations running now */
    pthread_mutex_t group_mu;
    struct pg_op *group_head, *group_tail;
    int groups_running;
} pg_backend;

enum { Q_LOCK_KEY, Q_LOCK_ID, Q_ACQUIRE, Q_RELEASE, Q_EXTEND, Q_LOOKUP_KEY, Q_LOOKUP_ID,
       Q_LIST, Q_EXTEND_MANY, Q_LOCK_GROUP, Q_COUNT };

/* The statements every connection prepares (postgres.c): names, and texts in
 * which {T} is the locks table and {F} the fence table. */
extern const char *const sg_pg_sql_name[Q_COUNT];
extern const char *const sg_pg_sql_text[Q_COUNT];

/* Every call is retried once on a fresh connection when its connection was
 * dropped (closed, reset or terminated, not timed out): reads, extend
 * (expiry = now + ttl again) and acquire (idempotent per lockId: Q_ACQUIRE
 * answers a retry with the row the first run wrote) are safe to run twice.
 * A release is retried only when its statement did not complete (the
 * server flushes every completion before a FATAL), or an error arrived
 * before the drop (its transaction did not commit), so it cannot report
 * "absent" for a release that ran. */
typedef enum op_kind { OP_READ, OP_WRITE /* idempotent */, OP_RELEASE } op_kind;

/* The libpq parameters from the parsed URL (url.c): a postgres:// URI's
 * hosts, ports, user, password, dbname and query, or a key=value string's
 * items, minus this project's own parameters (table=, fence_table=,
 * command_timeout_ms=, pool_size=, which set pb's fields); defaults that
 * bound every call on a stalled network come first so the URL can override
 * them. */
sg_status sg_pg_params(pg_backend *pb, const sg_url *u, int connect_timeout_s,
                       const char *password, sg_error *err);
/* pb->pool with connections made by sg_pg_params's parameters, prepared. */
void sg_pg_pool_init(pg_backend *pb);
/* Run one operation (postgres_group.c): its lock statement (lock_q with
 * lock_arg: Q_LOCK_KEY a storage key, Q_LOCK_ID a lockId, Q_LOCK_GROUP an
 * array of lockIds; or -1 for none: a read, no transaction) and its main
 * statement, committed
 * together; concurrent callers' operations may share the transaction.
 * Returns the main statement's result (caller PQclears) or NULL with err
 * set. A connection found dropped is replaced and the call retried once
 * (see op_kind). */
PGresult *sg_pg_run(pg_backend *pb, int lock_q, const char *lock_arg, int main_q, int nparams,
                    const char *const *params, op_kind kind, sg_error *err);
void sg_pg_group_init(pg_backend *pb);
void sg_pg_group_destroy(pg_backend *pb);

/* A pipeline's results up to its SYNC (sg_pg_read_pipeline): res, when not
 * NULL, has a slot per query and gets each query's result that completed. */
typedef struct sg_pg_pipe {
    PGresult **res;
    bool timed_out, dropped, synced;
    bool server_error; /* the server sent an error: its transaction did not commit */
    int completed; /* statements that completed (their results arrived) */
    sg_status st;  /* the first statement error (err set) */
} sg_pg_pipe;
void sg_pg_read_pipeline(PGconn *c, int nqueries, int64_t deadline, sg_pg_pipe *o, sg_error *err);
/* Send what libpq buffered (connections are non-blocking) before the
 * deadline, reading what arrives meanwhile; false on failure, or with
 * *timed_out. */
bool sg_pg_flush(PGconn *c, int64_t deadline, bool *timed_out);
/* Shut a timed-out connection's socket down (no PQcancel: it can hang). */
void sg_pg_abandon(PGconn *c);
/* After a drop: whether libpq failed to send (nothing reached the server). */
bool sg_pg_send_failed(PGconn *c);
/* Return a borrowed connection; a broken one (or one in an unknown state) is
 * closed. */
void sg_pg_give_back(pg_backend *pb, PGconn *c, bool healthy);
/* A plain connection (no pipeline, nothing prepared) for the wake-up
 * listener; NULL (logged at debug level) when it cannot connect. */
void *sg_pg_connect_listener(void *ud);
/* A failed connection (c NULL: out of memory) or a failed statement, as an
 * sg_code with libpq's text in err->cause; always SG_ERROR. */
sg_status sg_pg_conn_error(PGconn *c, sg_error *err);
sg_status sg_pg_result_error(const PGresult *r, sg_error *err);
/* Copy tpl into out with {T} and {F} replaced by the (validated) table names. */
void sg_pg_expand(const char *tpl, const char *t, const char *f, char *out, size_t size);
#endif
