/* helpers.h — shared by the integration suites (include after cmocka.h). */
#ifndef SG_TEST_HELPERS_H
#define SG_TEST_HELPERS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
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

/* Open the backend whose URL is in environment variable url_var (set by
 * scripts/test, with the server's control script in ctl_var); -1 with a
 * clear message when the suite is not run through scripts/test. */
static inline int open_from_env(const char *suite, const char *url_var, const char *ctl_var,
                                const char **url, sg_backend **b)
{
    *url = getenv(url_var);
    if (!*url || (ctl_var && !getenv(ctl_var))) {
        fprintf(stderr, "%s: %s%s%s not set: run through scripts/test, which starts the "
                        "servers\n", suite, url_var, ctl_var ? "/" : "", ctl_var ? ctl_var : "");
        return -1;
    }
    sg_error err;
    if (sg_backend_open(*url, NULL, b, &err) != SG_OK) {
        fprintf(stderr, "%s: cannot open the backend: %s\n", suite, err.message);
        return -1;
    }
    return 0;
}

/* Start tests/integration/hostile_server.py MODE on port; returns its pid. */
static inline pid_t hostile_start(const char *mode, int port)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 %s/hostile_server.py %s %d %d >/dev/null 2>&1 & echo $!",
             getenv("SG_TEST_SRCDIR"), mode, port, (int)getpid());
    FILE *f = popen(cmd, "r");
    int pid = 0;
    if (!f || fscanf(f, "%d", &pid) != 1)
        fail_msg("cannot start the hostile server");
    pclose(f);
    for (int i = 0; i < 200; i++) { /* wait until it listens */
        if (kill(pid, 0) != 0)
            fail_msg("hostile server %s exited (port %d in use?)", mode, port);
        char probe[128];
        snprintf(probe, sizeof probe, "python3 -c \"import socket; socket.create_connection(("
                                      "'127.0.0.1', %d), 0.1)\" 2>/dev/null", port);
        if (system(probe) == 0)
            return (pid_t)pid;
        msleep(25);
    }
    fail_msg("hostile server %s did not listen on %d", mode, port);
    return 0;
}

static inline void hostile_stop(pid_t pid)
{
    kill(pid, SIGKILL);
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
