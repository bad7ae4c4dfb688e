/* sgfs.h — private to syncguardfs: the daemon's state (one struct, handed
 * to libfuse as userdata and to every thread), its types, and which mutex
 * guards what.
 *
 * Lock rule: `mu` guards every field marked (mu): nodes, handles, waiters,
 * the lease map and the counters. It is never held across a backend call,
 * nor while calling into libfuse's interrupt registration (the interrupt
 * callback takes `mu` under libfuse's request lock, so the order is always
 * req->lock → mu), nor while calling the renewer (whose on_lost callback
 * takes `mu`). Fields marked (init) are written before the session starts
 * and only read afterwards. */
#ifndef SGFS_SGFS_H
#define SGFS_SGFS_H
#include "lockfs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "journal.h"
#include "names.h"
#include "waitq.h"

#define ROOT_INO FUSE_ROOT_ID
#define LOCKS_INO 2
#define METRICS_INO 3
#define LOCAL_RELEASE_WAIT_MS 50 /* wait for a just-closed local holder's RELEASE */
#define LIST_PAGE 128            /* locks per backend page of a READDIR */
#define SEEN_LIVE_REUSE_US 5000  /* GETATTR right after its LOOKUP reuses its answer */

typedef struct handle handle;

/* One inode of locks/: a key, while the kernel or a descriptor refers to it.
 * A name whose lock went away while descriptors stayed open keeps its old
 * inode for them (`gone`); a later live LOOKUP gets a fresh node, and the
 * old one is moved to the fresh node's `older` chain until it is unused. */
typedef struct node {
    struct node *hnext;   /* hash chain of the key table (mu) */
    struct node *older;   /* earlier inodes of the same key, still open (mu) */
    struct node *newer;   /* set once replaced: the node that took the name (mu) */
    char *key;            /* normalized key (init) */
    uint64_t nlookup;     /* kernel references (mu) */
    int nopen;            /* handles and calls pinning it (mu) */
    handle *handles;      /* open descriptors of this inode (mu) */
    bool gone;            /* its lock was seen absent while still open (mu) */
    bool hashed;          /* in the key table (mu) */
    int64_t seen_live_us; /* the last LOOKUP that found it live (mu) */
    int64_t seen_acquired_at_ms;
} node;

typedef enum { H_WATCHING, H_OWNING, H_LOST } hstate;

/* What a handle keeps of its lock: an sg_lock without the key, which its
 * node has (sg_lock's 513-byte key buffer was half of the daemon's memory
 * per held lock). */
typedef struct held_lock {
    char lock_id[SG_LOCK_ID_LEN + 1];
    char fence[SG_FENCE_LEN + 1];
    int64_t acquired_at_ms;
    int64_t expires_at_ms;
} held_lock;

/* One open file of locks/<name> (or of metrics: node NULL). */
struct handle {
    node *node;            /* (init) NULL for the metrics file */
    handle *nnext;         /* in node->handles (mu) */
    handle *lnext;         /* in the lease map while owning (mu) */
    hstate state;          /* (mu) */
    held_lock lock;        /* valid while owning, the last one when lost (mu) */
    uint64_t lease;        /* renewer lease while owning, else 0 (mu) */
    bool busy;             /* a backend operation for it is in flight (mu) */
    int64_t flushed_ms;    /* monotonic time of its last FLUSH (close) (mu) */
    bool posix;            /* owned through a POSIX lock of posix_owner (mu) */
    uint64_t posix_owner;
    pid_t pid;             /* the process that opened it (init) */
    uint64_t pid_start;    /* its start time, read at the first acquire (mu) */
    uid_t uid;             /* who acquired it (mu), else the opener */
    struct fuse_pollhandle *ph; /* (mu) */
    char *snap;            /* read snapshot, built at offset 0 (mu) */
    size_t snap_len;
};

typedef enum { W_FLOCK, W_SETLK } wkind;

/* A parked flock/SETLKW request, retried by the scheduler. */
typedef struct waiter {
    wq_entry q;       /* in sgfs.wq: links, key, next attempt, interrupted (mu);
                       * a wait lasts until granted or interrupted */
    fuse_req_t req;
    handle *h;
    wkind kind;
    int64_t free_at_ms; /* monotonic: the holder's lock stops being live, 0 unknown */
    int attempt;
    uint64_t posix_owner;
    uid_t uid;
} waiter;

typedef struct sgfs {
    sg_backend *b;          /* (init) thread-safe */
    sgfs_config cfg;        /* (init) */
    uid_t uid;              /* (init) the daemon's */
    gid_t gid;
    int64_t started_ms;
    struct fuse_session *se; /* (init) */
    pthread_t main_thread;   /* (init) woken when the session must end */
    sg_renewer *renewer;     /* (init) thread-safe: renewals and deadlines */
    sgfs_journal *journal;   /* (init) thread-safe; NULL without a state file */

    pthread_mutex_t mu;
    pthread_cond_t sched_cv; /* the scheduler sleeps on it (mu) */
    pthread_cond_t idle_cv;  /* a handle became idle / a local release (mu) */
    node **table;            /* key → node (mu) */
    size_t table_size, n_nodes;
    handle **leases;         /* lease id → owning handle (mu) */
    size_t leases_size;
    /* Parked waiters and their keys (mu). A key's entry is created by a park;
     * watched, unwatched and freed only by the scheduler thread (so a wake-up
     * callback never outlives it: sg_unwatch waits). */
    waitq wq;
    bool keywatch_dirty;     /* a key gained its first or lost its last waiter (mu) */
    int held;                /* owning handles (mu) */
    atomic_int draining;     /* SIGTERM/SIGINT seen */
    int64_t drain_deadline_ms; /* (mu) */
    pthread_t sched;
    bool sched_running, stop;  /* (mu) */
} sgfs;

/* ---- helpers.c-like small shared pieces (handles.c) ---- */
int sgfs_log_error(const char *what, const sg_error *e); /* logs, returns the errno */
double sgfs_rand01(void);
void sgfs_cond_wait_ms(sgfs *fs, pthread_cond_t *cv, int64_t ms); /* mu held */

/* ---- nodes.c: key ↔ inode ---- */
int sgfs_nodes_init(sgfs *fs);
void sgfs_nodes_free(sgfs *fs);
node *sgfs_node_find(sgfs *fs, const char *key);  /* mu held; the current node */
node *sgfs_node_get(sgfs *fs, const char *key);   /* mu held; NULL on ENOMEM */
/* mu held: a live LOOKUP of n's key — n itself, or a fresh node if n's lock
 * went away while it stayed open (NULL on ENOMEM). */
node *sgfs_node_for_live(sgfs *fs, node *n);
void sgfs_node_maybe_free(sgfs *fs, node *n);     /* mu held */
node *sgfs_ino_node(fuse_ino_t ino);
fuse_ino_t sgfs_node_ino(const node *n);
uint64_t sgfs_key_hash(const char *s);
/* mu held: the handle owning n's key through this mount (any inode of it). */
handle *sgfs_key_owner(sgfs *fs, node *n);

/* ---- handles.c: descriptors and their states ---- */
handle *sgfs_handle_new(sgfs *fs, node *n, fuse_req_t req);
void sgfs_handle_free(sgfs *fs, handle *h);
/* One acquire attempt for h by (pid, uid): SG_OK (h owns), SG_CONTENDED
 * (*holder: when the holder frees it, if known; holder may be NULL), SG_ERROR. */
sg_status sgfs_try_acquire(sgfs *fs, handle *h, uid_t uid, sg_holder *holder, sg_error *e);
/* Release what h owns (after an in-flight operation); h becomes `to`. 0 or errno. */
int sgfs_release_handle(sgfs *fs, handle *h, hstate to);
/* A TTL write on h: 0, ENOLCK (watching), ESTALE (lost), or a backend errno. */
int sgfs_handle_extend(sgfs *fs, handle *h, int64_t ttl_ms);
void sgfs_mark_lost(sgfs *fs, handle *h, const char *why); /* mu held */
void sgfs_on_lease_lost(uint64_t lease, const char *lock_id, const sg_error *why, void *ud);
/* Release everything still owned (shutdown). mu held; drops it around calls. */
void sgfs_release_all(sgfs *fs);
/* Give the predecessor's journal entries back (at start). */
void sgfs_recover(sgfs *fs);
/* Backend calls counted in metrics. */
sg_status sgfs_b_lookup(sgfs *fs, const char *key, sg_lock_info *info, sg_error *e);
sg_status sgfs_b_release(sgfs *fs, const char *lock_id, sg_error *e);

/* ---- waiters.c: parked requests ---- */
/* Park a request that found h's key held (holder: what that attempt said). */
void sgfs_park(sgfs *fs, fuse_req_t req, handle *h, wkind kind, uint64_t posix_owner, uid_t uid,
               const sg_holder *holder);
void sgfs_wake_waiters(sgfs *fs, const node *n); /* mu held: a local release of n's key */
/* mu held: attempt due waiters, answer interrupted ones; returns the next due time. */
int64_t sgfs_waiters_run(sgfs *fs, int64_t now);
void sgfs_waiters_free(sgfs *fs); /* mu held; the session is gone */
/* mu not held, scheduler stopped: drop every wake-up subscription (before
 * the backend closes). */
void sgfs_keywatches_free(sgfs *fs);

/* ---- scheduler.c: the timing thread (waiter retries, drain) ---- */
int sgfs_scheduler_start(sgfs *fs);
void sgfs_scheduler_stop(sgfs *fs);

/* ---- content.c: the text of a lock file ---- */
int sgfs_build_snapshot(sgfs *fs, handle *h); /* 0 or errno (ESTALE when lost) */

/* ---- ops.c, locks.c, dir.c: FUSE handlers ---- */
void sgfs_op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);
void sgfs_op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *l);
void sgfs_op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *l,
                   int sleep);
void sgfs_release_posix_of(sgfs *fs, node *n, uint64_t owner);
bool sgfs_may_acquire(sgfs *fs, fuse_req_t req);
void sgfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sgfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi);
void sgfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sgfs_op_statfs(fuse_req_t req, fuse_ino_t ino);
void sgfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void sgfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);

static inline sgfs *sgfs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}
#endif
