/* main.c — syncguardfs: parse the options (options.c), keep the URL's secret
 * out of argv, fsname and logs, open the backend through the core's URL
 * registry, set up the filesystem, mount, serve until a signal. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "lockfs.h"
#include "service.h"

/* Overwrite argv's URL with its redaction so ps and /proc/PID/cmdline show no
 * secret (a redaction is never longer; the rest is zeroed). */
static void scrub_url(char *url, const char *safe)
{
    size_t n = strlen(url), m = strlen(safe);
    if (m > n)
        m = 0;
    memcpy(url, safe, m);
    memset(url + m, 0, n - m);
}

/* What the command line gave, freed at any exit (early ones included). */
static sgfs_config cfg;
static char *safe_url;
static struct fuse_args args;
static void free_args(void)
{
    fuse_opt_free_args(&args);
    free(safe_url);
    sgfs_config_free(&cfg);
}

/* The signal handler's way to the filesystem (set once it is mounted). */
static sgfs *the_fs;
static void on_term(int sig)
{
    (void)sig;
    sgfs_request_shutdown(the_fs);
}

int main(int argc, char **argv)
{
    atexit(free_args);
    /* Every option is checked here, before any connection or mount. */
    switch (sgfs_options_parse(argc, argv, &cfg, stderr)) {
    case SGFS_PARSE_HELP:
        fputs(sgfs_usage, stdout);
        return 0;
    case SGFS_PARSE_VERSION:
        printf("syncguardfs %s (libsyncguard; backends: %s)\n", SG_VERSION,
               sg_backend_schemes());
        return 0;
    case SGFS_PARSE_ERROR:
        return 2;
    case SGFS_PARSE_MOUNT:
        break;
    }
    gethostname(cfg.hostname, sizeof cfg.hostname - 1);

    if (!(safe_url = sg_url_redact(cfg.url))) {
        fputs("syncguardfs: out of memory\n", stderr);
        return 1;
    }
    for (int i = 1; i < argc; i++) /* argv memory: what ps shows */
        if (!strcmp(argv[i], cfg.url))
            scrub_url(argv[i], safe_url);

    service_setup(cfg.foreground, cfg.log_level); /* log hook; SIGHUP blocked from here on */

    char real_mnt[PATH_MAX];
    if (!realpath(cfg.mountpoint, real_mnt)) {
        fprintf(stderr, "syncguardfs: mountpoint %s: %s\n", cfg.mountpoint, strerror(errno));
        return 1;
    }
    /* Before any connection: one daemon per mountpoint, a safe state file. */
    sgfs_journal *journal = NULL;
    char why[512];
    if (sgfs_journal_open(cfg.state_dir, real_mnt, &journal, why, sizeof why) != 0) {
        fprintf(stderr, "syncguardfs: %s\n", why);
        return 1;
    }

    sg_open_opts oo = {.password_file = cfg.password_file,
                       .require_durable_fences = cfg.require_durable_fences};
    sg_backend *b;
    sg_error err;
    if (sg_backend_open(cfg.url, &oo, &b, &err) != SG_OK) {
        char buf[900];
        fprintf(stderr, "syncguardfs: cannot open backend %s: %s\n", safe_url,
                sg_error_format(&err, buf, sizeof buf));
        sgfs_journal_close(journal);
        return 1;
    }
    /* the secret stays only in the backend from here on */
    explicit_bzero(cfg.url, strlen(cfg.url));
    free(cfg.url);
    cfg.url = NULL;
    sgfs *fs = sgfs_new(b, journal, &cfg);
    if (!fs)
        return 1;

    /* FUSE arguments: fsname without secrets, permissions, passed-through options. */
    if (sgfs_options_fuse_args(&cfg, argv[0], safe_url, &args) != 0) {
        fputs("syncguardfs: out of memory\n", stderr);
        sgfs_finish(fs);
        return 1;
    }
    struct fuse_session *se = fuse_session_new(&args, sgfs_ops(), sizeof *sgfs_ops(), fs);
    if (!se) {
        sgfs_finish(fs);
        return 1;
    }
    if (fuse_session_mount(se, real_mnt) != 0) {
        fuse_session_destroy(se);
        sgfs_finish(fs);
        return 1;
    }
    if (fuse_daemonize(cfg.foreground) != 0) {
        fuse_session_unmount(se);
        fuse_session_destroy(se);
        return 1;
    }
    sgfs_journal_set_owner(journal); /* the daemon's pid, after the fork */
    the_fs = fs;
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (sgfs_start(fs, se) != 0) {
        fuse_session_unmount(se);
        fuse_session_destroy(se);
        sgfs_finish(fs);
        return 1;
    }
    sg_log(SG_LOG_INFO, "mounted %s on %s (ttl %lld ms)", safe_url, real_mnt,
           (long long)cfg.ttl_ms);
    service_ready(real_mnt); /* SIGHUP thread; READY=1 to systemd */
    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(lc, 64);
    int rc = fuse_session_loop_mt(se, lc);
    fuse_loop_cfg_destroy(lc);
    the_fs = NULL;
    sgfs_finish(fs);
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    sg_log(SG_LOG_INFO, "stopped");
    service_stop();
    return rc < 0 ? 1 : 0;
}
