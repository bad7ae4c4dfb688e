/* firestore.h — private to the Firestore backend (and its unit tests): the
 * REST value codec, document ids, response parsing, error mapping, JWT. */
#ifndef SG_FIRESTORE_H
#define SG_FIRESTORE_H
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "syncguard_backend.h"

#define FST_ID_MAX 1500     /* Firestore document id limit (bytes) */
#define FST_ENCODED_MIN 513 /* "sg~" ids are padded to at least this */

/* A lock or counter document as read. */
typedef struct fst_doc {
    bool exists;
    char update_time[64];   /* verbatim, for preconditions */
    /* lock fields */
    char lock_id[SG_LOCK_ID_LEN + 1];
    int64_t expires_at_ms, acquired_at_ms;
    char key[SG_KEY_MAX + 1];
    char fence[SG_FENCE_LEN + 1];
    /* counter field */
    uint64_t counter;
} fst_doc;

/* Document id for a storage key: the key itself when it is a valid id, else
 * "sg~" + base64url(key) padded with '~' to >= 513 bytes (SyncGuard never
 * stores an id that long, so the two cannot collide). out: FST_ID_MAX*2 bytes. */
sg_status fst_doc_id(const char *storage_key, char *out, size_t size, sg_error *err);

/* RFC 3339 timestamp ("2026-11-26T11:51:25.610692Z") → ms since the epoch. */
bool fst_time_ms(const char *s, int64_t *ms);

/* Parse a lock document ({"name","fields","updateTime"}); SG_ERROR Internal
 * when a field is missing or of the wrong type. */
sg_status fst_parse_lock(const cJSON *doc, fst_doc *out, sg_error *err);
/* Parse a fence counter document (fence: 15-digit string). */
sg_status fst_parse_counter(const cJSON *doc, fst_doc *out, sg_error *err);

/* Map a failed HTTP response to an error. *status_out gets the response's
 * error.status (static storage in the body is not kept: a copy, ≤ 40 chars)
 * or "" when the body is not a Firestore error. Returns SG_ERROR. */
sg_status fst_map_error(long http_code, const char *body, char status_out[48], sg_error *err);

/* An RS256-signed JWT for the OAuth token exchange. *out is malloc'd. */
sg_status fst_jwt(const char *client_email, const char *private_key_pem, const char *token_uri,
                  const char *scope, int64_t iat, char **out, sg_error *err);

/* Integer field helpers of the REST value encoding. */
bool fst_get_int(const cJSON *fields, const char *name, int64_t *out);
const char *fst_get_str(const cJSON *fields, const char *name);

#endif
