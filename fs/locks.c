/* locks.c — lock requests on a descriptor: flock(2) and POSIX record locks
 * (fcntl F_SETLK/F_SETLKW/F_GETLK, lockf, Java FileChannel.lock). Whole-file
 * locks are the distributed lock; blocking requests park (waiters.c). */
#include "sgfs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>

/* lockgroup=: only members (and root) may acquire. */
bool sgfs_may_acquire(sgfs *fs, fuse_req_t req)
{
    if (!fs->cfg.has_lockgroup)
        return true;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    if (ctx->uid == 0 || ctx->gid == fs->cfg.lockgroup)
        return true;
    gid_t groups[256];
    int n = fuse_req_getgroups(req, 256, groups);
    for (int i = 0; i < n && i < 256; i++)
        if (groups[i] == fs->cfg.lockgroup)
            return true;
    return false;
}

/* POSIX rule: any close by the lock owner releases its locks on the file. */
void sgfs_release_posix_of(sgfs *fs, node *n, uint64_t owner)
{
    for (;;) {
        handle *target = NULL;
        pthread_mutex_lock(&fs->mu);
        for (handle *o = n->handles; o; o = o->nnext)
            if (o->posix && o->posix_owner == owner && o->state == H_OWNING)
                target = o;
        pthread_mutex_unlock(&fs->mu);
        if (!target)
            return;
        sgfs_release_handle(fs, target, H_WATCHING);
    }
}

/* FLOCK: EWOULDBLOCK (LOCK_NB, held), EINTR (interrupted wait), EACCES (lockgroup),
 * EIO (draining), backend errno. */
void sgfs_op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
    sgfs *fs = sgfs_of(req);
    (void)ino;
    handle *h = (handle *)(uintptr_t)fi->fh;
    if (!h->node) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (op & LOCK_UN) {
        fuse_reply_err(req, sgfs_release_handle(fs, h, H_WATCHING));
        return;
    }
    pthread_mutex_lock(&fs->mu);
    bool owning = h->state == H_OWNING;
    pthread_mutex_unlock(&fs->mu);
    if (owning) { /* LOCK_SH is taken as exclusive */
        fuse_reply_err(req, 0);
        return;
    }
    if (!sgfs_may_acquire(fs, req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    uid_t uid = fuse_req_ctx(req)->uid;
    sg_error err;
    sg_holder holder;
    sg_status st = sgfs_try_acquire(fs, h, uid, &holder, &err);
    if (st == SG_OK)
        fuse_reply_err(req, 0);
    else if (st == SG_CONTENDED && !(op & LOCK_NB))
        sgfs_park(fs, req, h, W_FLOCK, 0, uid, &holder);
    else
        fuse_reply_err(req, st == SG_CONTENDED ? EWOULDBLOCK : sgfs_log_error("flock", &err));
}

static bool whole_file(const struct flock *l)
{
    return l->l_start == 0 && l->l_len == 0;
}

/* GETLK: ENOLCK (byte range), EINVAL (not a lock file), backend errno. */
void sgfs_op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                   struct flock *lock)
{
    sgfs *fs = sgfs_of(req);
    node *n = sgfs_ino_node(ino);
    if (!n || !whole_file(lock)) {
        fuse_reply_err(req, n ? ENOLCK : EINVAL);
        return;
    }
    sg_lock_info info;
    sg_error err;
    sg_status st = sgfs_b_lookup(fs, n->key, &info, &err);
    if (st == SG_ERROR) {
        fuse_reply_err(req, sgfs_log_error("getlk", &err));
        return;
    }
    struct flock out = *lock;
    out.l_type = F_UNLCK;
    if (st == SG_OK) {
        out.l_type = F_WRLCK;
        out.l_whence = SEEK_SET;
        out.l_start = 0;
        out.l_len = 0;
        out.l_pid = 0; /* a remote holder */
        pthread_mutex_lock(&fs->mu);
        handle *o = sgfs_key_owner(fs, n);
        if (o && !strcmp(o->lock.lock_id, info.lock_id)) {
            if (o->posix && o->posix_owner == fi->lock_owner)
                out.l_type = F_UNLCK; /* our own lock does not conflict */
            out.l_pid = o->pid;
        }
        pthread_mutex_unlock(&fs->mu);
    }
    fuse_reply_lock(req, &out);
}

/* SETLK/SETLKW: EAGAIN (held, no wait), ENOLCK (byte range), EINTR, EACCES (lockgroup),
 * backend errno. */
void sgfs_op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                   struct flock *lock, int sleep)
{
    sgfs *fs = sgfs_of(req);
    node *n = sgfs_ino_node(ino);
    handle *h = (handle *)(uintptr_t)fi->fh;
    if (!n) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (!whole_file(lock)) {
        sg_log(SG_LOG_INFO, "byte-range POSIX locks are not supported (whole file only)");
        fuse_reply_err(req, ENOLCK);
        return;
    }
    if (lock->l_type == F_UNLCK) {
        sgfs_release_posix_of(fs, n, fi->lock_owner);
        fuse_reply_err(req, 0);
        return;
    }
    pthread_mutex_lock(&fs->mu);
    bool held = false;
    for (handle *o = n->handles; o; o = o->nnext)
        if (o->state == H_OWNING && ((o->posix && o->posix_owner == fi->lock_owner) || o == h))
            held = true;
    if (held && h->state == H_OWNING) {
        h->posix = true;
        h->posix_owner = fi->lock_owner;
    }
    pthread_mutex_unlock(&fs->mu);
    if (held) { /* this owner holds it already (POSIX locks merge) */
        fuse_reply_err(req, 0);
        return;
    }
    if (!sgfs_may_acquire(fs, req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    uid_t uid = fuse_req_ctx(req)->uid;
    sg_error err;
    sg_holder holder;
    sg_status st = sgfs_try_acquire(fs, h, uid, &holder, &err);
    if (st == SG_OK) {
        pthread_mutex_lock(&fs->mu);
        h->posix = true;
        h->posix_owner = fi->lock_owner;
        pthread_mutex_unlock(&fs->mu);
        fuse_reply_err(req, 0);
    } else if (st == SG_CONTENDED && sleep) {
        sgfs_park(fs, req, h, W_SETLK, fi->lock_owner, uid, &holder);
    } else {
        fuse_reply_err(req, st == SG_CONTENDED ? EAGAIN : sgfs_log_error("setlk", &err));
    }
}

