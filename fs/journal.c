/* journal.c — the state file of a syncguardfs mount (format and guarantees in
 * journal.h): private state directory, one flock-held file per mountpoint,
 * crash recovery with holder identities, compaction, and the mountinfo guard.
 *
 * Locking: `mu` guards the sets, the line count and every write to the file,
 * so lines reach the file in the order the daemon recorded them. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "syncguard.h"

#define COMPACT_MIN_LINES 1024
#define MAX_FILE_BYTES (64u << 20) /* a journal past this is not ours: read no further */
#define NAME_SIZE 32
#define HEADER_TAG "#syncguardfs pid="

/* ---- a small set of entries keyed by lockId (chained hash) ---- */
typedef struct entry {
    struct entry *next;
    pid_t pid;
    uint64_t start_time;
    char lock_id[SG_LOCK_ID_LEN + 1];
} entry;

typedef struct idset {
    entry **buckets;
    size_t nbuckets, n;
} idset;

static size_t id_hash(const char *id)
{
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211u;
    return h;
}

static entry **set_slot(idset *s, const char *id)
{
    if (!s->nbuckets)
        return NULL;
    entry **pp = &s->buckets[id_hash(id) & (s->nbuckets - 1)];
    while (*pp && strcmp((*pp)->lock_id, id))
        pp = &(*pp)->next;
    return pp;
}

static int set_grow(idset *s)
{
    size_t nb = s->nbuckets ? 2 * s->nbuckets : 64;
    entry **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < s->nbuckets; i++)
        for (entry *e = s->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t k = id_hash(e->lock_id) & (nb - 1);
            e->next = b[k];
            b[k] = e;
        }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
    return 0;
}

/* Insert or update; the caller has validated `id`. */
static int set_put(idset *s, const char *id, pid_t pid, uint64_t start_time)
{
    if (s->n >= s->nbuckets && set_grow(s) != 0)
        return -ENOMEM;
    entry **pp = set_slot(s, id);
    if (!*pp) {
        entry *e = calloc(1, sizeof *e);
        if (!e)
            return -ENOMEM;
        memcpy(e->lock_id, id, SG_LOCK_ID_LEN + 1);
        *pp = e;
        s->n++;
    }
    (*pp)->pid = pid;
    (*pp)->start_time = start_time;
    return 0;
}

static bool set_del(idset *s, const char *id)
{
    entry **pp = set_slot(s, id);
    if (!pp || !*pp)
        return false;
    entry *e = *pp;
    *pp = e->next;
    free(e);
    s->n--;
    return true;
}

static void set_clear(idset *s)
{
    for (size_t i = 0; i < s->nbuckets; i++)
        for (entry *e = s->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(s->buckets);
    *s = (idset){0};
}

/* ---- the journal ---- */
struct sgfs_journal {
    pthread_mutex_t mu;
    int dirfd, fd;
    idset held;        /* this daemon's locks */
    idset prev;        /* the previous daemon's, until sgfs_journal_recover */
    size_t lines;      /* lines in the file since it was last rewritten */
    bool write_failed; /* logged once until a write succeeds again */
    char name[NAME_SIZE];
    char mount[PATH_MAX]; /* for the header */
    char path[PATH_MAX + NAME_SIZE];
};

static void say(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t size, const char *fmt, ...)
{
    if (!why || !size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
}

void sgfs_journal_file_name(const char *mountpoint_realpath, char *out, size_t size)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)mountpoint_realpath, strlen(mountpoint_realpath), digest);
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    snprintf(out, size, "mount-%s.state", hex);
}

/* Strict unsigned decimal: digits only, no sign, no overflow. */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (!len || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_pid(const char *s, size_t len, pid_t *out)
{
    uint64_t v;
    if (!parse_u64(s, len, &v) || v == 0 || v > INT32_MAX)
        return false;
    *out = (pid_t)v;
    return true;
}

/* Apply one complete line (without its '\n') to `s`; anything malformed is
 * skipped — a crash may have cut the last line short, and the file is data. */
static void replay_line(const char *line, size_t len, idset *s, pid_t *header_pid)
{
    char id[SG_LOCK_ID_LEN + 1];
    if (memchr(line, '\0', len))
        return;
    if (len > strlen(HEADER_TAG) && !memcmp(line, HEADER_TAG, strlen(HEADER_TAG))) {
        const char *p = line + strlen(HEADER_TAG);
        size_t n = strspn(p, "0123456789");
        if (header_pid && n <= (size_t)(line + len - p))
            parse_pid(p, n, header_pid);
        return;
    }
    if (len < 1 + SG_LOCK_ID_LEN || (line[0] != '+' && line[0] != '-'))
        return;
    memcpy(id, line + 1, SG_LOCK_ID_LEN);
    id[SG_LOCK_ID_LEN] = '\0';
    if (!sg_lock_id_valid(id))
        return;
    const char *rest = line + 1 + SG_LOCK_ID_LEN, *end = line + len;
    if (line[0] == '-') {
        if (rest == end)
            set_del(s, id);
        return;
    }
    /* "+<id> <pid> <start>" */
    if (rest == end || *rest != ' ')
        return;
    const char *p = rest + 1, *sp = memchr(p, ' ', (size_t)(end - p));
    pid_t pid;
    uint64_t start;
    if (!sp || !parse_pid(p, (size_t)(sp - p), &pid) ||
        !parse_u64(sp + 1, (size_t)(end - sp - 1), &start))
        return;
    set_put(s, id, pid, start);
}

/* Replay a whole file's text; a last line without '\n' was cut by a crash. */
static void replay(const char *buf, size_t len, idset *s, pid_t *header_pid)
{
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        replay_line(p, (size_t)(nl - p), s, header_pid);
        p = nl + 1;
    }
}

/* The file's text from offset 0 (at most MAX_FILE_BYTES); NULL on error. */
static char *read_all(int fd, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return NULL;
    size_t cap = st.st_size > 0 ? (size_t)st.st_size : 0;
    if (cap > MAX_FILE_BYTES)
        cap = MAX_FILE_BYTES;
    char *buf = malloc(cap + 1);
    if (!buf)
        return NULL;
    size_t n = 0;
    while (n < cap) {
        ssize_t r = pread(fd, buf + n, cap - n, (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int append_entry(char **buf, size_t *len, size_t *cap, const entry *e)
{
    if (*cap - *len < 64) {
        size_t nc = 2 * *cap + 64;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = nc;
    }
    *len += (size_t)snprintf(*buf + *len, *cap - *len, "+%s %d %" PRIu64 "\n", e->lock_id,
                             (int)e->pid, e->start_time);
    return 0;
}

static void write_failed(sgfs_journal *j, int err)
{
    if (!j->write_failed)
        sg_log(SG_LOG_WARN,
               "cannot write state file %s: %s (a restarted daemon may not free this "
               "one's locks early)",
               j->path, strerror(err));
    j->write_failed = true;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* With mu held: rewrite the file in place (it is locked; a rename would swap
 * the inode under the lock) as header + previous daemon's entries + ours, in
 * one write so a crash loses at most the instant between truncate and write. */
static int rewrite_locked(sgfs_journal *j)
{
    size_t cap = 256 + strlen(j->mount) + 64 * (j->held.n + j->prev.n), len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    len = (size_t)snprintf(buf, cap, HEADER_TAG "%d mount=%s\n", (int)getpid(), j->mount);
    int rc = 0;
    const idset *sets[2] = {&j->prev, &j->held};
    for (int k = 0; k < 2 && !rc; k++)
        for (size_t i = 0; i < sets[k]->nbuckets && !rc; i++)
            for (const entry *e = sets[k]->buckets[i]; e && !rc; e = e->next)
                rc = append_entry(&buf, &len, &cap, e);
    if (!rc && ftruncate(j->fd, 0) != 0)
        rc = -errno;
    if (!rc)
        rc = write_all(j->fd, buf, len);
    free(buf);
    if (rc) {
        write_failed(j, -rc);
        return rc;
    }
    j->write_failed = false;
    j->lines = 1 + j->held.n + j->prev.n;
    return 0;
}

static void append_line_locked(sgfs_journal *j, const char *line)
{
    int rc = write_all(j->fd, line, strlen(line));
    if (rc) {
        write_failed(j, -rc);
        return;
    }
    j->write_failed = false;
    j->lines++;
    if (j->lines > COMPACT_MIN_LINES && j->lines > 4 * (j->held.n + j->prev.n))
        rewrite_locked(j);
}

/* ---- mountinfo ---- */

/* Decode the kernel's \ooo escapes of a mountinfo field into out (NUL-ended);
 * false if it does not fit. */
static bool unescape_field(const char *s, size_t len, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o + 1 >= size)
            return false;
        if (s[i] == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out[o++] = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return true;
}

/* One mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SRC SUPER".
 * Fields are separated by single spaces; spaces inside are escaped. */
static bool line_is_syncguardfs_at(const char *line, size_t len, const char *path)
{
    const char *field[64];
    size_t flen[64], n = 0;
    const char *p = line, *end = line + len;
    while (p < end && n < 64) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *fe = sp ? sp : end;
        field[n] = p;
        flen[n++] = (size_t)(fe - p);
        p = sp ? sp + 1 : end;
    }
    size_t sep = 6;
    while (sep < n && !(flen[sep] == 1 && field[sep][0] == '-'))
        sep++;
    if (sep + 1 >= n || n < 7)
        return false;
    char fstype[64], mnt[PATH_MAX + 1];
    if (!unescape_field(field[sep + 1], flen[sep + 1], fstype, sizeof fstype) ||
        strcmp(fstype, "fuse.syncguardfs"))
        return false;
    return unescape_field(field[4], flen[4], mnt, sizeof mnt) && !strcmp(mnt, path);
}

bool sgfs_mountinfo_has_syncguardfs(const char *mountinfo, const char *path)
{
    const char *p = mountinfo;
    while (*p) {
        size_t len = strcspn(p, "\n");
        if (line_is_syncguardfs_at(p, len, path))
            return true;
        p += len;
        if (*p == '\n')
            p++;
    }
    return false;
}

/* /proc/self/mountinfo as a string (caller frees); NULL when unreadable. */
static char *read_mountinfo(void)
{
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (cap - n < 4096) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0) {
            buf[n] = '\0';
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    return buf;
}

/* ---- opening ---- */

/* The state directory to use, in out. */
static int state_dir_choose(const char *state_dir, char *out, size_t size)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (state_dir && state_dir[0])
        n = snprintf(out, size, "%s", state_dir);
    else if (geteuid() == 0)
        /* one fixed place for root: the unit and a manual `sudo syncguardfs`
         * must find each other's state file */
        n = snprintf(out, size, "/run/syncguardfs");
    else if (xdg && xdg[0] == '/')
        n = snprintf(out, size, "%s/syncguardfs", xdg);
    else
        n = snprintf(out, size, "/tmp/syncguardfs-%u", (unsigned)geteuid());
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    /* "dir/" would follow a symlink "dir" despite O_NOFOLLOW */
    for (size_t len = strlen(out); len > 1 && out[len - 1] == '/'; len--)
        out[len - 1] = '\0';
    return 0;
}

/* Create (0700) or verify the state directory; returns an fd on it or -errno.
 * Verified on the opened fd, so nothing can be swapped in after the check. */
static int state_dir_open(const char *dir, char *why, size_t why_size)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int err = errno;
        say(why, why_size, "cannot create state directory %s: %s", dir, strerror(err));
        return -err;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        int err = errno;
        struct stat st;
        if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
            say(why, why_size, "state directory %s is a symbolic link: refusing to follow it", dir);
            return -EPERM;
        }
        if (err == ENOTDIR) {
            say(why, why_size, "state directory %s is not a directory", dir);
            return -EPERM;
        }
        say(why, why_size, "cannot open state directory %s: %s", dir, strerror(err));
        return -err;
    }
    struct stat st;
    int rc = 0;
    if (fstat(dfd, &st) != 0) {
        rc = -errno;
        say(why, why_size, "cannot stat state directory %s: %s", dir, strerror(-rc));
    } else if (st.st_uid != geteuid()) {
        rc = -EPERM;
        say(why, why_size,
            "state directory %s belongs to uid %u, not to you (uid %u): refusing it "
            "(someone else may have created it; use state_dir= or XDG_RUNTIME_DIR)",
            dir, (unsigned)st.st_uid, (unsigned)geteuid());
    } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        rc = -EPERM;
        say(why, why_size,
            "state directory %s is writable by group or others (mode %04o): refusing it "
            "(chmod 700 %s)",
            dir, (unsigned)(st.st_mode & 07777), dir);
    }
    if (rc) {
        close(dfd);
        return rc;
    }
    return dfd;
}

/* The pid in a locked state file's header; 0 if not (yet) written. The holder
 * writes it right after taking the lock, so wait a moment for it. */
static pid_t holder_pid(int fd)
{
    for (int tries = 0; tries < 20; tries++) {
        char buf[256];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        pid_t pid = 0;
        if (n > 0) {
            buf[n] = '\0';
            size_t len = strcspn(buf, "\n");
            if (buf[len] == '\n')
                replay_line(buf, len, &(idset){0}, &pid);
        }
        if (pid)
            return pid;
        nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
    }
    return 0;
}

/* Open and lock the state file; returns its fd or -errno. *created tells
 * whether this call created it (so a later refusal can remove it). */
static int state_file_lock(int dfd, const char *path, const char *name, const char *mnt,
                           bool *created, char *why, size_t why_size)
{
    /* A file opened just before its owner unlinked it at exit can be locked
     * afterwards; check the locked inode still has the name, else start over. */
    for (int attempt = 0; attempt < 10; attempt++) {
        *created = true;
        int fd =
            openat(dfd, name, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
            *created = false;
            fd = openat(dfd, name, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 && errno == ENOENT)
                continue;
        }
        if (fd < 0) {
            int err = errno;
            if (err == ELOOP) {
                say(why, why_size, "state file %s is a symbolic link: refusing to follow it", path);
                return -EPERM;
            }
            say(why, why_size, "cannot open state file %s: %s", path, strerror(err));
            return -err;
        }
        struct stat st, st2;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
            say(why, why_size, "state file %s is not a regular file of yours: refusing it", path);
            close(fd);
            return -EPERM;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            if (err == EWOULDBLOCK) {
                pid_t pid = holder_pid(fd);
                if (pid)
                    say(why, why_size, "another syncguardfs (pid %d) serves %s (state file %s)",
                        (int)pid, mnt, path);
                else
                    say(why, why_size, "another syncguardfs serves %s (state file %s is locked)",
                        mnt, path);
                close(fd);
                return -EBUSY;
            }
            say(why, why_size, "cannot lock state file %s: %s", path, strerror(err));
            close(fd);
            return -err;
        }
        if (fstatat(dfd, name, &st2, AT_SYMLINK_NOFOLLOW) == 0 && st2.st_dev == st.st_dev &&
            st2.st_ino == st.st_ino)
            return fd;
        close(fd);
    }
    say(why, why_size, "state file %s keeps changing under us", path);
    return -EAGAIN;
}

int sgfs_journal_open(const char *state_dir, const char *mountpoint_realpath, sgfs_journal **out,
                      char *why, size_t why_size)
{
    *out = NULL;
    say(why, why_size, "%s", "");
    const char *mnt = mountpoint_realpath;
    struct stat st;
    if (stat(mnt, &st) != 0) {
        int err = errno;
        say(why, why_size, "mountpoint %s: %s", mnt, strerror(err));
        return -err;
    }
    if (!S_ISDIR(st.st_mode)) {
        say(why, why_size, "mountpoint %s is not a directory", mnt);
        return -ENOTDIR;
    }
    char dir[PATH_MAX];
    if (state_dir_choose(state_dir, dir, sizeof dir) != 0) {
        say(why, why_size, "state directory name too long");
        return -ENAMETOOLONG;
    }
    sgfs_journal *j = calloc(1, sizeof *j);
    if (!j) {
        say(why, why_size, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->fd = -1;
    sgfs_journal_file_name(mnt, j->name, sizeof j->name);
    snprintf(j->path, sizeof j->path, "%s/%s", dir, j->name);
    /* the header keeps one line: no control characters from the path */
    snprintf(j->mount, sizeof j->mount, "%s", mnt);
    for (char *c = j->mount; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';

    int rc;
    j->dirfd = state_dir_open(dir, why, why_size);
    if (j->dirfd < 0) {
        rc = j->dirfd;
        j->dirfd = -1;
        goto fail;
    }
    bool created;
    j->fd = state_file_lock(j->dirfd, j->path, j->name, mnt, &created, why, why_size);
    if (j->fd < 0) {
        rc = j->fd;
        j->fd = -1;
        goto fail;
    }
    /* Another daemon may serve this mountpoint with another state directory. */
    char *mi = read_mountinfo();
    if (!mi)
        sg_log(SG_LOG_WARN,
               "cannot read /proc/self/mountinfo: %s (not checking for a "
               "syncguardfs already mounted on %s)",
               strerror(errno), mnt);
    bool mounted = mi && sgfs_mountinfo_has_syncguardfs(mi, mnt);
    free(mi);
    if (mounted) {
        say(why, why_size,
            "a syncguardfs is already mounted on %s (another daemon serves it; if that daemon "
            "has died, unmount it first: fusermount3 -u %s)",
            mnt, mnt);
        if (created)
            unlinkat(j->dirfd, j->name, 0);
        rc = -EBUSY;
        goto fail;
    }
    /* Ours now: an unlocked file with entries is a predecessor that crashed. */
    size_t len = 0;
    char *text = read_all(j->fd, &len);
    if (text) {
        replay(text, len, &j->prev, NULL);
        free(text);
    }
    pthread_mutex_lock(&j->mu);
    rewrite_locked(j);
    pthread_mutex_unlock(&j->mu);
    *out = j;
    return 0;
fail:
    if (j->fd >= 0)
        close(j->fd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    pthread_mutex_destroy(&j->mu);
    free(j);
    return rc;
}

void sgfs_journal_recover(sgfs_journal *j, sgfs_recover_fn fn, void *ud)
{
    pthread_mutex_lock(&j->mu);
    idset prev = j->prev; /* taken whole: the file keeps listing them meanwhile */
    pthread_mutex_unlock(&j->mu);
    for (size_t i = 0; i < prev.nbuckets; i++)
        for (const entry *e = prev.buckets[i]; e; e = e->next)
            fn(e->lock_id, e->pid, e->start_time, sgfs_proc_alive(e->pid, e->start_time), ud);
    /* Forget them only once handled: a crash in between hands them over again. */
    pthread_mutex_lock(&j->mu);
    set_clear(&j->prev);
    rewrite_locked(j);
    pthread_mutex_unlock(&j->mu);
}

void sgfs_journal_held(sgfs_journal *j, const char *lock_id, pid_t pid, uint64_t start_time)
{
    if (!sg_lock_id_valid(lock_id)) /* never let a line be forged */
        return;
    char line[SG_LOCK_ID_LEN + 48];
    snprintf(line, sizeof line, "+%s %d %" PRIu64 "\n", lock_id, (int)pid, start_time);
    pthread_mutex_lock(&j->mu);
    if (set_put(&j->held, lock_id, pid, start_time) == 0)
        append_line_locked(j, line);
    else
        sg_log(SG_LOG_WARN, "state file %s: out of memory", j->path);
    pthread_mutex_unlock(&j->mu);
}

void sgfs_journal_released(sgfs_journal *j, const char *lock_id)
{
    if (!sg_lock_id_valid(lock_id))
        return;
    char line[SG_LOCK_ID_LEN + 3];
    snprintf(line, sizeof line, "-%s\n", lock_id);
    pthread_mutex_lock(&j->mu);
    if (set_del(&j->held, lock_id))
        append_line_locked(j, line);
    pthread_mutex_unlock(&j->mu);
}

void sgfs_journal_set_owner(sgfs_journal *j)
{
    pthread_mutex_lock(&j->mu);
    rewrite_locked(j);
    pthread_mutex_unlock(&j->mu);
}

size_t sgfs_journal_count(sgfs_journal *j)
{
    pthread_mutex_lock(&j->mu);
    size_t n = j->held.n;
    pthread_mutex_unlock(&j->mu);
    return n;
}

const char *sgfs_journal_path(const sgfs_journal *j)
{
    return j->path;
}

void sgfs_journal_close(sgfs_journal *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    /* unlink before unlocking: no successor may lock a file about to vanish */
    if (j->held.n == 0 && j->prev.n == 0) {
        if (unlinkat(j->dirfd, j->name, 0) != 0)
            sg_log(SG_LOG_WARN, "cannot remove state file %s: %s", j->path, strerror(errno));
    } else {
        rewrite_locked(j);
        sg_log(SG_LOG_INFO, "state file %s keeps %zu lock(s) for the next daemon to free", j->path,
               j->held.n + j->prev.n);
    }
    close(j->fd);
    close(j->dirfd);
    set_clear(&j->held);
    set_clear(&j->prev);
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_destroy(&j->mu);
    free(j);
}
