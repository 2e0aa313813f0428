//! This node's desired data path, from the cluster state: the endpoints it hosts, the
//! networks they are on with every remote endpoint of those networks, and the strict-mode
//! rules that keep encrypted networks' VXLAN inside the tunnel. Pure: the reconciler
//! (`daemon/dataplane.rs`) observes, plans with `secnet_dataplane::plan` and applies.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use secnet_dataplane::{
    Desired, DesiredEndpoint, DesiredInterface, DesiredNetwork, RemoteEndpoint, StrictPolicy,
};
use secnet_model::{ClusterState, NodeId};

/// Where an encrypted network's VXLAN runs: between tunnel addresses, so that its frames
/// enter the WireGuard tunnel instead of the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptedPath {
    /// Encrypted networks are left out of the data path entirely (their devices removed):
    /// the strict-mode rules are not known to be in place, so nothing of theirs may exist.
    Unavailable,
    /// Strict mode is in place; VXLAN of encrypted networks is programmed between tunnel
    /// addresses (this node's and each peer's, from the replicated WireGuard table).
    Ready,
}

/// This node's desired data path, and the endpoints whose interfaces on encrypted networks
/// had to be left out (with why): they are not ready.
///
/// Unencrypted networks run VXLAN between data-path addresses. Encrypted networks run it
/// between tunnel addresses (`local` = this node's, FDB destinations = the peers'), and only
/// when `encrypted` is [`EncryptedPath::Ready`] and this node has a tunnel address; a remote
/// endpoint whose node has no tunnel address yet gets no FDB entry (it is unreachable, never
/// reached in clear).
pub fn desired_for(
    state: &ClusterState,
    me: NodeId,
    local_vtep: IpAddr,
    underlay_mtu: u32,
    encrypted: EncryptedPath,
) -> (Desired, BTreeMap<String, String>) {
    let port = state
        .config
        .as_ref()
        .map(|c| c.data_path_port)
        .unwrap_or(secnet_types::DEFAULT_DATA_PATH_PORT);
    let tunnel_ip = |node: &NodeId| state.wireguard.get(node).map(|w| IpAddr::V4(w.tunnel_ip));
    let my_tunnel_ip = match encrypted {
        EncryptedPath::Ready => tunnel_ip(&me),
        EncryptedPath::Unavailable => None,
    };
    let mut networks = BTreeMap::new();
    let mut endpoints = BTreeMap::new();
    let mut waiting = BTreeMap::new();
    for ep in state.endpoints.values().filter(|e| e.node == me) {
        let mut interfaces = Vec::new();
        for (i, a) in ep.attachments.iter().enumerate() {
            let Some(net) = state.networks.get(&a.network_id) else {
                continue;
            };
            let local = match (net.encrypted, my_tunnel_ip) {
                (false, _) => local_vtep,
                (true, Some(ip)) => ip,
                (true, None) => {
                    let why = match encrypted {
                        EncryptedPath::Unavailable => "strict mode is not in place on this node",
                        EncryptedPath::Ready => "this node has no tunnel address yet",
                    };
                    waiting.insert(
                        ep.name.clone(),
                        format!(
                            "network {} is encrypted and {why}; its interface waits",
                            net.name
                        ),
                    );
                    continue;
                }
            };
            // The MTU follows the underlay: encrypted networks' effective MTU already takes
            // WireGuard's overhead off.
            let mtu = net.effective_mtu(underlay_mtu, local_vtep.is_ipv6());
            interfaces.push(DesiredInterface {
                ifname: a.ifname.clone(),
                network_id: net.id.clone(),
                ip: a.ip,
                prefix_len: net.subnet.prefix_len(),
                mac: a.mac,
                mtu,
                gateway: net.gateway,
                default_route: i == 0,
            });
            networks.entry(net.id.clone()).or_insert_with(|| {
                let remotes = state
                    .endpoints
                    .values()
                    .filter(|e| e.node != me)
                    .flat_map(|e| e.attachments.iter().map(move |a| (e.node, a)))
                    .filter(|(_, a)| a.network_id == net.id)
                    .filter_map(|(node, a)| {
                        let vtep = if net.encrypted {
                            tunnel_ip(&node)?
                        } else {
                            state.nodes.get(&node)?.data_path_addr
                        };
                        Some(RemoteEndpoint {
                            ip: a.ip,
                            mac: a.mac,
                            vtep,
                        })
                    })
                    .collect();
                DesiredNetwork {
                    id: net.id.clone(),
                    vni: net.vni,
                    subnet: net.subnet,
                    gateway: net.gateway,
                    mtu,
                    local_vtep: local,
                    port,
                    remotes,
                }
            });
        }
        endpoints.insert(
            ep.name.clone(),
            DesiredEndpoint {
                name: ep.name.clone(),
                interfaces,
            },
        );
    }
    (
        Desired {
            networks,
            endpoints,
        },
        waiting,
    )
}

/// The strict-mode rules this node needs: every encrypted network's VNI in the cluster (not
/// only the local ones, so that a packet for any of them is caught), the VXLAN port and the
/// tunnel device and network.
pub fn strict_policy_for(state: &ClusterState) -> StrictPolicy {
    StrictPolicy {
        vxlan_port: state
            .config
            .as_ref()
            .map(|c| c.data_path_port)
            .unwrap_or(secnet_types::DEFAULT_DATA_PATH_PORT),
        tunnel_ifname: super::tunnel::TUN_NAME.to_string(),
        tunnel_net: secnet_model::TUNNEL_SUBNET,
        encrypted_vnis: state
            .networks
            .values()
            .filter(|n| n.encrypted)
            .map(|n| n.vni)
            .collect(),
        senders: encrypted_senders(state),
    }
}

/// Per encrypted network's VNI, the tunnel addresses of the nodes with endpoints on it.
fn encrypted_senders(state: &ClusterState) -> BTreeMap<u32, BTreeSet<std::net::Ipv4Addr>> {
    let mut senders: BTreeMap<u32, BTreeSet<std::net::Ipv4Addr>> = BTreeMap::new();
    for ep in state.endpoints.values() {
        let Some(wg) = state.wireguard.get(&ep.node) else {
            continue;
        };
        for a in &ep.attachments {
            if let Some(net) = state.networks.get(&a.network_id).filter(|n| n.encrypted) {
                senders.entry(net.vni).or_default().insert(wg.tunnel_ip);
            }
        }
    }
    senders
}

#[cfg(test)]
#[path = "datapath_tests.rs"]
mod tests;
