# tests/cli/lib.sh — helpers for the syncguard(1) cases: the backend under
# test ($SG_CLI_BACKEND), ways to read and delete its lock records behind the
# tool's back, and mounts of syncguardfs for the cases that need one.
# Exit 77 = skip.
set -euo pipefail

SG="${SYNCGUARD:?path to syncguard (set by meson)}"
BACKEND="${SG_CLI_BACKEND:-redis}"
case "$BACKEND" in
redis) URL="${SG_TEST_REDIS_URL:-}" ;;
postgres) URL="${SG_TEST_PG_URL:-}" ;;
firestore) URL="${SG_TEST_FS_URL:-}" ;;
*) echo "unknown backend $BACKEND" >&2; exit 1 ;;
esac
[ -n "$URL" ] || { echo "no $BACKEND server: run through scripts/test" >&2; exit 1; }
export SYNCGUARD_BACKEND="$URL"
unset SYNCGUARD_LOCK_ID

T="$(mktemp -d /tmp/sg-cli.XXXXXX)"
PIDS=()
RUN="c$$x$RANDOM"   # unique key prefix for this run

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# expect_rc WANT CMD...: run CMD, fail unless it exits WANT.
expect_rc() {
    local want="$1" rc=0; shift
    "$@" || rc=$?
    [ "$rc" -eq "$want" ] || fail "exit $rc, want $want: $*"
}

# backend_fields KEY: "lockId fence" of KEY's record, read from the backend itself.
backend_fields() {
    case "$BACKEND" in
    redis) redis-cli -p "$SG_TEST_REDIS_PORT" GET "syncguard:$1" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["lockId"], d["fence"])' ;;
    postgres) psql "$URL" -qAt -F' ' -c "SELECT lock_id, fence FROM syncguard_locks WHERE key = '$1'" ;;
    firestore) curl -s -f -H 'Authorization: Bearer owner' \
        "http://$FIRESTORE_EMULATOR_HOST/v1/projects/${URL#firestore://}/databases/(default)/documents/locks/$1" |
        python3 -c 'import json,sys; f=json.load(sys.stdin)["fields"]; print(f["lockId"]["stringValue"], f["fence"]["stringValue"])' ;;
    esac
}

# delete_lock KEY: delete KEY's lock behind every client's back.
delete_lock() {
    case "$BACKEND" in
    redis)
        local id; id="$(backend_fields "$1" | cut -d' ' -f1)"
        redis-cli -p "$SG_TEST_REDIS_PORT" DEL "syncguard:$1" "syncguard:id:$id" >/dev/null ;;
    postgres) psql "$URL" -qAt -c "DELETE FROM syncguard_locks WHERE key = '$1'" >/dev/null ;;
    firestore) curl -s -f -X DELETE -H 'Authorization: Bearer owner' \
        "http://$FIRESTORE_EMULATOR_HOST/v1/projects/${URL#firestore://}/databases/(default)/documents/locks/$1" >/dev/null ;;
    esac
}

# nothing_held PREFIX: no live lock under PREFIX.
nothing_held() {
    local left; left="$("$SG" list "$1")"
    [ -z "$left" ] || fail "locks left behind: $left"
}

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
field() { sed -n "s/^$1=//p" "${2:--}"; }
is_held() { "$SG" status "$1" >/dev/null; }
is_free() { ! "$SG" status "$1" >/dev/null; }

# start_mount MOUNT: a syncguardfs daemon on the same backend (skips without FUSE).
start_mount() {
    local mnt="$1"
    [ -n "${SGFS:-}" ] && [ -e /dev/fuse ] || { echo "no syncguardfs or /dev/fuse: skipping" >&2; exit 77; }
    mkdir -p "$mnt" "$mnt.state"
    "$SGFS" -f -o "ttl=5000,acquire_timeout=1500,state_dir=$mnt.state" "$URL" "$mnt" \
        >>"$mnt.log" 2>&1 &
    PIDS+=("$!")
    wait_until 5 test -e "$mnt/metrics" || { cat "$mnt.log" >&2; fail "mount $mnt did not appear"; }
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
