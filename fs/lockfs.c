/* lockfs.c — syncguardfs: every file locks/<name> exists exactly while the
 * lock on <name> is live. Low-level FUSE API so that waits park requests
 * instead of pinning worker threads; one scheduler thread renews owned locks
 * (min-heap on due time) and retries parked waiters.
 *
 * Locking: `mu` guards nodes, handles, waiters, the heap and counters. It is
 * never held across a backend call nor while calling into libfuse's
 * interrupt registration (the interrupt callback takes `mu` under libfuse's
 * request lock, so the order is always req->lock → mu). */
#include "lockfs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "metrics.h"
#include "names.h"

#define ROOT_INO FUSE_ROOT_ID
#define LOCKS_INO 2
#define METRICS_INO 3
#define LOCAL_RELEASE_WAIT_MS 50
#define LIST_PAGE 128

/* ---- types ---- */
typedef struct handle handle;

typedef struct node {
    struct node *hnext;    /* hash chain */
    char *key;             /* normalized key */
    uint64_t nlookup;      /* kernel references */
    int nopen;             /* handles referring to it */
    handle *handles;       /* open descriptors of this key */
    /* The last LOOKUP that found the lock live: a stat is LOOKUP then GETATTR,
     * and the GETATTR of the same walk reuses it instead of asking again. */
    int64_t seen_live_us;
    int64_t seen_acquired_at_ms;
} node;

#define SEEN_LIVE_REUSE_US 5000 /* GETATTR right after its LOOKUP */

typedef enum { H_WATCHING, H_OWNING, H_LOST } hstate;

struct handle {
    node *node;            /* NULL for the metrics file */
    handle *nnext;         /* in node->handles */
    hstate state;
    sg_lock lock;          /* valid while owning (and the last one when lost) */
    int64_t ttl_ms;
    int64_t deadline_ms;   /* monotonic: lost past this */
    int64_t due_ms;        /* monotonic: next renewal */
    size_t heap_idx;       /* in the renewal heap, or SIZE_MAX */
    bool busy;             /* a backend operation for this handle is in flight */
    int64_t flushed_ms;    /* monotonic time of the last FLUSH (close) */
    bool posix;            /* owned through a POSIX lock of posix_owner */
    uint64_t posix_owner;
    pid_t pid;             /* process (thread group) that opened/acquired */
    uid_t uid;
    struct fuse_pollhandle *ph;
    char *snap;            /* read snapshot, built at offset 0 */
    size_t snap_len;
};

typedef enum { W_FLOCK, W_SETLK } wkind;

typedef struct waiter {
    struct waiter *next, *prev;
    fuse_req_t req;
    handle *h;
    wkind kind;
    int64_t next_ms;      /* next attempt; waits last until granted or interrupted */
    int attempt;
    bool interrupted;
    uint64_t posix_owner;
    pid_t pid;
} waiter;

typedef struct dirh {
    char **names;
    size_t n, cap;
    char cursor[SG_CURSOR_LEN];
    bool done;
} dirh;


static struct {
    sg_backend *b;
    sgfs_config cfg;
    struct fuse_session *se;
    pthread_mutex_t mu;
    pthread_cond_t sched_cv, idle_cv;
    pthread_t sched;
    bool sched_running, stop;
    node **table;
    size_t table_size, n_nodes;
    handle **heap;
    size_t heap_n, heap_cap;
    waiter *waiters;
    int n_waiters;
    atomic_int draining;
    int64_t drain_deadline_ms;
    int state_fd;
    size_t state_lines;
    uid_t uid;
    gid_t gid;
    int64_t started_ms;
    int held;
} fs = {.mu = PTHREAD_MUTEX_INITIALIZER, .state_fd = -1};

/* ---- small helpers ---- */
static void msleep_until_cond(pthread_cond_t *cv, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, &fs.mu, &ts);
}

static double rand01(void)
{
    static _Thread_local unsigned int seed;
    if (!seed)
        seed = (unsigned)(sg_monotonic_ms() ^ (uintptr_t)&seed ^ (unsigned)getpid());
    return rand_r(&seed) / ((double)RAND_MAX + 1);
}


/* Log a failed call with its LockError code and message (no secrets). */
static int log_error(const char *what, const sg_error *e)
{
    char buf[900];
    sg_log(SG_LOG_WARN, "%s failed: %s", what, sg_error_format(e, buf, sizeof buf));
    return sg_error_errno(e);
}

/* Thread group id of a thread id (fuse_get_context()->pid is a thread). On
 * every open: tgkill(tid, tid, 0) answers "its own group leader" with one
 * system call, which is the common case; /proc is read only for other threads. */
static pid_t tgid_of(pid_t tid)
{
    if (syscall(SYS_tgkill, tid, tid, 0) == 0)
        return tid;
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return tid;
    pid_t tgid = tid;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Tgid:", 5)) {
            tgid = (pid_t)atoi(line + 5);
            break;
        }
    fclose(f);
    return tgid > 0 ? tgid : tid;
}

/* ---- state file: "+lockId" when acquired, "-lockId" when let go ---- */
static void state_note(char sign, const char *lock_id)
{
    if (fs.state_fd < 0)
        return;
    char line[SG_LOCK_ID_LEN + 3];
    snprintf(line, sizeof line, "%c%s\n", sign, lock_id);
    if (write(fs.state_fd, line, strlen(line)) < 0)
        sg_log(SG_LOG_WARN, "cannot write state file %s: %s", fs.cfg.state_path, strerror(errno));
    fs.state_lines++;
}

/* Called with mu held: rewrite the file with just the held lockIds. */
static void state_compact_locked(void)
{
    if (fs.state_fd < 0 || fs.state_lines < 1024 || fs.state_lines < 4 * (size_t)fs.held)
        return;
    if (ftruncate(fs.state_fd, 0) != 0)
        return;
    fs.state_lines = 0;
    for (size_t i = 0; i < fs.heap_n; i++)
        state_note('+', fs.heap[i]->lock.lock_id);
}

/* Release whatever an earlier (crashed) daemon recorded as held. */
static void state_recover(void)
{
    FILE *f = fopen(fs.cfg.state_path, "re");
    if (!f)
        return;
    char line[128];
    char (*ids)[SG_LOCK_ID_LEN + 1] = NULL;
    size_t n = 0, cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if ((line[0] != '+' && line[0] != '-') || !sg_lock_id_valid(line + 1))
            continue;
        size_t i;
        for (i = 0; i < n && strcmp(ids[i], line + 1); i++)
            ;
        if (line[0] == '-') {
            if (i < n)
                memcpy(ids[i], ids[--n], sizeof ids[0]);
        } else if (i == n) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                void *p = realloc(ids, cap * sizeof ids[0]);
                if (!p)
                    break;
                ids = p;
            }
            memcpy(ids[n++], line + 1, SG_LOCK_ID_LEN + 1);
        }
    }
    fclose(f);
    for (size_t i = 0; i < n; i++) {
        sg_error e;
        sg_status st = sg_release(fs.b, ids[i], &e);
        if (st == SG_OK)
            sg_log(SG_LOG_INFO, "released lock %.6s... left by a previous daemon", ids[i]);
        else if (st == SG_ERROR)
            log_error("releasing a previous daemon's lock", &e);
    }
    free(ids);
}

/* ---- nodes ---- */
static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static node *node_find_locked(const char *key)
{
    node *n = fs.table[hash_key(key) % fs.table_size];
    while (n && strcmp(n->key, key))
        n = n->hnext;
    return n;
}

static void table_grow_locked(void)
{
    size_t size = fs.table_size * 2;
    node **t = calloc(size, sizeof *t);
    if (!t)
        return;
    for (size_t i = 0; i < fs.table_size; i++)
        for (node *n = fs.table[i], *next; n; n = next) {
            next = n->hnext;
            size_t j = hash_key(n->key) % size;
            n->hnext = t[j];
            t[j] = n;
        }
    free(fs.table);
    fs.table = t;
    fs.table_size = size;
}

static node *node_get_locked(const char *key)
{
    node *n = node_find_locked(key);
    if (n)
        return n;
    n = calloc(1, sizeof *n);
    if (!n || !(n->key = strdup(key))) {
        free(n);
        return NULL;
    }
    if (fs.n_nodes >= fs.table_size)
        table_grow_locked();
    size_t i = hash_key(key) % fs.table_size;
    n->hnext = fs.table[i];
    fs.table[i] = n;
    fs.n_nodes++;
    return n;
}

static void node_maybe_free_locked(node *n)
{
    if (n->nlookup || n->nopen)
        return;
    node **pp = &fs.table[hash_key(n->key) % fs.table_size];
    while (*pp && *pp != n)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = n->hnext;
    fs.n_nodes--;
    free(n->key);
    free(n);
}

static node *ino_node(fuse_ino_t ino)
{
    return ino > METRICS_INO ? (node *)(uintptr_t)ino : NULL;
}

/* ---- renewal heap (min on due_ms) ---- */
static void heap_swap(size_t a, size_t b)
{
    handle *t = fs.heap[a];
    fs.heap[a] = fs.heap[b];
    fs.heap[b] = t;
    fs.heap[a]->heap_idx = a;
    fs.heap[b]->heap_idx = b;
}

static void heap_fix(size_t i)
{
    while (i > 0 && fs.heap[(i - 1) / 2]->due_ms > fs.heap[i]->due_ms) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < fs.heap_n && fs.heap[l]->due_ms < fs.heap[m]->due_ms)
            m = l;
        if (r < fs.heap_n && fs.heap[r]->due_ms < fs.heap[m]->due_ms)
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
}

static bool heap_push_locked(handle *h)
{
    if (fs.heap_n == fs.heap_cap) {
        size_t cap = fs.heap_cap ? 2 * fs.heap_cap : 256;
        handle **p = realloc(fs.heap, cap * sizeof *p);
        if (!p)
            return false;
        fs.heap = p;
        fs.heap_cap = cap;
    }
    h->heap_idx = fs.heap_n;
    fs.heap[fs.heap_n++] = h;
    heap_fix(h->heap_idx);
    return true;
}

static void heap_remove_locked(handle *h)
{
    size_t i = h->heap_idx;
    if (i == SIZE_MAX)
        return;
    h->heap_idx = SIZE_MAX;
    if (i != --fs.heap_n) {
        fs.heap[i] = fs.heap[fs.heap_n];
        fs.heap[i]->heap_idx = i;
        heap_fix(i);
    }
}

/* ---- handle state changes (mu held) ---- */
static int64_t renew_interval(int64_t ttl)
{
    /* about TTL/3, jittered by ±10% so renewals of many locks spread out */
    double j = 0.9 + 0.2 * rand01();
    int64_t v = (int64_t)((double)ttl / 3 * j);
    return v > 100 ? v : 100;
}

static int64_t margin(int64_t ttl)
{
    int64_t m = ttl / 10;
    return m > 2000 ? 2000 : m;
}

/* The handle now owns `lock`, acquired by a request sent at sent_ms. */
static void become_owner_locked(handle *h, const sg_lock *lock, int64_t sent_ms, pid_t pid,
                                uid_t uid)
{
    h->state = H_OWNING;
    h->lock = *lock;
    h->ttl_ms = fs.cfg.ttl_ms;
    h->deadline_ms = sent_ms + h->ttl_ms - margin(h->ttl_ms);
    h->due_ms = sent_ms + renew_interval(h->ttl_ms);
    h->pid = pid;
    h->uid = uid;
    h->flushed_ms = 0;
    free(h->snap);
    h->snap = NULL;
    heap_push_locked(h);
    fs.held++;
    state_note('+', lock->lock_id);
    state_compact_locked();
}

/* Owning → watching or lost (the lock is no longer ours). */
static void stop_owning_locked(handle *h, hstate to)
{
    if (h->state != H_OWNING)
        return;
    heap_remove_locked(h);
    h->state = to;
    h->posix = false;
    fs.held--;
    state_note('-', h->lock.lock_id);
    free(h->snap);
    h->snap = NULL;
}

/* Wake parked waiters of node n at once (a local release). */
static void wake_waiters_locked(node *n)
{
    int64_t now = sg_monotonic_ms();
    for (waiter *w = fs.waiters; w; w = w->next)
        if (w->h->node == n)
            w->next_ms = now;
    pthread_cond_broadcast(&fs.sched_cv);
    pthread_cond_broadcast(&fs.idle_cv);
}

static void mark_lost_locked(handle *h, const char *why)
{
    if (h->state != H_OWNING)
        return;
    stop_owning_locked(h, H_LOST);
    metrics_event_add(M_LOST);
    char name[SGFS_NAME_MAX + 1];
    sgfs_name_encode(h->node->key, name);
    sg_log(SG_LOG_WARN, "lock %.200s lost (fence %s): %s", name, h->lock.fence, why);
    if (h->ph) {
        fuse_lowlevel_notify_poll(h->ph);
        fuse_pollhandle_destroy(h->ph);
        h->ph = NULL;
    }
    if (fs.cfg.loss_signal && h->pid > 0)
        kill(h->pid, fs.cfg.loss_signal);
    wake_waiters_locked(h->node);
}

static void begin_op_locked(handle *h)
{
    while (h->busy)
        pthread_cond_wait(&fs.idle_cv, &fs.mu);
    h->busy = true;
}

static void end_op_locked(handle *h)
{
    h->busy = false;
    pthread_cond_broadcast(&fs.idle_cv);
}

/* ---- backend calls with metrics ---- */
static sg_status b_acquire(const char *key, sg_lock *lock, sg_error *e)
{
    int64_t t0 = metrics_now_us();
    sg_status st = sg_acquire(fs.b, key, fs.cfg.ttl_ms, lock, e);
    metrics_op_done(M_ACQUIRE, st, e, t0);
    return st;
}

static sg_status b_release(const char *lock_id, sg_error *e)
{
    int64_t t0 = metrics_now_us();
    sg_status st = sg_release(fs.b, lock_id, e);
    metrics_op_done(M_RELEASE, st, e, t0);
    return st;
}

static sg_status b_extend(const char *lock_id, int64_t ttl, int64_t *exp, sg_error *e)
{
    int64_t t0 = metrics_now_us();
    sg_status st = sg_extend(fs.b, lock_id, ttl, exp, e);
    metrics_op_done(M_EXTEND, st, e, t0);
    return st;
}

static sg_status b_lookup(const char *key, sg_lock_info *info, sg_error *e)
{
    int64_t t0 = metrics_now_us();
    sg_status st = sg_lookup_key_raw(fs.b, key, info, e);
    metrics_op_done(M_LOOKUP, st, e, t0);
    return st;
}

/* Release what h owns (waiting for an in-flight renewal first); h becomes
 * `to`. Returns 0 or an errno. */
static int release_handle(handle *h, hstate to)
{
    pthread_mutex_lock(&fs.mu);
    begin_op_locked(h);
    if (h->state != H_OWNING) {
        if (h->state == H_LOST && to == H_WATCHING)
            h->state = H_WATCHING;
        end_op_locked(h);
        pthread_mutex_unlock(&fs.mu);
        return 0;
    }
    sg_lock lock = h->lock;
    pthread_mutex_unlock(&fs.mu);
    sg_error e;
    sg_status st = b_release(lock.lock_id, &e);
    pthread_mutex_lock(&fs.mu);
    int rc = 0;
    if (st == SG_ERROR) {
        /* We could not tell the backend; stop renewing so it expires by TTL. */
        rc = log_error("release", &e);
    }
    stop_owning_locked(h, to);
    end_op_locked(h);
    wake_waiters_locked(h->node);
    pthread_mutex_unlock(&fs.mu);
    return rc;
}

/* One acquire attempt for h. When the key is held by a descriptor of this
 * mount that was just closed (its RELEASE is on its way: close() returns
 * before the daemon sees it), wait up to 50 ms for that release first. */
static sg_status try_acquire(handle *h, pid_t pid, uid_t uid, sg_error *e)
{
    if (atomic_load(&fs.draining))
        return sg_error_set(e, SG_E_SERVICE_UNAVAILABLE, "shutting down: no new locks");
    pthread_mutex_lock(&fs.mu);
    begin_op_locked(h);
    pthread_mutex_unlock(&fs.mu);
    for (int round = 0;; round++) {
        sg_lock lock;
        int64_t sent = sg_monotonic_ms();
        sg_status st = b_acquire(h->node->key, &lock, e);
        pthread_mutex_lock(&fs.mu);
        if (st == SG_OK) {
            if (h->state == H_OWNING) /* cannot happen: one op per handle */
                stop_owning_locked(h, H_WATCHING);
            become_owner_locked(h, &lock, sent, pid, uid);
        }
        bool retry = false;
        if (st == SG_CONTENDED && round == 0) {
            int64_t until = sg_monotonic_ms() + LOCAL_RELEASE_WAIT_MS;
            for (;;) {
                handle *closing = NULL;
                for (handle *o = h->node->handles; o; o = o->nnext)
                    if (o != h && o->state == H_OWNING && o->flushed_ms)
                        closing = o;
                if (!closing)
                    break;
                int64_t left = until - sg_monotonic_ms();
                if (left <= 0)
                    break;
                msleep_until_cond(&fs.idle_cv, left);
                retry = true;
            }
            /* retry only if such a holder existed and has let go */
            if (retry) {
                retry = true;
                for (handle *o = h->node->handles; o; o = o->nnext)
                    if (o != h && o->state == H_OWNING)
                        retry = false;
            }
        }
        if (!retry) {
            end_op_locked(h);
            pthread_mutex_unlock(&fs.mu);
            return st;
        }
        pthread_mutex_unlock(&fs.mu);
    }
}

/* ---- attributes ---- */
static void dir_attr(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_nlink = 2;
    st->st_uid = fs.uid;
    st->st_gid = fs.cfg.has_lockgroup ? fs.cfg.lockgroup : fs.gid;
    mode_t m = ino == LOCKS_INO ? fs.cfg.dirmode : 0755;
    st->st_mode = S_IFDIR | m;
    st->st_mtime = st->st_ctime = st->st_atime = (time_t)(fs.started_ms / 1000);
}

static void lock_attr(node *n, const sg_lock_info *info, uid_t owner, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = (ino_t)(uintptr_t)n;
    st->st_nlink = 1;
    st->st_mode = S_IFREG | (fs.cfg.has_lockgroup ? 0660 : 0666);
    st->st_uid = owner;
    st->st_gid = fs.cfg.has_lockgroup ? fs.cfg.lockgroup : fs.gid;
    st->st_size = 0;
    st->st_blksize = 4096;
    int64_t t = info ? info->acquired_at_ms : sg_now_ms();
    st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = (time_t)(t / 1000);
    st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = st->st_atim.tv_nsec = (long)(t % 1000) * 1000000;
}

/* Owner uid: whoever acquired it through this mount, else the daemon's. */
static uid_t owner_uid_locked(node *n)
{
    for (handle *h = n->handles; h; h = h->nnext)
        if (h->state == H_OWNING)
            return h->uid;
    return fs.uid;
}

static void metrics_attr(struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = METRICS_INO;
    st->st_nlink = 1;
    st->st_mode = S_IFREG | 0444;
    st->st_uid = fs.uid;
    st->st_gid = fs.gid;
}

static void entry_for(struct fuse_entry_param *e, fuse_ino_t ino, const struct stat *st)
{
    memset(e, 0, sizeof *e);
    e->ino = ino;
    e->attr = *st;
    e->attr_timeout = 0;
    e->entry_timeout = 0;
}

/* Live lock of key → SG_OK with info / SG_ABSENT / SG_ERROR. */
static sg_status live_info(node *n, sg_lock_info *info, sg_error *e)
{
    memset(info, 0, sizeof *info);
    return b_lookup(n->key, info, e);
}

/* ---- lookup / forget / getattr / setattr ---- */
/* LOOKUP: ENOENT (absent or expired), EINVAL/ENAMETOOLONG (bad name), backend errno. */
static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;
    struct stat st;
    if (parent == ROOT_INO) {
        if (!strcmp(name, "locks")) {
            dir_attr(LOCKS_INO, &st);
            entry_for(&e, LOCKS_INO, &st);
        } else if (!strcmp(name, "metrics")) {
            metrics_attr(&st);
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
    pthread_mutex_lock(&fs.mu);
    node *n = node_get_locked(key);
    if (n)
        n->nopen++; /* pin while we ask the backend */
    pthread_mutex_unlock(&fs.mu);
    if (!n) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    sg_lock_info info;
    sg_error err;
    sg_status s = live_info(n, &info, &err);
    pthread_mutex_lock(&fs.mu);
    n->nopen--;
    if (s == SG_OK) {
        lock_attr(n, &info, owner_uid_locked(n), &st);
        n->nlookup++;
        n->seen_live_us = metrics_now_us();
        n->seen_acquired_at_ms = info.acquired_at_ms;
    }
    node_maybe_free_locked(n);
    pthread_mutex_unlock(&fs.mu);
    if (s == SG_OK) {
        entry_for(&e, (fuse_ino_t)(uintptr_t)n, &st);
        fuse_reply_entry(req, &e);
    } else {
        fuse_reply_err(req, s == SG_ABSENT ? ENOENT : log_error("lookup", &err));
    }
}

static void forget_one(fuse_ino_t ino, uint64_t nlookup)
{
    node *n = ino_node(ino);
    if (!n)
        return;
    pthread_mutex_lock(&fs.mu);
    n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
    node_maybe_free_locked(n);
    pthread_mutex_unlock(&fs.mu);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    forget_one(ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *f)
{
    for (size_t i = 0; i < count_; i++)
        forget_one(f[i].ino, f[i].nlookup);
    fuse_reply_none(req);
}

/* GETATTR: ENOENT once the lock is gone (no descriptor), backend errno. */
static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    if (ino == ROOT_INO || ino == LOCKS_INO) {
        dir_attr(ino, &st);
        fuse_reply_attr(req, &st, 0);
        return;
    }
    if (ino == METRICS_INO) {
        metrics_attr(&st);
        fuse_reply_attr(req, &st, 0);
        return;
    }
    node *n = ino_node(ino);
    if (fi) { /* fstat on a descriptor: answer from what it knows */
        handle *h = (handle *)(uintptr_t)fi->fh;
        pthread_mutex_lock(&fs.mu);
        sg_lock_info info = {.acquired_at_ms = h->lock.acquired_at_ms};
        lock_attr(n, h->state == H_OWNING ? &info : NULL, owner_uid_locked(n), &st);
        pthread_mutex_unlock(&fs.mu);
        fuse_reply_attr(req, &st, 0);
        return;
    }
    sg_lock_info info;
    pthread_mutex_lock(&fs.mu);
    bool fresh = metrics_now_us() - n->seen_live_us < SEEN_LIVE_REUSE_US;
    info.acquired_at_ms = n->seen_acquired_at_ms;
    n->seen_live_us = 0; /* one reuse at most */
    pthread_mutex_unlock(&fs.mu);
    if (!fresh) {
        sg_error err;
        sg_status s = live_info(n, &info, &err);
        if (s != SG_OK) {
            fuse_reply_err(req, s == SG_ABSENT ? ENOENT : log_error("getattr", &err));
            return;
        }
    }
    pthread_mutex_lock(&fs.mu);
    lock_attr(n, &info, owner_uid_locked(n), &st);
    pthread_mutex_unlock(&fs.mu);
    fuse_reply_attr(req, &st, 0);
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

/* ---- open / create ---- */
static bool may_acquire(fuse_req_t req)
{
    if (!fs.cfg.has_lockgroup)
        return true;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    if (ctx->uid == 0 || ctx->gid == fs.cfg.lockgroup)
        return true;
    gid_t groups[256];
    int n = fuse_req_getgroups(req, 256, groups);
    for (int i = 0; i < n && i < 256; i++)
        if (groups[i] == fs.cfg.lockgroup)
            return true;
    return false;
}

static handle *handle_new(node *n, fuse_req_t req)
{
    handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->heap_idx = SIZE_MAX;
    h->state = H_WATCHING;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    h->pid = tgid_of(ctx->pid);
    h->uid = ctx->uid;
    if (n) {
        pthread_mutex_lock(&fs.mu);
        h->node = n;
        n->nopen++;
        h->nnext = n->handles;
        n->handles = h;
        pthread_mutex_unlock(&fs.mu);
    }
    return h;
}

static void handle_free(handle *h)
{
    pthread_mutex_lock(&fs.mu);
    node *n = h->node;
    if (n) {
        handle **pp = &n->handles;
        while (*pp && *pp != h)
            pp = &(*pp)->nnext;
        if (*pp)
            *pp = h->nnext;
        n->nopen--;
        node_maybe_free_locked(n);
    }
    pthread_mutex_unlock(&fs.mu);
    if (h->ph)
        fuse_pollhandle_destroy(h->ph);
    free(h->snap);
    free(h);
}

static void on_interrupt(fuse_req_t req, void *data)
{
    (void)req;
    waiter *w = data;
    pthread_mutex_lock(&fs.mu);
    w->interrupted = true;
    pthread_cond_broadcast(&fs.sched_cv);
    pthread_mutex_unlock(&fs.mu);
}

/* Schedule w's next attempt (backoff and jitter of the mount, never past its
 * deadline) and put it on the waiter list. mu held. */
static void waiter_link_locked(waiter *w, int64_t now)
{
    sg_acquire_opts o = {.retry_delay_ms = fs.cfg.retry_delay_ms,
                         .max_delay_ms = fs.cfg.max_delay_ms,
                         .backoff = fs.cfg.backoff,
                         .jitter = fs.cfg.jitter};
    w->next_ms = now + sg_retry_delay_ms(&o, w->attempt, INT64_MAX / 4, rand01());
    w->prev = NULL;
    w->next = fs.waiters;
    if (fs.waiters)
        fs.waiters->prev = w;
    fs.waiters = w;
    fs.n_waiters++;
    pthread_cond_broadcast(&fs.sched_cv);
}

/* Park req: the scheduler retries with the mount's backoff and replies. */
static void park(fuse_req_t req, handle *h, wkind kind, uint64_t posix_owner, pid_t pid)
{
    waiter *w = calloc(1, sizeof *w);
    if (!w) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int64_t now = sg_monotonic_ms();
    w->req = req;
    w->h = h;
    w->kind = kind;
    w->attempt = 1;
    w->posix_owner = posix_owner;
    w->pid = pid;
    pthread_mutex_lock(&fs.mu);
    waiter_link_locked(w, now);
    pthread_mutex_unlock(&fs.mu);
    /* not under mu: libfuse may call on_interrupt right here */
    fuse_req_interrupt_func(req, on_interrupt, w);
}

static void reply_opened(fuse_req_t req, handle *h, struct fuse_file_info *fi)
{
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    fi->nonseekable = 0;
    if (fuse_reply_open(req, fi) != 0) { /* the opener is gone (interrupted) */
        release_handle(h, H_WATCHING);
        handle_free(h);
    }
}

/* OPEN: a watching descriptor at once, whatever the access mode — an open
 * never acquires and never waits (flock/fcntl on it do, with their own
 * -n/-w semantics). EISDIR, EACCES (metrics for writing), ENOMEM. */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino == ROOT_INO || ino == LOCKS_INO) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if (ino == METRICS_INO && (fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err(req, EACCES);
        return;
    }
    handle *h = handle_new(ino_node(ino), req);
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    reply_opened(req, h, fi);
}

/* CREATE (one attempt, never waits): acquired → owning; lost race → watching,
 * or EEXIST with O_EXCL. EACCES (lockgroup), EINVAL, ENAMETOOLONG, backend errno. */
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
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
    if (!may_acquire(req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    pthread_mutex_lock(&fs.mu);
    node *n = node_get_locked(key);
    if (n)
        n->nopen++;
    pthread_mutex_unlock(&fs.mu);
    handle *h = n ? handle_new(n, req) : NULL;
    pthread_mutex_lock(&fs.mu);
    if (n)
        n->nopen--;
    pthread_mutex_unlock(&fs.mu);
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    /* The kernel holds locks/ for the whole CREATE: one attempt, never wait. */
    sg_error err;
    sg_status st = try_acquire(h, h->pid, h->uid, &err);
    int fail = 0;
    if (st == SG_ERROR)
        fail = log_error("create", &err);
    else if (st == SG_CONTENDED && (fi->flags & O_EXCL))
        fail = EEXIST;
    /* otherwise a lost race gives a watching descriptor, like an open */
    if (fail) {
        handle_free(h);
        fuse_reply_err(req, fail);
        return;
    }
    struct fuse_entry_param e;
    struct stat stt;
    pthread_mutex_lock(&fs.mu);
    sg_lock_info info = {.acquired_at_ms = h->lock.acquired_at_ms};
    lock_attr(n, st == SG_OK ? &info : NULL, owner_uid_locked(n), &stt);
    n->nlookup++;
    pthread_mutex_unlock(&fs.mu);
    entry_for(&e, (fuse_ino_t)(uintptr_t)n, &stt);
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    if (fuse_reply_create(req, &e, fi) != 0) {
        release_handle(h, H_WATCHING);
        handle_free(h);
        forget_one((fuse_ino_t)(uintptr_t)n, 1);
    }
}

/* ---- read / write ---- */

static int build_snapshot(handle *h)
{
    char buf[4096];
    size_t len = 0;
    int64_t now = sg_now_ms();
    pthread_mutex_lock(&fs.mu);
    if (h->state == H_OWNING && sg_monotonic_ms() > h->deadline_ms)
        mark_lost_locked(h, "renewal deadline passed");
    hstate state = h->state;
    sg_lock lock = h->lock;
    pthread_mutex_unlock(&fs.mu);
    if (state == H_LOST)
        return ESTALE;
    char holder[300];
    snprintf(holder, sizeof holder, "%s:%d", fs.cfg.hostname, (int)h->pid);
    if (state == H_OWNING) {
        len = sgfs_format_lock(buf, sizeof buf, lock.key, lock.fence, lock.acquired_at_ms,
                               lock.expires_at_ms, now, lock.lock_id, holder);
    } else {
        sg_lock_info info;
        sg_error err;
        sg_status st = live_info(h->node, &info, &err);
        if (st == SG_ERROR)
            return log_error("read", &err);
        if (st == SG_OK) {
            /* a local holder can be named; a remote one cannot */
            const char *hold = NULL;
            pthread_mutex_lock(&fs.mu);
            for (handle *o = h->node->handles; o; o = o->nnext)
                if (o->state == H_OWNING && !strcmp(o->lock.lock_id, info.lock_id)) {
                    snprintf(holder, sizeof holder, "%s:%d", fs.cfg.hostname, (int)o->pid);
                    hold = holder;
                }
            pthread_mutex_unlock(&fs.mu);
            len = sgfs_format_lock(buf, sizeof buf, info.key, info.fence, info.acquired_at_ms,
                                   info.expires_at_ms, now, NULL, hold);
        }
    }
    char *snap = malloc(len + 1);
    if (!snap)
        return ENOMEM;
    memcpy(snap, buf, len);
    pthread_mutex_lock(&fs.mu);
    free(h->snap);
    h->snap = snap;
    h->snap_len = len;
    pthread_mutex_unlock(&fs.mu);
    return 0;
}

/* READ: ESTALE (lost), backend errno (watching view), ENOMEM. */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    handle *h = (handle *)(uintptr_t)fi->fh;
    if (ino == METRICS_INO && (off == 0 || !h->snap)) {
        size_t len;
        pthread_mutex_lock(&fs.mu);
        int held = fs.held, waiters = fs.n_waiters;
        pthread_mutex_unlock(&fs.mu);
        char *text = metrics_text(held, waiters, atomic_load(&fs.draining), &len);
        if (!text) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        pthread_mutex_lock(&fs.mu);
        free(h->snap);
        h->snap = text;
        h->snap_len = len;
        pthread_mutex_unlock(&fs.mu);
    } else if (ino != METRICS_INO) {
        pthread_mutex_lock(&fs.mu);
        bool lost = h->state == H_LOST;
        pthread_mutex_unlock(&fs.mu);
        if (lost) {
            fuse_reply_err(req, ESTALE);
            return;
        }
        if (off == 0 || !h->snap) {
            int rc = build_snapshot(h);
            if (rc) {
                fuse_reply_err(req, rc);
                return;
            }
        }
    }
    pthread_mutex_lock(&fs.mu);
    size_t len = h->snap_len;
    char *out = NULL;
    size_t n = 0;
    if (off >= 0 && (size_t)off < len) {
        n = len - (size_t)off < size ? len - (size_t)off : size;
        out = malloc(n ? n : 1);
        if (out)
            memcpy(out, h->snap + off, n);
    }
    pthread_mutex_unlock(&fs.mu);
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
    (void)off;
    if (ino == METRICS_INO) {
        fuse_reply_err(req, EACCES);
        return;
    }
    handle *h = (handle *)(uintptr_t)fi->fh;
    pthread_mutex_lock(&fs.mu);
    begin_op_locked(h);
    if (h->state == H_OWNING && sg_monotonic_ms() > h->deadline_ms)
        mark_lost_locked(h, "renewal deadline passed");
    hstate state = h->state;
    char lock_id[SG_LOCK_ID_LEN + 1];
    memcpy(lock_id, h->lock.lock_id, sizeof lock_id);
    pthread_mutex_unlock(&fs.mu);
    int rc = 0;
    int64_t ttl = 0;
    if (state == H_WATCHING)
        rc = ENOLCK;
    else if (state == H_LOST)
        rc = ESTALE;
    else if (sgfs_ttl_parse(buf, size, &ttl) != 0) {
        sg_log(SG_LOG_WARN, "write: not a TTL (digits with ms|s|m|h, 1s..2^31-1 ms); "
                            "lock untouched");
        rc = EINVAL;
    } else {
        sg_error err;
        int64_t sent = sg_monotonic_ms(), exp = 0;
        sg_status st = b_extend(lock_id, ttl, &exp, &err);
        pthread_mutex_lock(&fs.mu);
        if (st == SG_OK && h->state == H_OWNING) {
            h->lock.expires_at_ms = exp;
            h->ttl_ms = ttl;
            h->deadline_ms = sent + ttl - margin(ttl);
            h->due_ms = sent + renew_interval(ttl);
            heap_fix(h->heap_idx);
            pthread_cond_broadcast(&fs.sched_cv);
        } else if (st == SG_ABSENT) {
            mark_lost_locked(h, "extend found the lock gone");
            rc = ESTALE;
        } else if (st == SG_ERROR) {
            rc = log_error("extend", &err);
        }
        pthread_mutex_unlock(&fs.mu);
    }
    pthread_mutex_lock(&fs.mu);
    end_op_locked(h);
    pthread_mutex_unlock(&fs.mu);
    if (rc)
        fuse_reply_err(req, rc);
    else
        fuse_reply_write(req, size);
}

/* ---- flush / release ---- */
/* POSIX rule: any close by the lock owner releases its locks on the file. */
static void release_posix_of(node *n, uint64_t owner)
{
    for (;;) {
        handle *target = NULL;
        pthread_mutex_lock(&fs.mu);
        for (handle *o = n->handles; o; o = o->nnext)
            if (o->posix && o->posix_owner == owner && o->state == H_OWNING)
                target = o;
        pthread_mutex_unlock(&fs.mu);
        if (!target)
            return;
        release_handle(target, H_WATCHING);
    }
}

/* FLUSH: always 0; releases the POSIX locks of fi->lock_owner. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    handle *h = (handle *)(uintptr_t)fi->fh;
    node *n = ino_node(ino);
    if (n) {
        pthread_mutex_lock(&fs.mu);
        h->flushed_ms = sg_monotonic_ms();
        pthread_mutex_unlock(&fs.mu);
        release_posix_of(n, fi->lock_owner);
    }
    fuse_reply_err(req, 0);
}

/* RELEASE: always 0; releases what the descriptor owns. */
static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    handle *h = (handle *)(uintptr_t)fi->fh;
    char name[SGFS_NAME_MAX + 1] = "";
    if (h->node) {
        pthread_mutex_lock(&fs.mu);
        bool owned = h->state == H_OWNING;
        if (owned)
            sgfs_name_encode(h->node->key, name);
        pthread_mutex_unlock(&fs.mu);
        release_handle(h, H_WATCHING);
    }
    handle_free(h);
    fuse_reply_err(req, 0);
    /* The file is gone: drop the kernel's (positive) dentry now, so the next
     * open of the name is one LOOKUP instead of a revalidation and a LOOKUP.
     * After the reply: the closing process does not wait for this. */
    if (name[0] && fs.se)
        fuse_lowlevel_notify_inval_entry(fs.se, LOCKS_INO, name, strlen(name));
}

/* ---- flock / POSIX locks ---- */
/* FLOCK: EWOULDBLOCK (LOCK_NB, held), EINTR (interrupted wait), EACCES (lockgroup),
 * EIO (draining), backend errno. */
static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
    (void)ino;
    handle *h = (handle *)(uintptr_t)fi->fh;
    if (!h->node) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (op & LOCK_UN) {
        fuse_reply_err(req, release_handle(h, H_WATCHING));
        return;
    }
    pthread_mutex_lock(&fs.mu);
    bool owning = h->state == H_OWNING;
    pthread_mutex_unlock(&fs.mu);
    if (owning) { /* LOCK_SH is taken as exclusive */
        fuse_reply_err(req, 0);
        return;
    }
    if (!may_acquire(req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    pid_t pid = tgid_of(fuse_req_ctx(req)->pid);
    sg_error err;
    sg_status st = try_acquire(h, pid, fuse_req_ctx(req)->uid, &err);
    if (st == SG_OK)
        fuse_reply_err(req, 0);
    else if (st == SG_CONTENDED && !(op & LOCK_NB))
        park(req, h, W_FLOCK, 0, pid);
    else
        fuse_reply_err(req, st == SG_CONTENDED ? EWOULDBLOCK : log_error("flock", &err));
}

static bool whole_file(const struct flock *l)
{
    return l->l_start == 0 && l->l_len == 0;
}

/* GETLK: ENOLCK (byte range), EINVAL (not a lock file), backend errno. */
static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                     struct flock *lock)
{
    node *n = ino_node(ino);
    if (!n || !whole_file(lock)) {
        fuse_reply_err(req, n ? ENOLCK : EINVAL);
        return;
    }
    sg_lock_info info;
    sg_error err;
    sg_status st = live_info(n, &info, &err);
    if (st == SG_ERROR) {
        fuse_reply_err(req, log_error("getlk", &err));
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
        pthread_mutex_lock(&fs.mu);
        for (handle *o = n->handles; o; o = o->nnext)
            if (o->state == H_OWNING && !strcmp(o->lock.lock_id, info.lock_id)) {
                if (o->posix && o->posix_owner == fi->lock_owner)
                    out.l_type = F_UNLCK; /* our own lock does not conflict */
                out.l_pid = o->pid;
            }
        pthread_mutex_unlock(&fs.mu);
    }
    fuse_reply_lock(req, &out);
}

/* SETLK/SETLKW: EAGAIN (held, no wait), ENOLCK (byte range), EINTR, EACCES (lockgroup),
 * backend errno. */
static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                     struct flock *lock, int sleep)
{
    node *n = ino_node(ino);
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
        release_posix_of(n, fi->lock_owner);
        fuse_reply_err(req, 0);
        return;
    }
    pthread_mutex_lock(&fs.mu);
    bool held = false;
    for (handle *o = n->handles; o; o = o->nnext)
        if (o->state == H_OWNING && ((o->posix && o->posix_owner == fi->lock_owner) || o == h))
            held = true;
    if (held && h->state == H_OWNING) {
        h->posix = true;
        h->posix_owner = fi->lock_owner;
    }
    pthread_mutex_unlock(&fs.mu);
    if (held) { /* this owner holds it already (POSIX locks merge) */
        fuse_reply_err(req, 0);
        return;
    }
    if (!may_acquire(req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    pid_t pid = tgid_of(fuse_req_ctx(req)->pid);
    sg_error err;
    sg_status st = try_acquire(h, pid, fuse_req_ctx(req)->uid, &err);
    if (st == SG_OK) {
        pthread_mutex_lock(&fs.mu);
        h->posix = true;
        h->posix_owner = fi->lock_owner;
        pthread_mutex_unlock(&fs.mu);
        fuse_reply_err(req, 0);
    } else if (st == SG_CONTENDED && sleep) {
        park(req, h, W_SETLK, fi->lock_owner, pid);
    } else {
        fuse_reply_err(req, st == SG_CONTENDED ? EAGAIN : log_error("setlk", &err));
    }
}

/* ---- unlink ---- */
/* UNLINK: ENOENT (absent), EPERM (held elsewhere, no allow_break), EINVAL, backend errno. */
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
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
    pthread_mutex_lock(&fs.mu);
    node *n = node_find_locked(key);
    if (n) {
        for (handle *o = n->handles; o; o = o->nnext)
            if (o->state == H_OWNING)
                mine = o;
        n->nopen++;
    }
    pthread_mutex_unlock(&fs.mu);
    if (mine) {
        rc = release_handle(mine, H_WATCHING);
    } else {
        sg_lock_info info;
        sg_error err;
        memset(&info, 0, sizeof info);
        sg_status st = b_lookup(key, &info, &err);
        if (st == SG_ERROR)
            rc = log_error("unlink", &err);
        else if (st == SG_ABSENT)
            rc = ENOENT;
        else if (!fs.cfg.allow_break || fuse_req_ctx(req)->uid != 0)
            rc = EPERM; /* held elsewhere */
        else {
            st = b_release(info.lock_id, &err);
            rc = st == SG_OK ? 0 : st == SG_ABSENT ? ENOENT : log_error("break", &err);
            if (st == SG_OK)
                sg_log(SG_LOG_WARN, "allow_break: root broke the lock on %.200s (fence %s)",
                       name, info.fence);
        }
    }
    if (n) {
        pthread_mutex_lock(&fs.mu);
        n->nopen--;
        node_maybe_free_locked(n);
        pthread_mutex_unlock(&fs.mu);
    }
    fuse_reply_err(req, rc);
}

/* ---- directories ---- */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
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
            st.st_ino = (ino_t)(hash_key(d->names[idx]) | 0x100000);
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
        sg_status s = sg_list(fs.b, d->cursor, LIST_PAGE, collect_name, d, &err);
        metrics_op_done(M_LIST, s, &err, t0);
        if (s != SG_OK) {
            free(buf);
            fuse_reply_err(req, log_error("readdir", &err));
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

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    dirh *d = (dirh *)(uintptr_t)fi->fh;
    dirh_clear(d);
    free(d);
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs s;
    memset(&s, 0, sizeof s);
    s.f_bsize = s.f_frsize = 4096;
    s.f_namemax = SGFS_NAME_MAX;
    pthread_mutex_lock(&fs.mu);
    s.f_files = (fsfilcnt_t)fs.held;
    pthread_mutex_unlock(&fs.mu);
    fuse_reply_statfs(req, &s);
}

/* ---- xattrs: the current holder's public fields ---- */
static const char *const xattr_names[] = {"user.syncguard.fence", "user.syncguard.expiresAtMs",
                                          "user.syncguard.acquiredAtMs",
                                          "user.syncguard.keyHash",
                                          "user.syncguard.lockIdHash"};

/* GETXATTR: ENODATA (unknown name), ENOENT (lock gone), ERANGE (buffer), backend errno. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    node *n = ino_node(ino);
    size_t which = 0, nx = sizeof xattr_names / sizeof xattr_names[0];
    while (which < nx && strcmp(name, xattr_names[which]))
        which++;
    if (!n || which == nx) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    sg_lock_info info;
    sg_error err;
    sg_status st = live_info(n, &info, &err);
    if (st != SG_OK) {
        fuse_reply_err(req, st == SG_ABSENT ? ENOENT : log_error("getxattr", &err));
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

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char buf[256];
    size_t len = 0;
    if (ino_node(ino))
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

/* ---- poll: POLLERR|POLLPRI once the descriptor's lock is lost ---- */
static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                    struct fuse_pollhandle *ph)
{
    (void)ino;
    handle *h = (handle *)(uintptr_t)fi->fh;
    unsigned revents = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM;
    pthread_mutex_lock(&fs.mu);
    if (h->state == H_LOST)
        revents = POLLERR | POLLPRI;
    if (ph) {
        if (h->ph)
            fuse_pollhandle_destroy(h->ph);
        h->ph = h->state == H_OWNING ? ph : NULL;
        if (!h->ph)
            fuse_pollhandle_destroy(ph);
    }
    pthread_mutex_unlock(&fs.mu);
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
    .flock = op_flock,
    .getlk = op_getlk,
    .setlk = op_setlk,
    .unlink = op_unlink,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .poll = op_poll,
};

const struct fuse_lowlevel_ops *sgfs_ops(void)
{
    return &ops;
}

/* ---- the scheduler: waiters, renewals, shutdown ---- */
static void waiter_unlink_locked(waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        fs.waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    fs.n_waiters--;
}

/* Reply to a parked request and free it (mu not held). */
static void waiter_finish(waiter *w, int err)
{
    /* Unregister first: this waits for a running interrupt callback, after
     * which none can touch w. */
    fuse_req_interrupt_func(w->req, NULL, NULL);
    if (err == EINTR)
        metrics_event_add(M_INTERRUPTED);
    fuse_reply_err(w->req, err);
    free(w);
}

/* One attempt for a due waiter (mu held on entry and exit). */
static void waiter_attempt_locked(waiter *w)
{
    waiter_unlink_locked(w);
    pthread_mutex_unlock(&fs.mu);
    sg_error err;
    sg_status st = try_acquire(w->h, w->pid, w->h->uid, &err);
    pthread_mutex_lock(&fs.mu);
    if (st == SG_OK && w->kind == W_SETLK) {
        w->h->posix = true;
        w->h->posix_owner = w->posix_owner;
    }
    int64_t now = sg_monotonic_ms();
    int reply = -1;
    if (w->interrupted) {
        reply = EINTR;
        if (st == SG_OK) { /* granted after the caller gave up: give it back */
            pthread_mutex_unlock(&fs.mu);
            release_handle(w->h, H_WATCHING);
            pthread_mutex_lock(&fs.mu);
        }
    } else if (st == SG_OK) {
        reply = 0;
    } else if (st == SG_ERROR) {
        reply = log_error("waiting acquire", &err);
    } else {
        w->attempt++;
        waiter_link_locked(w, now);
    }
    if (reply >= 0) {
        pthread_mutex_unlock(&fs.mu);
        waiter_finish(w, reply);
        pthread_mutex_lock(&fs.mu);
    }
}

static void renew_locked(handle *h)
{
    h->busy = true;
    char lock_id[SG_LOCK_ID_LEN + 1];
    memcpy(lock_id, h->lock.lock_id, sizeof lock_id);
    int64_t ttl = h->ttl_ms;
    pthread_mutex_unlock(&fs.mu);
    sg_error err;
    int64_t sent = sg_monotonic_ms(), exp = 0;
    sg_status st = b_extend(lock_id, ttl, &exp, &err);
    pthread_mutex_lock(&fs.mu);
    if (h->state == H_OWNING && !strcmp(h->lock.lock_id, lock_id)) {
        if (st == SG_OK) {
            metrics_event_add(M_RENEWED);
            h->lock.expires_at_ms = exp;
            h->deadline_ms = sent + ttl - margin(ttl);
            h->due_ms = sent + renew_interval(ttl);
            heap_fix(h->heap_idx);
        } else if (st == SG_ABSENT) {
            metrics_event_add(M_RENEW_FAILED);
            mark_lost_locked(h, "the lock expired or was released elsewhere");
        } else {
            metrics_event_add(M_RENEW_FAILED);
            char buf[600];
            sg_log(SG_LOG_WARN, "renewal failed, retrying: %s",
                   sg_error_format(&err, buf, sizeof buf));
            int64_t retry = sg_monotonic_ms() + (ttl / 10 < 1000 ? ttl / 10 : 1000);
            h->due_ms = retry < h->deadline_ms ? retry : h->deadline_ms;
            heap_fix(h->heap_idx);
        }
    }
    end_op_locked(h);
}

static void release_all_locked(void)
{
    while (fs.heap_n) {
        handle *h = fs.heap[0];
        if (h->busy) {
            pthread_cond_wait(&fs.idle_cv, &fs.mu);
            continue;
        }
        h->busy = true;
        sg_lock lock = h->lock;
        stop_owning_locked(h, H_LOST);
        pthread_mutex_unlock(&fs.mu);
        sg_error err;
        if (b_release(lock.lock_id, &err) == SG_ERROR)
            log_error("release at shutdown", &err);
        pthread_mutex_lock(&fs.mu);
        end_op_locked(h);
    }
}

static void *scheduler_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&fs.mu);
    bool exiting = false;
    while (!fs.stop) {
        int64_t now = sg_monotonic_ms();
        /* waiters: interrupted or due */
        for (waiter *w = fs.waiters, *next; w; w = next) {
            next = w->next;
            if (w->interrupted) {
                waiter_unlink_locked(w);
                pthread_mutex_unlock(&fs.mu);
                waiter_finish(w, EINTR);
                pthread_mutex_lock(&fs.mu);
                next = fs.waiters; /* the list may have changed */
            } else if (w->next_ms <= now) {
                waiter_attempt_locked(w);
                next = fs.waiters;
                now = sg_monotonic_ms();
            }
        }
        /* renewals and deadlines */
        while (fs.heap_n && fs.heap[0]->due_ms <= now) {
            handle *h = fs.heap[0];
            if (now > h->deadline_ms) {
                mark_lost_locked(h, "no successful renewal before the deadline");
                continue;
            }
            if (h->busy) { /* a write is extending it: look again shortly */
                h->due_ms = now + 10;
                heap_fix(0);
                continue;
            }
            renew_locked(h);
            now = sg_monotonic_ms();
        }
        /* graceful shutdown */
        if (atomic_load(&fs.draining) && !exiting) {
            if (!fs.drain_deadline_ms) {
                fs.drain_deadline_ms = now + fs.cfg.shutdown_grace_ms;
                sg_log(SG_LOG_INFO, "shutting down: %d lock(s) held; waiting up to %" PRId64
                                    " ms for their holders",
                       fs.held, fs.cfg.shutdown_grace_ms);
                for (waiter *w = fs.waiters; w; w = w->next)
                    w->next_ms = now;
            }
            if (fs.held == 0 || now >= fs.drain_deadline_ms) {
                release_all_locked();
                exiting = true;
                pthread_mutex_unlock(&fs.mu);
                sg_log(SG_LOG_INFO, "all locks released; unmounting");
                fuse_session_exit(fs.se);
                fuse_session_unmount(fs.se);
                pthread_mutex_lock(&fs.mu);
            }
        }
        int64_t wake = now + 200;
        if (fs.heap_n && fs.heap[0]->due_ms < wake)
            wake = fs.heap[0]->due_ms;
        for (waiter *w = fs.waiters; w; w = w->next)
            if (w->next_ms < wake)
                wake = w->next_ms;
        if (wake > now && !fs.stop)
            msleep_until_cond(&fs.sched_cv, wake - now);
    }
    pthread_mutex_unlock(&fs.mu);
    return NULL;
}

/* ---- lifecycle ---- */
int sgfs_init(sg_backend *backend, const sgfs_config *cfg)
{
    fs.b = backend;
    fs.cfg = *cfg;
    fs.uid = getuid();
    fs.gid = getgid();
    fs.started_ms = sg_now_ms();
    fs.table_size = 1024;
    fs.table = calloc(fs.table_size, sizeof *fs.table);
    if (!fs.table)
        return -ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fs.sched_cv, &ca);
    pthread_cond_init(&fs.idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (cfg->state_path[0]) {
        state_recover();
        fs.state_fd = open(cfg->state_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
                           0600);
        if (fs.state_fd < 0)
            sg_log(SG_LOG_WARN, "cannot open state file %s: %s (a restarted daemon will not "
                                "free this one's locks early)",
                   cfg->state_path, strerror(errno));
    }
    return 0;
}

int sgfs_start(struct fuse_session *se)
{
    fs.se = se;
    int rc = pthread_create(&fs.sched, NULL, scheduler_main, NULL);
    fs.sched_running = rc == 0;
    return -rc;
}

void sgfs_request_shutdown(void)
{
    atomic_store(&fs.draining, 1);
}

void sgfs_finish(void)
{
    pthread_mutex_lock(&fs.mu);
    release_all_locked();
    /* parked requests can no longer be answered: the session is gone */
    while (fs.waiters) {
        waiter *w = fs.waiters;
        waiter_unlink_locked(w);
        free(w);
    }
    fs.stop = true;
    pthread_cond_broadcast(&fs.sched_cv);
    pthread_mutex_unlock(&fs.mu);
    if (fs.sched_running)
        pthread_join(fs.sched, NULL);
    if (fs.state_fd >= 0) {
        close(fs.state_fd);
        unlink(fs.cfg.state_path);
    }
    for (size_t i = 0; i < fs.table_size; i++)
        for (node *n = fs.table[i], *next; n; n = next) {
            next = n->hnext;
            for (handle *h = n->handles, *hn; h; h = hn) {
                hn = h->nnext;
                if (h->ph)
                    fuse_pollhandle_destroy(h->ph);
                free(h->snap);
                free(h);
            }
            free(n->key);
            free(n);
        }
    free(fs.table);
    free(fs.heap);
    sg_backend_close(fs.b);
}
