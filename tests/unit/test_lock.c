/* test_lock.c — the core's lock operations, retry helper, scoped lock,
 * heartbeat and telemetry, driven by a scripted in-process test backend
 * (a test double for core logic, not a server). */
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
#include <time.h>
#include <unistd.h>

#include "syncguard_backend.h"

/* ---- the scripted backend ---- */
typedef struct step {
    sg_status st;
    sg_code code;
    bool unknown;
} step;

typedef struct script {
    step acquire[32];   /* consumed in order; past the end: last one repeats */
    int n_acquire;
    sg_status release_st;
    sg_code release_code;
    sg_status extend_st;
    int acquire_calls, release_calls, extend_calls, lookup_calls;
    char acquired_ids[32][SG_LOCK_ID_LEN + 1];
    char released_ids[32][SG_LOCK_ID_LEN + 1];
    char last_key[SG_KEY_MAX + 1];
    int64_t holder_free_in_ms; /* contended: the holder is free this much later */
    bool closed;
} script;

static sg_status s_acquire(sg_backend *b, const char *key, const char *id, int64_t ttl,
                           sg_lock *out, sg_holder *holder, sg_error *err)
{
    script *s = b->impl;
    int i = s->acquire_calls < s->n_acquire ? s->acquire_calls : s->n_acquire - 1;
    snprintf(s->acquired_ids[s->acquire_calls % 32], SG_LOCK_ID_LEN + 1, "%s", id);
    snprintf(s->last_key, sizeof s->last_key, "%s", key);
    s->acquire_calls++;
    step st = s->acquire[i];
    if (st.st == SG_ERROR) {
        sg_error_set(err, st.code, "scripted failure");
        err->unknown_outcome = st.unknown;
        return SG_ERROR;
    }
    if (st.st == SG_OK) {
        sg_fence_format((uint64_t)s->acquire_calls, out->fence);
        out->acquired_at_ms = sg_now_ms();
        out->expires_at_ms = out->acquired_at_ms + ttl;
    }
    if (st.st == SG_CONTENDED && s->holder_free_in_ms) {
        /* a backend clock 1 h ahead of ours: only the difference counts */
        holder->now_ms = sg_now_ms() + 3600000;
        holder->expires_at_ms = holder->now_ms + s->holder_free_in_ms;
        holder->free_at_ms = holder->expires_at_ms;
    }
    return st.st;
}

static sg_status s_release(sg_backend *b, const char *id, sg_error *err)
{
    script *s = b->impl;
    snprintf(s->released_ids[s->release_calls % 32], SG_LOCK_ID_LEN + 1, "%s", id);
    s->release_calls++;
    if (s->release_st == SG_ERROR)
        return sg_error_set(err, s->release_code, "scripted release failure");
    return s->release_st;
}

static sg_status s_extend(sg_backend *b, const char *id, int64_t ttl, int64_t *exp,
                          sg_error *err)
{
    (void)id, (void)err;
    script *s = b->impl;
    s->extend_calls++;
    *exp = sg_now_ms() + ttl;
    return s->extend_st;
}

static sg_status s_is_locked(sg_backend *b, const char *key, bool *locked, sg_error *err)
{
    (void)err;
    script *s = b->impl;
    s->lookup_calls++;
    *locked = !strcmp(key, "held");
    return SG_OK;
}

static sg_status s_lookup(sg_backend *b, const char *key, sg_lock_info *out, sg_error *err)
{
    (void)err;
    script *s = b->impl;
    s->lookup_calls++;
    if (strcmp(key, "held") != 0)
        return SG_ABSENT;
    snprintf(out->key, sizeof out->key, "%s", key);
    snprintf(out->lock_id, sizeof out->lock_id, "AAAAAAAAAAAAAAAAAAAAAA");
    snprintf(out->fence, sizeof out->fence, "000000000000007");
    out->expires_at_ms = 2;
    out->acquired_at_ms = 1;
    return SG_OK;
}

static sg_status s_lookup_id(sg_backend *b, const char *id, sg_lock_info *out, sg_error *err)
{
    (void)id;
    return s_lookup(b, "held", out, err);
}

static void s_close(sg_backend *b)
{
    ((script *)b->impl)->closed = true;
}

/* Wake-ups: remember the callback; a test thread calls it. */
static sg_wake_fn watched_fn;
static void *watched_ud;
static int watches, unwatches;

static sg_watch *s_watch(sg_backend *b, const char *key, sg_wake_fn fn, void *ud)
{
    (void)b, (void)key;
    __atomic_store_n(&watched_ud, ud, __ATOMIC_SEQ_CST);
    __atomic_store_n(&watched_fn, fn, __ATOMIC_SEQ_CST);
    watches++;
    return (sg_watch *)&watched_fn;
}

static void s_unwatch(sg_backend *b, sg_watch *w)
{
    (void)b, (void)w;
    __atomic_store_n(&watched_fn, NULL, __ATOMIC_SEQ_CST);
    unwatches++;
}

static const sg_backend_ops script_ops = {s_acquire, s_release, s_extend, s_is_locked,
                                          s_lookup, s_lookup_id, NULL, s_close,
                                          s_watch, s_unwatch};

static script S;
static sg_backend B;

static int setup(void **state)
{
    (void)state;
    memset(&S, 0, sizeof S);
    watches = unwatches = 0;
    S.acquire[0] = (step){SG_OK, 0, false};
    S.n_acquire = 1;
    S.release_st = SG_OK;
    S.extend_st = SG_OK;
    B = (sg_backend){&script_ops, {"script", true, SG_TIME_CLIENT}, &S};
    return 0;
}

static void always_contended(void)
{
    S.acquire[0] = (step){SG_CONTENDED, 0, false};
    S.n_acquire = 1;
}

/* ---- single operations ---- */
static void acquire_normalizes_key_and_returns_lock(void **state)
{
    (void)state;
    sg_lock lock;
    sg_error err;
    assert_int_equal(sg_acquire(&B, "e\xcc\x81", 1000, &lock, &err), SG_OK);
    assert_string_equal(S.last_key, "\xc3\xa9");
    assert_string_equal(lock.key, "\xc3\xa9");
    assert_true(sg_lock_id_valid(lock.lock_id));
    assert_string_equal(lock.lock_id, S.acquired_ids[0]);
    assert_string_equal(lock.fence, "000000000000001");
}

static void invalid_input_is_rejected_before_any_io(void **state)
{
    (void)state;
    sg_lock lock;
    sg_error err;
    assert_int_equal(sg_acquire(&B, "", 1000, &lock, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_acquire(&B, "k", 0, &lock, &err), SG_ERROR);
    assert_int_equal(sg_acquire(&B, "k", SG_TTL_MAX_MS + 1, &lock, &err), SG_ERROR);
    assert_int_equal(sg_acquire(&B, "\xff", 1000, &lock, &err), SG_ERROR);
    assert_int_equal(sg_release(&B, "short", &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_INVALID_ARGUMENT);
    assert_int_equal(sg_extend(&B, "AAAAAAAAAAAAAAAAAAAAAA", -1, NULL, &err), SG_ERROR);
    assert_int_equal(sg_extend(&B, "AAAAAAAAAAAAAAAAAAAAA=", 10, NULL, &err), SG_ERROR);
    assert_int_equal(sg_lookup_id(&B, "../../etc/passwd", NULL, &err), SG_ERROR);
    assert_int_equal(sg_is_locked(&B, NULL, NULL, &err), SG_ERROR);
    assert_int_equal(S.acquire_calls + S.release_calls + S.extend_calls + S.lookup_calls, 0);
}

static void unknown_outcome_releases_the_ghost_before_returning(void **state)
{
    (void)state;
    S.acquire[0] = (step){SG_ERROR, SG_E_NETWORK_TIMEOUT, true};
    sg_lock lock;
    sg_error err;
    assert_int_equal(sg_acquire(&B, "job", 1000, &lock, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_NETWORK_TIMEOUT);
    assert_int_equal(S.release_calls, 1);
    assert_string_equal(S.released_ids[0], S.acquired_ids[0]);
    assert_string_equal(err.lock_id, S.acquired_ids[0]);
    assert_string_equal(err.key, "job");
}

static void known_failure_does_not_release(void **state)
{
    (void)state;
    S.acquire[0] = (step){SG_ERROR, SG_E_SERVICE_UNAVAILABLE, false};
    sg_error err;
    assert_int_equal(sg_acquire(&B, "job", 1000, NULL, &err), SG_ERROR);
    assert_int_equal(S.release_calls, 0);
}

static void lookups_are_sanitized_unless_raw(void **state)
{
    (void)state;
    sg_lock_info info;
    assert_int_equal(sg_lookup_key(&B, "held", &info, NULL), SG_OK);
    assert_string_equal(info.key, "");
    assert_string_equal(info.lock_id, "");
    char h[SG_HASH_LEN + 1];
    sg_key_hash("held", h);
    assert_string_equal(info.key_hash, h);
    sg_key_hash("AAAAAAAAAAAAAAAAAAAAAA", h);
    assert_string_equal(info.lock_id_hash, h);
    assert_string_equal(info.fence, "000000000000007");
    assert_int_equal(sg_lookup_key_raw(&B, "held", &info, NULL), SG_OK);
    assert_string_equal(info.key, "held");
    assert_string_equal(info.lock_id, "AAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(sg_lookup_id(&B, "AAAAAAAAAAAAAAAAAAAAAA", &info, NULL), SG_OK);
    assert_string_equal(info.lock_id, "");
    assert_int_equal(sg_lookup_key(&B, "free", &info, NULL), SG_ABSENT);
    bool locked = true;
    assert_int_equal(sg_is_locked(&B, "free", &locked, NULL), SG_OK);
    assert_false(locked);
}

/* ---- retry helper ---- */
static void retry_makes_max_retries_plus_one_attempts(void **state)
{
    (void)state;
    always_contended();
    sg_acquire_opts o = sg_acquire_opts_default();
    o.retry_delay_ms = 1;
    o.backoff = SG_BACKOFF_FIXED;
    o.jitter = SG_JITTER_NONE;
    o.timeout_ms = 60000;
    sg_error err;
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, &o, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_ACQUISITION_TIMEOUT);
    assert_int_equal(S.acquire_calls, 11);
    assert_string_equal(err.key, "k");

    setup(NULL);
    always_contended();
    o.max_retries = 3;
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, &o, NULL, &err), SG_ERROR);
    assert_int_equal(S.acquire_calls, 4);
}

static void retry_succeeds_when_the_lock_frees(void **state)
{
    (void)state;
    S.acquire[0] = S.acquire[1] = (step){SG_CONTENDED, 0, false};
    S.acquire[2] = (step){SG_OK, 0, false};
    S.n_acquire = 3;
    sg_acquire_opts o = {.retry_delay_ms = 1};
    sg_lock lock;
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, &o, &lock, NULL), SG_OK);
    assert_int_equal(S.acquire_calls, 3);
    assert_string_equal(lock.lock_id, S.acquired_ids[2]);
}

/* Backoff of 10 s: only the holder's expiry can make the retry come sooner. */
static void retry_comes_when_the_holder_frees(void **state)
{
    (void)state;
    S.acquire[0] = (step){SG_CONTENDED, 0, false};
    S.acquire[1] = (step){SG_OK, 0, false};
    S.n_acquire = 2;
    S.holder_free_in_ms = 150;
    sg_acquire_opts o = {.timeout_ms = 20000, .retry_delay_ms = 10000,
                         .jitter = SG_JITTER_NONE};
    int64_t t0 = sg_monotonic_ms();
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, &o, NULL, NULL), SG_OK);
    int64_t dt = sg_monotonic_ms() - t0;
    assert_true(dt >= 140 && dt < 2000); /* at the expiry, on our clock */
    assert_int_equal(S.acquire_calls, 2);
    assert_int_equal(watches, 1);
    assert_int_equal(unwatches, 1);
}

static void *wake_soon(void *arg)
{
    (void)arg;
    usleep(100000);
    sg_wake_fn fn = __atomic_load_n(&watched_fn, __ATOMIC_SEQ_CST);
    if (fn)
        fn(__atomic_load_n(&watched_ud, __ATOMIC_SEQ_CST));
    return NULL;
}

static void retry_comes_at_a_wake_up_and_it_does_not_count(void **state)
{
    (void)state;
    S.acquire[0] = (step){SG_CONTENDED, 0, false};
    S.acquire[1] = (step){SG_OK, 0, false};
    S.n_acquire = 2;
    watches = unwatches = 0;
    /* one retry, 10 s away: the wake-up attempt serves it (and is not that retry) */
    sg_acquire_opts o = {.timeout_ms = 5000, .max_retries = 1, .retry_delay_ms = 10000};
    pthread_t t;
    pthread_create(&t, NULL, wake_soon, NULL);
    int64_t t0 = sg_monotonic_ms();
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, &o, NULL, NULL), SG_OK);
    int64_t dt = sg_monotonic_ms() - t0;
    pthread_join(t, NULL);
    assert_true(dt >= 90 && dt < 2000);
    assert_int_equal(watches, 1);
    assert_int_equal(unwatches, 1);
}

static void retry_returns_backend_errors_at_once(void **state)
{
    (void)state;
    S.acquire[0] = (step){SG_ERROR, SG_E_AUTH_FAILED, false};
    sg_error err;
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, NULL, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_AUTH_FAILED);
    assert_int_equal(S.acquire_calls, 1);
}

static void retry_delays_follow_backoff_and_jitter(void **state)
{
    (void)state;
    sg_acquire_opts o = sg_acquire_opts_default();
    o.jitter = SG_JITTER_NONE;
    assert_int_equal(sg_retry_delay_ms(&o, 1, 100000, 0.5), 100);
    assert_int_equal(sg_retry_delay_ms(&o, 2, 100000, 0.5), 200);
    assert_int_equal(sg_retry_delay_ms(&o, 4, 100000, 0.5), 800);
    assert_int_equal(sg_retry_delay_ms(&o, 5, 50, 0.5), 50); /* never past the timeout */
    assert_int_equal(sg_retry_delay_ms(&o, 1, 0, 0.5), 0);
    assert_int_equal(sg_retry_delay_ms(&o, 1000, 1 << 30, 0.5), 1 << 30); /* no overflow */
    o.max_delay_ms = 1000;
    assert_int_equal(sg_retry_delay_ms(&o, 10, 100000, 0.5), 1000);
    o.max_delay_ms = 0;
    o.backoff = SG_BACKOFF_FIXED;
    assert_int_equal(sg_retry_delay_ms(&o, 7, 100000, 0.5), 100);
    o.backoff = SG_BACKOFF_EXPONENTIAL;

    o.jitter = SG_JITTER_EQUAL; /* uniform in [d/2, d] */
    assert_int_equal(sg_retry_delay_ms(&o, 3, 100000, 0.0), 200);
    assert_int_equal(sg_retry_delay_ms(&o, 3, 100000, 0.999999), 399);
    o.jitter = SG_JITTER_FULL; /* uniform in [0, d] */
    assert_int_equal(sg_retry_delay_ms(&o, 3, 100000, 0.0), 0);
    assert_int_equal(sg_retry_delay_ms(&o, 3, 100000, 0.5), 200);

    /* bounds over many draws, every mode, every retry number */
    srand(7);
    for (int mode = 0; mode < 3; mode++) {
        o.jitter = (sg_jitter)mode;
        for (int n = 1; n <= 11; n++) {
            int64_t d = 100LL << (n - 1);
            for (int i = 0; i < 200; i++) {
                double r = rand() / ((double)RAND_MAX + 1);
                int64_t remaining = rand() % 300000;
                int64_t got = sg_retry_delay_ms(&o, n, remaining, r);
                assert_true(got >= 0 && got <= remaining);
                assert_true(got <= d);
                if (mode == SG_JITTER_EQUAL && d / 2 <= remaining)
                    assert_true(got >= d / 2);
            }
        }
    }
}

static void retry_stops_at_the_timeout(void **state)
{
    (void)state;
    always_contended();
    sg_acquire_opts o = {.timeout_ms = 300, .retry_delay_ms = 100, .jitter = SG_JITTER_NONE};
    int64_t t0 = sg_monotonic_ms();
    sg_error err;
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, &o, NULL, &err), SG_ERROR);
    int64_t elapsed = sg_monotonic_ms() - t0;
    assert_int_equal(err.code, SG_E_ACQUISITION_TIMEOUT);
    /* delays 100, 200 (capped to the remaining ~200): attempts at 0, 100, 300 */
    assert_true(S.acquire_calls >= 2 && S.acquire_calls <= 3);
    assert_true(elapsed >= 290);
    assert_true(elapsed < 2000); /* generous: only "does not run on past the timeout" */
}

static volatile int abort_flag; /* sg_acquire_opts.abort: a plain int */
static void *set_abort_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    __atomic_store_n(&abort_flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void abort_during_sleep_returns_aborted(void **state)
{
    (void)state;
    always_contended();
    __atomic_store_n(&abort_flag, 0, __ATOMIC_RELEASE);
    sg_acquire_opts o = {.timeout_ms = 60000, .retry_delay_ms = 30000,
                         .jitter = SG_JITTER_NONE, .abort = &abort_flag};
    pthread_t t;
    pthread_create(&t, NULL, set_abort_later, NULL);
    int64_t t0 = sg_monotonic_ms();
    sg_error err;
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, &o, NULL, &err), SG_ERROR);
    pthread_join(t, NULL);
    assert_int_equal(err.code, SG_E_ABORTED);
    assert_int_equal(S.acquire_calls, 1);
    assert_true(sg_monotonic_ms() - t0 < 10000); /* not the 30 s delay */
}

static void abort_before_first_attempt_makes_no_call(void **state)
{
    (void)state;
    __atomic_store_n(&abort_flag, 1, __ATOMIC_RELEASE);
    sg_acquire_opts o = {.abort = &abort_flag};
    sg_error err;
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, &o, NULL, &err), SG_ERROR);
    assert_int_equal(err.code, SG_E_ABORTED);
    assert_int_equal(S.acquire_calls, 0);
}

static void retry_after_unknown_outcome_releases_first(void **state)
{
    (void)state;
    S.acquire[0] = (step){SG_ERROR, SG_E_NETWORK_TIMEOUT, true};
    sg_error err;
    assert_int_equal(sg_acquire_retry(&B, "k", 1000, NULL, NULL, &err), SG_ERROR);
    assert_int_equal(S.release_calls, 1);
    assert_string_equal(S.released_ids[0], S.acquired_ids[0]);
}

/* ---- with_lock, scoped lock, release errors ---- */
static int release_errors;
static sg_code release_error_code;
static void on_release_error(const sg_error *e, const sg_lock *lock, void *ud)
{
    (void)lock;
    release_errors++;
    release_error_code = e->code;
    *(int *)ud += 1;
}

static int critical(const sg_lock *lock, void *arg)
{
    assert_int_equal(S.release_calls, 0); /* still held inside */
    assert_true(sg_lock_id_valid(lock->lock_id));
    return *(int *)arg;
}

static void with_lock_always_releases_and_routes_release_errors(void **state)
{
    (void)state;
    int ud = 0, ret = 42, got = 0;
    S.release_st = SG_ERROR;
    S.release_code = SG_E_SERVICE_UNAVAILABLE;
    release_errors = 0;
    sg_acquire_opts o = {.on_release_error = on_release_error, .ud = &ud};
    assert_int_equal(sg_with_lock(&B, "k", 1000, &o, critical, &ret, &got, NULL), SG_OK);
    assert_int_equal(got, 42);
    assert_int_equal(S.release_calls, 1);
    assert_string_equal(S.released_ids[0], S.acquired_ids[0]);
    assert_int_equal(release_errors, 1);
    assert_int_equal(ud, 1);
    assert_int_equal(release_error_code, SG_E_SERVICE_UNAVAILABLE);
}

static void with_lock_does_not_run_fn_without_the_lock(void **state)
{
    (void)state;
    always_contended();
    int ret = 1, got = -1;
    sg_acquire_opts o = {.max_retries = -1};
    sg_error err;
    assert_int_equal(sg_with_lock(&B, "k", 1000, &o, critical, &ret, &got, &err), SG_ERROR);
    assert_int_equal(got, -1);
    assert_int_equal(err.code, SG_E_ACQUISITION_TIMEOUT);
    assert_int_equal(S.acquire_calls, 1);
}

static void scoped_lock_is_released_when_scope_ends(void **state)
{
    (void)state;
    char id[SG_LOCK_ID_LEN + 1];
    {
        SG_SCOPED sg_held h = {0};
        assert_int_equal(sg_hold(&B, "k", 1000, NULL, &h, NULL), SG_OK);
        assert_true(h.held);
        memcpy(id, h.lock.lock_id, sizeof id);
        assert_int_equal(S.release_calls, 0);
    }
    assert_int_equal(S.release_calls, 1);
    assert_string_equal(S.released_ids[0], id);
    {
        SG_SCOPED sg_held h = {0}; /* never acquired: nothing to release */
        (void)h;
    }
    assert_int_equal(S.release_calls, 1);
}

/* ---- heartbeat ---- */
static atomic_int lost_calls;
static void on_lost(const char *id, const sg_error *e, void *ud)
{
    (void)id, (void)e, (void)ud;
    atomic_fetch_add(&lost_calls, 1);
}

static void heartbeat_extends_until_stopped_and_reports_loss(void **state)
{
    (void)state;
    sg_heartbeat *hb;
    atomic_store(&lost_calls, 0);
    assert_int_equal(sg_heartbeat_start(&B, "AAAAAAAAAAAAAAAAAAAAAA", 1000, 10, on_lost, NULL,
                                        &hb, NULL),
                     SG_OK);
    while (S.extend_calls < 3)
        usleep(1000);
    assert_true(sg_heartbeat_stop(hb));
    assert_int_equal(atomic_load(&lost_calls), 0);

    S.extend_st = SG_ABSENT;
    assert_int_equal(sg_heartbeat_start(&B, "AAAAAAAAAAAAAAAAAAAAAA", 1000, 5, on_lost, NULL,
                                        &hb, NULL),
                     SG_OK);
    while (atomic_load(&lost_calls) == 0)
        usleep(1000);
    assert_false(sg_heartbeat_stop(hb));
    assert_int_equal(atomic_load(&lost_calls), 1);
    assert_int_equal(sg_heartbeat_start(&B, "bad", 1000, 5, on_lost, NULL, &hb, NULL),
                     SG_ERROR);
}

/* ---- telemetry ---- */
static sg_event events[16];
static char raw_keys[16][64];
static int n_events;
static void on_event(const sg_event *ev, void *ud)
{
    (void)ud;
    events[n_events] = *ev;
    snprintf(raw_keys[n_events], sizeof raw_keys[0], "%s", ev->key ? ev->key : "(null)");
    n_events++;
}

static void telemetry_reports_events_with_hashes(void **state)
{
    (void)state;
    n_events = 0;
    sg_backend *t = sg_with_telemetry(&B, on_event, NULL, false);
    assert_non_null(t);
    assert_string_equal(t->caps.name, "script");
    sg_lock lock;
    assert_int_equal(sg_acquire(t, "job", 1000, &lock, NULL), SG_OK);
    always_contended();
    assert_int_equal(sg_acquire(t, "job", 1000, NULL, NULL), SG_CONTENDED);
    S.release_st = SG_ABSENT;
    assert_int_equal(sg_release(t, lock.lock_id, NULL), SG_ABSENT);
    assert_int_equal(sg_lookup_key(t, "held", NULL, NULL), SG_OK);
    assert_int_equal(n_events, 4);
    char h[SG_HASH_LEN + 1];
    sg_key_hash("job", h);
    assert_int_equal(events[0].type, SG_EV_ACQUIRE);
    assert_true(events[0].ok);
    assert_string_equal(events[0].key_hash, h);
    assert_string_equal(raw_keys[0], "(null)"); /* no raw data unless asked */
    assert_false(events[1].ok);
    assert_string_equal(events[1].reason, "locked");
    assert_int_equal(events[2].type, SG_EV_RELEASE);
    assert_string_equal(events[2].reason, "not-found");
    sg_key_hash(lock.lock_id, h);
    assert_string_equal(events[2].lock_id_hash, h);
    assert_string_equal(sg_event_type_name(events[3].type), "lookup");
    sg_backend_close(t);
    assert_true(S.closed); /* the wrapper owns inner */
}

static void telemetry_raw_only_when_asked(void **state)
{
    (void)state;
    n_events = 0;
    sg_backend *t = sg_with_telemetry(&B, on_event, NULL, true);
    assert_int_equal(sg_acquire(t, "job", 1000, NULL, NULL), SG_OK);
    assert_string_equal(raw_keys[0], "job");
    sg_backend_close(t);
}

static void unwrapped_backend_pays_nothing(void **state)
{
    (void)state;
    n_events = 0;
    assert_int_equal(sg_acquire(&B, "job", 1000, NULL, NULL), SG_OK);
    assert_ptr_equal(B.ops, &script_ops); /* calls go straight to the backend */
    assert_int_equal(n_events, 0);
    assert_null(sg_with_telemetry(&B, NULL, NULL, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(acquire_normalizes_key_and_returns_lock, setup),
        cmocka_unit_test_setup(invalid_input_is_rejected_before_any_io, setup),
        cmocka_unit_test_setup(unknown_outcome_releases_the_ghost_before_returning, setup),
        cmocka_unit_test_setup(known_failure_does_not_release, setup),
        cmocka_unit_test_setup(lookups_are_sanitized_unless_raw, setup),
        cmocka_unit_test_setup(retry_makes_max_retries_plus_one_attempts, setup),
        cmocka_unit_test_setup(retry_succeeds_when_the_lock_frees, setup),
        cmocka_unit_test_setup(retry_comes_when_the_holder_frees, setup),
        cmocka_unit_test_setup(retry_comes_at_a_wake_up_and_it_does_not_count, setup),
        cmocka_unit_test_setup(retry_returns_backend_errors_at_once, setup),
        cmocka_unit_test_setup(retry_delays_follow_backoff_and_jitter, setup),
        cmocka_unit_test_setup(retry_stops_at_the_timeout, setup),
        cmocka_unit_test_setup(abort_during_sleep_returns_aborted, setup),
        cmocka_unit_test_setup(abort_before_first_attempt_makes_no_call, setup),
        cmocka_unit_test_setup(retry_after_unknown_outcome_releases_first, setup),
        cmocka_unit_test_setup(with_lock_always_releases_and_routes_release_errors, setup),
        cmocka_unit_test_setup(with_lock_does_not_run_fn_without_the_lock, setup),
        cmocka_unit_test_setup(scoped_lock_is_released_when_scope_ends, setup),
        cmocka_unit_test_setup(heartbeat_extends_until_stopped_and_reports_loss, setup),
        cmocka_unit_test_setup(telemetry_reports_events_with_hashes, setup),
        cmocka_unit_test_setup(telemetry_raw_only_when_asked, setup),
        cmocka_unit_test_setup(unwrapped_backend_pays_nothing, setup),
    };
    return cmocka_run_group_tests_name("lock", tests, NULL, NULL);
}
