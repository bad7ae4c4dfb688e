/* test_url.c — the one URL parser (backends/url.c) and sg_url_redact, no
 * server: every scheme, users, passwords with '@' ':' '/' "%40", IPv6 hosts,
 * unix sockets, libpq multi-host and key=value strings, query parameters,
 * hostile input — and that no fragment of a secret survives redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

static sg_url parse_ok(const char *s)
{
    sg_url u;
    sg_error err;
    if (sg_url_parse(s, &u, &err) != SG_OK)
        fail_msg("'%s' did not parse: %s", s, err.message);
    return u;
}

static void parse_fails(const char *s)
{
    sg_url u;
    sg_error err;
    if (sg_url_parse(s, &u, &err) == SG_OK)
        fail_msg("'%s' parsed", s);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    sg_url_free(&u);
}

/* No 4-byte window of the secret appears in out. */
static void assert_no_fragment(const char *out, const char *secret)
{
    size_t n = strlen(secret);
    for (size_t i = 0; i + 4 <= n; i++) {
        char w[5];
        memcpy(w, secret + i, 4);
        w[4] = '\0';
        if (strstr(out, w))
            fail_msg("fragment '%s' of the secret survived in '%s'", w, out);
    }
}

/* form with its "%s" replaced by secret (no printf: forms are data). */
static void fill(char *out, size_t size, const char *form, const char *secret)
{
    const char *at = strstr(form, "%s");
    assert_non_null(at);
    int n = snprintf(out, size, "%.*s%s%s", (int)(at - form), form, secret, at + 2);
    assert_true(n > 0 && (size_t)n < size);
}

static void redacts_to(const char *url, const char *want)
{
    char *r = sg_url_redact(url);
    assert_non_null(r);
    assert_string_equal(r, want);
    free(r);
}

static void redis_forms(void **state)
{
    (void)state;
    sg_url u = parse_ok("redis://127.0.0.1:6380/2?prefix=app&command_timeout_ms=500");
    assert_int_equal(u.kind, SG_URL_REDIS);
    assert_null(u.user);
    assert_null(u.password);
    assert_int_equal(u.n_hosts, 1);
    assert_string_equal(u.hosts[0].name, "127.0.0.1");
    assert_int_equal(u.hosts[0].port, 6380);
    assert_string_equal(u.path, "2");
    assert_int_equal(u.n_params, 2);
    assert_string_equal(sg_url_get(&u, "prefix"), "app");
    assert_string_equal(sg_url_get(&u, "command_timeout_ms"), "500");
    assert_null(sg_url_get(&u, "db"));
    sg_url_free(&u);

    u = parse_ok("REDIS://alice:pw@cache.example");
    assert_int_equal(u.kind, SG_URL_REDIS);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.hosts[0].port, 0);
    assert_null(u.path);
    sg_url_free(&u);

    u = parse_ok("redis://:@host"); /* empty password */
    assert_null(u.user);
    assert_string_equal(u.password, "");
    sg_url_free(&u);

    u = parse_ok("redis://"); /* no host: the backend's default */
    assert_int_equal(u.n_hosts, 0);
    sg_url_free(&u);

    u = parse_ok("rediss://:pw@cache.example:6380/1?tls_ca=/etc/ca.pem");
    assert_int_equal(u.kind, SG_URL_REDISS);
    assert_string_equal(sg_url_kind_name(u.kind), "rediss");
    assert_int_equal(u.hosts[0].port, 6380);
    assert_string_equal(sg_url_get(&u, "tls_ca"), "/etc/ca.pem");
    sg_url_free(&u);
}

static void passwords_with_at_colon_slash_and_escapes(void **state)
{
    (void)state;
    /* the last '@' before the query ends the userinfo: the password keeps its '@' */
    sg_url u = parse_ok("redis://:p@ss@host:6379");
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.hosts[0].name, "host");
    sg_url_free(&u);
    redacts_to("redis://:p@ss@host:6379", "redis://host:6379");

    u = parse_ok("redis://u:a:b/c@host/3");
    assert_string_equal(u.user, "u");
    assert_string_equal(u.password, "a:b/c");
    assert_string_equal(u.path, "3");
    sg_url_free(&u);

    u = parse_ok("redis://us%3Aer:p%40ss%3F@host");
    assert_string_equal(u.user, "us:er");
    assert_string_equal(u.password, "p@ss?");
    sg_url_free(&u);

    parse_fails("redis://:p%zzss@host");
    parse_fails("redis://:p%00ss@host");
    parse_fails("redis://:p%4@host");
}

static void ipv6_hosts(void **state)
{
    (void)state;
    sg_url u = parse_ok("redis://:pw@[::1]:6379/1");
    assert_string_equal(u.hosts[0].name, "::1");
    assert_int_equal(u.hosts[0].port, 6379);
    sg_url_free(&u);
    u = parse_ok("redis://[fe80::1%25eth0]");
    assert_string_equal(u.hosts[0].name, "fe80::1%eth0");
    assert_int_equal(u.hosts[0].port, 0);
    sg_url_free(&u);
    parse_fails("redis://[::1");
    parse_fails("redis://[::1]x");
    parse_fails("redis://[]:6379");
    parse_fails("redis://::1:6379"); /* unbracketed: says so */
    parse_fails("redis://[a,b]");      /* a ',' inside brackets is not a list */
    parse_fails("postgres://[::1,x");
    u = parse_ok("postgres://h1,");      /* a trailing empty host, as libpq allows */
    assert_int_equal(u.n_hosts, 2);
    assert_string_equal(u.hosts[1].name, "");
    sg_url_free(&u);
    parse_fails("redis://host:0");
    parse_fails("redis://host:65536");
    parse_fails("redis://host:");
    parse_fails("redis://host:12a");
    redacts_to("redis://u:pw@[::1]:6379/1", "redis://u@[::1]:6379/1");
}

static void unix_sockets(void **state)
{
    (void)state;
    sg_url u = parse_ok("unix:///run/redis/redis.sock?db=2");
    assert_int_equal(u.kind, SG_URL_UNIX);
    assert_int_equal(u.n_hosts, 0);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_string_equal(sg_url_get(&u, "db"), "2");
    sg_url_free(&u);
    u = parse_ok("unix:///tmp/a@b.sock"); /* an '@' in the path is not a userinfo */
    assert_null(u.password);
    assert_string_equal(u.path, "/tmp/a@b.sock");
    sg_url_free(&u);
    u = parse_ok("unix://:s3cret@/tmp/r.sock");
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.path, "/tmp/r.sock");
    sg_url_free(&u);
    redacts_to("unix://:s3cret@/tmp/r.sock", "unix:///tmp/r.sock");
}

static void postgres_uris(void **state)
{
    (void)state;
    sg_url u = parse_ok("postgres://app:pw@h1:5432,h2,[::1]:5433/locks"
                        "?target_session_attrs=read-write&table=t1");
    assert_int_equal(u.kind, SG_URL_POSTGRES);
    assert_string_equal(u.user, "app");
    assert_int_equal(u.n_hosts, 3);
    assert_string_equal(u.hosts[0].name, "h1");
    assert_int_equal(u.hosts[0].port, 5432);
    assert_string_equal(u.hosts[1].name, "h2");
    assert_int_equal(u.hosts[1].port, 0);
    assert_string_equal(u.hosts[2].name, "::1");
    assert_int_equal(u.hosts[2].port, 5433);
    assert_string_equal(u.path, "locks");
    assert_string_equal(sg_url_get(&u, "target_session_attrs"), "read-write");
    sg_url_free(&u);

    u = parse_ok("postgres:///db?host=/run/postgresql");
    assert_int_equal(u.n_hosts, 0);
    assert_string_equal(u.path, "db");
    assert_string_equal(sg_url_get(&u, "host"), "/run/postgresql");
    sg_url_free(&u);

    u = parse_ok("postgresql://%2Frun%2Fpostgresql:5433/my%20db");
    assert_string_equal(u.hosts[0].name, "/run/postgresql");
    assert_string_equal(u.path, "my db");
    sg_url_free(&u);

    u = parse_ok("postgresql://u:p@ss@/db"); /* user, password, no host */
    assert_string_equal(u.password, "p@ss");
    assert_int_equal(u.n_hosts, 0);
    sg_url_free(&u);
    parse_fails("postgres://h%2Cx/db"); /* a ',' inside one host name */
    parse_fails("postgres://h/db?novalue");
    parse_fails("postgres://h/db?=v");
}

static void conninfo_strings(void **state)
{
    (void)state;
    sg_url u = parse_ok("host=/tmp port = 5433 dbname='my db' password='it\\'s x' "
                        "application_name=a\\ b");
    assert_int_equal(u.kind, SG_URL_CONNINFO);
    assert_int_equal(u.n_params, 5);
    assert_string_equal(sg_url_get(&u, "host"), "/tmp");
    assert_string_equal(sg_url_get(&u, "port"), "5433");
    assert_string_equal(sg_url_get(&u, "dbname"), "my db");
    assert_string_equal(sg_url_get(&u, "password"), "it's x");
    assert_string_equal(sg_url_get(&u, "application_name"), "a b");
    sg_url_free(&u);
    parse_fails("host=/tmp password='unterminated");
    parse_fails("host");
    parse_fails("=x");
    parse_fails("host=h dbname");
    parse_fails("host=h\x01");
    redacts_to("host=/tmp  password='it\\'s x'   dbname=d", "host=/tmp dbname=d");
    char *r = sg_url_redact("host=/tmp password='Wq7Zunterminated");
    assert_no_fragment(r, "Wq7Zunterminated");
    free(r);
}

static void firestore_urls(void **state)
{
    (void)state;
    sg_url u = parse_ok("firestore://my-project/(default)?collection=l&fence_collection=f");
    assert_int_equal(u.kind, SG_URL_FIRESTORE);
    assert_string_equal(u.hosts[0].name, "my-project");
    assert_string_equal(u.path, "(default)");
    assert_string_equal(sg_url_get(&u, "fence_collection"), "f");
    sg_url_free(&u);
    redacts_to("firestore://p?token_file=/etc/tok&collection=x",
               "firestore://p?token_file=/etc/tok&collection=x");
}

static void secret_parameter_names(void **state)
{
    (void)state;
    const char *secret[] = {"password", "PASSWORD", "sslpassword", "pass", "passwd", "pwd",
                            "token", "access_token", "auth", "client_secret", "api_key"};
    const char *plain[] = {"password_file", "token_file", "passfile", "prefix", "db", "host",
                           "sslmode", "table", "target_session_attrs", "sslkey"};
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        assert_true(sg_url_secret_name(secret[i], strlen(secret[i])));
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        assert_false(sg_url_secret_name(plain[i], strlen(plain[i])));
    redacts_to("postgres://h/db?password=x1&application_name=app&sslpassword=y2",
               "postgres://h/db?application_name=app");
    redacts_to("postgres://h/db?pass%77ord=x1", "postgres://h/db");
    redacts_to("redis://h?password_file=/run/pw&prefix=p", "redis://h?password_file=/run/pw&prefix=p");
    /* TLS: CA and certificate paths shown, the private key's path hidden */
    redacts_to("rediss://:pw@h:6380/0?tls_ca=/etc/ca.crt&tls_cert=/etc/c.crt&tls_key=/etc/c.key",
               "rediss://h:6380/0?tls_ca=/etc/ca.crt&tls_cert=/etc/c.crt");
    redacts_to("postgres://h/db?sslmode=verify-full&sslrootcert=/ca.crt&sslkey=/k.key",
               "postgres://h/db?sslmode=verify-full&sslrootcert=/ca.crt");
    redacts_to("host=h sslkey=/k.key sslcert=/c.crt", "host=h sslcert=/c.crt");
    redacts_to("firestore://p?endpoint=https://proxy:8443&ca_file=/ca.crt",
               "firestore://p?ca_file=/ca.crt");
    /* a nested URL or connection string in a value is hidden too */
    redacts_to("postgres://h/db?dbname=postgres://u:pw@x/y", "postgres://h/db");
    redacts_to("dbname='host=x password=pw' host=h", "host=h");
}

/* Every form, with secrets holding the awkward characters: not a 4-byte
 * window of the secret, raw or decoded, survives redaction; and the
 * redaction is never longer than the input (argv is overwritten in place). */
static void no_fragment_of_any_secret_survives(void **state)
{
    (void)state;
    const char *forms[] = {
        "redis://:%s@cache:6379/0?prefix=p",
        "redis://alice:%s@cache",
        "redis://alice:%s@[::1]:6379",
        "unix://:%s@/tmp/redis.sock?db=1",
        "postgres://app:%s@h1:5432,h2,[::1]:5433/db?target_session_attrs=read-write",
        "postgresql://app:%s@/db?host=/run/postgresql",
        "postgres://h/db?password=%s&application_name=x",
        "postgres://h/db?application_name=x&sslpassword=%s",
        "firestore://proj?token=%s",
        "redis://h?auth_token=%s",
        "http://u:%s@unknown.example/x", /* an unknown scheme is redacted the same way */
        "redis://:%s@host:badport",     /* unparsable: only the scheme is shown */
        "redis://:%s@",                 /* no host */
    };
    const char *secrets[] = {"Qz9@Wk7Jv", "Qz9:Wk7Jv", "Qz9/Wk7Jv", "Qz9%40Wk7Jv",
                             "Qz9%3FWk7Jv", "Qz9@@Wk:7/Jv", "Qz9#Wk7Jv"};
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        for (size_t s = 0; s < sizeof secrets / sizeof secrets[0]; s++) {
            char url[512];
            fill(url, sizeof url, forms[f], secrets[s]);
            char *r = sg_url_redact(url);
            assert_non_null(r);
            assert_no_fragment(r, secrets[s]);
            assert_no_fragment(r, "Qz9@Wk7Jv"); /* decoded %40 */
            assert_true(strlen(r) <= strlen(url) || strstr(r, "unparsable"));
            free(r);
        }
    }
    const char *ci[] = {"host=h password=%s dbname=d", "password='%s'", "sslpassword=%s host=h"};
    const char *ci_secrets[] = {"Qz9@Wk7Jv", "Qz9=Wk7Jv", "Qz9:Wk/7Jv"};
    for (size_t f = 0; f < sizeof ci / sizeof ci[0]; f++)
        for (size_t s = 0; s < sizeof ci_secrets / sizeof ci_secrets[0]; s++) {
            char url[256];
            fill(url, sizeof url, ci[f], ci_secrets[s]);
            char *r = sg_url_redact(url);
            assert_non_null(r);
            assert_no_fragment(r, ci_secrets[s]);
            free(r);
        }
}

static void hostile_input(void **state)
{
    (void)state;
    parse_fails("");
    sg_url u;
    sg_error err;
    assert_int_equal(sg_url_parse(NULL, &u, &err), SG_ERROR);
    sg_url_free(&u);
    parse_fails("localhost:6379");
    parse_fails("ftp://h");
    parse_fails("://h");
    parse_fails("redis:/h");
    parse_fails("redis://h\n?x=1");
    parse_fails("redis://h/\x7f");
    char *r = sg_url_redact(NULL);
    assert_string_equal(r, "");
    free(r);
    redacts_to("", "(unparsable backend URL not shown)");

    /* huge: refused, and redaction shows only the scheme */
    size_t n = SG_URL_MAX + 100;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memcpy(big, "redis://:", 9);
    memset(big + 9, 'S', n - 9);
    big[n - 6] = '@';
    memcpy(big + n - 5, "host", 5);
    parse_fails(big);
    r = sg_url_redact(big);
    assert_string_equal(r, "redis://(unparsable URL not shown)");
    free(r);
    /* just under the limit: parses and redacts */
    big[SG_URL_MAX - 5] = '@';
    memcpy(big + SG_URL_MAX - 4, "host", 5);
    u = parse_ok(big);
    assert_int_equal(strlen(u.password), SG_URL_MAX - 14);
    sg_url_free(&u);
    redacts_to(big, "redis://host");
    free(big);

    /* garbage: never a crash, never a read past the end; redaction of what
     * parses is never longer than its input */
    srand(42);
    char g[200];
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(rand() % 199);
        const char *pre = (i % 4 == 0) ? "redis://" : (i % 4 == 1) ? "postgres://" : "";
        size_t pl = strlen(pre);
        memcpy(g, pre, pl);
        for (size_t k = pl; k < len + pl && k < sizeof g - 1; k++) {
            const char alphabet[] = "@:/?&=%[],'\\ \t#aZ09\x01\xff";
            g[k] = (i % 3) ? alphabet[rand() % (int)(sizeof alphabet - 1)]
                           : (char)(1 + rand() % 255);
        }
        g[len + pl < sizeof g - 1 ? len + pl : sizeof g - 1] = '\0';
        if (sg_url_parse(g, &u, &err) == SG_OK) {
            char *x = sg_url_redact(g);
            assert_non_null(x);
            assert_true(strlen(x) <= 2 * strlen(g) + 1);
            free(x);
        } else {
            assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
        }
        sg_url_free(&u);
        free(sg_url_redact(g));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redis_forms),
        cmocka_unit_test(passwords_with_at_colon_slash_and_escapes),
        cmocka_unit_test(ipv6_hosts),
        cmocka_unit_test(unix_sockets),
        cmocka_unit_test(postgres_uris),
        cmocka_unit_test(conninfo_strings),
        cmocka_unit_test(firestore_urls),
        cmocka_unit_test(secret_parameter_names),
        cmocka_unit_test(no_fragment_of_any_secret_survives),
        cmocka_unit_test(hostile_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
