/* lockfs.h — the syncguardfs filesystem (FUSE low-level operations, handle
 * table, parked waiters, renewal scheduler, metrics), driven by main.c. */
#ifndef SGFS_LOCKFS_H
#define SGFS_LOCKFS_H
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>

#include "options.h" /* sgfs_config */
#include "syncguard.h"

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
