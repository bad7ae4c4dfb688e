/* lockfs.c — the life of the filesystem: set up (journal recovery, the
 * renewer), start, graceful shutdown, tear down. */
#include "sgfs.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "metrics.h"

sgfs *sgfs_new(sg_backend *backend, sgfs_journal *journal, const sgfs_config *cfg)
{
    /* every backend call, the renewer's included, feeds the metrics */
    sg_backend *counted = sg_with_telemetry(backend, metrics_on_event, NULL, false);
    if (counted)
        backend = counted;
    sgfs *fs = calloc(1, sizeof *fs);
    if (!counted || !fs || sgfs_nodes_init(fs) != 0) {
        sg_log(SG_LOG_ERR, "out of memory");
        free(fs);
        sgfs_journal_close(journal);
        sg_backend_close(backend);
        return NULL;
    }
    fs->b = backend;
    fs->journal = journal;
    fs->cfg = *cfg;
    fs->uid = getuid();
    fs->gid = getgid();
    fs->started_ms = sg_now_ms();
    pthread_mutex_init(&fs->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fs->sched_cv, &ca);
    pthread_cond_init(&fs->idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    sgfs_recover(fs);
    return fs;
}

/* Threads start here, after fuse_daemonize: a fork keeps only the calling
 * thread, so a renewer started before it would be missing in the daemon (and
 * a lock held by a vanished thread — the allocator's — would stay held). */
int sgfs_start(sgfs *fs, struct fuse_session *se)
{
    fs->se = se;
    fs->main_thread = pthread_self();
    sg_error err;
    if (sg_renewer_start(fs->b, 0, sgfs_on_lease_lost, fs, &fs->renewer, &err) != SG_OK) {
        sgfs_log_error("starting the renewer", &err);
        return -ENOMEM;
    }
    return sgfs_scheduler_start(fs);
}

void sgfs_request_shutdown(sgfs *fs)
{
    if (fs)
        atomic_store(&fs->draining, 1);
}

void sgfs_finish(sgfs *fs)
{
    if (!fs)
        return;
    pthread_mutex_lock(&fs->mu);
    atomic_store(&fs->draining, 1);
    if (fs->renewer)
        sgfs_release_all(fs);
    sgfs_waiters_free(fs); /* parked requests can no longer be answered */
    pthread_mutex_unlock(&fs->mu);
    sgfs_scheduler_stop(fs);
    sgfs_keywatches_free(fs); /* no wake-up callback runs past this */
    /* calls still in flight (a hung renewal) keep using the backend: wait a
     * little, and leave the backend open if they do not return */
    bool idle = !fs->renewer || sg_renewer_stop_wait(fs->renewer, 3000);
    sgfs_journal_close(fs->journal);
    sgfs_nodes_free(fs);
    free(fs->leases);
    if (idle)
        sg_backend_close(fs->b);
    pthread_cond_destroy(&fs->sched_cv);
    pthread_cond_destroy(&fs->idle_cv);
    pthread_mutex_destroy(&fs->mu);
    free(fs);
}
