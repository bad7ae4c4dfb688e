/* postgres_group.c — running the PostgreSQL backend's operations on pooled
 * connections, the transactions of concurrent callers grouped.
 *
 * An operation is its lock statement and its main statement, sent as one
 * pipeline and committed at the pipeline's SYNC (one implicit transaction,
 * no BEGIN/COMMIT). A lone caller runs exactly that. When callers overlap,
 * at most GROUPS_RUNNING transactions of lock operations run at once; the
 * callers arriving meanwhile queue, and the next transaction takes the
 * queue — up to GROUP_MAX operations: one statement taking all their keys'
 * advisory locks in ascending order (Q_LOCK_GROUP), then each operation's
 * main statement in arrival order, one SYNC. The server then pays one
 * commit (one WAL flush), one round trip and one transaction for the group
 * instead of one each — its CPU is what limits throughput (docs/benchmarks.md,
 * "PostgreSQL: grouped transactions").
 *
 * What grouping must not change, per operation:
 * - its outcome: a statement sees the writes of the group's earlier
 *   statements (READ COMMITTED, one transaction), so two operations on one
 *   key decide in arrival order as they would one after the other; every
 *   lock statement elsewhere takes one lock or ascending ones, so groups
 *   never deadlock with each other, with renewals or with SyncGuard TS;
 * - its failures: a statement error rolls the whole group back, so nothing
 *   of it happened — each operation then runs alone and gets its own
 *   outcome. A timeout or a dropped connection is what it is for every
 *   operation on that connection, as on a shared Redis connection: a
 *   timeout fails them all (unknown outcome for mutations); after a drop
 *   each is retried once on a fresh connection under op_kind's rule;
 * - its deadline: waiting in the queue counts against the command timeout,
 *   as waiting for a pooled connection does; the transaction then has one
 *   command timeout to answer. */
#include "postgres_conn.h"

#include <stdlib.h>
#include <string.h>

#define GROUP_MAX 64     /* operations in one transaction at most */
#define GROUPS_RUNNING 2 /* transactions of grouped lock operations at once */

/* pg_op.state: queued; taken into a transaction (its wait no longer times
 * out: the transaction's own deadlines bound it); told to lead the next
 * transaction; run again alone; done */
enum { OP_QUEUED, OP_TAKEN, OP_LEAD, OP_AGAIN, OP_DONE };

typedef struct pg_op {
    struct pg_op *next;
    int lock_q; /* Q_LOCK_KEY / Q_LOCK_ID (groupable), or another, or -1 */
    const char *lock_arg;
    int main_q, nparams;
    const char *const *params;
    op_kind kind;
    int64_t queued_until; /* the call's deadline for getting onto a connection */
    bool retried;         /* its one retry on a fresh connection is used */
    int state;            /* under group_mu */
    int outcome;          /* OP_AGAIN / OP_DONE, set by whoever ran it */
    pthread_cond_t cv;
    PGresult *result;
    sg_error err;
} pg_op;

void sg_pg_group_init(pg_backend *pb)
{
    pthread_mutex_init(&pb->group_mu, NULL);
}

void sg_pg_group_destroy(pg_backend *pb)
{
    pthread_mutex_destroy(&pb->group_mu);
}

static void settle(pg_op *op, const sg_error *err, bool unknown)
{
    op->result = NULL;
    op->err = *err;
    op->err.unknown_outcome = unknown;
    op->outcome = OP_DONE;
}

/* A PostgreSQL array literal of the groupable lock arguments of kind q:
 * {"a","b"} with " and \ escaped. NULL when out of memory. */
static char *array_of(pg_op **ops, int n, int q)
{
    size_t len = 3;
    for (int i = 0; i < n; i++)
        if (ops[i]->lock_q == q)
            len += 2 * strlen(ops[i]->lock_arg) + 3;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    *p++ = '{';
    for (int i = 0; i < n; i++) {
        if (ops[i]->lock_q != q)
            continue;
        if (p[-1] != '{')
            *p++ = ',';
        *p++ = '"';
        for (const char *a = ops[i]->lock_arg; *a; a++) {
            if (*a == '"' || *a == '\\')
                *p++ = '\\';
            *p++ = *a;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

/* Send ops[0..n) on c as one pipeline before the deadline: the lock
 * statement (the operation's own when alone, Q_LOCK_GROUP for a group), the
 * main statements, SYNC. Returns the number of statements sent, 0 when the
 * send failed or (*timed_out) did not end in time. */
static int send_ops(PGconn *c, pg_op **ops, int n, int64_t deadline, bool *timed_out)
{
    int sent = 0;
    bool ok = true;
    if (n > 1) {
        char *keys = array_of(ops, n, Q_LOCK_KEY), *ids = array_of(ops, n, Q_LOCK_ID);
        const char *p[2] = {keys, ids};
        ok = keys && ids &&
             PQsendQueryPrepared(c, sg_pg_sql_name[Q_LOCK_GROUP], 2, p, NULL, NULL, 0);
        free(keys);
        free(ids);
        sent++;
    } else if (ops[0]->lock_q == Q_LOCK_GROUP) { /* a renewal batch: lock_arg its lockIds */
        const char *p[2] = {"{}", ops[0]->lock_arg};
        ok = PQsendQueryPrepared(c, sg_pg_sql_name[Q_LOCK_GROUP], 2, p, NULL, NULL, 0);
        sent++;
    } else if (ops[0]->lock_q >= 0) {
        ok = PQsendQueryPrepared(c, sg_pg_sql_name[ops[0]->lock_q], 1, &ops[0]->lock_arg, NULL,
                                 NULL, 0);
        sent++;
    }
    for (int i = 0; ok && i < n; i++, sent++)
        ok = PQsendQueryPrepared(c, sg_pg_sql_name[ops[i]->main_q], ops[i]->nparams,
                                 ops[i]->params, NULL, NULL, 0);
    ok = ok && PQpipelineSync(c) && sg_pg_flush(c, deadline, timed_out);
    return ok ? sent : 0;
}

/* Run ops[0..n) (n ≤ GROUP_MAX) as one transaction on one pooled
 * connection and set each one's outcome: OP_DONE with its result or error,
 * or OP_AGAIN — to be run again, alone. */
static void run_ops(pg_backend *pb, pg_op **ops, int n)
{
    sg_error err;
    sg_error_clear(&err);
    int64_t until = ops[0]->queued_until;
    for (int i = 1; i < n; i++)
        until = ops[i]->queued_until < until ? ops[i]->queued_until : until;
    PGconn *c = sg_pool_borrow_by(&pb->pool, until, &err);
    if (!c) {
        for (int i = 0; i < n; i++)
            settle(ops[i], &err, false); /* nothing sent */
        return;
    }
    PGresult *res[GROUP_MAX + 1] = {0};
    sg_pg_pipe o = {.res = res};
    int64_t deadline = sg_monotonic_ms() + pb->command_timeout_ms;
    int nq = send_ops(c, ops, n, deadline, &o.timed_out);
    int first = nq ? nq - n : 0; /* the first main statement */
    if (nq)
        sg_pg_read_pipeline(c, nq, deadline, &o, &err);
    bool broken = !nq || o.dropped || o.timed_out;
    bool unsent = !nq || (o.dropped && !o.completed && sg_pg_send_failed(c));
    if (o.timed_out) {
        sg_pg_abandon(c);
        sg_error_set(&err, SG_E_NETWORK_TIMEOUT, "PostgreSQL did not answer within %d ms",
                     pb->command_timeout_ms);
    } else if (broken) {
        sg_pg_conn_error(c, &err);
    }
    /* after an error the transaction may be left aborted */
    sg_pg_give_back(pb, c, !broken && o.st == SG_OK);
    for (int i = 0; i < first; i++)
        PQclear(res[i]); /* the lock statement's */
    /* the server sent an error (a statement's, or the FATAL of a terminated
     * server process): the transaction did not commit, nothing of it ran */
    bool aborted = o.server_error;
    for (int i = 0; i < n; i++) {
        pg_op *op = ops[i];
        PGresult *r = nq ? res[first + i] : NULL;
        if (o.timed_out) {
            settle(op, &err, op->kind != OP_READ);
        } else if (broken && !op->retried && (aborted || op->kind != OP_RELEASE || !r)) {
            op->retried = true; /* dropped: once more, on a fresh connection */
            op->outcome = OP_AGAIN;
        } else if (broken) {
            settle(op, &err, op->kind != OP_READ && !unsent && !aborted);
        } else if (aborted && n > 1) {
            op->outcome = OP_AGAIN; /* rolled back: each alone, for its own outcome */
        } else if (o.st != SG_OK) { /* alone; or libpq's own error: commit unknown */
            settle(op, &err, !aborted && op->kind != OP_READ);
        } else if (!r || !o.synced) {
            sg_error e;
            sg_error_clear(&e);
            sg_error_set(&e, SG_E_INTERNAL, "no result from PostgreSQL");
            settle(op, &e, op->kind != OP_READ);
        } else {
            op->result = r;
            r = NULL;
            op->outcome = OP_DONE;
        }
        PQclear(r);
    }
}

/* Under group_mu, holding one of the GROUPS_RUNNING slots: run `first` with
 * what is queued as one transaction, hand the others their outcomes, then
 * pass the slot to the oldest operation still queued (or free it). */
static void lead(pg_backend *pb, pg_op *first)
{
    pg_op *ops[GROUP_MAX];
    int n = 0;
    ops[n++] = first;
    while (n < GROUP_MAX && pb->group_head) {
        pg_op *op = pb->group_head;
        pb->group_head = op->next;
        op->state = OP_TAKEN;
        ops[n++] = op;
    }
    if (!pb->group_head)
        pb->group_tail = NULL;
    pthread_mutex_unlock(&pb->group_mu);
    run_ops(pb, ops, n);
    pthread_mutex_lock(&pb->group_mu);
    first->state = first->outcome;
    for (int i = 1; i < n; i++) {
        ops[i]->state = ops[i]->outcome;
        pthread_cond_signal(&ops[i]->cv);
    }
    pg_op *next = pb->group_head;
    if (next) {
        pb->group_head = next->next;
        if (!pb->group_head)
            pb->group_tail = NULL;
        next->state = OP_LEAD;
        pthread_cond_signal(&next->cv);
    } else {
        pb->groups_running--;
    }
}

/* Under group_mu: take op out of the queue (its wait timed out). */
static void unqueue(pg_backend *pb, pg_op *op)
{
    pg_op **pp = &pb->group_head, *prev = NULL;
    while (*pp && *pp != op) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = op->next;
    if (pb->group_tail == op)
        pb->group_tail = prev;
}

/* A lock operation: run it in the next transaction that has room for it. */
static void run_grouped(pg_backend *pb, pg_op *op)
{
    pthread_mutex_lock(&pb->group_mu);
    if (pb->groups_running < GROUPS_RUNNING) {
        pb->groups_running++;
        lead(pb, op);
        pthread_mutex_unlock(&pb->group_mu);
        return;
    }
    sg_cond_init_monotonic(&op->cv);
    op->state = OP_QUEUED;
    op->next = NULL;
    if (pb->group_tail)
        pb->group_tail->next = op;
    else
        pb->group_head = op;
    pb->group_tail = op;
    while (op->state == OP_QUEUED || op->state == OP_TAKEN) {
        if (op->state == OP_TAKEN)
            pthread_cond_wait(&op->cv, &pb->group_mu);
        else if (!sg_cond_wait_until(&op->cv, &pb->group_mu, op->queued_until) &&
                 op->state == OP_QUEUED) {
            unqueue(pb, op);
            sg_error err;
            sg_error_clear(&err);
            sg_error_set(&err, SG_E_NETWORK_TIMEOUT,
                         "no PostgreSQL transaction had room for the operation in time");
            settle(op, &err, false);
            op->state = OP_DONE;
        }
    }
    if (op->state == OP_LEAD)
        lead(pb, op);
    pthread_mutex_unlock(&pb->group_mu);
    pthread_cond_destroy(&op->cv);
}

PGresult *sg_pg_run(pg_backend *pb, int lock_q, const char *lock_arg, int main_q, int nparams,
                    const char *const *params, op_kind kind, sg_error *err)
{
    pg_op op = {.lock_q = lock_q,
                .lock_arg = lock_arg,
                .main_q = main_q,
                .nparams = nparams,
                .params = params,
                .kind = kind,
                .queued_until = sg_monotonic_ms() + pb->command_timeout_ms,
                .outcome = OP_AGAIN};
    if (lock_q == Q_LOCK_KEY || lock_q == Q_LOCK_ID)
        run_grouped(pb, &op);
    while (op.outcome == OP_AGAIN) {
        pg_op *alone = &op;
        run_ops(pb, &alone, 1);
        if (op.outcome == OP_AGAIN)
            sg_log(SG_LOG_DEBUG, "postgres: connection dropped; retrying on a fresh one");
    }
    if (!op.result && err)
        *err = op.err;
    return op.result;
}
