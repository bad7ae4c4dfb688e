/* firestore_http.h — private to firestore.c and firestore_http.c: the
 * backend's state, shared by both, and the HTTP layer's entry points. */
#ifndef SG_FIRESTORE_HTTP_H
#define SG_FIRESTORE_HTTP_H
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "firestore_multi.h"
#include "pool.h"
#include "syncguard.h"

#define CACHE_BUCKETS 4096 /* of the updateTime cache (firestore.c) */

/* One entry of the updateTime cache: lockId → (document, updateTime, expiry). */
typedef struct cached {
    struct cached *next;
    char lock_id[SG_LOCK_ID_LEN + 1];
    char *name;            /* full document name */
    char update_time[64];
    int64_t expires_at_ms;
} cached;

/* One open backend (sg_backend.impl). */
typedef struct fs_backend {
    char endpoint[256];    /* http://host:port or https://firestore.googleapis.com */
    char base[600];        /* /v1/projects/P/databases/D/documents */
    char docs[512];        /* projects/P/databases/D/documents */
    char collection[128], fence_collection[128];
    bool emulator, metadata;
    char *token_file, *credentials;
    char *ca_file;         /* ca_file=: CAs for every HTTPS request (NULL: system's) */
    char endpoint_param[256]; /* endpoint=, applied after the emulator check */
    long timeout_ms, connect_timeout_ms;
    sg_pool pool;          /* of CURL easy handles (a transfer's state) */
    fst_multi multi;       /* runs them: the connections (firestore_multi.c) */
    pthread_mutex_t mu;    /* token, cache */
    char token[4096];
    int64_t token_expiry_ms;
    cached *cache[CACHE_BUCKETS];
    size_t n_cached;
    atomic_llong skew_ms;
    atomic_int skew_warned, skew_reported;
} fs_backend;

/* firestore_http.c: once per process, before the first handle. */
void fst_http_global_init(void);
/* Pool callbacks: a new CURL easy handle (NULL + err), and its cleanup. */
void *fst_http_new_handle(void *ud, sg_error *err);
void fst_http_close_handle(void *c);

/* POST {base}{suffix} with a JSON body. Returns the parsed response (caller
 * deletes) or NULL with err set; status gets Firestore's error.status. */
cJSON *fst_rest(fs_backend *fb, const char *suffix, cJSON *req, bool mutation, char status[48],
                sg_error *err);

/* firestore.c: the skew estimate from a successful response's commitTime or
 * readTime, sent between sent_ms and recv_ms (called by fst_rest). */
void fst_note_skew(fs_backend *fb, const cJSON *j, int64_t sent_ms, int64_t recv_ms);
#endif
