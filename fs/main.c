/* main.c — syncguardfs command line: options, secrets hygiene (argv, fsname,
 * logs), backend opening through the core's URL registry, mount, signals. */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "lockfs.h"

static const char usage[] =
    "usage: syncguardfs [-f] [-d] [-o opt,...] BACKEND_URL MOUNTPOINT\n"
    "\n"
    "Distributed locks as files: MOUNTPOINT/locks/<key> exists while <key> is locked.\n"
    "\n"
    "BACKEND_URL: redis://[:password@]host[:port][/db][?prefix=..]  unix:///path/redis.sock\n"
    "             (postgres:// and firestore:// when built with those backends)\n"
    "\n"
    "  -f                     stay in the foreground, log to stderr (else syslog)\n"
    "  -d                     FUSE debug output (implies -f)\n"
    "  -h, --help             this help\n"
    "  -V, --version          version\n"
    "\n"
    "Options (-o):\n"
    "  ttl=MS                 TTL of locks taken here (default 30000)\n"
    "  acquire_timeout=MS     how long a blocking write-open waits (default 5000)\n"
    "  retry_delay=MS         first delay between attempts of a wait (default 100)\n"
    "  max_delay=MS           cap of one delay (default 1000)\n"
    "  backoff=exponential|fixed, jitter=equal|full|none\n"
    "  shutdown_grace=MS      after SIGTERM keep renewing this long for holders (default ttl)\n"
    "  allow_other            let other users use the mount (turns on default_permissions)\n"
    "  lockgroup=GROUP        only members of GROUP may acquire (files 0660)\n"
    "  dirmode=MODE           mode of locks/ (default 01777 with allow_other, else 0755)\n"
    "  on_loss=signal:SIG     signal the holder's process when its lock is lost\n"
    "  allow_break            root may unlink locks held by other hosts\n"
    "  password_file=PATH     backend password (also SYNCGUARD_REDIS_PASSWORD)\n"
    "  state_dir=DIR          where held lockIds are recorded (default /run/syncguardfs)\n"
    "  require_durable_fences refuse a Redis that may lose fence counters\n"
    "  plus the usual FUSE mount options\n";

static bool foreground;

static void log_to_stderr(sg_log_level level, const char *msg, void *ud)
{
    (void)ud;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level <= SG_LOG_INFO || getenv("SYNCGUARD_DEBUG"))
        fprintf(stderr, "syncguardfs: %s: %s\n", names[level], msg);
}

static void log_to_syslog(sg_log_level level, const char *msg, void *ud)
{
    (void)ud;
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    if (level <= SG_LOG_INFO || getenv("SYNCGUARD_DEBUG"))
        syslog(prio[level], "%s", msg);
}

static int64_t parse_ms(const char *name, const char *v, int64_t lo, int64_t hi)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "syncguardfs: %s must be a whole number of ms in %lld..%lld\n", name,
                (long long)lo, (long long)hi);
        exit(2);
    }
    return n;
}

static int parse_signal(const char *v)
{
    static const struct { const char *name; int sig; } sigs[] = {
        {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"ALRM", SIGALRM},
    };
    if (!strncmp(v, "SIG", 3))
        v += 3;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (!strcmp(v, sigs[i].name))
            return sigs[i].sig;
    char *end;
    long n = strtol(v, &end, 10);
    if (*v && !*end && n > 0 && n < NSIG)
        return (int)n;
    return -1;
}

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

/* Fold FUSE's fsname-unsafe characters (',' and '\\') out of a value. */
static void fuse_escape(const char *in, char *out, size_t size)
{
    size_t j = 0;
    for (; *in && j + 2 < size; in++) {
        if (*in == ',' || *in == '\\')
            out[j++] = '\\';
        out[j++] = *in;
    }
    out[j] = '\0';
}

/* Heap strings of the command line, freed at any exit (early ones included). */
static char *opt_copy, *opt_password_file, *opt_state_dir, *safe_url;
static void free_args(void)
{
    free(safe_url);
    free(opt_copy);
    free(opt_password_file);
    free(opt_state_dir);
}

static volatile sig_atomic_t signalled;
static void on_term(int sig)
{
    signalled = sig;
    sgfs_request_shutdown();
}

int main(int argc, char **argv)
{
    sgfs_config cfg = {
        .ttl_ms = SG_TTL_DEFAULT_MS,
        .acquire_timeout_ms = 5000,
        .retry_delay_ms = 100,
        .max_delay_ms = 1000,
        .backoff = SG_BACKOFF_EXPONENTIAL,
        .jitter = SG_JITTER_EQUAL,
        .shutdown_grace_ms = -1,
        .dirmode = 0,
    };
    bool debug = false, durable = false, dirmode_set = false;
    atexit(free_args);
    char *url = NULL, *mountpoint = NULL;
    /* FUSE options we pass through */
    char passthru[4096] = "";
    size_t pl = 0;

    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("syncguardfs %s (libsyncguard; backends: %s)\n", SG_VERSION,
                   sg_backend_schemes());
            return 0;
        } else if (!strcmp(a, "-f")) {
            foreground = true;
        } else if (!strcmp(a, "-d")) {
            debug = foreground = true;
        } else if (!strcmp(a, "-o") || !strncmp(a, "-o", 2)) {
            char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!list) {
                fputs("syncguardfs: -o needs options\n", stderr);
                return 2;
            }
            free(opt_copy);
            opt_copy = strdup(list);
            char *save = NULL;
            for (char *o = strtok_r(opt_copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
                char *v = strchr(o, '=');
                if (v)
                    *v++ = '\0';
#define NEEDV                                                                             \
    if (!v) {                                                                             \
        fprintf(stderr, "syncguardfs: option %s needs a value\n", o);                      \
        return 2;                                                                         \
    }
                if (!strcmp(o, "ttl")) {
                    NEEDV cfg.ttl_ms = parse_ms("ttl", v, 1000, SG_TTL_MAX_MS);
                } else if (!strcmp(o, "acquire_timeout")) {
                    NEEDV cfg.acquire_timeout_ms = parse_ms(o, v, 0, SG_TTL_MAX_MS);
                } else if (!strcmp(o, "retry_delay")) {
                    NEEDV cfg.retry_delay_ms = parse_ms(o, v, 1, 3600000);
                } else if (!strcmp(o, "max_delay")) {
                    NEEDV cfg.max_delay_ms = parse_ms(o, v, 1, 3600000);
                } else if (!strcmp(o, "shutdown_grace")) {
                    NEEDV cfg.shutdown_grace_ms = parse_ms(o, v, 0, SG_TTL_MAX_MS);
                } else if (!strcmp(o, "backoff")) {
                    NEEDV if (!strcmp(v, "exponential")) cfg.backoff = SG_BACKOFF_EXPONENTIAL;
                    else if (!strcmp(v, "fixed")) cfg.backoff = SG_BACKOFF_FIXED;
                    else {
                        fputs("syncguardfs: backoff=exponential|fixed\n", stderr);
                        return 2;
                    }
                } else if (!strcmp(o, "jitter")) {
                    NEEDV if (!strcmp(v, "equal")) cfg.jitter = SG_JITTER_EQUAL;
                    else if (!strcmp(v, "full")) cfg.jitter = SG_JITTER_FULL;
                    else if (!strcmp(v, "none")) cfg.jitter = SG_JITTER_NONE;
                    else {
                        fputs("syncguardfs: jitter=equal|full|none\n", stderr);
                        return 2;
                    }
                } else if (!strcmp(o, "allow_other")) {
                    cfg.allow_other = true;
                } else if (!strcmp(o, "allow_break")) {
                    cfg.allow_break = true;
                } else if (!strcmp(o, "require_durable_fences")) {
                    durable = true;
                } else if (!strcmp(o, "lockgroup")) {
                    NEEDV struct group *g = getgrnam(v);
                    char *end;
                    long gid = strtol(v, &end, 10);
                    if (!g && (*end || end == v)) {
                        fprintf(stderr, "syncguardfs: unknown group %s\n", v);
                        return 2;
                    }
                    cfg.lockgroup = g ? g->gr_gid : (gid_t)gid;
                    cfg.has_lockgroup = true;
                } else if (!strcmp(o, "dirmode")) {
                    NEEDV char *end;
                    long m = strtol(v, &end, 8);
                    if (*end || end == v || m < 0 || m > 07777) {
                        fputs("syncguardfs: dirmode must be octal\n", stderr);
                        return 2;
                    }
                    cfg.dirmode = (mode_t)m;
                    dirmode_set = true;
                } else if (!strcmp(o, "on_loss")) {
                    NEEDV if (strncmp(v, "signal:", 7) || (cfg.loss_signal = parse_signal(v + 7)) < 0) {
                        fputs("syncguardfs: on_loss=signal:SIG (e.g. signal:USR1)\n", stderr);
                        return 2;
                    }
                } else if (!strcmp(o, "password_file")) {
                    NEEDV free(opt_password_file);
                    opt_password_file = strdup(v);
                } else if (!strcmp(o, "state_dir")) {
                    NEEDV free(opt_state_dir);
                    opt_state_dir = strdup(v);
                } else if (!strcmp(o, "fsname") || !strcmp(o, "subtype") ||
                           !strcmp(o, "defaults") || !strcmp(o, "_netdev") ||
                           !strcmp(o, "nofail") || !strcmp(o, "noauto") ||
                           !strcmp(o, "auto") || !strcmp(o, "user") || !strcmp(o, "users") ||
                           !strcmp(o, "nouser")) {
                    /* fsname is ours (it never shows a password); the rest are
                     * fstab words for mount(8), not for FUSE */
                } else {
                    pl += (size_t)snprintf(passthru + pl, sizeof passthru - pl, "%s%s%s%s",
                                           pl ? "," : "", o, v ? "=" : "", v ? v : "");
                    if (pl >= sizeof passthru) {
                        fputs("syncguardfs: too many options\n", stderr);
                        return 2;
                    }
                }
#undef NEEDV
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "syncguardfs: unknown option %s\n%s", a, usage);
            return 2;
        } else if (!url) {
            url = a;
        } else if (!mountpoint) {
            mountpoint = a;
        } else {
            fprintf(stderr, "syncguardfs: too many arguments\n%s", usage);
            return 2;
        }
    }
    if (!url || !mountpoint) {
        fputs(usage, stderr);
        return 2;
    }
    if (cfg.shutdown_grace_ms < 0)
        cfg.shutdown_grace_ms = cfg.ttl_ms;
    if (!dirmode_set)
        cfg.dirmode = cfg.allow_other ? 01777 : 0755;
    gethostname(cfg.hostname, sizeof cfg.hostname - 1);

    char url_copy[8200];
    if (!(safe_url = sg_url_redact(url))) {
        fputs("syncguardfs: out of memory\n", stderr);
        return 1;
    }
    snprintf(url_copy, sizeof url_copy, "%s", url);
    scrub_url(url, safe_url); /* argv memory: what ps shows */

    sg_log_set(foreground ? log_to_stderr : log_to_syslog, NULL);
    if (!foreground)
        openlog("syncguardfs", LOG_PID, LOG_DAEMON);

    char real_mnt[PATH_MAX];
    if (!realpath(mountpoint, real_mnt)) {
        fprintf(stderr, "syncguardfs: mountpoint %s: %s\n", mountpoint, strerror(errno));
        return 1;
    }
    /* state file: one per mountpoint */
    const char *dir = opt_state_dir ? opt_state_dir : (getuid() == 0 ? "/run/syncguardfs" : NULL);
    char tmpdir[128];
    if (!dir) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        snprintf(tmpdir, sizeof tmpdir, "/tmp/syncguardfs-%u", (unsigned)getuid());
        dir = xdg ? xdg : tmpdir;
    }
    mkdir(dir, 0700);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)real_mnt, strlen(real_mnt), digest);
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    snprintf(cfg.state_path, sizeof cfg.state_path, "%s/mount-%s.state", dir, hex);

    sg_open_opts oo = {.password_file = opt_password_file, .require_durable_fences = durable};
    sg_backend *b;
    sg_error err;
    if (sg_backend_open(url_copy, &oo, &b, &err) != SG_OK) {
        char buf[900];
        fprintf(stderr, "syncguardfs: cannot open backend %s: %s\n", safe_url,
                sg_error_format(&err, buf, sizeof buf));
        return 1;
    }
    explicit_bzero(url_copy, sizeof url_copy);
    if (sgfs_init(b, &cfg) != 0) {
        fputs("syncguardfs: out of memory\n", stderr);
        return 1;
    }

    /* FUSE arguments: fsname without secrets, caches off, permissions. */
    char fsname[4200], opts[sizeof fsname + sizeof passthru + 128];
    fuse_escape(safe_url, fsname, sizeof fsname);
    snprintf(opts, sizeof opts, "fsname=%s,subtype=syncguardfs%s%s%s", fsname,
             cfg.allow_other ? ",allow_other,default_permissions" : "", pl ? "," : "",
             passthru);
    char *fargv[] = {argv[0], "-o", opts, debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, fargv);
    struct fuse_session *se = fuse_session_new(&args, sgfs_ops(), sizeof *sgfs_ops(), NULL);
    if (!se) {
        sgfs_finish();
        return 1;
    }
    if (fuse_session_mount(se, real_mnt) != 0) {
        fuse_session_destroy(se);
        sgfs_finish();
        return 1;
    }
    if (fuse_daemonize(foreground) != 0) {
        fuse_session_unmount(se);
        fuse_session_destroy(se);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (sgfs_start(se) != 0) {
        fuse_session_unmount(se);
        fuse_session_destroy(se);
        sgfs_finish();
        return 1;
    }
    sg_log(SG_LOG_INFO, "mounted %s on %s (ttl %lld ms)", safe_url, real_mnt,
           (long long)cfg.ttl_ms);
    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(lc, 64);
    int rc = fuse_session_loop_mt(se, lc);
    fuse_loop_cfg_destroy(lc);
    fuse_opt_free_args(&args);
    sgfs_finish();
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    sg_log(SG_LOG_INFO, "stopped");
    return rc < 0 ? 1 : 0;
}
