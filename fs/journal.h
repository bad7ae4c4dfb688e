/* journal.h — syncguardfs's state file and mountpoint guard.
 *
 * One state file per mountpoint, mount-<16 hex of SHA-256(realpath)>.state in a
 * private state directory. The live daemon holds flock(LOCK_EX) on it for its
 * whole life, so a second daemon for the same mountpoint is refused (naming the
 * first's pid from the file's header) before it touches anything. The file
 * records each held lockId with its holder's identity (pid + start time), so a
 * successor can free a crashed daemon's locks whose holders are gone.
 *
 * File format (append-only lines; anything else, e.g. a line cut short by a
 * crash, is skipped when read):
 *   #syncguardfs pid=<daemon pid> mount=<mountpoint>   header, first line
 *   +<lockId> <holder pid> <holder start time>          lock held
 *   -<lockId>                                           lock let go
 * The file is rewritten in place (under the lock) with just the held set once it
 * has grown past 4x that set (and past 1024 lines). */
#ifndef SGFS_JOURNAL_H
#define SGFS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct sgfs_journal sgfs_journal;

/* Take charge of `mountpoint_realpath` (already resolved by realpath(3)):
 * - refuse a mountpoint that is not a directory (-ENOTDIR);
 * - resolve the state directory: `state_dir` if not NULL/empty, else
 *   /run/syncguardfs for root, else $XDG_RUNTIME_DIR/syncguardfs, else
 *   /tmp/syncguardfs-UID; create it 0700 if absent and refuse it (-EPERM) unless
 *   it is a real directory (not a symlink) owned by the effective uid and not
 *   writable by group or others;
 * - open the state file O_NOFOLLOW relative to that directory (a symlink there
 *   is refused, its target untouched) and lock it; held by a live daemon →
 *   -EBUSY, naming that daemon's pid;
 * - refuse (-EBUSY) a mountpoint that /proc/self/mountinfo shows as a
 *   fuse.syncguardfs mount, whatever state directory that daemon uses.
 * A refusal touches no file and writes a one-line reason into `why` (e.g.
 * "another syncguardfs (pid 1234) serves /mnt"). On success *out owns the
 * journal (free with sgfs_journal_close); the previous daemon's entries wait
 * for sgfs_journal_recover. Returns 0 or -errno. */
int sgfs_journal_open(const char *state_dir, const char *mountpoint_realpath, sgfs_journal **out,
                      char *why, size_t why_size);

/* Called once per entry a previous daemon left held. holder_alive: its holder
 * (pid with that start time) still runs — the daemon should then apply on_loss
 * and let the lock expire by its TTL; otherwise release it at once. */
typedef void (*sgfs_recover_fn)(const char *lock_id, pid_t pid, uint64_t start_time,
                                bool holder_alive, void *ud);

/* Hand the previous daemon's still-held entries to `fn` (none after a clean
 * exit), then forget them: the file is rewritten with only this daemon's own
 * entries. Call it once, before the mount serves requests. */
void sgfs_journal_recover(sgfs_journal *j, sgfs_recover_fn fn, void *ud);

/* Record that this daemon holds `lock_id` for process `pid` started at
 * `start_time` (see proc.h). Recording it again updates the holder. Thread-safe;
 * write errors are logged (sg_log), never fatal. */
void sgfs_journal_held(sgfs_journal *j, const char *lock_id, pid_t pid, uint64_t start_time);

/* Record that `lock_id` is no longer held (released, lost or expired). Unknown
 * lockIds are ignored. Thread-safe. */
void sgfs_journal_released(sgfs_journal *j, const char *lock_id);

/* Record the calling process as the daemon in the file's header; call it after
 * fuse_daemonize(), whose fork leaves the lock with the child (flock locks
 * belong to the open file, not the process) but the parent's pid in the file. */
void sgfs_journal_set_owner(sgfs_journal *j);

/* Number of lockIds recorded as held by this daemon. Thread-safe. */
size_t sgfs_journal_count(sgfs_journal *j);

/* The state file's path (owned by the journal, valid until close), for logs. */
const char *sgfs_journal_path(const sgfs_journal *j);

/* Exit: with nothing recorded as held, unlink the file (while still holding its
 * lock) — a clean exit; otherwise keep it, compacted, so that a successor
 * recovers what could not be released. Then unlock and free. NULL is a no-op. */
void sgfs_journal_close(sgfs_journal *j);

/* ---- pieces exposed for tests and tools ---- */

/* The state file name for a mountpoint: "mount-<16 hex>.state" (size >= 28). */
void sgfs_journal_file_name(const char *mountpoint_realpath, char *out, size_t size);

/* Whether mountinfo text (the format of /proc/self/mountinfo) has a
 * fuse.syncguardfs mount at `path`. Mount points are compared after decoding
 * the kernel's octal escapes (\040 space, \011 tab, \012 newline, \134 '\'). */
bool sgfs_mountinfo_has_syncguardfs(const char *mountinfo, const char *path);

#endif
