#!/usr/bin/env bash
# Peer servers for `lockd-bench http --target etcd|redis`.
#
#   bench/peers.sh install   installs etcd-server, redis-server and
#                            protobuf-compiler + libprotobuf-dev (etcd-client's
#                            build needs protoc and the well-known .proto
#                            files) from the Debian/Ubuntu archive when
#                            missing; safe to run again.
#   bench/peers.sh check     prints the installed versions, or exits 1
#                            naming what is missing.
#
# This script never starts a server: the benchmark starts its own on free
# loopback ports with data in its scratch directory (bench/src/peers.rs).
# Note that the Debian packages may enable and start system services
# (redis on 6379, etcd on 2379); the benchmark does not use them.
set -euo pipefail

# binary name -> Debian package that provides it
# ("protos" stands for google/protobuf/descriptor.proto & co, which protoc
# needs for etcd's API and Debian ships separately from protoc.)
declare -A PACKAGE=(
    [etcd]=etcd-server
    [redis-server]=redis-server
    [protoc]=protobuf-compiler
    [protos]=libprotobuf-dev
)
ORDER=(etcd redis-server protoc protos)
PROTOS=/usr/include/google/protobuf/descriptor.proto

# Prints the path of binary $1 (on PATH or in /usr/bin), or nothing.
find_bin() {
    if [ "$1" = protos ]; then
        [ -f "$PROTOS" ] && echo "$PROTOS"
        return 0
    fi
    command -v "$1" 2>/dev/null || { [ -x "/usr/bin/$1" ] && echo "/usr/bin/$1"; } || true
}

# Prints the first line of the version of binary $1 at path $2.
version_of() {
    case "$1" in
        etcd) "$2" --version 2>&1 | head -n1 ;;
        redis-server) "$2" --version 2>&1 | head -n1 ;;
        protoc) "$2" --version 2>&1 | head -n1 ;;
        protos) dpkg-query -W -f='libprotobuf-dev ${Version}' libprotobuf-dev 2>/dev/null || echo present ;;
    esac
}

missing_packages() {
    local bin
    for bin in "${ORDER[@]}"; do
        [ -n "$(find_bin "$bin")" ] || echo "${PACKAGE[$bin]}"
    done
}

cmd_check() {
    local bin path status=0
    for bin in "${ORDER[@]}"; do
        path=$(find_bin "$bin")
        if [ -n "$path" ]; then
            printf '%-13s %s (%s)\n' "$bin" "$(version_of "$bin" "$path")" "$path"
        else
            printf '%-13s MISSING (package %s)\n' "$bin" "${PACKAGE[$bin]}" >&2
            status=1
        fi
    done
    if [ "$status" -ne 0 ]; then
        echo "run: $0 install" >&2
    fi
    return "$status"
}

cmd_install() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "all peers installed"
        cmd_check
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "no apt-get here: install ${missing[*]} with your package manager" >&2
        return 1
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only when a missing package is unknown to
    # them (a fresh container has none).
    local pkg need_update=0
    for pkg in "${missing[@]}"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            need_update=1
        fi
    done
    if [ "$need_update" -eq 1 ]; then
        "${sudo[@]}" apt-get update -q
    fi
    echo "installing: ${missing[*]}"
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    cmd_check
}

case "${1:-}" in
    install) cmd_install ;;
    check) cmd_check ;;
    *)
        echo "usage: $0 install|check" >&2
        exit 2
        ;;
esac
