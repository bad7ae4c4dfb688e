# shellcheck shell=bash
# tests/e2e/cases_waiting.sh — sourced by cases.sh: waiters: wake-ups across
# hosts, releases nobody announces, waiters across a backend restart, create
# races, threads not pinned by waiters, grants after an interrupt.

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
