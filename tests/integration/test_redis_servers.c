/* test_redis_servers.c — the Redis backend against servers a test starts,
 * stops, kills or stalls itself (scripts/redis-ctl on SG_TEST_REDIS_PORT_BASE
 * + n, hostile_server.py, stall_forwarder.py; redis_fixture.h): validation
 * before I/O, unix sockets, hostile replies, passwords, durable fences,
 * outages, command timeouts, restarts with a full pool, stalled connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SG_SUITE "test_redis_servers"
#include "redis_fixture.h"

static void invalid_input_is_rejected_before_any_io(void **state)
{
    (void)state;
    /* a backend whose server is gone: only validation can answer */
    int p = private_port(1);
    ctl("start noio %d", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    ctl("stop noio");
    assert_int_equal(sg_acquire(b, "", 1000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_acquire(b, "k", 0, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_release(b, "nope", &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_extend(b, "AAAAAAAAAAAAAAAAAAAAAA", 0, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    /* and a real call now fails as the outage it is */
    assert_int_equal(sg_acquire(b, "k", 1000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE);
    sg_backend_close(b);
}

static void unix_socket_url(void **state)
{
    (void)state;
    int p = private_port(7);
    char sock[256], u[320];
    FILE *f = popen("\"$SG_REDIS_CTL\" dir unixsock", "r");
    assert_non_null(f);
    assert_non_null(fgets(sock, sizeof sock, f));
    pclose(f);
    sock[strcspn(sock, "\n")] = '\0';
    strcat(sock, "/redis.sock");
    ctl("start unixsock %d --unixsocket %s --unixsocketperm 700", p, sock);
    snprintf(u, sizeof u, "unix://%s?db=3", sock);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "over-a-socket", 10000, &a, &err), SG_OK);
    /* it landed in database 3 */
    redisContext *c = redisConnectUnix(sock);
    redisReply *r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS syncguard:over-a-socket");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    ctl("stop unixsock");
}

static void ignore_key(const char *key, void *ud)
{
    (void)key, (void)ud;
}

static void hostile_server_replies_are_errors_not_crashes(void **state)
{
    (void)state;
    const char *modes[] = {"redis-status", "redis-garbage", "redis-array", "redis-truncated"};
    int hport = private_port(8);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        pid_t pid = hostile_start(modes[i], hport);
        char u[96];
        snprintf(u, sizeof u, "redis://127.0.0.1:%d?command_timeout_ms=500", hport);
        sg_backend *b = NULL;
        sg_error err;
        if (sg_backend_open(u, NULL, &b, &err) == SG_OK) {
            sg_lock a;
            sg_lock_info info;
            assert_int_equal(sg_acquire(b, "hostile", 1000, &a, &err), SG_ERROR);
            assert_true(err.code == SG_E_INTERNAL || err.code == SG_E_SERVICE_UNAVAILABLE);
            assert_int_equal(sg_lookup_key(b, "hostile", &info, &err), SG_ERROR);
            assert_int_equal(sg_release(b, "AAAAAAAAAAAAAAAAAAAAAA", &err), SG_ERROR);
            char cursor[SG_CURSOR_LEN] = "";
            assert_int_equal(sg_list(b, cursor, 10, ignore_key, NULL, &err), SG_ERROR);
            sg_backend_close(b);
        } else {
            assert_true(err.code == SG_E_INTERNAL || err.code == SG_E_SERVICE_UNAVAILABLE);
        }
        hostile_stop(pid);
    }
}

static void password_protected_server(void **state)
{
    (void)state;
    int p = private_port(2);
    ctl("start auth %d --requirepass s3cret", p);
    char u[128];
    sg_backend *b = NULL;
    sg_error err;
    snprintf(u, sizeof u, "redis://:wrong@127.0.0.1:%d", p);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    assert_null(strstr(err.message, "wrong"));
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    snprintf(u, sizeof u, "redis://:s3cret@127.0.0.1:%d/2", p);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "authed", 1000, &a, &err), SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    /* from the environment, and from a file */
    setenv("SYNCGUARD_REDIS_PASSWORD", "s3cret", 1);
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_backend_close(b);
    unsetenv("SYNCGUARD_REDIS_PASSWORD");
    char path[] = "/tmp/sg-pw-XXXXXX";
    int fd = mkstemp(path);
    assert_true(write(fd, "s3cret\n", 7) == 7);
    close(fd);
    snprintf(u, sizeof u, "redis://127.0.0.1:%d?password_file=%s", p, path);
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_backend_close(b);
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p); /* the option every backend takes */
    sg_open_opts po = {.password_file = path};
    assert_int_equal(sg_backend_open(u, &po, &b, &err), SG_OK);
    sg_backend_close(b);
    unlink(path);
    assert_int_equal(sg_backend_open(u, &po, &b, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    ctl("stop auth");
}

static void fences_survive_kill9_with_appendfsync_always(void **state)
{
    (void)state;
    int p = private_port(3);
    ctl("start durable %d --appendonly yes --appendfsync always", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    sg_backend *b;
    sg_error err;
    sg_open_opts o = {.require_durable_fences = true};
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_OK);
    check_fences_survive_kill9(b, "SG_REDIS_CTL", "durable");
    sg_backend_close(b);
    ctl("stop durable");
}

static void non_durable_server_warns_or_is_refused(void **state)
{
    (void)state;
    int p = private_port(4);
    ctl("start volatile %d --appendonly no --maxmemory-policy allkeys-lru", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    sg_backend *b = NULL;
    sg_error err;
    sg_open_opts o = {.require_durable_fences = true};
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_ERROR);
    assert_non_null(strstr(err.message, "allkeys-lru"));
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK); /* warns only */
    sg_backend_close(b);
    ctl("stop volatile");
}

static void outage_then_recovery(void **state)
{
    (void)state;
    int p = private_port(5);
    ctl("start outage %d", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d?connect_timeout_ms=500", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    sg_lock a;
    assert_int_equal(sg_acquire(b, "outage", 10000, &a, &err), SG_OK);
    ctl("stop outage");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sg_acquire(b, "outage2", 10000, NULL, &err), SG_ERROR);
        assert_int_equal(err.code, SG_E_SERVICE_UNAVAILABLE);
    }
    ctl("restart outage");
    sg_status st = SG_ERROR;
    for (int i = 0; i < 3 && st != SG_OK; i++)
        st = sg_acquire(b, "outage2", 10000, &a, &err);
    assert_int_equal(st, SG_OK);
    assert_int_equal(sg_release(b, a.lock_id, &err), SG_OK);
    sg_backend_close(b);
    ctl("stop outage");
}

static void command_timeout_is_network_timeout(void **state)
{
    (void)state;
    int p = private_port(6);
    ctl("start slow %d --enable-debug-command yes", p);
    char u[96];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d?command_timeout_ms=100", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    redisContext *c = redisConnect("127.0.0.1", p);
    redisAppendCommand(c, "DEBUG SLEEP 0.6");
    int done = 0;
    redisBufferWrite(c, &done);
    msleep(50);
    assert_int_equal(sg_acquire(b, "slow", 10000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_NETWORK_TIMEOUT);
    assert_true(err.unknown_outcome);
    redisReply *r;
    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    freeReplyObject(r);
    redisFree(c);
    /* the backend works again afterwards on a fresh connection */
    sg_lock a;
    sg_status st = SG_ERROR;
    for (int i = 0; i < 50 && st != SG_OK; i++) {
        st = sg_acquire(b, "slow-after", 10000, &a, &err);
        if (st != SG_OK)
            msleep(50);
    }
    assert_int_equal(st, SG_OK);
    sg_backend_close(b);
    ctl("stop slow");
}

/* Issue 9 item 4: after a restart (clean or kill -9) every pooled connection
 * is dead; none of that reaches a caller once PING answers again. */
static void no_error_after_restart_with_a_full_pool(void **state)
{
    (void)state;
    int p = private_port(9);
    ctl("start restarted %d", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", p);
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    int errors = 0, ops = 0;
    const char *how[2] = {"stop", "kill9"};
    for (int k = 0; k < 2; k++) {
        fill_pool(b);
        ctl("%s restarted", how[k]);
        ctl("restart restarted"); /* returns once PING answers */
        errors += count_errors(b, how[k], 50);
        ops += 50 * 6;
    }
    fprintf(stderr, "redis: %d operations after 2 restarts with a full pool: %d errors\n", ops,
            errors);
    assert_int_equal(errors, 0);
    sg_backend_close(b);
    ctl("stop restarted");
}

/* SPEC section 4/7: a stalled connection (packets dropped, no FIN or RST)
 * bounds every call by command_timeout_ms (hiredis socket timeouts). */
static void stalled_connection_fails_within_the_command_timeout(void **state)
{
    (void)state;
    pid_t fwd = stall_start(private_port(10), port);
    char u[96];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", private_port(10));
    sg_open_opts o = {.command_timeout_ms = 300};
    sg_backend *b;
    sg_error err;
    assert_int_equal(sg_backend_open(u, &o, &b, &err), SG_OK);
    int64_t worst = check_stalled_calls(b, fwd, "redis", 300);
    fprintf(stderr, "redis: slowest stalled call %lld ms (command timeout 300 ms)\n",
            (long long)worst);
    hostile_stop(fwd);
    sg_backend_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(invalid_input_is_rejected_before_any_io),
        cmocka_unit_test(unix_socket_url),
        cmocka_unit_test(hostile_server_replies_are_errors_not_crashes),
        cmocka_unit_test(password_protected_server),
        cmocka_unit_test(fences_survive_kill9_with_appendfsync_always),
        cmocka_unit_test(non_durable_server_warns_or_is_refused),
        cmocka_unit_test(outage_then_recovery),
        cmocka_unit_test(command_timeout_is_network_timeout),
        cmocka_unit_test(no_error_after_restart_with_a_full_pool),
        cmocka_unit_test(stalled_connection_fails_within_the_command_timeout),
    };
    return cmocka_run_group_tests_name("redis_servers", tests, group_setup, group_teardown);
}
