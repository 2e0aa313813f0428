//! The objects kept in the replicated cluster state.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::ids::NodeId;

/// What a node does in the cluster: a manager is a Raft voter holding the whole state; a
/// worker watches the state from a manager. The same type names the role in certificates.
pub use secnet_types::{Mac, Role};

/// Whether the leader hears from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Heartbeats arrive.
    Ready,
    /// No heartbeat for longer than the node timeout.
    Down,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ready => "ready",
            NodeStatus::Down => "down",
        }
    }
}

/// A member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    pub hostname: String,
    pub role: Role,
    pub status: NodeStatus,
    /// Where other nodes reach this node's control API (mTLS).
    pub advertise_addr: SocketAddr,
    /// The address VXLAN / WireGuard traffic uses.
    pub data_path_addr: IpAddr,
    /// SHA-256 of the node's current certificate (lowercase hex). A peer presenting a
    /// certificate whose fingerprint is not in the node table is refused: removing the
    /// node revokes its certificate.
    pub cert_fingerprint: String,
    /// Prefixes of the node's underlay addresses and routes; IPAM never allocates a subnet
    /// overlapping one of them (Swarm does, moby #50011).
    pub underlay: Vec<IpNet>,
    /// Unix seconds when the node joined.
    pub joined_at: u64,
}

pub use secnet_types::{DEFAULT_CONTROL_PORT, DEFAULT_DATA_PATH_PORT, DEFAULT_WIREGUARD_PORT};

fn default_wireguard_port() -> u16 {
    DEFAULT_WIREGUARD_PORT
}

/// Cluster-wide settings fixed at `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub cluster_id: String,
    pub pools: secnet_ipam::PoolConfig,
    /// VXLAN UDP port (Swarm's `--data-path-port`).
    pub data_path_port: u16,
    /// UDP port of every node's WireGuard endpoint (`--wireguard-port`).
    #[serde(default = "default_wireguard_port")]
    pub wireguard_port: u16,
    /// How often the pre-shared-key ring rotates.
    pub key_rotation_interval_secs: u64,
    /// Unix seconds of `init`.
    pub created_at: u64,
}

/// What a user asks for with `secnet network create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    pub driver: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub encrypted: bool,
    /// Explicit MTU (`--opt mtu=N`); otherwise derived from the data-path interface.
    pub mtu: Option<u32>,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
}

/// An overlay network as replicated to every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub vni: u32,
    pub encrypted: bool,
    pub mtu: Option<u32>,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: u64,
}

/// Bytes one VXLAN encapsulation adds over an IPv4 underlay (outer IP 20, UDP 8, VXLAN 8,
/// inner Ethernet 14).
pub const VXLAN_OVERHEAD_V4: u32 = 50;
/// The same over an IPv6 underlay.
pub const VXLAN_OVERHEAD_V6: u32 = 70;
/// WireGuard's overhead over IPv4: outer IP 20, UDP 8, WireGuard header 16, tag 16.
pub const WIREGUARD_OVERHEAD_V4: u32 = 60;
/// The same over IPv6.
pub const WIREGUARD_OVERHEAD_V6: u32 = 80;
/// The smallest MTU we accept: IPv6's minimum link MTU.
pub const MIN_MTU: u32 = 1280;

impl Network {
    /// The MTU endpoints get: the explicit one, or the underlay MTU less the encapsulations
    /// this network's frames go through. Derived from the real underlay, unlike Swarm's fixed
    /// 1450/1424 that breaks on underlays below 1500 (libnetwork #2661).
    pub fn effective_mtu(&self, underlay_mtu: u32, underlay_is_v6: bool) -> u32 {
        if let Some(m) = self.mtu {
            return m;
        }
        underlay_mtu.saturating_sub(encapsulation_overhead(self.encrypted, underlay_is_v6))
    }
}

/// The bytes a network's frames lose to encapsulation: VXLAN, plus WireGuard on encrypted
/// networks. The one place the overhead is derived (endpoint MTUs and `--opt mtu` checks).
pub fn encapsulation_overhead(encrypted: bool, underlay_is_v6: bool) -> u32 {
    let (vx, wg) = if underlay_is_v6 {
        (VXLAN_OVERHEAD_V6, WIREGUARD_OVERHEAD_V6)
    } else {
        (VXLAN_OVERHEAD_V4, WIREGUARD_OVERHEAD_V4)
    };
    vx + if encrypted { wg } else { 0 }
}

/// A network namespace on one node with interfaces on one or more networks (what `secnet
/// endpoint create` and `secnet run` make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    /// Unique in the cluster.
    pub name: String,
    /// The node whose kernel holds the namespace.
    pub node: NodeId,
    /// One per network, in the order they were connected (`eth0` first).
    pub attachments: Vec<Attachment>,
    /// Unix seconds.
    pub created_at: u64,
}

/// An endpoint's interface on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network_id: String,
    /// `eth0`, `eth1`, ... inside the endpoint's namespace.
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub mac: Mac,
}
