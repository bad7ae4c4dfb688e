#!/usr/bin/env bash
# tests/e2e/service.sh CASE — syncguardfs as a service (docs/install.md):
# systemd readiness, SIGHUP, log levels, mounting through mount(8) + fstab.
# Same harness as cases.sh (lib.sh: a backend from scripts/test, exit 77 = skip).
source "$(dirname "$0")/lib.sh"

# READY=1 arrives on $NOTIFY_SOCKET (a datagram socket made by python3, as
# systemd would), and only once the mount answers: right after it arrives the
# mount is live and its metrics are served.
case_readiness_notify_after_mount() {
    local sock="$T/notify" mnt="$M1"
    python3 - "$sock" "$mnt" > "$T/notify.out" 2>&1 <<'PY' &
import os, socket, sys
path, mnt = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(20)
open(path + ".bound", "w").close()
while True:
    msg = s.recv(4096).decode()
    if "READY=1" in msg.split("\n"):
        break
# the very moment READY=1 is read: is the mount already usable?
usable = os.path.ismount(mnt) and os.path.exists(os.path.join(mnt, "metrics"))
print("READY", "usable" if usable else "NOT-usable", repr(msg))
PY
    local py=$!
    wait_until 20 test -e "$sock.bound" || fail "notify socket not bound: $(cat "$T/notify.out")"
    NOTIFY_SOCKET="$sock" "$SGFS" -f -o "ttl=2000,state_dir=$T/state1" "$URL" "$mnt" \
        >>"$T/m1.log" 2>&1 &
    PIDS+=("$!")
    wait $py || fail "no READY=1 within 20 s: $(cat "$T/notify.out")"
    grep -q '^READY usable' "$T/notify.out" || fail "READY=1 before the mount was usable: $(cat "$T/notify.out")"
    grep -q 'STATUS=serving locks on' "$T/notify.out" || fail "no STATUS line: $(cat "$T/notify.out")"
    # the metrics an operator scrapes next
    grep -Eq '^syncguardfs_build_info\{version="[0-9]+\.[0-9]+\.[0-9]+"\} 1$' "$mnt/metrics" ||
        fail "no build_info metric"
    grep -q '^syncguardfs_backend_up 1$' "$mnt/metrics" || fail "backend_up is not 1"
    ok "READY=1 (with STATUS) arrives on NOTIFY_SOCKET once the mount is usable; build_info, backend_up"
}

# An abstract-namespace NOTIFY_SOCKET ("@name") works too.
case_readiness_notify_abstract_socket() {
    local name="sg-notify-$$-$RANDOM"
    python3 - "$name" "$T/bound" > "$T/notify.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1])
s.settimeout(20)
open(sys.argv[2], "w").close()
print(s.recv(4096).decode().split("\n")[0])
PY
    local py=$!
    wait_until 20 test -e "$T/bound" || fail "notify socket not bound: $(cat "$T/notify.out")"
    NOTIFY_SOCKET="@$name" "$SGFS" -f -o "ttl=2000,state_dir=$T/state1" "$URL" "$M1" \
        >>"$T/m1.log" 2>&1 &
    PIDS+=("$!")
    wait $py || fail "nothing on the abstract socket: $(cat "$T/notify.out")"
    grep -qx 'READY=1' "$T/notify.out" || fail "got $(cat "$T/notify.out")"
    ok "READY=1 on an abstract-namespace NOTIFY_SOCKET"
}

# SIGHUP logs a line and the daemon keeps serving; a held lock stays held.
case_sighup_keeps_serving() {
    start_daemon "$M1" "$T/state1"
    local pid; pid=$(cat "$T/m1.pid") k="$RUN-hup"
    exec 9<>"$M1/locks/$k"
    present "$M1/locks/$k" || fail "not acquired"
    local fence; fence=$(field fence "$M1/locks/$k")
    kill -HUP "$pid"
    wait_until 5 grep -q 'SIGHUP: log reopened, still serving' "$T/m1.log" || fail "no SIGHUP log line"
    kill -HUP "$pid"
    sleep 0.3
    kill -0 "$pid" 2>/dev/null || fail "SIGHUP stopped the daemon"
    mountpoint -q "$M1" || fail "SIGHUP unmounted"
    [ "$(field fence "$M1/locks/$k")" = "$fence" ] || fail "the lock changed hands"
    grep -c 'SIGHUP: log reopened' "$T/m1.log" | grep -qx 2 || fail "two SIGHUPs, not two lines"
    exec 9>&-
    wait_until 2 absent "$M1/locks/$k" || fail "close did not release after SIGHUP"
    kill -TERM "$pid"
    wait_until 10 bash -c "! kill -0 $pid" || fail "SIGTERM did not stop it"
    ok "SIGHUP logs a line and keeps serving (locks kept); SIGTERM still stops"
}

# -o log_level= filters by level (the "mounted" line is info); bad values are refused.
case_log_level_option() {
    start_daemon "$M1" "$T/state1" "log_level=error"
    start_daemon "$M2" "$T/state2" "log_level=debug"
    grep -q 'info: mounted' "$T/m2.log" || fail "log_level=debug hides info: $(cat "$T/m2.log")"
    grep -q 'info:' "$T/m1.log" && fail "log_level=error still logs info: $(cat "$T/m1.log")"
    "$SGFS" -f -o log_level=loud "$URL" "$T" 2>"$T/err" && fail "log_level=loud accepted"
    grep -q 'log_level=error|warn|info|debug' "$T/err" || fail "unclear refusal: $(cat "$T/err")"
    "$SGFS" --help | grep -q 'log_level=' || fail "--help does not list log_level"
    ok "log_level=error silences info, debug keeps it, a bad level is refused"
}

# mount(8) with a fuse.syncguardfs fstab line (as in scripts/syncguardfs.fstab).
# mount(8) runs helpers without PATH, so mount.fuse3's /bin/sh finds
# `syncguardfs` on its default path (/usr/local/sbin:/usr/local/bin:/usr/sbin:
# /usr/bin:/sbin:/bin) — where `meson install` puts it for the usual prefixes.
# To test that without installing, a private mount namespace binds a directory
# holding `syncguardfs` over /usr/local/sbin (first on that path); the mount,
# the lock and the unmount all happen inside the namespace.
case_fstab_mount_fuse_syncguardfs() {
    [ "$(id -u)" -eq 0 ] || { echo "mount(8) with a private fstab needs root: skipping"; exit 77; }
    [ -x /sbin/mount.fuse3 ] || [ -x /usr/sbin/mount.fuse3 ] || { echo "no mount.fuse3: skipping"; exit 77; }
    [ -d /usr/local/sbin ] && command -v unshare >/dev/null || { echo "no unshare: skipping"; exit 77; }
    unshare -m --propagation private true 2>/dev/null || { echo "no mount namespaces: skipping"; exit 77; }
    mkdir -p "$T/bin"
    ln -s "$SGFS" "$T/bin/syncguardfs"
    printf '%s %s fuse.syncguardfs _netdev,nofail,ttl=2000,state_dir=%s 0 0\n' \
        "$URL" "$M1" "$T/state1" > "$T/fstab"
    local k="$RUN-fstab"
    cat > "$T/inner.sh" <<INNER
set -u
fail() { echo "FAIL: \$*"; exit 1; }
mount --bind "$T/bin" /usr/local/sbin || fail "bind mount"
env -u PATH mount --fstab "$T/fstab" "$M1" 2>"$T/err" || fail "mount: \$(cat "$T/err")"
mountpoint -q "$M1" || fail "not mounted"
grep -q " $M1 fuse.syncguardfs " /proc/self/mounts || fail "type: \$(grep "$M1" /proc/self/mounts)"
flock -n "$M1/locks/$k" -c "test -e '$M1/locks/$k'" || fail "no lock through the fstab mount"
for _ in \$(seq 1 100); do grep -q '^syncguardfs_locks_held 0' "$M1/metrics" && break; sleep 0.02; done
grep -q '^syncguardfs_locks_held 0' "$M1/metrics" || fail "lock not released after flock"
umount "$M1" || fail "umount"
for _ in \$(seq 1 100); do
    pgrep -f "syncguardfs .*$M1" >/dev/null || { echo "daemon gone"; exit 0; }
    sleep 0.1
done
fail "daemon still running after umount"
INNER
    unshare -m --propagation private bash "$T/inner.sh" > "$T/inner.out" 2>&1 ||
        fail "$(cat "$T/inner.out")"
    grep -q 'daemon gone' "$T/inner.out" || fail "$(cat "$T/inner.out")"
    ok "mount --fstab (type fuse.syncguardfs) runs syncguardfs from the default path; umount stops it"
}

# syncguardfs_backend_up follows the last backend call: 0 during an outage,
# 1 again once a call reaches the backend.
case_backend_up_gauge_follows_outage() {
    [ "$BACKEND" = redis ] || exit 77
    local port=$((SG_TEST_REDIS_PORT_BASE + 31))
    "$SG_REDIS_CTL" start e2eup "$port"
    URL="redis://127.0.0.1:$port?connect_timeout_ms=300"
    start_daemon "$M1" "$T/state1"
    grep -q '^syncguardfs_backend_up 1$' "$M1/metrics" || fail "not up at start"
    "$SG_REDIS_CTL" stop e2eup
    test -e "$M1/locks/$RUN-down" 2>/dev/null || true
    grep -q '^syncguardfs_backend_up 0$' "$M1/metrics" || fail "still up during the outage"
    "$SG_REDIS_CTL" restart e2eup
    wait_until 5 bash -c "test -e '$M1/locks/$RUN-up'; grep -q '^syncguardfs_backend_up 1$' '$M1/metrics'" ||
        fail "not up again after the backend came back"
    "$SG_REDIS_CTL" stop e2eup
    ok "syncguardfs_backend_up: 1, 0 during an outage, 1 after recovery"
}

# What Restart=on-failure does after a crash, with the unit's own commands:
# kill -9 leaves the mountpoint stale (ENOTCONN); ExecStopPost/ExecStartPre
# (fusermount3 -uz %f, mkdir -p %f) make it mountable again, and the new
# daemon releases the lock the crashed one held (its state file).
case_unit_recovers_stale_mount_after_crash() {
    local unit="${SG_UNIT:?path of the configured syncguardfs@.service}"
    start_daemon "$M1" "$T/state1"
    local k="$RUN-crash"
    exec 9<>"$M1/locks/$k"
    present "$M1/locks/$k" || fail "not acquired"
    kill -9 "$(cat "$T/m1.pid")"
    wait_until 5 bash -c "! stat '$M1' >/dev/null 2>&1" || fail "mountpoint did not go stale"
    exec 9>&-
    # the unit's recovery commands, %f = the mountpoint, a leading '-' = ignore failure
    local cmds; cmds=$(sed -n 's/^\(ExecStopPost\|ExecStartPre\)=//p' "$unit" | sed "s#%f#$M1#g")
    [ -n "$cmds" ] || fail "no ExecStopPost/ExecStartPre in $unit"
    while read -r cmd; do
        case "$cmd" in -*) bash -c "${cmd#-}" || true ;; *) bash -c "$cmd" || fail "$cmd" ;; esac
    done <<< "$cmds"
    stat "$M1" >/dev/null || fail "mountpoint still stale after the unit's commands"
    start_daemon "$M1" "$T/state1"
    wait_until 5 absent "$M1/locks/$k" || fail "the crashed daemon's lock was not released"
    ok "after kill -9 the unit's fusermount3 -uz makes the mountpoint usable; the restart frees the lock"
}

"case_$1"
