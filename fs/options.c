/* options.c — syncguardfs's command line. One fuse_opt table says which
 * options exist and what each does: ours (parsed and checked here), the
 * generic mount(8)/fstab words (accepted, dropped), and the FUSE/kernel options
 * handed to libfuse. Anything else is an error before any connection: libfuse
 * would otherwise reject it only at fuse_session_new(), after the backend was
 * already opened. */
#include "options.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "service.h"

const char sgfs_usage[] =
    "usage: syncguardfs [-f] [-d] [-o opt,...] BACKEND_URL MOUNTPOINT\n"
    "\n"
    "Distributed locks as files: MOUNTPOINT/locks/<key> exists while <key> is locked.\n"
    "\n"
    "BACKEND_URL: redis://[:password@]host[:port][/db][?prefix=..]  unix:///path/redis.sock\n"
    "             rediss://host[:port][/db]?tls_ca=FILE[&tls_cert=FILE&tls_key=FILE]\n"
    "             postgres://user@host/db[?sslmode=verify-full&sslrootcert=FILE]\n"
    "             firestore://PROJECT[/DATABASE][?collection=..&ca_file=FILE]\n"
    "\n"
    "  -f                     stay in the foreground, log to stderr (else syslog)\n"
    "  -d                     FUSE debug output (implies -f; also -o debug)\n"
    "  -h, --help             this help\n"
    "  -V, --version          version\n"
    "\n"
    "Options (-o, repeatable, comma-separated). DURATION is digits with an optional\n"
    "unit ms, s, m or h (bare digits are ms): 1500, 1500ms, 30s, 10m, 2h.\n"
    "  ttl=DURATION           TTL of locks taken here, at least 1s (default 30s)\n"
    "  retry_delay=DURATION   first delay between attempts of a wait (default 100ms)\n"
    "  max_delay=DURATION     cap of one delay (default 1s, at least retry_delay)\n"
    "  backoff=exponential|fixed, jitter=equal|full|none\n"
    "  shutdown_grace=DURATION\n"
    "                         after SIGTERM keep renewing this long for holders\n"
    "                         (default: the ttl)\n"
    "  allow_other            let other users use the mount (turns on default_permissions)\n"
    "  lockgroup=GROUP        only members of GROUP (name or gid) may acquire (files 0660)\n"
    "  dirmode=OCTAL          mode of locks/ (default 01777 with allow_other, else 0755)\n"
    "  on_loss=signal:SIG[:group]  signal the holder's process (or its process group)\n"
    "                         when its lock is lost; SIG: USR1, SIGUSR1, 10, ...\n"
    "  allow_break            root may unlink locks held by other hosts\n"
    "  password_file=PATH     backend password (also SYNCGUARD_REDIS_PASSWORD)\n"
    "  state_dir=DIR          absolute; where held lockIds are recorded\n"
    "                         (default /run/syncguardfs for root)\n"
    "  require_durable_fences refuse a Redis that may lose fence counters\n"
    "  log_level=LEVEL        error|warn|info|debug (default info; SIGHUP reopens the log)\n"
    "  acquire_timeout=...    accepted for old fstab lines; no effect (use flock -w)\n"
    "\n"
    "Passed to FUSE: ro, rw, nosuid, suid, nodev, dev, noexec, exec, noatime, atime,\n"
    "  sync, async, dirsync, allow_root, default_permissions, auto_unmount,\n"
    "  max_read=N, context=, fscontext=, defcontext=, rootcontext=.\n"
    "Accepted and ignored (fstab / mount(8) words): defaults, auto, noauto, user, users,\n"
    "  nouser, owner, group, _netdev, nofail, relatime, norelatime, strictatime,\n"
    "  nostrictatime, lazytime, nolazytime, diratime, nodiratime, iversion, noiversion,\n"
    "  silent, loud, comment=..., x-* (x-systemd.*), fsname=, subtype= (ours).\n";

enum {
    KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG,
    KEY_TTL, KEY_RETRY_DELAY, KEY_MAX_DELAY, KEY_SHUTDOWN_GRACE, KEY_ACQUIRE_TIMEOUT,
    KEY_BACKOFF, KEY_JITTER, KEY_ALLOW_OTHER, KEY_ALLOW_BREAK, KEY_DURABLE,
    KEY_LOCKGROUP, KEY_DIRMODE, KEY_ON_LOSS, KEY_LOG_LEVEL, KEY_PASSWORD_FILE,
    KEY_STATE_DIR,
    KEY_PASS,    /* a FUSE/kernel option: handed to libfuse */
    KEY_IGNORE,  /* a mount(8)/fstab word, or fsname/subtype: dropped */
};

/* Templates ending in '=' take a value; the others take none. */
static const struct fuse_opt table[] = {
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("-f", KEY_FOREGROUND),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_KEY("ttl=", KEY_TTL),
    FUSE_OPT_KEY("retry_delay=", KEY_RETRY_DELAY),
    FUSE_OPT_KEY("max_delay=", KEY_MAX_DELAY),
    FUSE_OPT_KEY("shutdown_grace=", KEY_SHUTDOWN_GRACE),
    FUSE_OPT_KEY("acquire_timeout=", KEY_ACQUIRE_TIMEOUT),
    FUSE_OPT_KEY("acquire_timeout", KEY_ACQUIRE_TIMEOUT),
    FUSE_OPT_KEY("backoff=", KEY_BACKOFF),
    FUSE_OPT_KEY("jitter=", KEY_JITTER),
    FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
    FUSE_OPT_KEY("allow_break", KEY_ALLOW_BREAK),
    FUSE_OPT_KEY("require_durable_fences", KEY_DURABLE),
    FUSE_OPT_KEY("lockgroup=", KEY_LOCKGROUP),
    FUSE_OPT_KEY("dirmode=", KEY_DIRMODE),
    FUSE_OPT_KEY("on_loss=", KEY_ON_LOSS),
    FUSE_OPT_KEY("log_level=", KEY_LOG_LEVEL),
    FUSE_OPT_KEY("password_file=", KEY_PASSWORD_FILE),
    FUSE_OPT_KEY("state_dir=", KEY_STATE_DIR),
    /* Kernel mount flags and FUSE mount options that libfuse 3.14 accepts and
     * that mean something here (tests/unit/test_options.c creates a session
     * with every one of them). */
    FUSE_OPT_KEY("ro", KEY_PASS),
    FUSE_OPT_KEY("rw", KEY_PASS),
    FUSE_OPT_KEY("nosuid", KEY_PASS),
    FUSE_OPT_KEY("suid", KEY_PASS),
    FUSE_OPT_KEY("nodev", KEY_PASS),
    FUSE_OPT_KEY("dev", KEY_PASS),
    FUSE_OPT_KEY("noexec", KEY_PASS),
    FUSE_OPT_KEY("exec", KEY_PASS),
    FUSE_OPT_KEY("noatime", KEY_PASS),
    FUSE_OPT_KEY("atime", KEY_PASS),
    FUSE_OPT_KEY("sync", KEY_PASS),
    FUSE_OPT_KEY("async", KEY_PASS),
    FUSE_OPT_KEY("dirsync", KEY_PASS),
    FUSE_OPT_KEY("allow_root", KEY_PASS),
    FUSE_OPT_KEY("default_permissions", KEY_PASS),
    FUSE_OPT_KEY("auto_unmount", KEY_PASS),
    FUSE_OPT_KEY("max_read=", KEY_PASS),
    FUSE_OPT_KEY("context=", KEY_PASS),
    FUSE_OPT_KEY("fscontext=", KEY_PASS),
    FUSE_OPT_KEY("defcontext=", KEY_PASS),
    FUSE_OPT_KEY("rootcontext=", KEY_PASS),
    /* fsname is ours (the URL without its secret); subtype is syncguardfs. */
    FUSE_OPT_KEY("fsname=", KEY_IGNORE),
    FUSE_OPT_KEY("subtype=", KEY_IGNORE),
    /* Words fstab and mount(8) pass that are not for FUSE: libfuse rejects
     * them, and the atime variants mean nothing with every cache off. */
    FUSE_OPT_KEY("defaults", KEY_IGNORE),
    FUSE_OPT_KEY("auto", KEY_IGNORE),
    FUSE_OPT_KEY("noauto", KEY_IGNORE),
    FUSE_OPT_KEY("user", KEY_IGNORE),
    FUSE_OPT_KEY("user=", KEY_IGNORE),
    FUSE_OPT_KEY("users", KEY_IGNORE),
    FUSE_OPT_KEY("nouser", KEY_IGNORE),
    FUSE_OPT_KEY("owner", KEY_IGNORE),
    FUSE_OPT_KEY("group", KEY_IGNORE),
    FUSE_OPT_KEY("_netdev", KEY_IGNORE),
    FUSE_OPT_KEY("nofail", KEY_IGNORE),
    FUSE_OPT_KEY("relatime", KEY_IGNORE),
    FUSE_OPT_KEY("norelatime", KEY_IGNORE),
    FUSE_OPT_KEY("strictatime", KEY_IGNORE),
    FUSE_OPT_KEY("nostrictatime", KEY_IGNORE),
    FUSE_OPT_KEY("lazytime", KEY_IGNORE),
    FUSE_OPT_KEY("nolazytime", KEY_IGNORE),
    FUSE_OPT_KEY("diratime", KEY_IGNORE),
    FUSE_OPT_KEY("nodiratime", KEY_IGNORE),
    FUSE_OPT_KEY("iversion", KEY_IGNORE),
    FUSE_OPT_KEY("noiversion", KEY_IGNORE),
    FUSE_OPT_KEY("silent", KEY_IGNORE),
    FUSE_OPT_KEY("loud", KEY_IGNORE),
    FUSE_OPT_KEY("comment=", KEY_IGNORE),
    /* x-* (x-systemd.automount, x-mount.mkdir, ...) is matched by prefix in proc(). */
    FUSE_OPT_END
};

typedef struct parse_ctx {
    sgfs_config *cfg;
    FILE *err;
    int positional;
    bool help, version, max_delay_set, grace_set, dirmode_set;
} parse_ctx;

static int fail(parse_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parse_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("syncguardfs: ", c->err);
    vfprintf(c->err, fmt, ap);
    fputc('\n', c->err);
    va_end(ap);
    return -1;
}

/* Edit distance with transpositions (optimal string alignment), capped: names
 * are short, so a 32x32 table is plenty; longer strings count as far apart. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    enum { N = 32 };
    if (la >= N || lb >= N)
        return N;
    size_t d[N][N];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

static size_t name_len(const char *templ)
{
    const char *eq = strchr(templ, '=');
    return eq ? (size_t)(eq - templ) : strlen(templ);
}

/* The table entry whose name (template without '=') is name[0..len), preferring
 * one whose value-ness matches wants_value; NULL if the name is unknown. */
static const struct fuse_opt *find_name(const char *name, size_t len, bool wants_value)
{
    const struct fuse_opt *any = NULL;
    for (const struct fuse_opt *o = table; o->templ; o++) {
        if (o->templ[0] == '-' || name_len(o->templ) != len || strncmp(o->templ, name, len))
            continue;
        if ((strchr(o->templ, '=') != NULL) == wants_value)
            return o;
        any = o;
    }
    return any;
}

/* An option nobody knows: say so, with the nearest known name if it is close. */
static int unknown(parse_ctx *c, const char *arg)
{
    size_t len = name_len(arg), best_d = 3;
    const char *best = NULL;
    for (const struct fuse_opt *o = table; o->templ; o++) {
        if (o->templ[0] == '-')
            continue;
        size_t tl = name_len(o->templ), d = edit_distance(arg, len, o->templ, tl);
        /* at most 2 edits, and fewer than half the name: "ro" is no hint for "rx" */
        if (d < best_d && 2 * d < tl) {
            best_d = d;
            best = o->templ;
        }
    }
    if (best)
        return fail(c, "unknown option '%.*s' (did you mean '%.*s'?)", (int)len, arg,
                    (int)name_len(best), best);
    return fail(c, "unknown option '%.*s' (see syncguardfs --help)", (int)len, arg);
}

/* A duration option in [lo, hi] ms, in the units TTL writes accept. */
static int duration(parse_ctx *c, const char *name, const char *v, int64_t lo, int64_t hi,
                    int64_t *out)
{
    sg_error e;
    int64_t ms;
    if (sg_duration_parse(v, strlen(v), &ms, &e) != SG_OK)
        return fail(c, "%s='%s': %s", name, v, e.message);
    if (ms < lo || ms > hi)
        return fail(c, "%s='%s': must be between %lld ms and %lld ms", name, v, (long long)lo,
                    (long long)hi);
    *out = ms;
    return 0;
}

/* "USR1", "SIGUSR1", "usr1" or a number in 1..NSIG-1; -1 otherwise. */
static int signal_number(const char *v, size_t len)
{
    if (len >= 3 && !strncasecmp(v, "SIG", 3))
        v += 3, len -= 3;
    if (len == 0)
        return -1;
    if (v[0] >= '0' && v[0] <= '9') {
        long n = 0;
        for (size_t i = 0; i < len; i++) {
            if (v[i] < '0' || v[i] > '9' || (n = n * 10 + (v[i] - '0')) >= NSIG)
                return -1;
        }
        return n > 0 ? (int)n : -1;
    }
    for (int s = 1; s < NSIG; s++) {
        const char *abbrev = sigabbrev_np(s);
        if (abbrev && strlen(abbrev) == len && !strncasecmp(abbrev, v, len))
            return s;
    }
    return -1;
}

static int on_loss(parse_ctx *c, const char *v)
{
    if (strncmp(v, "signal:", 7))
        return fail(c, "on_loss='%s': expected signal:SIG or signal:SIG:group", v);
    const char *sig = v + 7, *colon = strchr(sig, ':');
    size_t len = colon ? (size_t)(colon - sig) : strlen(sig);
    int n = signal_number(sig, len);
    if (n < 0)
        return fail(c, "on_loss='%s': unknown signal '%.*s' (a name like USR1 or SIGTERM, "
                    "or a number)", v, (int)len, sig);
    if (colon && strcmp(colon + 1, "group"))
        return fail(c, "on_loss='%s': after the signal only ':group' may follow", v);
    c->cfg->loss_signal = n;
    c->cfg->loss_group = colon != NULL;
    return 0;
}

static int lockgroup(parse_ctx *c, const char *v)
{
    struct group *g = *v ? getgrnam(v) : NULL;
    if (g) {
        c->cfg->lockgroup = g->gr_gid;
    } else {
        /* a number is a gid, which needs no name in the group database */
        char *end;
        errno = 0;
        unsigned long gid = *v >= '0' && *v <= '9' ? strtoul(v, &end, 10) : 0;
        if (!(*v >= '0' && *v <= '9') || errno || *end || gid >= (gid_t)-1)
            return fail(c, "lockgroup='%s': no such group", v);
        c->cfg->lockgroup = (gid_t)gid;
    }
    c->cfg->has_lockgroup = true;
    return 0;
}

static int dirmode(parse_ctx *c, const char *v)
{
    unsigned long m = 0;
    size_t i = 0;
    for (; v[i] >= '0' && v[i] <= '7' && m <= 07777; i++)
        m = m * 8 + (unsigned long)(v[i] - '0');
    if (i == 0 || v[i] || m > 07777)
        return fail(c, "dirmode='%s': must be an octal mode up to 07777 (e.g. 01777)", v);
    c->cfg->dirmode = (mode_t)m;
    c->dirmode_set = true;
    return 0;
}

static int set_string(parse_ctx *c, char **field, const char *name, const char *v)
{
    if (!*v)
        return fail(c, "%s= needs a value", name);
    char *s = strdup(v);
    if (!s)
        return fail(c, "out of memory");
    free(*field);
    *field = s;
    return 0;
}

/* An option of the table's key with its value (after the '='), or NULL. */
static int take(parse_ctx *c, int key, const char *arg, const char *v)
{
    sgfs_config *cfg = c->cfg;
    switch (key) {
    case KEY_HELP: c->help = true; return 0;
    case KEY_VERSION: c->version = true; return 0;
    case KEY_FOREGROUND: cfg->foreground = true; return 0;
    case KEY_DEBUG: cfg->debug = cfg->foreground = true; return 0;
    case KEY_TTL: return duration(c, "ttl", v, 1000, SG_TTL_MAX_MS, &cfg->ttl_ms);
    case KEY_RETRY_DELAY:
        return duration(c, "retry_delay", v, 1, 3600000, &cfg->retry_delay_ms);
    case KEY_MAX_DELAY:
        c->max_delay_set = true;
        return duration(c, "max_delay", v, 1, 3600000, &cfg->max_delay_ms);
    case KEY_SHUTDOWN_GRACE:
        c->grace_set = true;
        return duration(c, "shutdown_grace", v, 0, SG_TTL_MAX_MS, &cfg->shutdown_grace_ms);
    case KEY_ACQUIRE_TIMEOUT:
        /* opens no longer wait (flock/fcntl do): kept for old fstab lines */
        fputs("syncguardfs: acquire_timeout has no effect: opens never wait; use flock -w\n",
              c->err);
        return 0;
    case KEY_BACKOFF:
        if (!strcmp(v, "exponential"))
            cfg->backoff = SG_BACKOFF_EXPONENTIAL;
        else if (!strcmp(v, "fixed"))
            cfg->backoff = SG_BACKOFF_FIXED;
        else
            return fail(c, "backoff=exponential|fixed, not '%s'", v);
        return 0;
    case KEY_JITTER:
        if (!strcmp(v, "equal"))
            cfg->jitter = SG_JITTER_EQUAL;
        else if (!strcmp(v, "full"))
            cfg->jitter = SG_JITTER_FULL;
        else if (!strcmp(v, "none"))
            cfg->jitter = SG_JITTER_NONE;
        else
            return fail(c, "jitter=equal|full|none, not '%s'", v);
        return 0;
    case KEY_ALLOW_OTHER: cfg->allow_other = true; return 0;
    case KEY_ALLOW_BREAK: cfg->allow_break = true; return 0;
    case KEY_DURABLE: cfg->require_durable_fences = true; return 0;
    case KEY_LOCKGROUP: return lockgroup(c, v);
    case KEY_DIRMODE: return dirmode(c, v);
    case KEY_ON_LOSS: return on_loss(c, v);
    case KEY_LOG_LEVEL:
        if ((cfg->log_level = service_log_level(v)) < 0)
            return fail(c, "log_level=error|warn|info|debug, not '%s'", v);
        return 0;
    case KEY_PASSWORD_FILE: return set_string(c, &cfg->password_file, "password_file", v);
    case KEY_STATE_DIR:
        /* the daemon chdirs to / when it daemonizes, and unlinks the state file at exit */
        if (*v && *v != '/')
            return fail(c, "state_dir='%s': must be an absolute path", v);
        return set_string(c, &cfg->state_dir, "state_dir", v);
    case KEY_PASS:
        if (fuse_opt_add_opt_escaped(&cfg->fuse_opts, arg) != 0)
            return fail(c, "out of memory");
        return 0;
    case KEY_IGNORE: return 0;
    }
    return fail(c, "internal: option key %d", key);
}

static int proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    (void)outargs;
    parse_ctx *c = data;
    if (key == FUSE_OPT_KEY_NONOPT) {
        char **slot = c->positional == 0 ? &c->cfg->url
                      : c->positional == 1 ? &c->cfg->mountpoint : NULL;
        if (!slot)
            return fail(c, "too many arguments: '%s' (only BACKEND_URL and MOUNTPOINT)", arg);
        c->positional++;
        if (!(*slot = strdup(arg)))
            return fail(c, "out of memory");
        return 0;
    }
    if (key != FUSE_OPT_KEY_OPT) {
        const char *eq = strchr(arg, '=');
        return take(c, key, arg, eq ? eq + 1 : NULL) < 0 ? -1 : 0;
    }
    /* Not in the table as written: x-*, or a known name with/without a value
     * it should not/should have, or unknown. */
    if (!strncmp(arg, "x-", 2))
        return 0;
    if (arg[0] == '-')
        return fail(c, "unknown option '%s' (see syncguardfs --help)", arg);
    const char *eq = strchr(arg, '=');
    size_t len = name_len(arg);
    const struct fuse_opt *o = find_name(arg, len, eq != NULL);
    if (!o)
        return unknown(c, arg);
    if (eq)
        return fail(c, "option '%.*s' takes no value (got '%s')", (int)len, arg, arg);
    return fail(c, "option '%s' needs a value: %s...", arg, o->templ);
}

sgfs_parse_result sgfs_options_parse(int argc, char *argv[], sgfs_config *cfg, FILE *err)
{
    *cfg = (sgfs_config){
        .ttl_ms = SG_TTL_DEFAULT_MS,
        .retry_delay_ms = 100,
        .max_delay_ms = 1000,
        .backoff = SG_BACKOFF_EXPONENTIAL,
        .jitter = SG_JITTER_EQUAL,
        .log_level = -1,
    };
    parse_ctx c = {.cfg = cfg, .err = err};
    /* libfuse's own message for a trailing -o is terse; say it our way */
    if (argc > 1 && !strcmp(argv[argc - 1], "-o")) {
        fail(&c, "-o needs a list of options");
        return SGFS_PARSE_ERROR;
    }
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    int rc = fuse_opt_parse(&args, &c, table, proc);
    fuse_opt_free_args(&args);
    if (rc != 0)
        return SGFS_PARSE_ERROR;
    if (c.help)
        return SGFS_PARSE_HELP;
    if (c.version)
        return SGFS_PARSE_VERSION;
    if (c.positional < 2) {
        fail(&c, "%s", c.positional ? "missing MOUNTPOINT" : "missing BACKEND_URL and MOUNTPOINT");
        fputs(sgfs_usage, err);
        return SGFS_PARSE_ERROR;
    }
    /* A cap below the first delay: raise the default cap, refuse an explicit one. */
    if (cfg->max_delay_ms < cfg->retry_delay_ms) {
        if (c.max_delay_set) {
            fail(&c, "max_delay (%lld ms) is below retry_delay (%lld ms)",
                 (long long)cfg->max_delay_ms, (long long)cfg->retry_delay_ms);
            return SGFS_PARSE_ERROR;
        }
        cfg->max_delay_ms = cfg->retry_delay_ms;
    }
    if (!c.grace_set)
        cfg->shutdown_grace_ms = cfg->ttl_ms;
    if (!c.dirmode_set)
        cfg->dirmode = cfg->allow_other ? 01777 : 0755;
    return SGFS_PARSE_MOUNT;
}

void sgfs_config_free(sgfs_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->url)
        explicit_bzero(cfg->url, strlen(cfg->url));
    char **strings[] = {&cfg->url, &cfg->mountpoint, &cfg->password_file, &cfg->state_dir,
                        &cfg->fuse_opts};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        free(*strings[i]);
        *strings[i] = NULL;
    }
}

int sgfs_options_fuse_args(const sgfs_config *cfg, const char *argv0, const char *fsname,
                           struct fuse_args *args)
{
    *args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
    char *opts = NULL, *name = NULL;
    int rc = -1;
    if (asprintf(&name, "fsname=%s", fsname) < 0) {
        name = NULL;
        goto out;
    }
    if (fuse_opt_add_opt_escaped(&opts, name) || fuse_opt_add_opt(&opts, "subtype=syncguardfs") ||
        (cfg->allow_other && fuse_opt_add_opt(&opts, "allow_other,default_permissions")) ||
        (cfg->fuse_opts && fuse_opt_add_opt(&opts, cfg->fuse_opts)))
        goto out;
    if (fuse_opt_add_arg(args, argv0) || fuse_opt_add_arg(args, "-o") ||
        fuse_opt_add_arg(args, opts) || (cfg->debug && fuse_opt_add_arg(args, "-d")))
        goto out;
    rc = 0;
out:
    free(name);
    free(opts);
    if (rc)
        fuse_opt_free_args(args);
    return rc;
}
