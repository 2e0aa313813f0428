//! This node's WireGuard endpoint as the state wants it: the other nodes as peers, every
//! key of the ring with the primary's epoch, the cluster's port. The loop in
//! `daemon/tunnel.rs` hands them to `secnet-tunnel` when they change.

use std::net::SocketAddr;

use secnet_model::{ClusterState, Command, NodeId};
use secnet_tunnel::{PeerConfig, PresharedKey};

/// The TUN device's name in the host namespace.
pub const TUN_NAME: &str = "sntun0";
/// Keepalive towards every peer, so NAT state and handshakes stay fresh.
const KEEPALIVE_SECS: u16 = 25;

/// The cluster's WireGuard port (`--wireguard-port` at init).
pub fn wireguard_port(state: &ClusterState) -> u16 {
    state
        .config
        .as_ref()
        .map(|c| c.wireguard_port)
        .unwrap_or(secnet_model::DEFAULT_WIREGUARD_PORT)
}

/// The other nodes as WireGuard peers.
pub fn desired_peers(state: &ClusterState, me: NodeId) -> Vec<PeerConfig> {
    state
        .wireguard
        .iter()
        .filter(|(id, _)| **id != me)
        .filter_map(|(id, wg)| {
            let node = state.nodes.get(id)?;
            let public_key: secnet_tunnel::PublicKey = wg.public_key.parse().ok()?;
            Some(PeerConfig {
                public_key: public_key.0,
                endpoint: SocketAddr::new(node.data_path_addr, wireguard_port(state)),
                tunnel_ip: wg.tunnel_ip,
                keepalive: Some(KEEPALIVE_SECS),
            })
        })
        .collect()
}

/// Every key of the ring (pending ones too: installed for receiving before they are used)
/// and the primary's epoch; `None` before the leader seeded the ring.
pub fn desired_keys(state: &ClusterState) -> Option<(Vec<PresharedKey>, u64)> {
    let ring = state.key_ring.as_ref()?;
    let keys = ring
        .keys()
        .map(|k| PresharedKey::new(k.epoch, *k.secret.expose()))
        .collect();
    Some((keys, ring.primary().epoch))
}

/// The registration node `me` owes when the state does not hold `public` as its WireGuard
/// key: at first, after a rotation of its static key, or when another key was registered
/// (a restore, an interrupted rotation): the key the node holds wins.
pub fn key_registration(state: &ClusterState, me: NodeId, public: Option<&str>) -> Option<Command> {
    let public = public?;
    let registered = state.wireguard.get(&me).map(|w| w.public_key.as_str());
    (registered != Some(public)).then(|| Command::SetWireguardKey {
        id: me,
        public_key: public.to_string(),
    })
}
