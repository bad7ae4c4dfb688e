# shellcheck shell=bash
# tests/e2e/cases_daemon.sh — sourced by cases.sh: the daemon itself: SIGTERM
# and restarts, crash recovery, access control, secrets, a second daemon, the
# state directory, options, rediss:// mounts, running in the background.

case_sigterm_waits_for_holders() {
    start_daemon "$M1" "$T/state1" "shutdown_grace=20000"
    start_daemon "$M2" "$T/state2"
    local k="$RUN-term" daemon; daemon="$(cat "$T/m1.pid")"
    ( exec 9>"$M1/locks/$k"; sleep 2 ) &
    local holder=$!
    wait_until 2 present "$M2/locks/$k" || fail "not held"
    kill -TERM "$daemon"
    sleep 1
    present "$M2/locks/$k" || fail "SIGTERM released a lock whose holder still runs"
    ( exec 9>"$M1/locks/$RUN-new" ) 2>/dev/null && fail "granted a new lock while draining"
    wait $holder
    wait_until 3 absent "$M2/locks/$k" || fail "not released after the holder closed"
    local rc=0
    wait "$daemon" || rc=$?
    [ $rc -eq 0 ] || fail "daemon exit status $rc"
    ok "SIGTERM keeps locks until holders close, refuses new ones, then exits 0"
}

case_restart_after_crash_frees_locks() {
    start_daemon "$M1" "$T/state1" "ttl=60000"
    start_daemon "$M2" "$T/state2"
    local k="$RUN-crash" daemon; daemon="$(cat "$T/m1.pid")"
    ( exec 9>"$M1/locks/$k"; sleep 30 ) &
    local holder=$!
    wait_until 2 present "$M2/locks/$k" || fail "not held"
    kill -9 "$daemon"
    kill $holder 2>/dev/null || true
    fusermount3 -u -z "$M1" 2>/dev/null || true
    present "$M2/locks/$k" || fail "lock vanished before the restart (TTL is 60 s)"
    start_daemon "$M1" "$T/state1" "ttl=60000"
    wait_until 2 absent "$M2/locks/$k" || fail "restarted daemon did not free its predecessor's lock"
    ok "a restarted daemon releases the locks a crashed one recorded"
}

case_access_allow_other_lockgroup_sticky() {
    command -v setpriv >/dev/null || { echo "no setpriv: skipping" >&2; exit 77; }
    local gid=4242
    start_daemon "$M1" "$T/state1" "allow_other,lockgroup=$gid"
    chmod 755 "$T"
    [ "$(stat -c %a "$M1/locks")" = 1777 ] || fail "locks/ is not sticky 01777"
    as() { local g="$1"; shift; setpriv --reuid=65534 --regid=65534 --groups="$g" "$@"; }
    # not in the lock group: may not acquire
    as 65534 bash -c "exec 9>'$M1/locks/$RUN-g'" 2>/dev/null && fail "non-member acquired"
    absent "$M1/locks/$RUN-g" || fail "a refused create left a lock"
    # a member may; the file is 0660, group-owned, owned by the acquirer
    as "$gid" bash -c "exec 9>'$M1/locks/$RUN-g'; sleep 1.5" &
    local holder=$!
    wait_until 3 present "$M1/locks/$RUN-g" || fail "member could not acquire"
    local st; st="$(stat -c '%a %g %u' "$M1/locks/$RUN-g")"
    [ "$st" = "660 $gid 65534" ] || fail "mode/group/owner: $st"
    # another uid (also a member) cannot rm it: sticky locks/ (the kernel says EPERM)
    setpriv --reuid=4243 --regid="$gid" --clear-groups rm -f "$M1/locks/$RUN-g" 2>/dev/null &&
        fail "another uid removed the lock"
    present "$M1/locks/$RUN-g" || fail "lock gone after a refused rm"
    wait $holder
    wait_until 2 absent "$M1/locks/$RUN-g" || fail "not released"
    ok "allow_other: sticky 01777 locks/, lockgroup gates acquisition, 0660 files owned by the acquirer"
}

case_secrets_stay_out_of_mounts_and_ps() {
    [ "$BACKEND" = redis ] || exit 77
    local port=$((SG_TEST_REDIS_PORT_BASE + 20))
    # '@' and ':' inside the password: no fragment of it may show anywhere
    "$SG_REDIS_CTL" start e2eauth "$port" --requirepass 'Sup3r@s3cr3t:x'
    URL="redis://:Sup3r@s3cr3t:x@127.0.0.1:$port"
    start_daemon "$M1" "$T/state1"
    local pid; pid="$(cat "$T/m1.pid")"
    grep -qE "Sup3r|s3cr3t" /proc/mounts && fail "password in /proc/mounts: $(grep " $M1 " /proc/mounts)"
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qE "Sup3r|s3cr3t" && fail "password in argv (ps)"
    grep " $M1 " /proc/mounts | grep -q "redis://127.0.0.1:$port" || fail "fsname: $(grep " $M1 " /proc/mounts)"
    exec 9>"$M1/locks/$RUN-pw" || fail "mount with a password does not work"
    exec 9>&-
    grep -qE "Sup3r|s3cr3t" "$T/m1.log" && fail "password in the log"
    grep -qE "Sup3r|s3cr3t" "$M1/metrics" && fail "password in the metrics"
    # a password file readable by others works, with a warning
    printf '%s' 'Sup3r@s3cr3t:x' > "$T/pw"; chmod 0644 "$T/pw"
    URL="redis://127.0.0.1:$port"
    start_daemon "$M2" "$T/state2" "password_file=$T/pw"
    exec 9>"$M2/locks/$RUN-pw2" || fail "mount with password_file does not work"
    exec 9>&-
    grep -qi "readable" "$T/m2.log" || fail "no warning about a world-readable password_file: $(cat "$T/m2.log")"
    grep -qE "Sup3r|s3cr3t" "$T/m2.log" && fail "password in the log"
    "$SG_REDIS_CTL" stop e2eauth
    ok "a password with '@' and ':' is in neither /proc/mounts, argv, metrics nor the log; a readable password_file is warned about"
}

case_second_daemon_refused_touches_nothing() {
    start_hosts
    local k="$RUN-live" pid1; pid1="$(cat "$T/m1.pid")"
    exec 9>"$M1/locks/$k"
    local fence; fence="$(field fence "$M2/locks/$k")"
    local rc=0
    timeout 10 "$SGFS" -f -o "state_dir=$T/state1" "$URL" "$M1" >"$T/second.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a second daemon on a live mountpoint did not refuse (rc $rc)"
    grep -q "pid $pid1" "$T/second.out" || fail "the refusal does not name the live daemon: $(cat "$T/second.out")"
    rc=0
    timeout 10 "$SGFS" -f -o "state_dir=$T/state9" "$URL" "$M1" >"$T/third.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "another state_dir let a second daemon mount over a live one"
    [ "$(awk -v m="$M1" '$5 == m' /proc/self/mountinfo | wc -l)" -eq 1 ] || fail "stacked mounts on $M1"
    present "$M2/locks/$k" || fail "the live daemon's lock was released"
    [ "$(field fence "$M2/locks/$k")" = "$fence" ] || fail "the live lock changed hands"
    echo 30s >&9 || fail "the live daemon lost its lock"
    touch "$T/plainfile"
    rc=0
    timeout 10 "$SGFS" -f -o "state_dir=$T/state8" "$URL" "$T/plainfile" >"$T/file.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a regular file was accepted as mountpoint"
    exec 9>&-
    ok "a second daemon is refused naming pid $pid1 (same or other state_dir), a regular file too; the live lock untouched"
}

case_state_dir_is_never_turned_against_its_user() {
    start_daemon "$M2" "$T/state2"
    # a symlink planted where the state file goes: refused, its target untouched
    mkdir -m 0700 "$T/sd"
    echo precious > "$T/victim"
    local sum; sum="$(sha256sum < "$T/victim")"
    local name; name="mount-$(printf '%s' "$(realpath "$M1")" | sha256sum | cut -c1-16).state"
    ln -s "$T/victim" "$T/sd/$name"
    local rc=0
    timeout 10 "$SGFS" -f -o "state_dir=$T/sd" "$URL" "$M1" >"$T/link.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a symlinked state file was followed"
    [ "$(sha256sum < "$T/victim")" = "$sum" ] || fail "the symlink's target was modified"
    # a state directory writable by others, or a symlink to one: refused
    mkdir -m 0777 "$T/open"; chmod 0777 "$T/open"
    rc=0
    timeout 10 "$SGFS" -f -o "state_dir=$T/open" "$URL" "$M1" >"$T/open.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a world-writable state_dir was accepted"
    ln -s "$T/sd" "$T/sdlink"
    rc=0
    timeout 10 "$SGFS" -f -o "state_dir=$T/sdlink" "$URL" "$M1" >"$T/sdlink.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a symlinked state_dir was accepted"
    mountpoint -q "$M1" && fail "mounted anyway"
    ok "state files: a planted symlink, an open or symlinked directory are refused; nothing touched"
}

case_restart_recovers_by_holder() {
    start_daemon "$M1" "$T/state1" "ttl=60000,on_loss=signal:USR1"
    start_daemon "$M2" "$T/state2"
    local daemon; daemon="$(cat "$T/m1.pid")"
    # holder A keeps running; holder B will be gone when the daemon restarts
    bash -c 'trap "echo lost >> $0" USR1; exec 9>"$1"; while :; do sleep 0.1; done' \
        "$T/a.sig" "$M1/locks/$RUN-alive" &
    local a=$!
    ( exec 9>"$M1/locks/$RUN-gone"; sleep 30 ) &
    local b=$!
    wait_until 3 present "$M2/locks/$RUN-alive" || fail "A not held"
    wait_until 3 present "$M2/locks/$RUN-gone" || fail "B not held"
    kill -9 "$daemon"
    kill $b; wait $b 2>/dev/null || true
    fusermount3 -u -z "$M1" 2>/dev/null || true
    start_daemon "$M1" "$T/state1" "ttl=60000,on_loss=signal:USR1"
    wait_until 3 absent "$M2/locks/$RUN-gone" || fail "the gone holder's lock was not released at once"
    present "$M2/locks/$RUN-alive" || fail "a lock whose holder still runs was released"
    wait_until 3 test -s "$T/a.sig" || fail "the running holder was not told (on_loss)"
    kill $a 2>/dev/null || true
    ok "restart after a crash: a gone holder's lock is freed at once; a running holder's is signalled and left to its TTL"
}

case_sigterm_exits_after_grace_with_holder_open() {
    start_daemon "$M1" "$T/state1" "shutdown_grace=1000"
    start_daemon "$M2" "$T/state2"
    local k="$RUN-stuck" daemon; daemon="$(cat "$T/m1.pid")"
    ( exec 9>"$M1/locks/$k"; sleep 60 ) &
    local holder=$!
    wait_until 2 present "$M2/locks/$k" || fail "not held"
    local t0; t0=$(now_ms)
    kill -TERM "$daemon"
    local i
    for i in $(seq 1 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$daemon" 2>/dev/null && fail "the daemon still runs 10 s after SIGTERM with a holder open"
    local dt=$(( $(now_ms) - t0 )) rc=0
    wait "$daemon" || rc=$?
    [ $rc -eq 0 ] || fail "daemon exit status $rc"
    absent "$M2/locks/$k" || fail "the lock was not released at shutdown_grace"
    kill $holder 2>/dev/null || true
    ok "SIGTERM with a holder that never closes: released at the grace, exit 0 after $dt ms"
}

case_options_validated_before_connecting() {
    [ "$BACKEND" = redis ] || exit 77
    # A misspelt option against a backend nobody listens on: the typo is
    # reported (exit 2), no connection is tried, nothing is mounted.
    local rc=0
    timeout 10 "$SGFS" -f -o "tll=5000,state_dir=$T/state1" redis://127.0.0.1:1 "$M1" \
        >"$T/typo.out" 2>&1 || rc=$?
    [ $rc -eq 2 ] || fail "a misspelt option: exit $rc, not 2: $(cat "$T/typo.out")"
    grep -q "unknown option 'tll' (did you mean 'ttl'?)" "$T/typo.out" ||
        fail "no 'unknown option' message: $(cat "$T/typo.out")"
    grep -qi "connect\|refused\|backend" "$T/typo.out" &&
        fail "it tried the backend first: $(cat "$T/typo.out")"
    mountpoint -q "$M1" && fail "mounted despite the typo"
    # a value where none belongs, a bad duration: the same
    for bad in "allow_other=1" "ttl" "ttl=30x" "shutdown_grace=-1s"; do
        rc=0
        timeout 10 "$SGFS" -f -o "$bad" redis://127.0.0.1:1 "$M1" >"$T/bad.out" 2>&1 || rc=$?
        [ $rc -eq 2 ] || fail "-o $bad: exit $rc, not 2: $(cat "$T/bad.out")"
        grep -qi "refused" "$T/bad.out" && fail "-o $bad reached the backend"
    done
    # The generic words fstab and mount(8) pass, with a TTL in seconds: mounts.
    start_daemon "$M1" "$T/state1" "ttl=30s,rw,nosuid,nodev,noatime,_netdev,x-systemd.automount"
    grep " $M1 " /proc/mounts | grep -q "nosuid,nodev" ||
        fail "nosuid,nodev not on the mount: $(grep " $M1 " /proc/mounts)"
    exec 9<>"$M1/locks/$RUN-opts" || fail "the mount does not work"
    local ttl; ttl="$(field ttlMs "$M1/locks/$RUN-opts")"
    [ "$ttl" -gt 25000 ] && [ "$ttl" -le 30000 ] || fail "ttl=30s gave ttlMs $ttl"
    exec 9>&-
    ok "option errors exit 2 before any connection; ttl=30s with rw,nosuid,nodev,noatime,_netdev,x-systemd.automount mounts (ttlMs $ttl)"
}

case_mount_over_rediss() {
    [ "$BACKEND" = redis ] || exit 77
    local tls="${SG_TEST_TLS_DIR:?}" port="${SG_TEST_REDISS_PORT:?}"
    # verified TLS with a client certificate; the key's path never shows
    URL="rediss://127.0.0.1:$port?tls_ca=$tls/ca.crt&tls_cert=$tls/client.crt&tls_key=$tls/client.key"
    start_hosts
    local k="$RUN-tls"
    exec 9>"$M1/locks/$k" || fail "create over rediss:// did not acquire"
    present "$M2/locks/$k" || fail "not visible on the other host"
    grep -q '^fence=' "$M1/locks/$k" || fail "no fence: $(cat "$M1/locks/$k")"
    echo 5s >&9 || fail "extend over rediss:// failed"
    redis-cli -p "$SG_TEST_REDIS_PORT" GET "syncguard:$k" | grep -q lockId || fail "not stored in Redis"
    rm "$M1/locks/$k"
    absent "$M2/locks/$k" || fail "unlink did not release"
    exec 9>&-
    grep " $M1 " /proc/mounts | grep -q "rediss://127.0.0.1:$port" || fail "fsname: $(grep " $M1 " /proc/mounts)"
    grep " $M1 " /proc/mounts | grep -q "client.key" && fail "key path in /proc/mounts"
    tr '\0' ' ' < "/proc/$(cat "$T/m1.pid")/cmdline" | grep -q "client.key" && fail "key path in argv (ps)"
    grep -q "client.key" "$T/m1.log" && fail "key path in the log"
    # another CA: the daemon refuses to start, saying why
    URL="rediss://127.0.0.1:$port?tls_ca=$tls/other-ca.crt"
    mkdir -p "$T/m3"
    if "$SGFS" -f -o "state_dir=$T/state3" "$URL" "$T/m3" >"$T/m3.log" 2>&1; then
        fail "mounted with a CA that did not sign the server's certificate"
    fi
    grep -q "certificate" "$T/m3.log" || fail "no clear error: $(cat "$T/m3.log")"
    ok "a mount over rediss:// (verified, client certificate) acquires, extends and releases; another CA is refused at start; the key path shows nowhere"
}

case_background_daemon_renews() {
    # without -f the daemon forks (fuse_daemonize): its threads must start after
    # the fork, or the daemon would hold locks that nobody renews
    start_daemon "$M2" "$T/state2"
    "$SGFS" -o "ttl=2000,state_dir=$T/state1" "$URL" "$M1" >"$T/bg.out" 2>&1 ||
        fail "background daemon did not start: $(cat "$T/bg.out")"
    local k="$RUN-bg"
    exec 9>"$M1/locks/$k" || fail "no lock through the background daemon"
    sleep 6.5   # more than 3x the TTL
    present "$M2/locks/$k" || fail "the background daemon did not renew its lock"
    exec 9>&-
    wait_until 3 absent "$M2/locks/$k" || fail "not released"
    fusermount3 -u "$M1" || fail "unmount"
    ok "a daemonized syncguardfs renews its locks (threads started after the fork)"
}
