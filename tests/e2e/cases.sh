#!/usr/bin/env bash
# tests/e2e/cases.sh CASE — one end-to-end behaviour through real mounts,
# using ordinary tools only (flock, cat, read, echo, rm, getfattr, python3).
source "$(dirname "$0")/lib.sh"

case_create_acquires_unlink_releases() {
    start_hosts
    local k="$RUN-a"
    absent "$M1/locks/$k" || fail "exists before"
    exec 9>"$M1/locks/$k"
    present "$M1/locks/$k" || fail "not visible on m1"
    present "$M2/locks/$k" || fail "not visible on other host"
    ls "$M2/locks" | grep -qx "$k" || fail "readdir on m2 misses it"
    rm "$M1/locks/$k"
    absent "$M2/locks/$k" || fail "unlink did not release"
    echo 5s >&9 2>/dev/null && fail "write after unlink should be ENOLCK (watching)"
    exec 9>&-
    exec 9>"$M1/locks/$k"
    rm "$M2/locks/$k" 2>"$T/err" && fail "rm of another host's lock succeeded"
    grep -q "Operation not permitted" "$T/err" || fail "rm elsewhere: $(cat "$T/err")"
    exec 9>&-
    wait_until 2 absent "$M2/locks/$k" || fail "last close did not release"
    ok "create acquires, unlink releases, rm of a remote lock is EPERM, close releases"
}

case_flock_across_hosts() {
    start_hosts
    local f1="$M1/locks/$RUN-f" f2="$M2/locks/$RUN-f"
    flock -n "$f1" -c "flock -n '$f2' true" && fail "both hosts held the lock"
    flock -n "$f1" -c "flock -n -E 42 '$f2' true; [ \$? -eq 42 ]" || fail "-E code not returned"
    # blocking waiter on m2 gets it once m1 lets go
    ( flock "$f1" -c 'sleep 1' ) &
    local holder=$!
    wait_until 2 present "$f2" || fail "holder never appeared"
    local t0; t0=$(now_ms)
    flock -w 5 "$f2" -c true || fail "waiter did not get the lock"
    [ $(( $(now_ms) - t0 )) -ge 500 ] || fail "waiter got it while held"
    wait $holder
    # flock -w gives up on time (SIGALRM interrupts the wait) and leaves nothing behind
    ( flock "$f1" -c 'sleep 3' ) &
    holder=$!
    wait_until 2 present "$f2"
    t0=$(now_ms)
    flock -w 1 "$f2" -c 'echo BAD' && fail "got a held lock"
    local dt=$(( $(now_ms) - t0 ))
    [ $dt -ge 900 ] && [ $dt -lt 2500 ] || fail "flock -w 1 took $dt ms"
    grep -q 'syncguardfs_interrupted_waits_total 1' "$M2/metrics" || fail "interrupt not counted"
    wait $holder
    wait_until 2 absent "$f2" || fail "a lock was left behind after the interrupt"
    ok "flock conflicts across hosts, waits, times out by interrupt, leaves nothing"
}

# flock a file, then print CLOCK_REALTIME in ns (no fork between the two)
STAMP_AFTER_FLOCK='import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print(time.time_ns())'

# Polling is pushed out of the way (30 s): only a wake-up can serve these
# waiters quickly, so the bounds below say which mechanism did.
case_wakeup_crosses_hosts() {
    [ "$BACKEND" = firestore ] && exit 77   # no push over REST
    start_hosts "retry_delay=30s,max_delay=30s"
    local f1="$M1/locks/$RUN-w" f2="$M2/locks/$RUN-w" worst=0
    for i in 1 2 3; do
        exec 9>"$f1"                       # held on host 1
        ( exec 9>&-; timeout 20 python3 -c "$STAMP_AFTER_FLOCK" "$f2" > "$T/got" ) &
        local waiter=$!
        sleep 0.5                          # parked and subscribed on host 2
        local t0; t0=$(date +%s%N)
        exec 9>&-                          # last close releases
        wait $waiter || fail "waiter did not get the lock"
        local got; got=$(cat "$T/got")
        local dt=$(( (got - t0) / 1000000 ))
        echo "handoff $i: $dt ms"
        [ $dt -gt $worst ] && worst=$dt
    done
    [ $worst -lt 500 ] || fail "cross-host handoff took $worst ms (no wake-up?)"
    local pushed; pushed=$(sed -n 's/^syncguardfs_wakeups_total{source="push"} //p' "$M2/metrics")
    [ "${pushed:-0}" -ge 3 ] || fail "push wake-ups not counted: $(grep wakeups "$M2/metrics")"
    ok "cross-host flock handoff by wake-up, worst of 3: $worst ms"
}

case_unannounced_release_served_at_expiry() {
    start_hosts "retry_delay=30s,max_delay=30s"
    local f1="$M1/locks/$RUN-x" f2="$M2/locks/$RUN-x"
    exec 9>"$f1"
    ( exec 9>&-; timeout 20 python3 -c "$STAMP_AFTER_FLOCK" "$f2" > "$T/got" ) &
    local waiter=$!
    sleep 0.5
    # a release nobody announces (SyncGuard TS, or an expiry): served at the
    # holder's expiry as the waiter last saw it (ttl 2 s, + 1 s off Redis)
    local t0; t0=$(date +%s%N)
    delete_lock "$RUN-x"
    wait $waiter || fail "waiter did not get the lock"
    local got; got=$(cat "$T/got")
    local dt=$(( (got - t0) / 1000000 ))
    [ $dt -lt 4500 ] || fail "an unannounced release took $dt ms (polling only?)"
    grep -q 'syncguardfs_wakeups_total{source="expiry"} [1-9]' "$M2/metrics" ||
        fail "expiry-timed attempts not counted: $(grep wakeups "$M2/metrics")"
    exec 9>&-
    ok "unannounced release served at the holder expiry: $dt ms"
}

# A backend restart while a waiter is parked: the subscriber reconnects and
# subscribes again, so the release after it still reaches the waiter by push
# (polling is 30 s away). Its own private server: Redis with appendfsync
# always (the lock survives kill -9), PostgreSQL stopped and started.
case_waiters_survive_backend_restart() {
    local name=e2ewake port
    case "$BACKEND" in
    redis) port=$((SG_TEST_REDIS_PORT_BASE + 24))
           "$SG_REDIS_CTL" start $name "$port" --appendonly yes --appendfsync always
           URL="redis://127.0.0.1:$port?connect_timeout_ms=300" ;;
    postgres) port=$((SG_TEST_PG_PORT_BASE + 10))
           "$SG_PG_CTL" start $name "$port"
           URL="postgres://postgres@127.0.0.1:$port/postgres?connect_timeout=1" ;;
    *) exit 77 ;;
    esac
    start_hosts "ttl=20s,retry_delay=30s,max_delay=30s"
    local f1="$M1/locks/$RUN-rs" f2="$M2/locks/$RUN-rs"
    exec 9>"$f1"
    ( exec 9>&-; timeout 40 python3 -c "$STAMP_AFTER_FLOCK" "$f2" > "$T/got" ) &
    local waiter=$!
    sleep 0.5
    local pushed0; pushed0=$(sed -n 's/^syncguardfs_wakeups_total{source="push"} //p' "$M2/metrics")
    # 9>&-: a server started now must not keep the holder's descriptor open
    if [ "$BACKEND" = redis ]; then
        "$SG_REDIS_CTL" kill9 $name; sleep 0.5; "$SG_REDIS_CTL" restart $name 9>&-
    else
        "$SG_PG_CTL" stop $name; "$SG_PG_CTL" restart $name 9>&-
    fi
    # reconnected and subscribed again: the waiter is woken once (and parks again)
    local pushed=0
    for _ in $(seq 1 100); do
        pushed=$(sed -n 's/^syncguardfs_wakeups_total{source="push"} //p' "$M2/metrics")
        [ "${pushed:-0}" -gt "${pushed0:-0}" ] && break
        sleep 0.1
    done
    [ "${pushed:-0}" -gt "${pushed0:-0}" ] || fail "no resubscription wake-up after the restart"
    kill -0 $waiter 2>/dev/null || fail "the waiter ended during the restart"
    [ -e "$f2" ] || fail "the lock was lost across the restart"
    sleep 1
    local t0; t0=$(date +%s%N)
    exec 9>&-
    wait $waiter || fail "waiter did not get the lock"
    local dt=$(( ($(cat "$T/got") - t0) / 1000000 ))
    [ $dt -lt 5000 ] || fail "the release after the restart took $dt ms to reach the waiter (polling?)"
    pushed=$(sed -n 's/^syncguardfs_wakeups_total{source="push"} //p' "$M2/metrics")
    [ "${pushed:-0}" -ge $((pushed0 + 2)) ] || fail "push wake-ups after the restart not counted"
    if [ "$BACKEND" = redis ]; then "$SG_REDIS_CTL" stop $name; else "$SG_PG_CTL" stop $name; fi
    ok "waiter parked across a backend restart, woken by push after it: $dt ms"
}

case_flock_nb_loop_never_spurious() {
    start_hosts
    local f="$M1/locks/$RUN-loop"
    for i in $(seq 1 150); do
        flock -n "$f" true || fail "flock -n failed spuriously at iteration $i (a)"
        flock -n "$f" true || fail "flock -n failed spuriously at iteration $i (b)"
    done
    ok "flock -n f a; flock -n f b: 300 cycles, no spurious failure"
}

case_fence_from_owning_descriptor() {
    start_hosts
    local k="$RUN-fence"
    exec 9<>"$M1/locks/$k"
    local lines; lines="$(cat <&9)"
    echo "$lines" | grep -Eq '^fence=[0-9]{15}$' || fail "no 15-digit fence: $lines"
    echo "$lines" | grep -Eq '^lockId=[A-Za-z0-9_-]{22}$' || fail "owner sees no lockId"
    echo "$lines" | grep -q "^key=$k$" || fail "key line"
    cat "$M2/locks/$k" > "$T/watch"
    grep -q lockId "$T/watch" && fail "watcher sees the lockId"
    [ "$(field fence "$T/watch")" = "$(echo "$lines" | sed -n 's/^fence=//p')" ] || fail "fence differs"
    exec 9>&-
    wait_until 2 absent "$M2/locks/$k"
    exec 9<>"$M2/locks/$k"
    local f2; f2="$(sed -n 's/^fence=//p' <&9)"
    [[ "$f2" > "$(echo "$lines" | sed -n 's/^fence=//p')" ]] || fail "fence did not increase: $f2"
    exec 9>&-
    [ -z "$(cat "$M1/locks/$RUN-none" 2>/dev/null)" ] || fail "absent lock has content"
    ok "fence and lockId from the owning descriptor, public view elsewhere, fences rise"
}

case_ttl_write_extends() {
    start_hosts
    local k="$RUN-ttl" f="$M1/locks/$RUN-ttl"
    exec 9<>"$f"
    echo 60s >&9 || fail "TTL write failed"
    local ttl; ttl="$(field ttlMs "$M2/locks/$k")"
    [ "$ttl" -gt 55000 ] || fail "ttlMs $ttl after writing 60s"
    for bad in "abc" "0s" "999" "1.5s" "-5s" "5 s" "99999999999h"; do
        printf '%s' "$bad" >&9 2>/dev/null && fail "bad TTL '$bad' accepted"
    done
    ttl="$(field ttlMs "$M2/locks/$k")"
    [ "$ttl" -gt 50000 ] || fail "a bad write changed the lock (ttlMs $ttl)"
    python3 - "$M2/locks/$k" <<'PY' || fail "write on a watching descriptor"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.write(fd, b"5s")
except OSError as e:
    sys.exit(0 if e.errno in (errno.EBADF,) else 1)
PY
    printf ' 2m\n' >&9 || fail "whitespace-padded TTL"
    ttl="$(field ttlMs "$M1/locks/$k")"
    [ "$ttl" -gt 100000 ] && [ "$ttl" -le 120000 ] || fail "2m gave ttlMs $ttl"
    exec 9>&-
    ok "TTL writes extend (replace) the lock; bad writes are EINVAL and change nothing"
}

case_names() {
    start_hosts
    exec 9>"$M1/locks/$RUN-a%2Fb"
    present "$M2/locks/$RUN-a%2Fb" || fail "%2F name not shared"
    python3 - "$M2/locks" "$RUN" <<'PY' || fail "bad names"
import errno, os, sys
d, run = sys.argv[1], sys.argv[2]
def err(name, flags=os.O_WRONLY | os.O_CREAT):
    try:
        os.close(os.open(os.path.join(d, name), flags)); return 0
    except OSError as e:
        return e.errno
assert err(run + "%zz") == errno.EINVAL, err(run + "%zz")
assert err(run + "%2f") == errno.EINVAL
assert err(run + "a%2Eb") == errno.EINVAL
assert err("a" * 513) == errno.ENAMETOOLONG, err("a" * 513)
assert err(run + "\udcff".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")) in (errno.EINVAL,)
# two names that normalize to one key are one lock
fd = os.open(os.path.join(d, run + "-e\u0301"), os.O_WRONLY | os.O_CREAT)
fd2 = os.open(os.path.join(d, run + "-\u00e9"), os.O_WRONLY | os.O_CREAT)  # watching
try:
    os.write(fd2, b"5s"); sys.exit("the NFC twin got its own lock")
except OSError as e:
    assert e.errno == errno.ENOLCK, e
os.close(fd2)
assert (run + "-\u00e9") in os.listdir(d)
os.close(fd)
PY
    exec 9>&-
    ok "%2F keys, EINVAL for bad escapes and UTF-8, ENAMETOOLONG, NFC names share one lock"
}

case_sigkill_holder_frees_lock() {
    start_hosts
    local k="$RUN-kill"
    python3 -c "import time; f=open('$M1/locks/$k','w'); time.sleep(60)" &
    local holder=$!
    wait_until 10 present "$M2/locks/$k" || fail "holder never held"
    kill -9 $holder
    local t0; t0=$(now_ms)
    wait_until 2 absent "$M2/locks/$k" || fail "lock survived its SIGKILLed holder"
    echo "freed $(( $(now_ms) - t0 )) ms after SIGKILL"
    ok "a SIGKILLed holder frees its lock at once"
}

case_renewal_and_loss() {
    start_hosts "on_loss=signal:USR1"
    local k="$RUN-renew"
    python3 - "$M1/locks/$k" "$M2/locks/$k" <<'PY' || fail "renewal/loss"
import os, select, signal, subprocess, sys, time
mine, other = sys.argv[1], sys.argv[2]
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
fd = os.open(mine, os.O_RDWR | os.O_CREAT)
first = dict(l.split("=", 1) for l in os.pread(fd, 4096, 0).decode().split())
time.sleep(6.5)  # more than 3x the 2 s TTL
assert os.path.exists(other), "lock expired despite renewal"
now = dict(l.split("=", 1) for l in os.pread(fd, 4096, 0).decode().split())
assert now["fence"] == first["fence"] and int(now["expiresAtMs"]) > int(first["expiresAtMs"])
# delete it behind the daemon's back: the descriptor turns stale
subprocess.run(["bash", "-c", 'delete_lock "$0"', first["key"]], check=True)
p = select.poll(); p.register(fd, select.POLLPRI)
deadline = time.time() + 5
while not got and time.time() < deadline:
    p.poll(100)
assert got, "no on_loss signal"
ev = select.poll(); ev.register(fd, select.POLLIN); r = ev.poll(0)
assert r and r[0][1] & select.POLLERR, r
try:
    os.pread(fd, 100, 0); sys.exit("read after loss did not fail")
except OSError as e:
    assert e.errno == 116, e  # ESTALE
try:
    os.write(fd, b"10s"); sys.exit("write after loss did not fail")
except OSError as e:
    assert e.errno == 116, e
os.close(fd)
PY
    grep -q 'syncguardfs_locks_lost_total 1' "$M1/metrics" || fail "loss not counted"
    ok "renewal keeps a lock past 3x TTL; deletion behind the back → ESTALE, POLLERR, signal"
}

case_counter_mutual_exclusion() {
    start_hosts
    local k="$RUN-counter" counter="$T/counter" log="$T/fences"
    echo 0 > "$counter"
    : > "$log"
    worker() {
        local mnt="$1"
        for _ in $(seq 1 15); do
            counter_section "$mnt" "$k" "$counter" "$log" || exit 1
        done
    }
    local pids=()
    for m in "$M1" "$M2" "$M1" "$M2"; do worker "$m" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || fail "a worker failed"; done
    check_counter "$counter" "$log" 60
    ok "4 processes on 2 hosts: counter exact (60), fences rise strictly with it"
}

case_create_race_never_stalls_other_names() {
    start_hosts
    exec 8>"$M2/locks/$RUN-held"
    # a write-open of a held name returns at once (a watching descriptor) ...
    local t0; t0=$(now_ms)
    exec 9>"$M1/locks/$RUN-held" || fail "write-open of a held lock failed"
    [ $(( $(now_ms) - t0 )) -lt 1000 ] || fail "write-open of a held name waited"
    echo 5s >&9 2>/dev/null && fail "the write-open of a held lock owns it"
    exec 9>&-
    ( set -o noclobber; echo > "$M1/locks/$RUN-held" ) 2>/dev/null && fail "noclobber create of a held lock"
    # ... a blocking flock on it parks, while other names on the mount stay fast
    flock "$M1/locks/$RUN-held" true 8>&- 2>/dev/null &
    local waiter=$!
    sleep 0.2
    t0=$(now_ms)
    for i in 1 2 3 4 5; do
        exec 7>"$M1/locks/$RUN-other$i"; exec 7>&-
        test -e "$M1/locks/$RUN-nothere$i" && fail "phantom"
    done
    local dt=$(( $(now_ms) - t0 ))
    [ $dt -lt 1000 ] || fail "other names stalled for $dt ms behind a waiting flock"
    kill -0 $waiter 2>/dev/null || fail "flock of a held lock returned"
    exec 8>&-
    wait $waiter || fail "the waiting flock did not get the lock once released"
    ok "creates and opens never wait, noclobber is EEXIST; other names not stalled ($dt ms)"
}

case_open_never_waits_classic_idioms() {
    start_hosts
    local f1="$M1/locks/$RUN-idiom" f2="$M2/locks/$RUN-idiom"
    # the other host holds the lock longer than any timeout of the daemon
    ( flock "$f2" -c "sleep 6; touch '$T/letting-go'" ) &
    local holder=$!
    wait_until 10 present "$f1" || fail "holder never appeared"
    local t0 dt rc=0; t0=$(now_ms)
    exec 200>"$f1" || fail "exec 200> of a held lock failed"
    flock -n 200 && fail "flock -n 200 got a held lock"
    ( flock -n 9 || exit 7 ) 9>"$f1" || rc=$?
    dt=$(( $(now_ms) - t0 ))
    [ $rc -eq 7 ] || fail "( flock -n 9 || exit 7 ) 9>f exited $rc, not 7"
    [ $dt -lt 1000 ] || fail "open + flock -n twice took $dt ms"
    echo 5s >&200 2>/dev/null && fail "a TTL write on a watching descriptor succeeded"
    # 200>&-: an inherited copy of the descriptor flock'ed below would keep
    # its lock alive after the shell's exec 200>&- (python would wait on itself)
    python3 - "$f1" > "$T/py.out" 200>&- <<'PY' &
import fcntl, sys, time
t0 = time.monotonic()
with open(sys.argv[1], "a") as f:       # open never waits ...
    print("opened %.3f" % (time.monotonic() - t0), flush=True)
    fcntl.lockf(f, fcntl.LOCK_EX)       # ... lockf blocks until granted
    print("locked", flush=True)
    time.sleep(0.3)
PY
    local py=$!
    wait_until 10 grep -q opened "$T/py.out" || fail "python open(f, 'a') did not return"
    awk '/^opened/ { exit !($2 < 1) }' "$T/py.out" || fail "python open(f, 'a') waited: $(cat "$T/py.out")"
    flock -w 30 200 || fail "exec 200>f; flock -w 30 200 did not get the lock"
    [ -e "$T/letting-go" ] || fail "flock -w got the lock while the other host held it"
    present "$f2" || fail "the lock is not visible on the other host"
    exec 200>&-
    wait $py || fail "python open('a') + lockf failed"
    grep -q locked "$T/py.out" || fail "python lockf never got the lock"
    wait $holder
    # exec 9<>f; flock 9: the fence read afterwards is the descriptor's own
    ( flock "$f2" -c 'sleep 1' ) &
    holder=$!
    wait_until 3 present "$f1"
    exec 9<>"$f1" || fail "exec 9<> of a held lock"
    flock -w 10 9 || fail "flock 9"
    local lines; lines="$(cat <&9)"
    echo "$lines" | grep -Eq '^lockId=[A-Za-z0-9_-]{22}$' || fail "owning read shows no lockId: $lines"
    [ "$(echo "$lines" | sed -n 's/^fence=//p')" = "$(field fence "$f2")" ] || fail "fence is not the holder's"
    exec 9>&-
    wait $holder
    wait_until 3 absent "$f2" || fail "a lock was left behind"
    ok "exec 200>f + flock -w/-n, ( flock -n 9 || exit 7 ) 9>f, open('a') + lockf, exec 9<>f + flock 9"
}

case_posix_locks() {
    start_hosts
    python3 - "$M1/locks/$RUN-posix" "$M2/locks/$RUN-posix" <<'PY' || fail "POSIX locks"
import errno, fcntl, os, sys, time
a, b = sys.argv[1], sys.argv[2]
fa = os.open(a, os.O_RDWR | os.O_CREAT)           # owns through create
fcntl.lockf(fa, fcntl.LOCK_EX | fcntl.LOCK_NB)     # and as a POSIX lock
try:
    fcntl.lockf(fa, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 5); sys.exit("range lock accepted")
except OSError as e:
    assert e.errno == errno.ENOLCK, e
fb = os.open(b, os.O_RDONLY)
try:
    fcntl.lockf(fb, fcntl.LOCK_SH | fcntl.LOCK_NB); sys.exit("second host got it")
except OSError as e:
    assert e.errno in (errno.EAGAIN, errno.EACCES), e
import struct
# F_GETLK from the other host reports a holder (remote: l_pid 0)
lk = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
res = struct.unpack("hhqqi", fcntl.fcntl(fb, fcntl.F_GETLK, lk))
assert res[0] == fcntl.F_WRLCK and res[4] == 0, res
fcntl.lockf(fa, fcntl.LOCK_UN)                     # POSIX unlock releases it
time.sleep(0.05)
assert not os.path.exists(b)
fcntl.lockf(fb, fcntl.LOCK_SH)                     # blocking, granted (shared = exclusive)
assert os.path.exists(a)
os.close(fb)                                       # any close by the owner releases
deadline = time.time() + 2
while os.path.exists(a) and time.time() < deadline: time.sleep(0.01)
assert not os.path.exists(a)
os.close(fa)
PY
    ok "fcntl/lockf: whole-file locks are the distributed lock, ranges ENOLCK, F_GETLK, close releases"
}

case_xattrs_and_metrics() {
    start_hosts
    exec 9<>"$M1/locks/$RUN-x"
    local fence; fence="$(sed -n 's/^fence=//p' <&9)"
    [ "$(getfattr --only-values -n user.syncguard.fence "$M2/locks/$RUN-x")" = "$fence" ] ||
        fail "xattr fence"
    getfattr -d "$M2/locks/$RUN-x" | grep -q 'user.syncguard.expiresAtMs' || fail "xattr list"
    getfattr -n user.syncguard.lockId "$M2/locks/$RUN-x" 2>/dev/null && fail "lockId as xattr"
    grep -q '^syncguardfs_locks_held 1$' "$M1/metrics" || fail "held gauge"
    grep -q 'syncguardfs_operations_total{op="acquire",result="ok"} 1' "$M1/metrics" || fail "ops"
    grep -q '^# TYPE syncguardfs_backend_latency_seconds summary' "$M1/metrics" || fail "latency"
    [ "$(stat -f -c %l "$M1")" = 1536 ] || fail "statfs namelen $(stat -f -c %l "$M1")"
    # a stat asks the backend once (its LOOKUP), not twice (LOOKUP and GETATTR)
    lookups() { sed -n 's/^syncguardfs_backend_latency_seconds_count{op="lookup"} //p' "$M2/metrics"; }
    local before; before=$(lookups)
    stat "$M2/locks/$RUN-x" >/dev/null || fail "stat"
    [ $(( $(lookups) - before )) -eq 1 ] || fail "stat made $(( $(lookups) - before )) backend reads"
    touch "$M1/locks/$RUN-x" || fail "touch"
    python3 -c 'import os; os.ftruncate(9, 0); os.utime(9)' || fail "truncate/utimens on the owner"
    present "$M2/locks/$RUN-x" || fail "touch/truncate changed the lock"
    exec 9>&-
    ok "xattrs show the public fields, metrics count, statfs 1536, touch/truncate are no-ops"
}

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

case_backend_outage_then_recovery() {
    [ "$BACKEND" = redis ] || exit 77
    local port=$((SG_TEST_REDIS_PORT_BASE + 21))
    "$SG_REDIS_CTL" start e2eoutage "$port" --appendonly yes --appendfsync always
    URL="redis://127.0.0.1:$port?connect_timeout_ms=300"
    start_hosts "ttl=10000"   # survives an outage of up to about 2/3 of its TTL
    exec 9>"$M1/locks/$RUN-held"
    "$SG_REDIS_CTL" stop e2eoutage
    ( exec 8>"$M1/locks/$RUN-new" ) 2>"$T/err" && fail "acquired during an outage"
    grep -q "Input/output error" "$T/err" || fail "outage errno: $(cat "$T/err")"
    if test -e "$M2/locks/$RUN-held"; then fail "stat succeeded during an outage"; fi
    "$SG_REDIS_CTL" restart e2eoutage
    local ok=0
    for _ in 1 2 3 4 5; do ( exec 8>"$M1/locks/$RUN-new" ) 2>/dev/null && { ok=1; break; }; sleep 0.2; done
    [ $ok = 1 ] || fail "no recovery after the backend came back"
    present "$M2/locks/$RUN-held" || fail "the held lock did not survive a short outage"
    kill -0 "$(cat "$T/m1.pid")" || fail "daemon died"
    exec 9>&-
    "$SG_REDIS_CTL" stop e2eoutage
    ok "outage: EIO while the backend is down, locks kept, recovery without a restart"
}

case_counter_across_backend_restart() {
    [ "$BACKEND" = redis ] || exit 77
    local port=$((SG_TEST_REDIS_PORT_BASE + 22))
    "$SG_REDIS_CTL" start e2ecounter "$port" --appendonly yes --appendfsync always
    URL="redis://127.0.0.1:$port?connect_timeout_ms=300"
    start_hosts
    local k="$RUN-counter" counter="$T/counter" log="$T/fences"
    echo 0 > "$counter"; : > "$log"
    worker() {
        local mnt="$1" done=0
        while [ $done -lt 12 ]; do
            # during the outage the lock cannot be taken: try again, as a caller would
            if counter_section "$mnt" "$k" "$counter" "$log" 2>/dev/null; then
                done=$((done + 1))
            else
                sleep 0.1
            fi
        done
    }
    local pids=()
    for m in "$M1" "$M2" "$M1"; do worker "$m" & pids+=($!); done
    sleep 0.3
    "$SG_REDIS_CTL" kill9 e2ecounter
    sleep 0.5
    "$SG_REDIS_CTL" restart e2ecounter
    for p in "${pids[@]}"; do wait "$p" || fail "a worker failed"; done
    check_counter "$counter" "$log" 36
    "$SG_REDIS_CTL" stop e2ecounter
    ok "mutual exclusion across a kill -9 and restart of Redis: counter exact, fences rising"
}

case_break_readdir_shared_and_relock() {
    start_daemon "$M1" "$T/state1" "allow_break"
    start_daemon "$M2" "$T/state2" "on_loss=signal:USR1"
    # many locks: ls pages through them (128 per READDIR page)
    python3 - "$M2/locks" "$RUN" <<'PY' &
import os, sys, time
d, run = sys.argv[1], sys.argv[2]
fds = [os.open(f"{d}/{run}-many-{i}", os.O_RDWR | os.O_CREAT) for i in range(300)]
time.sleep(20)
PY
    local many=$!
    wait_until 15 present "$M1/locks/$RUN-many-299" || fail "300 locks not held"
    local n; n=$(ls "$M1/locks" | grep -c -- "^$RUN-many-")
    [ "$n" -eq 300 ] || fail "ls shows $n of 300 locks"
    kill $many; wait $many 2>/dev/null || true
    # root on an allow_break mount breaks another host's lock (logged); the owner loses it
    python3 - "$M2/locks/$RUN-brk" "$M1/locks/$RUN-brk" <<'PY' || fail "break / relock"
import fcntl, os, signal, subprocess, sys, time
mine, other = sys.argv[1], sys.argv[2]
lost = []
signal.signal(signal.SIGUSR1, lambda *a: lost.append(1))
fd = os.open(mine, os.O_RDONLY | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_SH)           # LOCK_SH is taken as exclusive
try:
    fd2 = os.open(other, os.O_RDONLY)
    fcntl.flock(fd2, fcntl.LOCK_SH | fcntl.LOCK_NB); sys.exit("two shared holders")
except BlockingIOError:
    pass
first = dict(l.split("=", 1) for l in os.pread(fd, 4096, 0).decode().split())
os.unlink(other)                          # root, allow_break: broken
deadline = time.time() + 5
while not lost and time.time() < deadline: time.sleep(0.05)
assert lost, "owner not told of the loss"
fcntl.flock(fd, fcntl.LOCK_EX)            # lost → a fresh acquisition, new fence
now = dict(l.split("=", 1) for l in os.pread(fd, 4096, 0).decode().split())
assert now["fence"] > first["fence"] and now["lockId"] != first["lockId"], (first, now)
os.close(fd); os.close(fd2)
PY
    grep -q "allow_break: root broke the lock" "$T/m1.log" || fail "break not logged"
    ok "ls pages 300 locks; LOCK_SH is exclusive; allow_break breaks (logged); a lost flock re-acquires with a new fence"
}

case_waiters_do_not_pin_threads() {
    start_hosts
    exec 8>"$M2/locks/$RUN-busy"
    # 30 blocked flock waiters on m1: parked requests, not 30 busy worker threads
    local pids=()
    for i in $(seq 1 30); do
        flock -w 20 "$M1/locks/$RUN-busy" true 2>/dev/null 8>&- &   # not inheriting fd 8
        pids+=($!)
    done
    wait_until 5 grep -q '^syncguardfs_waiters 30$' "$M1/metrics" ||
        fail "waiters: $(grep '^syncguardfs_waiters ' "$M1/metrics")"
    local t0; t0=$(now_ms)
    for i in 1 2 3 4 5; do
        exec 7>"$M1/locks/$RUN-free$i"; exec 7>&-
        stat "$M1/locks" >/dev/null
    done
    local dt=$(( $(now_ms) - t0 ))
    [ $dt -lt 1000 ] || fail "other calls stalled for $dt ms behind 30 waiters"
    exec 8>&-   # release on m2: every waiter gets its turn (remote: by polling)
    for p in "${pids[@]}"; do wait "$p" || fail "a waiter did not get the lock"; done
    ok "30 parked flock waiters; other calls on the mount took $dt ms; all waiters served"
}

case_java_filechannel_lock() {
    command -v javac >/dev/null && command -v java >/dev/null || { echo "no JDK: skipping" >&2; exit 77; }
    start_hosts
    cat > "$T/Hold.java" <<'JAVA'
import java.nio.channels.*; import java.nio.file.*;
public class Hold { public static void main(String[] a) throws Exception {
    try (FileChannel c = FileChannel.open(Paths.get(a[0]), StandardOpenOption.READ,
            StandardOpenOption.WRITE, StandardOpenOption.CREATE)) {
        FileLock l = c.lock();                      // whole file: the distributed lock
        System.out.println("locked");
        Thread.sleep(Long.parseLong(a[1]));
        l.release();
    } } }
JAVA
    cat > "$T/Probe.java" <<'JAVA'
import java.nio.channels.*; import java.nio.file.*;
public class Probe { public static void main(String[] a) throws Exception {
    try (FileChannel c = FileChannel.open(Paths.get(a[0]), StandardOpenOption.READ)) {
        FileLock l = c.tryLock(0L, Long.MAX_VALUE, true);
        System.out.println(l == null ? "held" : "free");
        try { c.tryLock(0L, 10L, true); System.out.println("range accepted"); }
        catch (java.io.IOException e) { System.out.println("range refused"); }
    } } }
JAVA
    cat > "$T/Wait.java" <<'JAVA'
import java.io.RandomAccessFile; import java.nio.channels.*;
public class Wait { public static void main(String[] a) throws Exception {
    try (RandomAccessFile f = new RandomAccessFile(a[0], "rw")) {  // opens at once
        System.out.println("opened"); System.out.flush();
        FileLock l = f.getChannel().lock();                        // blocks until granted
        System.out.println("locked"); System.out.flush();
        l.release();
    } } }
JAVA
    javac -d "$T" "$T/Hold.java" "$T/Probe.java" "$T/Wait.java" || fail "javac"
    java -cp "$T" Hold "$M1/locks/$RUN-java" 3000 > "$T/hold.out" &
    local holder=$!
    wait_until 10 grep -q locked "$T/hold.out" || fail "Java could not lock"
    [ "$(java -cp "$T" Probe "$M2/locks/$RUN-java")" = "held
range refused" ] || fail "Java on the other host: $(java -cp "$T" Probe "$M2/locks/$RUN-java")"
    java -cp "$T" Wait "$M2/locks/$RUN-java" > "$T/wait.out" &
    local waiter=$!
    wait_until 10 grep -q opened "$T/wait.out" || fail "RandomAccessFile(f, rw) did not open a held lock"
    grep -q locked "$T/wait.out" && fail "FileChannel.lock on the other host got a held lock"
    wait $holder
    wait $waiter || fail "Java FileChannel.lock() waiter failed"
    grep -q locked "$T/wait.out" || fail "FileChannel.lock() never got the lock"
    wait_until 3 absent "$M2/locks/$RUN-java" || fail "FileLock.release did not release"
    ok "Java FileChannel.lock is the distributed lock across hosts (a 'rw' waiter blocks, then gets it); byte ranges are refused"
}

case_grant_after_interrupt_is_given_back() {
    [ "$BACKEND" = redis ] || exit 77
    local port=$((SG_TEST_REDIS_PORT_BASE + 23))
    "$SG_REDIS_CTL" start e2eslow "$port" --enable-debug-command yes
    URL="redis://127.0.0.1:$port"
    start_hosts "retry_delay=50,max_delay=100"
    local k="$RUN-late"
    exec 8>"$M2/locks/$k"
    # the waiter parks on m1 and polls every 50-100 ms
    flock -w 1 "$M1/locks/$k" true 8>&- &
    local waiter=$!
    sleep 0.3
    exec 8>&-                                    # m2 lets go ...
    wait_until 2 absent "$M2/locks/$k" || fail "m2 did not release"
    # ... and Redis stalls, so m1's next attempt is in flight when flock's alarm fires
    redis-cli -p "$port" DEBUG SLEEP 1.5 >/dev/null &
    local sleeper=$!
    local rc=0
    wait $waiter || rc=$?
    [ $rc -ne 0 ] || echo "note: the waiter got the lock before the stall (timing)" >&2
    wait $sleeper
    # whatever m1 was granted for the interrupted waiter, it gave back
    wait_until 3 absent "$M2/locks/$k" || fail "a lock granted after the interrupt was kept"
    local ok_acq ok_rel
    ok_acq=$(sed -n 's/^syncguardfs_operations_total{op="acquire",result="ok"} //p' "$M1/metrics")
    ok_rel=$(sed -n 's/^syncguardfs_operations_total{op="release",result="ok"} //p' "$M1/metrics")
    [ "$ok_acq" = "$ok_rel" ] || fail "m1 acquired $ok_acq and released $ok_rel"
    grep -q '^syncguardfs_locks_held 0$' "$M1/metrics" || fail "m1 still holds a lock"
    "$SG_REDIS_CTL" stop e2eslow
    ok "an acquire that succeeds after its waiter was interrupted is released (acquired $ok_acq, released $ok_rel)"
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

case_on_loss_group_reaches_the_command() {
    start_hosts "on_loss=signal:TERM:group"
    local k="$RUN-group"
    # flock(1) opened the file; the command it runs is in its process group
    setsid flock -n "$M1/locks/$k" bash -c 'trap "echo lost > $0; exit 0" TERM; while :; do sleep 0.1; done' \
        "$T/cmd.sig" &
    local f=$!
    wait_until 3 present "$M2/locks/$k" || fail "not held"
    delete_lock "$k"
    wait_until 10 test -s "$T/cmd.sig" || fail "the command under flock was not signalled"
    wait $f 2>/dev/null || true
    ok "on_loss=signal:TERM:group signals flock(1)'s command, not just flock"
}

case_lost_lock_reads_estale_not_enoent() {
    start_hosts
    local k="$RUN-stale"
    exec 9<>"$M1/locks/$k"
    delete_lock "$k"
    wait_until 5 grep -q '^syncguardfs_locks_lost_total 1' "$M1/metrics" || fail "loss not noticed"
    cat <&9 >/dev/null 2>"$T/err" && fail "read of a lost lock succeeded"
    grep -q "Stale file handle" "$T/err" || fail "cat <&fd on a lost lock: $(cat "$T/err")"
    exec 8>"$M2/locks/$k"   # the name is taken again elsewhere: a fresh inode
    python3 - "$M1/locks/$k" <<'PY' || fail "fstat of the lost descriptor"
import errno, os, sys
st = os.fstat(9)
assert st.st_nlink == 0, st
assert os.stat(sys.argv[1]).st_ino != st.st_ino, "the re-acquired name kept the lost inode"
try:
    os.write(9, b"10s"); sys.exit("write on a lost lock succeeded")
except OSError as e:
    assert e.errno == errno.ESTALE, e
PY
    exec 9>&- 8>&-
    ok "a lost descriptor: fstat answers (nlink 0), read/write ESTALE; the re-acquired name has a fresh inode"
}

case_stalled_backend_holder_told_first() {
    local port=$((${SG_TEST_REDIS_PORT_BASE:-17000} + 40)) target
    case "$BACKEND" in
    redis) target="${URL#redis://}"; target="${target%%/*}" ;;
    postgres) target="127.0.0.1:${SG_TEST_PG_PORT:?}" ;;
    firestore) target="$FIRESTORE_EMULATOR_HOST" ;;
    esac
    python3 "$(dirname "$0")/stall_proxy.py" "$port" "${target%:*}" "${target##*:}" > "$T/proxy.out" &
    local proxy=$!
    PIDS+=("$proxy")
    wait_until 5 grep -q ready "$T/proxy.out" || fail "proxy did not start"
    local url1="$URL"
    case "$BACKEND" in
    redis) url1="redis://127.0.0.1:$port" ;;
    postgres) url1="${URL/:${SG_TEST_PG_PORT}/:$port}" ;;
    esac
    ( URL="$url1"; FIRESTORE_EMULATOR_HOST="127.0.0.1:$port"; start_daemon "$M1" "$T/state1" "ttl=3000" )
    start_daemon "$M2" "$T/state2" "ttl=3000"
    python3 - "$M1/locks" "$M2/locks" "$RUN" "$proxy" "$BACKEND" <<'PY' || fail "a holder heard of its loss after another host could take the lock"
import fcntl, os, select, signal, sys, threading, time
m1, m2, run, proxy, backend = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
tolerance = 0 if backend == "redis" else 1000
now = lambda: time.time() * 1000
keys = [f"{run}-stall{i}" for i in range(3)]
fds = {}
for k in keys:                     # three locks taken at staggered times
    fds[k] = os.open(os.path.join(m1, k), os.O_RDWR | os.O_CREAT)
    time.sleep(0.4)
last_exp, other_at, told_at = {}, {}, {}
stop = False
def watch():                       # the other host: read expiry, try flock -n every 10 ms
    while not stop:
        for k in keys:
            if k in other_at:
                continue
            p = os.path.join(m2, k)
            try:
                fd = os.open(p, os.O_RDONLY | os.O_CREAT)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                other_at[k] = now()
                fds["other-" + k] = fd
                continue
            except OSError:
                pass
            try:
                text = os.pread(fd, 4096, 0).decode()
                f = dict(l.split("=", 1) for l in text.split())
                if "expiresAtMs" in f:
                    last_exp[k] = int(f["expiresAtMs"])
            except (OSError, ValueError):
                pass
            os.close(fd)
        time.sleep(0.01)
t = threading.Thread(target=watch); t.start()
time.sleep(1.5)
os.kill(proxy, signal.SIGUSR1)     # the network to the backend stalls (no reset)
stalled_at = now()
p = select.poll()
for k in keys:
    p.register(fds[k], select.POLLPRI)
deadline = time.time() + 30
while len(told_at) < len(keys) and time.time() < deadline:
    for fd, ev in p.poll(100):
        k = next(k for k in keys if fds[k] == fd)
        if ev & (select.POLLERR | select.POLLPRI) and k not in told_at:
            told_at[k] = now()
            p.unregister(fd)
time.sleep(max(0, 4.5 - (now() - stalled_at) / 1000))  # let the other host take them
stop = True; t.join()
ok = True
for k in keys:
    if k not in told_at:
        print(f"{k}: holder never told within 30 s"); ok = False; continue
    expiry = last_exp[k] + tolerance
    margin = expiry - told_at[k]
    other = other_at.get(k)
    print(f"{backend} {k}: margin {margin:.0f} ms (expiry - POLLERR), other host "
          f"{'took it %.0f ms after POLLERR' % (other - told_at[k]) if other else 'did not take it'}")
    if margin <= 0 or (other is not None and other < told_at[k]):
        ok = False
sys.exit(0 if ok else 1)
PY
    kill -USR2 "$proxy" 2>/dev/null || true
    ok "stalled backend: every holder heard of its loss before another host could take the lock"
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

"case_$1"
