/* test_firestore_codec.c — the Firestore backend's pure parts, no server:
 * document ids, timestamps, the REST value codec, hostile replies, error
 * mapping, and the RS256 JWT verified with the public key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firestore.h"

static void document_ids(void **state)
{
    (void)state;
    char id[FST_ID_MAX + 1];
    assert_int_equal(fst_doc_id("payment:123", id, sizeof id, NULL), SG_OK);
    assert_string_equal(id, "payment:123");
    assert_int_equal(fst_doc_id("_x_", id, sizeof id, NULL), SG_OK);
    assert_string_equal(id, "_x_");
    const char *invalid[] = {"a/b", ".", "..", "__x__", "____", "/"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        assert_int_equal(fst_doc_id(invalid[i], id, sizeof id, NULL), SG_OK);
        assert_memory_equal(id, "sg~", 3);
        assert_true(strlen(id) >= FST_ENCODED_MIN);
        assert_null(strchr(id, '/'));
    }
    assert_int_equal(fst_doc_id("a/b", id, sizeof id, NULL), SG_OK);
    assert_memory_equal(id, "sg~YS9i~~~", 10);
    char other[FST_ID_MAX + 1];
    assert_int_equal(fst_doc_id("a/c", other, sizeof other, NULL), SG_OK);
    assert_string_not_equal(id, other);
    /* a 512-byte key with a slash still fits */
    char key[600];
    memset(key, '/', 512);
    key[512] = 0;
    assert_int_equal(fst_doc_id(key, id, sizeof id, NULL), SG_OK);
    assert_int_equal(strlen(id), 3 + 683); /* base64url of 512 bytes, unpadded */
    char small[10];
    sg_error err;
    assert_int_equal(fst_doc_id("a/b", small, sizeof small, &err), SG_ERROR);
}

static void timestamps(void **state)
{
    (void)state;
    int64_t ms;
    assert_true(fst_time_ms("2026-11-26T11:51:25.610692Z", &ms));
    assert_int_equal(ms, 1795693885610);
    assert_true(fst_time_ms("1970-01-01T00:00:01Z", &ms));
    assert_int_equal(ms, 1000);
    assert_true(fst_time_ms("1970-01-01T00:00:00.5Z", &ms));
    assert_int_equal(ms, 500);
    assert_false(fst_time_ms("2026-11-26T11:51:25.Z", &ms));
    assert_false(fst_time_ms("2026-11-26 11:51:25Z", &ms));
    assert_false(fst_time_ms("2026-11-26T11:51:25+01:00", &ms));
    assert_false(fst_time_ms("", &ms));
    assert_false(fst_time_ms(NULL, &ms));
}

static cJSON *doc(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    return j;
}

#define GOOD_FIELDS                                                                         \
    "\"lockId\":{\"stringValue\":\"AAAAAAAAAAAAAAAAAAAAAA\"},"                               \
    "\"expiresAtMs\":{\"integerValue\":\"1795693885610\"},"                                 \
    "\"acquiredAtMs\":{\"integerValue\":\"1795693855610\"},"                                \
    "\"key\":{\"stringValue\":\"job\"},\"fence\":{\"stringValue\":\"000000000000042\"}"

static void lock_documents_parse(void **state)
{
    (void)state;
    cJSON *j = doc("{\"name\":\"n\",\"updateTime\":\"2026-11-26T11:51:25.610692Z\",\"fields\":{"
                   GOOD_FIELDS "}}");
    fst_doc d;
    memset(&d, 0, sizeof d);
    assert_int_equal(fst_parse_lock(j, &d, NULL), SG_OK);
    assert_true(d.exists);
    assert_string_equal(d.lock_id, "AAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(d.expires_at_ms, 1795693885610);
    assert_string_equal(d.fence, "000000000000042");
    assert_string_equal(d.update_time, "2026-11-26T11:51:25.610692Z");
    cJSON_Delete(j);
    /* a double-encoded number (as JS clients may write) is accepted */
    j = doc("{\"updateTime\":\"t\",\"fields\":{\"lockId\":{\"stringValue\":\"AAAAAAAAAAAAAAAAAAAAAA\"},"
            "\"expiresAtMs\":{\"doubleValue\":1795693885610},\"acquiredAtMs\":{\"integerValue\":\"1\"},"
            "\"key\":{\"stringValue\":\"k\"},\"fence\":{\"stringValue\":\"000000000000001\"}}}");
    assert_int_equal(fst_parse_lock(j, &d, NULL), SG_OK);
    assert_int_equal(d.expires_at_ms, 1795693885610);
    cJSON_Delete(j);
}

static void hostile_documents_are_internal_errors(void **state)
{
    (void)state;
    const char *bad[] = {
        "{}",
        "[]",
        "{\"updateTime\":5,\"fields\":{" GOOD_FIELDS "}}",
        "{\"updateTime\":\"t\"}",
        "{\"updateTime\":\"t\",\"fields\":[]}",
        "{\"updateTime\":\"t\",\"fields\":{\"lockId\":{\"stringValue\":\"short\"}}}",
        "{\"updateTime\":\"t\",\"fields\":{\"lockId\":{\"integerValue\":\"5\"}}}",
        "{\"updateTime\":\"t\",\"fields\":{\"lockId\":{\"stringValue\":\"AAAAAAAAAAAAAAAAAAAAAA\"},"
        "\"expiresAtMs\":{\"stringValue\":\"soon\"},\"acquiredAtMs\":{\"integerValue\":\"1\"},"
        "\"key\":{\"stringValue\":\"k\"},\"fence\":{\"stringValue\":\"000000000000001\"}}}",
        "{\"updateTime\":\"t\",\"fields\":{\"lockId\":{\"stringValue\":\"AAAAAAAAAAAAAAAAAAAAAA\"},"
        "\"expiresAtMs\":{\"integerValue\":\"12x\"},\"acquiredAtMs\":{\"integerValue\":\"1\"},"
        "\"key\":{\"stringValue\":\"k\"},\"fence\":{\"stringValue\":\"000000000000001\"}}}",
        "{\"updateTime\":\"t\",\"fields\":{\"lockId\":{\"stringValue\":\"AAAAAAAAAAAAAAAAAAAAAA\"},"
        "\"expiresAtMs\":{\"integerValue\":\"1\"},\"acquiredAtMs\":{\"integerValue\":\"1\"},"
        "\"key\":{\"stringValue\":\"k\"},\"fence\":{\"integerValue\":\"1\"}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *j = cJSON_Parse(bad[i]);
        fst_doc d;
        memset(&d, 0, sizeof d);
        sg_error err;
        sg_error_clear(&err);
        assert_int_equal(fst_parse_lock(j, &d, &err), SG_ERROR);
        assert_int_equal(err.code, SG_E_INTERNAL);
        cJSON_Delete(j);
    }
    /* a counter whose fence was reset to a number by a server transform */
    cJSON *j = doc("{\"updateTime\":\"t\",\"fields\":{\"fence\":{\"integerValue\":\"1\"}}}");
    fst_doc d;
    assert_int_equal(fst_parse_counter(j, &d, NULL), SG_ERROR);
    cJSON_Delete(j);
    j = doc("{\"updateTime\":\"t\",\"fields\":{\"fence\":{\"stringValue\":\"000000000000007\"}}}");
    assert_int_equal(fst_parse_counter(j, &d, NULL), SG_OK);
    assert_int_equal(d.counter, 7);
    cJSON_Delete(j);
}

static void expect_map(long http, const char *body, sg_code code, const char *status)
{
    char st[48];
    sg_error err;
    sg_error_clear(&err);
    assert_int_equal(fst_map_error(http, body, st, &err), SG_ERROR);
    if (err.code != code)
        fail_msg("HTTP %ld %s: got %s", http, body ? body : "(null)", sg_code_name(err.code));
    assert_string_equal(st, status);
}

static void errors_map_by_status_not_http_code(void **state)
{
    (void)state;
    expect_map(400, "{\"error\":{\"code\":400,\"status\":\"FAILED_PRECONDITION\"}}",
               SG_E_INTERNAL, "FAILED_PRECONDITION");
    expect_map(400, "{\"error\":{\"status\":\"INVALID_ARGUMENT\",\"message\":\"x\"}}",
               SG_E_INVALID_ARGUMENT, "INVALID_ARGUMENT");
    expect_map(409, "{\"error\":{\"status\":\"ALREADY_EXISTS\"}}", SG_E_INTERNAL,
               "ALREADY_EXISTS");
    expect_map(409, "{\"error\":{\"status\":\"ABORTED\"}}", SG_E_SERVICE_UNAVAILABLE, "ABORTED");
    expect_map(401, "{\"error\":{\"status\":\"UNAUTHENTICATED\"}}", SG_E_AUTH_FAILED,
               "UNAUTHENTICATED");
    expect_map(403, "{\"error\":{\"status\":\"PERMISSION_DENIED\"}}", SG_E_AUTH_FAILED,
               "PERMISSION_DENIED");
    expect_map(429, "{\"error\":{\"status\":\"RESOURCE_EXHAUSTED\"}}", SG_E_RATE_LIMITED,
               "RESOURCE_EXHAUSTED");
    expect_map(503, "{\"error\":{\"status\":\"UNAVAILABLE\"}}", SG_E_SERVICE_UNAVAILABLE,
               "UNAVAILABLE");
    expect_map(504, "{\"error\":{\"status\":\"DEADLINE_EXCEEDED\"}}", SG_E_NETWORK_TIMEOUT,
               "DEADLINE_EXCEEDED");
    expect_map(200, "[{\"error\":{\"status\":\"NOT_FOUND\"}}]", SG_E_INTERNAL, "NOT_FOUND");
    /* not Firestore's error bodies: HTML pages, garbage, truncation, nothing */
    expect_map(502, "<html><body>Bad gateway</body></html>", SG_E_SERVICE_UNAVAILABLE, "");
    expect_map(403, "<html>denied</html>", SG_E_AUTH_FAILED, "");
    expect_map(429, "", SG_E_RATE_LIMITED, "");
    expect_map(404, "{\"error\":{\"status\":", SG_E_INTERNAL, "");
    expect_map(500, NULL, SG_E_SERVICE_UNAVAILABLE, "");
    expect_map(418, "{\"error\":{\"status\":42}}", SG_E_INTERNAL, "");
}

static void value_helpers_check_types(void **state)
{
    (void)state;
    cJSON *f = doc("{\"a\":{\"integerValue\":\"-5\"},\"b\":{\"stringValue\":\"x\"},"
                   "\"c\":{\"integerValue\":\"\"},\"d\":{\"booleanValue\":true},\"e\":5}");
    int64_t v;
    assert_true(fst_get_int(f, "a", &v));
    assert_int_equal(v, -5);
    assert_false(fst_get_int(f, "b", &v));
    assert_false(fst_get_int(f, "c", &v));
    assert_false(fst_get_int(f, "d", &v));
    assert_false(fst_get_int(f, "e", &v));
    assert_false(fst_get_int(f, "missing", &v));
    assert_string_equal(fst_get_str(f, "b"), "x");
    assert_null(fst_get_str(f, "a"));
    assert_null(fst_get_str(NULL, "a"));
    cJSON_Delete(f);
}

static unsigned char *b64url_decode(const char *s, size_t *n)
{
    size_t len = strlen(s);
    char *std = malloc(len + 4);
    for (size_t i = 0; i < len; i++)
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (len % 4)
        std[len++] = '=';
    std[len] = 0;
    unsigned char *out = malloc(len);
    int r = EVP_DecodeBlock(out, (unsigned char *)std, (int)len);
    free(std);
    *n = (size_t)r - (s[strlen(s) - 1] == '=' ? 0 : (4 - strlen(s) % 4) % 4);
    return out;
}

static void jwt_is_rs256_signed_and_verifies(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_RSA_gen(2048);
    assert_non_null(key);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    char *pem;
    long n = BIO_get_mem_data(b, &pem);
    char *pem_s = strndup(pem, (size_t)n);
    char *jwt = NULL;
    assert_int_equal(fst_jwt("svc@p.iam.gserviceaccount.com", pem_s,
                             "https://oauth2.googleapis.com/token",
                             "https://www.googleapis.com/auth/datastore", 1700000000, &jwt, NULL),
                     SG_OK);
    char *dot1 = strchr(jwt, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    assert_non_null(dot2);
    size_t hl, cl, sl;
    char *h64 = strndup(jwt, (size_t)(dot1 - jwt));
    char *c64 = strndup(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    unsigned char *hdr = b64url_decode(h64, &hl);
    unsigned char *cla = b64url_decode(c64, &cl);
    unsigned char *sig = b64url_decode(dot2 + 1, &sl);
    assert_memory_equal(hdr, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", 27);
    cJSON *claims = cJSON_ParseWithLength((const char *)cla, cl);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(claims, "iss")),
                        "svc@p.iam.gserviceaccount.com");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(claims, "aud")),
                        "https://oauth2.googleapis.com/token");
    assert_int_equal((int64_t)cJSON_GetObjectItem(claims, "exp")->valuedouble, 1700003600);
    /* verify the signature over "header.claims" with the public key */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, sl, (unsigned char *)jwt, (size_t)(dot2 - jwt)),
                     1);
    /* a tampered token does not verify */
    jwt[5] ^= 1;
    EVP_MD_CTX_reset(md);
    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key);
    assert_int_not_equal(EVP_DigestVerify(md, sig, sl, (unsigned char *)jwt, (size_t)(dot2 - jwt)),
                         1);
    sg_error err;
    char *none = NULL;
    assert_int_equal(fst_jwt("e", "not a key", "a", "s", 1, &none, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    assert_null(none);
    EVP_MD_CTX_free(md);
    cJSON_Delete(claims);
    free(h64), free(c64), free(hdr), free(cla), free(sig), free(jwt), free(pem_s);
    BIO_free(b);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(document_ids),
        cmocka_unit_test(timestamps),
        cmocka_unit_test(lock_documents_parse),
        cmocka_unit_test(hostile_documents_are_internal_errors),
        cmocka_unit_test(errors_map_by_status_not_http_code),
        cmocka_unit_test(value_helpers_check_types),
        cmocka_unit_test(jwt_is_rs256_signed_and_verifies),
    };
    return cmocka_run_group_tests_name("firestore_codec", tests, NULL, NULL);
}
