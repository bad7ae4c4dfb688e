#!/usr/bin/env bash
# tests/install/check-install.sh CHECK — what a packager and a new user see
# after `meson install`: the build is installed into a DESTDIR and CHECK is one of
#   tree        the installed files and nothing private (syncguard_backend.h ...)
#   pkgconfig   Cflags without defines, no Requires.private; a program links
#               with `pkg-config --libs` (shared) and `--static` (libsyncguard.a)
#   symbols     `nm -D --defined-only` == the functions declared in syncguard.h
#   cxx         the installed header compiles as C++11/17/20
#   unit        `systemd-analyze verify` of the installed unit (77 if unavailable)
#   man         the man pages render with `man -l` without warnings
# Environment (set by tests/install/meson.build): SG_BUILD_ROOT, SG_SOURCE_ROOT,
# MESON, SG_PREFIX, SG_BINDIR, SG_LIBDIR, SG_INCLUDEDIR, SG_MANDIR, SG_DOCDIR,
# SG_UNITDIR, SG_SANITIZE, SG_HAVE_FS. Exit 77 = skip.
set -euo pipefail
check="${1:?check name}"
: "${SG_BUILD_ROOT:?run through meson test}"

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# Each check installs into its own DESTDIR (a second or two), so checks can
# run in parallel and never see a stale tree.
T="$(mktemp -d /tmp/sg-install.XXXXXX)"
trap 'rm -rf "$T"' EXIT
D="$T/root"
$MESON install -C "$SG_BUILD_ROOT" --no-rebuild --destdir "$D" >"$T/install.log" 2>&1 ||
    { cat "$T/install.log" >&2; fail "meson install --destdir failed"; }

LIBDIR="$D$SG_LIBDIR"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D"
unset PKG_CONFIG_LIBDIR
SAN=()
case "${SG_SANITIZE:-none}" in none | "") ;; *) SAN=("-fsanitize=$SG_SANITIZE") ;; esac

# gcc's own list of the functions syncguard.h declares (not static inline).
declared_functions() {
    printf '#include <syncguard.h>\n' > "$T/decl.c"
    gcc -I"$D$SG_INCLUDEDIR" -fsyntax-only -aux-info "$T/decl.txt" "$T/decl.c"
    grep -F "syncguard.h:" "$T/decl.txt" | grep -v '\*/ static ' |
        sed -E 's/^.*[ *](sg_[A-Za-z0-9_]+) \(.*$/\1/' | sort -u
}

case "$check" in
tree)
    want=("$SG_LIBDIR/libsyncguard.a" "$SG_LIBDIR/libsyncguard.so"
          "$SG_LIBDIR/pkgconfig/libsyncguard.pc" "$SG_INCLUDEDIR/syncguard.h"
          "$SG_MANDIR/man3/libsyncguard.3" "$SG_DOCDIR/README.md" "$SG_DOCDIR/install.md"
          "$SG_DOCDIR/library.md" "$SG_DOCDIR/filesystem.md" "$SG_DOCDIR/decisions.md")
    [ "$SG_HAVE_FS" = 1 ] && want+=("$SG_BINDIR/syncguardfs" "$SG_MANDIR/man8/syncguardfs.8"
        "$SG_UNITDIR/syncguardfs@.service" "$SG_DOCDIR/examples/syncguardfs.fstab")
    for f in "${want[@]}"; do [ -e "$D$f" ] || fail "not installed: $f"; done
    # the soname chain: .so -> .so.0.MINOR (0.x: no ABI promise across minors)
    soname=$(readelf -d "$LIBDIR/libsyncguard.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
    [[ "$soname" =~ ^libsyncguard\.so\.[0-9]+(\.[0-9]+)?$ ]] || fail "soname $soname"
    [ -e "$LIBDIR/$soname" ] || fail "no $soname in libdir"
    # only the public header; the backend writers' header stays private in 0.x
    hdrs=$(cd "$D$SG_INCLUDEDIR" && find . -type f | sort | tr '\n' ' ')
    [ "$hdrs" = "./syncguard.h " ] || fail "headers installed: $hdrs"
    if [ "$SG_HAVE_FS" = 1 ]; then
        u="$D$SG_UNITDIR/syncguardfs@.service"
        grep -q '@[A-Za-z_]*@' "$u" && fail "unsubstituted @VAR@ in the unit: $(grep '@' "$u")"
        grep -q "^ExecStart=$SG_BINDIR/syncguardfs " "$u" || fail "ExecStart is not $SG_BINDIR/syncguardfs"
        grep -q '^Type=notify$' "$u" || fail "unit is not Type=notify"
        grep -q '^ExecStopPost=-.*fusermount3 -q\?uz %f$' "$u" || fail "no stale-mount recovery"
        # fstab: mount(8) runs mount.fuse3 for type fuse.syncguardfs, which runs
        # `syncguardfs` from PATH — so the binary must be named exactly that.
        grep -Eq '^[^#].*[[:space:]]fuse\.syncguardfs[[:space:]]' "$D$SG_DOCDIR/examples/syncguardfs.fstab" ||
            fail "fstab example has no fuse.syncguardfs line"
    fi
    ok "installed tree: library, header, .pc, man pages, unit, fstab example, docs"
    ;;
pkgconfig)
    cflags=$(pkg-config --cflags libsyncguard | sed "s/ *$//")
    [ "$cflags" = "-I$D$SG_INCLUDEDIR" ] || [ -z "$cflags" ] || fail "Cflags: $cflags"
    pkg-config --static --cflags libsyncguard | grep -q -- '-D' && fail "private defines in Cflags"
    [ -z "$(pkg-config --print-requires-private libsyncguard)" ] || fail "Requires.private is set"
    static_libs=$(pkg-config --static --libs libsyncguard)
    case " $static_libs " in *-lpgport* | *-lpgcommon*) fail "static libs: $static_libs" ;; esac
    # shared
    # shellcheck disable=SC2046
    gcc "${SAN[@]}" -o "$T/shared" "$SG_SOURCE_ROOT/tests/install/link_test.c" \
        $(pkg-config --cflags --libs libsyncguard) || fail "cannot link with pkg-config --libs"
    readelf -d "$T/shared" | grep -q 'NEEDED.*libsyncguard\.so' || fail "shared: no libsyncguard NEEDED"
    LD_LIBRARY_PATH="$LIBDIR" "$T/shared" || fail "shared program failed"
    # static: libsyncguard.a, its dependencies from Libs.private (shared ones)
    # shellcheck disable=SC2046
    gcc "${SAN[@]}" -o "$T/static" "$SG_SOURCE_ROOT/tests/install/link_test.c" \
        $(pkg-config --cflags libsyncguard) ${static_libs/-lsyncguard/-l:libsyncguard.a} ||
        fail "cannot link libsyncguard.a with pkg-config --static --libs: $static_libs"
    readelf -d "$T/static" | grep -q 'NEEDED.*libsyncguard' && fail "static: still needs libsyncguard.so"
    "$T/static" || fail "static program failed"
    ok "pkg-config: clean Cflags, links shared and static ($static_libs)"
    ;;
symbols)
    declared_functions > "$T/want"
    [ -s "$T/want" ] || fail "no declarations found"
    nm -D --defined-only "$LIBDIR/libsyncguard.so" | awk '$2 ~ /^[TWDBRVi]$/ { print $3 }' |
        sed 's/@.*//' | sort -u > "$T/have"
    if ! diff -u "$T/want" "$T/have" > "$T/diff"; then
        echo "--- declared in syncguard.h / +++ exported by libsyncguard.so" >&2
        cat "$T/diff" >&2
        fail "exported symbols differ from the public API"
    fi
    ok "exports are exactly the $(wc -l < "$T/want") functions declared in syncguard.h"
    ;;
cxx)
    command -v g++ >/dev/null || { echo "no g++: skipping"; exit 77; }
    for std in c++11 c++17 c++20; do
        # shellcheck disable=SC2046
        g++ -std=$std -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags libsyncguard) \
            "$SG_SOURCE_ROOT/tests/install/cxx_header.cpp" || fail "syncguard.h as $std"
    done
    # shellcheck disable=SC2046
    g++ -std=c++11 "${SAN[@]}" -o "$T/cxx" "$SG_SOURCE_ROOT/tests/install/cxx_header.cpp" \
        $(pkg-config --cflags --libs libsyncguard) || fail "C++ program does not link"
    LD_LIBRARY_PATH="$LIBDIR" "$T/cxx" || fail "C++ program failed"
    ok "installed syncguard.h compiles as C++11/17/20 and links from C++"
    ;;
unit)
    [ "$SG_HAVE_FS" = 1 ] || { echo "no syncguardfs in this build"; exit 77; }
    command -v systemd-analyze >/dev/null || { echo "no systemd-analyze: skipping"; exit 77; }
    # verify needs the instance's paths to exist: the unit's own binaries are
    # under DESTDIR, so point a copy at them; everything else is verified as is.
    inst="$T/syncguardfs@run-locks.service"
    sed "s#$SG_BINDIR/syncguardfs#$D$SG_BINDIR/syncguardfs#" \
        "$D$SG_UNITDIR/syncguardfs@.service" > "$T/syncguardfs@.service"
    ln -s "syncguardfs@.service" "$inst"
    out=$(cd "$T" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$inst" 2>&1) || {
        echo "$out" >&2
        # a container without a usable systemd cannot verify at all
        grep -qiE 'Failed to (initialize|connect|create|setup)|No such file or directory.*(bus|/run/systemd)' <<< "$out" &&
            { echo "systemd-analyze cannot run here: skipping"; exit 77; }
        fail "systemd-analyze verify"
    }
    [ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify warned"; }
    ok "systemd-analyze verify: the installed unit is clean"
    ;;
man)
    command -v man >/dev/null || { echo "no man-db: skipping"; exit 77; }
    pages=("$D$SG_MANDIR/man3/libsyncguard.3")
    [ "$SG_HAVE_FS" = 1 ] && pages+=("$D$SG_MANDIR/man8/syncguardfs.8")
    for p in "${pages[@]}"; do
        out=$(MANWIDTH=80 MAN_KEEP_FORMATTING= man --warnings=w,mac,break -l "$p" 2>"$T/err" | sed 's/.\x08//g') ||
            fail "man -l $p"
        [ -s "$T/err" ] && { cat "$T/err" >&2; fail "warnings rendering $p"; }
        # (here-strings: with pipefail, `echo | grep -q` fails when grep exits first)
        grep -q '^SYNOPSIS' <<< "$out" || fail "$p has no SYNOPSIS"
        grep -q '^DESCRIPTION' <<< "$out" || fail "$p has no DESCRIPTION"
    done
    ok "man pages render without warnings: ${pages[*]##*/}"
    ;;
*) fail "unknown check $check" ;;
esac
