#!/usr/bin/env bash
# Installs the system packages secnet's lab, tests and benchmarks use (Debian/Ubuntu).
# iproute2: namespaces, veth, bridges, VXLAN; nftables: strict mode and load balancing;
# tcpdump: the capture proofs; iputils-ping: reachability checks; procps/psmisc: process
# control in the lab; util-linux: nsenter/unshare; python3: the HTTP server and client the
# end-to-end tests run inside endpoints; gcc/libc6-dev: crates with C parts (ring); iperf3:
# the benchmark bed (`secnet-lab bench`, whose smoke mode runs in the tests). The peers the
# full bench compares with (wireguard-go, wireguard-tools, boringtun-cli) are installed by
# the bench itself on its first run (`--no-install` skips them instead).
set -euo pipefail
pkgs=(iproute2 nftables tcpdump iputils-ping procps psmisc util-linux python3 gcc libc6-dev ca-certificates iperf3)
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
# sudo resets PATH, so a toolchain installed by rustup for root is not on it.
if ! command -v cargo >/dev/null 2>&1 && [ -x /root/.cargo/bin/cargo ]; then
    export PATH="/root/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install a Rust toolchain (rustup, Rust >= 1.85) first" >&2
    exit 1
fi
