# shellcheck shell=bash
# tests/e2e/cases_safety.sh — sourced by cases.sh: mutual exclusion and loss:
# killed holders, renewal and loss, counters under contention and across a
# backend restart, outages, stalled backends, what a holder is told.

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
