/* pg_fixture.h — the group fixture of the test_postgres*.c suites: the main
 * PostgreSQL 15 scripts/test started (SG_TEST_PG_URL / SG_TEST_PG_PORT), a
 * backend B on it, a plain libpq client Q, sql() on a connection, and ctl()
 * on SG_PG_CTL for the servers a test starts itself (SG_TEST_PG_PORT_BASE +
 * n). Define SG_SUITE (the program's name, for the message when the
 * environment is missing) before including; include once per test program,
 * after cmocka.h. */
#ifndef SG_TEST_PG_FIXTURE_H
#define SG_TEST_PG_FIXTURE_H
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"
#include "syncguard.h"

static const char *url;
static int port;
static sg_backend *B;
static PGconn *Q; /* a plain client */

#define ctl(...) ctl("SG_PG_CTL", __VA_ARGS__)

static inline PGresult *sql(PGconn *c, const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(c, q);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQerrorMessage(c));
    return r;
}

static int group_setup(void **state)
{
    (void)state;
    if (open_from_env(SG_SUITE, "SG_TEST_PG_URL", "SG_PG_CTL", &url, &B) != 0)
        return -1;
    port = atoi(getenv("SG_TEST_PG_PORT") ? getenv("SG_TEST_PG_PORT") : "0");
    Q = PQconnectdb(url);
    return PQstatus(Q) == CONNECTION_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    sg_backend_close(B);
    PQfinish(Q);
    return 0;
}

#endif
