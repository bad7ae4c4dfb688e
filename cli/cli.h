/* cli.h — private: what the commands of syncguard(1) share. */
#ifndef SG_CLI_H
#define SG_CLI_H
#include <stdbool.h>
#include <stdint.h>

#include "syncguard.h"

/* Exit statuses (docs/cli.md). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ABSENT = 1,   /* absent / free / not acquired (default -E) */
    CLI_EXIT_ERROR = 2,    /* usage, bad input, backend errors */
    CLI_EXIT_LOST = 75,    /* run: the lock was lost while CMD ran (EX_TEMPFAIL) */
};

#define CLI_WAIT_FOREVER (-1)
#define CLI_KILL_GRACE_MS 10000 /* run: after the loss signal, SIGKILL this much later */

/* Print "syncguard: Code: message (cause)" on stderr; returns CLI_EXIT_ERROR.
 * Never prints the error's lockId context. */
int cli_fail(const sg_error *err);
/* printf-style one-line error on stderr; returns CLI_EXIT_ERROR. */
int cli_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Acquire KEY, waiting wait_ms (0: one attempt; CLI_WAIT_FOREVER: no limit)
 * with backoff and jitter capped at 1 s. TERM/INT/HUP abort a wait. Returns
 * CLI_EXIT_OK with *out filled, `conflict_code` when not acquired in time,
 * 128+SIG when a signal aborted it (nothing held), CLI_EXIT_ERROR (printed).
 * When it returns CLI_EXIT_OK its TERM/INT/HUP handlers stay installed:
 * cli_wait_signal() then reports one that arrived later (0: none). */
int cli_acquire_wait(sg_backend *b, const char *key, int64_t ttl_ms, int64_t wait_ms,
                     int conflict_code, sg_lock *out);
int cli_wait_signal(void);

typedef struct cli_run_opts {
    int64_t ttl_ms;
    int64_t wait_ms;
    int conflict_code;
    int on_loss_signal;
    const char *key;
    char **cmd; /* NULL-terminated */
} cli_run_opts;

/* Record the descriptors open at start (call first in main): run passes only
 * those to CMD. */
void cli_run_snapshot_fds(void);
/* `syncguard run`: see docs/cli.md. Returns the exit status. */
int cli_run(sg_backend *b, const cli_run_opts *o);
#endif
