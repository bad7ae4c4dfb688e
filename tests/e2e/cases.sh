#!/usr/bin/env bash
# tests/e2e/cases.sh CASE — one end-to-end behaviour through real mounts,
# using ordinary tools only (flock, cat, read, echo, rm, getfattr, python3).
# The cases (case_CASE functions) live in sibling files by concept; this
# file loads them and runs case_CASE.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cases_locking.sh"   # create/unlink, flock, POSIX, names, xattrs
source "$(dirname "$0")/cases_waiting.sh"   # wake-ups and waiters
source "$(dirname "$0")/cases_safety.sh"    # exclusion, renewal, loss, outages
source "$(dirname "$0")/cases_daemon.sh"    # the daemon: signals, restarts, access, options

"case_$1"
