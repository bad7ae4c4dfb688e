/* lockfs.h — the syncguardfs filesystem (FUSE low-level operations, handle
 * table, parked waiters, renewal scheduler, metrics), driven by main.c. */
#ifndef SGFS_LOCKFS_H
#define SGFS_LOCKFS_H
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>

#include "syncguard.h"

typedef struct sgfs_config {
    int64_t ttl_ms;             /* TTL of locks taken through the mount */
    int64_t retry_delay_ms;     /* first retry delay of waits */
    int64_t max_delay_ms;       /* cap of one wait delay (1 s by default) */
    sg_backoff backoff;
    sg_jitter jitter;
    int64_t shutdown_grace_ms;
    bool allow_other, allow_break, has_lockgroup;
    gid_t lockgroup;
    mode_t dirmode;
    int loss_signal; /* 0: none */
    char state_path[4096];
    char hostname[256];
} sgfs_config;

/* Set up the filesystem over an open backend (ownership passes). Releases
 * the locks listed in an earlier daemon's state file. */
int sgfs_init(sg_backend *backend, const sgfs_config *cfg);
const struct fuse_lowlevel_ops *sgfs_ops(void);
/* Start the scheduler (renewals, waiters, shutdown) for a mounted session. */
int sgfs_start(struct fuse_session *se);
/* Async-signal-safe: begin the graceful shutdown (SIGTERM/SIGINT). */
void sgfs_request_shutdown(void);
/* After the session loop ended: release what is still held, stop, free. */
void sgfs_finish(void);
#endif
