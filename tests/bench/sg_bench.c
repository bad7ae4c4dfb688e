/* sg_bench.c — benchmarks (not tests): ops/s and p50/p99 per operation.
 *   sg_bench lib URL SECONDS          acquire+release cycles, extend, 4-thread contention
 *   sg_bench count URL N              N acquire+extend+release (count syscalls)
 *   sg_bench fs URL MOUNT SECONDS     mount cycles (open+flock+close, counted once the
 *                                     release is visible to another client), exists
 *                                     checks, and the library cycle in the same run
 *   sg_bench conc URL N SECONDS       N threads, each cycling acquire+release on its
 *                                     own key (N operations in flight, one backend)
 *   sg_bench fsconc URL MOUNT P SECONDS
 *                                     P client processes cycling on distinct keys through
 *                                     one mount (each cycle counted once its release is
 *                                     visible to that process's own backend client)
 *   sg_bench handoff-lib URL N        N handoffs between two processes (each its own
 *                                     backend handle), waiter in sg_acquire_retry with
 *                                     the mount's defaults (100 ms doubling, cap 1 s)
 *   sg_bench handoff-fs MOUNT_A MOUNT_B N
 *                                     N handoffs: holder's close() on A returning → a
 *                                     flock(LOCK_EX) parked on B returning (A = B: same
 *                                     mount)
 * Handoff latency: CLOCK_MONOTONIC from the holder letting go to the waiter
 * holding, both on this machine.
 * Output: one line per measurement, "name ops/s p50_us p99_us". */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "syncguard.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct samples {
    int64_t *v;
    size_t n, cap;
} samples;

static void add(samples *s, int64_t ns)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            abort();
    }
    s->v[s->n++] = ns;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(samples *s, double p)
{
    if (!s->n)
        return 0;
    qsort(s->v, s->n, sizeof *s->v, cmp64);
    size_t i = (size_t)(p * (double)(s->n - 1));
    return (double)s->v[i] / 1000.0;
}

static void report(const char *name, size_t ops, double secs, samples *lat)
{
    printf("%-22s %10.0f ops/s  p50 %8.1f us  p99 %8.1f us\n", name, (double)ops / secs,
           lat ? pct(lat, 0.50) : 0, lat ? pct(lat, 0.99) : 0);
    fflush(stdout);
}

static void die(const char *what, const sg_error *e)
{
    fprintf(stderr, "sg_bench: %s: %s\n", what, e ? e->message : "");
    exit(1);
}

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void lib_cycles(sg_backend *b, double secs, const char *label)
{
    double cpu0 = cpu_us();
    samples acq = {0}, rel = {0}, cyc = {0};
    sg_error err;
    char key[64];
    snprintf(key, sizeof key, "bench-%d", getpid());
    int64_t end = now_ns() + (int64_t)(secs * 1e9), t0 = now_ns();
    size_t n = 0;
    while (now_ns() < end) {
        sg_lock lock;
        int64_t a = now_ns();
        if (sg_acquire(b, key, 30000, &lock, &err) != SG_OK)
            die("acquire", &err);
        int64_t r = now_ns();
        if (sg_release(b, lock.lock_id, &err) != SG_OK)
            die("release", &err);
        int64_t z = now_ns();
        add(&acq, r - a);
        add(&rel, z - r);
        add(&cyc, z - a);
        n++;
    }
    double el = (double)(now_ns() - t0) / 1e9;
    char name[64];
    snprintf(name, sizeof name, "%s cycle", label);
    report(name, n, el, &cyc);
    report("  acquire", n, el, &acq);
    report("  release", n, el, &rel);
    printf("  client CPU per cycle: %.1f us (user+sys)\n", (cpu_us() - cpu0) / (double)n);
    free(acq.v), free(rel.v), free(cyc.v);
}

static void lib_extend(sg_backend *b, double secs)
{
    samples ext = {0};
    sg_error err;
    sg_lock lock;
    char key[64];
    snprintf(key, sizeof key, "bench-ext-%d", getpid());
    if (sg_acquire(b, key, 30000, &lock, &err) != SG_OK)
        die("acquire", &err);
    int64_t end = now_ns() + (int64_t)(secs * 1e9), t0 = now_ns();
    size_t n = 0;
    while (now_ns() < end) {
        int64_t a = now_ns();
        if (sg_extend(b, lock.lock_id, 30000, NULL, &err) != SG_OK)
            die("extend", &err);
        add(&ext, now_ns() - a);
        n++;
    }
    report("extend", n, (double)(now_ns() - t0) / 1e9, &ext);
    sg_release(b, lock.lock_id, &err);
    free(ext.v);
}

static sg_backend *shared;
static atomic_int inside, overlap;
static long counter;
static void *contender(void *arg)
{
    (void)arg;
    sg_acquire_opts o = {.timeout_ms = 60000, .max_retries = 1000000, .retry_delay_ms = 1,
                         .max_delay_ms = 10};
    for (int i = 0; i < 200; i++) {
        sg_lock lock;
        sg_error err;
        if (sg_acquire_retry(shared, "bench-contention", 30000, &o, &lock, &err) != SG_OK)
            die("contention acquire", &err);
        if (atomic_fetch_add(&inside, 1) != 0)
            atomic_fetch_add(&overlap, 1);
        long v = counter;
        usleep(1000);
        counter = v + 1;
        atomic_fetch_sub(&inside, 1);
        sg_release(shared, lock.lock_id, &err);
    }
    return NULL;
}

static void lib_contention(sg_backend *b)
{
    shared = b;
    pthread_t t[4];
    int64_t t0 = now_ns();
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, contender, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("contention 4x200 (1 ms sections): %.2f s wall, counter %ld/800, overlaps %d\n",
           (double)(now_ns() - t0) / 1e9, counter, atomic_load(&overlap));
}

static void fs_cycles(sg_backend *b, const char *mount, double secs)
{
    char path[4096], key[64];
    snprintf(key, sizeof key, "bench-fs-%d", getpid());
    snprintf(path, sizeof path, "%s/locks/%s", mount, key);
    samples cyc = {0};
    sg_error err;
    int64_t end = now_ns() + (int64_t)(secs * 1e9), t0 = now_ns();
    size_t n = 0, polls = 0;
    while (now_ns() < end) {
        int64_t a = now_ns();
        int fd = open(path, O_RDONLY | O_CREAT, 0666); /* what flock(1) does */
        if (fd < 0 || flock(fd, LOCK_EX) != 0) {
            perror("open/flock");
            exit(1);
        }
        close(fd);
        /* a cycle counts once another client sees the release */
        for (;;) {
            bool locked = true;
            if (sg_is_locked(b, key, &locked, &err) != SG_OK)
                die("is_locked", &err);
            if (!locked)
                break;
            polls++;
        }
        add(&cyc, now_ns() - a);
        n++;
    }
    report("mount cycle", n, (double)(now_ns() - t0) / 1e9, &cyc);
    printf("  (extra visibility polls: %zu)\n", polls);
    free(cyc.v);

    /* exists checks of a held lock */
    int fd = open(path, O_RDWR | O_CREAT, 0666);
    if (fd < 0) {
        perror("open");
        exit(1);
    }
    samples st = {0};
    end = now_ns() + (int64_t)(secs * 1e9);
    t0 = now_ns();
    n = 0;
    while (now_ns() < end) {
        struct stat sb;
        int64_t a = now_ns();
        if (stat(path, &sb) != 0) {
            perror("stat");
            exit(1);
        }
        add(&st, now_ns() - a);
        n++;
    }
    report("exists check (stat)", n, (double)(now_ns() - t0) / 1e9, &st);
    close(fd);
    free(st.v);
}


/* ---- N in flight: threads on distinct keys, one shared backend ---- */
typedef struct conc_arg {
    sg_backend *b;
    int idx;
    int64_t end;
    size_t n, errors;
    samples cyc;
} conc_arg;

static void *conc_worker(void *arg)
{
    conc_arg *a = arg;
    char key[64];
    snprintf(key, sizeof key, "bench-conc-%d-%d", getpid(), a->idx);
    while (now_ns() < a->end) {
        sg_lock lock;
        sg_error err;
        int64_t t = now_ns();
        if (sg_acquire(a->b, key, 30000, &lock, &err) != SG_OK) {
            if (a->errors++ < 3)
                fprintf(stderr, "sg_bench: acquire: %s\n", err.message);
            continue;
        }
        if (sg_release(a->b, lock.lock_id, &err) != SG_OK && a->errors++ < 3)
            fprintf(stderr, "sg_bench: release: %s\n", err.message);
        add(&a->cyc, now_ns() - t);
        a->n++;
    }
    return NULL;
}

static void lib_concurrent(sg_backend *b, int n, double secs, bool print)
{
    conc_arg *a = calloc((size_t)n, sizeof *a);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    if (!a || !t)
        abort();
    double cpu0 = cpu_us();
    int64_t t0 = now_ns(), end = t0 + (int64_t)(secs * 1e9);
    for (int i = 0; i < n; i++) {
        a[i] = (conc_arg){.b = b, .idx = i, .end = end};
        if (pthread_create(&t[i], NULL, conc_worker, &a[i]) != 0)
            abort();
    }
    samples all = {0};
    size_t total = 0, errors = 0, slowest = (size_t)-1;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        for (size_t j = 0; j < a[i].cyc.n; j++)
            add(&all, a[i].cyc.v[j]);
        total += a[i].n;
        errors += a[i].errors;
        slowest = a[i].n < slowest ? a[i].n : slowest;
        free(a[i].cyc.v);
    }
    double el = (double)(now_ns() - t0) / 1e9;
    char name[64];
    snprintf(name, sizeof name, "concurrent %d cycle", n);
    if (print)
        report(name, total, el, &all);
    if (print)
        printf("  errors %zu, fewest cycles of one thread %zu (of %.0f mean), client CPU per "
           "cycle %.1f us\n",
           errors, slowest, (double)total / n, (cpu_us() - cpu0) / (double)(total ? total : 1));
    free(all.v), free(a), free(t);
}

/* ---- P processes through one mount ---- */
static void fs_concurrent(const char *url, const char *mount, int procs, double secs)
{
    /* per process: cycles, then latencies (ns) into a shared map */
    size_t cap = 1u << 20;
    size_t per = cap / (size_t)procs;
    int64_t *shm = mmap(NULL, (cap + (size_t)procs) * sizeof(int64_t), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED)
        abort();
    int64_t t0 = now_ns(), end = t0 + (int64_t)(secs * 1e9);
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0)
            abort();
        if (pid)
            continue;
        sg_backend *b;
        sg_error err;
        if (sg_backend_open(url, NULL, &b, &err) != SG_OK)
            die("open", &err);
        char path[4096], key[64];
        snprintf(key, sizeof key, "bench-fsc-%d-%d", getppid(), p);
        snprintf(path, sizeof path, "%s/locks/%s", mount, key);
        int64_t *lat = shm + procs + (size_t)p * per, n = 0;
        /* SG_BENCH_FS_FLOCK=1: flock/LOCK_UN on a descriptor kept open (no
         * CREATE, so no directory lock in the kernel) instead of open+close */
        int keep = getenv("SG_BENCH_FS_FLOCK") ? open(path, O_RDWR | O_CREAT, 0666) : -1;
        if (keep >= 0)
            flock(keep, LOCK_UN);
        while (now_ns() < end) {
            int64_t a = now_ns();
            if (keep >= 0) {
                if (flock(keep, LOCK_EX) != 0 || flock(keep, LOCK_UN) != 0) {
                    perror("flock");
                    _exit(1);
                }
            } else {
                int fd = open(path, O_RDONLY | O_CREAT, 0666);
                if (fd < 0 || flock(fd, LOCK_EX) != 0) {
                    perror("open/flock");
                    _exit(1);
                }
                close(fd);
            }
            for (;;) { /* a cycle counts once another client sees the release */
                bool locked = true;
                if (sg_is_locked(b, key, &locked, &err) != SG_OK)
                    die("is_locked", &err);
                if (!locked)
                    break;
            }
            if ((size_t)n < per)
                lat[n] = now_ns() - a;
            n++;
        }
        shm[p] = n;
        sg_backend_close(b);
        _exit(0);
    }
    int bad = 0;
    for (int p = 0; p < procs; p++) {
        int ws;
        if (wait(&ws) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws))
            bad++;
    }
    double el = (double)(now_ns() - t0) / 1e9;
    samples all = {0};
    size_t total = 0;
    for (int p = 0; p < procs; p++) {
        total += (size_t)shm[p];
        for (int64_t j = 0; j < shm[p] && (size_t)j < per; j++)
            add(&all, shm[procs + (size_t)p * per + (size_t)j]);
    }
    char name[64];
    snprintf(name, sizeof name, "mount %d procs cycle", procs);
    report(name, total, el, &all);
    if (bad)
        printf("  %d client processes failed\n", bad);
    free(all.v);
    munmap(shm, (cap + (size_t)procs) * sizeof(int64_t));
}

/* ---- handoff: two processes, shared stamps ---- */
#include <sys/mman.h>
#include <sys/wait.h>

typedef struct handoff_shm {
    atomic_int round;   /* the holder holds round r: the waiter may start waiting */
    atomic_int done;    /* the waiter finished round r */
    int64_t let_go[100000], got[100000];
} handoff_shm;

static handoff_shm *shm_new(void)
{
    handoff_shm *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return sh;
}

static void spin_until(atomic_int *v, int want)
{
    while (atomic_load(v) < want)
        usleep(50);
}

static void handoff_report(const char *name, handoff_shm *sh, int n)
{
    samples s = {0};
    for (int i = 1; i <= n; i++) {
        int64_t d = sh->got[i] - sh->let_go[i];
        add(&s, d < 0 ? 0 : d); /* the waiter may return before the holder's call does */
    }
    printf("%-34s n=%d  p50 %8.1f us  p99 %8.1f us  max %8.1f us\n", name, n, pct(&s, 0.5),
           pct(&s, 0.99), pct(&s, 1.0));
    fflush(stdout);
    free(s.v);
}

/* How long the holder keeps the lock after the waiter started: SG_BENCH_HOLD_MS,
 * "MS" or "MIN-MAX" (uniform; default 20-300), so a polling waiter is caught
 * anywhere in its backoff rather than always right after its first attempt. */
static void hold(void)
{
    static int lo = -1, hi;
    if (lo < 0) {
        const char *e = getenv("SG_BENCH_HOLD_MS");
        if (!e || sscanf(e, "%d-%d", &lo, &hi) < 1)
            lo = 20, hi = 300;
        else if (hi < lo)
            hi = lo;
    }
    usleep((useconds_t)(lo + (hi > lo ? rand() % (hi - lo + 1) : 0)) * 1000);
}

static sg_acquire_opts mount_like_opts(void)
{
    return (sg_acquire_opts){.timeout_ms = 60000, .max_retries = 1000000, .retry_delay_ms = 100,
                             .max_delay_ms = 1000};
}

static void handoff_lib(const char *url, int n)
{
    handoff_shm *sh = shm_new();
    char key[64];
    snprintf(key, sizeof key, "bench-handoff-%d", getpid());
    pid_t child = fork();
    sg_backend *b;
    sg_error err;
    if (sg_backend_open(url, NULL, &b, &err) != SG_OK)
        die("open", &err);
    sg_acquire_opts o = mount_like_opts();
    if (child == 0) { /* the waiter */
        for (int r = 1; r <= n; r++) {
            spin_until(&sh->round, r);
            sg_lock lock;
            if (sg_acquire_retry(b, key, 30000, &o, &lock, &err) != SG_OK)
                die("waiter acquire", &err);
            sh->got[r] = now_ns();
            sg_release(b, lock.lock_id, &err);
            atomic_store(&sh->done, r);
        }
        sg_backend_close(b);
        _exit(0);
    }
    for (int r = 1; r <= n; r++) {
        sg_lock lock;
        if (sg_acquire_retry(b, key, 30000, &o, &lock, &err) != SG_OK)
            die("holder acquire", &err);
        atomic_store(&sh->round, r);
        hold(); /* the waiter tries, finds it held, waits */
        if (sg_release(b, lock.lock_id, &err) != SG_OK)
            die("holder release", &err);
        sh->let_go[r] = now_ns();
        spin_until(&sh->done, r);
    }
    waitpid(child, NULL, 0);
    sg_backend_close(b);
    handoff_report("handoff library (2 processes)", sh, n);
}

static int open_lock(const char *mount, const char *key)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/locks/%s", mount, key);
    int fd = open(path, O_RDONLY | O_CREAT, 0666);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    return fd;
}

static void handoff_fs(const char *ma, const char *mb, int n)
{
    handoff_shm *sh = shm_new();
    char key[64];
    snprintf(key, sizeof key, "bench-fs-handoff-%d", getpid());
    pid_t child = fork();
    if (child == 0) { /* the waiter, on mount B */
        for (int r = 1; r <= n; r++) {
            spin_until(&sh->round, r);
            int fd = open_lock(mb, key);
            if (flock(fd, LOCK_EX) != 0) {
                perror("waiter flock");
                _exit(1);
            }
            sh->got[r] = now_ns();
            close(fd);
            atomic_store(&sh->done, r);
        }
        _exit(0);
    }
    for (int r = 1; r <= n; r++) {
        int fd = open_lock(ma, key);
        if (flock(fd, LOCK_EX) != 0) { /* the waiter's last close may still be on its way */
            perror("holder flock");
            exit(1);
        }
        atomic_store(&sh->round, r);
        hold();
        close(fd);
        sh->let_go[r] = now_ns();
        spin_until(&sh->done, r);
    }
    waitpid(child, NULL, 0);
    handoff_report(strcmp(ma, mb) ? "handoff mount, cross-mount" : "handoff mount, same mount",
                   sh, n);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "handoff-lib")) {
        handoff_lib(argv[2], atoi(argv[3]) > 99999 ? 99999 : atoi(argv[3]));
        return 0;
    }
    if (argc >= 5 && !strcmp(argv[1], "handoff-fs")) {
        handoff_fs(argv[2], argv[3], atoi(argv[4]) > 99999 ? 99999 : atoi(argv[4]));
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: sg_bench lib URL SECONDS | sg_bench fs URL MOUNT SECONDS\n");
        return 2;
    }
    if (!strcmp(argv[1], "fsconc") && argc >= 6) {
        fs_concurrent(argv[2], argv[3], atoi(argv[4]), atof(argv[5]));
        return 0;
    }
    sg_backend *b;
    sg_error err;
    if (sg_backend_open(argv[2], NULL, &b, &err) != SG_OK)
        die("open", &err);
    if (!strcmp(argv[1], "lib")) {
        double secs = atof(argv[3]);
        lib_cycles(b, secs, "library");
        lib_extend(b, secs);
        lib_contention(b);
    } else if (!strcmp(argv[1], "count")) {
        /* N acquire + extend + release, for counting round trips with strace */
        int n = atoi(argv[3]);
        for (int i = 0; i < n; i++) {
            sg_lock lock;
            if (sg_acquire(b, "bench-count", 30000, &lock, &err) != SG_OK ||
                sg_extend(b, lock.lock_id, 30000, NULL, &err) != SG_OK ||
                sg_release(b, lock.lock_id, &err) != SG_OK)
                die("count", &err);
        }
    } else if (!strcmp(argv[1], "conc") && argc >= 5) {
        /* a short warm-up opens the pool's connections before timing */
        lib_concurrent(b, atoi(argv[3]), 0.5, false);
        lib_concurrent(b, atoi(argv[3]), atof(argv[4]), true);
    } else if (!strcmp(argv[1], "fs") && argc >= 5) {
        double secs = atof(argv[4]);
        fs_cycles(b, argv[3], secs);
        lib_cycles(b, secs, "library");
    } else {
        return 2;
    }
    sg_backend_close(b);
    return 0;
}
