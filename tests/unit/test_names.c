/* test_names.c — syncguardfs file names, TTL writes and file text, with
 * hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

static void decode_ok(const char *name, const char *want)
{
    char key[SG_KEY_MAX + 1];
    assert_int_equal(sgfs_name_decode(name, key), 0);
    assert_string_equal(key, want);
}

static void decode_err(const char *name, int err)
{
    char key[SG_KEY_MAX + 1];
    assert_int_equal(sgfs_name_decode(name, key), -err);
}

static void names_decode_to_keys(void **state)
{
    (void)state;
    decode_ok("payment:123", "payment:123");
    decode_ok("a%2Fb", "a/b");
    decode_ok("100%25", "100%");
    decode_ok("%2E", ".");
    decode_ok("%2E%2E", "..");
    decode_ok("with space\ttab", "with space\ttab");
    decode_ok("e\xcc\x81", "\xc3\xa9"); /* NFC: two names, one lock */
    decode_ok("%25%2F", "%/");
}

static void bad_names_are_rejected(void **state)
{
    (void)state;
    decode_err("", EINVAL);
    decode_err("a%2fb", EINVAL); /* uppercase only */
    decode_err("a%2Eb", EINVAL); /* %2E only as a whole name */
    decode_err("%2E%2E%2E", EINVAL);
    decode_err("%", EINVAL);
    decode_err("%2", EINVAL);
    decode_err("%41", EINVAL);
    decode_err("\xff\xfe", EINVAL);
    decode_err("\xc3", EINVAL);
    char *long_key = malloc(600);
    memset(long_key, 'a', 513);
    long_key[513] = 0;
    decode_err(long_key, ENAMETOOLONG);
    long_key[512] = 0;
    decode_ok(long_key, long_key);
    free(long_key);
    char *huge = malloc(5000);
    memset(huge, 'x', 4999);
    huge[4999] = 0;
    decode_err(huge, ENAMETOOLONG);
    free(huge);
    /* 512 bytes of "%25" decode to 512 '%': fits; one more does not */
    char *pct = malloc(3 * 513 + 1);
    for (int i = 0; i < 512; i++)
        memcpy(pct + 3 * i, "%25", 3);
    pct[3 * 512] = 0;
    char key[SG_KEY_MAX + 1];
    assert_int_equal(sgfs_name_decode(pct, key), 0);
    assert_int_equal(strlen(key), 512);
    free(pct);
}

static void encode_round_trips(void **state)
{
    (void)state;
    const char *keys[] = {"plain", "a/b", "50%", ".", "..", "...", "x/../y", "%2F", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char name[SGFS_NAME_MAX + 1], back[SG_KEY_MAX + 1];
        sgfs_name_encode(keys[i], name);
        assert_null(strchr(name, '/'));
        assert_int_equal(sgfs_name_decode(name, back), 0);
        assert_string_equal(back, keys[i]);
    }
    char name[SGFS_NAME_MAX + 1];
    sgfs_name_encode("a/b%c", name);
    assert_string_equal(name, "a%2Fb%25c");
    char *slashes = malloc(513);
    memset(slashes, '/', 512);
    slashes[512] = 0;
    sgfs_name_encode(slashes, name);
    assert_int_equal(strlen(name), 1536);
    free(slashes);
}

static void ttl_ok(const char *s, int64_t want)
{
    int64_t v = 0;
    assert_int_equal(sgfs_ttl_parse(s, strlen(s), &v), 0);
    assert_int_equal(v, want);
}

static void ttl_err(const char *s, size_t len)
{
    int64_t v = 12345;
    assert_int_equal(sgfs_ttl_parse(s, len, &v), -EINVAL);
    assert_int_equal(v, 12345); /* untouched */
}

static void ttl_writes_parse_with_units(void **state)
{
    (void)state;
    ttl_ok("60s", 60000);
    ttl_ok("60s\n", 60000);
    ttl_ok("  5m  ", 300000);
    ttl_ok("2h", 7200000);
    ttl_ok("1500", 1500);
    ttl_ok("1500ms", 1500);
    ttl_ok("1s", 1000);
    ttl_ok("2147483647", 2147483647);
    ttl_ok("596h", 2145600000);
}

static void bad_ttl_writes_are_einval(void **state)
{
    (void)state;
    ttl_err("", 0);
    ttl_err("\n", 1);
    ttl_err("999", 3);        /* under 1 s */
    ttl_err("0s", 2);
    ttl_err("-5s", 3);
    ttl_err("+5s", 3);
    ttl_err("1.5s", 4);
    ttl_err("5 s", 3);
    ttl_err("5sec", 4);
    ttl_err("5S", 2);
    ttl_err("2147483648", 10);
    ttl_err("597h", 4);       /* over 2^31-1 ms */
    ttl_err("99999999999999999999999999s", 27);
    ttl_err("5s\0junk", 7);   /* embedded NUL */
    ttl_err("5s 6s", 5);
    ttl_err("abc", 3);
}

static void file_text_has_one_field_per_line(void **state)
{
    (void)state;
    char out[4096];
    size_t n = sgfs_format_lock(out, sizeof out, "a/b", "000000000000042", 1000, 31000, 1000,
                                "AAAAAAAAAAAAAAAAAAAAAA", NULL);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "key=a%2Fb\nfence=000000000000042\nacquiredAtMs=1000\n"
                             "expiresAtMs=31000\nttlMs=30000\nlockId=AAAAAAAAAAAAAAAAAAAAAA\n");
    sgfs_format_lock(out, sizeof out, "x\nfence=999999999999999", "000000000000001", 1, 2, 5,
                     NULL, "host:42");
    assert_string_equal(out, "key=x%0Afence=999999999999999\nfence=000000000000001\n"
                             "acquiredAtMs=1\nexpiresAtMs=2\nttlMs=0\nholder=host:42\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_decode_to_keys),
        cmocka_unit_test(bad_names_are_rejected),
        cmocka_unit_test(encode_round_trips),
        cmocka_unit_test(ttl_writes_parse_with_units),
        cmocka_unit_test(bad_ttl_writes_are_einval),
        cmocka_unit_test(file_text_has_one_field_per_line),
    };
    return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
