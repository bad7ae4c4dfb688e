/* dir.c — the directories (the root with locks/ and metrics; locks/ listing
 * live locks one bounded backend page per READDIR), statfs, and the xattrs
 * that show the current holder's public fields. */
#include "sgfs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "metrics.h"

typedef struct dirh {
    char **names;
    size_t n, cap;
    char cursor[SG_CURSOR_LEN];
    bool done;
} dirh;

void sgfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != ROOT_INO && ino != LOCKS_INO) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    dirh *d = calloc(1, sizeof *d);
    if (!d) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    fuse_reply_open(req, fi);
}

static void dirh_clear(dirh *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->names[i]);
    free(d->names);
    memset(d, 0, sizeof *d);
}

static void collect_name(const char *key, void *ud)
{
    dirh *d = ud;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        char **p = realloc(d->names, cap * sizeof *p);
        if (!p)
            return;
        d->names = p;
        d->cap = cap;
    }
    char name[SGFS_NAME_MAX + 1];
    sgfs_name_encode(key, name);
    for (size_t i = 0; i < d->n; i++) /* SCAN may repeat a key */
        if (!strcmp(d->names[i], name))
            return;
    char *s = strdup(name);
    if (s)
        d->names[d->n++] = s;
}

void sgfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    sgfs *fs = sgfs_of(req);
    dirh *d = (dirh *)(uintptr_t)fi->fh;
    char *buf = calloc(1, size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    struct stat st;
    memset(&st, 0, sizeof st);
    if (ino == ROOT_INO) {
        const char *names[] = {".", "..", "locks", "metrics"};
        const fuse_ino_t inos[] = {ROOT_INO, ROOT_INO, LOCKS_INO, METRICS_INO};
        for (off_t i = off; i < 4; i++) {
            st.st_ino = inos[i];
            st.st_mode = i == 3 ? S_IFREG : S_IFDIR;
            size_t need = fuse_add_direntry(req, buf + used, size - used, names[i], &st, i + 1);
            if (need > size - used)
                break;
            used += need;
        }
        fuse_reply_buf(req, buf, used);
        free(buf);
        return;
    }
    if (off == 0) {
        dirh_clear(d);
        st.st_ino = LOCKS_INO;
        st.st_mode = S_IFDIR;
        used += fuse_add_direntry(req, buf, size, ".", &st, 1);
        st.st_ino = ROOT_INO;
        used += fuse_add_direntry(req, buf + used, size - used, "..", &st, 2);
        off = 2;
    }
    /* Each call fetches at most one page run: the kernel holds locks/ meanwhile. */
    bool fetched = false;
    for (;;) {
        size_t idx = (size_t)off - 2;
        if (idx < d->n) {
            st.st_ino = (ino_t)(sgfs_key_hash(d->names[idx]) | 0x100000);
            st.st_mode = S_IFREG;
            size_t need =
                fuse_add_direntry(req, buf + used, size - used, d->names[idx], &st, off + 1);
            if (need > size - used)
                break;
            used += need;
            off++;
            continue;
        }
        if (d->done || (fetched && used > 0))
            break;
        size_t before = d->n;
        sg_error err;
        int64_t t0 = metrics_now_us();
        sg_status s = sg_list(fs->b, d->cursor, LIST_PAGE, collect_name, d, &err);
        metrics_op_done(M_LIST, s, &err, t0);
        if (s != SG_OK) {
            free(buf);
            fuse_reply_err(req, sgfs_log_error("readdir", &err));
            return;
        }
        fetched = true;
        if (!d->cursor[0])
            d->done = true;
        (void)before;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

void sgfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    dirh *d = (dirh *)(uintptr_t)fi->fh;
    dirh_clear(d);
    free(d);
    fuse_reply_err(req, 0);
}

void sgfs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    sgfs *fs = sgfs_of(req);
    (void)ino;
    struct statvfs s;
    memset(&s, 0, sizeof s);
    s.f_bsize = s.f_frsize = 4096;
    s.f_namemax = SGFS_NAME_MAX;
    pthread_mutex_lock(&fs->mu);
    s.f_files = (fsfilcnt_t)fs->held;
    pthread_mutex_unlock(&fs->mu);
    fuse_reply_statfs(req, &s);
}

/* ---- xattrs: the current holder's public fields ---- */
static const char *const xattr_names[] = {"user.syncguard.fence", "user.syncguard.expiresAtMs",
                                          "user.syncguard.acquiredAtMs",
                                          "user.syncguard.keyHash",
                                          "user.syncguard.lockIdHash"};

/* GETXATTR: ENODATA (unknown name), ENOENT (lock gone), ERANGE (buffer), backend errno. */
void sgfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    sgfs *fs = sgfs_of(req);
    node *n = sgfs_ino_node(ino);
    size_t which = 0, nx = sizeof xattr_names / sizeof xattr_names[0];
    while (which < nx && strcmp(name, xattr_names[which]))
        which++;
    if (!n || which == nx) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    sg_lock_info info;
    sg_error err;
    sg_status st = sgfs_b_lookup(fs, n->key, &info, &err);
    if (st != SG_OK) {
        fuse_reply_err(req, st == SG_ABSENT ? ENOENT : sgfs_log_error("getxattr", &err));
        return;
    }
    char val[64];
    switch (which) {
    case 0: snprintf(val, sizeof val, "%s", info.fence); break;
    case 1: snprintf(val, sizeof val, "%" PRId64, info.expires_at_ms); break;
    case 2: snprintf(val, sizeof val, "%" PRId64, info.acquired_at_ms); break;
    case 3: sg_key_hash(info.key, val); break;
    default: sg_key_hash(info.lock_id, val); break;
    }
    size_t len = strlen(val);
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, val, len);
}

void sgfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char buf[256];
    size_t len = 0;
    if (sgfs_ino_node(ino))
        for (size_t i = 0; i < sizeof xattr_names / sizeof xattr_names[0]; i++) {
            memcpy(buf + len, xattr_names[i], strlen(xattr_names[i]) + 1);
            len += strlen(xattr_names[i]) + 1;
        }
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, buf, len);
}

