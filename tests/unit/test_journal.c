/* test_journal.c — syncguardfs state files: private directories, no symlink
 * followed, one daemon per mountpoint, crash recovery with holder identities,
 * compaction, clean exit, and the mountinfo guard. No server, no mount. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "proc.h"
#include "syncguard.h"

/* Per test: BASE (0700, private), BASE/mnt a mountpoint, BASE/state the state dir. */
typedef struct fixture {
    char base[64];
    char mnt[128];
    char state[128];
    char why[512];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->base, sizeof f->base, "/tmp/sgjournal-XXXXXX");
    if (!mkdtemp(f->base))
        return -1;
    char mnt[PATH_MAX], real[PATH_MAX];
    snprintf(mnt, sizeof mnt, "%s/mnt", f->base);
    mkdir(mnt, 0755);
    if (!realpath(mnt, real) || strlen(real) >= sizeof f->mnt)
        return -1;
    memcpy(f->mnt, real, strlen(real) + 1);
    snprintf(f->state, sizeof f->state, "%s/state", f->base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->base);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void new_id(char id[SG_LOCK_ID_LEN + 1])
{
    sg_error e;
    assert_int_equal(sg_lock_id_generate(id, &e), SG_OK);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "re");
    if (!fp)
        return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void state_file_path(const fixture *f, char *out, size_t size)
{
    char name[64];
    sgfs_journal_file_name(f->mnt, name, sizeof name);
    snprintf(out, size, "%s/%s", f->state, name);
}

/* What recovery handed over. */
typedef struct recovered {
    size_t n;
    struct {
        char id[SG_LOCK_ID_LEN + 1];
        pid_t pid;
        uint64_t start;
        bool alive;
    } e[16];
} recovered;

static void collect(const char *lock_id, pid_t pid, uint64_t start_time, bool alive, void *ud)
{
    recovered *r = ud;
    assert_true(r->n < 16);
    snprintf(r->e[r->n].id, sizeof r->e[r->n].id, "%s", lock_id);
    r->e[r->n].pid = pid;
    r->e[r->n].start = start_time;
    r->e[r->n].alive = alive;
    r->n++;
}

static int find(const recovered *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->e[i].id, id))
            return (int)i;
    return -1;
}

/* ---- state directory and file safety ---- */

static void state_dir_is_created_private_and_clean_close_unlinks(void **state)
{
    fixture *f = *state;
    sgfs_journal *j;
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), 0);
    struct stat st;
    assert_int_equal(lstat(f->state, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    char path[512];
    state_file_path(f, path, sizeof path);
    assert_string_equal(sgfs_journal_path(j), path);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char header[512];
    snprintf(header, sizeof header, "#syncguardfs pid=%d mount=%s\n", (int)getpid(), f->mnt);
    assert_string_equal(slurp(path), header);
    char id[SG_LOCK_ID_LEN + 1];
    new_id(id);
    sgfs_journal_held(j, id, getpid(), 1);
    sgfs_journal_released(j, id);
    assert_int_equal(sgfs_journal_count(j), 0);
    sgfs_journal_close(j);
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
    sgfs_journal_close(NULL);
}

static void file_name_is_sha256_of_the_mountpoint(void **state)
{
    (void)state;
    char name[64];
    /* same name as the first wave's daemon: first 16 hex of SHA-256("/mnt") */
    sgfs_journal_file_name("/mnt", name, sizeof name);
    assert_string_equal(name, "mount-fdeace0c97c37e43.state");
    char other[64];
    sgfs_journal_file_name("/mnt2", other, sizeof other);
    assert_string_not_equal(name, other);
}

static void expect_refused(fixture *f, const char *dir, int err, const char *words)
{
    sgfs_journal *j = (sgfs_journal *)1;
    assert_int_equal(sgfs_journal_open(dir, f->mnt, &j, f->why, sizeof f->why), -err);
    assert_null(j);
    if (!strstr(f->why, words))
        fail_msg("reason \"%s\" lacks \"%s\"", f->why, words);
}

static void symlinked_state_dir_is_refused(void **state)
{
    fixture *f = *state;
    char real[256], link[256];
    snprintf(real, sizeof real, "%s/real", f->base);
    snprintf(link, sizeof link, "%s/link", f->base);
    assert_int_equal(mkdir(real, 0700), 0);
    assert_int_equal(symlink(real, link), 0);
    expect_refused(f, link, EPERM, "symbolic link");
    char slash[512];
    snprintf(slash, sizeof slash, "%s//", link); /* a trailing '/' must not follow it */
    expect_refused(f, slash, EPERM, "symbolic link");
    char leftover[512];
    char name[64];
    sgfs_journal_file_name(f->mnt, name, sizeof name);
    snprintf(leftover, sizeof leftover, "%s/%s", real, name);
    assert_int_equal(access(leftover, F_OK), -1); /* nothing written through it */
}

static void group_or_world_writable_state_dir_is_refused(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->state, 0700), 0);
    assert_int_equal(chmod(f->state, 0770), 0);
    expect_refused(f, f->state, EPERM, "writable by group or others");
    assert_int_equal(chmod(f->state, 0703), 0);
    expect_refused(f, f->state, EPERM, "writable by group or others");
    assert_int_equal(chmod(f->state, 0755), 0); /* readable is fine */
    sgfs_journal *j;
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), 0);
    sgfs_journal_close(j);
}

static void state_dir_owned_by_another_user_is_refused(void **state)
{
    fixture *f = *state;
    if (geteuid() != 0)
        skip(); /* needs root to give a directory away */
    assert_int_equal(mkdir(f->state, 0700), 0);
    assert_int_equal(chown(f->state, 65534, 65534), 0);
    expect_refused(f, f->state, EPERM, "belongs to uid 65534");
}

static void state_dir_that_is_a_file_is_refused(void **state)
{
    fixture *f = *state;
    int fd = open(f->state, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    expect_refused(f, f->state, EPERM, "not a directory");
}

static void symlink_at_the_state_file_is_not_followed(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->state, 0700), 0);
    char victim[512], path[512];
    snprintf(victim, sizeof victim, "%s/victim", f->base);
    FILE *fp = fopen(victim, "w");
    fputs("precious\n", fp);
    fclose(fp);
    state_file_path(f, path, sizeof path);
    assert_int_equal(symlink(victim, path), 0);
    expect_refused(f, f->state, EPERM, "symbolic link");
    assert_string_equal(slurp(victim), "precious\n");
    /* a dangling one creates nothing at its target either */
    char ghost[512];
    snprintf(ghost, sizeof ghost, "%s/ghost", f->base);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(ghost, path), 0);
    expect_refused(f, f->state, EPERM, "symbolic link");
    assert_int_equal(access(ghost, F_OK), -1);
}

/* ---- one daemon per mountpoint ---- */

static void second_open_of_a_held_mountpoint_is_refused_naming_the_first(void **state)
{
    fixture *f = *state;
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* only the test's ends: if the test dies, read(go) sees EOF */
        close(ready[0]);
        close(go[1]);
        alarm(30);
        sgfs_journal *j;
        char why[512];
        if (sgfs_journal_open(f->state, f->mnt, &j, why, sizeof why) != 0)
            _exit(1);
        char id[SG_LOCK_ID_LEN + 1];
        sg_error e;
        sg_lock_id_generate(id, &e);
        sgfs_journal_held(j, id, getpid(), sgfs_proc_start_time(getpid()));
        char c = 'r';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(2);
        sgfs_journal_released(j, id);
        sgfs_journal_close(j);
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    char path[512];
    state_file_path(f, path, sizeof path);
    char *before = strdup(slurp(path));

    sgfs_journal *j = (sgfs_journal *)1;
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), -EBUSY);
    assert_null(j);
    char want[512];
    snprintf(want, sizeof want, "another syncguardfs (pid %d) serves %s", (int)child, f->mnt);
    if (!strstr(f->why, want))
        fail_msg("reason \"%s\" lacks \"%s\"", f->why, want);
    assert_string_equal(slurp(path), before); /* untouched */
    free(before);

    assert_int_equal(write(go[1], "g", 1), 1);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* the first one is gone: now it opens, with nothing to recover */
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), 0);
    recovered r = {0};
    sgfs_journal_recover(j, collect, &r);
    assert_int_equal(r.n, 0);
    sgfs_journal_close(j);
    close(ready[0]);
    close(go[1]);
}

static void two_journals_in_one_process_exclude_each_other(void **state)
{
    fixture *f = *state;
    sgfs_journal *a, *b;
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &a, f->why, sizeof f->why), 0);
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &b, f->why, sizeof f->why), -EBUSY);
    char want[32];
    snprintf(want, sizeof want, "(pid %d)", (int)getpid());
    assert_non_null(strstr(f->why, want));
    sgfs_journal_close(a);
}

static void regular_file_as_mountpoint_is_refused(void **state)
{
    fixture *f = *state;
    char file[512];
    snprintf(file, sizeof file, "%s/file", f->base);
    int fd = open(file, O_WRONLY | O_CREAT, 0600);
    close(fd);
    sgfs_journal *j = (sgfs_journal *)1;
    assert_int_equal(sgfs_journal_open(f->state, file, &j, f->why, sizeof f->why), -ENOTDIR);
    assert_null(j);
    assert_non_null(strstr(f->why, "is not a directory"));
    snprintf(file, sizeof file, "%s/absent", f->base);
    assert_int_equal(sgfs_journal_open(f->state, file, &j, f->why, sizeof f->why), -ENOENT);
}

/* ---- recovery ---- */

/* A dead process's identity: fork, note its start time, reap it. */
static void dead_identity(pid_t *pid, uint64_t *start)
{
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        pause();
        _exit(0);
    }
    uint64_t st = 0;
    while (!st)
        st = sgfs_proc_start_time(p);
    kill(p, SIGKILL);
    int status;
    assert_int_equal(waitpid(p, &status, 0), p);
    *pid = p;
    *start = st;
}

static void recovery_replays_lines_and_checks_holders(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->state, 0700), 0);
    char a[23], b[23], c[23], d[23], e[23], g[23], h[23];
    new_id(a), new_id(b), new_id(c), new_id(d), new_id(e), new_id(g), new_id(h);
    pid_t me = getpid(), dead;
    uint64_t my_start = sgfs_proc_start_time(me), dead_start;
    dead_identity(&dead, &dead_start);

    char path[512];
    state_file_path(f, path, sizeof path);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "#syncguardfs pid=99999 mount=%s\n", f->mnt);
    fprintf(fp, "+%s %d %" PRIu64 "\n", a, (int)me, my_start);         /* alive */
    fprintf(fp, "+%s %d %" PRIu64 "\n", b, (int)dead, dead_start);     /* gone */
    fprintf(fp, "+%s %d %" PRIu64 "\n", c, (int)me, my_start + 1);     /* pid reused */
    fprintf(fp, "+%s %d %" PRIu64 "\n-%s\n", d, (int)me, my_start, d); /* let go */
    fputs("garbage\n\n+\n-\n+short 1 2\n", fp);
    fprintf(fp, "+%s 12\n", e);                        /* no start time */
    fprintf(fp, "+%s x 2\n", e);                       /* bad pid */
    fprintf(fp, "+%s -5 3\n", e);                      /* negative pid */
    fprintf(fp, "+%s 0 3\n", e);                       /* pid 0 */
    fprintf(fp, "+%s 5 3 extra\n", e);                 /* trailing junk */
    fprintf(fp, "+%s 5 99999999999999999999999\n", e); /* overflow */
    fprintf(fp, "-%s junk\n", a);                      /* not a release of a */
    fputs("+AAAAAAAAAAAAAAAAAAAAA! 1 2\n", fp);        /* not base64url */
    fwrite("+\0\0\0 1 2\n", 1, 9, fp);                 /* NUL bytes */
    fprintf(fp, "+%s 7 8", g);                         /* cut short by a crash */
    fclose(fp);
    (void)h;

    sgfs_journal *j;
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), 0);
    /* until recovered, the file still lists the predecessor's entries */
    assert_non_null(strstr(slurp(path), a));
    recovered r = {0};
    sgfs_journal_recover(j, collect, &r);
    assert_int_equal(r.n, 3);
    int ia = find(&r, a), ib = find(&r, b), ic = find(&r, c);
    assert_true(ia >= 0 && ib >= 0 && ic >= 0);
    assert_true(r.e[ia].alive);
    assert_int_equal(r.e[ia].pid, me);
    assert_int_equal(r.e[ia].start, my_start);
    assert_false(r.e[ib].alive);
    assert_int_equal(r.e[ib].pid, dead);
    assert_int_equal(r.e[ib].start, dead_start);
    assert_false(r.e[ic].alive);
    /* handed over once: the file is ours now, and a second recover finds nothing */
    char header[512];
    snprintf(header, sizeof header, "#syncguardfs pid=%d mount=%s\n", (int)me, f->mnt);
    assert_string_equal(slurp(path), header);
    recovered again = {0};
    sgfs_journal_recover(j, collect, &again);
    assert_int_equal(again.n, 0);
    sgfs_journal_close(j);
}

static void a_crashed_daemons_locks_are_recovered(void **state)
{
    fixture *f = *state;
    char a[23], b[23];
    new_id(a), new_id(b);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        sgfs_journal *j;
        char why[512];
        if (sgfs_journal_open(f->state, f->mnt, &j, why, sizeof why) != 0)
            _exit(1);
        sgfs_journal_held(j, a, getpid(), sgfs_proc_start_time(getpid()));
        sgfs_journal_held(j, b, getpid(), sgfs_proc_start_time(getpid()));
        sgfs_journal_released(j, b);
        _exit(0); /* a crash: no close, the kernel drops the lock */
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(WEXITSTATUS(status), 0);
    sgfs_journal *j;
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), 0);
    recovered r = {0};
    sgfs_journal_recover(j, collect, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.e[0].id, a);
    assert_int_equal(r.e[0].pid, child);
    assert_false(r.e[0].alive);
    sgfs_journal_close(j);
}

static void close_with_locks_still_held_keeps_them_for_the_successor(void **state)
{
    fixture *f = *state;
    char a[23];
    new_id(a);
    uint64_t my_start = sgfs_proc_start_time(getpid());
    sgfs_journal *j;
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), 0);
    sgfs_journal_held(j, a, getpid(), my_start);
    sgfs_journal_close(j);
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), 0);
    recovered r = {0};
    sgfs_journal_recover(j, collect, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.e[0].id, a);
    assert_true(r.e[0].alive); /* its holder (this test) still runs */
    sgfs_journal_close(j);
    char path[512];
    state_file_path(f, path, sizeof path);
    assert_int_equal(access(path, F_OK), -1);
}

static void compaction_keeps_exactly_the_held_set(void **state)
{
    fixture *f = *state;
    char a[23], b[23], c[23], x[23];
    new_id(a), new_id(b), new_id(c);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        sgfs_journal *j;
        char why[512];
        if (sgfs_journal_open(f->state, f->mnt, &j, why, sizeof why) != 0)
            _exit(1);
        sgfs_journal_held(j, a, 11, 111);
        sgfs_journal_held(j, b, 22, 222);
        sgfs_journal_held(j, c, 33, 333);
        for (int i = 0; i < 3000; i++) {
            new_id(x);
            sgfs_journal_held(j, x, 44, 444);
            sgfs_journal_released(j, x);
        }
        sgfs_journal_released(j, b);
        sgfs_journal_held(j, c, 34, 334); /* a new holder for c */
        _exit(sgfs_journal_count(j) == 2 ? 0 : 3);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(WEXITSTATUS(status), 0);
    char path[512];
    state_file_path(f, path, sizeof path);
    size_t lines = count_lines(slurp(path));
    if (lines > 1100) /* 6000+ without compaction */
        fail_msg("state file has %zu lines", lines);
    sgfs_journal *j;
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), 0);
    /* the open rewrote it as header + the predecessor's held set */
    assert_int_equal(count_lines(slurp(path)), 3);
    recovered r = {0};
    sgfs_journal_recover(j, collect, &r);
    assert_int_equal(r.n, 2);
    int ia = find(&r, a), ic = find(&r, c);
    assert_true(ia >= 0 && ic >= 0);
    assert_int_equal(r.e[ia].pid, 11);
    assert_int_equal(r.e[ia].start, 111);
    assert_int_equal(r.e[ic].pid, 34);
    assert_int_equal(r.e[ic].start, 334);
    sgfs_journal_close(j);
}

typedef struct worker {
    sgfs_journal *j;
    int keep;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    char id[23];
    for (int i = 0; i < 800; i++) {
        new_id(id);
        sgfs_journal_held(w->j, id, getpid(), 1);
        if (i >= w->keep)
            sgfs_journal_released(w->j, id);
    }
    return NULL;
}

static void many_threads_record_concurrently(void **state)
{
    fixture *f = *state;
    sgfs_journal *j;
    assert_int_equal(sgfs_journal_open(f->state, f->mnt, &j, f->why, sizeof f->why), 0);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){j, 5};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(sgfs_journal_count(j), 20);
    /* every line in the file is whole */
    char path[512];
    snprintf(path, sizeof path, "%s", sgfs_journal_path(j));
    const char *text = slurp(path);
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        char id[23], tail;
        int pid;
        uint64_t start;
        bool whole =
            p[0] == '#' || (p[0] == '-' && len == 23) ||
            (p[0] == '+' && sscanf(p, "+%22s %d %" SCNu64 "%c", id, &pid, &start, &tail) == 4 &&
             tail == '\n');
        if (!whole)
            fail_msg("torn line: %.*s", (int)len, p);
        p += len + (p[len] == '\n');
    }
    sgfs_journal_close(j);
}

/* Runs as nobody in a child: the non-root default directories. */
static void non_root_defaults_prefer_xdg_runtime_dir(void **state)
{
    fixture *f = *state;
    if (geteuid() != 0)
        skip(); /* needs root to become another user */
    assert_int_equal(chmod(f->base, 0755), 0);
    char xdg[256];
    snprintf(xdg, sizeof xdg, "%s/xdg", f->base);
    assert_int_equal(mkdir(xdg, 0700), 0);
    assert_int_equal(chown(xdg, 65534, 65534), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        char why[512], want[512];
        sgfs_journal *j;
        setenv("XDG_RUNTIME_DIR", xdg, 1);
        if (sgfs_journal_open(NULL, f->mnt, &j, why, sizeof why) != 0)
            _exit(11);
        snprintf(want, sizeof want, "%s/syncguardfs/", xdg);
        if (strncmp(sgfs_journal_path(j), want, strlen(want)))
            _exit(12);
        sgfs_journal_close(j);
        unsetenv("XDG_RUNTIME_DIR");
        if (sgfs_journal_open(NULL, f->mnt, &j, why, sizeof why) != 0)
            _exit(13);
        if (strncmp(sgfs_journal_path(j), "/tmp/syncguardfs-65534/", 23))
            _exit(14);
        sgfs_journal_close(j);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    rmdir("/tmp/syncguardfs-65534");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void planted_tmp_default_is_refused(void **state)
{
    fixture *f = *state;
    if (geteuid() != 0)
        skip();
    assert_int_equal(chmod(f->base, 0755), 0);
    /* "another user" (root here) plants /tmp/syncguardfs-65534 before nobody runs */
    rmdir("/tmp/syncguardfs-65534");
    assert_int_equal(mkdir("/tmp/syncguardfs-65534", 0755), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        unsetenv("XDG_RUNTIME_DIR");
        char why[512];
        sgfs_journal *j;
        int rc = sgfs_journal_open(NULL, f->mnt, &j, why, sizeof why);
        _exit(rc == -EPERM && strstr(why, "belongs to uid 0") ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    rmdir("/tmp/syncguardfs-65534");
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- mountinfo ---- */

static void mountinfo_finds_syncguardfs_mounts_only(void **state)
{
    (void)state;
    const char *mi =
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:35 / /mnt/locks rw,nosuid,nodev,relatime shared:20 - fuse.syncguardfs "
        "redis://h:6379 rw,user_id=0,group_id=0,default_permissions\n"
        "41 22 0:36 / /mnt/ssh rw,relatime - fuse.sshfs u@h: rw\n"
        "42 22 0:37 / /mnt/plain rw - fuse syncguardfs rw\n"
        "43 22 0:38 / /mnt/two rw shared:3 master:4 propagate_from:5 - fuse.syncguardfs x rw\n";
    assert_true(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/locks"));
    assert_true(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/two")); /* several optional fields */
    assert_false(sgfs_mountinfo_has_syncguardfs(mi, "/mnt"));
    assert_false(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/locks/"));
    assert_false(sgfs_mountinfo_has_syncguardfs(mi, "/"));
    assert_false(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/ssh"));
    assert_false(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/plain"));
    assert_false(sgfs_mountinfo_has_syncguardfs("", "/mnt/locks"));
}

static void mountinfo_decodes_octal_escapes(void **state)
{
    (void)state;
    const char *mi = "50 22 0:40 / /mnt/my\\040locks rw - fuse.syncguardfs u rw\n"
                     "51 22 0:41 / /mnt/tab\\011x rw - fuse.syncguardfs u rw\n"
                     "52 22 0:42 / /mnt/back\\134slash rw - fuse.syncguardfs u rw\n"
                     "53 22 0:43 / /mnt/nl\\012x rw - fuse.syncguardfs u rw\n"
                     "54 22 0:44 / /a\\040-\\040b rw - ext4 /dev/x rw\n"
                     "55 22 0:45 / /mnt/raw\\9 rw - fuse.syncguardfs u rw";
    assert_true(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/my locks"));
    assert_false(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/my\\040locks"));
    assert_true(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/tab\tx"));
    assert_true(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/back\\slash"));
    assert_true(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/nl\nx"));
    assert_false(sgfs_mountinfo_has_syncguardfs(mi, "/a - b")); /* ext4 */
    /* not an escape: kept as is; last line without '\n' still read */
    assert_true(sgfs_mountinfo_has_syncguardfs(mi, "/mnt/raw\\9"));
}

static void mountinfo_survives_malformed_lines(void **state)
{
    (void)state;
    const char *mi = "garbage\n"
                     "1 2 3\n"
                     "36 35 98:0 / /x rw\n"
                     "36 35 98:0 / /x rw shared:1 -\n"
                     "36 35 98:0 / /y - fuse.syncguardfs\n" /* '-' too early: no opts */
                     "\n\n";
    assert_false(sgfs_mountinfo_has_syncguardfs(mi, "/x"));
    assert_false(sgfs_mountinfo_has_syncguardfs(mi, "/y"));
    char big[70000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "1 2 3:4 / /", 11);
    assert_false(sgfs_mountinfo_has_syncguardfs(big, "/aaa"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(state_dir_is_created_private_and_clean_close_unlinks),
        T(file_name_is_sha256_of_the_mountpoint),
        T(symlinked_state_dir_is_refused),
        T(group_or_world_writable_state_dir_is_refused),
        T(state_dir_owned_by_another_user_is_refused),
        T(state_dir_that_is_a_file_is_refused),
        T(symlink_at_the_state_file_is_not_followed),
        T(second_open_of_a_held_mountpoint_is_refused_naming_the_first),
        T(two_journals_in_one_process_exclude_each_other),
        T(regular_file_as_mountpoint_is_refused),
        T(recovery_replays_lines_and_checks_holders),
        T(a_crashed_daemons_locks_are_recovered),
        T(close_with_locks_still_held_keeps_them_for_the_successor),
        T(compaction_keeps_exactly_the_held_set),
        T(many_threads_record_concurrently),
        T(non_root_defaults_prefer_xdg_runtime_dir),
        T(planted_tmp_default_is_refused),
        cmocka_unit_test(mountinfo_finds_syncguardfs_mounts_only),
        cmocka_unit_test(mountinfo_decodes_octal_escapes),
        cmocka_unit_test(mountinfo_survives_malformed_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
