/* firestore_multi.h — private to the Firestore backend: one curl multi
 * handle shared by every caller (firestore_multi.c). Transfers of concurrent
 * callers run together on a few keep-alive connections (HTTP/2 streams on
 * one connection where ALPN offers it); each caller blocks until its own
 * transfer is done, and no thread of its own does the I/O: the caller that
 * finds nobody driving drives. */
#ifndef SG_FIRESTORE_MULTI_H
#define SG_FIRESTORE_MULTI_H
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>

#include "syncguard.h"

/* Connections to one host at most, opened as transfers in flight need them
 * and kept alive (HTTP/1.1: transfers beyond wait for one). Not fewer: the
 * emulator answers one request per connection at a time, and at 64 in
 * flight 8 connections gave 30-35 % fewer cycles/s than 64 (docs/decisions.md). */
#define FST_MULTI_CONNS 64

struct fst_xfer;
typedef struct fst_multi {
    pthread_mutex_t mu;
    CURLM *m;                 /* the driver's alone */
    bool driving;             /* someone is driving (under mu) */
    struct fst_xfer *queue, *queue_tail; /* waiting to be added (under mu) */
    struct fst_xfer *running; /* added to m (under mu) */
} fst_multi;

sg_status fst_multi_init(fst_multi *fm, sg_error *err);
/* No transfer may be in flight. */
void fst_multi_destroy(fst_multi *fm);
/* curl_easy_perform(easy), with easy's transfer run on the shared handle;
 * ended with CURLE_OPERATION_TIMEDOUT at timeout_ms whatever its state. */
CURLcode fst_multi_perform(fst_multi *fm, CURL *easy, long timeout_ms);
#endif
