/* test_redis_mux.c — many threads on the Redis backend's few shared,
 * pipelined connections (backends/redis_mux.c), against real redis-servers
 * started through scripts/redis-ctl on SG_TEST_REDIS_PORT_BASE + 30...:
 * every caller gets its own reply, a server killed or stalled mid-flight
 * fails exactly the requests in flight (mutations as unknown outcomes) and
 * the next calls succeed on a fresh connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "syncguard.h"

#define ctl(...) ctl("SG_REDIS_CTL", __VA_ARGS__)

static int private_port(int n)
{
    return atoi(getenv("SG_TEST_REDIS_PORT_BASE")) + n;
}

/* connected_clients of the server on port (a fresh hiredis connection, not counted) */
static int clients(int port)
{
    redisContext *r = redisConnect("127.0.0.1", port);
    assert_true(r && !r->err);
    redisReply *x = redisCommand(r, "INFO clients");
    assert_non_null(x);
    const char *p = strstr(x->str, "connected_clients:");
    int n = p ? atoi(p + 18) - 1 : -1;
    freeReplyObject(x);
    redisFree(r);
    return n;
}

static sg_backend *open_url(const char *fmt, ...)
{
    char u[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u, sizeof u, fmt, ap);
    va_end(ap);
    sg_backend *b;
    sg_error err;
    if (sg_backend_open(u, NULL, &b, &err) != SG_OK)
        fail_msg("open %s: %s", u, err.message);
    return b;
}

/* ---- many callers, each checking that what came back is its own ---- */
typedef struct caller {
    sg_backend *b;
    int idx, rounds;
    pthread_barrier_t *start;
    int errors, crossed;
} caller;

static void *own_replies(void *arg)
{
    caller *c = arg;
    char key[64];
    snprintf(key, sizeof key, "mux-%d", c->idx);
    pthread_barrier_wait(c->start);
    for (int i = 0; i < c->rounds; i++) {
        sg_lock l;
        sg_lock_info info;
        sg_error err;
        int64_t exp;
        if (sg_acquire(c->b, key, 10000, &l, &err) != SG_OK) {
            fprintf(stderr, "%s: acquire: %s (%s)\n", key, err.message, err.cause);
            c->errors++;
            continue;
        }
        /* the record under our key is ours: same lockId, same fence */
        if (sg_lookup_key_raw(c->b, key, &info, &err) != SG_OK ||
            strcmp(info.lock_id, l.lock_id) || strcmp(info.fence, l.fence))
            c->crossed++;
        /* and our lockId resolves to our key */
        if (sg_lookup_id_raw(c->b, l.lock_id, &info, &err) != SG_OK || strcmp(info.key, key))
            c->crossed++;
        if (sg_extend(c->b, l.lock_id, 10000, &exp, &err) != SG_OK)
            c->errors++;
        if (sg_release(c->b, l.lock_id, &err) != SG_OK)
            c->errors++;
    }
    return NULL;
}

static void run_callers(sg_backend *b, int n, int rounds, int *errors, int *crossed)
{
    pthread_t *t = calloc((size_t)n, sizeof *t);
    caller *c = calloc((size_t)n, sizeof *c);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        c[i] = (caller){.b = b, .idx = i, .rounds = rounds, .start = &start};
        assert_int_equal(pthread_create(&t[i], NULL, own_replies, &c[i]), 0);
    }
    *errors = *crossed = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        *errors += c[i].errors;
        *crossed += c[i].crossed;
    }
    pthread_barrier_destroy(&start);
    free(t);
    free(c);
}

static void callers_on_one_connection_get_their_own_replies(void **state)
{
    (void)state;
    int p = private_port(30);
    ctl("start mux %d", p);
    int base = clients(p);
    const int counts[2] = {64, 256};
    for (int k = 0; k < 2; k++) {
        sg_backend *b = open_url("redis://127.0.0.1:%d?connections=1", p);
        int errors, crossed;
        run_callers(b, counts[k], k ? 4 : 10, &errors, &crossed);
        int conns = clients(p) - base;
        fprintf(stderr, "redis mux: %d callers, 1 connection: %d errors, %d crossed replies, "
                        "%d server connections\n", counts[k], errors, crossed, conns);
        assert_int_equal(errors, 0);
        assert_int_equal(crossed, 0);
        assert_int_equal(conns, 1); /* one shared connection, no subscriber (nothing watched) */
        sg_backend_close(b);
    }
    /* the default: a few connections, never one per caller */
    sg_backend *b = open_url("redis://127.0.0.1:%d", p);
    int errors, crossed;
    run_callers(b, 64, 5, &errors, &crossed);
    int conns = clients(p) - base;
    assert_int_equal(errors + crossed, 0);
    assert_true(conns >= 1 && conns <= 4);
    sg_backend_close(b);
    ctl("stop mux");
}

/* The same over TLS (one SSL object read and written by one driver at a time). */
static void callers_over_tls_get_their_own_replies(void **state)
{
    (void)state;
    const char *u = getenv("SG_TEST_REDISS_URL");
    if (!u)
        skip();
    sg_backend *b = open_url("%s&connections=1", u);
    int errors, crossed;
    run_callers(b, 64, 5, &errors, &crossed);
    fprintf(stderr, "rediss mux: 64 callers, 1 connection: %d errors, %d crossed replies\n",
            errors, crossed);
    assert_int_equal(errors, 0);
    assert_int_equal(crossed, 0);
    sg_backend_close(b);
}

/* After SCRIPT FLUSH every caller meets NOSCRIPT: each loads and runs its
 * script again on the shared connection, nobody sees an error. */
static void noscript_is_handled_per_request(void **state)
{
    (void)state;
    int p = private_port(30);
    ctl("start mux %d", p);
    sg_backend *b = open_url("redis://127.0.0.1:%d?connections=1", p);
    int errors, crossed;
    run_callers(b, 16, 2, &errors, &crossed);
    redisContext *r = redisConnect("127.0.0.1", p);
    freeReplyObject(redisCommand(r, "SCRIPT FLUSH"));
    redisFree(r);
    run_callers(b, 64, 3, &errors, &crossed);
    assert_int_equal(errors, 0);
    assert_int_equal(crossed, 0);
    sg_backend_close(b);
    ctl("stop mux");
}

static void connections_parameter_is_checked(void **state)
{
    (void)state;
    const char *bad[] = {"connections=0", "connections=17", "connections=x", "connections="};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char u[128];
        snprintf(u, sizeof u, "redis://127.0.0.1:%d?%s", private_port(30), bad[i]);
        sg_backend *b;
        sg_error err;
        assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
        assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    }
}

/* ---- failures mid-flight ---- */
typedef struct looper {
    sg_backend *b;
    int idx;
    atomic_bool *stop;
    int ok, errors, bad_codes;
} looper;

static void *loop_ops(void *arg)
{
    looper *l = arg;
    char key[64];
    snprintf(key, sizeof key, "loop-%d", l->idx);
    while (!atomic_load(l->stop)) {
        sg_lock lk;
        sg_error err;
        sg_status st = sg_acquire(l->b, key, 10000, &lk, &err);
        if (st == SG_OK)
            st = sg_release(l->b, lk.lock_id, &err);
        if (st == SG_OK || st == SG_ABSENT || st == SG_CONTENDED) {
            l->ok++;
            continue;
        }
        l->errors++;
        if (err.code != SG_E_SERVICE_UNAVAILABLE && err.code != SG_E_NETWORK_TIMEOUT) {
            fprintf(stderr, "%s: unexpected %s: %s\n", key, sg_code_name(err.code), err.message);
            l->bad_codes++;
        }
        msleep(5);
    }
    return NULL;
}

/* Kill -9 and restart under 64 callers: the ones in flight fail with
 * ServiceUnavailable or NetworkTimeout, nothing crashes, and once the
 * server answers every caller's next operations succeed. */
static void server_killed_mid_flight_then_next_calls_succeed(void **state)
{
    (void)state;
    int p = private_port(31);
    ctl("start muxkill %d", p);
    sg_backend *b = open_url("redis://127.0.0.1:%d?connections=1&connect_timeout_ms=300", p);
    enum { N = 64 };
    pthread_t t[N];
    looper l[N];
    atomic_bool stop = false;
    for (int i = 0; i < N; i++) {
        l[i] = (looper){.b = b, .idx = i, .stop = &stop};
        pthread_create(&t[i], NULL, loop_ops, &l[i]);
    }
    msleep(300);
    ctl("kill9 muxkill");
    msleep(300);
    ctl("restart muxkill");
    msleep(300);
    atomic_store(&stop, true);
    int ok = 0, errors = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ok += l[i].ok, errors += l[i].errors, bad += l[i].bad_codes;
    }
    fprintf(stderr, "redis mux: kill -9 under %d callers: %d cycles ok, %d failed\n", N, ok,
            errors);
    assert_int_equal(bad, 0);
    assert_true(errors > 0);
    int after_errors, crossed;
    run_callers(b, N, 3, &after_errors, &crossed);
    assert_int_equal(after_errors, 0);
    assert_int_equal(crossed, 0);
    sg_backend_close(b);
    ctl("stop muxkill");
}

typedef struct extender {
    sg_backend *b;
    const char *lock_id;
    pthread_barrier_t *start;
    sg_status st;
    sg_error err;
    int64_t ms;
} extender;

static void *extend_once(void *arg)
{
    extender *e = arg;
    int64_t exp;
    pthread_barrier_wait(e->start);
    int64_t t0 = sg_monotonic_ms();
    e->st = sg_extend(e->b, e->lock_id, 10000, &exp, &e->err);
    e->ms = sg_monotonic_ms() - t0;
    return NULL;
}

/* N extends in flight at once on b (locks[i]); returns the slowest in ms
 * and checks each failed NetworkTimeout with an unknown outcome. */
static int64_t extends_all_time_out(sg_backend *b, sg_lock *locks, int n)
{
    pthread_t t[64];
    extender e[64];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        e[i] = (extender){.b = b, .lock_id = locks[i].lock_id, .start = &start};
        pthread_create(&t[i], NULL, extend_once, &e[i]);
    }
    int64_t worst = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        if (e[i].st != SG_ERROR || e[i].err.code != SG_E_NETWORK_TIMEOUT)
            fail_msg("extend %d: %d %s", i, e[i].st, e[i].err.message);
        assert_true(e[i].err.unknown_outcome); /* a mutation was sent */
        if (e[i].ms > worst)
            worst = e[i].ms;
    }
    pthread_barrier_destroy(&start);
    return worst;
}

/* A forwarder that stops forwarding (no FIN, no RST): all 32 requests in
 * flight on the one shared connection fail within the command timeout, and
 * so do the calls after them (on a replacement, also stalled). */
static void stalled_connection_fails_every_request_in_flight(void **state)
{
    (void)state;
    int p = private_port(32);
    ctl("start muxstall %d", p);
    pid_t fwd = stall_start(private_port(33), p);
    sg_backend *b = open_url("redis://127.0.0.1:%d?connections=1&command_timeout_ms=300",
                             private_port(33));
    enum { N = 32 };
    sg_lock locks[N];
    sg_error err;
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "stall-%d", i);
        assert_int_equal(sg_acquire(b, key, 30000, &locks[i], &err), SG_OK);
    }
    stall_now(fwd);
    int64_t worst = extends_all_time_out(b, locks, N);
    fprintf(stderr, "redis mux: %d requests in flight on a stalled connection: slowest %lld ms "
                    "(command timeout 300 ms)\n", N, (long long)worst);
    assert_true(worst <= 300 + 700);
    worst = extends_all_time_out(b, locks, N); /* a new connection, stalled as well */
    assert_true(worst <= 300 + 700);
    hostile_stop(fwd);
    sg_backend_close(b);
    ctl("stop muxstall");
}

/* A server busy longer than the command timeout (DEBUG SLEEP): the requests
 * in flight fail, the connection is replaced, and the late replies on the
 * old one never reach the callers after them. */
static void late_replies_never_reach_later_callers(void **state)
{
    (void)state;
    int p = private_port(34);
    ctl("start muxslow %d --enable-debug-command yes", p);
    sg_backend *b = open_url("redis://127.0.0.1:%d?connections=1&command_timeout_ms=200", p);
    enum { N = 32 };
    sg_lock locks[N];
    sg_error err;
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "slow-%d", i);
        assert_int_equal(sg_acquire(b, key, 30000, &locks[i], &err), SG_OK);
    }
    int base = clients(p);
    redisContext *r = redisConnect("127.0.0.1", p);
    redisAppendCommand(r, "DEBUG SLEEP 0.5");
    int done = 0;
    redisBufferWrite(r, &done);
    msleep(30);
    extends_all_time_out(b, locks, N);
    redisReply *x;
    assert_int_equal(redisGetReply(r, (void **)&x), REDIS_OK);
    freeReplyObject(x);
    redisFree(r);
    int errors, crossed;
    run_callers(b, 64, 3, &errors, &crossed);
    assert_int_equal(errors, 0);
    assert_int_equal(crossed, 0);
    assert_true(clients(p) - base <= 1); /* the timed-out connection was closed */
    for (int i = 0; i < N; i++) /* the extends ran late: the locks are still ours */
        assert_int_equal(sg_release(b, locks[i].lock_id, &err), SG_OK);
    sg_backend_close(b);
    ctl("stop muxslow");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(callers_on_one_connection_get_their_own_replies),
        cmocka_unit_test(callers_over_tls_get_their_own_replies),
        cmocka_unit_test(noscript_is_handled_per_request),
        cmocka_unit_test(connections_parameter_is_checked),
        cmocka_unit_test(server_killed_mid_flight_then_next_calls_succeed),
        cmocka_unit_test(stalled_connection_fails_every_request_in_flight),
        cmocka_unit_test(late_replies_never_reach_later_callers),
    };
    if (!getenv("SG_TEST_REDIS_PORT_BASE") || !getenv("SG_REDIS_CTL")) {
        fprintf(stderr, "redis-mux: run through scripts/test, which starts the servers\n");
        return 1;
    }
    return cmocka_run_group_tests_name("redis-mux", tests, NULL, NULL);
}
