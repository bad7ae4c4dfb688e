/* key.c — the pure rules of the contract: key normalization, storage keys,
 * lockIds, fences, TTLs, time and keyHash. No I/O but getrandom(). */
#include "syncguard_backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <utf8proc.h>

/* NFC of len bytes; returns a malloc'd NUL-terminated string (caller frees)
 * or NULL with err set. Rejects embedded NUL and invalid UTF-8. */
static char *nfc_dup(const char *s, size_t len, sg_error *err)
{
    if (memchr(s, '\0', len)) {
        sg_error_set(err, SG_E_INVALID_ARGUMENT, "key contains a NUL byte");
        return NULL;
    }
    size_t i = 0;
    while (i < len && (unsigned char)s[i] < 0x80)
        i++;
    if (i == len) { /* ASCII is its own NFC: skip utf8proc (the common case) */
        char *d = strndup(s, len);
        if (!d)
            sg_error_set(err, SG_E_INTERNAL, "out of memory normalizing key");
        return d;
    }
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0) {
        if (n == UTF8PROC_ERROR_NOMEM)
            sg_error_set(err, SG_E_INTERNAL, "out of memory normalizing key");
        else
            sg_error_set(err, SG_E_INVALID_ARGUMENT, "key is not valid UTF-8 (%s)",
                         utf8proc_errmsg(n));
        return NULL;
    }
    return (char *)dst;
}

sg_status sg_key_normalize(const char *key, size_t len, char out[SG_KEY_MAX + 1],
                           size_t *out_len, sg_error *err)
{
    if (!key || len == 0)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "key must not be empty");
    if (len > 4 * (SG_KEY_MAX + 1)) { /* NFC never shrinks by more than this */
        sg_error_set(err, SG_E_INVALID_ARGUMENT, "key exceeds %d bytes after normalization",
                     SG_KEY_MAX);
        if (err)
            err->too_long = true;
        return SG_ERROR;
    }
    char *nfc = nfc_dup(key, len, err);
    if (!nfc)
        return SG_ERROR;
    size_t n = strlen(nfc);
    if (n > SG_KEY_MAX) {
        free(nfc);
        sg_error_set(err, SG_E_INVALID_ARGUMENT,
                     "key is %zu bytes after NFC normalization; the limit is %d", n, SG_KEY_MAX);
        if (err)
            err->too_long = true;
        return SG_ERROR;
    }
    memcpy(out, nfc, n + 1);
    free(nfc);
    if (out_len)
        *out_len = n;
    return SG_OK;
}

void sg_base64url(const unsigned char *in, size_t n, char *out)
{
    /* EVP_EncodeBlock writes standard base64 with padding; translate. */
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
}

sg_status sg_storage_key(const char *prefix, const char *key, size_t limit, size_t reserve,
                         char *out, size_t out_size, sg_error *err)
{
    if (!prefix)
        prefix = "";
    if (!key)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "key must not be NULL");
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == ':')
        plen--;
    char *nfc = nfc_dup(key, strlen(key), err);
    if (!nfc)
        return SG_ERROR;
    size_t klen = strlen(nfc);
    size_t cand_len = plen ? plen + 1 + klen : klen;
    char *cand = malloc(cand_len + 1);
    if (!cand) {
        free(nfc);
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    }
    if (plen) {
        memcpy(cand, prefix, plen);
        cand[plen] = ':';
        memcpy(cand + plen + 1, nfc, klen + 1);
    } else {
        memcpy(cand, nfc, klen + 1);
    }
    free(nfc);

    sg_status st = SG_OK;
    if (cand_len + reserve <= limit) {
        if (cand_len + 1 > out_size)
            st = sg_error_set(err, SG_E_INTERNAL, "storage key buffer too small");
        else
            memcpy(out, cand, cand_len + 1);
    } else {
        unsigned char digest[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)cand, cand_len, digest);
        char hash[32];
        sg_base64url(digest, 16, hash); /* 22 chars */
        size_t hashed_len = (plen ? plen + 1 : 0) + 22;
        if (hashed_len + reserve > limit)
            st = sg_error_set(err, SG_E_INVALID_ARGUMENT,
                              "prefix too long: even the hashed storage key (%zu bytes) plus "
                              "reserve %zu exceeds the backend limit %zu",
                              hashed_len, reserve, limit);
        else if (hashed_len + 1 > out_size)
            st = sg_error_set(err, SG_E_INTERNAL, "storage key buffer too small");
        else if (plen)
            snprintf(out, out_size, "%.*s:%s", (int)plen, prefix, hash);
        else
            snprintf(out, out_size, "%s", hash);
    }
    free(cand);
    return st;
}

sg_status sg_fence_key(const char *prefix, const char *base, size_t limit, size_t reserve,
                       char *out, size_t out_size, sg_error *err)
{
    size_t n = strlen(base);
    char *k = malloc(n + 7);
    if (!k)
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    memcpy(k, "fence:", 6);
    memcpy(k + 6, base, n + 1);
    sg_status st = sg_storage_key(prefix, k, limit, reserve, out, out_size, err);
    free(k);
    return st;
}

/* lockIds take their 16 bytes from a per-thread buffer of getrandom output
 * (one system call per 32 lockIds instead of one each: 5 % of a client's
 * CPU at 256 calls in flight). A fork's child would inherit the buffer and
 * repeat its parent's next lockIds: every fork moves fork_gen on, and a
 * buffer filled in an older generation is thrown away. */
static atomic_uint fork_gen;
static pthread_once_t fork_hook = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void install_fork_hook(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

static sg_status random_bytes(unsigned char *out, size_t len, sg_error *err)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(out + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sg_error_set(err, SG_E_INTERNAL, "getrandom failed: %s", strerror(errno));
        }
        got += (size_t)n;
    }
    return SG_OK;
}

sg_status sg_lock_id_generate(char out[SG_LOCK_ID_LEN + 1], sg_error *err)
{
    static _Thread_local unsigned char pool[32 * 16];
    static _Thread_local size_t left;
    static _Thread_local unsigned gen;
    pthread_once(&fork_hook, install_fork_hook);
    unsigned now = atomic_load(&fork_gen);
    if (left < 16 || gen != now) {
        if (random_bytes(pool, sizeof pool, err) != SG_OK)
            return SG_ERROR;
        left = sizeof pool;
        gen = now;
    }
    unsigned char *raw = pool + sizeof pool - left;
    left -= 16;
    char buf[32];
    sg_base64url(raw, 16, buf);
    explicit_bzero(raw, 16); /* used once: nothing of it stays behind */
    memcpy(out, buf, SG_LOCK_ID_LEN + 1);
    return SG_OK;
}

static bool is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

bool sg_lock_id_valid(const char *id)
{
    if (!id)
        return false;
    for (int i = 0; i < SG_LOCK_ID_LEN; i++)
        if (!is_b64url(id[i]))
            return false;
    return id[SG_LOCK_ID_LEN] == '\0';
}

void sg_fence_format(uint64_t fence, char out[SG_FENCE_LEN + 1])
{
    snprintf(out, SG_FENCE_LEN + 1, "%015" PRIu64, fence % UINT64_C(1000000000000000));
}

sg_status sg_fence_parse(const char *s, uint64_t *out, sg_error *err)
{
    uint64_t v = 0;
    for (int i = 0; i < SG_FENCE_LEN; i++) {
        if (!s || s[i] < '0' || s[i] > '9')
            return sg_error_set(err, SG_E_INTERNAL, "corrupt fence: not 15 digits");
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (s[SG_FENCE_LEN] != '\0')
        return sg_error_set(err, SG_E_INTERNAL, "corrupt fence: not 15 digits");
    *out = v;
    return SG_OK;
}

sg_status sg_fence_check(uint64_t fence, const char *key, sg_error *err)
{
    if (fence > SG_FENCE_MAX)
        return sg_error_set(err, SG_E_INTERNAL,
                            "fence counter exhausted for key %.64s (%" PRIu64 " > %" PRIu64 ")",
                            key ? key : "", fence, SG_FENCE_MAX);
    if (fence > SG_FENCE_WARN)
        sg_log(SG_LOG_WARN, "fence for key %.64s is %" PRIu64 ", approaching the limit %" PRIu64,
               key ? key : "", fence, SG_FENCE_MAX);
    return SG_OK;
}

sg_status sg_ttl_check(int64_t ttl_ms, sg_error *err)
{
    if (ttl_ms < 1 || ttl_ms > SG_TTL_MAX_MS)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "TTL must be an integer from 1 to %lld ms, got %" PRId64,
                            SG_TTL_MAX_MS, ttl_ms);
    return SG_OK;
}

int64_t sg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sg_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sg_key_hash(const char *s, char out[SG_HASH_LEN + 1])
{
    uint32_t h1 = 0, h2 = 0, h3 = 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t left = (utf8proc_ssize_t)strlen(s);
    while (left > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
        if (n <= 0) { /* invalid byte: hash it as U+FFFD, as JS decoding would */
            cp = 0xFFFD;
            n = 1;
        }
        p += n;
        left -= n;
        uint32_t units[2];
        int nu = 0;
        if (cp >= 0x10000) {
            uint32_t v = (uint32_t)cp - 0x10000;
            units[nu++] = 0xD800 + (v >> 10);
            units[nu++] = 0xDC00 + (v & 0x3FF);
        } else {
            units[nu++] = (uint32_t)cp;
        }
        for (int i = 0; i < nu; i++) {
            uint32_t c = units[i];
            h1 = h1 * 31u + c;
            h2 = h2 * 127u + 3u * c;
            h3 = h3 * 2047u + 7u * c;
        }
    }
    snprintf(out, SG_HASH_LEN + 1, "%08x%08x%08x", h1, h2, h3);
}
