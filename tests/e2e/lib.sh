# tests/e2e/lib.sh — helpers for end-to-end cases through real mounts.
# Each case runs in its own process with two daemons ("hosts") m1 and m2 on
# one backend ($SG_E2E_URL, default $SG_TEST_REDIS_URL). Exit 77 = skip.
set -euo pipefail
# Debian's own tools first: a version manager's shims (pyenv) cost a few hundred ms per
# python3 start, which loaded machines turn into seconds.
PATH="/usr/bin:/bin:$PATH"

SGFS="${SGFS:?path to syncguardfs (set by meson)}"
BACKEND="${SG_E2E_BACKEND:-redis}"
case "$BACKEND" in
redis)
    URL="${SG_TEST_REDIS_URL:-}"
    # delete a lock behind the daemons' back: KEY is the user key
    delete_lock() { redis-cli -p "$SG_TEST_REDIS_PORT" DEL "syncguard:$1" >/dev/null; } ;;
postgres)
    URL="${SG_TEST_PG_URL:-}"
    delete_lock() { psql "$URL" -qAt -c "DELETE FROM syncguard_locks WHERE key = '$1'" >/dev/null; } ;;
firestore)
    URL="${SG_TEST_FS_URL:-}"
    delete_lock() {
        curl -s -f -X DELETE -H 'Authorization: Bearer owner' \
            "http://$FIRESTORE_EMULATOR_HOST/v1/projects/${URL#firestore://}/databases/(default)/documents/locks/$1" >/dev/null
    } ;;
*) echo "unknown backend $BACKEND" >&2; exit 1 ;;
esac
export -f delete_lock
export URL
[ -n "$URL" ] || { echo "no $BACKEND server: run through scripts/test" >&2; exit 1; }
[ -e /dev/fuse ] || { echo "no /dev/fuse: skipping" >&2; exit 77; }

T="$(mktemp -d /tmp/sg-e2e.XXXXXX)"
M1="$T/m1" M2="$T/m2"
mkdir -p "$M1" "$M2" "$T/state1" "$T/state2"
PIDS=()
RUN="r$$x$RANDOM"   # unique key prefix for this run

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# start_daemon MOUNT STATE_DIR [extra -o options]
start_daemon() {
    local mnt="$1" state="$2" extra="${3:-}"
    local opts="ttl=2000,acquire_timeout=1500,state_dir=$state"
    [ -n "$extra" ] && opts="$opts,$extra"
    "$SGFS" -f -o "$opts" "$URL" "$mnt" >>"$T/$(basename "$mnt").log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do
        [ -e "$mnt/metrics" ] && { echo "$pid" > "$T/$(basename "$mnt").pid"; return 0; }
        kill -0 "$pid" 2>/dev/null || { cat "$T/$(basename "$mnt").log" >&2; fail "daemon for $mnt died"; }
        sleep 0.05
    done
    fail "mount $mnt did not appear"
}

cleanup() {
    local rc=$?
    for m in "$T"/m*; do
        mountpoint -q "$m" 2>/dev/null && fusermount3 -u -z "$m" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.1
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for l in "$T"/*.log; do [ -f "$l" ] && { echo "--- $l"; tail -20 "$l"; }; done >&2
    fi
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT

# wait_until SECONDS CMD... : poll (10 ms) until CMD succeeds.
wait_until() {
    local limit="$1"; shift
    local end=$(( $(date +%s%N) + limit * 1000000000 ))
    while ! "$@" 2>/dev/null; do
        [ "$(date +%s%N)" -lt "$end" ] || return 1
        sleep 0.01
    done
}
absent() { ! test -e "$1"; }
present() { test -e "$1"; }
field() { sed -n "s/^$1=//p" "$2"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

start_hosts() {
    start_daemon "$M1" "$T/state1" "${1:-}"
    start_daemon "$M2" "$T/state2" "${1:-}"
}

# One critical section under flock on MOUNT: read the counter, append
# "value fence" to LOG (the fence read from the owning descriptor), increment.
counter_section() {
    local mnt="$1" key="$2" counter="$3" log="$4"
    flock -w 30 "$mnt/locks/$key" bash -c '
        fence=$(sed -n "s/^fence=//p" "$0")
        [ -n "$fence" ] || exit 3
        n=$(cat "$1"); echo "$n $fence" >> "$2"; echo $((n + 1)) > "$1"' \
        "$mnt/locks/$key" "$counter" "$log"
}

# The counter is exact and the fences rise strictly with it.
check_counter() {
    local counter="$1" log="$2" want="$3"
    [ "$(cat "$counter")" -eq "$want" ] || fail "lost updates: counter $(cat "$counter") != $want"
    sort -n "$log" | awk 'NR > 1 && ($1 != pn + 1 || $2 <= pf) { bad = 1 } { pn = $1; pf = $2 }
        END { exit bad }' || fail "fences do not rise with the counter: $(sort -n "$log" | head)"
}
