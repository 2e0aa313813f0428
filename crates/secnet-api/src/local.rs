//! The local API: what `secnet` asks `secnetd` over the daemon's Unix socket (root only), and
//! what it answers. One request per frame, one response per request.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use secnet_model::{NetworkSpec, Role};

/// Options of `secnet init`. Address strings are resolved by the daemon, inside its own
/// network namespace, because interface names mean something only there.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InitRequest {
    /// `--advertise-addr`: IP or interface, optional `:PORT`.
    pub advertise_addr: Option<String>,
    /// `--listen-addr`: IP or interface, optional `:PORT` (default 0.0.0.0:2377).
    pub listen_addr: Option<String>,
    /// `--data-path-addr`: IP or interface, no port.
    pub data_path_addr: Option<String>,
    /// `--data-path-port` (VXLAN UDP port).
    pub data_path_port: Option<u16>,
    /// `--wireguard-port` (UDP port of every node's WireGuard endpoint).
    #[serde(default)]
    pub wireguard_port: Option<u16>,
    /// `--default-addr-pool`, repeatable.
    pub default_addr_pools: Vec<Ipv4Net>,
    /// `--default-addr-pool-mask-length`.
    pub default_addr_pool_mask_length: Option<u8>,
    /// `--key-rotation-interval` in seconds.
    pub key_rotation_interval_secs: Option<u64>,
    /// `--force-new-cluster`: restart a single-manager cluster from this node's data.
    pub force_new_cluster: bool,
}

/// Options of `secnet join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The full join token.
    pub token: String,
    /// `HOST:PORT` of a manager.
    pub remote: String,
    pub advertise_addr: Option<String>,
    pub listen_addr: Option<String>,
    pub data_path_addr: Option<String>,
}

/// A request from the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LocalRequest {
    Init(InitRequest),
    Join(JoinRequest),
    /// `join-token worker|manager [--rotate]`.
    JoinToken {
        role: Role,
        rotate: bool,
    },
    /// `leave [--force]`.
    Leave {
        force: bool,
    },
    NodeLs,
    NodeInspect {
        nodes: Vec<String>,
    },
    NodePromote {
        nodes: Vec<String>,
    },
    NodeDemote {
        nodes: Vec<String>,
    },
    NodeRm {
        nodes: Vec<String>,
        force: bool,
    },
    /// `node rotate-key [NODE]` (`None`: this node).
    NodeRotateKey {
        node: Option<String>,
    },
    NetworkCreate(NetworkSpec),
    /// `service create` (managers only).
    ServiceCreate(secnet_model::ServiceSpec),
    ServiceLs,
    /// `service ps`: the tasks of one service.
    ServicePs {
        service: String,
    },
    ServiceInspect {
        services: Vec<String>,
    },
    /// `service update`.
    ServiceUpdate {
        service: String,
        change: secnet_model::ServiceChange,
    },
    /// `service scale NAME=N`.
    ServiceScale {
        service: String,
        replicas: u32,
    },
    ServiceRm {
        services: Vec<String>,
    },
    /// `service logs`: the output of the service's tasks on this node, from `since` (per
    /// task id, a byte offset in its log; absent: the last 64 KiB).
    ServiceLogs {
        service: String,
        since: std::collections::BTreeMap<String, u64>,
    },
    NetworkLs,
    NetworkInspect {
        networks: Vec<String>,
    },
    NetworkRm {
        networks: Vec<String>,
    },
    /// `endpoint create`: a namespace on this node attached to `network`. Answers once the
    /// kernel objects exist on this node.
    EndpointCreate {
        network: String,
        name: Option<String>,
        ip: Option<Ipv4Addr>,
    },
    /// `endpoint ls [--network NET]`.
    EndpointLs {
        network: Option<String>,
    },
    EndpointInspect {
        endpoints: Vec<String>,
    },
    /// `endpoint rm`: answers once the namespace is gone from this node (when it is local).
    EndpointRm {
        endpoints: Vec<String>,
    },
    /// `endpoint connect NET NAME [--ip IP]`.
    EndpointConnect {
        network: String,
        endpoint: String,
        ip: Option<Ipv4Addr>,
    },
    /// `endpoint disconnect NET NAME`.
    EndpointDisconnect {
        network: String,
        endpoint: String,
    },
    /// `key ls`.
    KeyLs,
    /// `key rotate`: answers once the new key is primary.
    KeyRotate,
    /// `tunnel ls`.
    TunnelLs,
    Status,
}

/// This node's WireGuard endpoint as `tunnel ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelInfo {
    /// False while the endpoint is not up (no tunnel address yet, or it failed to start).
    pub up: bool,
    pub public_key: Option<String>,
    pub tunnel_ip: Option<Ipv4Addr>,
    pub listen: Option<String>,
    /// Epoch of the pre-shared key the peers are configured with.
    pub key_epoch: Option<u64>,
    pub peers: Vec<TunnelPeerInfo>,
    /// Datagrams dropped as malformed.
    pub garbage: u64,
    /// Datagrams from keys that are not peers.
    pub unknown_peer: u64,
    /// Inner packets whose source the sending peer does not own.
    pub disallowed_source: u64,
    /// Handshakes refused by the rate limiter.
    pub rate_limited: u64,
    /// Strict mode: encrypted-network VXLAN packets dropped because they arrived other than
    /// through the tunnel.
    #[serde(default)]
    pub strict_dropped_in: u64,
    /// Strict mode: encrypted-network VXLAN packets dropped because they would have left
    /// other than through the tunnel.
    #[serde(default)]
    pub strict_dropped_out: u64,
}

/// One peer of this node's WireGuard endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelPeerInfo {
    pub node: String,
    pub hostname: String,
    pub public_key: String,
    pub endpoint: String,
    pub tunnel_ip: Ipv4Addr,
    /// Seconds since the last completed handshake.
    pub last_handshake_secs: Option<u64>,
    /// Epoch of the pre-shared key of the session that carries our traffic to the peer
    /// (`None` without a session).
    #[serde(default)]
    pub key_epoch: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub handshake_failures: u64,
    pub dropped_invalid: u64,
}

/// One key of the pre-shared-key ring as `key ls` shows it (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub epoch: u64,
    /// "pending", "primary" or "retiring".
    pub state: String,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339, when it became primary.
    pub promoted: Option<String>,
    /// How many nodes acknowledged it (for the pending key; the others were installed
    /// everywhere when they were promoted).
    pub installed_on: usize,
    /// Nodes in the cluster.
    pub nodes: usize,
}

/// One interface of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    pub ifname: String,
    pub network: String,
    pub network_id: String,
    pub ip: Ipv4Addr,
    /// Address with prefix length, e.g. `10.20.0.2/26`.
    pub cidr: String,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub mtu: u32,
}

/// An endpoint as `endpoint ls` / `inspect` / `create` show it. The top-level `network`,
/// `ip` and `mac` are those of `eth0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub id: String,
    pub name: String,
    pub network: String,
    pub node: String,
    pub node_hostname: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// Path of the endpoint's network namespace (for `nsenter --net=PATH`); only on the
    /// endpoint's own node.
    pub netns: Option<String>,
    pub interfaces: Vec<InterfaceInfo>,
    /// RFC 3339.
    pub created: String,
}

/// A node as `node ls` / `node inspect` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    /// "manager" or "worker".
    pub role: String,
    /// "ready" or "down".
    pub status: String,
    /// Whether this node is the Raft leader.
    pub leader: bool,
    /// Whether this is the node the CLI talks to.
    #[serde(rename = "self")]
    pub is_self: bool,
    pub advertise_addr: String,
    pub data_path_addr: String,
    /// RFC 3339.
    pub joined: String,
    /// SHA-256 fingerprint of the node's certificate.
    pub cert_fingerprint: String,
}

/// A network as `network ls` / `network inspect` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub scope: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub vni: u32,
    pub encrypted: bool,
    /// The MTU endpoints get on this node (explicit, or derived from the data-path interface).
    pub mtu: u32,
    pub attachable: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    /// RFC 3339.
    pub created: String,
}

/// A service as `service ls` / `service inspect` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub id: String,
    pub name: String,
    /// "replicated" or "global".
    pub mode: String,
    /// Tasks wanted: the replicas, or in global mode the eligible nodes.
    pub desired: u32,
    /// Tasks reported running.
    pub running: u32,
    /// Running tasks made from the current spec (fewer than `running` during an update).
    pub up_to_date: u32,
    /// Network names.
    pub networks: Vec<String>,
    pub command: Vec<String>,
    pub env: std::collections::BTreeMap<String, String>,
    pub constraints: Vec<String>,
    pub restart_condition: String,
    pub restart_delay_secs: u64,
    pub restart_max_attempts: Option<u32>,
    pub endpoint_mode: String,
    pub version: u64,
    /// RFC 3339.
    pub created: String,
    pub updated: String,
}

/// A task as `service ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub id: String,
    /// `web.1`, or `web.<node id>` in global mode.
    pub name: String,
    pub service: String,
    /// The node's hostname ("" while pending).
    pub node: String,
    pub desired: String,
    pub state: String,
    /// RFC 3339 of the last change of state.
    pub since: String,
    /// Why it is in its state ("" when nothing to say).
    pub message: String,
    pub exit_code: Option<i32>,
    /// The endpoint it runs in and its address on the service's first network, once made.
    pub endpoint: Option<String>,
    pub ip: Option<Ipv4Addr>,
}

/// The output of one task, as `service logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLog {
    pub task_id: String,
    /// `web.1`.
    pub name: String,
    /// The task's node's hostname.
    pub node: String,
    /// Whether the task ran on the node that answered (only those logs are there).
    pub here: bool,
    /// The log's size after `text`: the offset to ask from next time.
    pub offset: u64,
    pub text: String,
}

/// `secnet status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// "inactive" before init/join, otherwise "active".
    pub state: String,
    pub node_id: Option<String>,
    pub hostname: String,
    pub role: Option<String>,
    pub cluster_id: Option<String>,
    pub leader_id: Option<String>,
    pub leader_addr: Option<String>,
    pub managers: usize,
    pub managers_reachable: usize,
    pub nodes: usize,
    pub networks: usize,
    pub advertise_addr: Option<String>,
    pub data_path_addr: Option<String>,
    /// Index of the last Raft entry applied to the state this node holds.
    pub applied_index: u64,
    /// Data-path reconcile passes finished since the daemon started.
    #[serde(default)]
    pub dataplane_passes: u64,
    /// Errors of the last reconcile pass (empty when the kernel matches the state).
    #[serde(default)]
    pub dataplane_errors: Vec<String>,
    /// The daemon's run directory: its namespace files are in `<run_dir>/netns/`.
    #[serde(default)]
    pub run_dir: String,
}

/// A successful answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LocalResponse {
    /// `init` done: this node's id, the cluster id, and the worker join command.
    Initialized {
        node_id: String,
        cluster_id: String,
        join_command: String,
    },
    /// `join` done.
    Joined {
        node_id: String,
        role: String,
        cluster_id: String,
    },
    /// `join-token`: the token and the full command line to use it.
    JoinToken {
        token: String,
        command: String,
    },
    /// `leave` done.
    Left,
    Nodes(Vec<NodeInfo>),
    /// Ids of the nodes that were changed or removed.
    NodesChanged(Vec<String>),
    Network(NetworkInfo),
    Networks(Vec<NetworkInfo>),
    /// Names of the networks removed.
    NetworksRemoved(Vec<String>),
    Endpoint(EndpointInfo),
    Endpoints(Vec<EndpointInfo>),
    /// Names of the endpoints removed.
    EndpointsRemoved(Vec<String>),
    /// The key ring, oldest first.
    Keys(Vec<KeyInfo>),
    Services(Vec<ServiceInfo>),
    Tasks(Vec<TaskInfo>),
    /// Names of the services removed.
    ServicesRemoved(Vec<String>),
    TaskLogs(Vec<TaskLog>),
    Tunnel(TunnelInfo),
    /// `node rotate-key` done: the node's new WireGuard public key.
    WireguardKey(WireguardKeyInfo),
    Status(StatusInfo),
}

/// Which [`LocalResponse`] a request is answered with: every request has exactly one
/// ([`LocalRequest::answered_with`]), the daemon checks its answers against it before
/// sending them, and the CLI before rendering them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    Initialized,
    Joined,
    JoinToken,
    Left,
    Nodes,
    NodesChanged,
    Network,
    Networks,
    NetworksRemoved,
    Endpoint,
    Endpoints,
    EndpointsRemoved,
    Keys,
    Tunnel,
    WireguardKey,
    Status,
    Services,
    Tasks,
    ServicesRemoved,
    TaskLogs,
}

impl LocalRequest {
    /// The response this request is answered with, when it succeeds. An exhaustive match:
    /// a new request does not compile until its answer is named here.
    pub fn answered_with(&self) -> ResponseKind {
        use LocalRequest as R;
        use ResponseKind as K;
        match self {
            R::Init(_) => K::Initialized,
            R::Join(_) => K::Joined,
            R::JoinToken { .. } => K::JoinToken,
            R::Leave { .. } => K::Left,
            R::NodeLs | R::NodeInspect { .. } => K::Nodes,
            R::NodePromote { .. } | R::NodeDemote { .. } | R::NodeRm { .. } => K::NodesChanged,
            R::NodeRotateKey { .. } => K::WireguardKey,
            R::NetworkCreate(_) => K::Network,
            R::NetworkLs | R::NetworkInspect { .. } => K::Networks,
            R::NetworkRm { .. } => K::NetworksRemoved,
            R::EndpointCreate { .. } | R::EndpointConnect { .. } | R::EndpointDisconnect { .. } => {
                K::Endpoint
            }
            R::EndpointLs { .. } | R::EndpointInspect { .. } => K::Endpoints,
            R::EndpointRm { .. } => K::EndpointsRemoved,
            R::KeyLs | R::KeyRotate => K::Keys,
            R::ServiceCreate(_)
            | R::ServiceLs
            | R::ServiceInspect { .. }
            | R::ServiceScale { .. }
            | R::ServiceUpdate { .. } => K::Services,
            R::ServicePs { .. } => K::Tasks,
            R::ServiceRm { .. } => K::ServicesRemoved,
            R::ServiceLogs { .. } => K::TaskLogs,
            R::TunnelLs => K::Tunnel,
            R::Status => K::Status,
        }
    }
}

impl LocalResponse {
    /// Which kind of response this is.
    pub fn kind(&self) -> ResponseKind {
        use LocalResponse as A;
        use ResponseKind as K;
        match self {
            A::Initialized { .. } => K::Initialized,
            A::Joined { .. } => K::Joined,
            A::JoinToken { .. } => K::JoinToken,
            A::Left => K::Left,
            A::Nodes(_) => K::Nodes,
            A::NodesChanged(_) => K::NodesChanged,
            A::Network(_) => K::Network,
            A::Networks(_) => K::Networks,
            A::NetworksRemoved(_) => K::NetworksRemoved,
            A::Endpoint(_) => K::Endpoint,
            A::Endpoints(_) => K::Endpoints,
            A::EndpointsRemoved(_) => K::EndpointsRemoved,
            A::Keys(_) => K::Keys,
            A::Tunnel(_) => K::Tunnel,
            A::WireguardKey(_) => K::WireguardKey,
            A::Status(_) => K::Status,
            A::Services(_) => K::Services,
            A::Tasks(_) => K::Tasks,
            A::ServicesRemoved(_) => K::ServicesRemoved,
            A::TaskLogs(_) => K::TaskLogs,
        }
    }
}

/// Checks an answer against the request's contract (`due`, from
/// [`LocalRequest::answered_with`]): the answer itself, or an internal error that names both
/// (a bug, or a CLI and a daemon of different versions).
pub fn checked_answer(due: ResponseKind, answer: LocalResult) -> LocalResult {
    match answer {
        Ok(resp) if resp.kind() != due => Err(ApiError::internal(format!(
            "the daemon answered {:?} where {due:?} was due (a bug, or secnet and secnetd of different versions)",
            resp.kind()
        ))),
        other => other,
    }
}

/// A node's WireGuard static key after `node rotate-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireguardKeyInfo {
    pub node: String,
    pub hostname: String,
    /// Base64, as `wg` shows it.
    pub public_key: String,
    pub previous_public_key: String,
}

/// What went wrong, in classes the CLI maps to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is invalid (bad value, wrong state); nothing changed.
    Invalid,
    /// A named object does not exist.
    NotFound,
    /// It conflicts with existing state (duplicate, in use).
    Conflict,
    /// The cluster cannot take the request now (no quorum, no leader, manager unreachable).
    Unavailable,
    /// Credentials were refused (bad token, revoked certificate).
    Denied,
    /// A bug or an I/O failure on the daemon.
    Internal,
}

/// Why a failed write may succeed when tried again at once: the cluster is between leaders.
/// Carried on the wire so that a node forwarding a write knows without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transient {
    /// The leader changed while the write was in flight.
    LeadershipChanged,
    /// No manager could reach a leader: an election may be in progress.
    NoLeader,
}

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// Set when the failure is a change of leadership (the write may be retried at once).
    /// Absent from the JSON otherwise; absent means not transient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient: Option<Transient>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            transient: None,
        }
    }
    /// An `Unavailable` error that says the cluster is between leaders.
    pub fn between_leaders(why: Transient, message: impl Into<String>) -> Self {
        ApiError {
            transient: Some(why),
            ..Self::new(ErrorKind::Unavailable, message)
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl From<secnet_model::ModelError> for ApiError {
    fn from(e: secnet_model::ModelError) -> Self {
        use secnet_model::ModelError as M;
        let kind = match &e {
            M::NetworkNotFound(_)
            | M::NodeNotFound(_)
            | M::EndpointNotFound(_)
            | M::Service(secnet_model::ServiceError::NotFound(_)) => ErrorKind::NotFound,
            M::Service(
                secnet_model::ServiceError::NameTaken(_)
                | secnet_model::ServiceError::IdTaken(_)
                | secnet_model::ServiceError::NetworkInUse { .. },
            ) => ErrorKind::Conflict,
            M::DuplicateNetworkName(_)
            | M::NetworkIdTaken(_)
            | M::NodeIdTaken(_)
            | M::DuplicateEndpointName(_)
            | M::NetworkInUse { .. }
            | M::AlreadyConnected { .. } => ErrorKind::Conflict,
            M::Ipam(
                secnet_ipam::IpamError::OverlapsNetwork { .. }
                | secnet_ipam::IpamError::OverlapsUnderlay { .. }
                | secnet_ipam::IpamError::AddressInUse { .. },
            ) => ErrorKind::Conflict,
            _ => ErrorKind::Invalid,
        };
        ApiError::new(kind, e.to_string())
    }
}

/// The answer to a [`LocalRequest`].
pub type LocalResult = Result<LocalResponse, ApiError>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_of_another_kind_are_refused_naming_both() {
        let due = LocalRequest::NodeLs.answered_with();
        assert_eq!(due, ResponseKind::Nodes);
        let ok = checked_answer(due, Ok(LocalResponse::Nodes(Vec::new())));
        assert!(matches!(ok, Ok(LocalResponse::Nodes(_))));
        let err = checked_answer(due, Ok(LocalResponse::Left)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(
            err.message.contains("Left") && err.message.contains("Nodes"),
            "{}",
            err.message
        );
        // Errors pass through untouched.
        let refused = checked_answer(due, Err(ApiError::invalid("no"))).unwrap_err();
        assert_eq!(
            (refused.kind, refused.message.as_str()),
            (ErrorKind::Invalid, "no")
        );
    }

    #[test]
    fn a_transient_failure_is_typed_on_the_wire_and_absent_otherwise() {
        let plain = ApiError::unavailable("the cluster has lost quorum");
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"unavailable","message":"the cluster has lost quorum"}"#
        );
        assert_eq!(
            serde_json::from_str::<ApiError>(&json).unwrap().transient,
            None
        );

        let moving = ApiError::between_leaders(Transient::NoLeader, "no leader (h2: refused)");
        let back: ApiError =
            serde_json::from_str(&serde_json::to_string(&moving).unwrap()).unwrap();
        assert_eq!(back.kind, ErrorKind::Unavailable);
        assert_eq!(back.transient, Some(Transient::NoLeader));
        // The text is free to change: nothing reads it to decide.
        assert_eq!(back.to_string(), "no leader (h2: refused)");
    }
}
