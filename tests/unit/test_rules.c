/* test_rules.c — key/lockId/fence/TTL/time/keyHash rules against the
 * reference vectors of the TypeScript SyncGuard (shared/REFERENCE_VECTORS.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncguard_backend.h"

static char *repeat(const char *unit, int n)
{
    size_t u = strlen(unit);
    char *s = malloc(u * (size_t)n + 1);
    for (int i = 0; i < n; i++)
        memcpy(s + u * (size_t)i, unit, u);
    s[u * (size_t)n] = '\0';
    return s;
}

static void expect_storage_key(const char *prefix, const char *key, size_t limit,
                               size_t reserve, const char *want)
{
    char out[2048];
    sg_error err;
    sg_error_clear(&err);
    assert_int_equal(sg_storage_key(prefix, key, limit, reserve, out, sizeof out, &err), SG_OK);
    assert_string_equal(out, want);
}

static void storage_key_matches_reference_vectors(void **state)
{
    (void)state;
    expect_storage_key("syncguard", "payment:123", 1000, 26, "syncguard:payment:123");
    expect_storage_key("syncguard:", "payment:123", 1000, 26, "syncguard:payment:123");
    expect_storage_key("", "resource:123", 1700, 0, "resource:123");
    char *a964 = repeat("a", 964), *a965 = repeat("a", 965);
    char *want = malloc(2000);
    snprintf(want, 2000, "syncguard:%s", a964);
    expect_storage_key("syncguard", a964, 1000, 26, want);
    expect_storage_key("syncguard", a965, 1000, 26, "syncguard:Eckx1fUpVnoN6uJkudULjg");
    char *e600 = repeat("\xc3\xa9", 600);
    expect_storage_key("syncguard", e600, 1000, 26, "syncguard:b4myzwfdiWf3VryCTAwTuA");
    char *x1701 = repeat("x", 1701), *x1500 = repeat("x", 1500), *x1501 = repeat("x", 1501);
    expect_storage_key("", x1701, 1700, 0, "bfWkEf_eL9ZYrB28wnAnnA");
    expect_storage_key("", x1500, 1500, 0, x1500);
    expect_storage_key("", x1501, 1500, 0, "d15TB9CEVFlvtf3GTf8Aqg");
    expect_storage_key("syncguard", "e\xcc\x81", 1000, 26, "syncguard:\xc3\xa9");
    free(a964), free(a965), free(want), free(e600), free(x1701), free(x1500), free(x1501);
}

static void storage_key_rejects_prefix_too_long(void **state)
{
    (void)state;
    char *p990 = repeat("p", 990);
    char out[2048];
    sg_error err;
    assert_int_equal(sg_storage_key(p990, "k", 1000, 26, out, sizeof out, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "prefix"));
    free(p990);
}

static void derived_redis_keys_match(void **state)
{
    (void)state;
    char base[2048], fence[2048], idx[2048];
    assert_int_equal(sg_storage_key("syncguard", "payment:123", 1000, 26, base, sizeof base, NULL),
                     SG_OK);
    assert_int_equal(sg_fence_key("syncguard", base, 1000, 26, fence, sizeof fence, NULL), SG_OK);
    assert_string_equal(fence, "syncguard:fence:syncguard:payment:123");
    assert_int_equal(sg_storage_key("syncguard", "id:AAAAAAAAAAAAAAAAAAAAAA", 1000, 26, idx,
                                    sizeof idx, NULL),
                     SG_OK);
    assert_string_equal(idx, "syncguard:id:AAAAAAAAAAAAAAAAAAAAAA");
}

static void expect_key(const char *key, size_t len, bool ok, const char *want)
{
    char out[SG_KEY_MAX + 1];
    size_t n = 0;
    sg_error err;
    sg_error_clear(&err);
    sg_status st = sg_key_normalize(key, len, out, &n, &err);
    if (ok) {
        assert_int_equal(st, SG_OK);
        if (want) {
            assert_string_equal(out, want);
            assert_int_equal(n, strlen(want));
        }
    } else {
        assert_int_equal(st, SG_ERROR);
        assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
        assert_true(strlen(err.message) > 0);
        /* only a length limit reads as ENAMETOOLONG */
        assert_int_equal(sg_error_errno(&err), len > SG_KEY_MAX ? ENAMETOOLONG : EINVAL);
    }
}

static void key_validation_boundaries(void **state)
{
    (void)state;
    char *a511 = repeat("a", 511), *a512 = repeat("a", 512), *a513 = repeat("a", 513);
    char *e256 = repeat("\xc3\xa9", 256), *e257 = repeat("\xc3\xa9", 257);
    char *d256 = repeat("e\xcc\x81", 256);
    expect_key(a511, 511, true, a511);
    expect_key(a512, 512, true, a512);
    expect_key(a513, 513, false, NULL);
    expect_key(e256, strlen(e256), true, e256);
    expect_key(e257, strlen(e257), false, NULL);
    expect_key(d256, strlen(d256), true, e256); /* 768 bytes in, 512 after NFC */
    expect_key("\xef\xac\x81", 3, true, "\xef\xac\x81");  /* U+FB01 stays */
    expect_key("\xe2\x84\xab", 3, true, "\xc3\x85");      /* U+212B → U+00C5 */
    expect_key("", 0, false, NULL);
    expect_key("a\0b", 3, false, NULL);                   /* embedded NUL */
    expect_key("\xff\xfe", 2, false, NULL);               /* invalid UTF-8 */
    expect_key("\xc3", 1, false, NULL);                   /* truncated sequence */
    expect_key("\xed\xa0\x80", 3, false, NULL);           /* UTF-16 surrogate */
    expect_key("\xc0\xaf", 2, false, NULL);               /* overlong '/' */
    char *huge = repeat("a", 100000);
    expect_key(huge, 100000, false, NULL);
    free(a511), free(a512), free(a513), free(e256), free(e257), free(d256), free(huge);
}

static void lock_id_format_and_uniqueness_over_100k(void **state)
{
    (void)state;
    enum { N = 100000 };
    char (*ids)[SG_LOCK_ID_LEN + 1] = malloc(sizeof *ids * N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(sg_lock_id_generate(ids[i], NULL), SG_OK);
        assert_true(sg_lock_id_valid(ids[i]));
        assert_int_equal(strlen(ids[i]), 22);
    }
    qsort(ids, N, sizeof *ids, (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < N; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) != 0);
    free(ids);
}

/* lockIds come from a per-thread buffer of random bytes: a forked child
 * must not take the ones its parent takes next (the buffer is copied by
 * fork), nor may two threads share any. */
static void *three_ids(void *arg)
{
    char (*ids)[SG_LOCK_ID_LEN + 1] = arg;
    for (int i = 0; i < 3; i++)
        assert_int_equal(sg_lock_id_generate(ids[i], NULL), SG_OK);
    return NULL;
}

static void lock_ids_differ_across_fork_and_threads(void **state)
{
    (void)state;
    char first[SG_LOCK_ID_LEN + 1], parent[3][SG_LOCK_ID_LEN + 1];
    char child[3][SG_LOCK_ID_LEN + 1], thread[3][SG_LOCK_ID_LEN + 1];
    assert_int_equal(sg_lock_id_generate(first, NULL), SG_OK); /* fills the buffer */
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char ids[3][SG_LOCK_ID_LEN + 1];
        for (int i = 0; i < 3; i++)
            if (sg_lock_id_generate(ids[i], NULL) != SG_OK)
                _exit(1);
        _exit(write(fd[1], ids, sizeof ids) == (ssize_t)sizeof ids ? 0 : 1);
    }
    three_ids(parent);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, three_ids, thread), 0);
    pthread_join(t, NULL);
    assert_int_equal(read(fd[0], child, sizeof child), (ssize_t)sizeof child);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fd[0]);
    close(fd[1]);
    for (int i = 0; i < 3; i++) {
        assert_true(sg_lock_id_valid(child[i]));
        for (int j = 0; j < 3; j++) {
            assert_string_not_equal(child[i], parent[j]);
            assert_string_not_equal(thread[i], parent[j]);
            assert_string_not_equal(thread[i], child[j]);
        }
        assert_string_not_equal(child[i], first);
    }
}

static void lock_id_validation(void **state)
{
    (void)state;
    assert_true(sg_lock_id_valid("AAAAAAAAAAAAAAAAAAAAAA"));
    assert_true(sg_lock_id_valid("abc-_0123456789XYZabcd"));
    assert_false(sg_lock_id_valid("AAAAAAAAAAAAAAAAAAAAA"));    /* 21 */
    assert_false(sg_lock_id_valid("AAAAAAAAAAAAAAAAAAAAAAA"));  /* 23 */
    assert_false(sg_lock_id_valid("AAAAAAAAAAAAAAAAAAAAA="));
    assert_false(sg_lock_id_valid("AAAAAAAAAAAAAAAAAAAA+/"));
    assert_false(sg_lock_id_valid(""));
    assert_false(sg_lock_id_valid(NULL));
}

static void fence_format_parse_and_thresholds(void **state)
{
    (void)state;
    char f[SG_FENCE_LEN + 1];
    sg_fence_format(1, f);
    assert_string_equal(f, "000000000000001");
    sg_fence_format(42, f);
    assert_string_equal(f, "000000000000042");
    sg_fence_format(999999999999999ULL, f);
    assert_string_equal(f, "999999999999999");
    uint64_t v;
    assert_int_equal(sg_fence_parse("000000000000042", &v, NULL), SG_OK);
    assert_int_equal(v, 42);
    sg_error err;
    assert_int_equal(sg_fence_parse("42", &v, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INTERNAL);
    assert_int_equal(sg_fence_parse("0000000000000420", &v, NULL), SG_ERROR);
    assert_int_equal(sg_fence_parse("00000000000004x", &v, NULL), SG_ERROR);
    assert_int_equal(sg_fence_parse("", &v, NULL), SG_ERROR);
    assert_int_equal(sg_fence_check(SG_FENCE_MAX, "k", NULL), SG_OK);
    assert_int_equal(sg_fence_check(SG_FENCE_MAX + 1, "k", &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INTERNAL);
    assert_int_equal(sg_fence_check(1, "k", NULL), SG_OK);
}

static int warnings;
static void count_warnings(sg_log_level level, const char *msg, void *ud)
{
    (void)msg, (void)ud;
    if (level == SG_LOG_WARN)
        warnings++;
}

static void fence_above_warn_threshold_logs_warning(void **state)
{
    (void)state;
    sg_log_set(count_warnings, NULL);
    warnings = 0;
    assert_int_equal(sg_fence_check(SG_FENCE_WARN, "k", NULL), SG_OK);
    assert_int_equal(warnings, 0);
    assert_int_equal(sg_fence_check(SG_FENCE_WARN + 1, "k", NULL), SG_OK);
    assert_int_equal(warnings, 1);
    sg_log_set(NULL, NULL);
}

static void ttl_bounds(void **state)
{
    (void)state;
    sg_error err;
    assert_int_equal(sg_ttl_check(1, NULL), SG_OK);
    assert_int_equal(sg_ttl_check(SG_TTL_MAX_MS, NULL), SG_OK);
    assert_int_equal(sg_ttl_check(0, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_ttl_check(-5, NULL), SG_ERROR);
    assert_int_equal(sg_ttl_check(SG_TTL_MAX_MS + 1, NULL), SG_ERROR);
}

static void liveness_predicate_has_one_second_tolerance(void **state)
{
    (void)state;
    assert_true(sg_is_live(10000, 10000));
    assert_true(sg_is_live(10000, 10999));
    assert_false(sg_is_live(10000, 11000));
    assert_false(sg_is_live(10000, 20000));
}

static void key_hash_matches_reference(void **state)
{
    (void)state;
    char h[SG_HASH_LEN + 1];
    sg_key_hash("payment:123", h);
    assert_string_equal(h, "a422dabee27fcc7ad506f372");
    sg_key_hash("r\xc3\xa9sum\xc3\xa9", h);
    assert_string_equal(h, "cf91e7354935addf3460f6b3");
    sg_key_hash("\xc3\xa9", h);
    assert_string_equal(h, "000000e9000002bb0000065f");
    sg_key_hash("\xf0\x9f\x94\x92lock", h);
    assert_string_equal(h, "2a588f202fd059a0c7ff1220");
    char *a100 = repeat("a", 100);
    sg_key_hash(a100, h);
    assert_string_equal(h, "ecb596402f3eeb0074a4f000");
    free(a100);
}

static void errors_have_names_errnos_and_formatting(void **state)
{
    (void)state;
    assert_string_equal(sg_code_name(SG_E_ACQUISITION_TIMEOUT), "AcquisitionTimeout");
    assert_string_equal(sg_code_name(SG_E_SERVICE_UNAVAILABLE), "ServiceUnavailable");
    assert_string_equal(sg_code_name(SG_E_AUTH_FAILED), "AuthFailed");
    assert_string_equal(sg_code_name(SG_E_INVALID_ARGUMENT), "InvalidArgument");
    assert_string_equal(sg_code_name(SG_E_RATE_LIMITED), "RateLimited");
    assert_string_equal(sg_code_name(SG_E_NETWORK_TIMEOUT), "NetworkTimeout");
    assert_string_equal(sg_code_name(SG_E_ABORTED), "Aborted");
    assert_string_equal(sg_code_name(SG_E_INTERNAL), "Internal");
    assert_string_equal(sg_code_name((sg_code)99), "Unknown");
    assert_int_equal(sg_code_errno(SG_E_ACQUISITION_TIMEOUT), EWOULDBLOCK);
    assert_int_equal(sg_code_errno(SG_E_SERVICE_UNAVAILABLE), EIO);
    assert_int_equal(sg_code_errno(SG_E_NETWORK_TIMEOUT), ETIMEDOUT);
    assert_int_equal(sg_code_errno(SG_E_AUTH_FAILED), EACCES);
    assert_int_equal(sg_code_errno(SG_E_INVALID_ARGUMENT), EINVAL);
    assert_int_equal(sg_code_errno(SG_E_RATE_LIMITED), EAGAIN);
    assert_int_equal(sg_code_errno(SG_E_ABORTED), EINTR);
    assert_int_equal(sg_code_errno(SG_E_INTERNAL), EIO);
    sg_error err;
    sg_error_clear(&err);
    sg_error_set(&err, SG_E_INVALID_ARGUMENT, "bad %s", "thing");
    snprintf(err.key, sizeof err.key, "job");
    char buf[512];
    assert_string_equal(sg_error_format(&err, buf, sizeof buf),
                        "InvalidArgument: bad thing (key=job)");
    assert_int_equal(sg_error_set(NULL, SG_E_INTERNAL, "x"), SG_ERROR);
}

static void base64url_has_no_padding_or_unsafe_chars(void **state)
{
    (void)state;
    char out[64];
    const unsigned char in[] = {0xfb, 0xff, 0xbf};
    sg_base64url(in, 3, out);
    assert_string_equal(out, "-_-_");
    sg_base64url((const unsigned char *)"a", 1, out);
    assert_string_equal(out, "YQ");
}

static void durations_take_units_and_reject_the_rest(void **state)
{
    (void)state;
    static const struct { const char *in; int64_t ms; } ok[] = {
        {"0", 0}, {"1500", 1500}, {"1500ms", 1500}, {"30s", 30000}, {"10m", 600000},
        {"2h", 7200000}, {" \t45s\n", 45000}, {"2147483647", 2147483647},
        {"2147483647ms", 2147483647}, {"596h", 2145600000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        assert_int_equal(sg_duration_parse(ok[i].in, strlen(ok[i].in), &v, NULL), SG_OK);
        assert_int_equal(v, ok[i].ms);
    }
    static const char *const bad[] = {"", " ", "s", "-5", "+5", "5 s", "5S", "5sec", "1.5s",
                                      "0x10", "5d", "2147483648", "597h", "99999999999999999999",
                                      "5ms ms", "5\0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = -1;
        sg_error e;
        size_t n = strlen(bad[i]) + (i == sizeof bad / sizeof bad[0] - 1);
        assert_int_equal(sg_duration_parse(bad[i], n, &v, &e), SG_ERROR);
        assert_int_equal(e.code, SG_E_INVALID_ARGUMENT);
        assert_int_equal(v, -1);
    }
    /* not NUL-terminated: only len bytes count */
    int64_t v = 0;
    assert_int_equal(sg_duration_parse("30sXYZ", 3, &v, NULL), SG_OK);
    assert_int_equal(v, 30000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(storage_key_matches_reference_vectors),
        cmocka_unit_test(storage_key_rejects_prefix_too_long),
        cmocka_unit_test(derived_redis_keys_match),
        cmocka_unit_test(key_validation_boundaries),
        cmocka_unit_test(lock_id_format_and_uniqueness_over_100k),
        cmocka_unit_test(lock_id_validation),
        cmocka_unit_test(fence_format_parse_and_thresholds),
        cmocka_unit_test(fence_above_warn_threshold_logs_warning),
        cmocka_unit_test(ttl_bounds),
        cmocka_unit_test(liveness_predicate_has_one_second_tolerance),
        cmocka_unit_test(key_hash_matches_reference),
        cmocka_unit_test(errors_have_names_errnos_and_formatting),
        cmocka_unit_test(lock_ids_differ_across_fork_and_threads),
        cmocka_unit_test(base64url_has_no_padding_or_unsafe_chars),
        cmocka_unit_test(durations_take_units_and_reject_the_rest),
    };
    return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
