/* test_cli_args.c — the parsers of syncguard(1) with hostile input: TTLs,
 * wait limits, exit codes, signals, lockIds read from stdin, argv scrubbing
 * (through sg_url_redact), key text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

#define ID "AAAAAAAAAAAAAAAAAAAAAA"

static void ttl_needs_a_unit_grammar_and_one_second(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(cli_ttl_parse("30s", &v, NULL), SG_OK);
    assert_int_equal(v, 30000);
    assert_int_equal(cli_ttl_parse("1500ms", &v, NULL), SG_OK);
    assert_int_equal(v, 1500);
    assert_int_equal(cli_ttl_parse("1000", &v, NULL), SG_OK);
    assert_int_equal(cli_ttl_parse("2h", &v, NULL), SG_OK);
    assert_int_equal(v, 7200000);
    const char *bad[] = {"", " ", "999", "0", "500ms", "-5s", "10x", "s", "1.5s", "2147483648",
                         "999999999999999999999", "25d", "10 s x", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(cli_ttl_parse(bad[i], &v, NULL), SG_ERROR);
    assert_int_equal(cli_ttl_parse(NULL, &v, NULL), SG_ERROR);
}

static void wait_takes_plain_decimal_seconds(void **state)
{
    (void)state;
    int64_t v = -1;
    assert_true(cli_wait_parse("1", &v));
    assert_int_equal(v, 1000);
    assert_true(cli_wait_parse("0.5", &v));
    assert_int_equal(v, 500);
    assert_true(cli_wait_parse("0", &v));
    assert_int_equal(v, 0);
    assert_true(cli_wait_parse("2147483.647", &v));
    const char *bad[] = {"", ".", "-1", "+1", "1e3", "inf", "nan", "0x10", "1..2", "1.2.3",
                         "1 ", " 1", "10s", "2147484", "99999999999999999999999999999999999", NULL};
    for (int i = 0; bad[i]; i++)
        assert_false(cli_wait_parse(bad[i], &v));
    assert_false(cli_wait_parse(NULL, &v));
}

static void exit_codes_and_signals(void **state)
{
    (void)state;
    int c = -1;
    assert_true(cli_exit_code_parse("9", &c));
    assert_int_equal(c, 9);
    assert_true(cli_exit_code_parse("255", &c));
    assert_false(cli_exit_code_parse("256", &c));
    assert_false(cli_exit_code_parse("-1", &c));
    assert_false(cli_exit_code_parse("", &c));
    assert_false(cli_exit_code_parse("1a", &c));
    assert_false(cli_exit_code_parse("0009", &c));
    assert_int_equal(cli_signal_parse("TERM"), SIGTERM);
    assert_int_equal(cli_signal_parse("SIGKILL"), SIGKILL);
    assert_int_equal(cli_signal_parse("usr1"), SIGUSR1);
    assert_int_equal(cli_signal_parse("15"), 15);
    assert_int_equal(cli_signal_parse("0"), -1);
    assert_int_equal(cli_signal_parse("65"), -1);
    assert_int_equal(cli_signal_parse("SIG"), -1);
    assert_int_equal(cli_signal_parse(""), -1);
    assert_int_equal(cli_signal_parse("TERMX"), -1);
    assert_int_equal(cli_signal_parse("99999999999"), -1);
    assert_int_equal(cli_signal_parse(NULL), -1);
}

static bool id_of(const char *text)
{
    char out[SG_LOCK_ID_LEN + 1] = "";
    bool ok = cli_lock_id_from_text(text, strlen(text), out);
    if (ok)
        assert_string_equal(out, ID);
    return ok;
}

static void lock_ids_from_stdin_in_three_shapes(void **state)
{
    (void)state;
    assert_true(id_of(ID));
    assert_true(id_of("  " ID "\n"));
    assert_true(id_of("key=k\nfence=000000000000001\nlockId=" ID "\nexpiresAtMs=1\n"));
    assert_true(id_of("lockId=" ID "\r\n"));
    assert_true(id_of("{\"key\":\"k\",\"lockId\":\"" ID "\"}\n"));
    const char *bad[] = {
        "", "\n\n", ID "A", "AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA=", /* 21, '=' */
        "lockId=" ID "\nlockId=" ID "\n",                 /* two */
        "lockId=short\n", "lockId=" ID "x\n", "key=k\n", /* malformed, none */
        "{\"lockId\": 5}", "{\"lockId\": \"bad\"}", "{\"lockId\": \"" ID "\"", "[\"" ID "\"]",
        "{}", "{\"lockid\":\"" ID "\"}", "\xff\xfe", NULL};
    for (int i = 0; bad[i]; i++)
        assert_false(id_of(bad[i]));
    char nul[] = "AAAAAAAAAAA\0AAAAAAAAAA";
    char out[SG_LOCK_ID_LEN + 1];
    assert_false(cli_lock_id_from_text(nul, sizeof nul - 1, out));
    assert_false(cli_lock_id_from_text(NULL, 0, out));
    size_t big = 1 << 20;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, 'A', big);
    assert_false(cli_lock_id_from_text(huge, big, out));
    free(huge);
}

/* Scrub in a buffer the size of the argument: nothing may survive past it. */
static void scrub(const char *in, const char *want, const char *secret)
{
    size_t n = strlen(in);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    memcpy(buf, in, n + 1);
    cli_scrub_url_arg(buf);
    assert_string_equal(buf, want);
    if (secret) /* not in the whole argv string, NULs included */
        for (size_t i = 0; i + strlen(secret) <= n; i++)
            assert_true(memcmp(buf + i, secret, strlen(secret)) != 0);
    free(buf);
}

static void passwords_never_survive_argv_scrubbing(void **state)
{
    (void)state;
    scrub("redis://:secret@h:6379/0", "redis://h:6379/0", "secret");
    scrub("postgres://user:pw-xyz@db/app?sslmode=require", "postgres://user@db/app?sslmode=require",
          "pw-xyz");
    scrub("redis://:se/cr@et@h", "redis://h", "cr@et");         /* unencoded '/' and '@' */
    scrub("redis://h:6379/0", "redis://h:6379/0", NULL);
    scrub("postgres://u@db/app", "postgres://u@db/app", NULL);
    scrub("", "", NULL);
    cli_scrub_url_arg(NULL);
}

static void key_text_is_one_line(void **state)
{
    (void)state;
    char out[CLI_KEY_TEXT_MAX];
    cli_key_text("payment:123", out);
    assert_string_equal(out, "payment:123");
    cli_key_text("a/b%c\nd\x7f", out);
    assert_string_equal(out, "a%2Fb%25c%0Ad%7F");
    cli_key_text("..", out);
    assert_string_equal(out, "%2E%2E");
    char key[SG_KEY_MAX + 1];
    memset(key, '\n', SG_KEY_MAX);
    key[SG_KEY_MAX] = '\0';
    cli_key_text(key, out); /* the worst case fits */
    assert_int_equal(strlen(out), 3 * SG_KEY_MAX);
    assert_null(strchr(out, '\n'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ttl_needs_a_unit_grammar_and_one_second),
        cmocka_unit_test(wait_takes_plain_decimal_seconds),
        cmocka_unit_test(exit_codes_and_signals),
        cmocka_unit_test(lock_ids_from_stdin_in_three_shapes),
        cmocka_unit_test(passwords_never_survive_argv_scrubbing),
        cmocka_unit_test(key_text_is_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
