/* redis_mux.c — shared, pipelined Redis connections (see redis_mux.h).
 *
 * Per connection: a queue of requests not yet written (under its mutex),
 * a FIFO of requests written whose replies are due in that order, and one
 * "driver" — a caller doing the connection's I/O, the only one to touch the
 * FIFO. The driver writes the whole queue in one write, then reads: every
 * reply that read brought in is handed out to the FIFO's head, the callers
 * are woken after the last, and whatever was queued meanwhile is written
 * before the next read, so new requests join the pipeline within one read.
 * Over TLS one SSL object must not be read and written by two threads at
 * once: one driver doing both keeps that true for every transport. The
 * other callers sleep on a futex of their own request (woken once: done,
 * or "drive now"), never on the connection's mutex, which arrivals hold
 * only to queue.
 *
 * Waiters have no timeout of their own: the driver's every wait (write and
 * read) is bounded by the deadline of the oldest request written, the
 * earliest of all (one command_timeout_ms for every request), and a timeout
 * fails the connection, so every request ends by its deadline (plus, for one
 * not yet written when its connection failed, the reconnect). */
#include "redis_mux.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { R_WAIT, R_DONE, R_DRIVE }; /* mux_req.state */

typedef struct mux_req {
    struct mux_req *next;
    char *cmd; /* formatted by the caller, outside the lock */
    size_t len;
    int64_t deadline;
    atomic_int state;
    bool requeued; /* already moved to a fresh connection once */
    bool sent, dropped;
    redisReply *reply;
    sg_error err;
} mux_req;

typedef struct mux_conn {
    pthread_mutex_t mu;
    sg_redis_conn *c;          /* NULL: connect before the next write */
    bool driving;              /* a caller is driving */
    mux_req *q_head, *q_tail;  /* not written yet, in arrival order */
    mux_req *p_head, *p_tail;  /* written; replies come in this order */
    char *buf;                 /* the batch being written (the driver's) */
    size_t cap;
    atomic_int load;           /* callers on this connection now */
} mux_conn;

struct sg_redis_mux {
    const sg_redis_config *cfg;
    int n;
    mux_conn conns[];
};

static void futex_wait(atomic_int *a, int val)
{
    syscall(SYS_futex, a, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

/* The waiter may already have seen the new state and returned: a wake-up of
 * an address nobody waits on does nothing, and every futex user (ours,
 * glibc's) tolerates a spurious one. */
static void futex_wake(atomic_int *a)
{
    syscall(SYS_futex, a, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* r has its outcome; after the store it belongs to its caller. Called by
 * the role's holder (with or without mu). */
static void finish(mux_req *r, const mux_req *me)
{
    atomic_store_explicit(&r->state, R_DONE, memory_order_release);
    if (r != me)
        futex_wake(&r->state);
}

static void fail_req(mux_req *r, const mux_req *me, const sg_error *err, bool sent, bool dropped)
{
    r->err = *err;
    r->sent = sent;
    r->dropped = dropped;
    r->reply = NULL;
    finish(r, me);
}

/* Under mu: nothing queued can be sent (no connection): fail the queue. */
static void fail_queued(mux_conn *mc, const mux_req *me, const sg_error *err)
{
    mux_req *r = mc->q_head;
    mc->q_head = mc->q_tail = NULL;
    while (r) {
        mux_req *next = r->next;
        fail_req(r, me, err, false, false);
        r = next;
    }
}

/* Under mu: the connection failed. Every request written on it fails with
 * err — except, from `unsent` on (a batch whose write provably sent
 * nothing), those not moved before: they go back to the front of the queue
 * for the next connection. The connection is closed; the next write opens a
 * new one. */
static void conn_failed(mux_conn *mc, const mux_req *me, const mux_req *unsent,
                        const sg_error *err, bool dropped)
{
    mux_req *back = NULL, *back_tail = NULL, *r = mc->p_head;
    bool not_sent = false;
    mc->p_head = mc->p_tail = NULL;
    while (r) {
        mux_req *next = r->next;
        not_sent = not_sent || r == unsent;
        if (not_sent && !r->requeued) {
            r->requeued = true;
            r->next = NULL;
            if (back_tail)
                back_tail->next = r;
            else
                back = r;
            back_tail = r;
        } else {
            fail_req(r, me, err, !not_sent, dropped);
        }
        r = next;
    }
    if (back) {
        back_tail->next = mc->q_head;
        mc->q_head = back;
        if (!mc->q_tail)
            mc->q_tail = back_tail;
    }
    sg_redis_close(mc->c);
    mc->c = NULL;
}

/* Under mu: the queue as one buffer in mc->buf, moved to the FIFO's tail.
 * Returns its length, or 0 when out of memory (the queue is failed). */
static size_t take_batch(mux_conn *mc, const mux_req *me)
{
    size_t len = 0;
    for (mux_req *r = mc->q_head; r; r = r->next)
        len += r->len;
    if (len > mc->cap) {
        size_t cap = mc->cap ? mc->cap : 4096;
        while (cap < len)
            cap *= 2;
        char *b = realloc(mc->buf, cap);
        if (!b) {
            sg_error err;
            sg_error_clear(&err);
            sg_error_set(&err, SG_E_INTERNAL, "out of memory queueing a Redis command");
            fail_queued(mc, me, &err);
            return 0;
        }
        mc->buf = b;
        mc->cap = cap;
    }
    size_t off = 0;
    for (mux_req *r = mc->q_head; r; r = r->next) {
        memcpy(mc->buf + off, r->cmd, r->len);
        off += r->len;
    }
    if (mc->p_tail)
        mc->p_tail->next = mc->q_head;
    else
        mc->p_head = mc->q_head;
    mc->p_tail = mc->q_tail;
    mc->q_head = mc->q_tail = NULL;
    return len;
}

/* Under mu (released during the write): the queue goes out as one write on
 * mc->c, behind what is already in the FIFO. A failed write fails the
 * connection; a batch that provably sent nothing is moved, not failed. */
static void write_queued(mux_conn *mc, const mux_req *me, sg_error *err)
{
    mux_req *batch = mc->q_head;
    sg_redis_conn *c = mc->c;
    size_t len = take_batch(mc, me);
    if (!len)
        return;
    int64_t deadline = mc->p_head->deadline;
    pthread_mutex_unlock(&mc->mu);
    bool sent = false;
    sg_status st = sg_redis_write(c, mc->buf, len, deadline, &sent, err);
    bool dropped = sg_redis_dropped(c);
    pthread_mutex_lock(&mc->mu);
    if (st != SG_OK)
        conn_failed(mc, me, sent ? NULL : batch, err, dropped);
}

/* The caller of `me` does mc's I/O until me has its outcome, then passes the
 * role to the oldest request still waiting. Called and returns with mu held. */
static void drive(const sg_redis_mux *m, mux_conn *mc, mux_req *me)
{
    sg_error err;
    sg_error_clear(&err);
    while (atomic_load_explicit(&me->state, memory_order_relaxed) != R_DONE) {
        if (!mc->c) {
            /* for the requests waiting: done by the first one's deadline */
            int64_t deadline = mc->q_head->deadline;
            pthread_mutex_unlock(&mc->mu);
            sg_redis_conn *c = sg_redis_connect_by(m->cfg, deadline, &err);
            pthread_mutex_lock(&mc->mu);
            if (c)
                mc->c = c;
            else
                fail_queued(mc, me, &err); /* me is queued: this ends the loop */
            continue;
        }
        sg_redis_conn *c = mc->c;
        if (mc->q_head) {
            /* idle since the last reply: one closed by the server meanwhile
             * (restart, idle timeout) is replaced before anything is lost */
            if (!mc->p_head && !sg_redis_idle_alive(c)) {
                sg_redis_close(c);
                mc->c = NULL;
                continue;
            }
            write_queued(mc, me, &err);
            continue;
        }
        /* me is written and not answered: the FIFO is not empty. Only the
         * role's holder touches the FIFO, so replies are handed out without
         * the mutex (arrivals take it only to queue), every reply one read
         * brought in at once, and the wake-ups come after the last of them. */
        int64_t deadline = mc->p_head->deadline;
        pthread_mutex_unlock(&mc->mu);
        redisReply *reply = NULL;
        if (sg_redis_read(c, deadline, &reply, &err) != SG_OK) {
            bool dropped = sg_redis_dropped(c);
            pthread_mutex_lock(&mc->mu);
            conn_failed(mc, me, NULL, &err, dropped);
            continue;
        }
        mux_req *done = NULL, **tail = &done;
        for (;;) {
            mux_req *r = mc->p_head;
            mc->p_head = r->next;
            r->next = NULL;
            r->reply = reply;
            r->sent = true;
            *tail = r;
            tail = &r->next;
            if (!mc->p_head || !(reply = sg_redis_buffered(c)))
                break;
        }
        if (!mc->p_head)
            mc->p_tail = NULL;
        while (done) {
            mux_req *next = done->next; /* done is its caller's once finished */
            finish(done, me);
            done = next;
        }
        pthread_mutex_lock(&mc->mu);
    }
    /* what was queued meanwhile goes out now: the server works on it while
     * the next driver is being scheduled */
    if (mc->q_head && mc->c && mc->p_head)
        write_queued(mc, me, &err);
    /* The role is free: a caller arriving now takes it at once (it is
     * running; the one woken here may wait behind every caller just
     * answered). The oldest waiting is told, so someone drives for sure. */
    mc->driving = false;
    mux_req *next = mc->p_head ? mc->p_head : mc->q_head;
    if (next) {
        atomic_store_explicit(&next->state, R_DRIVE, memory_order_release);
        futex_wake(&next->state);
    }
}

/* The connection with the fewest callers; ties go to the first, so a lone
 * caller always uses connection 0 and the others open only under load. */
static mux_conn *pick(sg_redis_mux *m)
{
    mux_conn *best = &m->conns[0];
    int least = atomic_load_explicit(&best->load, memory_order_relaxed);
    for (int i = 1; i < m->n && least > 0; i++) {
        int l = atomic_load_explicit(&m->conns[i].load, memory_order_relaxed);
        if (l < least) {
            least = l;
            best = &m->conns[i];
        }
    }
    return best;
}

redisReply *sg_redis_mux_command(sg_redis_mux *m, int argc, const char **argv, bool *sent,
                                 bool *dropped, sg_error *err)
{
    *sent = *dropped = false;
    mux_req me = {.next = NULL};
    int len = redisFormatCommandArgv(&me.cmd, argc, argv, NULL);
    if (len < 0) {
        sg_error_set(err, SG_E_INTERNAL, "out of memory formatting a Redis command");
        return NULL;
    }
    me.len = (size_t)len;
    me.deadline = sg_monotonic_ms() + m->cfg->command_timeout_ms;
    atomic_init(&me.state, R_WAIT);
    mux_conn *mc = pick(m);
    atomic_fetch_add_explicit(&mc->load, 1, memory_order_relaxed);
    pthread_mutex_lock(&mc->mu);
    if (mc->q_tail)
        mc->q_tail->next = &me;
    else
        mc->q_head = &me;
    mc->q_tail = &me;
    bool lead = !mc->driving;
    mc->driving = true;
    if (lead)
        drive(m, mc, &me);
    pthread_mutex_unlock(&mc->mu);
    for (int s; !lead && (s = atomic_load_explicit(&me.state, memory_order_acquire)) != R_DONE;) {
        if (s == R_DRIVE) {
            pthread_mutex_lock(&mc->mu);
            if (atomic_load_explicit(&me.state, memory_order_relaxed) == R_DRIVE) {
                if (!mc->driving) {
                    mc->driving = true;
                    drive(m, mc, &me);
                } else { /* someone arriving took the role: wait again — unless
                          * its driver, which hands replies out without the
                          * mutex, has just finished me */
                    int drive_state = R_DRIVE;
                    atomic_compare_exchange_strong_explicit(&me.state, &drive_state, R_WAIT,
                                                            memory_order_acq_rel,
                                                            memory_order_acquire);
                }
            }
            pthread_mutex_unlock(&mc->mu);
        } else {
            futex_wait(&me.state, R_WAIT);
        }
    }
    atomic_fetch_sub_explicit(&mc->load, 1, memory_order_relaxed);
    redisFreeCommand(me.cmd);
    *sent = me.sent;
    *dropped = me.dropped;
    if (!me.reply && err)
        *err = me.err;
    return me.reply;
}

sg_redis_mux *sg_redis_mux_new(const sg_redis_config *cfg, int connections)
{
    if (connections < 1)
        connections = 1;
    if (connections > SG_REDIS_MUX_MAX)
        connections = SG_REDIS_MUX_MAX;
    sg_redis_mux *m = calloc(1, sizeof *m + (size_t)connections * sizeof(mux_conn));
    if (!m)
        return NULL;
    m->cfg = cfg;
    m->n = connections;
    for (int i = 0; i < connections; i++) {
        pthread_mutex_init(&m->conns[i].mu, NULL);
        atomic_init(&m->conns[i].load, 0);
    }
    return m;
}

void sg_redis_mux_free(sg_redis_mux *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        sg_redis_close(m->conns[i].c);
        free(m->conns[i].buf);
        pthread_mutex_destroy(&m->conns[i].mu);
    }
    free(m);
}
