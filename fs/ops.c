/* ops.c — the FUSE low-level handlers of syncguardfs and their table. Each
 * handler's comment lists the errnos it can reply. Lock requests are in
 * locks.c, directories, statfs and xattrs in dir.c. */
#include "sgfs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "metrics.h"

static void dir_attr(sgfs *fs, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_nlink = 2;
    st->st_uid = fs->uid;
    st->st_gid = fs->cfg.has_lockgroup ? fs->cfg.lockgroup : fs->gid;
    mode_t m = ino == LOCKS_INO ? fs->cfg.dirmode : 0755;
    st->st_mode = S_IFDIR | m;
    st->st_mtime = st->st_ctime = st->st_atime = (time_t)(fs->started_ms / 1000);
}

static void lock_attr(sgfs *fs, node *n, const sg_lock_info *info, uid_t owner, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = (ino_t)(uintptr_t)n;
    st->st_nlink = n->gone ? 0 : 1; /* its lock went away while it stayed open */
    st->st_mode = S_IFREG | (fs->cfg.has_lockgroup ? 0660 : 0666);
    st->st_uid = owner;
    st->st_gid = fs->cfg.has_lockgroup ? fs->cfg.lockgroup : fs->gid;
    st->st_size = 0;
    st->st_blksize = 4096;
    int64_t t = info ? info->acquired_at_ms : sg_now_ms();
    st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = (time_t)(t / 1000);
    st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = st->st_atim.tv_nsec = (long)(t % 1000) * 1000000;
}

/* Owner uid: whoever acquired it through this mount, else the daemon's. */
static uid_t owner_uid(sgfs *fs, node *n)
{
    handle *h = sgfs_key_owner(fs, n);
    return h ? h->uid : fs->uid;
}

static void metrics_attr(sgfs *fs, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = METRICS_INO;
    st->st_nlink = 1;
    st->st_mode = S_IFREG | 0444;
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
}

static void entry_for(struct fuse_entry_param *e, fuse_ino_t ino, const struct stat *st)
{
    memset(e, 0, sizeof *e);
    e->ino = ino;
    e->attr = *st;
    e->attr_timeout = 0;
    e->entry_timeout = 0;
}

/* ---- lookup / forget / getattr / setattr ---- */
/* LOOKUP: ENOENT (absent or expired), EINVAL/ENAMETOOLONG (bad name), backend errno. */
static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    sgfs *fs = sgfs_of(req);
    struct fuse_entry_param e;
    struct stat st;
    if (parent == ROOT_INO) {
        if (!strcmp(name, "locks")) {
            dir_attr(fs, LOCKS_INO, &st);
            entry_for(&e, LOCKS_INO, &st);
        } else if (!strcmp(name, "metrics")) {
            metrics_attr(fs, &st);
            entry_for(&e, METRICS_INO, &st);
        } else {
            fuse_reply_err(req, ENOENT);
            return;
        }
        e.entry_timeout = 3600; /* these two never change: spare a LOOKUP per path walk */
        fuse_reply_entry(req, &e);
        return;
    }
    if (parent != LOCKS_INO) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    char key[SG_KEY_MAX + 1];
    int rc = sgfs_name_decode(name, key);
    if (rc) {
        sg_log(SG_LOG_INFO, "lookup: invalid lock file name (%s)", strerror(-rc));
        fuse_reply_err(req, -rc);
        return;
    }
    pthread_mutex_lock(&fs->mu);
    node *n = sgfs_node_get(fs, key);
    if (n)
        n->nopen++; /* pin while we ask the backend */
    pthread_mutex_unlock(&fs->mu);
    if (!n) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    sg_lock_info info;
    sg_error err;
    sg_status s = sgfs_b_lookup(fs, key, &info, &err);
    pthread_mutex_lock(&fs->mu);
    n->nopen--;
    node *live = NULL;
    if (s == SG_OK && (live = sgfs_node_for_live(fs, n))) {
        lock_attr(fs, live, &info, owner_uid(fs, live), &st);
        live->nlookup++;
        live->seen_live_us = metrics_now_us();
        live->seen_acquired_at_ms = info.acquired_at_ms;
    } else if (s == SG_ABSENT && n->handles) {
        n->gone = true; /* its open descriptors keep this inode; a new lock gets another */
    }
    sgfs_node_maybe_free(fs, n);
    pthread_mutex_unlock(&fs->mu);
    if (s == SG_OK && !live) {
        fuse_reply_err(req, ENOMEM);
    } else if (s == SG_OK) {
        entry_for(&e, sgfs_node_ino(live), &st);
        fuse_reply_entry(req, &e);
    } else {
        fuse_reply_err(req, s == SG_ABSENT ? ENOENT : sgfs_log_error("lookup", &err));
    }
}

static void forget_one(sgfs *fs, fuse_ino_t ino, uint64_t nlookup)
{
    node *n = sgfs_ino_node(ino);
    if (!n)
        return;
    pthread_mutex_lock(&fs->mu);
    n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
    sgfs_node_maybe_free(fs, n);
    pthread_mutex_unlock(&fs->mu);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    forget_one(sgfs_of(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *f)
{
    for (size_t i = 0; i < count_; i++)
        forget_one(sgfs_of(req), f[i].ino, f[i].nlookup);
    fuse_reply_none(req);
}

/* GETATTR: the lock's attributes; an inode that still has open descriptors
 * answers with link count 0 once its lock is gone (so fstat-then-read tools
 * reach the read, which says ESTALE); ENOENT otherwise; backend errno. */
static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    sgfs *fs = sgfs_of(req);
    struct stat st;
    if (ino == ROOT_INO || ino == LOCKS_INO) {
        dir_attr(fs, ino, &st);
        fuse_reply_attr(req, &st, 0);
        return;
    }
    if (ino == METRICS_INO) {
        metrics_attr(fs, &st);
        fuse_reply_attr(req, &st, 0);
        return;
    }
    node *n = sgfs_ino_node(ino);
    sg_lock_info info = {0};
    pthread_mutex_lock(&fs->mu);
    handle *own = NULL;
    for (handle *h = n->handles; h && !own; h = h->nnext)
        if (h->state == H_OWNING)
            own = h;
    if (fi && !own && ((handle *)(uintptr_t)fi->fh)->state == H_LOST)
        n->gone = true;
    bool known = own || n->gone;
    if (own) {
        info.acquired_at_ms = own->lock.acquired_at_ms;
        lock_attr(fs, n, &info, own->uid, &st);
        st.st_nlink = 1;
    } else if (n->gone) {
        lock_attr(fs, n, NULL, fs->uid, &st);
    }
    bool fresh = metrics_now_us() - n->seen_live_us < SEEN_LIVE_REUSE_US;
    info.acquired_at_ms = n->seen_acquired_at_ms;
    n->seen_live_us = 0; /* one reuse at most */
    n->nopen++;
    pthread_mutex_unlock(&fs->mu);
    sg_status s = SG_OK;
    sg_error err;
    if (!known && !fresh)
        s = sgfs_b_lookup(fs, n->key, &info, &err);
    pthread_mutex_lock(&fs->mu);
    n->nopen--;
    if (!known && s == SG_ABSENT && n->handles)
        n->gone = true;
    if (!known && (s == SG_OK || n->gone))
        lock_attr(fs, n, s == SG_OK ? &info : NULL, owner_uid(fs, n), &st);
    bool reply_attr = known || s == SG_OK || n->gone;
    pthread_mutex_unlock(&fs->mu);
    if (reply_attr)
        fuse_reply_attr(req, &st, 0);
    else
        fuse_reply_err(req, s == SG_ABSENT ? ENOENT : sgfs_log_error("getattr", &err));
}

/* truncate and utimens are harmless no-ops (`touch`, `truncate -s0`, `>`). */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    (void)attr;
    if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    op_getattr(req, ino, fi);
}

static void reply_opened(sgfs *fs, fuse_req_t req, handle *h, struct fuse_file_info *fi)
{
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    fi->nonseekable = 0;
    if (fuse_reply_open(req, fi) != 0) { /* the opener is gone (interrupted) */
        sgfs_release_handle(fs, h, H_WATCHING);
        sgfs_handle_free(fs, h);
    }
}

/* OPEN: a watching descriptor at once, whatever the access mode — an open
 * never acquires and never waits (flock/fcntl on it do, with their own
 * -n/-w semantics). EISDIR, EACCES (metrics for writing), ENOMEM. */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    sgfs *fs = sgfs_of(req);
    if (ino == ROOT_INO || ino == LOCKS_INO) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if (ino == METRICS_INO && (fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err(req, EACCES);
        return;
    }
    handle *h = sgfs_handle_new(fs, sgfs_ino_node(ino), req);
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    reply_opened(fs, req, h, fi);
}

/* CREATE (one attempt, never waits): acquired → owning; lost race → watching,
 * or EEXIST with O_EXCL. EACCES (lockgroup), EINVAL, ENAMETOOLONG, backend errno. */
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    sgfs *fs = sgfs_of(req);
    (void)mode;
    if (parent != LOCKS_INO) {
        fuse_reply_err(req, EACCES);
        return;
    }
    char key[SG_KEY_MAX + 1];
    int rc = sgfs_name_decode(name, key);
    if (rc) {
        sg_log(SG_LOG_WARN, "create: invalid lock file name (%s)", strerror(-rc));
        fuse_reply_err(req, -rc);
        return;
    }
    if (!sgfs_may_acquire(fs, req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    pthread_mutex_lock(&fs->mu);
    node *n = sgfs_node_get(fs, key);
    if (n && n->gone)
        n = sgfs_node_for_live(fs, n); /* the old inode stays with its descriptors */
    if (n)
        n->nopen++;
    pthread_mutex_unlock(&fs->mu);
    handle *h = n ? sgfs_handle_new(fs, n, req) : NULL;
    pthread_mutex_lock(&fs->mu);
    if (n)
        n->nopen--;
    pthread_mutex_unlock(&fs->mu);
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    /* The kernel holds locks/ for the whole CREATE: one attempt, never wait. */
    sg_error err;
    sg_status st = sgfs_try_acquire(fs, h, h->uid, NULL, &err);
    int fail = 0;
    if (st == SG_ERROR)
        fail = sgfs_log_error("create", &err);
    else if (st == SG_CONTENDED && (fi->flags & O_EXCL))
        fail = EEXIST;
    /* otherwise a lost race gives a watching descriptor, like an open */
    if (fail) {
        sgfs_handle_free(fs, h);
        fuse_reply_err(req, fail);
        return;
    }
    struct fuse_entry_param e;
    struct stat stt;
    pthread_mutex_lock(&fs->mu);
    sg_lock_info info = {.acquired_at_ms = h->lock.acquired_at_ms};
    lock_attr(fs, n, st == SG_OK ? &info : NULL, owner_uid(fs, n), &stt);
    n->nlookup++;
    pthread_mutex_unlock(&fs->mu);
    entry_for(&e, sgfs_node_ino(n), &stt);
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    if (fuse_reply_create(req, &e, fi) != 0) {
        sgfs_release_handle(fs, h, H_WATCHING);
        sgfs_handle_free(fs, h);
        forget_one(fs, sgfs_node_ino(n), 1);
    }
}

/* READ: ESTALE (lost), backend errno (watching view), ENOMEM. */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    sgfs *fs = sgfs_of(req);
    handle *h = (handle *)(uintptr_t)fi->fh;
    if (ino == METRICS_INO && (off == 0 || !h->snap)) {
        size_t len;
        pthread_mutex_lock(&fs->mu);
        int held = fs->held, waiters = fs->wq.n;
        pthread_mutex_unlock(&fs->mu);
        uint64_t renewed, failed, lost;
        sg_renewer_stats(fs->renewer, &renewed, &failed, &lost);
        metrics_event_set(M_RENEWED, renewed);
        metrics_event_set(M_RENEW_FAILED, failed);
        char *text = metrics_text(held, waiters, atomic_load(&fs->draining), &len);
        if (!text) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        pthread_mutex_lock(&fs->mu);
        free(h->snap);
        h->snap = text;
        h->snap_len = len;
        pthread_mutex_unlock(&fs->mu);
    } else if (ino != METRICS_INO) {
        pthread_mutex_lock(&fs->mu);
        bool lost = h->state == H_LOST;
        pthread_mutex_unlock(&fs->mu);
        if (lost) {
            fuse_reply_err(req, ESTALE);
            return;
        }
        if (off == 0 || !h->snap) {
            int rc = sgfs_build_snapshot(fs, h);
            if (rc) {
                fuse_reply_err(req, rc);
                return;
            }
        }
    }
    pthread_mutex_lock(&fs->mu);
    size_t len = h->snap_len;
    char *out = NULL;
    size_t n = 0;
    if (off >= 0 && (size_t)off < len) {
        n = len - (size_t)off < size ? len - (size_t)off : size;
        out = malloc(n ? n : 1);
        if (out)
            memcpy(out, h->snap + off, n);
    }
    pthread_mutex_unlock(&fs->mu);
    if (n && !out)
        fuse_reply_err(req, ENOMEM);
    else
        fuse_reply_buf(req, out, n);
    free(out);
}

/* WRITE: EINVAL (not a TTL), ENOLCK (watching), ESTALE (lost), EACCES (metrics), backend errno. */
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    sgfs *fs = sgfs_of(req);
    (void)off;
    if (ino == METRICS_INO) {
        fuse_reply_err(req, EACCES);
        return;
    }
    handle *h = (handle *)(uintptr_t)fi->fh;
    int64_t ttl = 0;
    int rc;
    pthread_mutex_lock(&fs->mu);
    hstate state = h->state;
    pthread_mutex_unlock(&fs->mu);
    if (state == H_OWNING && sgfs_ttl_parse(buf, size, &ttl) != 0) {
        sg_log(SG_LOG_WARN, "write: not a TTL (digits with ms|s|m|h, 1s..2^31-1 ms); "
                            "lock untouched");
        rc = EINVAL;
    } else {
        rc = sgfs_handle_extend(fs, h, ttl); /* ENOLCK / ESTALE unless owning */
    }
    if (rc)
        fuse_reply_err(req, rc);
    else
        fuse_reply_write(req, size);
}

/* FLUSH: always 0; releases the POSIX locks of fi->lock_owner. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    sgfs *fs = sgfs_of(req);
    handle *h = (handle *)(uintptr_t)fi->fh;
    node *n = sgfs_ino_node(ino);
    if (n) {
        pthread_mutex_lock(&fs->mu);
        h->flushed_ms = sg_monotonic_ms();
        pthread_mutex_unlock(&fs->mu);
        sgfs_release_posix_of(fs, n, fi->lock_owner);
    }
    fuse_reply_err(req, 0);
}

/* RELEASE: always 0; releases what the descriptor owns. */
static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    sgfs *fs = sgfs_of(req);
    (void)ino;
    handle *h = (handle *)(uintptr_t)fi->fh;
    char name[SGFS_NAME_MAX + 1] = "";
    if (h->node) {
        pthread_mutex_lock(&fs->mu);
        bool owned = h->state == H_OWNING;
        if (owned)
            sgfs_name_encode(h->node->key, name);
        pthread_mutex_unlock(&fs->mu);
        sgfs_release_handle(fs, h, H_WATCHING);
    }
    sgfs_handle_free(fs, h);
    fuse_reply_err(req, 0);
    /* The file is gone: drop the kernel's (positive) dentry now, so the next
     * open of the name is one LOOKUP instead of a revalidation and a LOOKUP.
     * After the reply: the closing process does not wait for this. */
    if (name[0] && fs->se)
        fuse_lowlevel_notify_inval_entry(fs->se, LOCKS_INO, name, strlen(name));
}

/* ---- unlink ---- */
/* UNLINK: ENOENT (absent), EPERM (held elsewhere, no allow_break), EINVAL, backend errno. */
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    sgfs *fs = sgfs_of(req);
    if (parent != LOCKS_INO) {
        fuse_reply_err(req, EPERM);
        return;
    }
    char key[SG_KEY_MAX + 1];
    int rc = sgfs_name_decode(name, key);
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    /* a lock held through this mount: release it, its descriptor watches */
    handle *mine = NULL;
    pthread_mutex_lock(&fs->mu);
    node *n = sgfs_node_find(fs, key);
    if (n) {
        mine = sgfs_key_owner(fs, n);
        n->nopen++;
    }
    pthread_mutex_unlock(&fs->mu);
    if (mine) {
        rc = sgfs_release_handle(fs, mine, H_WATCHING);
    } else {
        sg_lock_info info;
        sg_error err;
        memset(&info, 0, sizeof info);
        sg_status st = sgfs_b_lookup(fs, key, &info, &err);
        if (st == SG_ERROR)
            rc = sgfs_log_error("unlink", &err);
        else if (st == SG_ABSENT)
            rc = ENOENT;
        else if (!fs->cfg.allow_break || fuse_req_ctx(req)->uid != 0)
            rc = EPERM; /* held elsewhere */
        else {
            st = sgfs_b_release(fs, info.lock_id, &err);
            rc = st == SG_OK ? 0 : st == SG_ABSENT ? ENOENT : sgfs_log_error("break", &err);
            if (st == SG_OK)
                sg_log(SG_LOG_WARN, "allow_break: root broke the lock on %.200s (fence %s)",
                       name, info.fence);
        }
    }
    if (n) {
        pthread_mutex_lock(&fs->mu);
        n->nopen--;
        sgfs_node_maybe_free(fs, n);
        pthread_mutex_unlock(&fs->mu);
    }
    fuse_reply_err(req, rc);
}

/* ---- poll: POLLERR|POLLPRI once the descriptor's lock is lost ---- */
static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                    struct fuse_pollhandle *ph)
{
    sgfs *fs = sgfs_of(req);
    (void)ino;
    handle *h = (handle *)(uintptr_t)fi->fh;
    unsigned revents = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM;
    pthread_mutex_lock(&fs->mu);
    if (h->state == H_LOST)
        revents = POLLERR | POLLPRI;
    if (ph) {
        if (h->ph)
            fuse_pollhandle_destroy(h->ph);
        h->ph = h->state == H_OWNING ? ph : NULL;
        if (!h->ph)
            fuse_pollhandle_destroy(ph);
    }
    pthread_mutex_unlock(&fs->mu);
    fuse_reply_poll(req, revents);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
        conn->want |= FUSE_CAP_FLOCK_LOCKS;
    if (conn->capable & FUSE_CAP_POSIX_LOCKS)
        conn->want |= FUSE_CAP_POSIX_LOCKS;
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .flock = sgfs_op_flock,
    .getlk = sgfs_op_getlk,
    .setlk = sgfs_op_setlk,
    .unlink = op_unlink,
    .opendir = sgfs_op_opendir,
    .readdir = sgfs_op_readdir,
    .releasedir = sgfs_op_releasedir,
    .statfs = sgfs_op_statfs,
    .getxattr = sgfs_op_getxattr,
    .listxattr = sgfs_op_listxattr,
    .poll = op_poll,
};

const struct fuse_lowlevel_ops *sgfs_ops(void)
{
    return &ops;
}

