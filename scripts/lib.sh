# scripts/lib.sh — shared helpers for the project's bash scripts (sourced).
# shellcheck shell=bash

SG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SG_ROOT

# Debian packages the build, the tests and the demo need.
SG_PACKAGES=(gcc meson ninja-build pkg-config libfuse3-dev fuse3 libhiredis-dev libpq-dev
             libcurl4-openssl-dev libcjson-dev libcmocka-dev libssl-dev libutf8proc-dev
             redis-server redis-tools postgresql-15 postgresql-client-15 python3 attr curl
             util-linux procps g++ man-db groff-base)

sg_log() { printf '==> %s\n' "$*" >&2; }
sg_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Install whatever is missing (apt-get update once, only when needed).
sg_install_deps() {
    local missing=() p
    for p in "${SG_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    sg_log "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    # The redis-server package starts a system instance on 6379; ours use their own ports.
}

# Configure (once) and build into $1 with extra meson options.
sg_build() {
    local dir="$1"; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$SG_ROOT" "$@" >/dev/null
    fi
    ninja -C "$dir" >/dev/null || ninja -C "$dir"
}
