/* args.h — pure parsers and formatters of the syncguard command line (no I/O
 * but what each says): wait limits, signals, lockId text, URL redaction,
 * key text. Unit-tested in tests/unit/test_cli_args.c. */
#ifndef SG_CLI_ARGS_H
#define SG_CLI_ARGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "syncguard.h"

#define CLI_TTL_MIN_MS 1000 /* as for a TTL write through the mount */

/* A TTL through the core's duration parser, at least 1 s. SG_OK or SG_ERROR. */
sg_status cli_ttl_parse(const char *s, int64_t *ttl_ms, sg_error *err);
/* -w SECONDS: a decimal number of seconds (fractions allowed, like flock -w),
 * 0 .. 2^31-1 ms once converted. false when malformed. */
bool cli_wait_parse(const char *s, int64_t *wait_ms);
/* -E CODE: 0..255. false when malformed. */
bool cli_exit_code_parse(const char *s, int *code);
/* A signal by name (TERM, SIGTERM, term) or number 1..NSIG-1; -1 if unknown. */
int cli_signal_parse(const char *s);
/* A lockId from text read on stdin: a bare lockId, lock-file lines holding
 * `lockId=...`, or the JSON object `acquire --json` prints. Whitespace around
 * is ignored. Copies it to out and returns true when exactly one valid
 * lockId is found. */
bool cli_lock_id_from_text(const char *text, size_t len, char out[SG_LOCK_ID_LEN + 1]);
/* Overwrite a URL held in argv memory, in place, with its redaction
 * (sg_url_redact: no password, no secret parameter) padded with NULs, so that
 * ps and /proc/PID/cmdline show no secret; all NULs if it cannot redact. */
void cli_scrub_url_arg(char *arg);
/* A key as one safe line of text: the lock file's name encoding plus %XX for
 * control bytes (a key holding a newline cannot forge a line). out needs
 * 3 * SG_KEY_MAX * 3 + 1 bytes (CLI_KEY_TEXT_MAX). */
#define CLI_KEY_TEXT_MAX (9 * SG_KEY_MAX + 1)
void cli_key_text(const char *key, char out[CLI_KEY_TEXT_MAX]);
#endif
