/* options.h — syncguardfs's command line: one fuse_opt table → sgfs_config,
 * the usage text, and the arguments the FUSE session is created with. Every
 * option is checked here, before any connection or mount. */
#ifndef SGFS_OPTIONS_H
#define SGFS_OPTIONS_H
#include <fuse_opt.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "syncguard.h"

typedef struct sgfs_config {
    int64_t ttl_ms;             /* TTL of locks taken through the mount */
    int64_t retry_delay_ms;     /* first retry delay of waits */
    int64_t max_delay_ms;       /* cap of one wait delay (1 s by default) */
    sg_backoff backoff;
    sg_jitter jitter;
    int64_t shutdown_grace_ms;  /* default: ttl_ms */
    bool allow_other, allow_break, has_lockgroup;
    gid_t lockgroup;
    mode_t dirmode;             /* default 01777 with allow_other, else 0755 */
    int loss_signal;            /* 0: none */
    bool loss_group;            /* on_loss=signal:SIG:group: signal the process group */
    int log_level;              /* an sg_log_level, or -1: service.c's default */
    bool require_durable_fences;
    bool foreground, debug;     /* -f; -d or -o debug (implies foreground) */
    /* Heap strings owned by the config (sgfs_config_free); NULL when not given.
     * url holds the backend's secret until main() wipes it after opening. */
    char *url, *mountpoint, *password_file, *state_dir;
    char *fuse_opts;            /* FUSE/kernel options passed through, comma list */
    /* Filled by main(), not by the parser. */
    char hostname[256];
} sgfs_config;

typedef enum sgfs_parse_result {
    SGFS_PARSE_MOUNT,   /* valid: go on */
    SGFS_PARSE_HELP,    /* -h/--help: print sgfs_usage to stdout, exit 0 */
    SGFS_PARSE_VERSION, /* -V/--version: print the version, exit 0 */
    SGFS_PARSE_ERROR,   /* a message went to err: exit 2 */
} sgfs_parse_result;

/* The text of -h (and of a usage error). */
extern const char sgfs_usage[];

/* Parse argv (not modified) into *cfg (zeroed and filled with the defaults
 * first; release with sgfs_config_free whatever the result). Errors and
 * warnings ("acquire_timeout has no effect") are written to err, each as one
 * "syncguardfs: ..." line. Looks up lockgroup= in the group database; touches
 * no network and no file otherwise. */
sgfs_parse_result sgfs_options_parse(int argc, char *argv[], sgfs_config *cfg, FILE *err);

/* Free the config's strings (wiping url) and set them to NULL. NULL is a no-op. */
void sgfs_config_free(sgfs_config *cfg);

/* The arguments for fuse_session_new(): argv0, "-o fsname=FSNAME (escaped),
 * subtype=syncguardfs, allow_other + default_permissions when asked, the
 * passed-through options", and "-d" with debug. 0, or -1 when out of memory.
 * The caller frees *args with fuse_opt_free_args. */
int sgfs_options_fuse_args(const sgfs_config *cfg, const char *argv0, const char *fsname,
                           struct fuse_args *args);
#endif
