/* test_waiters.c — the daemon's parked-waiter queue (fs/waitq.c) without a
 * mount or a server: which waiter is tried first, interrupts, per-key counts
 * (a key's subscription starts with its first waiter and ends with its last),
 * keys that must not disturb each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "waitq.h"

/* A parked request as the daemon has one: an entry embedded in something. */
typedef struct tw {
    wq_entry q;
    const char *name;
} tw;

static tw *of(wq_entry *e)
{
    return e ? (tw *)((char *)e - offsetof(tw, q)) : NULL;
}

/* Park w for key at next_ms; returns what waitq_push says (first waiter). */
static bool park(waitq *q, tw *w, const char *name, const char *key, int64_t next_ms)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->q.key = key;
    w->q.kw = waitq_key_get(q, key, q);
    assert_non_null(w->q.kw);
    return waitq_push(q, &w->q, next_ms);
}

/* The name of the waiter served first at now, "" when none is due. */
static const char *first(waitq *q, int64_t now)
{
    tw *w = of(waitq_first_due(q, now, false));
    return w ? w->name : "";
}

/* Serve every due waiter at now in the queue's order (each granted and
 * unparked, as the daemon does on success); their names into out. */
static void serve_all(waitq *q, int64_t now, char *out, size_t size)
{
    out[0] = '\0';
    wq_entry *e;
    while ((e = waitq_first_due(q, now, false))) {
        waitq_remove(q, e);
        strncat(out, of(e)->name, size - strlen(out) - 1);
    }
}

static void free_keys(waitq *q)
{
    waitq_key *kw;
    while ((kw = waitq_key_pop(q)))
        free(kw);
}

static void nobody_is_tried_before_due(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b;
    park(&q, &a, "a", "k", 1000);
    park(&q, &b, "b", "k", 2000);
    assert_string_equal(first(&q, 999), "");
    assert_string_equal(first(&q, 1000), "a");
    assert_int_equal(waitq_next_ms(&q), 1000);
    assert_int_equal(q.n, 2);
    free_keys(&q);
}

/* docs/decisions.md: wake-ups attempt the most recently parked waiter first. */
static void wakeup_tries_the_most_recently_parked_waiter_first(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b, c;
    park(&q, &a, "a", "k", 5000);
    park(&q, &b, "b", "k", 5000);
    park(&q, &c, "c", "k", 5000);
    assert_int_equal(waitq_wake_key(&q, "k", 10), 3);
    char order[8];
    serve_all(&q, 10, order, sizeof order);
    assert_string_equal(order, "cba"); /* LIFO, not FIFO */
    assert_int_equal(q.n, 0);
    assert_null(q.head);
    free_keys(&q);
}

/* A waiter whose attempt failed is parked again at the head: if it is due
 * again at once (a wake-up arrived during its attempt) it goes before the
 * waiters that have waited longer. */
static void failed_attempt_parks_again_at_the_head(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b;
    park(&q, &a, "a", "k", 5000);
    park(&q, &b, "b", "k", 5000);
    waitq_wake_key(&q, "k", 10);
    assert_string_equal(first(&q, 10), "b");
    /* b's attempt: unparked, contended, parked again with a later retry */
    assert_false(waitq_remove(&q, &b.q)); /* a still waits: keep the subscription */
    assert_false(waitq_push(&q, &b.q, 200));
    assert_string_equal(first(&q, 10), "a");
    /* ...or announced again while it asked: due now, and first again */
    waitq_remove(&q, &b.q);
    waitq_push(&q, &b.q, 10);
    assert_string_equal(first(&q, 10), "b");
    assert_int_equal(q.n, 2);
    assert_int_equal(a.q.kw->waiters, 2);
    free_keys(&q);
}

static void interrupt_removes_exactly_that_waiter(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b, c;
    park(&q, &a, "a", "k", 5000);
    park(&q, &b, "b", "k", 5000);
    park(&q, &c, "c", "k", 5000);
    b.q.interrupted = true;
    /* answered at once, long before its retry is due */
    assert_string_equal(first(&q, 0), "b");
    assert_false(waitq_remove(&q, &b.q));
    assert_null(b.q.next);
    assert_null(b.q.prev);
    assert_int_equal(q.n, 2);
    assert_int_equal(a.q.kw->waiters, 2);
    assert_string_equal(first(&q, 0), "");
    /* the others keep their order */
    assert_int_equal(waitq_wake_key(&q, "k", 10), 2);
    char order[8];
    serve_all(&q, 10, order, sizeof order);
    assert_string_equal(order, "ca");
    free_keys(&q);
}

static void interrupt_of_the_head_and_of_the_tail(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b, c;
    park(&q, &a, "a", "k", 5000);
    park(&q, &b, "b", "k", 5000);
    park(&q, &c, "c", "k", 5000);
    c.q.interrupted = true; /* the head */
    a.q.interrupted = true; /* the tail */
    char order[8];
    serve_all(&q, 0, order, sizeof order);
    assert_string_equal(order, "ca");
    assert_int_equal(q.n, 1);
    assert_ptr_equal(q.head, &b.q);
    assert_null(b.q.prev);
    assert_null(b.q.next);
    free_keys(&q);
}

/* The scheduler serves in queue order: an interrupted waiter behind a due
 * one is answered right after it, not ahead of it. */
static void interrupt_is_answered_in_queue_order(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b;
    park(&q, &a, "a", "k", 5000);
    park(&q, &b, "b", "k", 10);
    a.q.interrupted = true;
    char order[8];
    serve_all(&q, 10, order, sizeof order);
    assert_string_equal(order, "ba");
    free_keys(&q);
}

static void a_key_without_waiters_is_reported(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b;
    assert_true(park(&q, &a, "a", "k", 100)); /* first: subscribe */
    assert_false(park(&q, &b, "b", "k", 100));
    waitq_key *kw = a.q.kw;
    assert_ptr_equal(b.q.kw, kw);
    assert_string_equal(kw->key, "k");
    assert_ptr_equal(kw->owner, &q);
    assert_int_equal(kw->waiters, 2);
    assert_false(waitq_remove(&q, &a.q));
    assert_true(waitq_remove(&q, &b.q)); /* last: unsubscribe */
    assert_int_equal(kw->waiters, 0);
    assert_int_equal(q.n, 0);
    /* the entry stays until the daemon frees it; a park meanwhile reuses it */
    assert_ptr_equal(waitq_key_get(&q, "k", NULL), kw);
    assert_true(park(&q, &a, "a", "k", 100)); /* first again */
    assert_true(waitq_remove(&q, &a.q));
    waitq_key_free(&q, kw);
    assert_null(q.keys);
    waitq_key *again = waitq_key_get(&q, "k", NULL);
    assert_non_null(again);
    assert_int_equal(again->waiters, 0);
    free_keys(&q);
}

static void many_keys_do_not_interfere(void **state)
{
    (void)state;
    waitq q = {0};
    tw w[9];
    const char *keys[3] = {"k1", "k2", "k3"};
    const char *names[9] = {"0", "1", "2", "3", "4", "5", "6", "7", "8"};
    for (int i = 0; i < 9; i++) /* interleaved: k1 k2 k3 k1 k2 k3 ... */
        assert_int_equal(park(&q, &w[i], names[i], keys[i % 3], 5000), i < 3);
    for (int k = 0; k < 3; k++)
        assert_int_equal(w[k].q.kw->waiters, 3);
    assert_ptr_not_equal(w[0].q.kw, w[1].q.kw);
    /* a release of k2 makes only k2's waiters due, newest first */
    assert_int_equal(waitq_wake_key(&q, "k2", 10), 3);
    char order[16];
    serve_all(&q, 10, order, sizeof order);
    assert_string_equal(order, "741");
    assert_int_equal(w[1].q.kw->waiters, 0);
    assert_int_equal(w[0].q.kw->waiters, 3);
    assert_int_equal(w[2].q.kw->waiters, 3);
    assert_int_equal(q.n, 6);
    /* k1's waiters leave one by one: only the last reports k1 empty, and
     * k3 is untouched */
    assert_false(waitq_remove(&q, &w[3].q));
    assert_false(waitq_remove(&q, &w[0].q));
    assert_true(waitq_remove(&q, &w[6].q));
    assert_int_equal(w[2].q.kw->waiters, 3);
    assert_int_equal(waitq_wake_key(&q, "k1", 20), 0);
    assert_string_equal(first(&q, 20), "");
    assert_int_equal(waitq_wake_key(&q, "k3", 30), 3);
    serve_all(&q, 30, order, sizeof order);
    assert_string_equal(order, "852");
    assert_int_equal(q.n, 0);
    free_keys(&q);
}

/* A key is matched by its text (a local release names the node's key; an
 * announced one the subscription's copy), also for a waiter parked without
 * a key entry (no memory for one). */
static void wakeup_matches_the_key_text(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b;
    char k1[] = "job", k2[] = "job";
    park(&q, &a, "a", k1, 5000);
    memset(&b, 0, sizeof b);
    b.name = "b";
    b.q.key = "jobs";
    assert_false(waitq_push(&q, &b.q, 5000)); /* no key entry: nothing to subscribe */
    assert_int_equal(waitq_wake_key(&q, k2, 10), 1);
    assert_string_equal(first(&q, 10), "a");
    assert_false(waitq_remove(&q, &b.q));
    free_keys(&q);
}

/* waitq_next_ms says when to look again; it is not the serving order. */
static void next_due_time_is_the_earliest_but_order_is_the_queue(void **state)
{
    (void)state;
    waitq q = {0};
    assert_int_equal(waitq_next_ms(&q), INT64_MAX);
    tw a, b, c;
    park(&q, &a, "a", "x", 500);
    park(&q, &b, "b", "y", 200);
    park(&q, &c, "c", "z", 900);
    assert_int_equal(waitq_next_ms(&q), 200);
    assert_string_equal(first(&q, 600), "b");
    char order[8];
    serve_all(&q, 1000, order, sizeof order);
    assert_string_equal(order, "cba"); /* all due: head first, not a (due at 500) */
    assert_int_equal(waitq_next_ms(&q), INT64_MAX);
    free_keys(&q);
}

static void draining_makes_every_waiter_due(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b;
    park(&q, &a, "a", "k", 5000);
    park(&q, &b, "b", "k", 9000);
    assert_null(waitq_first_due(&q, 0, false));
    assert_ptr_equal(waitq_first_due(&q, 0, true), &b.q);
    free_keys(&q);
}

/* At shutdown the daemon pops every key (ending its subscription); waiters
 * still parked then no longer point at it. */
static void popping_a_key_detaches_its_waiters(void **state)
{
    (void)state;
    waitq q = {0};
    tw a, b;
    park(&q, &a, "a", "k1", 5000);
    park(&q, &b, "b", "k2", 5000);
    waitq_key *k2 = waitq_key_pop(&q); /* the newest key first */
    assert_non_null(k2);
    assert_string_equal(k2->key, "k2");
    assert_null(b.q.kw);
    assert_non_null(a.q.kw);
    free(k2);
    assert_false(waitq_remove(&q, &b.q)); /* no entry to report about */
    assert_true(waitq_remove(&q, &a.q));
    assert_int_equal(q.n, 0);
    free_keys(&q);
    assert_null(q.keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nobody_is_tried_before_due),
        cmocka_unit_test(wakeup_tries_the_most_recently_parked_waiter_first),
        cmocka_unit_test(failed_attempt_parks_again_at_the_head),
        cmocka_unit_test(interrupt_removes_exactly_that_waiter),
        cmocka_unit_test(interrupt_of_the_head_and_of_the_tail),
        cmocka_unit_test(interrupt_is_answered_in_queue_order),
        cmocka_unit_test(a_key_without_waiters_is_reported),
        cmocka_unit_test(many_keys_do_not_interfere),
        cmocka_unit_test(wakeup_matches_the_key_text),
        cmocka_unit_test(next_due_time_is_the_earliest_but_order_is_the_queue),
        cmocka_unit_test(draining_makes_every_waiter_due),
        cmocka_unit_test(popping_a_key_detaches_its_waiters),
    };
    return cmocka_run_group_tests_name("waiters", tests, NULL, NULL);
}
