/* firestore.c — the Firestore backend over the REST API (libcurl + cJSON).
 *
 * No pessimistic transactions (an open transaction's read blocks other
 * writers for seconds): acquire is a batchGet of the lock and counter
 * documents, a decision on the client clock, then one commit whose two
 * writes carry preconditions (exists:false or the updateTime read). A lost
 * precondition means someone moved first. Release/extend are one commit
 * when this process knows the document's updateTime, else a runQuery on
 * lockId first.
 *
 * This file: the lock operations, the updateTime cache and the clock-skew
 * policy; HTTP and credentials are in firestore_http.c. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends.h"
#include "pool.h"
#include "firestore.h"
#include "firestore_http.h"

#define FS_LIMIT 1500
#define NAME_MAX_ 2400
#define CACHE_MAX 200000

/* ---- clock skew ---- */
void fst_note_skew(fs_backend *fb, const cJSON *j, int64_t sent_ms, int64_t recv_ms)
{
    const cJSON *o = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, 0) : j;
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "commitTime"));
    if (!t)
        t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "readTime"));
    int64_t server;
    if (!t || !fst_time_ms(t, &server))
        return;
    /* The server stamped its time somewhere between our send and receive, so
     * the skew lies in [server - recv, server - sent]: take the value of that
     * interval nearest zero (a slow response must not look like skew). */
    int64_t lo = server - recv_ms, hi = server - sent_ms;
    int64_t skew = lo > 0 ? lo : hi < 0 ? hi : 0;
    atomic_store(&fb->skew_ms, skew);
    if (!atomic_exchange(&fb->skew_reported, 1))
        sg_log(SG_LOG_INFO, "firestore: client clock skew estimate %lld ms", (long long)skew);
    if (llabs(skew) > 200 && !atomic_exchange(&fb->skew_warned, 1))
        sg_log(SG_LOG_WARN, "firestore: client clock is %lld ms off the server's (warn > 200 ms, "
                            "acquire refused > 500 ms)", (long long)skew);
    else if (llabs(skew) <= 100)
        atomic_store(&fb->skew_warned, 0);
}

/* ---- documents and values ---- */
static sg_status doc_name(fs_backend *fb, const char *coll, const char *skey, char *out,
                          sg_error *err)
{
    char id[FST_ID_MAX + 1];
    if (fst_doc_id(skey, id, sizeof id, err) != SG_OK)
        return SG_ERROR;
    snprintf(out, NAME_MAX_, "%s/%s/%s", fb->docs, coll, id);
    return SG_OK;
}

static void add_str(cJSON *fields, const char *name, const char *v)
{
    cJSON *o = cJSON_AddObjectToObject(fields, name);
    cJSON_AddStringToObject(o, "stringValue", v);
}

static void add_int(cJSON *fields, const char *name, int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)v);
    cJSON *o = cJSON_AddObjectToObject(fields, name);
    cJSON_AddStringToObject(o, "integerValue", s);
}

/* A write with a precondition: update_time "" → must not exist. */
static cJSON *add_write(cJSON *writes, const char *name, const char *update_time, bool del)
{
    cJSON *w = cJSON_CreateObject();
    cJSON_AddItemToArray(writes, w);
    cJSON *doc = NULL;
    if (del) {
        cJSON_AddStringToObject(w, "delete", name);
    } else {
        doc = cJSON_AddObjectToObject(w, "update");
        cJSON_AddStringToObject(doc, "name", name);
    }
    cJSON *pre = cJSON_AddObjectToObject(w, "currentDocument");
    if (update_time && update_time[0])
        cJSON_AddStringToObject(pre, "updateTime", update_time);
    else
        cJSON_AddBoolToObject(pre, "exists", 0);
    return doc ? cJSON_AddObjectToObject(doc, "fields") : NULL;
}

static bool is_outcome(const char *status)
{
    return !strcmp(status, "FAILED_PRECONDITION") || !strcmp(status, "ALREADY_EXISTS") ||
           !strcmp(status, "NOT_FOUND");
}

/* batchGet of n documents into docs (lock parser for index 0, counter for 1). */
static sg_status batch_get(fs_backend *fb, const char **names, int n, fst_doc *docs,
                           sg_error *err)
{
    cJSON *req = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(req, "documents");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(names[i]));
    char status[48];
    cJSON *j = fst_rest(fb, ":batchGet", req, false, status, err);
    cJSON_Delete(req);
    if (!j)
        return SG_ERROR;
    memset(docs, 0, sizeof *docs * (size_t)n);
    sg_status st = SG_OK;
    int seen = 0;
    const cJSON *item;
    if (!cJSON_IsArray(j))
        st = sg_error_set(err, SG_E_INTERNAL, "unexpected batchGet response from Firestore");
    const cJSON *list = cJSON_IsArray(j) ? j : NULL;
    cJSON_ArrayForEach(item, list) {
        const cJSON *found = cJSON_GetObjectItemCaseSensitive(item, "found");
        const char *missing = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "missing"));
        const char *name = found ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(found, "name"))
                                 : missing;
        if (!name)
            continue; /* e.g. a transaction/readTime-only element */
        for (int i = 0; i < n; i++) {
            if (strcmp(name, names[i]))
                continue;
            seen++;
            if (found && st == SG_OK)
                st = i == 0 ? fst_parse_lock(found, &docs[i], err)
                            : fst_parse_counter(found, &docs[i], err);
        }
    }
    if (st == SG_OK && seen != n)
        st = sg_error_set(err, SG_E_INTERNAL, "incomplete batchGet response from Firestore");
    cJSON_Delete(j);
    return st;
}

/* The lock document holding lockId (runQuery), or !exists. */
static sg_status query_lock(fs_backend *fb, const char *lock_id, fst_doc *doc, char *name,
                            sg_error *err)
{
    cJSON *req = cJSON_CreateObject();
    cJSON *q = cJSON_AddObjectToObject(req, "structuredQuery");
    cJSON *from = cJSON_AddArrayToObject(q, "from");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "collectionId", fb->collection);
    cJSON_AddItemToArray(from, c);
    cJSON *ff = cJSON_AddObjectToObject(cJSON_AddObjectToObject(q, "where"), "fieldFilter");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(ff, "field"), "fieldPath", "lockId");
    cJSON_AddStringToObject(ff, "op", "EQUAL");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(ff, "value"), "stringValue", lock_id);
    cJSON_AddNumberToObject(q, "limit", 1);
    char status[48];
    cJSON *j = fst_rest(fb, ":runQuery", req, false, status, err);
    cJSON_Delete(req);
    if (!j)
        return SG_ERROR;
    memset(doc, 0, sizeof *doc);
    sg_status st = SG_OK;
    if (!cJSON_IsArray(j))
        st = sg_error_set(err, SG_E_INTERNAL, "unexpected runQuery response from Firestore");
    const cJSON *item;
    const cJSON *list = cJSON_IsArray(j) ? j : NULL;
    cJSON_ArrayForEach(item, list) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(item, "document");
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "name"));
        if (!d || !n || doc->exists)
            continue;
        st = fst_parse_lock(d, doc, err);
        snprintf(name, NAME_MAX_, "%s", n);
    }
    cJSON_Delete(j);
    if (st == SG_OK && doc->exists && strcmp(doc->lock_id, lock_id))
        doc->exists = false;
    return st;
}

/* ---- the updateTime cache: lockId → (document, updateTime, expiry) ---- */
static unsigned bucket(const char *id)
{
    unsigned h = 5381;
    for (; *id; id++)
        h = h * 33 + (unsigned char)*id;
    return h % CACHE_BUCKETS;
}

static void cache_put(fs_backend *fb, const char *lock_id, const char *name, const char *ut,
                      int64_t exp)
{
    pthread_mutex_lock(&fb->mu);
    cached **pp = &fb->cache[bucket(lock_id)], *c = *pp;
    while (c && strcmp(c->lock_id, lock_id))
        c = c->next;
    if (!c && fb->n_cached < CACHE_MAX && (c = calloc(1, sizeof *c))) {
        memcpy(c->lock_id, lock_id, sizeof c->lock_id);
        c->next = *pp;
        *pp = c;
        fb->n_cached++;
    }
    if (c) {
        free(c->name);
        c->name = strdup(name);
        snprintf(c->update_time, sizeof c->update_time, "%s", ut);
        c->expires_at_ms = exp;
    }
    pthread_mutex_unlock(&fb->mu);
}

static bool cache_get(fs_backend *fb, const char *lock_id, char *name, char *ut, int64_t *exp)
{
    pthread_mutex_lock(&fb->mu);
    cached *c = fb->cache[bucket(lock_id)];
    while (c && strcmp(c->lock_id, lock_id))
        c = c->next;
    bool hit = c && c->name;
    if (hit) {
        snprintf(name, NAME_MAX_, "%s", c->name);
        snprintf(ut, 64, "%s", c->update_time);
        *exp = c->expires_at_ms;
    }
    pthread_mutex_unlock(&fb->mu);
    return hit;
}

static void cache_drop(fs_backend *fb, const char *lock_id)
{
    pthread_mutex_lock(&fb->mu);
    cached **pp = &fb->cache[bucket(lock_id)];
    while (*pp && strcmp((*pp)->lock_id, lock_id))
        pp = &(*pp)->next;
    if (*pp) {
        cached *c = *pp;
        *pp = c->next;
        free(c->name);
        free(c);
        fb->n_cached--;
    }
    pthread_mutex_unlock(&fb->mu);
}

static void short_pause(int attempt)
{
    usleep((useconds_t)(5000 * attempt + (sg_monotonic_ms() % 7) * 1000));
}

static const char *commit_update_time(const cJSON *j, int index)
{
    const cJSON *wr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "writeResults"), index);
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(wr, "updateTime"));
}

/* ---- operations ---- */
static sg_status f_acquire(sg_backend *b, const char *key, const char *lock_id, int64_t ttl,
                           sg_lock *out, sg_holder *holder, sg_error *err)
{
    fs_backend *fb = b->impl;
    long long skew = atomic_load(&fb->skew_ms);
    if (llabs(skew) > 500)
        return sg_error_set(err, SG_E_INTERNAL,
                            "client clock is %lld ms off Firestore's: refusing to acquire "
                            "(limit 500 ms)", skew);
    char sk[SG_KEY_MAX * 3], fk[SG_KEY_MAX * 3 + 16];
    char lname[NAME_MAX_], fname[NAME_MAX_];
    if (sg_storage_key("", key, FS_LIMIT, 0, sk, sizeof sk, err) != SG_OK ||
        sg_fence_key("", sk, FS_LIMIT, 0, fk, sizeof fk, err) != SG_OK ||
        doc_name(fb, fb->collection, sk, lname, err) != SG_OK ||
        doc_name(fb, fb->fence_collection, fk, fname, err) != SG_OK)
        return SG_ERROR;
    for (int attempt = 1;; attempt++) {
        fst_doc docs[2];
        const char *names[2] = {lname, fname};
        if (batch_get(fb, names, 2, docs, err) != SG_OK)
            return SG_ERROR;
        int64_t now = sg_now_ms();
        if (docs[0].exists && sg_is_live(docs[0].expires_at_ms, now)) {
            /* the client clock is the time authority; live until + tolerance */
            holder->expires_at_ms = docs[0].expires_at_ms;
            holder->free_at_ms = docs[0].expires_at_ms + SG_TOLERANCE_MS;
            holder->now_ms = now;
            return SG_CONTENDED;
        }
        uint64_t next = (docs[1].exists ? docs[1].counter : 0) + 1;
        if (sg_fence_check(next, key, err) != SG_OK)
            return SG_ERROR; /* nothing written */
        char fence[SG_FENCE_LEN + 1];
        sg_fence_format(next, fence);
        cJSON *req = cJSON_CreateObject();
        cJSON *writes = cJSON_AddArrayToObject(req, "writes");
        cJSON *cf = add_write(writes, fname, docs[1].exists ? docs[1].update_time : "", false);
        add_str(cf, "fence", fence);
        add_str(cf, "keyDebug", key);
        cJSON *lf = add_write(writes, lname, docs[0].exists ? docs[0].update_time : "", false);
        add_str(lf, "lockId", lock_id);
        add_int(lf, "expiresAtMs", now + ttl);
        add_int(lf, "acquiredAtMs", now);
        add_str(lf, "key", key);
        add_str(lf, "fence", fence);
        char status[48];
        cJSON *j = fst_rest(fb, ":commit", req, true, status, err);
        cJSON_Delete(req);
        if (!j) {
            if (is_outcome(status))
                return SG_CONTENDED; /* someone moved first */
            if (!strcmp(status, "ABORTED") && attempt < 4) {
                short_pause(attempt);
                continue;
            }
            return SG_ERROR;
        }
        const char *ut = commit_update_time(j, 1);
        if (ut)
            cache_put(fb, lock_id, lname, ut, now + ttl);
        cJSON_Delete(j);
        memcpy(out->fence, fence, sizeof fence);
        out->acquired_at_ms = now;
        out->expires_at_ms = now + ttl;
        return SG_OK;
    }
}

/* Shared by release and extend: find our live lock document (cache first,
 * else runQuery) and commit one write with the updateTime precondition. */
static sg_status mutate(fs_backend *fb, const char *lock_id, int64_t ttl, int64_t *exp,
                        sg_error *err)
{
    bool del = ttl == 0;
    char name[NAME_MAX_], ut[64];
    int64_t expires = 0;
    bool from_cache = cache_get(fb, lock_id, name, ut, &expires);
    for (int attempt = 1;; attempt++) {
        if (!from_cache) {
            fst_doc doc;
            if (query_lock(fb, lock_id, &doc, name, err) != SG_OK)
                return SG_ERROR;
            if (!doc.exists)
                return SG_ABSENT;
            snprintf(ut, sizeof ut, "%s", doc.update_time);
            expires = doc.expires_at_ms;
        }
        int64_t now = sg_now_ms();
        if (!sg_is_live(expires, now)) {
            cache_drop(fb, lock_id);
            return SG_ABSENT; /* never resurrect */
        }
        cJSON *req = cJSON_CreateObject();
        cJSON *writes = cJSON_AddArrayToObject(req, "writes");
        cJSON *f = add_write(writes, name, ut, del);
        if (!del) {
            add_int(f, "expiresAtMs", now + ttl);
            cJSON *w = cJSON_GetArrayItem(writes, 0);
            cJSON *paths = cJSON_AddArrayToObject(cJSON_AddObjectToObject(w, "updateMask"),
                                                  "fieldPaths");
            cJSON_AddItemToArray(paths, cJSON_CreateString("expiresAtMs"));
        }
        char status[48];
        cJSON *j = fst_rest(fb, ":commit", req, true, status, err);
        cJSON_Delete(req);
        if (!j) {
            if (is_outcome(status)) {
                if (from_cache) { /* our cached updateTime is stale: look it up */
                    cache_drop(fb, lock_id);
                    from_cache = false;
                    sg_error_clear(err);
                    continue;
                }
                return SG_ABSENT; /* changed under us: no longer ours */
            }
            if (!strcmp(status, "ABORTED") && attempt < 4) {
                short_pause(attempt);
                continue;
            }
            return SG_ERROR;
        }
        if (del) {
            cache_drop(fb, lock_id);
        } else {
            const char *nut = commit_update_time(j, 0);
            if (nut)
                cache_put(fb, lock_id, name, nut, now + ttl);
            *exp = now + ttl;
        }
        cJSON_Delete(j);
        return SG_OK;
    }
}

static sg_status f_release(sg_backend *b, const char *lock_id, sg_error *err)
{
    return mutate(b->impl, lock_id, 0, NULL, err);
}

static sg_status f_extend(sg_backend *b, const char *lock_id, int64_t ttl, int64_t *exp,
                          sg_error *err)
{
    return mutate(b->impl, lock_id, ttl, exp, err);
}

static void fill_info(const fst_doc *d, sg_lock_info *out)
{
    memcpy(out->lock_id, d->lock_id, sizeof out->lock_id);
    memcpy(out->key, d->key, sizeof out->key);
    memcpy(out->fence, d->fence, sizeof out->fence);
    out->acquired_at_ms = d->acquired_at_ms;
    out->expires_at_ms = d->expires_at_ms;
}

static sg_status f_lookup_key(sg_backend *b, const char *key, sg_lock_info *out, sg_error *err)
{
    fs_backend *fb = b->impl;
    char sk[SG_KEY_MAX * 3], name[NAME_MAX_];
    if (sg_storage_key("", key, FS_LIMIT, 0, sk, sizeof sk, err) != SG_OK ||
        doc_name(fb, fb->collection, sk, name, err) != SG_OK)
        return SG_ERROR;
    fst_doc doc;
    const char *names[1] = {name};
    if (batch_get(fb, names, 1, &doc, err) != SG_OK)
        return SG_ERROR;
    if (!doc.exists || !sg_is_live(doc.expires_at_ms, sg_now_ms()))
        return SG_ABSENT;
    fill_info(&doc, out);
    return SG_OK;
}

static sg_status f_lookup_id(sg_backend *b, const char *lock_id, sg_lock_info *out,
                             sg_error *err)
{
    fst_doc doc;
    char name[NAME_MAX_];
    if (query_lock(b->impl, lock_id, &doc, name, err) != SG_OK)
        return SG_ERROR;
    if (!doc.exists || !sg_is_live(doc.expires_at_ms, sg_now_ms()))
        return SG_ABSENT;
    fill_info(&doc, out);
    return SG_OK;
}

static sg_status f_list(sg_backend *b, char cursor[SG_CURSOR_LEN], size_t page, sg_list_fn fn,
                        void *ud, sg_error *err)
{
    fs_backend *fb = b->impl;
    cJSON *req = cJSON_CreateObject();
    cJSON *q = cJSON_AddObjectToObject(req, "structuredQuery");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "collectionId", fb->collection);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "from"), c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "field"), "fieldPath", "__name__");
    cJSON_AddStringToObject(o, "direction", "ASCENDING");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "orderBy"), o);
    if (cursor[0]) {
        char name[NAME_MAX_ + SG_CURSOR_LEN];
        snprintf(name, sizeof name, "%s/%s/%s", fb->docs, fb->collection, cursor);
        cJSON *at = cJSON_AddObjectToObject(q, "startAt");
        cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "referenceValue", name);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(at, "values"), v);
        cJSON_AddBoolToObject(at, "before", 0);
    }
    cJSON_AddNumberToObject(q, "limit", (double)page);
    char status[48];
    cJSON *j = fst_rest(fb, ":runQuery", req, false, status, err);
    cJSON_Delete(req);
    if (!j)
        return SG_ERROR;
    size_t n = 0;
    int64_t now = sg_now_ms();
    char last[SG_CURSOR_LEN] = "";
    const cJSON *item;
    const cJSON *list = cJSON_IsArray(j) ? j : NULL;
    cJSON_ArrayForEach(item, list) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(item, "document");
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "name"));
        if (!nm)
            continue;
        n++;
        const char *slash = strrchr(nm, '/');
        snprintf(last, sizeof last, "%s", slash ? slash + 1 : nm);
        fst_doc doc;
        memset(&doc, 0, sizeof doc);
        if (fst_parse_lock(d, &doc, NULL) == SG_OK && sg_is_live(doc.expires_at_ms, now))
            fn(doc.key, ud);
    }
    cJSON_Delete(j);
    if (n < page)
        cursor[0] = '\0';
    else
        snprintf(cursor, SG_CURSOR_LEN, "%s", last);
    return SG_OK;
}

static void f_close(sg_backend *b)
{
    fs_backend *fb = b->impl;
    sg_pool_destroy(&fb->pool);
    fst_multi_destroy(&fb->multi);
    for (int i = 0; i < CACHE_BUCKETS; i++)
        for (cached *c = fb->cache[i], *n; c; c = n) {
            n = c->next;
            free(c->name);
            free(c);
        }
    explicit_bzero(fb->token, sizeof fb->token);
    free(fb->token_file);
    free(fb->ca_file);
    free(fb->credentials);
    pthread_mutex_destroy(&fb->mu);
    free(fb);
    free(b);
}

static const sg_backend_ops firestore_ops = {
    .acquire = f_acquire,
    .release = f_release,
    .extend = f_extend,
    .lookup_key = f_lookup_key,
    .lookup_id = f_lookup_id,
    .list = f_list,
    .close = f_close,
};

/* ---- URL ---- */
static bool valid_segment(const char *s, size_t max, bool parens)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || (parens && (*s == '(' || *s == ')'))))
            return false;
    return true;
}

static sg_status from_url(fs_backend *fb, const sg_url *u, sg_error *err)
{
    const char *project = u->n_hosts == 1 && !u->hosts[0].port ? u->hosts[0].name : "";
    const char *db = u->path && *u->path ? u->path : "(default)";
    if (u->user || u->password)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "firestore:// URLs take no user or password (credentials come from "
                            "GOOGLE_APPLICATION_CREDENTIALS, token_file= or metadata=1)");
    if (!valid_segment(project, 63, false) || !valid_segment(db, 63, true))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "firestore://PROJECT[/DATABASE]: project and database must be "
                            "letters, digits, '-' or '_'");
    snprintf(fb->docs, sizeof fb->docs, "projects/%.63s/databases/%.63s/documents", project, db);
    snprintf(fb->base, sizeof fb->base, "/v1/%s", fb->docs);
    for (size_t i = 0; i < u->n_params; i++) {
        const char *p = u->params[i].name, *v = u->params[i].value;
        if (!strcmp(p, "collection") || !strcmp(p, "fence_collection")) {
            if (!valid_segment(v, 100, false))
                return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                    "collection names must be non-empty letters, digits, "
                                    "'-' or '_' (no '/')");
            snprintf(p[0] == 'c' ? fb->collection : fb->fence_collection, 128, "%s", v);
        } else if (!strcmp(p, "token_file")) {
            free(fb->token_file);
            if (!(fb->token_file = strdup(v)))
                return sg_error_set(err, SG_E_INTERNAL, "out of memory");
        } else if (!strcmp(p, "ca_file")) {
            free(fb->ca_file);
            if (!(fb->ca_file = strdup(v)))
                return sg_error_set(err, SG_E_INTERNAL, "out of memory");
        } else if (!strcmp(p, "endpoint")) {
            /* scheme://host[:port] only: no user, path or query */
            bool ok = (!strncmp(v, "https://", 8) || !strncmp(v, "http://", 7)) &&
                      strlen(v) < sizeof fb->endpoint_param && !strchr(v, '@') &&
                      !strchr(strstr(v, "://") + 3, '/') && !strchr(v, '?') &&
                      strstr(v, "://")[3];
            if (!ok)
                return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                    "endpoint must be https://host[:port]");
            snprintf(fb->endpoint_param, sizeof fb->endpoint_param, "%s", v);
        } else if (!strcmp(p, "metadata")) {
            fb->metadata = !strcmp(v, "1") || !strcmp(v, "true");
        } else if (!strcmp(p, "timeout_ms")) {
            char *end;
            long t = strtol(v, &end, 10);
            if (*end || end == v || t < 1 || t > 600000)
                return sg_error_set(err, SG_E_INVALID_ARGUMENT, "timeout_ms must be 1..600000");
            fb->timeout_ms = t;
        } else {
            return sg_error_set(err, SG_E_INVALID_ARGUMENT, "unknown URL parameter '%.40s'",
                                sg_url_secret_name(p, strlen(p)) ? "(a secret)" : p);
        }
    }
    if (!strcmp(fb->collection, fb->fence_collection))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "collection and fence_collection must differ");
    return SG_OK;
}

sg_status sg_firestore_open(const sg_url *url, const sg_open_opts *opts, sg_backend **out,
                            sg_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fst_http_global_init);
    sg_open_opts o = opts ? *opts : (sg_open_opts){0};
    sg_backend *b = sg_backend_alloc(&firestore_ops, (sg_capabilities){"firestore", true, SG_TIME_CLIENT}, sizeof(fs_backend), err);
    if (!b)
        return SG_ERROR;
    fs_backend *fb = b->impl;
    pthread_mutex_init(&fb->mu, NULL);
    /* Easy handles (a transfer's state) are made as concurrent callers need
     * them, up to 64; the connections are the shared multi handle's
     * (firestore_multi.c). */
    sg_pool_init(&fb->pool, fst_http_new_handle, fst_http_close_handle, NULL, fb);
    sg_pool_set_max(&fb->pool, SG_POOL_MAX);
    if (fst_multi_init(&fb->multi, err) != SG_OK) {
        f_close(b);
        return SG_ERROR;
    }
    snprintf(fb->collection, sizeof fb->collection, "locks");
    snprintf(fb->fence_collection, sizeof fb->fence_collection, "fence_counters");
    fb->timeout_ms = o.command_timeout_ms > 0 ? o.command_timeout_ms : 5000;
    fb->connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 2000;
    sg_status st = from_url(fb, url, err);
    const char *emu = getenv("FIRESTORE_EMULATOR_HOST");
    if (st == SG_OK && emu && *emu) {
        /* host:port only: the emulator is plain HTTP, with no credentials at all */
        bool ok = strlen(emu) < 200 && !strchr(emu, '/') && !strchr(emu, '@') && strchr(emu, ':');
        if (!ok)
            st = sg_error_set(err, SG_E_INVALID_ARGUMENT,
                              "FIRESTORE_EMULATOR_HOST must be host:port");
        snprintf(fb->endpoint, sizeof fb->endpoint, "http://%s", emu);
        fb->emulator = true;
    } else if (st == SG_OK) {
        snprintf(fb->endpoint, sizeof fb->endpoint, "https://firestore.googleapis.com");
        const char *cred = getenv("GOOGLE_APPLICATION_CREDENTIALS");
        if (!fb->token_file && cred && *cred)
            fb->credentials = strdup(cred);
    }
    if (st == SG_OK && fb->endpoint_param[0]) {
        /* plain HTTP only to the emulator: outside it, TLS and verification */
        if (!fb->emulator && strncmp(fb->endpoint_param, "https://", 8))
            st = sg_error_set(err, SG_E_INVALID_ARGUMENT,
                              "endpoint must be https:// (http:// only with "
                              "FIRESTORE_EMULATOR_HOST)");
        snprintf(fb->endpoint, sizeof fb->endpoint, "%s", fb->endpoint_param);
    }
    if (st != SG_OK) {
        f_close(b);
        return SG_ERROR;
    }
    *out = b;
    return SG_OK;
}
