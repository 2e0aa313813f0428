#!/usr/bin/env bash
# Checks the dependency picture of docs/architecture.md: the pure crates and the CLI link no
# TLS stack, no certificate generator and no Raft. Fails naming the crate and what it links.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(rustls|tokio-rustls|rcgen|openraft|redb|secnet-control|secnet-pki) '
status=0
for crate in secnet-types secnet-ipam secnet-model secnet-api secnet-cli; do
    tree=$(cargo tree --locked -p "$crate" -e normal --prefix none --format '{p}')
    linked=$(echo "$tree" | sed 's/ (.*//' | sort -u | grep -E "$forbidden" || true)
    if [ -n "$linked" ]; then
        echo "layering: $crate must not link: $(echo "$linked" | tr '\n' ' ')" >&2
        status=1
    fi
done
[ "$status" = 0 ] && echo "layering: types, ipam, model, api and cli link no TLS, PKI or Raft"
exit "$status"
