/* sg_wait_bench.c — waiting through mounts (benchmarks, not tests).
 *   sg_wait_bench fair KEY SECONDS CONTENDERS MOUNT...
 *       CONTENDERS processes per mount loop on one key: open(O_CREAT) +
 *       flock(LOCK_EX), hold 2 ms (SG_BENCH_HOLD_US), close. Prints the
 *       acquisitions of every contender, per mount, and the waits (from the
 *       open to the flock returning): p50, p99, max.
 *   sg_wait_bench parked URL MOUNT N SECONDS
 *       holds N keys through the library (TTL 10 min, no renewals), parks one
 *       flock(LOCK_EX) per key on MOUNT (one thread each), and after they are
 *       parked measures the mount's daemon over SECONDS: CPU (utime+stime from
 *       /proc/PID/stat), RSS, and its TCP connections, next to the same figures
 *       for the idle daemon just before. Then releases the keys and checks
 *       every waiter got its lock.
 * Times: CLOCK_MONOTONIC on this machine. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "syncguard.h"

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void lock_path(char *out, size_t n, const char *mount, const char *key)
{
    snprintf(out, n, "%s/locks/%s", mount, key);
}

/* ---- fair ---- */
#define MAX_WAITS 200000

typedef struct contender {
    int64_t acquisitions, max_wait_us, errors;
} contender;

typedef struct fair_shm {
    atomic_int go;
    atomic_long nwaits;
    contender c[256];
    int64_t waits[MAX_WAITS];
} fair_shm;

static void contend(fair_shm *sh, int idx, const char *mount, const char *key, int64_t end,
                    int hold_us)
{
    char path[4096];
    lock_path(path, sizeof path, mount, key);
    while (!atomic_load(&sh->go))
        usleep(100);
    contender *c = &sh->c[idx];
    while (now_us() < end) {
        int64_t t0 = now_us();
        int fd = open(path, O_RDONLY | O_CREAT, 0666);
        if (fd < 0 || flock(fd, LOCK_EX) != 0) {
            if (c->errors++ < 3)
                fprintf(stderr, "sg_wait_bench: %s: %s\n", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            usleep(10000);
            continue;
        }
        int64_t w = now_us() - t0;
        c->acquisitions++;
        c->max_wait_us = w > c->max_wait_us ? w : c->max_wait_us;
        long i = atomic_fetch_add(&sh->nwaits, 1);
        if (i < MAX_WAITS)
            sh->waits[i] = w;
        usleep((useconds_t)hold_us);
        close(fd); /* the last close releases */
    }
}

static int fair(const char *key, double secs, int per, int nmounts, char **mounts)
{
    int n = per * nmounts;
    if (n < 1 || n > 256)
        return fprintf(stderr, "sg_wait_bench: 1..256 contenders\n"), 2;
    const char *h = getenv("SG_BENCH_HOLD_US");
    int hold_us = h ? atoi(h) : 2000;
    fair_shm *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return perror("mmap"), 1;
    int64_t end = now_us() + 300000 + (int64_t)(secs * 1e6);
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0)
            return perror("fork"), 1;
        if (p == 0) {
            contend(sh, i, mounts[i / per], key, end, hold_us);
            _exit(0);
        }
    }
    usleep(300000);
    atomic_store(&sh->go, 1);
    while (wait(NULL) > 0)
        ;
    long nw = atomic_load(&sh->nwaits);
    nw = nw > MAX_WAITS ? MAX_WAITS : nw;
    qsort(sh->waits, (size_t)nw, sizeof sh->waits[0], cmp64);
    int64_t total = 0, lo = -1, hi = 0, maxw = 0, errors = 0;
    for (int i = 0; i < n; i++) {
        contender *c = &sh->c[i];
        total += c->acquisitions, errors += c->errors;
        lo = lo < 0 || c->acquisitions < lo ? c->acquisitions : lo;
        hi = c->acquisitions > hi ? c->acquisitions : hi;
        maxw = c->max_wait_us > maxw ? c->max_wait_us : maxw;
    }
    printf("fairness: %d mounts x %d contenders, %.0f s, hold %d us: %lld acquisitions "
           "(%.0f/s), errors %lld\n",
           nmounts, per, secs, hold_us, (long long)total, (double)total / secs,
           (long long)errors);
    for (int m = 0; m < nmounts; m++) {
        int64_t sum = 0;
        printf("  mount %d:", m + 1);
        for (int i = m * per; i < (m + 1) * per; i++) {
            sum += sh->c[i].acquisitions;
            printf(" %lld", (long long)sh->c[i].acquisitions);
        }
        printf("  (sum %lld, %.1f %%)\n", (long long)sum, total ? 100.0 * (double)sum / (double)total : 0);
    }
    /* Jain's index: 1 = every contender got the same share, 1/n = one got all */
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++)
        s += (double)sh->c[i].acquisitions, s2 += (double)sh->c[i].acquisitions * (double)sh->c[i].acquisitions;
    printf("  per contender min %lld max %lld, Jain's fairness index %.3f\n", (long long)lo,
           (long long)hi, s2 > 0 ? s * s / ((double)n * s2) : 0);
    if (nw)
        printf("  wait p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", (double)sh->waits[nw / 2] / 1e3,
               (double)sh->waits[(size_t)((double)(nw - 1) * 0.99)] / 1e3, (double)maxw / 1e3);
    return errors ? 1 : 0;
}

/* ---- parked ---- */
typedef struct proc_stat {
    double cpu_s;
    long rss_kb;
    int tcp;
} proc_stat;

static pid_t daemon_of(const char *mount)
{
    /* the syncguardfs whose argv names this mountpoint */
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;
    char real[4096];
    if (!d || !realpath(mount, real))
        return 0;
    while (!found && (e = readdir(d))) {
        char path[300], buf[8192];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        if (!strstr(buf, "syncguardfs"))
            continue;
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
            if (!strcmp(buf + i, real) || !strcmp(buf + i, mount))
                found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

static proc_stat stat_of(pid_t pid)
{
    proc_stat s = {0};
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        long rss = 0;
        /* after ')': state(3) ... utime(14) stime(15) ... rss(24) */
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d "
                               "%*d %*d %*d %*u %*u %ld",
                        &ut, &st, &rss) == 3) {
            s.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
            s.rss_kb = rss * (sysconf(_SC_PAGESIZE) / 1024);
        }
    }
    /* TCP connections: socket fds of the daemon, counted in /proc/PID/fd */
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char l[600], t[128];
        snprintf(l, sizeof l, "%s/%s", path, e->d_name);
        ssize_t k = readlink(l, t, sizeof t - 1);
        if (k > 0 && (t[k] = 0, !strncmp(t, "socket:", 7)))
            s.tcp++;
    }
    if (d)
        closedir(d);
    return s;
}

typedef struct parked_arg {
    char path[4096];
    atomic_int *parked, *got;
} parked_arg;

static void *park(void *arg)
{
    parked_arg *a = arg;
    int fd = open(a->path, O_RDONLY | O_CREAT, 0666);
    if (fd < 0) {
        perror(a->path);
        return NULL;
    }
    atomic_fetch_add(a->parked, 1);
    if (flock(fd, LOCK_EX) == 0)
        atomic_fetch_add(a->got, 1);
    else
        perror("flock");
    close(fd);
    return NULL;
}

static void measure(const char *label, pid_t pid, double secs)
{
    proc_stat a = stat_of(pid);
    usleep((useconds_t)(secs * 1e6));
    proc_stat b = stat_of(pid);
    printf("  %-30s daemon CPU %5.2f %% of a core, RSS %ld kB, sockets %d\n", label,
           100.0 * (b.cpu_s - a.cpu_s) / secs, b.rss_kb, b.tcp);
    fflush(stdout);
}

static int parked(const char *url, const char *mount, int n, double secs)
{
    sg_backend *b;
    sg_error err;
    if (sg_backend_open(url, NULL, &b, &err) != SG_OK)
        return fprintf(stderr, "sg_wait_bench: %s\n", err.message), 1;
    pid_t pid = daemon_of(mount);
    if (!pid)
        return fprintf(stderr, "sg_wait_bench: no syncguardfs serves %s\n", mount), 1;
    sg_lock *locks = calloc((size_t)n, sizeof *locks);
    parked_arg *args = calloc((size_t)n, sizeof *args);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    atomic_int np = 0, got = 0;
    if (!locks || !args || !th)
        return 1;
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "parked-%d-%05d", getpid(), i);
        if (sg_acquire(b, key, 600000, &locks[i], &err) != SG_OK)
            return fprintf(stderr, "sg_wait_bench: acquire %s: %s\n", key, err.message), 1;
        lock_path(args[i].path, sizeof args[i].path, mount, key);
        args[i].parked = &np, args[i].got = &got;
    }
    printf("parked waiters: %d keys held by the library (TTL 10 min), one flock each on the "
           "mount, daemon pid %d\n", n, (int)pid);
    measure("idle (no waiter)", pid, secs);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 64 * 1024);
    for (int i = 0; i < n; i++)
        if (pthread_create(&th[i], &at, park, &args[i]) != 0)
            return perror("pthread_create"), 1;
    while (atomic_load(&np) < n)
        usleep(10000);
    sleep(3); /* every flock has reached the daemon and parked */
    char label[64];
    snprintf(label, sizeof label, "%d parked waiters", n);
    measure(label, pid, secs);
    int64_t t0 = now_us();
    for (int i = 0; i < n; i++)
        sg_release(b, locks[i].lock_id, &err);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    printf("  released all %d: %d waiters got their lock in %.1f ms\n", n, atomic_load(&got),
           (double)(now_us() - t0) / 1e3);
    sg_backend_close(b);
    free(locks), free(args), free(th);
    return atomic_load(&got) == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && !strcmp(argv[1], "fair"))
        return fair(argv[2], atof(argv[3]), atoi(argv[4]), argc - 5, argv + 5);
    if (argc == 6 && !strcmp(argv[1], "parked"))
        return parked(argv[2], argv[3], atoi(argv[4]), atof(argv[5]));
    fprintf(stderr, "usage: sg_wait_bench fair KEY SECONDS CONTENDERS MOUNT...\n"
                    "       sg_wait_bench parked URL MOUNT N SECONDS\n");
    return 2;
}
