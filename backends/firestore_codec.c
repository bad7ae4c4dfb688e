/* firestore_codec.c — pure parts of the Firestore backend: document ids,
 * REST value decoding, timestamps, error mapping and the RS256 JWT. */
#include "firestore.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

sg_status fst_doc_id(const char *skey, char *out, size_t size, sg_error *err)
{
    size_t n = strlen(skey);
    bool reserved = n >= 4 && !strncmp(skey, "__", 2) && !strcmp(skey + n - 2, "__");
    bool valid = n > 0 && n <= FST_ID_MAX && !strchr(skey, '/') && strcmp(skey, ".") &&
                 strcmp(skey, "..") && !reserved;
    if (valid) {
        if (n + 1 > size)
            return sg_error_set(err, SG_E_INTERNAL, "document id buffer too small");
        memcpy(out, skey, n + 1);
        return SG_OK;
    }
    size_t enc = 3 + 4 * ((n + 2) / 3);
    size_t total = enc < FST_ENCODED_MIN ? FST_ENCODED_MIN : enc;
    if (total > FST_ID_MAX || total + 1 > size)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "key too long for a Firestore id");
    memcpy(out, "sg~", 3);
    sg_base64url((const unsigned char *)skey, n, out + 3);
    size_t len = strlen(out);
    while (len < FST_ENCODED_MIN)
        out[len++] = '~';
    out[len] = '\0';
    return SG_OK;
}

bool fst_time_ms(const char *s, int64_t *ms)
{
    if (!s)
        return false;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return false;
    int64_t frac_ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (digits == 0)
            return false;
        for (; digits < 3; digits++)
            frac_ms *= 10;
    }
    if (*p != 'Z' || p[1] != '\0')
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *ms = (int64_t)t * 1000 + frac_ms;
    return true;
}

bool fst_get_int(const cJSON *fields, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(fields, name);
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(v, "integerValue");
    if (cJSON_IsString(iv) && iv->valuestring) { /* REST encodes int64 as a string */
        char *end;
        long long x = strtoll(iv->valuestring, &end, 10);
        if (*iv->valuestring && !*end) {
            *out = x;
            return true;
        }
        return false;
    }
    if (cJSON_IsNumber(iv)) {
        *out = (int64_t)iv->valuedouble;
        return true;
    }
    /* SyncGuard TS may store small numbers as doubles */
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(v, "doubleValue");
    if (cJSON_IsNumber(dv) && dv->valuedouble >= -9e15 && dv->valuedouble <= 9e15) {
        *out = (int64_t)dv->valuedouble;
        return true;
    }
    return false;
}

const char *fst_get_str(const cJSON *fields, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(fields, name);
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(v, "stringValue");
    return cJSON_IsString(sv) ? sv->valuestring : NULL;
}

static sg_status doc_meta(const cJSON *doc, fst_doc *out, const cJSON **fields, sg_error *err)
{
    const cJSON *ut = cJSON_GetObjectItemCaseSensitive(doc, "updateTime");
    *fields = cJSON_GetObjectItemCaseSensitive(doc, "fields");
    if (!cJSON_IsString(ut) || strlen(ut->valuestring) >= sizeof out->update_time ||
        !cJSON_IsObject(*fields))
        return sg_error_set(err, SG_E_INTERNAL, "malformed Firestore document");
    snprintf(out->update_time, sizeof out->update_time, "%s", ut->valuestring);
    out->exists = true;
    return SG_OK;
}

sg_status fst_parse_lock(const cJSON *doc, fst_doc *out, sg_error *err)
{
    const cJSON *f;
    if (doc_meta(doc, out, &f, err) != SG_OK)
        return SG_ERROR;
    const char *id = fst_get_str(f, "lockId"), *key = fst_get_str(f, "key");
    const char *fence = fst_get_str(f, "fence");
    uint64_t fv;
    if (!id || !sg_lock_id_valid(id) || !key || strlen(key) > SG_KEY_MAX || !fence ||
        sg_fence_parse(fence, &fv, NULL) != SG_OK ||
        !fst_get_int(f, "expiresAtMs", &out->expires_at_ms) ||
        !fst_get_int(f, "acquiredAtMs", &out->acquired_at_ms))
        return sg_error_set(err, SG_E_INTERNAL, "corrupt lock document in Firestore");
    memcpy(out->lock_id, id, SG_LOCK_ID_LEN + 1);
    snprintf(out->key, sizeof out->key, "%s", key);
    memcpy(out->fence, fence, SG_FENCE_LEN + 1);
    return SG_OK;
}

sg_status fst_parse_counter(const cJSON *doc, fst_doc *out, sg_error *err)
{
    const cJSON *f;
    if (doc_meta(doc, out, &f, err) != SG_OK)
        return SG_ERROR;
    const char *fence = fst_get_str(f, "fence");
    if (!fence || sg_fence_parse(fence, &out->counter, NULL) != SG_OK)
        return sg_error_set(err, SG_E_INTERNAL, "corrupt fence counter in Firestore "
                                                "(fence must be a 15-digit string)");
    return SG_OK;
}

sg_status fst_map_error(long http, const char *body, char status_out[48], sg_error *err)
{
    status_out[0] = '\0';
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsArray(j)) /* streamed responses wrap the error in an array */
        e = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 0), "error");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (cJSON_IsString(st))
        snprintf(status_out, 48, "%s", st->valuestring);
    if (err)
        snprintf(err->cause, sizeof err->cause, "HTTP %ld %s%s%.100s", http, status_out,
                 cJSON_IsString(msg) ? ": " : "", cJSON_IsString(msg) ? msg->valuestring : "");
    cJSON_Delete(j);
    const char *s = status_out;
    sg_status r;
    if (!strcmp(s, "INVALID_ARGUMENT") || !strcmp(s, "OUT_OF_RANGE"))
        r = sg_error_set(err, SG_E_INVALID_ARGUMENT, "Firestore rejected the request");
    else if (!strcmp(s, "UNAUTHENTICATED") || !strcmp(s, "PERMISSION_DENIED"))
        r = sg_error_set(err, SG_E_AUTH_FAILED, "Firestore refused the credentials");
    else if (!strcmp(s, "RESOURCE_EXHAUSTED"))
        r = sg_error_set(err, SG_E_RATE_LIMITED, "Firestore quota exceeded");
    else if (!strcmp(s, "UNAVAILABLE") || !strcmp(s, "ABORTED"))
        r = sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "Firestore is unavailable");
    else if (!strcmp(s, "DEADLINE_EXCEEDED"))
        r = sg_error_set(err, SG_E_NETWORK_TIMEOUT, "Firestore deadline exceeded");
    else if (s[0])
        r = sg_error_set(err, SG_E_INTERNAL, "Firestore error %s", s);
    /* not a Firestore error body (an HTML page, a proxy): the HTTP code */
    else if (http == 401 || http == 403)
        r = sg_error_set(err, SG_E_AUTH_FAILED, "Firestore refused the credentials");
    else if (http == 429)
        r = sg_error_set(err, SG_E_RATE_LIMITED, "Firestore quota exceeded");
    else if (http == 408 || http == 504)
        r = sg_error_set(err, SG_E_NETWORK_TIMEOUT, "Firestore timed out");
    else if (http >= 500 || http == 0)
        r = sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "Firestore is unavailable");
    else
        r = sg_error_set(err, SG_E_INTERNAL, "unexpected HTTP %ld from Firestore", http);
    return r;
}

static char *b64url_dup(const unsigned char *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        sg_base64url(in, n, out);
    return out;
}

sg_status fst_jwt(const char *email, const char *pem, const char *aud, const char *scope,
                  int64_t iat, char **out, sg_error *err)
{
    *out = NULL;
    static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    cJSON *claims = cJSON_CreateObject();
    cJSON_AddStringToObject(claims, "iss", email);
    cJSON_AddStringToObject(claims, "scope", scope);
    cJSON_AddStringToObject(claims, "aud", aud);
    cJSON_AddNumberToObject(claims, "iat", (double)iat);
    cJSON_AddNumberToObject(claims, "exp", (double)(iat + 3600));
    char *cl = cJSON_PrintUnformatted(claims);
    cJSON_Delete(claims);
    char *h64 = b64url_dup((const unsigned char *)header, strlen(header));
    char *c64 = cl ? b64url_dup((const unsigned char *)cl, strlen(cl)) : NULL;
    free(cl);
    sg_status st = SG_ERROR;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *input = NULL;
    unsigned char *sig = NULL;
    if (!h64 || !c64 || !md) {
        sg_error_set(err, SG_E_INTERNAL, "out of memory");
        goto done;
    }
    if (!key) {
        sg_error_set(err, SG_E_AUTH_FAILED, "service account private_key is not a valid PEM key");
        goto done;
    }
    size_t in_len = strlen(h64) + 1 + strlen(c64);
    input = malloc(in_len + 1);
    if (!input)
        goto done;
    snprintf(input, in_len + 1, "%s.%s", h64, c64);
    size_t sig_len = 0;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &sig_len, (unsigned char *)input, in_len) != 1 ||
        !(sig = malloc(sig_len)) ||
        EVP_DigestSign(md, sig, &sig_len, (unsigned char *)input, in_len) != 1) {
        sg_error_set(err, SG_E_AUTH_FAILED, "cannot sign the token request (RS256)");
        goto done;
    }
    char *s64 = b64url_dup(sig, sig_len);
    if (!s64)
        goto done;
    size_t total = in_len + 1 + strlen(s64) + 1;
    *out = malloc(total);
    if (*out) {
        snprintf(*out, total, "%s.%s", input, s64);
        st = SG_OK;
    }
    free(s64);
done:
    free(h64);
    free(c64);
    free(input);
    free(sig);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    BIO_free(bio);
    return st;
}
