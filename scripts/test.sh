#!/usr/bin/env bash
# The README's test command: builds the binaries the end-to-end tests drive, then runs every
# test of the workspace. Needs root (the tests create network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "the tests create network namespaces and need root: run as root (sudo)" >&2
    exit 1
fi
# sudo resets PATH, so a toolchain installed by rustup for root is not on it.
if ! command -v cargo >/dev/null 2>&1 && [ -x /root/.cargo/bin/cargo ]; then
    export PATH="/root/.cargo/bin:$PATH"
fi
bash scripts/check-layering.sh
cargo build --workspace --bins --locked
cargo test --workspace --locked -- --test-threads="${SECNET_TEST_THREADS:-2}"
