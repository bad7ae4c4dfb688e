/* service.h — syncguardfs as a service: where its log goes and at what level,
 * systemd readiness (the sd_notify datagram, without libsystemd) and SIGHUP. */
#ifndef SGFS_SERVICE_H
#define SGFS_SERVICE_H
#include <stdbool.h>

/* "error", "warn" (or "warning"), "info", "debug" → an sg_log_level; -1 if none. */
int service_log_level(const char *name);
/* Install the log hook: stderr in the foreground (with <N> priority prefixes
 * when stderr is the systemd journal), syslog otherwise. level -1 = default
 * (info; debug when SYNCGUARD_DEBUG is set). Also blocks SIGHUP in the calling
 * thread, so that every thread started afterwards leaves it to the SIGHUP
 * thread of service_ready(). Call before any thread is created. */
void service_setup(bool foreground, int level);
/* The mount is live: start the SIGHUP thread (reopen the log, log a line, keep
 * running) and tell systemd READY=1 over $NOTIFY_SOCKET (if set). */
void service_ready(const char *mountpoint);
/* Send one sd_notify message ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET.
 * 0 if sent or there is no socket, -1 on failure. */
int service_notify(const char *state);
/* Before exit: tell systemd STOPPING=1 and stop the SIGHUP thread. */
void service_stop(void);
#endif
