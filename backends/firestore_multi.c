/* firestore_multi.c — one curl multi handle shared by every caller of a
 * Firestore backend (see firestore_multi.h).
 *
 * A caller's transfer is an easy handle it set up as for curl_easy_perform.
 * It is queued under the mutex; the caller that finds nobody driving drives:
 * adds what is queued to the multi handle, runs curl_multi_perform and
 * curl_multi_poll until its own transfer is done, and hands every finished
 * transfer to its caller on the way. Only the driver touches the multi
 * handle (libcurl's multi interface is not thread-safe); arrivals wake a
 * driver sleeping in curl_multi_poll with curl_multi_wakeup, the one call
 * documented as safe from another thread. When its own transfer is done the
 * driver passes the role to a caller whose transfer is still running or
 * queued, so someone always drives while transfers remain.
 *
 * The multi handle keeps the connections: keep-alive, at most
 * FST_MULTI_CONNS to a host (more transfers wait for one in order); over
 * HTTP/2 (https, ALPN) transfers share a connection (CURLPIPE_MULTIPLEX,
 * CURLOPT_PIPEWAIT, https only). Each transfer keeps its own timeouts
 * (CURLOPT_TIMEOUT_MS, CURLOPT_CONNECTTIMEOUT_MS, enforced by libcurl
 * inside curl_multi_perform once it has a connection), and the driver ends
 * any transfer still running at its deadline itself: libcurl 7.88 does not
 * time out one that waits for a connection. */
#include "firestore_multi.h"

#include <stdlib.h>


enum { X_QUEUED, X_RUNNING, X_DONE }; /* fst_xfer.state, under mu */

typedef struct fst_xfer {
    struct fst_xfer *next; /* in the queue, then in the running list */
    CURL *easy;
    int64_t deadline; /* sg_monotonic_ms: the driver ends it then, whatever libcurl says */
    CURLcode rc;
    int state;
    bool lead;     /* under mu: told to take the driver's role */
    bool finished; /* the driver's: libcurl reported it done */
    pthread_cond_t cv;
} fst_xfer;

sg_status fst_multi_init(fst_multi *fm, sg_error *err)
{
    fm->m = curl_multi_init();
    if (!fm->m)
        return sg_error_set(err, SG_E_INTERNAL, "cannot create an HTTP multi handle");
    curl_multi_setopt(fm->m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)FST_MULTI_CONNS);
    curl_multi_setopt(fm->m, CURLMOPT_MAXCONNECTS, (long)FST_MULTI_CONNS);
    curl_multi_setopt(fm->m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    pthread_mutex_init(&fm->mu, NULL);
    fm->driving = false;
    fm->queue = fm->queue_tail = fm->running = NULL;
    return SG_OK;
}

void fst_multi_destroy(fst_multi *fm)
{
    if (!fm->m)
        return;
    curl_multi_cleanup(fm->m);
    fm->m = NULL;
    pthread_mutex_destroy(&fm->mu);
}

/* Under mu: x has its outcome; after this it belongs to its caller. */
static void finish(fst_xfer *x, const fst_xfer *me)
{
    x->state = X_DONE;
    if (x != me)
        pthread_cond_signal(&x->cv);
}

/* Called and returns with mu held, as the driver: run transfers until me is
 * done, then pass the role on (or free it). */
static void drive(fst_multi *fm, fst_xfer *me)
{
    while (me->state != X_DONE) {
        /* what arrived goes into the multi handle */
        while (fm->queue) {
            fst_xfer *x = fm->queue;
            fm->queue = x->next;
            if (!fm->queue)
                fm->queue_tail = NULL;
            curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
            if (curl_multi_add_handle(fm->m, x->easy) != CURLM_OK) {
                x->rc = CURLE_OUT_OF_MEMORY;
                finish(x, me);
                continue;
            }
            x->state = X_RUNNING;
            x->next = fm->running;
            fm->running = x;
        }
        if (me->state == X_DONE)
            break;
        pthread_mutex_unlock(&fm->mu);
        int still = 0, left;
        curl_multi_perform(fm->m, &still);
        bool any = false;
        for (CURLMsg *msg; (msg = curl_multi_info_read(fm->m, &left));) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *p = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
            fst_xfer *x = (fst_xfer *)p;
            x->rc = msg->data.result;
            curl_multi_remove_handle(fm->m, msg->easy_handle);
            x->finished = any = true;
        }
        if (!any && !me->finished) {
            /* until a transfer can progress, libcurl's next timeout, the
             * earliest deadline, or an arrival's curl_multi_wakeup */
            int64_t wait = 1000, now = sg_monotonic_ms();
            pthread_mutex_lock(&fm->mu);
            for (fst_xfer *x = fm->running; x; x = x->next)
                wait = x->deadline - now < wait ? x->deadline - now : wait;
            pthread_mutex_unlock(&fm->mu);
            curl_multi_poll(fm->m, NULL, 0, wait > 0 ? (int)wait : 0, NULL);
        }
        pthread_mutex_lock(&fm->mu);
        int64_t now = sg_monotonic_ms();
        for (fst_xfer **pp = &fm->running; *pp;) {
            fst_xfer *x = *pp;
            if (!x->finished && now >= x->deadline) {
                /* libcurl 7.88 never times out a transfer still waiting
                 * for a connection (MSTATE_PENDING): the deadline is ours */
                curl_multi_remove_handle(fm->m, x->easy);
                x->rc = CURLE_OPERATION_TIMEDOUT;
                x->finished = true;
            }
            if (!x->finished) {
                pp = &x->next;
                continue;
            }
            *pp = x->next;
            finish(x, me);
        }
    }
    /* the role goes to a caller whose transfer still runs or waits */
    fst_xfer *next = fm->running ? fm->running : fm->queue;
    if (next) {
        next->lead = true;
        pthread_cond_signal(&next->cv);
    } else {
        fm->driving = false;
    }
}

CURLcode fst_multi_perform(fst_multi *fm, CURL *easy, long timeout_ms)
{
    fst_xfer x = {.easy = easy,
                  .rc = CURLE_OK,
                  .state = X_QUEUED,
                  .deadline = sg_monotonic_ms() + timeout_ms};
    pthread_cond_init(&x.cv, NULL);
    pthread_mutex_lock(&fm->mu);
    if (fm->queue_tail) /* added in arrival order */
        fm->queue_tail->next = &x;
    else
        fm->queue = &x;
    fm->queue_tail = &x;
    if (!fm->driving) {
        fm->driving = true;
        drive(fm, &x);
    } else {
        curl_multi_wakeup(fm->m); /* a driver asleep in curl_multi_poll adds it now */
        while (x.state != X_DONE) {
            if (x.lead) {
                x.lead = false;
                drive(fm, &x);
            } else {
                pthread_cond_wait(&x.cv, &fm->mu);
            }
        }
    }
    pthread_mutex_unlock(&fm->mu);
    pthread_cond_destroy(&x.cv);
    return x.rc;
}
