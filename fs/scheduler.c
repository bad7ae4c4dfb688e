/* scheduler.c — the daemon's timing thread: retries parked waiters and runs
 * the graceful shutdown. Renewals and loss deadlines belong to the core's
 * renewer (its own thread and workers), so no backend call made here can
 * delay a loss. Shutdown: stop granting, keep renewing until the holders
 * close or shutdown_grace passes, release everything, end the session —
 * even while descriptors are still open. */
#include "sgfs.h"

#include <inttypes.h>
#include <signal.h>

static void *scheduler_main(void *arg)
{
    sgfs *fs = arg;
    pthread_mutex_lock(&fs->mu);
    bool ended = false;
    while (!fs->stop) {
        int64_t now = sg_monotonic_ms();
        int64_t wake = sgfs_waiters_run(fs, now);
        now = sg_monotonic_ms();
        if (atomic_load(&fs->draining) && !ended) {
            if (!fs->drain_deadline_ms) {
                fs->drain_deadline_ms = now + fs->cfg.shutdown_grace_ms;
                sg_log(SG_LOG_INFO, "shutting down: %d lock(s) held; waiting up to %" PRId64
                                    " ms for their holders",
                       fs->held, fs->cfg.shutdown_grace_ms);
            }
            if (fs->held == 0 || now >= fs->drain_deadline_ms) {
                if (fs->held)
                    sg_log(SG_LOG_WARN, "shutdown_grace passed: releasing %d lock(s) whose "
                                        "holders still run", fs->held);
                sgfs_release_all(fs);
                sg_log(SG_LOG_INFO, "all locks released; unmounting");
                ended = true;
            } else if (fs->drain_deadline_ms < wake) {
                wake = fs->drain_deadline_ms;
            }
        }
        if (ended && wake > now + 200)
            wake = now + 200; /* keep nudging the session loop until it ends */
        if (wake > now + 1000)
            wake = now + 1000;
        /* The session loop sleeps until a request or a signal comes; with
         * descriptors still open no request may come: set its exit flag and
         * wake it (main.c's handler is harmless) until main stops us. */
        if (ended && !fs->stop) {
            pthread_mutex_unlock(&fs->mu);
            if (!fuse_session_exited(fs->se))
                fuse_session_exit(fs->se);
            pthread_kill(fs->main_thread, SIGTERM);
            pthread_mutex_lock(&fs->mu);
        }
        if (wake > now && !fs->stop)
            sgfs_cond_wait_ms(fs, &fs->sched_cv, wake - now);
    }
    pthread_mutex_unlock(&fs->mu);
    return NULL;
}

int sgfs_scheduler_start(sgfs *fs)
{
    int rc = pthread_create(&fs->sched, NULL, scheduler_main, fs);
    fs->sched_running = rc == 0;
    return -rc;
}

void sgfs_scheduler_stop(sgfs *fs)
{
    pthread_mutex_lock(&fs->mu);
    fs->stop = true;
    pthread_cond_broadcast(&fs->sched_cv);
    pthread_mutex_unlock(&fs->mu);
    if (fs->sched_running)
        pthread_join(fs->sched, NULL);
    fs->sched_running = false;
}
