//! A small cluster state built through the model's own commands, shared by the unit tests
//! of the daemon's pure decisions (authorization, desired data path).
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use secnet_ipam::PoolConfig;
use secnet_keys::SecretBytes;
use secnet_model::{
    ClusterConfig, ClusterSecrets, ClusterState, Command, NetworkSpec, Node, NodeId, NodeStatus,
    Role, WireguardPeer,
};

/// Node 1 is a manager, nodes 2 and 3 workers.
pub const MANAGER: NodeId = NodeId(1);
pub const WORKER: NodeId = NodeId(2);
pub const OTHER_WORKER: NodeId = NodeId(3);

pub fn node(id: NodeId, role: Role) -> Node {
    let addr = Ipv4Addr::new(192, 0, 2, id.0 as u8);
    Node {
        id,
        hostname: format!("host{}", id.0),
        role,
        status: NodeStatus::Ready,
        advertise_addr: SocketAddr::new(IpAddr::V4(addr), 4243),
        data_path_addr: IpAddr::V4(addr),
        cert_fingerprint: format!("fp-{}", id.0),
        underlay: Vec::new(),
        joined_at: 1_700_000_000,
    }
}

pub fn apply(s: &mut ClusterState, cmd: Command) {
    s.apply(cmd).unwrap();
}

/// The three nodes, no networks or endpoints yet.
pub fn cluster() -> ClusterState {
    let mut s = ClusterState::default();
    apply(
        &mut s,
        Command::Bootstrap {
            config: ClusterConfig {
                cluster_id: "test-cluster".into(),
                pools: PoolConfig {
                    pools: vec!["10.10.0.0/16".parse().unwrap()],
                    mask_length: 24,
                },
                data_path_port: 4789,
                wireguard_port: 51820,
                key_rotation_interval_secs: 3600,
                created_at: 1_700_000_000,
            },
            ca_cert_der: vec![0x30],
            secrets: ClusterSecrets {
                ca_key: SecretBytes::from_slice(&[1; 8]),
                worker_token: SecretBytes::from_slice(&[2; 8]),
                manager_token: SecretBytes::from_slice(&[3; 8]),
            },
            node: node(MANAGER, Role::Manager),
        },
    );
    for id in [WORKER, OTHER_WORKER] {
        apply(
            &mut s,
            Command::AddNode {
                node: node(id, Role::Worker),
            },
        );
    }
    s
}

pub fn create_network(s: &mut ClusterState, name: &str, encrypted: bool) {
    apply(
        s,
        Command::CreateNetwork {
            id: format!("id-{name}"),
            spec: NetworkSpec {
                name: name.into(),
                driver: "overlay".into(),
                subnet: None,
                gateway: None,
                encrypted,
                mtu: None,
                attachable: true,
                labels: Default::default(),
            },
            created_at: 1_700_000_000,
        },
    );
}

pub fn create_endpoint(s: &mut ClusterState, name: &str, node: NodeId, network: &str) {
    apply(
        s,
        Command::CreateEndpoint {
            id: format!("id-{name}"),
            name: name.into(),
            node,
            network: network.into(),
            ip: None,
            created_at: 1_700_000_000,
        },
    );
}

/// Gives `node` a tunnel address 100.64.0.<id> without going through key registration.
pub fn set_tunnel(s: &mut ClusterState, node: NodeId) {
    s.wireguard.insert(
        node,
        WireguardPeer {
            public_key: format!("key-{}", node.0),
            tunnel_ip: tunnel_ip(node),
            rotation_requested: false,
        },
    );
}

pub fn tunnel_ip(node: NodeId) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, node.0 as u8)
}
