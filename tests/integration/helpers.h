/* helpers.h — shared by the integration suites (include after cmocka.h). */
#ifndef SG_TEST_HELPERS_H
#define SG_TEST_HELPERS_H
#include <pthread.h>
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

/* Start tests/integration/stall_forwarder.py: 127.0.0.1:port → target_port;
 * stall_now() makes it stop forwarding without closing. Stop it with
 * hostile_stop. */
static inline pid_t stall_start(int port, int target_port)
{
    char mode[32];
    snprintf(mode, sizeof mode, "%d", target_port);
    /* same launcher: stall_forwarder.py takes PORT TARGET OWNER */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 %s/stall_forwarder.py %d %d %d >/dev/null 2>&1 & echo $!",
             getenv("SG_TEST_SRCDIR"), port, target_port, (int)getpid());
    FILE *f = popen(cmd, "r");
    int pid = 0;
    if (!f || fscanf(f, "%d", &pid) != 1)
        fail_msg("cannot start the stall forwarder");
    pclose(f);
    for (int i = 0; i < 200; i++) {
        char probe[160];
        snprintf(probe, sizeof probe, "python3 -c \"import socket; socket.create_connection(("
                                      "'127.0.0.1', %d), 0.1)\" 2>/dev/null", port);
        if (system(probe) == 0)
            return (pid_t)pid;
        msleep(25);
    }
    fail_msg("stall forwarder did not listen on %d", port);
    return 0;
}

static inline void stall_now(pid_t pid)
{
    kill(pid, SIGUSR1);
    msleep(100);
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
/* ---- restarts: no user-visible error once the server answers again ---- */
typedef struct pool_filler {
    sg_backend *b;
    int n;
    pthread_barrier_t *start;
} pool_filler;

static inline void *fill_pool_thread(void *arg)
{
    pool_filler *f = arg;
    char key[32];
    snprintf(key, sizeof key, "pool-fill-%d", f->n);
    pthread_barrier_wait(f->start);
    for (int i = 0; i < 5; i++) {
        sg_lock l;
        sg_lock_info info;
        if (sg_acquire(f->b, key, 10000, &l, NULL) == SG_OK)
            sg_release(f->b, l.lock_id, NULL);
        sg_lookup_key(f->b, key, &info, NULL);
    }
    return NULL;
}

/* Open as many pooled connections as 16 simultaneous callers need. Reads
 * too: PostgreSQL runs concurrent lock operations as a few grouped
 * transactions (postgres_group.c), on a few connections, and reads each on
 * its own. */
static inline void fill_pool(sg_backend *b)
{
    enum { N = 16 };
    pthread_t th[N];
    pool_filler f[N];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        f[i] = (pool_filler){b, i, &start};
        pthread_create(&th[i], NULL, fill_pool_thread, &f[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
}

/* Run `rounds` rounds of acquire, lookup by key and by id, is_locked,
 * extend, release (6 operations each) on backend b; returns how many
 * operations failed (each error is printed). */
static inline int count_errors(sg_backend *b, const char *tag, int rounds)
{
    int errors = 0;
    for (int i = 0; i < rounds; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s-%d", tag, i);
        sg_lock l;
        sg_lock_info info;
        sg_error err;
        bool locked;
        int64_t exp;
        const char *what = NULL;
        if (sg_acquire(b, key, 10000, &l, &err) != SG_OK) {
            fprintf(stderr, "%s: acquire %s: %s (%s)\n", tag, key, err.message, err.cause);
            errors += 6; /* the rest of the round cannot run */
            continue;
        }
        if (sg_lookup_key(b, key, &info, &err) != SG_OK)
            what = "lookup_key", errors++;
        if (sg_lookup_id(b, l.lock_id, &info, &err) != SG_OK)
            what = "lookup_id", errors++;
        if (sg_is_locked(b, key, &locked, &err) != SG_OK || !locked)
            what = "is_locked", errors++;
        if (sg_extend(b, l.lock_id, 10000, &exp, &err) != SG_OK)
            what = "extend", errors++;
        if (sg_release(b, l.lock_id, &err) != SG_OK)
            what = "release", errors++;
        if (what)
            fprintf(stderr, "%s: %s %s: %s (%s)\n", tag, what, key, err.message, err.cause);
    }
    return errors;
}

/* Through a stalled connection (forwarder fwd) every single backend call
 * fails NetworkTimeout within about the command timeout (700 ms of slack for
 * the sanitizers); sg_acquire may make two calls (its unknown outcome's
 * release by lockId). Returns the slowest single call in ms. */
static inline int64_t check_stalled_calls(sg_backend *b, pid_t fwd, const char *name,
                                          int timeout_ms)
{
    sg_lock l, l2;
    sg_lock_info info;
    sg_error err;
    bool locked;
    int64_t exp, worst = 0;
    char key[64];
    snprintf(key, sizeof key, "%s-stall", name);
    fill_pool(b);
    /* the lock the stalled calls work on, taken before the stall: a short
     * command timeout on a loaded machine (the emulator) may need a retry */
    sg_status st0 = SG_ERROR;
    for (int i = 0; i < 5 && st0 != SG_OK; i++)
        if ((st0 = sg_acquire(b, key, 30000, &l, &err)) != SG_OK)
            fprintf(stderr, "%s: setup acquire: %s (retrying)\n", name, err.message);
    assert_int_equal(st0, SG_OK);
    stall_now(fwd);
#define SG_STALLED(what, call, calls)                                                          \
    do {                                                                                       \
        int64_t t0_ = sg_monotonic_ms();                                                       \
        sg_status st_ = (call);                                                                \
        int64_t t_ = sg_monotonic_ms() - t0_;                                                  \
        fprintf(stderr, "%s stalled: %s -> %s after %lld ms (command timeout %d ms)\n", name, \
                what, st_ == SG_OK ? "ok" : sg_code_name(err.code), (long long)t_,           \
                timeout_ms);                                                                   \
        assert_int_equal(st_, SG_ERROR);                                                       \
        assert_int_equal(err.code, SG_E_NETWORK_TIMEOUT);                                      \
        assert_true(t_ <= (calls) * timeout_ms + 700);                                         \
        if ((calls) == 1 && t_ > worst)                                                        \
            worst = t_;                                                                        \
    } while (0)
    SG_STALLED("lookup_key", sg_lookup_key(b, key, &info, &err), 1);
    SG_STALLED("lookup_id", sg_lookup_id(b, l.lock_id, &info, &err), 1);
    SG_STALLED("is_locked", sg_is_locked(b, key, &locked, &err), 1);
    SG_STALLED("extend", sg_extend(b, l.lock_id, 30000, &exp, &err), 1);
    SG_STALLED("release", sg_release(b, l.lock_id, &err), 1);
    SG_STALLED("acquire", sg_acquire(b, "stall-other", 30000, &l2, &err), 2);
#undef SG_STALLED
    return worst;
}


/* ---- wake-ups: a watch callback that counts, and waiting on the count ---- */
typedef struct wake_count {
    pthread_mutex_t mu;
    int n;
} wake_count;

static inline void count_wake(void *ud)
{
    wake_count *c = ud;
    pthread_mutex_lock(&c->mu);
    c->n++;
    pthread_mutex_unlock(&c->mu);
}

static inline int wakes(wake_count *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static inline bool wait_wakes(wake_count *c, int want, int ms)
{
    for (int i = 0; i < ms / 10 && wakes(c) < want; i++)
        msleep(10);
    return wakes(c) >= want;
}

#endif
