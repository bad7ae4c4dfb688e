/* firestore_http.c — the Firestore backend's HTTP side (libcurl): the pool's
 * handles, one request/response exchange, transport errors, Firestore's
 * error.status on a failed call, and the Authorization header: "Bearer owner"
 * for the emulator, else an OAuth token from a token file, a service account
 * (RS256 JWT exchanged at token_uri) or the metadata server. The lock
 * operations that use it are in firestore.c. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "firestore.h"
#include "firestore_http.h"
#include "pool.h"

#define MAX_BODY (8u << 20)

/* ---- HTTP ---- */
typedef struct buf {
    char *p;
    size_t n;
    bool overflow;
} buf;

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t n = size * nmemb;
    if (b->n + n > MAX_BODY) {
        b->overflow = true;
        return 0;
    }
    char *p = realloc(b->p, b->n + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->n, data, n);
    b->p = p;
    b->n += n;
    p[b->n] = '\0';
    return n;
}

void fst_http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void *fst_http_new_handle(void *ud, sg_error *err)
{
    (void)ud;
    CURL *c = curl_easy_init();
    if (!c)
        sg_error_set(err, SG_E_INTERNAL, "cannot create an HTTP handle");
    return c;
}

void fst_http_close_handle(void *c)
{
    curl_easy_cleanup(c);
}

static sg_status curl_error(CURLcode rc, sg_error *err)
{
    if (err)
        snprintf(err->cause, sizeof err->cause, "%s", curl_easy_strerror(rc));
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return sg_error_set(err, SG_E_NETWORK_TIMEOUT, "Firestore did not answer in time");
    if (rc == CURLE_OUT_OF_MEMORY)
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    if (rc == CURLE_WRITE_ERROR)
        return sg_error_set(err, SG_E_INTERNAL, "Firestore response too large");
    if (rc == CURLE_PEER_FAILED_VERIFICATION)
        return sg_error_set(err, SG_E_AUTH_FAILED,
                            "Firestore TLS: the server's certificate was not accepted (check "
                            "ca_file= and the endpoint's host name)");
    if (rc == CURLE_SSL_CACERT_BADFILE)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "Firestore TLS: cannot read ca_file=");
    return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "cannot reach Firestore");
}

/* Raw HTTP exchange. body NULL = GET. Returns the HTTP code (0 on transport
 * failure, err set) and the body in *out (caller frees). */
static long http(fs_backend *fb, const char *url, const char *body, const char *auth,
                 const char *ctype, struct curl_slist *extra, char **out, sg_error *err)
{
    *out = NULL;
    CURL *c = sg_pool_borrow(&fb->pool, err);
    if (!c)
        return 0;
    curl_easy_reset(c);
    buf b = {0};
    struct curl_slist *h = extra;
    char ah[4200];
    if (auth) {
        snprintf(ah, sizeof ah, "Authorization: %s", auth);
        h = curl_slist_append(h, ah);
    }
    if (ctype) {
        char ch[128];
        snprintf(ch, sizeof ch, "Content-Type: %s", ctype);
        h = curl_slist_append(h, ch);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, fb->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, fb->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* verification always on (curl's default, said once more after reset) */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (fb->ca_file) /* the token endpoint too: every request comes here */
        curl_easy_setopt(c, CURLOPT_CAINFO, fb->ca_file);
    /* HTTP/2 when TLS's ALPN offers it (Firestore's https endpoint), where
     * concurrent transfers share one connection of the multi handle (wait
     * for it rather than open another); plain http:// (the emulator, REST
     * over HTTP/1.1 only) stays HTTP/1.1 on a few keep-alive connections. */
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    if (!strncmp(url, "https://", 8)) /* over http:// it would queue every transfer
                                         behind the first answer (libcurl 7.88) */
        curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = fst_multi_perform(&fb->multi, c, fb->timeout_ms);
    long code = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        *out = b.p ? b.p : strdup("");
    } else {
        curl_error(b.overflow ? CURLE_WRITE_ERROR : rc, err);
        free(b.p);
    }
    if (auth)
        explicit_bzero(ah, sizeof ah);
    curl_slist_free_all(h);
    sg_pool_return(&fb->pool, c, true); /* curl reconnects by itself */
    return code;
}

/* ---- credentials (never with the emulator) ---- */
static sg_status token_from_response(fs_backend *fb, long code, const char *body, sg_error *err)
{
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
    sg_status st = SG_OK;
    if (code != 200 || !cJSON_IsString(at) || strlen(at->valuestring) >= sizeof fb->token - 8)
        st = sg_error_set(err, SG_E_AUTH_FAILED, "token request failed (HTTP %ld)", code);
    else {
        snprintf(fb->token, sizeof fb->token, "Bearer %s", at->valuestring);
        int64_t life = cJSON_IsNumber(ex) ? (int64_t)ex->valuedouble : 300;
        fb->token_expiry_ms = sg_now_ms() + (life > 120 ? life - 60 : life / 2) * 1000;
    }
    cJSON_Delete(j);
    return st;
}

/* The Authorization header value, refreshed before it expires. */
static sg_status authorization(fs_backend *fb, char *out, size_t size, sg_error *err)
{
    if (fb->emulator) {
        snprintf(out, size, "Bearer owner");
        return SG_OK;
    }
    pthread_mutex_lock(&fb->mu);
    bool fresh = fb->token[0] && sg_now_ms() < fb->token_expiry_ms;
    if (fresh)
        snprintf(out, size, "%s", fb->token);
    pthread_mutex_unlock(&fb->mu);
    if (fresh)
        return SG_OK;
    sg_status st = SG_ERROR;
    char *body = NULL;
    if (fb->token_file) {
        char *t = sg_secret_read(fb->token_file, 65535, SG_E_AUTH_FAILED, err);
        if (t) {
            t[strcspn(t, "\r\n")] = '\0';
            pthread_mutex_lock(&fb->mu);
            snprintf(fb->token, sizeof fb->token, "Bearer %s", t);
            fb->token_expiry_ms = sg_now_ms() + 60000; /* re-read the file every minute */
            pthread_mutex_unlock(&fb->mu);
            explicit_bzero(t, strlen(t));
            free(t);
            st = SG_OK;
        }
    } else if (fb->credentials) {
        char *json = sg_secret_read(fb->credentials, 65535, SG_E_AUTH_FAILED, err);
        cJSON *j = json ? cJSON_Parse(json) : NULL;
        const char *email = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "client_email"));
        const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "private_key"));
        const char *uri = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "token_uri"));
        char *jwt = NULL;
        if (!json) {
            /* err set by sg_secret_read */
        } else if (!email || !key) {
            sg_error_set(err, SG_E_AUTH_FAILED, "service account JSON lacks client_email or "
                                                "private_key");
        } else if (fst_jwt(email, key, uri ? uri : "https://oauth2.googleapis.com/token",
                           "https://www.googleapis.com/auth/datastore", sg_now_ms() / 1000, &jwt,
                           err) == SG_OK) {
            char form[8192];
            snprintf(form, sizeof form,
                     "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
                     "&assertion=%s", jwt);
            long code = http(fb, uri ? uri : "https://oauth2.googleapis.com/token", form, NULL,
                             "application/x-www-form-urlencoded", NULL, &body, err);
            if (code) {
                pthread_mutex_lock(&fb->mu);
                st = token_from_response(fb, code, body, err);
                pthread_mutex_unlock(&fb->mu);
            }
            explicit_bzero(form, sizeof form);
        }
        free(jwt);
        cJSON_Delete(j);
        if (json)
            explicit_bzero(json, strlen(json));
        free(json);
    } else if (fb->metadata) {
        struct curl_slist *h = curl_slist_append(NULL, "Metadata-Flavor: Google");
        long code = http(fb, "http://169.254.169.254/computeMetadata/v1/instance/"
                             "service-accounts/default/token",
                         NULL, NULL, NULL, h, &body, err);
        if (code) {
            pthread_mutex_lock(&fb->mu);
            st = token_from_response(fb, code, body, err);
            pthread_mutex_unlock(&fb->mu);
        }
    } else {
        sg_error_set(err, SG_E_AUTH_FAILED,
                     "no Firestore credentials: set GOOGLE_APPLICATION_CREDENTIALS, token_file=, "
                     "metadata=1, or FIRESTORE_EMULATOR_HOST");
    }
    if (body)
        explicit_bzero(body, strlen(body));
    free(body);
    if (st == SG_OK) {
        pthread_mutex_lock(&fb->mu);
        snprintf(out, size, "%s", fb->token);
        pthread_mutex_unlock(&fb->mu);
    }
    return st;
}

/* ---- REST calls ---- */
/* POST {base}{suffix} with a JSON body. Returns the parsed response (caller
 * deletes) or NULL with err set; status gets Firestore's error.status. */
cJSON *fst_rest(fs_backend *fb, const char *suffix, cJSON *req, bool mutation, char status[48],
                sg_error *err)
{
    status[0] = '\0';
    char auth[4200];
    if (authorization(fb, auth, sizeof auth, err) != SG_OK)
        return NULL;
    char *body = cJSON_PrintUnformatted(req);
    if (!body) {
        sg_error_set(err, SG_E_INTERNAL, "out of memory");
        return NULL;
    }
    char url[1024];
    snprintf(url, sizeof url, "%s%s%s", fb->endpoint, fb->base, suffix);
    char *resp = NULL;
    int64_t sent = sg_now_ms();
    long code = http(fb, url, body, auth, "application/json", NULL, &resp, err);
    int64_t recv = sg_now_ms();
    explicit_bzero(auth, sizeof auth);
    free(body);
    if (!code) {
        if (err)
            err->unknown_outcome = mutation;
        return NULL;
    }
    cJSON *j = NULL;
    if (code / 100 != 2) {
        fst_map_error(code, resp, status, err);
    } else if (!(j = cJSON_Parse(resp))) {
        sg_error_set(err, SG_E_INTERNAL, "malformed JSON from Firestore (%zu bytes)",
                     strlen(resp));
        if (err)
            err->unknown_outcome = mutation;
    } else {
        fst_note_skew(fb, j, sent, recv);
    }
    free(resp);
    return j;
}
