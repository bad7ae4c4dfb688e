/* service.c — how syncguardfs runs under an init system or from fstab.
 *
 * Logging: stderr in the foreground (-f, systemd's Type=notify unit), syslog
 * when daemonized (mount.fuse3 from fstab), at -o log_level=. When stderr is
 * the journal ($JOURNAL_STREAM names it) each line gets an sd-daemon "<N>"
 * prefix, so `journalctl -p warning` works.
 * Readiness: the sd_notify protocol is one datagram on an AF_UNIX socket named
 * by $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace), so no
 * libsystemd is needed.
 * SIGHUP: blocked in every thread and taken by one thread with sigwait(): it
 * reopens the syslog connection and logs a line; the daemon keeps serving. */
#include "service.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "syncguard.h"

static int max_level = SG_LOG_INFO;
static bool to_stderr, journal_prefix;
static const char *const level_names[] = {"error", "warning", "info", "debug"};

int service_log_level(const char *name)
{
    if (!strcmp(name, "error") || !strcmp(name, "err"))
        return SG_LOG_ERR;
    if (!strcmp(name, "warn") || !strcmp(name, "warning"))
        return SG_LOG_WARN;
    if (!strcmp(name, "info"))
        return SG_LOG_INFO;
    if (!strcmp(name, "debug"))
        return SG_LOG_DEBUG;
    return -1;
}

static void log_line(sg_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if ((int)level > max_level || (int)level < 0)
        return;
    if (!to_stderr) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(prio[level], "%s", msg);
    } else if (journal_prefix) {
        static const int prio[] = {3, 4, 6, 7};
        fprintf(stderr, "<%d>%s: %s\n", prio[level], level_names[level], msg);
    } else {
        fprintf(stderr, "syncguardfs: %s: %s\n", level_names[level], msg);
    }
}

/* $JOURNAL_STREAM is "DEV:INO" of the journal's stream; it is ours if stderr
 * is that very file (not a redirect a shell made under the unit). */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void service_setup(bool foreground, int level)
{
    max_level = level >= 0 ? level : getenv("SYNCGUARD_DEBUG") ? SG_LOG_DEBUG : SG_LOG_INFO;
    to_stderr = foreground;
    journal_prefix = foreground && stderr_is_journal();
    if (!foreground)
        openlog("syncguardfs", LOG_PID, LOG_DAEMON);
    sg_log_set(log_line, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int service_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
        return -1; /* vsock: and friends: not for a local daemon */
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t n = strlen(state);
    ssize_t sent = sendto(fd, state, n, MSG_NOSIGNAL, (const struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    int saved = errno;
    close(fd);
    errno = saved;
    return sent == (ssize_t)n ? 0 : -1;
}

static pthread_t hup_thread;
static bool hup_started;
static volatile int hup_stop;

static void *hup_main(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (__atomic_load_n(&hup_stop, __ATOMIC_ACQUIRE))
            return NULL;
        if (!to_stderr) { /* syslogd may have restarted or moved /dev/log */
            closelog();
            openlog("syncguardfs", LOG_PID, LOG_DAEMON);
        }
        sg_log(SG_LOG_INFO, "SIGHUP: log reopened, still serving (SIGTERM stops the daemon)");
    }
}

void service_ready(const char *mountpoint)
{
    if (pthread_create(&hup_thread, NULL, hup_main, NULL) == 0)
        hup_started = true;
    else
        sg_log(SG_LOG_WARN, "cannot start the SIGHUP thread: SIGHUP stays blocked");
    char msg[4200];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=serving locks on %s", mountpoint);
    if (service_notify(msg) != 0)
        sg_log(SG_LOG_WARN, "cannot notify systemd on NOTIFY_SOCKET: %s", strerror(errno));
}

void service_stop(void)
{
    service_notify("STOPPING=1");
    if (hup_started) {
        __atomic_store_n(&hup_stop, 1, __ATOMIC_RELEASE);
        pthread_kill(hup_thread, SIGHUP);
        pthread_join(hup_thread, NULL);
        hup_started = false;
    }
}
