/* lockfs.h — the syncguardfs filesystem as main.c drives it: set it up over
 * a backend and a journal, start it on a session, shut it down. Its parts
 * are private (sgfs.h): nodes, handles, waiters, scheduler, content, and the
 * FUSE handlers in ops.c, locks.c and dir.c. */
#ifndef SGFS_LOCKFS_H
#define SGFS_LOCKFS_H
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>

#include "options.h" /* sgfs_config */
#include "syncguard.h"

typedef struct sgfs sgfs;
typedef struct sgfs_journal sgfs_journal;

/* The filesystem over an open backend and journal (ownership of both passes,
 * journal may be NULL). Releases the locks of a predecessor recorded in the
 * journal whose holders are gone, starts the renewer. NULL on failure
 * (logged; the backend and journal are then closed). */
sgfs *sgfs_new(sg_backend *backend, sgfs_journal *journal, const sgfs_config *cfg);
/* The low-level operations; their userdata is the sgfs. */
const struct fuse_lowlevel_ops *sgfs_ops(void);
/* Start the scheduler for a mounted session; the calling thread must be the
 * one that runs the session loop (it is woken to end the session). */
int sgfs_start(sgfs *fs, struct fuse_session *se);
/* Async-signal-safe: begin the graceful shutdown (SIGTERM/SIGINT). */
void sgfs_request_shutdown(sgfs *fs);
/* After the session loop ended: release what is still held, stop, free. */
void sgfs_finish(sgfs *fs);
#endif
