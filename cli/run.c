/* run.c — `syncguard run`: acquire KEY, run CMD in its own process group
 * with the lock in its environment, renew through the core's heartbeat,
 * forward TERM/INT/HUP/QUIT/USR1/USR2 to CMD's group, signal the group when
 * the lock is lost (then KILL after a grace), release when CMD ends.
 *
 * One thread waits on everything (poll on a signalfd for the forwarded
 * signals and SIGCHLD, an eventfd the heartbeat's on_lost writes, and the
 * KILL deadline); every signal is blocked in every thread, the heartbeat's
 * included, so none is delivered anywhere else. */
#include <errno.h>
#include <dirent.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"

/* Descriptors below FD_TRACKED that were open when syncguard started: CMD
 * inherits those (`syncguard run k cmd 9<file` must work) and none of ours
 * (backend sockets are not all close-on-exec). */
#define FD_TRACKED 1024
static bool inherited_fd[FD_TRACKED];

void cli_run_snapshot_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) { /* cannot tell: close nothing */
        for (int fd = 0; fd < FD_TRACKED; fd++)
            inherited_fd[fd] = true;
        return;
    }
    int self = dirfd(d);
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (!*end && end != e->d_name && fd >= 0 && fd < FD_TRACKED && fd != self)
            inherited_fd[fd] = true;
    }
    closedir(d);
}

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

typedef struct loss {
    int fd; /* eventfd: the heartbeat thread → the main loop */
    pthread_mutex_t mu;
    char why[256];
} loss;

/* From the heartbeat thread, once: a final extend failure or the deadline. */
static void on_lost(const char *lock_id, const sg_error *err, void *ud)
{
    (void)lock_id;
    loss *l = ud;
    pthread_mutex_lock(&l->mu);
    if (err && err->cause[0])
        snprintf(l->why, sizeof l->why, "%.120s: %.120s", err->message, err->cause);
    else
        snprintf(l->why, sizeof l->why, "%s", err && err->message[0] ? err->message : "lock lost");
    pthread_mutex_unlock(&l->mu);
    uint64_t one = 1;
    while (write(l->fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* Signal CMD's process group (or CMD alone if it left the group). */
static void signal_cmd(pid_t pid, int sig)
{
    if (kill(-pid, sig) < 0 && errno == ESRCH)
        kill(pid, sig);
}

static int set_env(const sg_lock *lock)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, lock->expires_at_ms);
    if (setenv("SYNCGUARD_KEY", lock->key, 1) || setenv("SYNCGUARD_LOCK_ID", lock->lock_id, 1) ||
        setenv("SYNCGUARD_FENCE", lock->fence, 1) || setenv("SYNCGUARD_EXPIRES_AT_MS", num, 1))
        return -1;
    return 0;
}

/* The child: own process group, the terminal if we had it, the signal mask
 * we started with, then CMD. */
static void __attribute__((noreturn))
exec_cmd(char **cmd, bool tty, const sigset_t *mask)
{
    for (int fd = 3; fd < FD_TRACKED;) { /* runs of ours: one close_range each */
        if (inherited_fd[fd]) {
            fd++;
            continue;
        }
        int last = fd;
        while (last + 1 < FD_TRACKED && !inherited_fd[last + 1])
            last++;
        if (close_range((unsigned)fd, (unsigned)last, 0) < 0)
            for (int f = fd; f <= last; f++) /* kernels before 5.9 */
                close(f);
        fd = last + 1;
    }
    setpgid(0, 0);
    if (tty)
        tcsetpgrp(STDIN_FILENO, getpid()); /* SIGTTOU is still blocked here */
    sigprocmask(SIG_SETMASK, mask, NULL);
    execvp(cmd[0], cmd);
    int e = errno;
    dprintf(STDERR_FILENO, "syncguard: %s: %s\n", cmd[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

int cli_run(sg_backend *b, const cli_run_opts *o)
{
    char key[SG_KEY_MAX + 1];
    sg_error err;
    if (sg_key_normalize(o->key, strlen(o->key), key, NULL, &err) != SG_OK)
        return cli_fail(&err);
    sg_lock lock;
    int rc = cli_acquire_wait(b, key, o->ttl_ms, o->wait_ms, o->conflict_code, &lock);
    if (rc != CLI_EXIT_OK)
        return rc;

    /* From here every exit releases the lock. Block the signals first: the
     * heartbeat thread inherits the mask. */
    sigset_t wanted, blocked, orig;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&wanted, forwarded[i]);
    blocked = wanted;
    sigaddset(&blocked, SIGTTOU); /* tcsetpgrp from a background group */
    pthread_sigmask(SIG_BLOCK, &blocked, &orig);

    loss l = {.fd = -1};
    pthread_mutex_init(&l.mu, NULL);
    sg_heartbeat *hb = NULL;
    int sfd = -1;
    pid_t pid = -1;
    bool lost = false, done = false;
    int status = 0;
    bool tty = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();

    if (cli_wait_signal()) { /* arrived between the acquire and the block */
        rc = 128 + cli_wait_signal();
        goto release;
    }
    sfd = signalfd(-1, &wanted, SFD_CLOEXEC | SFD_NONBLOCK);
    l.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0 || l.fd < 0) {
        rc = cli_failf("run: %s", strerror(errno));
        goto release;
    }
    if (set_env(&lock) < 0) {
        rc = cli_failf("run: cannot set the environment: %s", strerror(errno));
        goto release;
    }
    /* renewals every TTL/3 by the core's rules (retries, deadline, loss) */
    if (sg_heartbeat_start(b, lock.lock_id, o->ttl_ms, 0, on_lost, &l, &hb, &err) != SG_OK) {
        rc = cli_fail(&err);
        goto release;
    }
    pid = fork();
    if (pid < 0) {
        rc = cli_failf("run: fork: %s", strerror(errno));
        goto release;
    }
    if (pid == 0)
        exec_cmd(o->cmd, tty, &orig);
    setpgid(pid, pid); /* both sides set it: no window where a signal misses the group */
    if (tty)
        tcsetpgrp(STDIN_FILENO, pid);

    int64_t kill_at = -1;
    const char *signame = sigabbrev_np(o->on_loss_signal);
    while (!done) {
        int timeout = -1;
        if (kill_at >= 0) {
            int64_t left = kill_at - sg_monotonic_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        struct pollfd pfd[2] = {{sfd, POLLIN, 0}, {l.fd, POLLIN, 0}};
        if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
            signal_cmd(pid, SIGKILL); /* cannot supervise: never leave CMD unlocked */
            kill_at = -1;
        }
        if (kill_at >= 0 && sg_monotonic_ms() >= kill_at) {
            fprintf(stderr, "syncguard: %s still running %d s after the loss: SIGKILL\n",
                    o->cmd[0], CLI_KILL_GRACE_MS / 1000);
            signal_cmd(pid, SIGKILL);
            kill_at = -1;
        }
        uint64_t n;
        if (read(l.fd, &n, sizeof n) == (ssize_t)sizeof n && !lost) {
            lost = true;
            pthread_mutex_lock(&l.mu);
            fprintf(stderr, "syncguard: lost the lock on %.200s (%s): sending SIG%s to %s\n",
                    key, l.why, signame ? signame : "?", o->cmd[0]);
            pthread_mutex_unlock(&l.mu);
            signal_cmd(pid, o->on_loss_signal);
            kill_at = sg_monotonic_ms() + CLI_KILL_GRACE_MS;
        }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if ((int)si.ssi_signo != SIGCHLD) {
                signal_cmd(pid, (int)si.ssi_signo);
                continue;
            }
            int st;
            pid_t w;
            while ((w = waitpid(pid, &st, WNOHANG | WUNTRACED)) == pid) {
                if (WIFSTOPPED(st) && tty) {
                    /* job control: take the terminal back and stop with CMD; on fg
                     * (SIGCONT) hand it over again. While stopped nothing renews. */
                    tcsetpgrp(STDIN_FILENO, getpgrp());
                    kill(getpid(), SIGSTOP);
                    tcsetpgrp(STDIN_FILENO, pid);
                    signal_cmd(pid, SIGCONT);
                } else if (WIFEXITED(st) || WIFSIGNALED(st)) {
                    status = st;
                    done = true;
                    break;
                }
            }
            if (w < 0 && errno == ECHILD)
                done = true; /* cannot happen: nobody else reaps */
        }
    }
    if (tty)
        tcsetpgrp(STDIN_FILENO, getpgrp());
    if (!sg_heartbeat_stop(hb) && !lost) { /* lost just as CMD ended */
        lost = true;
        fprintf(stderr, "syncguard: lost the lock on %.200s (%s) as %s ended\n", key, l.why,
                o->cmd[0]);
    }
    hb = NULL;
    rc = lost ? CLI_EXIT_LOST
         : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                               : WEXITSTATUS(status);

release:
    if (hb) {
        sg_heartbeat_stop(hb);
        hb = NULL;
    }
    { /* also after a loss: a lock we could not renew may still stand until its TTL */
        sg_error rel;
        sg_status st = sg_release(b, lock.lock_id, &rel);
        if (st == SG_ERROR)
            fprintf(stderr, "syncguard: warning: release failed, the lock expires by its TTL: "
                            "%s: %s\n", sg_code_name(rel.code), rel.message);
        else if (st == SG_ABSENT && !lost && pid > 0)
            fprintf(stderr, "syncguard: warning: the lock on %.200s was gone when %s ended "
                            "(expired or broken since the last renewal)\n", key, o->cmd[0]);
    }
    if (sfd >= 0)
        close(sfd);
    if (l.fd >= 0)
        close(l.fd);
    pthread_mutex_destroy(&l.mu);
    explicit_bzero(&lock, sizeof lock);
    return rc;
}
