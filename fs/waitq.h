/* waitq.h — private to syncguardfs: the parked waiters as a queue, without
 * FUSE or threads, so its order is unit-tested (tests/unit/test_waiters.c).
 * waiters.c embeds a wq_entry in each parked request and does the FUSE side
 * (replies, interrupt registration) and the attempts.
 *
 * Order: entries are pushed at the head, and the entry tried first is the
 * first one from the head that is interrupted or due — so among waiters due
 * at the same moment (a wake-up of their key) the most recently parked, or
 * re-parked after a failed attempt, goes first (LIFO, docs/decisions.md).
 * Not an earliest-deadline order: waitq_next_ms only says when to look again.
 *
 * Keys: one waitq_key per key with parked entries, counting them, so the
 * daemon subscribes to a key's wake-ups with its first waiter and drops the
 * subscription with its last. Not thread-safe: the caller holds its lock
 * (sgfs.mu). */
#ifndef SGFS_WAITQ_H
#define SGFS_WAITQ_H
#include <stdbool.h>
#include <stdint.h>

#include "syncguard.h"

/* A key that has parked waiters. waitq.c keeps the list and the count; the
 * other fields are the daemon's wake-up subscription (waiters.c). */
typedef struct waitq_key {
    struct waitq_key *next;
    int waiters;         /* parked entries of this key */
    void *owner;         /* the daemon (context of the wake-up callback) */
    sg_watch *watch;     /* its subscription (scheduler thread); NULL: none (yet) */
    bool tried;          /* subscription attempted for the current waiters */
    unsigned long woken; /* wake-ups so far: one during an attempt is not lost */
    char key[];
} waitq_key;

/* One parked request, embedded in the daemon's waiter. */
typedef struct wq_entry {
    struct wq_entry *next, *prev;
    waitq_key *kw;    /* its key's entry; NULL when there was no memory for one */
    const char *key;  /* its key (borrowed: the node's, pinned while parked) */
    int64_t next_ms;  /* next attempt (monotonic ms) */
    bool interrupted; /* the caller gave up: answer EINTR, first */
} wq_entry;

typedef struct waitq {
    wq_entry *head;
    int n;           /* entries parked */
    waitq_key *keys; /* keys with entries (and, until the daemon frees them, without) */
} waitq;

/* The key's entry, created (owner set) when missing; NULL when out of memory. */
waitq_key *waitq_key_get(waitq *q, const char *key, void *owner);
/* Unlink kw from the key list and free it; its count must be 0. */
void waitq_key_free(waitq *q, waitq_key *kw);
/* Unlink the first key (NULL when none), clearing every entry's pointer to it;
 * the caller frees it (free()) after ending its subscription. */
waitq_key *waitq_key_pop(waitq *q);

/* Park e (e->kw and e->key set by the caller) at the head, to be tried at
 * next_ms. true: e->kw gained its first waiter (subscribe). */
bool waitq_push(waitq *q, wq_entry *e, int64_t next_ms);
/* Unpark e. true: e->kw has no waiter left (unsubscribe). */
bool waitq_remove(waitq *q, wq_entry *e);
/* Every entry of key is due at now (a release of key: local or announced).
 * Returns how many. */
int waitq_wake_key(waitq *q, const char *key, int64_t now);
/* The entry to serve first: the first from the head that is interrupted or
 * due at now (every one when all_due: the daemon is draining); NULL if none. */
wq_entry *waitq_first_due(const waitq *q, int64_t now, bool all_due);
/* The earliest next_ms of any entry; INT64_MAX when none. */
int64_t waitq_next_ms(const waitq *q);
#endif
