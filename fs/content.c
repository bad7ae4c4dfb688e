/* content.c — the text a read of locks/<name> returns: built at offset 0
 * and served from that snapshot for later offsets of the descriptor.
 * Owning: its own lock (with lockId). Watching: the current holder's public
 * view, or nothing when free. Lost: ESTALE. */
#include "sgfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sgfs_build_snapshot(sgfs *fs, handle *h)
{
    char buf[4096];
    size_t len = 0;
    int64_t now = sg_now_ms();
    pthread_mutex_lock(&fs->mu);
    hstate state = h->state;
    held_lock lock = h->lock;
    uint64_t lease = h->lease;
    pthread_mutex_unlock(&fs->mu);
    if (state == H_LOST)
        return ESTALE;
    int64_t renewed_to = lease ? sg_renewer_expires_at(fs->renewer, lease) : 0;
    if (renewed_to > lock.expires_at_ms)
        lock.expires_at_ms = renewed_to;
    char holder[300];
    snprintf(holder, sizeof holder, "%s:%d", fs->cfg.hostname, (int)h->pid);
    if (state == H_OWNING) {
        len = sgfs_format_lock(buf, sizeof buf, h->node->key, lock.fence, lock.acquired_at_ms,
                               lock.expires_at_ms, now, lock.lock_id, holder);
    } else {
        sg_lock_info info;
        sg_error err;
        sg_status st = sgfs_b_lookup(fs, h->node->key, &info, &err);
        if (st == SG_ERROR)
            return sgfs_log_error("read", &err);
        if (st == SG_OK) {
            /* a local holder can be named; a remote one cannot */
            const char *hold = NULL;
            pthread_mutex_lock(&fs->mu);
            handle *o = sgfs_key_owner(fs, h->node);
            if (o && !strcmp(o->lock.lock_id, info.lock_id)) {
                snprintf(holder, sizeof holder, "%s:%d", fs->cfg.hostname, (int)o->pid);
                hold = holder;
            }
            pthread_mutex_unlock(&fs->mu);
            len = sgfs_format_lock(buf, sizeof buf, info.key, info.fence, info.acquired_at_ms,
                                   info.expires_at_ms, now, NULL, hold);
        }
    }
    char *snap = malloc(len + 1);
    if (!snap)
        return ENOMEM;
    memcpy(snap, buf, len);
    pthread_mutex_lock(&fs->mu);
    free(h->snap);
    h->snap = snap;
    h->snap_len = len;
    pthread_mutex_unlock(&fs->mu);
    return 0;
}
