/* pool.c — the connection pool of every backend. */
#include "pool.h"

#include <poll.h>

void sg_pool_init(sg_pool *p, void *(*connect)(void *, sg_error *), void (*close)(void *),
                  bool (*alive)(void *), void *ud)
{
    p->connect = connect;
    p->close = close;
    p->alive = alive;
    p->ud = ud;
    p->n_idle = p->n_open = 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

void *sg_pool_borrow(sg_pool *p, sg_error *err)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->n_idle == 0 && p->n_open >= SG_POOL_MAX)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->n_idle == 0)
            break;
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
    p->n_open++;
    pthread_mutex_unlock(&p->mu);
    void *c = p->connect(p->ud, err); /* not under the lock: it may take seconds */
    if (!c) {
        pthread_mutex_lock(&p->mu);
        p->n_open--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return c;
}

void sg_pool_return(sg_pool *p, void *conn, bool healthy)
{
    pthread_mutex_lock(&p->mu);
    if (healthy) {
        p->idle[p->n_idle++] = conn;
    } else {
        p->n_open--;
        p->close(conn);
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void sg_pool_destroy(sg_pool *p)
{
    for (int i = 0; i < p->n_idle; i++)
        p->close(p->idle[i]);
    p->n_idle = p->n_open = 0;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

bool sg_pool_fd_idle(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLRDHUP};
    return fd >= 0 && poll(&pfd, 1, 0) == 0;
}
