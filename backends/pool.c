/* pool.c — the connection pool of every backend: bounded, FIFO for waiters,
 * a returned connection (or a freed slot) handed straight to the first one. */
#include "pool.h"

#include <errno.h>
#include <poll.h>
#include <time.h>

struct sg_pool_waiter {
    sg_pool_waiter *next;
    pthread_cond_t cv;
    bool granted;
    void *conn; /* granted: a connection, or NULL = a slot to connect in */
};

void sg_pool_init(sg_pool *p, void *(*connect)(void *, sg_error *), void (*close)(void *),
                  bool (*alive)(void *), void *ud)
{
    p->connect = connect;
    p->close = close;
    p->alive = alive;
    p->ud = ud;
    p->n_idle = p->n_open = 0;
    p->max = SG_POOL_DEFAULT;
    p->head = p->tail = NULL;
    pthread_mutex_init(&p->mu, NULL);
}

void sg_pool_set_max(sg_pool *p, int max)
{
    p->max = max < 1 ? 1 : max > SG_POOL_MAX ? SG_POOL_MAX : max;
}

/* Under mu: give conn (or, with NULL, an open slot) to the first waiter. */
static bool hand_over(sg_pool *p, void *conn)
{
    sg_pool_waiter *w = p->head;
    if (!w)
        return false;
    p->head = w->next;
    if (!p->head)
        p->tail = NULL;
    w->conn = conn;
    w->granted = true;
    pthread_cond_signal(&w->cv);
    return true;
}

/* A slot of n_open is ours: connect outside the lock (it may take seconds);
 * on failure the slot goes to the next waiter, who tries for itself. */
static void *connect_slot(sg_pool *p, sg_error *err)
{
    void *c = p->connect(p->ud, err);
    if (!c) {
        pthread_mutex_lock(&p->mu);
        if (!hand_over(p, NULL))
            p->n_open--;
        pthread_mutex_unlock(&p->mu);
    }
    return c;
}

/* Under mu: take w out of the queue (it gave up waiting). */
static void unlink_waiter(sg_pool *p, sg_pool_waiter *w)
{
    sg_pool_waiter **pp = &p->head, *prev = NULL;
    while (*pp && *pp != w)
        prev = *pp, pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = w->next;
    if (p->tail == w)
        p->tail = prev;
}

void sg_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

bool sg_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms)
{
    struct timespec until = {.tv_sec = deadline_ms / 1000,
                             .tv_nsec = (long)(deadline_ms % 1000) * 1000000};
    return pthread_cond_timedwait(cv, mu, &until) != ETIMEDOUT;
}

void *sg_pool_borrow(sg_pool *p, sg_error *err)
{
    return sg_pool_borrow_by(p, 0, err);
}

void *sg_pool_borrow_by(sg_pool *p, int64_t deadline_ms, sg_error *err)
{
    pthread_mutex_lock(&p->mu);
    while (!p->head && p->n_idle > 0) {
        void *c = p->idle[--p->n_idle];
        if (!p->alive || p->alive(c)) {
            pthread_mutex_unlock(&p->mu);
            return c;
        }
        p->n_open--; /* died while idle (server restarted, connection killed) */
        pthread_mutex_unlock(&p->mu);
        p->close(c);
        pthread_mutex_lock(&p->mu);
    }
    if (!p->head && p->n_open < p->max) {
        p->n_open++;
        pthread_mutex_unlock(&p->mu);
        return connect_slot(p, err);
    }
    sg_pool_waiter w = {.next = NULL, .granted = false, .conn = NULL};
    sg_cond_init_monotonic(&w.cv);
    if (p->tail)
        p->tail->next = &w;
    else
        p->head = &w;
    p->tail = &w;
    while (!w.granted) {
        if (!deadline_ms) {
            pthread_cond_wait(&w.cv, &p->mu);
        } else if (!sg_cond_wait_until(&w.cv, &p->mu, deadline_ms) && !w.granted) {
            unlink_waiter(p, &w);
            pthread_mutex_unlock(&p->mu);
            pthread_cond_destroy(&w.cv);
            sg_error_set(err, SG_E_NETWORK_TIMEOUT,
                         "no connection became free in time (%d in use)", p->max);
            return NULL;
        }
    }
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&w.cv);
    /* a connection just returned healthy by its last user, or a slot */
    return w.conn ? w.conn : connect_slot(p, err);
}

void sg_pool_return(sg_pool *p, void *conn, bool healthy)
{
    pthread_mutex_lock(&p->mu);
    if (healthy) {
        if (!hand_over(p, conn))
            p->idle[p->n_idle++] = conn;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    if (!hand_over(p, NULL)) /* the slot passes on; the waiter connects */
        p->n_open--;
    pthread_mutex_unlock(&p->mu);
    p->close(conn);
}

void sg_pool_destroy(sg_pool *p)
{
    for (int i = 0; i < p->n_idle; i++)
        p->close(p->idle[i]);
    p->n_idle = p->n_open = 0;
    pthread_mutex_destroy(&p->mu);
}

bool sg_pool_fd_idle(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLRDHUP};
    return fd >= 0 && poll(&pfd, 1, 0) == 0;
}
