/* proc.c — process identity: thread → process, start times from /proc, and
 * signals that cannot hit a reused pid (see proc.h). */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t sgfs_proc_tgid(pid_t tid)
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

uint64_t sgfs_proc_start_time(pid_t pid)
{
    if (pid <= 0)
        return 0;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold ' ' and ')', the fields after
     * it cannot, so count from the last ')'. Field 3 (state) follows it. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return 0;
        if (field == 22) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p, &end, 10);
            if (errno || end == p || (*end != ' ' && *end != '\n' && *end != '\0'))
                return 0;
            return (uint64_t)v;
        }
        p += strcspn(p, " ");
    }
    return 0;
}

bool sgfs_proc_alive(pid_t pid, uint64_t start_time)
{
    if (pid <= 0)
        return false;
    if (start_time == 0)
        return kill(pid, 0) == 0 || errno == EPERM;
    return sgfs_proc_start_time(pid) == start_time;
}

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int pidfd_send_signal_(int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
    (void)pidfd;
    (void)sig;
    errno = ENOSYS;
    return -1;
#endif
}

int sgfs_proc_signal(pid_t pid, uint64_t start_time, int sig, bool group)
{
    if (pid <= 0 || sig < 0 || sig >= NSIG)
        return -EINVAL;
    if (start_time == 0)
        return -ESRCH;
    /* The pidfd pins the process that has `pid` now; a start time read after it
     * that matches proves the pidfd is the recorded process — had the pid been
     * reused in between, the pidfd's process is dead and its signals fail. */
    int pidfd = pidfd_open_(pid);
    if (pidfd < 0 && errno != ENOSYS)
        return -errno;
    int rc = 0;
    if (sgfs_proc_start_time(pid) != start_time) {
        rc = -ESRCH;
        goto out;
    }
    if (!group) {
        if ((pidfd >= 0 ? pidfd_send_signal_(pidfd, sig) : kill(pid, sig)) != 0)
            rc = -errno;
        goto out;
    }
    pid_t pgid = getpgid(pid);
    if (pgid < 0) {
        rc = -errno;
        goto out;
    }
    /* The pgid belongs to our process only if it was still alive after the read
     * (a live process keeps its pid). */
    if ((pidfd >= 0 ? pidfd_send_signal_(pidfd, 0) : kill(pid, 0)) != 0) {
        rc = -errno;
        goto out;
    }
    if (pgid <= 1 || pgid == getpgrp()) {
        rc = -EPERM;
        goto out;
    }
    if (kill(-pgid, sig) != 0)
        rc = -errno;
out:
    if (pidfd >= 0)
        close(pidfd);
    return rc;
}
