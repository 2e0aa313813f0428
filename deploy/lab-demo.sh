#!/usr/bin/env bash
# The README demo, on a fresh Debian/Ubuntu machine, as root:
#
#   sudo bash deploy/lab-demo.sh            # release build (slower to build, what you deploy)
#   sudo bash deploy/lab-demo.sh --debug    # debug build (faster to build)
#   sudo bash deploy/lab-demo.sh --keep     # leave the lab running; remove it with
#                                           #   target/<profile>/secnet-lab down
#
# It installs what is missing (a C compiler and a Rust toolchain via rustup if there is no
# cargo; the lab's packages via deploy/install-deps.sh), builds the binaries, and runs
# `secnet-lab demo`: five hosts in network namespaces form a cluster (3 managers, 2 workers)
# and create three overlay networks. Nothing is configured in the root network namespace, and
# the lab removes its namespaces, daemons and files when it ends (also on Ctrl-C).
#
# Arguments other than --debug/--release go to `secnet-lab demo` (--keep, --prefix P).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "the lab creates network namespaces and needs root: run 'sudo bash $0'" >&2
    exit 1
fi

profile=release
demo_args=()
for arg in "$@"; do
    case "$arg" in
        --debug) profile=debug ;;
        --release) profile=release ;;
        *) demo_args+=("$arg") ;;
    esac
done

apt_install() {
    echo "== installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@"
}

# sudo resets PATH, so a toolchain installed by rustup for root is not on it.
if ! command -v cargo >/dev/null 2>&1 && [ -x /root/.cargo/bin/cargo ]; then
    export PATH="/root/.cargo/bin:$PATH"
fi

# Rust crates with C parts (ring) need a C compiler and the C library headers.
if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ "${SECNET_NO_RUSTUP:-0}" = 1 ]; then
        echo "cargo not found and SECNET_NO_RUSTUP=1: install Rust >= 1.85 first" >&2
        exit 1
    fi
    command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
    echo "== installing the Rust toolchain with rustup into /root/.cargo (set SECNET_NO_RUSTUP=1 to refuse)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --default-toolchain stable --no-modify-path
    export PATH="/root/.cargo/bin:$PATH"
    # So that `sudo bash scripts/test.sh` finds cargo too (sudo's PATH has /usr/local/bin).
    for tool in cargo rustc rustup; do
        [ -e "/usr/local/bin/$tool" ] || ln -s "/root/.cargo/bin/$tool" "/usr/local/bin/$tool"
    done
fi

bash deploy/install-deps.sh

target_dir="${CARGO_TARGET_DIR:-target}"
echo "== building the binaries ($profile)"
if [ "$profile" = release ]; then
    cargo build --release --bins --locked
else
    cargo build --bins --locked
fi

echo "== running the demo"
exec "$target_dir/$profile/secnet-lab" demo ${demo_args[@]+"${demo_args[@]}"}
