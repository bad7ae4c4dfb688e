/* test_redis_wake.c — the Redis backend's wake-ups against the real
 * redis-server scripts/test starts (redis_fixture.h): PUBLISH in the release
 * script, one subscriber connection per handle whose subscriptions follow the
 * waiters, and resubscription after a restart (a private server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SG_SUITE "test_redis_wake"
#include "redis_fixture.h"

/* ---- wake-ups: PUBLISH in the release script, one subscriber per handle ---- */
static long long numsub(redisContext *r, const char *channel)
{
    redisReply *x = redisCommand(r, "PUBSUB NUMSUB %s", channel);
    assert_non_null(x);
    long long n = x->type == REDIS_REPLY_ARRAY && x->elements == 2 ? x->element[1]->integer : -1;
    freeReplyObject(x);
    return n;
}

/* Clients in subscriber mode with exactly `subs` channels. */
static int subscribers_with(redisContext *r, int subs)
{
    redisReply *x = redisCommand(r, "CLIENT LIST");
    assert_non_null(x);
    char needle[32];
    snprintf(needle, sizeof needle, " sub=%d ", subs);
    int n = 0;
    for (const char *p = x->str; p && (p = strstr(p, needle)); p++)
        n++;
    freeReplyObject(x);
    return n;
}

static void release_publishes_and_subscriptions_follow_the_waiters(void **state)
{
    (void)state;
    sg_backend *b; /* a fresh handle: its subscriber is the only one with 3 channels */
    sg_error err;
    assert_int_equal(sg_backend_open(url, NULL, &b, &err), SG_OK);
    wake_count c1 = {PTHREAD_MUTEX_INITIALIZER, 0}, c2 = c1, c3 = c1;
    sg_watch *w1 = sg_watch_key(b, "wk:a", count_wake, &c1);
    sg_watch *w2 = sg_watch_key(b, "wk:a", count_wake, &c2); /* two waiters, one channel */
    sg_watch *w3 = sg_watch_key(b, "wk:b", count_wake, &c3);
    assert_non_null(w1);
    assert_non_null(w2);
    assert_non_null(w3);
    /* each is told once that its subscription is in place */
    assert_true(wait_wakes(&c1, 1, 3000) && wait_wakes(&c2, 1, 3000) && wait_wakes(&c3, 1, 3000));
    assert_int_equal(numsub(R, "syncguard:wk:a:wake"), 1);
    assert_int_equal(numsub(R, "syncguard:wk:b:wake"), 1);
    assert_int_equal(subscribers_with(R, 2), 1); /* one connection for both keys */

    /* a release by another handle (another process) wakes the key's waiters only */
    sg_lock l;
    assert_int_equal(sg_acquire(B, "wk:a", 10000, &l, &err), SG_OK);
    assert_int_equal(sg_release(B, l.lock_id, &err), SG_OK);
    assert_true(wait_wakes(&c1, 2, 3000) && wait_wakes(&c2, 2, 3000));
    msleep(50);
    assert_int_equal(wakes(&c3), 1);
    /* a release that deletes nothing announces nothing */
    assert_int_equal(sg_release(B, l.lock_id, &err), SG_ABSENT);
    msleep(100);
    assert_int_equal(wakes(&c1), 2);

    /* the last waiter of a key gone: unsubscribed */
    sg_unwatch(b, w1);
    msleep(100);
    assert_int_equal(numsub(R, "syncguard:wk:a:wake"), 1); /* w2 still waits */
    sg_unwatch(b, w2);
    sg_unwatch(b, w3);
    for (int i = 0; i < 300 && (numsub(R, "syncguard:wk:a:wake") || numsub(R, "syncguard:wk:b:wake")); i++)
        msleep(10);
    assert_int_equal(numsub(R, "syncguard:wk:a:wake"), 0);
    assert_int_equal(numsub(R, "syncguard:wk:b:wake"), 0);
    sg_backend_close(b);
}

static void subscriber_resubscribes_after_a_restart(void **state)
{
    (void)state;
    int p = private_port(11);
    ctl("start wakerestart %d --appendonly yes --appendfsync always", p);
    char u[64];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d?connect_timeout_ms=300", p);
    sg_backend *b, *other;
    sg_error err;
    assert_int_equal(sg_backend_open(u, NULL, &b, &err), SG_OK);
    assert_int_equal(sg_backend_open(u, NULL, &other, &err), SG_OK);
    wake_count c = {PTHREAD_MUTEX_INITIALIZER, 0};
    sg_watch *w = sg_watch_key(b, "wk:restart", count_wake, &c);
    assert_true(wait_wakes(&c, 1, 3000));
    ctl("kill9 wakerestart");
    ctl("restart wakerestart");
    assert_true(wait_wakes(&c, 2, 10000)); /* reconnected, subscribed again: woken once */
    int before = wakes(&c);
    sg_lock l;
    assert_int_equal(sg_acquire(other, "wk:restart", 10000, &l, &err), SG_OK);
    assert_int_equal(sg_release(other, l.lock_id, &err), SG_OK);
    assert_true(wait_wakes(&c, before + 1, 3000)); /* and announcements arrive again */
    sg_unwatch(b, w);
    sg_backend_close(b);
    sg_backend_close(other);
    ctl("stop wakerestart");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(release_publishes_and_subscriptions_follow_the_waiters),
        cmocka_unit_test(subscriber_resubscribes_after_a_restart),
    };
    return cmocka_run_group_tests_name("redis_wake", tests, group_setup, group_teardown);
}
