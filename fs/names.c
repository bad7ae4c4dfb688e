/* names.c — file name encoding, TTL parsing and lock file text. */
#include "names.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int sgfs_name_decode(const char *name, char key[SG_KEY_MAX + 1])
{
    size_t n = strlen(name);
    if (n == 0)
        return -EINVAL;
    if (n > SGFS_NAME_MAX)
        return -ENAMETOOLONG;
    if (!strcmp(name, "%2E") || !strcmp(name, "%2E%2E")) {
        snprintf(key, SG_KEY_MAX + 1, "%s", n == 3 ? "." : "..");
        return 0;
    }
    char raw[SGFS_NAME_MAX + 1];
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] != '%') {
            raw[j++] = name[i];
            continue;
        }
        if (!strncmp(name + i, "%25", 3))
            raw[j++] = '%';
        else if (!strncmp(name + i, "%2F", 3))
            raw[j++] = '/';
        else
            return -EINVAL; /* %2E only as a whole name; lowercase hex is not canonical */
        i += 2;
    }
    sg_error err;
    if (sg_key_normalize(raw, j, key, NULL, &err) != SG_OK)
        return -sg_error_errno(&err);
    return 0;
}

void sgfs_name_encode(const char *key, char out[SGFS_NAME_MAX + 1])
{
    if (!strcmp(key, ".") || !strcmp(key, "..")) {
        snprintf(out, SGFS_NAME_MAX + 1, "%s", key[1] ? "%2E%2E" : "%2E");
        return;
    }
    size_t j = 0;
    for (const char *p = key; *p && j + 3 < SGFS_NAME_MAX + 1; p++) {
        if (*p == '%' || *p == '/') {
            memcpy(out + j, *p == '%' ? "%25" : "%2F", 3);
            j += 3;
        } else {
            out[j++] = *p;
        }
    }
    out[j] = '\0';
}

int sgfs_ttl_parse(const char *buf, size_t len, int64_t *ttl_ms)
{
    int64_t v;
    if (sg_duration_parse(buf, len, &v, NULL) != SG_OK || v < SGFS_TTL_MIN_MS)
        return -EINVAL;
    *ttl_ms = v;
    return 0;
}

size_t sgfs_format_lock(char *out, size_t out_size, const char *key, const char *fence,
                        int64_t acquired_at_ms, int64_t expires_at_ms, int64_t now_ms,
                        const char *lock_id, const char *holder)
{
    /* The file-name encoding, plus %XX for control bytes: a key holding a
     * newline must not be able to forge a line of this text. */
    char enc[SGFS_NAME_MAX + 1], name[3 * SGFS_NAME_MAX + 1];
    sgfs_name_encode(key, enc);
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)enc; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            j += (size_t)snprintf(name + j, sizeof name - j, "%%%02X", *p);
        else
            name[j++] = (char)*p;
    }
    name[j] = '\0';
    int64_t ttl = expires_at_ms - now_ms;
    int n = snprintf(out, out_size,
                     "key=%s\nfence=%s\nacquiredAtMs=%" PRId64 "\nexpiresAtMs=%" PRId64
                     "\nttlMs=%" PRId64 "\n",
                     name, fence, acquired_at_ms, expires_at_ms, ttl > 0 ? ttl : 0);
    if (n < 0)
        n = 0;
    size_t len = (size_t)n < out_size ? (size_t)n : out_size - 1;
    if (lock_id)
        len += (size_t)snprintf(out + len, out_size - len, "lockId=%s\n", lock_id);
    if (holder && len < out_size)
        len += (size_t)snprintf(out + len, out_size - len, "holder=%s\n", holder);
    return len < out_size ? len : out_size - 1;
}
