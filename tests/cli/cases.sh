#!/usr/bin/env bash
# tests/cli/cases.sh CASE — syncguard(1) against a real backend (and, where
# named, a real syncguardfs mount on the same backend). See tests/cli/lib.sh.
source "$(dirname "$0")/lib.sh"

case_acquire_extend_release_across_processes() {
    local k="$RUN-lease" out id exp1 exp2
    # a lockId may begin with '-' (base64url): it is an argument, not an option
    expect_rc 1 "$SG" release -AAAAAAAAAAAAAAAAAAAAA
    expect_rc 1 "$SG" extend -AAAAAAAAAAAAAAAAAAAAA 10s
    out="$("$SG" acquire -t 30s "$k")"
    id="$(field lockId <<<"$out")"
    [[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || fail "no lockId in: $out"
    [[ "$(field fence <<<"$out")" =~ ^[0-9]{15}$ ]] || fail "no fence in: $out"
    [ "$(field key <<<"$out")" = "$k" ] || fail "key line: $out"
    exp1="$(field expiresAtMs <<<"$out")"
    expect_rc 0 is_held "$k"
    # another process, lockId from the environment
    out="$(SYNCGUARD_LOCK_ID="$id" "$SG" extend 5m)"
    exp2="$(field expiresAtMs <<<"$out")"
    [ "$exp2" -gt $((exp1 + 200000)) ] || fail "extend did not move the expiry: $exp1 -> $exp2"
    # from stdin: a bare lockId, and acquire's whole output
    echo "$id" | "$SG" extend - 60s >/dev/null || fail "extend from stdin"
    "$SG" release - <<<"$out"$'\n'"lockId=$id" >/dev/null || fail "release of lock-file text from stdin"
    expect_rc 1 is_held "$k"
    expect_rc 1 "$SG" release "$id"                  # argv works too; now absent
    expect_rc 1 env SYNCGUARD_LOCK_ID="$id" "$SG" extend 5s
    # acquire's JSON on stdin
    "$SG" --json acquire -t 60s "$k" > "$T/lease.json"
    "$SG" release - < "$T/lease.json" || fail "release from acquire's JSON"
    expect_rc 1 is_held "$k"
    expect_rc 2 "$SG" release                        # no lockId anywhere
    expect_rc 2 "$SG" release - </dev/null
    expect_rc 2 "$SG" release not-a-lock-id
    ok "acquire in one process; extend/release in others by env, stdin, argv; absent → 1"
}

case_status_and_list() {
    local k="$RUN-st" id
    expect_rc 1 "$SG" status "$k"
    [ -z "$("$SG" status "$k")" ] || fail "free status printed something"
    id="$("$SG" acquire -t 60s "$k" | field lockId)"
    "$SG" acquire -t 60s "$RUN-st2" >/dev/null
    "$SG" status "$k" > "$T/st"
    grep -q "^lockId=" "$T/st" && fail "status shows the lockId"
    [ "$(field fence "$T/st")" = "$(backend_fields "$k" | cut -d' ' -f2)" ] || fail "status fence"
    grep -q '^keyHash=[0-9a-f]\{24\}$' "$T/st" || fail "no keyHash: $(cat "$T/st")"
    [ "$("$SG" list "$RUN-st")" = "$RUN-st"$'\n'"$RUN-st2" ] || fail "list: $("$SG" list "$RUN-st")"
    "$SG" list | grep -qx "$k" || fail "list without prefix"
    # keys that need encoding print as their lock file names, one line each
    "$SG" acquire -t 60s "$RUN/a%b"$'\n'"x" >/dev/null
    "$SG" list "$RUN/" | grep -qx "$RUN%2Fa%25b%0Ax" || fail "encoded list: $("$SG" list "$RUN/")"
    "$SG" release "$id"
    [ "$("$SG" list "$RUN-st")" = "$RUN-st2" ] || fail "released key still listed"
    ok "status exits 0 held / 1 free without a lockId; list pages, filters and encodes"
}

case_json_parses() {
    local k="$RUN-json"
    "$SG" --json acquire -t 60s "$k" > "$T/a.json"
    python3 -m json.tool "$T/a.json" >/dev/null || fail "acquire JSON: $(cat "$T/a.json")"
    python3 - "$T/a.json" <<'PY' || fail "acquire JSON fields"
import json, re, sys
d = json.load(open(sys.argv[1]))
assert re.fullmatch(r"[A-Za-z0-9_-]{22}", d["lockId"]) and re.fullmatch(r"\d{15}", d["fence"])
assert isinstance(d["expiresAtMs"], int) and d["ttlMs"] > 0
PY
    "$SG" status --json "$k" | python3 -m json.tool >/dev/null || fail "status JSON"
    "$SG" status --json "$k" | grep -q lockId\" && fail "status JSON has a lockId"
    "$SG" --json list "$RUN" | python3 -c 'import json,sys; assert json.load(sys.stdin)["keys"] == [sys.argv[1]]' "$k" ||
        fail "list JSON"
    SYNCGUARD_LOCK_ID="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lockId"])' "$T/a.json")" \
        "$SG" --json extend 60s | python3 -m json.tool >/dev/null || fail "extend JSON"
    "$SG" --json release - < "$T/a.json" | python3 -m json.tool >/dev/null || fail "release JSON"
    local rc=0
    "$SG" --json status "$k" > "$T/s.json" || rc=$?
    [ $rc -eq 1 ] && python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["held"] is False' "$T/s.json" ||
        fail "free status JSON"
    ok "--json output parses (acquire, status, list, extend, release)"
}

case_run_env_matches_backend() {
    local k="$RUN-env"
    "$SG" run "$k" -- sh -c 'printf "%s %s %s %s\n" "$SYNCGUARD_KEY" "$SYNCGUARD_LOCK_ID" \
        "$SYNCGUARD_FENCE" "$SYNCGUARD_EXPIRES_AT_MS" > $0.tmp; mv $0.tmp $0
        while [ ! -e $0.go ]; do sleep 0.02; done' "$T/env" &
    local pid=$!
    wait_until 10 test -e "$T/env" || fail "CMD did not start"
    local key id fence exp
    read -r key id fence exp < "$T/env"
    [ "$key" = "$k" ] || fail "SYNCGUARD_KEY=$key"
    [[ "$exp" =~ ^[0-9]{13}$ ]] || fail "SYNCGUARD_EXPIRES_AT_MS=$exp"
    [ "$(backend_fields "$k")" = "$id $fence" ] || fail "env '$id $fence' != backend '$(backend_fields "$k")'"
    touch "$T/env.go"
    wait $pid || fail "run exit $?"
    expect_rc 1 is_held "$k"                             # released when CMD ended
    ok "CMD's SYNCGUARD_LOCK_ID and SYNCGUARD_FENCE are the backend's record"
}

case_run_exit_status() {
    local k="$RUN-exit"
    expect_rc 0 "$SG" run "$k" true
    expect_rc 3 "$SG" run "$k" -- sh -c 'exit 3'
    expect_rc 137 "$SG" run "$k" -- sh -c 'kill -9 $$'
    expect_rc 127 "$SG" run "$k" -- /nonexistent/cmd
    expect_rc 1 is_held "$k"
    # CMD's own options are not syncguard's; CMD gets only inherited descriptors
    "$SG" run "$k" ls -l /proc/self/fd > "$T/fds" 9<"$T/fds"
    grep -q ' 9 -> ' "$T/fds" || fail "CMD lost an inherited descriptor"
    grep -q socket "$T/fds" && fail "CMD inherited a backend socket: $(cat "$T/fds")"
    ok "run exits with CMD's status (128+N when killed), releases, passes only inherited fds"
}

case_run_conflict_codes() {
    local k="$RUN-busy" id t0 t1 rc
    id="$("$SG" acquire -t 60s "$k" | field lockId)"
    expect_rc 1 "$SG" run -n "$k" touch "$T/ran"
    expect_rc 9 "$SG" run -n -E 9 "$k" touch "$T/ran"
    t0=$(date +%s%N)
    expect_rc 1 "$SG" run -w 1 "$k" touch "$T/ran"
    t1=$(date +%s%N)
    [ $(( (t1 - t0) / 1000000 )) -ge 900 ] || fail "-w 1 gave up after $(( (t1 - t0) / 1000000 )) ms"
    [ $(( (t1 - t0) / 1000000 )) -lt 3000 ] || fail "-w 1 took $(( (t1 - t0) / 1000000 )) ms"
    expect_rc 1 "$SG" acquire -n -t 5s "$k"
    [ ! -e "$T/ran" ] || fail "CMD ran without the lock"
    # the default waits without limit: it runs once the holder lets go
    ( sleep 1; "$SG" release "$id" ) &
    rc=0; "$SG" run "$k" touch "$T/ran" || rc=$?
    [ $rc -eq 0 ] && [ -e "$T/ran" ] || fail "waiting run: exit $rc"
    ok "-n conflict exits 1, -E 9 exits 9, -w 1 times out after ~1 s, default waits"
}

case_run_loss_signals_cmd_and_exits_75() {
    local k="$RUN-loss" rc=0
    "$SG" run -t 1500ms "$k" -- sh -c 'trap "echo TERM > $0.sig; exit 0" TERM
        echo up > $0.up; while :; do sleep 0.05; done' "$T/cmd" 2> "$T/err" &
    local pid=$!
    wait_until 10 test -e "$T/cmd.up" || fail "CMD did not start"
    delete_lock "$k"
    wait $pid || rc=$?
    [ $rc -eq 75 ] || fail "exit $rc after the lock was deleted, want 75"
    [ "$(cat "$T/cmd.sig" 2>/dev/null)" = TERM ] || fail "CMD did not get TERM"
    grep -q "lost the lock" "$T/err" || fail "no message: $(cat "$T/err")"
    # --on-loss picks the signal
    "$SG" run -t 1s --on-loss USR1 "$k" -- sh -c 'trap "echo USR1 > $0.sig; exit 0" USR1
        echo up > $0.up2; while :; do sleep 0.05; done' "$T/cmd" 2>/dev/null &
    pid=$!
    wait_until 10 test -e "$T/cmd.up2" || fail "CMD did not start"
    delete_lock "$k"
    rc=0; wait $pid || rc=$?
    [ $rc -eq 75 ] && [ "$(cat "$T/cmd.sig")" = USR1 ] || fail "--on-loss USR1: exit $rc, $(cat "$T/cmd.sig")"
    ok "a lock deleted behind run's back: CMD gets the loss signal, run exits 75"
}

case_run_forwards_signals() {
    local k="$RUN-sig" s rc
    for s in TERM HUP; do
        rm -f "$T/up"
        # default dispositions: under nohup (or as a background job of a script) HUP
        # (INT, QUIT) arrive ignored, stay ignored across exec, and a non-interactive
        # sh cannot trap them — CMD would never see the forwarded signal
        env --default-signal=HUP,INT,QUIT "$SG" run "$k" -- sh -c 'trap "echo $1 > $0.got; exit 7" '"$s"'
            echo up > $0; while :; do sleep 0.05; done' "$T/up" "$s" &
        local pid=$!
        wait_until 10 test -e "$T/up" || fail "CMD did not start"
        kill -"$s" "$pid"
        rc=0; wait $pid || rc=$?
        [ $rc -eq 7 ] || fail "SIG$s to run: exit $rc, want CMD's 7"
        [ "$(cat "$T/up.got")" = "$s" ] || fail "CMD did not get SIG$s"
        expect_rc 1 is_held "$k"
    done
    ok "TERM and HUP sent to syncguard run reach CMD; run exits with CMD's status and releases"
}

case_run_gives_cmd_the_terminal() {
    command -v script >/dev/null || exit 77
    local k="$RUN-tty"
    # script(1) runs the line on a new pty, as a terminal session's foreground job
    script -qec "\"$SG\" run $k sh -c 'ps -o pgid=,tpgid= -p \$\$' > $T/in; ps -o pgid=,tpgid= -p \$\$ > $T/out" /dev/null >/dev/null
    read -r pgid tpgid < "$T/in"
    [ "$pgid" = "$tpgid" ] || fail "CMD (group $pgid) is not the terminal's foreground group ($tpgid)"
    read -r pgid tpgid < "$T/out"
    [ "$pgid" = "$tpgid" ] || fail "the terminal was not given back (group $pgid, foreground $tpgid)"
    ok "on a terminal CMD's process group is the foreground one, and the terminal is given back"
}

case_run_against_a_mount() {
    local M="$T/m1" k="$RUN-mnt" rc
    start_mount "$M"
    # the mount holds → run -n cannot
    exec 9<>"$M/locks/$k"
    expect_rc 1 "$SG" run -n "$k" true
    exec 9>&-
    wait_until 3 absent "$M/locks/$k" || fail "the mount did not release"
    expect_rc 0 "$SG" run -n "$k" true
    # run holds → the mount's flock -n fails; the mount shows run's fence
    "$SG" run "$k" -- sh -c 'echo "$SYNCGUARD_FENCE" > $0; sleep 30' "$T/fence" &
    local pid=$!
    wait_until 10 test -s "$T/fence" || fail "CMD did not start"
    rc=0; flock -n "$M/locks/$k" true || rc=$?
    [ $rc -eq 1 ] || fail "flock -n on the mount: exit $rc while run holds"
    [ "$(field fence "$M/locks/$k")" = "$(cat "$T/fence")" ] || fail "the mount shows another fence"
    kill -TERM $pid
    rc=0; wait $pid || rc=$?
    [ $rc -eq 143 ] || fail "run exit $rc after TERM"
    wait_until 3 absent "$M/locks/$k" || fail "run did not release"
    flock -n "$M/locks/$k" true || fail "flock -n after run released"
    ok "run and a syncguardfs mount exclude each other on one key, both directions"
}

case_errors_exit_2_nothing_held() {
    local k="$RUN-err"
    expect_rc 2 "$SG" --backend 'redis://127.0.0.1:notaport' acquire -t 5s "$k"
    expect_rc 2 "$SG" --backend 'bogus://x' run "$k" true
    expect_rc 2 "$SG" --backend 'redis://127.0.0.1:1' run "$k" true    # backend down
    expect_rc 2 "$SG" --backend 'redis://127.0.0.1:1' acquire -t 5s "$k"
    expect_rc 2 "$SG" run -t 500ms "$k" true                           # TTL under 1 s
    expect_rc 2 "$SG" run -t 10x "$k" true
    expect_rc 2 "$SG" acquire -t 99999999999 "$k"
    expect_rc 2 "$SG" acquire "$k"                                     # acquire needs -t
    expect_rc 2 "$SG" run "" true                                      # bad keys
    expect_rc 2 "$SG" run "$(printf '%s\xff' "$k")" true
    expect_rc 2 "$SG" acquire -t 5s "$k$(head -c 600 /dev/zero | tr '\0' a)"
    expect_rc 2 "$SG" run -w abc "$k" true
    expect_rc 2 "$SG" run "$k"                                         # no CMD
    expect_rc 2 "$SG" frobnicate
    expect_rc 2 env -u SYNCGUARD_BACKEND "$SG" status "$k"
    expect_rc 2 "$SG" acquire -t 30s "$k-closed" >&-                  # nobody would see the lockId
    expect_rc 2 "$SG" acquire -t 30s "$k-full" > /dev/full
    [ "$("$SG" run "" true 2>&1 | wc -l)" -eq 1 ] || fail "not a one-line message"
    nothing_held "$RUN"
    ok "bad URL, backend down, bad TTL, bad key, usage: exit 2, one line, nothing held"
}

case_break_by_key() {
    local k="$RUN-brk" id
    id="$("$SG" acquire -t 30s "$k" | field lockId)"
    "$SG" break "$k" 2> "$T/err" || fail "break"
    grep -q "broke the lock" "$T/err" || fail "break said: $(cat "$T/err")"
    expect_rc 1 is_held "$k"
    expect_rc 1 "$SG" break "$k"
    expect_rc 1 "$SG" release "$id"                  # the old holder finds it gone
    ok "break deletes a lock by key (logged); the holder's release then finds it absent"
}

case_setup_checks() {
    local rc=0
    "$SG" setup > "$T/setup" 2> "$T/setup.err" || rc=$?
    [ $rc -eq 0 ] || fail "setup exit $rc: $(cat "$T/setup" "$T/setup.err")"
    grep -q '^access=ok$' "$T/setup" || fail "setup: $(cat "$T/setup")"
    "$SG" --json setup | python3 -m json.tool >/dev/null || fail "setup JSON"
    case "$BACKEND" in
    postgres)
        local url="$URL?table=cli_setup_$$&fence_table=cli_setup_fences_$$"
        "$SG" --backend "$url" setup >/dev/null || fail "setup of new tables"
        [ "$(psql "$URL" -qAt -c "SELECT count(*) FROM pg_tables WHERE tablename IN ('cli_setup_$$', 'cli_setup_fences_$$')")" = 2 ] ||
            fail "setup did not create the tables"
        psql "$URL" -qAt -c "DROP TABLE cli_setup_$$, cli_setup_fences_$$" >/dev/null ;;
    redis)
        # a server that can lose fence INCRs: a warning and exit 1
        local port=$((SG_TEST_REDIS_PORT_BASE + 40))
        "$SG_REDIS_CTL" start clinondurable "$port" --appendonly no
        rc=0
        "$SG" --backend "redis://127.0.0.1:$port" setup > "$T/setup" 2> "$T/setup.err" || rc=$?
        "$SG_REDIS_CTL" stop clinondurable
        [ $rc -eq 1 ] || fail "non-durable Redis: setup exit $rc"
        grep -q "not crash-safe" "$T/setup.err" || fail "no durability warning: $(cat "$T/setup.err")" ;;
    esac
    ok "setup: tables, access and (Redis) fence durability checked"
}

case_password_scrubbed() {
    [ "$BACKEND" = redis ] || exit 77
    local port=$((SG_TEST_REDIS_PORT_BASE + 41)) k="$RUN-pw"
    "$SG_REDIS_CTL" start cliauth "$port" --requirepass 'Sup3r-s3cret' --appendonly yes --appendfsync always
    "$SG" --backend "redis://:Sup3r-s3cret@127.0.0.1:$port" run "$k" -- \
        sh -c 'tr "\0" " " < /proc/$PPID/cmdline > $0' "$T/cmdline" 2> "$T/err" || fail "run with a password"
    grep -q "127.0.0.1:$port" "$T/cmdline" || fail "argv: $(cat "$T/cmdline")"
    grep -q Sup3r "$T/cmdline" && fail "password in argv: $(cat "$T/cmdline")"
    "$SG" --backend "redis://:Sup3r-s3cret@127.0.0.1:1" status "$k" 2>> "$T/err" && fail "status on a dead port"
    "$SG" --backend "redis://:wrong@127.0.0.1:$port" status "$k" 2>> "$T/err" && fail "wrong password accepted"
    grep -q -e Sup3r -e wrong "$T/err" && fail "password in a message: $(cat "$T/err")"
    "$SG_REDIS_CTL" stop cliauth
    ok "a password in --backend is scrubbed from argv and never printed"
}

case_run_backend_outage_is_loss() {
    [ "$BACKEND" = redis ] || exit 77
    local port=$((SG_TEST_REDIS_PORT_BASE + 42)) k="$RUN-out" rc=0
    "$SG_REDIS_CTL" start clioutage "$port" --appendonly yes --appendfsync always
    "$SG" --backend "redis://127.0.0.1:$port" run -t 1500ms "$k" -- sh -c 'trap "exit 0" TERM
        echo up > $0; while :; do sleep 0.05; done' "$T/up" 2> "$T/err" &
    local pid=$!
    wait_until 10 test -e "$T/up" || fail "CMD did not start"
    "$SG_REDIS_CTL" stop clioutage
    wait $pid || rc=$?
    [ $rc -eq 75 ] || fail "exit $rc when the backend went away, want 75"
    ok "a backend outage longer than the lease is a loss: CMD signalled, exit 75"
}

"case_$1"
