/* pool.h — private to the backends: a bounded pool of connections (hiredis
 * contexts, libpq connections, curl handles) shared by many threads. */
#ifndef SG_POOL_H
#define SG_POOL_H
#include <pthread.h>
#include <stdbool.h>

#include "syncguard.h"

#define SG_POOL_MAX 16

typedef struct sg_pool {
    void *(*connect)(void *ud, sg_error *err); /* a new connection, or NULL + err */
    void (*close)(void *conn);
    bool (*alive)(void *conn); /* NULL, or a cheap check of an idle connection */
    void *ud;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void *idle[SG_POOL_MAX];
    int n_idle, n_open; /* open counts idle + borrowed */
} sg_pool;

void sg_pool_init(sg_pool *p, void *(*connect)(void *, sg_error *), void (*close)(void *),
                  bool (*alive)(void *), void *ud);
/* An idle connection that passes alive() (dead ones are closed on the way:
 * after a server restart each one would otherwise fail a call), a new one,
 * or wait while SG_POOL_MAX are borrowed. */
void *sg_pool_borrow(sg_pool *p, sg_error *err);
/* Give it back; one that is not healthy is closed (the next borrower connects). */
void sg_pool_return(sg_pool *p, void *conn, bool healthy);
void sg_pool_destroy(sg_pool *p);
/* alive() for a request/response socket: an idle one has nothing to read, so
 * readable (EOF, RST, a server's farewell message) or hung up means dead. */
bool sg_pool_fd_idle(int fd);
#endif
