#!/usr/bin/env bash
# Installs the system packages secnet's lab, tests and benchmarks use (Debian/Ubuntu).
# iproute2: namespaces, veth, bridges, VXLAN; nftables: strict mode and load balancing;
# tcpdump: the capture proofs; iputils-ping: reachability checks; procps/psmisc: process
# control in the lab.
set -euo pipefail
pkgs=(iproute2 nftables tcpdump iputils-ping procps psmisc ca-certificates)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install a Rust toolchain (rustup, Rust >= 1.85) first" >&2
    exit 1
fi
