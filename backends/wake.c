/* wake.c — the watcher registry and subscriber thread behind sg_watch_key
 * (see wake.h). One lock (`mu`) guards topics, watchers and the delivery
 * queue; watcher callbacks and every transport call run without it, so a
 * callback may take its own locks (the daemon's mu) in any order with
 * watch/unwatch callers that do not hold them. */
#include "wake.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct topic topic;

struct sg_watch {
    struct sg_watch *next;  /* in its topic */
    struct sg_watch *qnext; /* in the delivery queue */
    topic *t;
    sg_wake_fn fn;
    void *ud;
    bool primed;  /* told once that its subscription is in place */
    bool queued, running;
};

struct topic {
    topic *next;
    sg_watch *watchers;
    bool sent;  /* subscribed on the current connection */
    bool ready; /* ... and the server confirmed it */
    char name[];
};

struct sg_wake {
    const sg_wake_transport *t;
    void *tud;
    pthread_mutex_t mu;
    pthread_cond_t done_cv; /* a callback finished */
    topic *topics;
    sg_watch *qhead, *qtail;
    int efd; /* pokes the thread */
    pthread_t thread;
    bool started, stop, dirty;
    unsigned long delivered, connects;
};

sg_wake *sg_wake_new(const sg_wake_transport *t, void *ud)
{
    sg_wake *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->t = t;
    w->tud = ud;
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->efd < 0) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    return w;
}

static void poke(sg_wake *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->efd, &one, sizeof one);
    (void)n; /* full counter: the thread is awake anyway */
}

static topic *find(sg_wake *w, const char *name)
{
    for (topic *t = w->topics; t; t = t->next)
        if (!strcmp(t->name, name))
            return t;
    return NULL;
}

static void enqueue(sg_wake *w, sg_watch *x)
{
    if (x->queued)
        return;
    x->queued = true;
    x->qnext = NULL;
    if (w->qtail)
        w->qtail->qnext = x;
    else
        w->qhead = x;
    w->qtail = x;
}

static void dequeue(sg_wake *w, sg_watch *x)
{
    if (!x->queued)
        return;
    sg_watch **pp = &w->qhead, *prev = NULL;
    while (*pp && *pp != x)
        prev = *pp, pp = &(*pp)->qnext;
    if (*pp)
        *pp = x->qnext;
    if (w->qtail == x)
        w->qtail = prev;
    x->queued = false;
}

/* Run queued callbacks, one at a time, without mu. mu held on entry/exit. */
static void deliver(sg_wake *w)
{
    while (w->qhead) {
        sg_watch *x = w->qhead;
        dequeue(w, x);
        x->running = true;
        w->delivered++;
        pthread_mutex_unlock(&w->mu);
        x->fn(x->ud);
        pthread_mutex_lock(&w->mu);
        x->running = false;
        pthread_cond_broadcast(&w->done_cv);
    }
}

void sg_wake_ready(sg_wake *w, const char *name)
{
    pthread_mutex_lock(&w->mu);
    for (topic *t = w->topics; t; t = t->next) {
        if (name && strcmp(t->name, name))
            continue;
        if (!t->sent)
            continue; /* a late confirmation of an earlier incarnation */
        t->ready = true;
        for (sg_watch *x = t->watchers; x; x = x->next)
            if (!x->primed) {
                x->primed = true;
                enqueue(w, x);
            }
    }
    deliver(w);
    pthread_mutex_unlock(&w->mu);
}

void sg_wake_fire(sg_wake *w, const char *name)
{
    pthread_mutex_lock(&w->mu);
    topic *t = find(w, name);
    if (t)
        for (sg_watch *x = t->watchers; x; x = x->next)
            enqueue(w, x);
    deliver(w);
    pthread_mutex_unlock(&w->mu);
}

/* Subscriptions to change on this connection: topics with watchers and not
 * sent, topics without watchers (dropped here; unsubscribed if sent).
 * Names are copied: the transport runs without mu. */
typedef struct change {
    struct change *next;
    bool on;
    char name[];
} change;

static change *collect(sg_wake *w)
{
    change *head = NULL;
    for (topic **pp = &w->topics; *pp;) {
        topic *t = *pp;
        bool on = t->watchers && !t->sent, off = !t->watchers;
        if ((on || (off && t->sent))) {
            size_t n = strlen(t->name) + 1;
            change *c = malloc(sizeof *c + n);
            if (c) {
                c->on = on;
                memcpy(c->name, t->name, n);
                c->next = head;
                head = c;
                if (on)
                    t->sent = true;
            } else {
                w->dirty = true; /* try again later */
                pp = &t->next;
                continue;
            }
        }
        if (off) {
            *pp = t->next;
            free(t);
        } else {
            pp = &t->next;
        }
    }
    return head;
}

static void *wake_main(void *arg)
{
    sg_wake *w = arg;
    int fd = -1;
    int64_t backoff = 100, retry_at = 0;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        if (fd < 0) {
            if (!w->topics) { /* nothing to hear: stay disconnected */
                pthread_mutex_unlock(&w->mu);
                struct pollfd p = {.fd = w->efd, .events = POLLIN};
                poll(&p, 1, -1);
                uint64_t v;
                ssize_t n = read(w->efd, &v, sizeof v);
                (void)n;
                pthread_mutex_lock(&w->mu);
                continue;
            }
            int64_t now = sg_monotonic_ms();
            if (now < retry_at) {
                pthread_mutex_unlock(&w->mu);
                struct pollfd p = {.fd = w->efd, .events = POLLIN};
                poll(&p, 1, (int)(retry_at - now));
                uint64_t v;
                ssize_t n = read(w->efd, &v, sizeof v);
                (void)n;
                pthread_mutex_lock(&w->mu);
                continue;
            }
            pthread_mutex_unlock(&w->mu);
            fd = w->t->connect(w->tud);
            pthread_mutex_lock(&w->mu);
            if (fd < 0) {
                retry_at = sg_monotonic_ms() + backoff;
                backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
                continue;
            }
            backoff = 100;
            /* A new connection: everything is subscribed again, and every
             * watcher woken once it is (releases may have been missed). */
            if (w->connects++)
                sg_log(SG_LOG_INFO, "wake-ups: subscriber reconnected");
            for (topic *t = w->topics; t; t = t->next) {
                t->sent = t->ready = false;
                for (sg_watch *x = t->watchers; x; x = x->next)
                    x->primed = false;
            }
        }
        w->dirty = false;
        change *changes = collect(w);
        pthread_mutex_unlock(&w->mu);
        bool ok = true;
        while (changes) {
            change *c = changes;
            changes = c->next;
            if (ok)
                ok = w->t->subscribe(w->tud, w, c->name, c->on);
            free(c);
        }
        pthread_mutex_lock(&w->mu);
        /* new watchers of topics already in place: tell them at once */
        for (topic *t = w->topics; t; t = t->next)
            if (t->ready)
                for (sg_watch *x = t->watchers; x; x = x->next)
                    if (!x->primed) {
                        x->primed = true;
                        enqueue(w, x);
                    }
        deliver(w);
        if (ok && !w->dirty && !w->stop) {
            pthread_mutex_unlock(&w->mu);
            struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = w->efd, .events = POLLIN}};
            int rc = poll(p, 2, 1000);
            if (rc > 0 && (p[1].revents & POLLIN)) {
                uint64_t v;
                ssize_t n = read(w->efd, &v, sizeof v);
                (void)n;
            }
            if (rc > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
                ok = w->t->input(w->tud, w);
            pthread_mutex_lock(&w->mu);
        }
        if (!ok) {
            pthread_mutex_unlock(&w->mu);
            w->t->disconnect(w->tud);
            pthread_mutex_lock(&w->mu);
            fd = -1;
            retry_at = sg_monotonic_ms() + backoff;
            sg_log(SG_LOG_INFO, "wake-ups: subscriber connection lost; reconnecting "
                                "(waiters poll meanwhile)");
        }
    }
    pthread_mutex_unlock(&w->mu);
    if (fd >= 0)
        w->t->disconnect(w->tud);
    return NULL;
}

sg_watch *sg_wake_watch(sg_wake *w, const char *name, sg_wake_fn fn, void *ud)
{
    sg_watch *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->fn = fn;
    x->ud = ud;
    pthread_mutex_lock(&w->mu);
    if (!w->started) {
        /* a library thread takes no signal: the caller's (a CLI waiting for
         * SIGCHLD, a daemon's SIGTERM handler) must reach the caller's threads */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&w->thread, NULL, wake_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            pthread_mutex_unlock(&w->mu);
            free(x);
            return NULL;
        }
        w->started = true;
    }
    topic *t = find(w, name);
    if (!t) {
        size_t n = strlen(name) + 1;
        t = calloc(1, sizeof *t + n);
        if (!t) {
            pthread_mutex_unlock(&w->mu);
            free(x);
            return NULL;
        }
        memcpy(t->name, name, n);
        t->next = w->topics;
        w->topics = t;
    }
    x->t = t;
    x->next = t->watchers;
    t->watchers = x;
    pthread_mutex_unlock(&w->mu);
    poke(w);
    return x;
}

void sg_wake_unwatch(sg_wake *w, sg_watch *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&w->mu);
    dequeue(w, x);
    topic *t = x->t;
    sg_watch **pp = &t->watchers;
    while (*pp && *pp != x)
        pp = &(*pp)->next;
    if (*pp)
        *pp = x->next;
    /* decided now: while we wait below the thread may drop t (collect) */
    bool last = !t->watchers;
    bool on_thread = w->started && pthread_equal(pthread_self(), w->thread);
    while (x->running && !on_thread)
        pthread_cond_wait(&w->done_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    free(x);
    if (last)
        poke(w); /* unsubscribe */
}

void sg_wake_stats(sg_wake *w, unsigned long *delivered, unsigned long *connects)
{
    pthread_mutex_lock(&w->mu);
    if (delivered)
        *delivered = w->delivered;
    if (connects)
        *connects = w->connects;
    pthread_mutex_unlock(&w->mu);
}

void sg_wake_free(sg_wake *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    bool started = w->started;
    pthread_mutex_unlock(&w->mu);
    if (started) {
        poke(w);
        pthread_join(w->thread, NULL);
    }
    while (w->topics) {
        topic *t = w->topics;
        w->topics = t->next;
        while (t->watchers) { /* watchers the caller never dropped */
            sg_watch *x = t->watchers;
            t->watchers = x->next;
            free(x);
        }
        free(t);
    }
    w->t->free(w->tud);
    close(w->efd);
    pthread_cond_destroy(&w->done_cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
