/* proc.h — process identity for syncguardfs: which process opened a lock file,
 * whether it is still the same process later, and signalling it safely.
 *
 * A pid alone is not an identity: pids are reused. An identity here is a pid
 * plus its start time (field 22 of /proc/PID/stat, clock ticks since boot),
 * captured when the lock file is opened and checked again before any signal. */
#ifndef SGFS_PROC_H
#define SGFS_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Thread group id (the process id) of thread `tid` — fuse_get_context()->pid is
 * a thread id. tgkill(tid, tid, 0) answers "a group leader" in one system call
 * (the common case); other threads are looked up in /proc/TID/status. Returns
 * tid itself when the thread is gone or /proc cannot tell. */
pid_t sgfs_proc_tgid(pid_t tid);

/* Start time of process `pid` (field 22 of /proc/PID/stat, in clock ticks since
 * boot; parsed after the last ')' since comm may hold spaces and parens).
 * Returns 0 when the process is gone or its stat cannot be read. */
uint64_t sgfs_proc_start_time(pid_t pid);

/* Whether process `pid` still is the process that started at `start_time`.
 * start_time 0 ("unknown") answers whether any process has that pid: the
 * cautious answer when the question is "may its lock be freed?". */
bool sgfs_proc_alive(pid_t pid, uint64_t start_time);

/* Send `sig` to process `pid` — or, when `group`, to its process group — only if
 * pid still has `start_time` (an unknown start time, 0, never matches). The check
 * and the signal go through one pidfd (pidfd_open + pidfd_send_signal), so a pid
 * reused in between is never hit; kernels without pidfds fall back to check +
 * kill(2), which leaves a small window.
 * Group: the process group id is read after the identity check and the whole
 * group gets kill(-pgid, sig). The group is whatever it is at that moment: it
 * may have changed since the lock was taken, or hold only this process. Groups
 * with pgid <= 1 and the daemon's own group are refused (-EPERM).
 * Returns 0, -ESRCH (gone, pid reused, or start_time 0), -EPERM, -EINVAL
 * (pid <= 0, bad signal) or another -errno. */
int sgfs_proc_signal(pid_t pid, uint64_t start_time, int sig, bool group);

#endif
