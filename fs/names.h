/* names.h — pure parsers and formatters of syncguardfs (no FUSE, no I/O):
 * file name ↔ key, TTL writes, file contents. Unit-tested in tests/unit. */
#ifndef SGFS_NAMES_H
#define SGFS_NAMES_H
#include <stddef.h>
#include <stdint.h>

#include "syncguard.h"

#define SGFS_NAME_MAX 1536 /* a 512-byte key encodes to at most 3x */
#define SGFS_TTL_MIN_MS 1000

/* File name → NFC key. 0, -EINVAL (bad %-sequence, invalid UTF-8, NUL) or
 * -ENAMETOOLONG (key over 512 bytes after NFC, or name over SGFS_NAME_MAX). */
int sgfs_name_decode(const char *name, char key[SG_KEY_MAX + 1]);
/* Key → file name: % → %25, / → %2F, "." → %2E, ".." → %2E%2E.
 * out needs SGFS_NAME_MAX + 1 bytes. */
void sgfs_name_encode(const char *key, char out[SGFS_NAME_MAX + 1]);
/* A TTL write: digits, optional unit ms|s|m|h (bare = ms), surrounding
 * whitespace allowed; 1 s .. 2^31-1 ms. 0 or -EINVAL. */
int sgfs_ttl_parse(const char *buf, size_t len, int64_t *ttl_ms);

/* The text of a lock file: key, fence, acquiredAtMs, expiresAtMs, ttlMs and
 * (owner only, lock_id non-NULL) lockId, (holder non-NULL) holder. Returns
 * the length written (out is NUL-terminated; out_size >= 2048 suffices). */
size_t sgfs_format_lock(char *out, size_t out_size, const char *key, const char *fence,
                        int64_t acquired_at_ms, int64_t expires_at_ms, int64_t now_ms,
                        const char *lock_id, const char *holder);
#endif
