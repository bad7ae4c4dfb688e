/* test_conformance.c — the lock contract, the same for every backend, run
 * against a real server: SG_CONFORMANCE_URL (set per suite by meson from the
 * URLs scripts/test exports). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "syncguard_backend.h"

static sg_backend *B;
static const char *URL;
static char run_id[32];


static const char *k(const char *name)
{
    static _Thread_local char buf[8][128];
    static _Thread_local int i;
    char *s = buf[i++ % 8];
    snprintf(s, 128, "%s:%s", run_id, name);
    return s;
}

static int group_setup(void **state)
{
    (void)state;
    const char *var = getenv("SG_CONFORMANCE_VAR"), *url;
    snprintf(run_id, sizeof run_id, "conf%d", (int)getpid());
    int rc = open_from_env("conformance", var ? var : "SG_CONFORMANCE_VAR", NULL, &url, &B);
    URL = url;
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    sg_backend_close(B);
    return 0;
}

static void lifecycle(void **state)
{
    (void)state;
    sg_lock a;
    sg_error err;
    bool locked = false;
    assert_int_equal(sg_acquire(B, k("life"), 10000, &a, &err), SG_OK);
    assert_int_equal(a.expires_at_ms - a.acquired_at_ms, 10000);
    assert_true(llabs(a.acquired_at_ms - sg_now_ms()) < 5000);
    assert_int_equal(sg_is_locked(B, k("life"), &locked, &err), SG_OK);
    assert_true(locked);
    int64_t exp;
    assert_int_equal(sg_extend(B, a.lock_id, 20000, &exp, &err), SG_OK);
    assert_true(exp > a.expires_at_ms);
    assert_int_equal(sg_release(B, a.lock_id, &err), SG_OK);
    assert_int_equal(sg_is_locked(B, k("life"), &locked, &err), SG_OK);
    assert_false(locked);
}

static void contention_and_ownership(void **state)
{
    (void)state;
    sg_lock a, b;
    char other[SG_LOCK_ID_LEN + 1];
    assert_int_equal(sg_acquire(B, k("own"), 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_acquire(B, k("own"), 10000, &b, NULL), SG_CONTENDED);
    sg_lock_id_generate(other, NULL);
    assert_int_equal(sg_release(B, other, NULL), SG_ABSENT);
    assert_int_equal(sg_extend(B, other, 10000, NULL, NULL), SG_ABSENT);
    bool locked = false;
    assert_int_equal(sg_is_locked(B, k("own"), &locked, NULL), SG_OK);
    assert_true(locked);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_ABSENT); /* double release */
    assert_int_equal(sg_acquire(B, k("own"), 10000, &b, NULL), SG_OK);
    assert_int_equal(sg_release(B, b.lock_id, NULL), SG_OK);
}

static void extend_replaces_and_never_resurrects(void **state)
{
    (void)state;
    sg_lock a;
    int64_t exp;
    assert_int_equal(sg_acquire(B, k("ext"), 60000, &a, NULL), SG_OK);
    assert_int_equal(sg_extend(B, a.lock_id, 2000, &exp, NULL), SG_OK);
    assert_true(exp < a.expires_at_ms); /* replaced, not added */
    sg_lock_info info;
    assert_int_equal(sg_lookup_key(B, k("ext"), &info, NULL), SG_OK);
    assert_int_equal(info.expires_at_ms, exp);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);

    assert_int_equal(sg_acquire(B, k("dead"), 100, &a, NULL), SG_OK);
    msleep(1300); /* past expiry and the 1 s tolerance */
    assert_int_equal(sg_extend(B, a.lock_id, 60000, NULL, NULL), SG_ABSENT);
    bool locked = true;
    assert_int_equal(sg_is_locked(B, k("dead"), &locked, NULL), SG_OK);
    assert_false(locked);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_ABSENT);
}

static void fences_rise_per_key_independently(void **state)
{
    (void)state;
    char last_a[16] = "", last_b[16] = "";
    for (int i = 0; i < 10; i++) {
        sg_lock a;
        assert_int_equal(sg_acquire(B, k("fa"), 10000, &a, NULL), SG_OK);
        assert_int_equal(strlen(a.fence), 15);
        assert_true(strcmp(a.fence, last_a) > 0);
        strcpy(last_a, a.fence);
        assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
        if (i % 5 == 0) {
            assert_int_equal(sg_acquire(B, k("fb"), 10000, &a, NULL), SG_OK);
            assert_true(strcmp(a.fence, last_b) > 0);
            strcpy(last_b, a.fence);
            assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
        }
    }
    assert_string_equal(last_a, "000000000000010");
    assert_string_equal(last_b, "000000000000002");
}

static void lookups_sanitized_and_absent_when_free(void **state)
{
    (void)state;
    sg_lock a;
    sg_lock_info info;
    assert_int_equal(sg_acquire(B, k("look"), 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_lookup_key(B, k("look"), &info, NULL), SG_OK);
    assert_string_equal(info.lock_id, "");
    assert_string_equal(info.key, "");
    assert_string_equal(info.fence, a.fence);
    assert_int_equal(info.acquired_at_ms, a.acquired_at_ms);
    assert_int_equal(sg_lookup_id_raw(B, a.lock_id, &info, NULL), SG_OK);
    assert_string_equal(info.lock_id, a.lock_id);
    assert_string_equal(info.key, k("look"));
    char h[SG_HASH_LEN + 1];
    sg_key_hash(k("look"), h);
    assert_string_equal(info.key_hash, h);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    assert_int_equal(sg_lookup_key(B, k("look"), &info, NULL), SG_ABSENT);
    assert_int_equal(sg_lookup_id(B, a.lock_id, &info, NULL), SG_ABSENT);
}

static void unicode_and_long_keys(void **state)
{
    (void)state;
    char key[600];
    memset(key, 'q', 512);
    key[512] = '\0';
    sg_lock a;
    assert_int_equal(sg_acquire(B, key, 10000, &a, NULL), SG_OK);
    sg_lock_info info;
    assert_int_equal(sg_lookup_key_raw(B, key, &info, NULL), SG_OK);
    assert_string_equal(info.key, key);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    assert_int_equal(sg_acquire(B, k("e\xcc\x81/a b"), 10000, &a, NULL), SG_OK);
    assert_int_equal(sg_acquire(B, k("\xc3\xa9/a b"), 10000, NULL, NULL), SG_CONTENDED);
    assert_int_equal(sg_release(B, a.lock_id, NULL), SG_OK);
    sg_error err;
    assert_int_equal(sg_acquire(B, "", 1000, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
}

/* ---- races ---- */
typedef struct race {
    const char *key;
    pthread_barrier_t *go;
    sg_status st;
    sg_lock lock;
    int kind; /* 0 acquire, 1 extend of `extend_id` */
    const char *extend_id;
} race;

static void *racer(void *arg)
{
    race *r = arg;
    pthread_barrier_wait(r->go);
    sg_error err;
    if (r->kind == 0)
        r->st = sg_acquire(B, r->key, 10000, &r->lock, &err);
    else
        r->st = sg_extend(B, r->extend_id, 10000, NULL, &err);
    if (r->st == SG_ERROR)
        fprintf(stderr, "racer error: %s\n", err.message);
    return NULL;
}

static int race_acquire(const char *key, int n, race *rs)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    pthread_t t[8];
    for (int i = 0; i < n; i++) {
        rs[i] = (race){.key = key, .go = &go};
        pthread_create(&t[i], NULL, racer, &rs[i]);
    }
    int won = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        assert_int_not_equal(rs[i].st, SG_ERROR);
        won += rs[i].st == SG_OK;
    }
    pthread_barrier_destroy(&go);
    return won;
}

static void racing_acquirers_on_absent_and_expired_keys(void **state)
{
    (void)state;
    race rs[6];
    char key[64];
    for (int round = 0; round < 10; round++) {
        snprintf(key, sizeof key, "%s:race%d", run_id, round);
        assert_int_equal(race_acquire(key, 6, rs), 1);
        for (int i = 0; i < 6; i++)
            if (rs[i].st == SG_OK)
                assert_int_equal(sg_release(B, rs[i].lock.lock_id, NULL), SG_OK);
    }
    /* an expired holder: exactly one of the racers takes over */
    sg_lock old;
    assert_int_equal(sg_acquire(B, k("expired-race"), 50, &old, NULL), SG_OK);
    msleep(1200);
    assert_int_equal(race_acquire(k("expired-race"), 6, rs), 1);
    char prev[16];
    strcpy(prev, old.fence);
    for (int i = 0; i < 6; i++)
        if (rs[i].st == SG_OK) {
            assert_true(strcmp(rs[i].lock.fence, prev) > 0);
            assert_int_equal(sg_release(B, rs[i].lock.lock_id, NULL), SG_OK);
        }
}

static void extend_racing_acquire_of_an_expiring_lock(void **state)
{
    (void)state;
    /* around the end of life (expiry + tolerance), an extend and an acquire
     * race: never both succeed */
    for (int i = 0; i < 6; i++) {
        sg_lock a;
        assert_int_equal(sg_acquire(B, k("edge"), 200, &a, NULL), SG_OK);
        msleep(1150 + 15 * i);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        race ext = {.go = &go, .kind = 1, .extend_id = a.lock_id};
        race acq = {.go = &go, .key = k("edge")};
        pthread_t t1, t2;
        pthread_create(&t1, NULL, racer, &ext);
        pthread_create(&t2, NULL, racer, &acq);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        pthread_barrier_destroy(&go);
        assert_false(ext.st == SG_OK && acq.st == SG_OK);
        if (acq.st == SG_OK)
            sg_release(B, acq.lock.lock_id, NULL);
        sg_release(B, a.lock_id, NULL);
    }
}

static atomic_int inside, max_inside, sections;
static void *contender(void *arg)
{
    (void)arg;
    sg_acquire_opts o = {.timeout_ms = 60000, .retry_delay_ms = 2, .max_delay_ms = 20,
                         .max_retries = 1000000};
    for (int i = 0; i < 15; i++) {
        sg_lock lock;
        sg_error err;
        if (sg_acquire_retry(B, k("mutex"), 10000, &o, &lock, &err) != SG_OK)
            fail_msg("acquire failed: %s", err.message);
        int now = atomic_fetch_add(&inside, 1) + 1;
        int m = atomic_load(&max_inside);
        while (now > m && !atomic_compare_exchange_weak(&max_inside, &m, now))
            ;
        usleep(300);
        atomic_fetch_sub(&inside, 1);
        atomic_fetch_add(&sections, 1);
        if (sg_release(B, lock.lock_id, &err) != SG_OK)
            fail_msg("release failed: %s", err.message);
    }
    return NULL;
}

static void many_threads_never_both_hold(void **state)
{
    (void)state;
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&t[i], NULL, contender, NULL);
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&max_inside), 1);
    assert_int_equal(atomic_load(&sections), 90);
}

static int listed;
static void on_key(const char *key, void *ud)
{
    (void)ud;
    if (!strncmp(key, run_id, strlen(run_id)) && strstr(key, ":list"))
        listed++;
}

static void list_sees_every_live_lock(void **state)
{
    (void)state;
    sg_lock locks[25];
    char key[64];
    for (int i = 0; i < 25; i++) {
        snprintf(key, sizeof key, "%s:list%d", run_id, i);
        assert_int_equal(sg_acquire(B, key, 10000, &locks[i], NULL), SG_OK);
    }
    char cursor[SG_CURSOR_LEN] = "";
    int pages = 0;
    listed = 0;
    do {
        assert_int_equal(sg_list(B, cursor, 7, on_key, NULL, NULL), SG_OK);
    } while (cursor[0] && ++pages < 10000);
    assert_true(listed >= 25);
    for (int i = 0; i < 25; i++)
        assert_int_equal(sg_release(B, locks[i].lock_id, NULL), SG_OK);
}

/* ---- waiting: the holder's expiry, push wake-ups ---- */
static bool free_at_tolerance(void) /* Redis deletes at expiresAtMs (PX) */
{
    return strcmp(sg_backend_capabilities(B)->name, "redis") != 0;
}

static void contended_acquire_tells_when_the_holder_frees(void **state)
{
    (void)state;
    sg_lock a, b;
    sg_holder h;
    sg_error err;
    assert_int_equal(sg_acquire(B, k("holder"), 5000, &a, &err), SG_OK);
    int64_t mono = sg_monotonic_ms();
    assert_int_equal(sg_acquire_holder(B, k("holder"), 5000, &b, &h, &err), SG_CONTENDED);
    assert_int_equal(h.expires_at_ms, a.expires_at_ms);
    int64_t want = 5000 + (free_at_tolerance() ? SG_TOLERANCE_MS : 0);
    assert_true(h.free_at_ms - a.acquired_at_ms >= want && h.free_at_ms - a.acquired_at_ms <= want + 1);
    assert_true(h.free_at_mono_ms > mono + want - 500 && h.free_at_mono_ms < mono + want + 500);
    assert_int_equal(sg_release(B, a.lock_id, &err), SG_OK);
}

typedef struct waiter_run {
    sg_backend *b;
    const char *key;
    int64_t ttl;
    sg_acquire_opts o;
    sg_status st;
    int64_t got_ms; /* monotonic */
    sg_lock lock;
} waiter_run;

static void *waiter_main(void *arg)
{
    waiter_run *w = arg;
    sg_error err;
    w->st = sg_acquire_retry(w->b, w->key, w->ttl, &w->o, &w->lock, &err);
    w->got_ms = sg_monotonic_ms();
    return NULL;
}

/* Backoff far beyond the test: only a wake-up (or the expiry timing) can
 * serve the waiter quickly. */
static sg_acquire_opts slow_polling(void)
{
    return (sg_acquire_opts){.timeout_ms = 20000, .retry_delay_ms = 10000,
                             .max_delay_ms = 30000, .jitter = SG_JITTER_NONE};
}

static void waiter_in_another_process_is_woken_by_the_release(void **state)
{
    (void)state;
    if (!B->ops->watch) {
        skip(); /* Firestore: no push over REST (expiry timing and polling only) */
        return;
    }
    sg_backend *other; /* its own connections and subscriber, like another process */
    sg_error err;
    assert_int_equal(sg_backend_open(URL, NULL, &other, &err), SG_OK);
    for (int round = 0; round < 3; round++) {
        sg_lock a;
        assert_int_equal(sg_acquire(B, k("handoff"), 30000, &a, &err), SG_OK);
        waiter_run w = {.b = other, .key = k("handoff"), .ttl = 30000, .o = slow_polling()};
        pthread_t t;
        pthread_create(&t, NULL, waiter_main, &w);
        msleep(300); /* parked and subscribed */
        int64_t t0 = sg_monotonic_ms();
        assert_int_equal(sg_release(B, a.lock_id, &err), SG_OK);
        pthread_join(t, NULL);
        assert_int_equal(w.st, SG_OK);
        fprintf(stderr, "conformance: handoff through a wake-up took %lld ms\n",
                (long long)(w.got_ms - t0));
        assert_true(w.got_ms - t0 < 500); /* generous: timing is the benchmark's */
        assert_int_equal(sg_release(other, w.lock.lock_id, &err), SG_OK);
    }
    sg_backend_close(other);
}

static void expiring_lock_wakes_the_waiter_at_its_expiry(void **state)
{
    (void)state;
    sg_backend *other;
    sg_error err;
    assert_int_equal(sg_backend_open(URL, NULL, &other, &err), SG_OK);
    sg_lock a; /* never released: it expires, which nobody announces */
    assert_int_equal(sg_acquire(B, k("expiring"), 1500, &a, &err), SG_OK);
    int64_t t0 = sg_monotonic_ms();
    waiter_run w = {.b = other, .key = k("expiring"), .ttl = 30000, .o = slow_polling()};
    waiter_main(&w);
    assert_int_equal(w.st, SG_OK);
    int64_t want = 1500 + (free_at_tolerance() ? SG_TOLERANCE_MS : 0);
    fprintf(stderr, "conformance: free after %lld ms, waiter served after %lld ms\n",
            (long long)want, (long long)(w.got_ms - t0));
    assert_true(w.got_ms - t0 >= want - 100);
    assert_true(w.got_ms - t0 < want + 500); /* at the expiry, not at the next poll */
    assert_int_equal(sg_release(other, w.lock.lock_id, &err), SG_OK);
    sg_backend_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lifecycle),
        cmocka_unit_test(contention_and_ownership),
        cmocka_unit_test(extend_replaces_and_never_resurrects),
        cmocka_unit_test(fences_rise_per_key_independently),
        cmocka_unit_test(lookups_sanitized_and_absent_when_free),
        cmocka_unit_test(unicode_and_long_keys),
        cmocka_unit_test(racing_acquirers_on_absent_and_expired_keys),
        cmocka_unit_test(extend_racing_acquire_of_an_expiring_lock),
        cmocka_unit_test(many_threads_never_both_hold),
        cmocka_unit_test(list_sees_every_live_lock),
        cmocka_unit_test(contended_acquire_tells_when_the_holder_frees),
        cmocka_unit_test(waiter_in_another_process_is_woken_by_the_release),
        cmocka_unit_test(expiring_lock_wakes_the_waiter_at_its_expiry),
    };
    return cmocka_run_group_tests_name("conformance", tests, group_setup, group_teardown);
}
