/* redis_fixture.h — the group fixture of the test_redis*.c suites: the main
 * redis-server scripts/test started (SG_TEST_REDIS_URL / SG_TEST_REDIS_PORT),
 * a backend B on it, a plain hiredis client R for checking the stored layout,
 * ctl() on SG_REDIS_CTL and private_port(n) for the servers a test starts
 * itself (SG_TEST_REDIS_PORT_BASE + n). Define SG_SUITE (the program's name,
 * for the message when the environment is missing) before including; include
 * once per test program, after cmocka.h. */
#ifndef SG_TEST_REDIS_FIXTURE_H
#define SG_TEST_REDIS_FIXTURE_H
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdlib.h>

#include "helpers.h"
#include "syncguard.h"

static const char *url;
static int port;
static sg_backend *B;
static redisContext *R; /* a plain client for checking the stored layout */

#define ctl(...) ctl("SG_REDIS_CTL", __VA_ARGS__)

static inline int private_port(int n)
{
    return atoi(getenv("SG_TEST_REDIS_PORT_BASE")) + n;
}

static inline redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(R, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static int group_setup(void **state)
{
    (void)state;
    if (open_from_env(SG_SUITE, "SG_TEST_REDIS_URL", "SG_REDIS_CTL", &url, &B) != 0)
        return -1;
    port = atoi(getenv("SG_TEST_REDIS_PORT") ? getenv("SG_TEST_REDIS_PORT") : "0");
    R = redisConnect("127.0.0.1", port);
    return R && !R->err ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    sg_backend_close(B);
    redisFree(R);
    return 0;
}

#endif
