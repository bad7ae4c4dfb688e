/* main.c — syncguard(1): the command line face of libsyncguard. Global
 * options, the backend URL (scrubbed from argv), and every command but `run`
 * (run.c). Exit statuses: 0 ok, 1 absent/free/not acquired, 2 errors. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "names.h"

static const char usage[] =
    "usage: syncguard [--backend URL] [--json] COMMAND [ARGS]\n"
    "\n"
    "Distributed locks with fencing tokens from the command line.\n"
    "\n"
    "Commands:\n"
    "  run [-n | -w SECONDS] [-t TTL] [-E CODE] [--on-loss SIG] KEY [--] CMD [ARG...]\n"
    "                       run CMD while holding KEY (renewed every TTL/3)\n"
    "  acquire [-n | -w SECONDS] [-E CODE] -t TTL KEY\n"
    "                       take KEY and leave it held; prints key, lockId, fence, ...\n"
    "  extend [LOCKID | -] TTL   set a held lock's expiry to now + TTL\n"
    "  release [LOCKID | -]      release a held lock\n"
    "  break KEY            delete KEY's lock whoever holds it (admin; logged)\n"
    "  status KEY           public view of KEY's lock (no lockId); exit 0 held, 1 free\n"
    "  list [PREFIX]        keys of the live locks\n"
    "  setup                create PostgreSQL tables, check fence durability and access\n"
    "\n"
    "Options:\n"
    "  -b, --backend URL    backend (default $SYNCGUARD_BACKEND): redis://[:pass@]host[:port][/db],\n"
    "                       unix:///path/redis.sock, postgres://..., firestore://PROJECT\n"
    "  --password-file FILE backend password read from FILE\n"
    "  -j, --json           one JSON object on stdout instead of name=value lines\n"
    "  -n, --nonblock       do not wait: exit CODE at once if KEY is held\n"
    "  -w, --wait SECONDS   wait at most SECONDS (default: without limit)\n"
    "  -t, --ttl TTL        lock TTL: 1500ms, 30s, 10m, 2h (bare digits: ms; >= 1s;\n"
    "                       run's default 30s)\n"
    "  -E, --conflict-exit-code CODE   exit status when not acquired (default 1)\n"
    "  --on-loss SIG        run: signal to CMD's process group when the lock is lost\n"
    "                       (default TERM; KILL 10 s later); syncguard then exits 75\n"
    "  -h, --help           this help;  -V, --version   version\n"
    "\n"
    "LOCKID: the argument (visible in ps), '-' to read it from stdin, or omitted to take\n"
    "$SYNCGUARD_LOCK_ID. Exit: 0 ok, 1 absent/free/not acquired, 2 error, 75 lock lost;\n"
    "run exits with CMD's status (128+N if killed by signal N). See syncguard(1).\n";

static bool json_out;
static bool stdout_closed; /* at start: acquire would print its lockId to nobody */

/* ---- errors and logging ---- */
int cli_fail(const sg_error *e)
{
    if (e->cause[0])
        fprintf(stderr, "syncguard: %s: %s (%s)\n", sg_code_name(e->code), e->message, e->cause);
    else
        fprintf(stderr, "syncguard: %s: %s\n", sg_code_name(e->code), e->message);
    return CLI_EXIT_ERROR;
}

int cli_failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("syncguard: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_ERROR;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("syncguard: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see syncguard --help)\n", stderr);
    va_end(ap);
    return CLI_EXIT_ERROR;
}

/* setup collects what the backends report while opening (durability, tables). */
static int setup_warnings;
static bool setup_mode;

static void log_hook(sg_log_level level, const char *msg, void *ud)
{
    (void)ud;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (setup_mode) {
        if (level <= SG_LOG_WARN)
            setup_warnings++;
        if (level <= SG_LOG_INFO || getenv("SYNCGUARD_DEBUG"))
            fprintf(stderr, "syncguard: %s: %s\n", names[level], msg);
        return;
    }
    if (level <= SG_LOG_WARN || getenv("SYNCGUARD_DEBUG"))
        fprintf(stderr, "syncguard: %s: %s\n", names[level], msg);
}

/* ---- output ---- */
/* Print a cJSON object on one line and free it. */
static int print_json(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return cli_failf("out of memory");
    puts(s);
    free(s);
    return CLI_EXIT_OK;
}

/* The lock file's text (fs/names.c), with the lockId when given. */
static void print_lock_text(const char *key, const char *fence, int64_t acquired_at_ms,
                            int64_t expires_at_ms, const char *lock_id)
{
    char buf[8192];
    sgfs_format_lock(buf, sizeof buf, key, fence, acquired_at_ms, expires_at_ms, sg_now_ms(),
                     lock_id, NULL);
    fputs(buf, stdout);
}

static cJSON *lock_json(const char *key, const char *fence, int64_t acquired_at_ms,
                        int64_t expires_at_ms)
{
    cJSON *o = cJSON_CreateObject();
    int64_t ttl = expires_at_ms - sg_now_ms();
    if (o && (!cJSON_AddStringToObject(o, "key", key) ||
              !cJSON_AddStringToObject(o, "fence", fence) ||
              !cJSON_AddNumberToObject(o, "acquiredAtMs", (double)acquired_at_ms) ||
              !cJSON_AddNumberToObject(o, "expiresAtMs", (double)expires_at_ms) ||
              !cJSON_AddNumberToObject(o, "ttlMs", (double)(ttl > 0 ? ttl : 0)))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- acquisition with waiting (shared with run) ---- */
static volatile int wait_abort; /* set by a signal handler */
static volatile sig_atomic_t wait_signal;

static void on_wait_signal(int sig)
{
    wait_signal = sig;
    wait_abort = 1;
}

int cli_acquire_wait(sg_backend *b, const char *key, int64_t ttl_ms, int64_t wait_ms,
                     int conflict_code, sg_lock *out)
{
    /* TERM/INT/HUP abort a wait; SA_RESTART keeps a backend call in flight whole */
    struct sigaction sa = {.sa_handler = on_wait_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    struct sigaction old[3];
    const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) { /* an ignored signal stays ignored (nohup, & in sh) */
        sigaction(sigs[i], NULL, &old[i]);
        if (old[i].sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    }

    sg_error err;
    sg_status st;
    if (wait_ms == 0) {
        st = sg_acquire(b, key, ttl_ms, out, &err);
    } else {
        sg_acquire_opts o = sg_acquire_opts_default();
        o.timeout_ms = wait_ms == CLI_WAIT_FOREVER ? INT64_MAX / 4 : wait_ms;
        o.max_retries = INT32_MAX - 1; /* bounded by the time limit only */
        o.retry_delay_ms = 100;
        o.max_delay_ms = 1000; /* a waiter notices a freed lock within about a second */
        o.abort = &wait_abort;
        st = sg_acquire_retry(b, key, ttl_ms, &o, out, &err);
    }
    int rc;
    if (st == SG_OK && wait_abort) {
        /* a signal arrived while the winning attempt was in flight: give it back */
        sg_error rel;
        if (sg_release(b, out->lock_id, &rel) == SG_ERROR)
            cli_fail(&rel);
        rc = 128 + wait_signal;
    } else if (st == SG_OK) {
        rc = CLI_EXIT_OK;
    } else if (st == SG_CONTENDED ||
               (st == SG_ERROR && err.code == SG_E_ACQUISITION_TIMEOUT)) {
        rc = conflict_code;
    } else if (st == SG_ERROR && err.code == SG_E_ABORTED) {
        rc = 128 + wait_signal;
    } else {
        rc = cli_fail(&err);
    }
    if (rc != CLI_EXIT_OK) /* held: the handlers stay until the caller blocks them */
        for (int i = 0; i < 3; i++)
            sigaction(sigs[i], &old[i], NULL);
    return rc;
}

int cli_wait_signal(void)
{
    return wait_signal;
}

/* ---- lockId sources: argument, '-' (stdin) or $SYNCGUARD_LOCK_ID ---- */
static int lock_id_get(const char *arg, char out[SG_LOCK_ID_LEN + 1])
{
    if (!arg) {
        const char *env = getenv("SYNCGUARD_LOCK_ID");
        if (!env || !*env)
            return usage_error("no lockId: give LOCKID, '-' (stdin) or set SYNCGUARD_LOCK_ID");
        if (!sg_lock_id_valid(env))
            return cli_failf("SYNCGUARD_LOCK_ID is not a lockId (22 base64url characters)");
        memcpy(out, env, SG_LOCK_ID_LEN + 1);
        return CLI_EXIT_OK;
    }
    if (!strcmp(arg, "-")) {
        char buf[65536];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof buf && (r = read(STDIN_FILENO, buf + n, sizeof buf - n)) != 0) {
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return cli_failf("reading the lockId from stdin: %s", strerror(errno));
            n += (size_t)r;
        }
        bool ok = n < sizeof buf && cli_lock_id_from_text(buf, n, out);
        explicit_bzero(buf, sizeof buf);
        if (!ok)
            return cli_failf("no lockId on stdin (a lockId, lockId= lines or acquire's JSON)");
        return CLI_EXIT_OK;
    }
    if (!sg_lock_id_valid(arg))
        return cli_failf("LOCKID must be 22 base64url characters");
    memcpy(out, arg, SG_LOCK_ID_LEN + 1);
    return CLI_EXIT_OK;
}

/* ---- commands ---- */
typedef struct cmd_args {
    int64_t ttl_ms;
    bool ttl_set;
    int64_t wait_ms;
    int conflict_code;
    int on_loss_signal;
    char **pos; /* positional arguments */
    int npos;
} cmd_args;

static int normalize_key(const char *key, char out[SG_KEY_MAX + 1])
{
    sg_error err;
    if (sg_key_normalize(key, strlen(key), out, NULL, &err) != SG_OK)
        return cli_fail(&err);
    return CLI_EXIT_OK;
}

static int cmd_acquire(sg_backend *b, cmd_args *a)
{
    if (a->npos != 1)
        return usage_error("acquire takes one KEY");
    if (!a->ttl_set)
        return usage_error("acquire needs -t TTL (the lock outlives this command)");
    if (stdout_closed)
        return cli_failf("acquire: stdout is closed, nobody would learn the lockId");
    char key[SG_KEY_MAX + 1];
    if (normalize_key(a->pos[0], key))
        return CLI_EXIT_ERROR;
    signal(SIGPIPE, SIG_IGN); /* a closed stdout must fail a write, not kill us holding */
    sg_lock lock;
    int rc = cli_acquire_wait(b, key, a->ttl_ms, a->wait_ms, a->conflict_code, &lock);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (json_out) {
        cJSON *o = lock_json(lock.key, lock.fence, lock.acquired_at_ms, lock.expires_at_ms);
        if (o && !cJSON_AddStringToObject(o, "lockId", lock.lock_id)) {
            cJSON_Delete(o);
            o = NULL;
        }
        rc = print_json(o);
    } else {
        print_lock_text(lock.key, lock.fence, lock.acquired_at_ms, lock.expires_at_ms,
                        lock.lock_id);
    }
    if (fflush(stdout) != 0 || ferror(stdout) || rc != CLI_EXIT_OK) {
        /* nobody learnt the lockId: do not leave the lock behind */
        int e = errno;
        sg_error err;
        sg_release(b, lock.lock_id, &err);
        return cli_failf("could not print the lock (%s); released it", strerror(e));
    }
    return CLI_EXIT_OK;
}

static int absent(const char *what)
{
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        if (o && !cJSON_AddBoolToObject(o, what, false)) {
            cJSON_Delete(o);
            o = NULL;
        }
        print_json(o);
    }
    fputs("syncguard: lock not held (expired, released, or someone else's)\n", stderr);
    return CLI_EXIT_ABSENT;
}

static int cmd_extend(sg_backend *b, cmd_args *a)
{
    if (a->npos < 1 || a->npos > 2)
        return usage_error("usage: extend [LOCKID | -] TTL");
    char id[SG_LOCK_ID_LEN + 1];
    int64_t ttl;
    sg_error err;
    if (cli_ttl_parse(a->pos[a->npos - 1], &ttl, &err) != SG_OK)
        return cli_fail(&err);
    if (lock_id_get(a->npos == 2 ? a->pos[0] : NULL, id))
        return CLI_EXIT_ERROR;
    int64_t expires = 0;
    sg_status st = sg_extend(b, id, ttl, &expires, &err);
    explicit_bzero(id, sizeof id);
    if (st == SG_ERROR)
        return cli_fail(&err);
    if (st == SG_ABSENT)
        return absent("extended");
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        if (o && (!cJSON_AddBoolToObject(o, "extended", true) ||
                  !cJSON_AddNumberToObject(o, "expiresAtMs", (double)expires))) {
            cJSON_Delete(o);
            o = NULL;
        }
        return print_json(o);
    }
    printf("expiresAtMs=%" PRId64 "\n", expires);
    return CLI_EXIT_OK;
}

static int cmd_release(sg_backend *b, cmd_args *a)
{
    if (a->npos > 1)
        return usage_error("usage: release [LOCKID | -]");
    char id[SG_LOCK_ID_LEN + 1];
    if (lock_id_get(a->npos == 1 ? a->pos[0] : NULL, id))
        return CLI_EXIT_ERROR;
    sg_error err;
    sg_status st = sg_release(b, id, &err);
    explicit_bzero(id, sizeof id);
    if (st == SG_ERROR)
        return cli_fail(&err);
    if (st == SG_ABSENT)
        return absent("released");
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        if (o && !cJSON_AddBoolToObject(o, "released", true)) {
            cJSON_Delete(o);
            o = NULL;
        }
        return print_json(o);
    }
    return CLI_EXIT_OK;
}

static int cmd_status(sg_backend *b, cmd_args *a)
{
    if (a->npos != 1)
        return usage_error("status takes one KEY");
    char key[SG_KEY_MAX + 1];
    if (normalize_key(a->pos[0], key))
        return CLI_EXIT_ERROR;
    sg_lock_info info;
    sg_error err;
    memset(&info, 0, sizeof info);
    sg_status st = sg_lookup_key(b, key, &info, &err); /* sanitized: no lockId */
    if (st == SG_ERROR)
        return cli_fail(&err);
    bool held = st == SG_OK;
    if (json_out) {
        cJSON *o = held ? lock_json(key, info.fence, info.acquired_at_ms, info.expires_at_ms)
                        : cJSON_CreateObject();
        if (o && ((!held && !cJSON_AddStringToObject(o, "key", key)) ||
                  !cJSON_AddBoolToObject(o, "held", held) ||
                  (held && (!cJSON_AddStringToObject(o, "keyHash", info.key_hash) ||
                            !cJSON_AddStringToObject(o, "lockIdHash", info.lock_id_hash))))) {
            cJSON_Delete(o);
            o = NULL;
        }
        if (print_json(o) != CLI_EXIT_OK)
            return CLI_EXIT_ERROR;
    } else if (held) {
        print_lock_text(key, info.fence, info.acquired_at_ms, info.expires_at_ms, NULL);
        printf("keyHash=%s\nlockIdHash=%s\n", info.key_hash, info.lock_id_hash);
    }
    return held ? CLI_EXIT_OK : CLI_EXIT_ABSENT;
}

/* Deletes a stuck lock by key, as the mount's allow_break does (fs/lockfs.c
 * op_unlink): the raw lookup gives the holder's lockId, release deletes it
 * only if that holder still owns it (never a newer owner's lock). */
static int cmd_break(sg_backend *b, cmd_args *a)
{
    if (a->npos != 1)
        return usage_error("break takes one KEY");
    char key[SG_KEY_MAX + 1], text[CLI_KEY_TEXT_MAX];
    if (normalize_key(a->pos[0], key))
        return CLI_EXIT_ERROR;
    cli_key_text(key, text);
    sg_lock_info info;
    sg_error err;
    memset(&info, 0, sizeof info);
    sg_status st = sg_lookup_key_raw(b, key, &info, &err);
    if (st == SG_ERROR)
        return cli_fail(&err);
    if (st == SG_OK)
        st = sg_release(b, info.lock_id, &err);
    explicit_bzero(info.lock_id, sizeof info.lock_id);
    if (st == SG_ERROR)
        return cli_fail(&err);
    if (st == SG_ABSENT) { /* free, or it changed hands between lookup and release */
        fprintf(stderr, "syncguard: %.200s: no lock to break (free, or it just changed hands)\n",
                text);
        return CLI_EXIT_ABSENT;
    }
    openlog("syncguard", LOG_PID, LOG_AUTH);
    syslog(LOG_WARNING, "break: uid %u broke the lock on %.200s (fence %s, lockIdHash %s)",
           (unsigned)getuid(), text, info.fence, info.lock_id_hash);
    closelog();
    fprintf(stderr, "syncguard: broke the lock on %.200s (fence %s)\n", text, info.fence);
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        if (o && (!cJSON_AddStringToObject(o, "key", key) ||
                  !cJSON_AddBoolToObject(o, "broken", true) ||
                  !cJSON_AddStringToObject(o, "fence", info.fence))) {
            cJSON_Delete(o);
            o = NULL;
        }
        return print_json(o);
    }
    return CLI_EXIT_OK;
}

typedef struct key_list {
    char **keys;
    size_t n, cap;
    const char *prefix;
    bool oom;
} key_list;

static void list_one(const char *key, void *ud)
{
    key_list *l = ud;
    if (l->oom || strncmp(key, l->prefix, strlen(l->prefix)) != 0)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **k = realloc(l->keys, cap * sizeof *k);
        if (!k) {
            l->oom = true;
            return;
        }
        l->keys = k;
        l->cap = cap;
    }
    if (!(l->keys[l->n] = strdup(key)))
        l->oom = true;
    else
        l->n++;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int cmd_list(sg_backend *b, cmd_args *a)
{
    if (a->npos > 1)
        return usage_error("list takes at most one PREFIX");
    key_list l = {.prefix = a->npos ? a->pos[0] : ""};
    char cursor[SG_CURSOR_LEN] = "";
    sg_error err;
    int rc = CLI_EXIT_OK;
    do {
        if (sg_list(b, cursor, 500, list_one, &l, &err) != SG_OK) {
            rc = cli_fail(&err);
            break;
        }
    } while (cursor[0] && !l.oom);
    if (l.oom && rc == CLI_EXIT_OK)
        rc = cli_failf("out of memory");
    /* a pass lists each key at least once: sort, print each once */
    if (l.n)
        qsort(l.keys, l.n, sizeof *l.keys, cmp_str);
    cJSON *arr = rc == CLI_EXIT_OK && json_out ? cJSON_CreateArray() : NULL;
    for (size_t i = 0; i < l.n; i++) {
        if (rc == CLI_EXIT_OK && (i == 0 || strcmp(l.keys[i], l.keys[i - 1]))) {
            if (json_out) {
                cJSON *s = cJSON_CreateString(l.keys[i]);
                if (!s || !cJSON_AddItemToArray(arr, s))
                    cJSON_Delete(s);
            } else {
                char text[CLI_KEY_TEXT_MAX];
                cli_key_text(l.keys[i], text);
                puts(text);
            }
        }
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.keys[i]);
    free(l.keys);
    if (arr) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToObject(o, "keys", arr)) {
            cJSON_Delete(arr);
            cJSON_Delete(o);
            o = NULL;
        }
        rc = print_json(o);
    }
    return rc;
}

/* Opening a backend does the setup: PostgreSQL creates its tables when
 * missing, Redis reads its fence durability (warnings come through the log
 * hook). Then a read and a write prove access. */
static int cmd_setup(sg_backend *b, const char *safe_url)
{
    const char *probe = "syncguard-setup-probe";
    sg_error err;
    bool locked;
    if (sg_is_locked(b, probe, &locked, &err) != SG_OK)
        return cli_fail(&err);
    sg_lock lock;
    sg_status st = sg_acquire(b, probe, 5000, &lock, &err);
    if (st == SG_ERROR)
        return cli_fail(&err);
    if (st == SG_OK && sg_release(b, lock.lock_id, &err) == SG_ERROR)
        return cli_fail(&err);
    int warnings = setup_warnings;
    const char *type = sg_backend_capabilities(b)->name;
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        if (o && (!cJSON_AddStringToObject(o, "backend", safe_url) ||
                  !cJSON_AddStringToObject(o, "type", type) ||
                  !cJSON_AddBoolToObject(o, "ok", true) ||
                  !cJSON_AddNumberToObject(o, "warnings", warnings))) {
            cJSON_Delete(o);
            o = NULL;
        }
        if (print_json(o) != CLI_EXIT_OK)
            return CLI_EXIT_ERROR;
    } else {
        printf("backend=%s\ntype=%s\naccess=ok\nwarnings=%d\n", safe_url, type, warnings);
    }
    return warnings ? CLI_EXIT_ABSENT : CLI_EXIT_OK;
}

/* ---- main ---- */
enum { OPT_PASSWORD_FILE = 256, OPT_ON_LOSS };

static const struct option long_opts[] = {
    {"backend", required_argument, NULL, 'b'},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"json", no_argument, NULL, 'j'},
    {"nonblock", no_argument, NULL, 'n'},
    {"no-wait", no_argument, NULL, 'n'},
    {"wait", required_argument, NULL, 'w'},
    {"timeout", required_argument, NULL, 'w'},
    {"ttl", required_argument, NULL, 't'},
    {"conflict-exit-code", required_argument, NULL, 'E'},
    {"on-loss", required_argument, NULL, OPT_ON_LOSS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

typedef struct globals {
    char *url;
    const char *password_file;
} globals;

/* One option parser for the global and the command options. `which` names
 * the command (NULL before it); run stops at its KEY so CMD keeps its own. */
static int parse_opts(int argc, char **argv, const char *which, globals *g, cmd_args *a,
                      int *next)
{
    const char *shortopts = which ? (!strcmp(which, "run") ? "+:b:jnw:t:E:hV" : ":b:jnw:t:E:hV")
                                  : "+:b:jhV";
    bool nb = false, waited = false;
    optind = 0; /* full re-initialization (glibc) */
    opterr = 0;
    int c;
    /* A lockId may begin with '-' (base64url): for extend/release an argument
     * that is a valid lockId ends the options instead of being read as one. */
    bool by_id = which && (!strcmp(which, "extend") || !strcmp(which, "release"));
    while (!(by_id && (optind > 0 ? optind : 1) < argc &&
             sg_lock_id_valid(argv[optind > 0 ? optind : 1])) &&
           (c = getopt_long(argc, argv, shortopts, long_opts, NULL)) != -1) {
        sg_error err;
        switch (c) {
        case 'b':
            g->url = optarg; /* argv memory: scrubbed by main */
            break;
        case OPT_PASSWORD_FILE: g->password_file = optarg; break;
        case 'j': json_out = true; break;
        case 'h': fputs(usage, stdout); return -1;
        case 'V':
            printf("syncguard %s (libsyncguard; backends: %s)\n", SG_VERSION,
                   sg_backend_schemes());
            return -1;
        case 'n':
            if (!which) goto bad;
            nb = true;
            a->wait_ms = 0;
            break;
        case 'w':
            if (!which) goto bad;
            if (!cli_wait_parse(optarg, &a->wait_ms))
                return usage_error("-w takes a number of seconds (e.g. 10 or 0.5)");
            waited = true;
            break;
        case 't':
            if (!which) goto bad;
            if (cli_ttl_parse(optarg, &a->ttl_ms, &err) != SG_OK)
                return cli_fail(&err);
            a->ttl_set = true;
            break;
        case 'E':
            if (!which) goto bad;
            if (!cli_exit_code_parse(optarg, &a->conflict_code))
                return usage_error("-E takes an exit status 0..255");
            break;
        case OPT_ON_LOSS:
            if (!which || strcmp(which, "run")) goto bad;
            if ((a->on_loss_signal = cli_signal_parse(optarg)) < 0)
                return usage_error("--on-loss takes a signal name or number (e.g. TERM)");
            break;
        case ':':
            return usage_error("option %s needs a value", argv[optind - 1]);
        default:
        bad:
            return usage_error("unknown option %s%s%s", argv[optind - 1],
                               which ? " for " : "", which ? which : "");
        }
    }
    if (nb && waited)
        return usage_error("-n and -w exclude each other");
    if (optind == 0)
        optind = 1;
    *next = optind;
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    globals g = {.url = NULL};
    cmd_args a = {.ttl_ms = SG_TTL_DEFAULT_MS, .wait_ms = CLI_WAIT_FOREVER,
                  .conflict_code = CLI_EXIT_ABSENT, .on_loss_signal = SIGTERM};
    /* A closed 0/1/2 would be reused by a backend socket, and our output
     * would go to the server: hold them with /dev/null instead. */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        if (fd == STDOUT_FILENO)
            stdout_closed = true;
        int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (n >= 0 && n != fd) { /* cannot happen: open takes the lowest free fd */
            close(n);
            return CLI_EXIT_ERROR;
        }
    }
    cli_run_snapshot_fds();
    sg_log_set(log_hook, NULL);
    int next;
    int rc = parse_opts(argc, argv, NULL, &g, &a, &next);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (next >= argc) {
        fputs(usage, stderr);
        return CLI_EXIT_ERROR;
    }
    const char *cmd = argv[next];
    static const char *const cmds[] = {"run", "acquire", "extend", "release", "break",
                                       "status", "list", "setup"};
    bool known = false;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        known |= !strcmp(cmd, cmds[i]);
    if (!known)
        return usage_error("unknown command %s", cmd);

    /* command options: argv[next] plays argv[0] */
    int sub_argc = argc - next;
    char **sub = argv + next;
    rc = parse_opts(sub_argc, sub, cmd, &g, &a, &next);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    a.pos = sub + next;
    a.npos = sub_argc - next;

    /* the URL: argv memory loses its password before any I/O */
    char *url = NULL;
    if (g.url) {
        url = strdup(g.url);
        cli_scrub_url_arg(g.url);
    } else if (getenv("SYNCGUARD_BACKEND") && *getenv("SYNCGUARD_BACKEND")) {
        url = strdup(getenv("SYNCGUARD_BACKEND"));
    } else {
        return usage_error("no backend: give --backend URL or set SYNCGUARD_BACKEND");
    }
    if (!url)
        return cli_failf("out of memory");

    cli_run_opts ro = {0};
    if (!strcmp(cmd, "run")) { /* check the command line before any I/O */
        if (a.npos < 2 || (a.npos == 2 && !strcmp(a.pos[1], "--")))
            rc = usage_error("usage: run [options] KEY [--] CMD [ARG...]");
        else
            ro = (cli_run_opts){a.ttl_ms, a.wait_ms, a.conflict_code, a.on_loss_signal,
                                a.pos[0], a.pos + (strcmp(a.pos[1], "--") ? 1 : 2)};
    }
    char *safe_url = sg_url_redact(url);
    setup_mode = !strcmp(cmd, "setup");
    sg_backend *b = NULL;
    sg_error err;
    sg_open_opts oo = {.password_file = g.password_file};
    if (rc == CLI_EXIT_OK && sg_backend_open(url, &oo, &b, &err) != SG_OK)
        rc = cli_fail(&err);
    explicit_bzero(url, strlen(url));
    free(url);
    if (rc == CLI_EXIT_OK) {
        if (!strcmp(cmd, "run"))
            rc = cli_run(b, &ro);
        else if (!strcmp(cmd, "acquire"))
            rc = cmd_acquire(b, &a);
        else if (!strcmp(cmd, "extend"))
            rc = cmd_extend(b, &a);
        else if (!strcmp(cmd, "release"))
            rc = cmd_release(b, &a);
        else if (!strcmp(cmd, "break"))
            rc = cmd_break(b, &a);
        else if (!strcmp(cmd, "status"))
            rc = cmd_status(b, &a);
        else if (!strcmp(cmd, "list"))
            rc = cmd_list(b, &a);
        else
            rc = cmd_setup(b, safe_url ? safe_url : "");
    }
    sg_backend_close(b);
    free(safe_url);
    return rc;
}
