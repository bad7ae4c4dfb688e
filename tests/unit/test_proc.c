/* test_proc.c — process identity: thread → process, start times, and signals
 * that never reach a reused pid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

static void tgid_of_the_main_thread_is_the_process(void **state)
{
    (void)state;
    assert_int_equal(sgfs_proc_tgid(getpid()), getpid());
    assert_int_equal(sgfs_proc_tgid(gettid()), getpid());
}

typedef struct {
    pthread_barrier_t in, out;
    pid_t tid;
} live_thread;

static void *live_main(void *arg)
{
    live_thread *lt = arg;
    lt->tid = gettid();
    pthread_barrier_wait(&lt->in);  /* tid published */
    pthread_barrier_wait(&lt->out); /* asked about; may end */
    return NULL;
}

static void tgid_of_a_live_secondary_thread_is_the_process(void **state)
{
    (void)state;
    live_thread lt;
    pthread_barrier_init(&lt.in, NULL, 2);
    pthread_barrier_init(&lt.out, NULL, 2);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, live_main, &lt), 0);
    pthread_barrier_wait(&lt.in);
    assert_int_not_equal(lt.tid, getpid());
    assert_int_equal(sgfs_proc_tgid(lt.tid), getpid());
    pthread_barrier_wait(&lt.out);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&lt.in);
    pthread_barrier_destroy(&lt.out);
}

static void start_time_of_self_is_nonzero_and_stable(void **state)
{
    (void)state;
    uint64_t a = sgfs_proc_start_time(getpid());
    assert_true(a > 0);
    usleep(20 * 1000);
    assert_int_equal(sgfs_proc_start_time(getpid()), a);
    assert_true(sgfs_proc_alive(getpid(), a));
    assert_false(sgfs_proc_alive(getpid(), a + 1));
    assert_int_equal(sgfs_proc_start_time(0), 0);
    assert_int_equal(sgfs_proc_start_time(-5), 0);
}

static void start_time_survives_parens_and_spaces_in_comm(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint64_t before = sgfs_proc_start_time(getpid());
        prctl(PR_SET_NAME, "x) 1 2 3 (y) 4");
        _exit(before && sgfs_proc_start_time(getpid()) == before ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A child that waits to be signalled (or for 30 s). */
static pid_t spawn_sleeper(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sleep(30);
        _exit(7);
    }
    return pid;
}

static void signal_to_a_reused_identity_is_refused_and_not_delivered(void **state)
{
    (void)state;
    pid_t pid = spawn_sleeper();
    uint64_t st = sgfs_proc_start_time(pid);
    assert_true(st > 0);
    assert_int_equal(sgfs_proc_signal(pid, st + 1, SIGTERM, false), -ESRCH);
    assert_int_equal(sgfs_proc_signal(pid, 0, SIGTERM, false), -ESRCH);
    usleep(50 * 1000);
    int status;
    assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* still running */
    /* the right identity is delivered */
    assert_int_equal(sgfs_proc_signal(pid, st, SIGTERM, false), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
}

static void signal_to_a_reaped_child_is_esrch(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    uint64_t st = 0;
    for (int i = 0; i < 100 && !st; i++)
        st = sgfs_proc_start_time(pid); /* a zombie still has its stat */
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(sgfs_proc_signal(pid, st ? st : 1, SIGTERM, false), -ESRCH);
    assert_false(sgfs_proc_alive(pid, st ? st : 1));
    assert_int_equal(sgfs_proc_signal(0, 1, SIGTERM, false), -EINVAL);
    assert_int_equal(sgfs_proc_signal(getpid(), 1, 999, false), -EINVAL);
}

static void on_term_report(int sig)
{
    (void)sig;
}

static void group_signal_reaches_the_whole_process_group(void **state)
{
    (void)state;
    int ready[2], heard[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(heard), 0);
    pid_t leader = fork();
    assert_true(leader >= 0);
    if (leader == 0) {
        setpgid(0, 0);
        pid_t worker = fork();
        if (worker == 0) {
            /* the "command flock runs": tells the test it got SIGTERM */
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGTERM);
            sigprocmask(SIG_BLOCK, &set, NULL);
            signal(SIGTERM, on_term_report);
            alarm(30); /* never outlive a failed test */
            if (write(ready[1], "r", 1) != 1)
                _exit(2);
            int sig;
            sigwait(&set, &sig);
            if (write(heard[1], "t", 1) != 1)
                _exit(2);
            _exit(0);
        }
        sleep(30);
        _exit(7);
    }
    setpgid(leader, leader); /* both sides: no race with the signal below */
    close(ready[1]);
    close(heard[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    uint64_t st = sgfs_proc_start_time(leader);
    assert_true(st > 0);
    assert_int_equal(getpgid(leader), leader);
    assert_int_equal(sgfs_proc_signal(leader, st + 1, SIGTERM, true), -ESRCH);
    assert_int_equal(sgfs_proc_signal(leader, st, SIGTERM, true), 0);
    int status;
    assert_int_equal(waitpid(leader, &status, 0), leader);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    assert_int_equal(read(heard[0], &c, 1), 1); /* the worker got it too */
    assert_int_equal(c, 't');
    close(ready[0]);
    close(heard[0]);
}

static void group_signal_refuses_the_daemons_own_group(void **state)
{
    (void)state;
    /* In a child with a group of its own, so a failure cannot hit the runner. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        int rc = sgfs_proc_signal(getpid(), sgfs_proc_start_time(getpid()), SIGTERM, true);
        _exit(rc == -EPERM ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tgid_of_the_main_thread_is_the_process),
        cmocka_unit_test(tgid_of_a_live_secondary_thread_is_the_process),
        cmocka_unit_test(start_time_of_self_is_nonzero_and_stable),
        cmocka_unit_test(start_time_survives_parens_and_spaces_in_comm),
        cmocka_unit_test(signal_to_a_reused_identity_is_refused_and_not_delivered),
        cmocka_unit_test(signal_to_a_reaped_child_is_esrch),
        cmocka_unit_test(group_signal_reaches_the_whole_process_group),
        cmocka_unit_test(group_signal_refuses_the_daemons_own_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
