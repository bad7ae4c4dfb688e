/* waitq.c — the parked waiters' queue and per-key counts (see waitq.h). */
#include "waitq.h"

#include <stdlib.h>
#include <string.h>

waitq_key *waitq_key_get(waitq *q, const char *key, void *owner)
{
    for (waitq_key *kw = q->keys; kw; kw = kw->next)
        if (!strcmp(kw->key, key))
            return kw;
    size_t n = strlen(key) + 1;
    waitq_key *kw = calloc(1, sizeof *kw + n);
    if (!kw)
        return NULL;
    kw->owner = owner;
    memcpy(kw->key, key, n);
    kw->next = q->keys;
    q->keys = kw;
    return kw;
}

void waitq_key_free(waitq *q, waitq_key *kw)
{
    waitq_key **pp = &q->keys;
    while (*pp && *pp != kw)
        pp = &(*pp)->next;
    if (*pp)
        *pp = kw->next;
    free(kw);
}

waitq_key *waitq_key_pop(waitq *q)
{
    waitq_key *kw = q->keys;
    if (!kw)
        return NULL;
    q->keys = kw->next;
    for (wq_entry *e = q->head; e; e = e->next)
        if (e->kw == kw)
            e->kw = NULL;
    return kw;
}

bool waitq_push(waitq *q, wq_entry *e, int64_t next_ms)
{
    e->next_ms = next_ms;
    e->prev = NULL;
    e->next = q->head;
    if (q->head)
        q->head->prev = e;
    q->head = e;
    q->n++;
    return e->kw && e->kw->waiters++ == 0;
}

bool waitq_remove(waitq *q, wq_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        q->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->next = e->prev = NULL;
    q->n--;
    return e->kw && --e->kw->waiters == 0;
}

int waitq_wake_key(waitq *q, const char *key, int64_t now)
{
    int n = 0;
    for (wq_entry *e = q->head; e; e = e->next)
        if (e->key == key || !strcmp(e->key, key)) {
            e->next_ms = now;
            n++;
        }
    return n;
}

wq_entry *waitq_first_due(const waitq *q, int64_t now, bool all_due)
{
    for (wq_entry *e = q->head; e; e = e->next)
        if (e->interrupted || e->next_ms <= now || all_due)
            return e;
    return NULL;
}

int64_t waitq_next_ms(const waitq *q)
{
    int64_t t = INT64_MAX;
    for (wq_entry *e = q->head; e; e = e->next)
        if (e->next_ms < t)
            t = e->next_ms;
    return t;
}
