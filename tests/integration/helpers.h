/* helpers.h — shared by the integration suites (include after cmocka.h). */
#ifndef SG_TEST_HELPERS_H
#define SG_TEST_HELPERS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "syncguard.h"

static inline void msleep(int ms)
{
    usleep((useconds_t)ms * 1000);
}

/* Run the server-control script named by environment variable `env`
 * (SG_REDIS_CTL, SG_PG_CTL, SG_FS_CTL) with printf-style arguments. */
static inline __attribute__((format(printf, 2, 3))) void ctl(const char *env, const char *fmt, ...)
{
    char args[512], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s", getenv(env), args);
    if (system(cmd) != 0)
        fail_msg("server control failed: %s", cmd);
}

/* Fences keep rising across a kill -9 and restart of server `name`: the calls
 * in between fail ServiceUnavailable, and the backend recovers by itself. */
static inline void check_fences_survive_kill9(sg_backend *b, const char *env, const char *name)
{
    sg_lock a;
    sg_error err;
    char last[SG_FENCE_LEN + 1] = "";
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sg_acquire(b, "durable", 10000, &a, &err), SG_OK);
        strcpy(last, a.fence);
        assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    }
    ctl(env, "kill9 %s", name);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sg_acquire(b, "durable", 10000, &a, &err), SG_ERROR);
        assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE);
    }
    ctl(env, "restart %s", name);
    /* the first call after the restart may still meet a dead connection */
    sg_status st = SG_ERROR;
    for (int i = 0; i < 3 && st != SG_OK; i++)
        st = sg_acquire(b, "durable", 10000, &a, &err);
    assert_int_equal(st, SG_OK);
    assert_true(strcmp(a.fence, last) > 0);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
}
#endif
