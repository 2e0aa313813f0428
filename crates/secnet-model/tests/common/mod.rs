//! Builders shared by the integration tests of `secnet-model`.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net};
use secnet_ipam::PoolConfig;
use secnet_keys::secret::SecretBytes;
use secnet_model::{
    ClusterConfig, ClusterSecrets, ClusterState, Command, CommandResult, Endpoint, ModelError,
    Network, NetworkSpec, Node, NodeId, NodeStatus, Response, Role,
};

/// The id of the node that bootstraps the test clusters.
pub const FIRST: NodeId = NodeId(1);

/// Known secret bytes, so a test can look for their hex in output.
pub const CA_KEY: &[u8] = &[0xca, 0xfe, 0xba, 0xbe, 0x5e, 0xc2, 0xe7, 0x01];
pub const WORKER_TOKEN: &[u8] = &[0xde, 0xad, 0xbe, 0xef, 0x5e, 0xc2, 0xe7, 0x02];
pub const MANAGER_TOKEN: &[u8] = &[0xfe, 0xed, 0xfa, 0xce, 0x5e, 0xc2, 0xe7, 0x03];

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn net4(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn config(pool: &str, mask_length: u8) -> ClusterConfig {
    ClusterConfig {
        cluster_id: "test-cluster".into(),
        pools: PoolConfig {
            pools: vec![net4(pool)],
            mask_length,
        },
        data_path_port: 4789,
        wireguard_port: 51820,
        key_rotation_interval_secs: 3600,
        created_at: 1_700_000_000,
    }
}

pub fn secrets() -> ClusterSecrets {
    ClusterSecrets {
        ca_key: SecretBytes::from_slice(CA_KEY),
        worker_token: SecretBytes::from_slice(WORKER_TOKEN),
        manager_token: SecretBytes::from_slice(MANAGER_TOKEN),
    }
}

pub fn node(id: u64, role: Role, underlay: &[&str]) -> Node {
    Node {
        id: NodeId(id),
        hostname: format!("host{id}"),
        role,
        status: NodeStatus::Ready,
        advertise_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, id as u8)), 4243),
        data_path_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, id as u8)),
        cert_fingerprint: format!("fp-{id}"),
        underlay: underlay
            .iter()
            .map(|s| s.parse::<IpNet>().unwrap())
            .collect(),
        joined_at: 1_700_000_000u64.wrapping_add(id),
    }
}

pub fn bootstrap_cmd(pool: &str, mask_length: u8, first: Node) -> Command {
    Command::Bootstrap {
        config: config(pool, mask_length),
        ca_cert_der: vec![0x30, 0x82, 0x01, 0x0a],
        secrets: secrets(),
        node: first,
    }
}

/// A cluster on pool 10.20.0.0/16 with /26 subnets, bootstrapped by manager [`FIRST`].
pub fn cluster() -> ClusterState {
    cluster_with("10.20.0.0/16", 26, node(1, Role::Manager, &[]))
}

pub fn cluster_with(pool: &str, mask_length: u8, first: Node) -> ClusterState {
    let mut s = ClusterState::default();
    s.apply(bootstrap_cmd(pool, mask_length, first)).unwrap();
    s
}

/// A 24-hex-digit network id made of a number.
pub fn net_id(n: u64) -> String {
    format!("{n:024x}")
}

pub fn spec(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        driver: "overlay".into(),
        subnet: None,
        gateway: None,
        encrypted: false,
        mtu: None,
        attachable: true,
        labels: BTreeMap::new(),
    }
}

pub fn create_network_cmd(id: &str, spec: NetworkSpec) -> Command {
    Command::CreateNetwork {
        id: id.into(),
        spec,
        created_at: 1_700_000_100,
    }
}

/// Creates a network and returns it as stored.
pub fn create_network(s: &mut ClusterState, id: &str, spec: NetworkSpec) -> Network {
    match s.apply(create_network_cmd(id, spec)).unwrap() {
        Response::Network(n) => {
            assert_eq!(s.networks.get(id), Some(&n), "response = stored network");
            n
        }
        other => panic!("expected a network, got {other:?}"),
    }
}

pub fn create_endpoint_cmd(name: &str, node: u64, network: &str, ip: Option<Ipv4Addr>) -> Command {
    Command::CreateEndpoint {
        id: format!("ep-{name}"),
        name: name.into(),
        node: NodeId(node),
        network: network.into(),
        ip,
        created_at: 1_700_000_200,
    }
}

/// Creates an endpoint and returns it as stored.
pub fn create_endpoint(
    s: &mut ClusterState,
    name: &str,
    node: u64,
    network: &str,
    ip: Option<Ipv4Addr>,
) -> Endpoint {
    match s
        .apply(create_endpoint_cmd(name, node, network, ip))
        .unwrap()
    {
        Response::Endpoint(e) => {
            assert_eq!(
                s.endpoints.get(name),
                Some(&e),
                "response = stored endpoint"
            );
            e
        }
        other => panic!("expected an endpoint, got {other:?}"),
    }
}

pub fn json(s: &ClusterState) -> String {
    serde_json::to_string(s).unwrap()
}

/// Applies a command that must be refused, checks the state did not change, and returns the
/// error.
pub fn refused(s: &mut ClusterState, cmd: Command) -> ModelError {
    let before = json(s);
    let res: CommandResult = s.apply(cmd);
    let err = match res {
        Err(e) => e,
        Ok(r) => panic!("expected a refusal, got {r:?}"),
    };
    assert_eq!(
        before,
        json(s),
        "a refused command changed the state ({err:?})"
    );
    err
}
