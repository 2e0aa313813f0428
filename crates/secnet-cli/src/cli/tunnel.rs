//! `secnet tunnel ...`: this node's WireGuard endpoint and its peers.

use clap::{Args, Subcommand};
use secnet_api::LocalRequest;

use super::{Invocation, ListFormat, Render};

pub(super) const TUNNEL_LONG_ABOUT: &str = "\
Show this node's WireGuard endpoint: one per host, on the data-path address, UDP port 51820,
with a TUN device (sntun0) holding the node's tunnel address (from 100.96.0.0/16). Every other
node of the cluster is a peer, keyed with its public key (registered by that node; private keys
never leave their node) and the pre-shared keys of the key ring: every key is installed, the
primary one is used for new handshakes.

Encrypted networks send their VXLAN between tunnel addresses, so it is sealed here; strict mode
(nftables) drops any of it that would take another way, and this command shows how much it
dropped.

Per peer: node, endpoint, tunnel address, the epoch of the pre-shared key of the session that
carries our traffic, seconds since the last handshake, bytes received and sent, handshake
failures and packets dropped as invalid (failed authentication, a replay, or a source address
the peer does not own). Endpoint-wide: datagrams dropped as garbage, from unknown keys,
handshakes refused by the rate limiter, and strict-mode drops.";

/// `secnet tunnel ...`
#[derive(Debug, Subcommand)]
pub enum TunnelCommand {
    /// List this node's WireGuard peers with handshake and traffic counters
    Ls(TunnelLsArgs),
}

/// `secnet tunnel ls`
#[derive(Debug, Args)]
pub struct TunnelLsArgs {
    /// Output format: table, or json (one object: the endpoint, its counters and `peers`).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

impl TunnelCommand {
    /// The request of each `secnet tunnel` command.
    pub(super) fn invocation(self) -> Invocation {
        match self {
            TunnelCommand::Ls(a) => {
                Invocation::short(LocalRequest::TunnelLs, Render::Tunnel { format: a.format })
            }
        }
    }
}
