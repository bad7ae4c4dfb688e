/* fuzz_parsers.c — libFuzzer target over every parser of outside input that
 * needs no server: file names, TTL writes, keys, lockIds, fences, Firestore
 * documents and error bodies. Run with scripts/fuzz. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "firestore.h"
#include "names.h"
#include "syncguard_backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    char key[SG_KEY_MAX + 1], name[SGFS_NAME_MAX + 1];
    if (sgfs_name_decode(s, key) == 0) {
        sgfs_name_encode(key, name);
        char back[SG_KEY_MAX + 1];
        if (sgfs_name_decode(name, back) != 0 || strcmp(back, key) != 0)
            abort(); /* every key round-trips through its file name */
    }
    int64_t ttl;
    if (sgfs_ttl_parse(s, size, &ttl) == 0 && (ttl < 1000 || ttl > SG_TTL_MAX_MS))
        abort();
    size_t n;
    sg_key_normalize(s, size, key, &n, NULL);
    char sk[4096];
    sg_storage_key("syncguard", s, 1000, 26, sk, sizeof sk, NULL);
    sg_lock_id_valid(s);
    uint64_t f;
    sg_fence_parse(s, &f, NULL);
    char hash[SG_HASH_LEN + 1];
    sg_key_hash(s, hash);
    char id[FST_ID_MAX + 1];
    fst_doc_id(s, id, sizeof id, NULL);
    int64_t ms;
    fst_time_ms(s, &ms);
    char status[48];
    fst_map_error(400, s, status, NULL);
    cJSON *j = cJSON_ParseWithLength(s, size);
    if (j) {
        fst_doc d;
        memset(&d, 0, sizeof d);
        fst_parse_lock(j, &d, NULL);
        fst_parse_counter(j, &d, NULL);
        cJSON_Delete(j);
    }
    char buf[4096];
    sgfs_format_lock(buf, sizeof buf, s, "000000000000001", 1, 2, 3, NULL, s);
    free(s);
    return 0;
}
