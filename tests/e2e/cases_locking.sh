# shellcheck shell=bash
# tests/e2e/cases_locking.sh — sourced by cases.sh: what a lock is through
# the mount: create/unlink, flock and POSIX locks across hosts, names, fences,
# TTL writes, xattrs and metrics, readdir, break, classic idioms, Java.

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
