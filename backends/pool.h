/* pool.h — private to the backends: a bounded pool of connections (hiredis
 * contexts, libpq connections, curl handles) shared by many threads. Callers
 * beyond the bound wait in FIFO order and a returned connection is handed to
 * the longest waiter directly, so no caller starves and none is woken for
 * nothing (measured: with 64 callers on 16 connections the unfair version
 * halved PostgreSQL's throughput and left some threads 20x behind others). */
#ifndef SG_POOL_H
#define SG_POOL_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "syncguard.h"

#define SG_POOL_MAX 64     /* the largest bound sg_pool_set_max accepts */
#define SG_POOL_DEFAULT 16 /* the bound after sg_pool_init */

typedef struct sg_pool_waiter sg_pool_waiter;

typedef struct sg_pool {
    void *(*connect)(void *ud, sg_error *err); /* a new connection, or NULL + err */
    void (*close)(void *conn);
    bool (*alive)(void *conn); /* NULL, or a cheap check of an idle connection */
    void *ud;
    pthread_mutex_t mu;
    void *idle[SG_POOL_MAX];
    int n_idle, n_open; /* open counts idle + borrowed (+ slots being connected) */
    int max;
    sg_pool_waiter *head, *tail; /* FIFO of callers waiting for a connection */
} sg_pool;

void sg_pool_init(sg_pool *p, void *(*connect)(void *, sg_error *), void (*close)(void *),
                  bool (*alive)(void *), void *ud);
/* The most connections open at once (1..SG_POOL_MAX); set before first use. */
void sg_pool_set_max(sg_pool *p, int max);
/* An idle connection that passes alive() (dead ones are closed on the way:
 * after a server restart each one would otherwise fail a call), a new one,
 * or — while max are open — the next one returned, in arrival order. */
void *sg_pool_borrow(sg_pool *p, sg_error *err);
/* The same, but a caller still waiting in the queue at deadline_ms
 * (sg_monotonic_ms) leaves it: NULL with NetworkTimeout, nothing sent. */
void *sg_pool_borrow_by(sg_pool *p, int64_t deadline_ms, sg_error *err);
/* Give it back; one that is not healthy is closed (the next borrower connects). */
void sg_pool_return(sg_pool *p, void *conn, bool healthy);
void sg_pool_destroy(sg_pool *p);

/* The backends' timed waits (the pool's queue, PostgreSQL's group queue):
 * a condition variable on CLOCK_MONOTONIC, and a wait on it until a
 * sg_monotonic_ms deadline — false once the deadline has passed. */
void sg_cond_init_monotonic(pthread_cond_t *cv);
bool sg_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms);
/* alive() for a request/response socket: an idle one has nothing to read, so
 * readable (EOF, RST, a server's farewell message) or hung up means dead. */
bool sg_pool_fd_idle(int fd);
#endif
