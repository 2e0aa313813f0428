//! Why a command was refused. These cross Raft (the leader returns them to the proposer), so
//! they are serializable, and users read them as CLI errors, so each names the bad value and
//! what is accepted.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::NodeId;

/// A refused command.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ModelError {
    /// A service or task command was refused.
    #[error(transparent)]
    Service(#[from] crate::services::ServiceError),
    /// The cluster has not been initialized.
    #[error("this node is not part of a cluster: run `secnet init` or `secnet join` first")]
    NotInitialized,
    /// `init` on an initialized cluster.
    #[error("this node is already part of a cluster; use `secnet leave --force` first, or `secnet init --force-new-cluster` to recover a cluster that lost quorum")]
    AlreadyInitialized,
    /// No network has this name or id.
    #[error("network {0:?} not found; `secnet network ls` lists the networks")]
    NetworkNotFound(String),
    /// An id prefix matches several networks.
    #[error("network id prefix {0:?} matches several networks; give more characters or the name")]
    AmbiguousNetwork(String),
    /// A network with this name exists.
    #[error("a network named {0:?} already exists; choose another name or remove it first")]
    DuplicateNetworkName(String),
    /// The generated id collides (practically never).
    #[error("network id {0} is already taken")]
    NetworkIdTaken(String),
    /// The name breaks the naming rule.
    #[error("invalid network name {0:?}: use 1-64 characters, starting with a letter or digit, followed by letters, digits, '_', '.' or '-'")]
    InvalidNetworkName(String),
    /// Only the overlay driver exists.
    #[error("unsupported network driver {0:?}: the only driver is \"overlay\"")]
    UnsupportedDriver(String),
    /// `--gateway` needs `--subnet`.
    #[error("--gateway requires --subnet: a gateway can only be chosen inside an explicit subnet")]
    GatewayWithoutSubnet,
    /// Key rotation interval out of range.
    #[error(
        "key rotation interval {0}s is out of range: accepted range is 10s to 8760h (one year)"
    )]
    InvalidKeyRotationInterval(u64),
    /// MTU out of range.
    #[error("invalid MTU {0}: accepted range is 1280 to 9000")]
    InvalidMtu(u32),
    /// Address management refused.
    #[error(transparent)]
    Ipam(#[from] secnet_ipam::IpamError),
    /// No node matches.
    #[error("node {0:?} not found; `secnet node ls` lists the nodes")]
    NodeNotFound(String),
    /// Several nodes match.
    #[error("node {0:?} matches several nodes; give more characters of the id")]
    AmbiguousNode(String),
    /// The id is in use or was used by a removed node.
    #[error("node id {0} is taken or belonged to a removed node")]
    NodeIdTaken(NodeId),
    /// The network still has endpoints.
    #[error("network {network:?} has active endpoints ({}); remove them first with `secnet endpoint rm`", endpoints.join(", "))]
    NetworkInUse {
        network: String,
        endpoints: Vec<String>,
    },
    /// No endpoint has this name.
    #[error("endpoint {0:?} not found; `secnet endpoint ls` lists the endpoints")]
    EndpointNotFound(String),
    /// An id prefix matches several endpoints.
    #[error(
        "endpoint id prefix {0:?} matches several endpoints; give more characters or the name"
    )]
    AmbiguousEndpoint(String),
    /// An endpoint with this name exists.
    #[error("an endpoint named {0:?} already exists; choose another name or remove it first")]
    DuplicateEndpointName(String),
    /// The name breaks the naming rule.
    #[error("invalid endpoint name {0:?}: use 1-64 characters, starting with a letter or digit, followed by letters, digits, '_', '.' or '-'")]
    InvalidEndpointName(String),
    /// `connect` to a network the endpoint is already on.
    #[error("endpoint {endpoint:?} is already connected to network {network:?}")]
    AlreadyConnected { endpoint: String, network: String },
    /// `disconnect` from a network the endpoint is not on.
    #[error("endpoint {endpoint:?} is not connected to network {network:?}")]
    NotConnected { endpoint: String, network: String },
    /// The endpoint's only network.
    #[error(
        "endpoint {0:?} has no other network: remove the endpoint instead of disconnecting it"
    )]
    LastAttachment(String),
    /// A certificate renewal raced with another one.
    #[error("the certificate of node {0} changed meanwhile; renew again")]
    CertificateChanged(NodeId),
    /// Not a WireGuard public key.
    #[error("invalid WireGuard public key {0:?}: expected 32 bytes in base64 (44 characters)")]
    InvalidPublicKey(String),
    /// The node has no WireGuard key registered (it never started its tunnel).
    #[error("node {0} has not registered a WireGuard key yet: it registers one when its daemon starts; retry then")]
    NoWireguardKey(String),
    /// The key ring was seeded already.
    #[error("the key ring exists already")]
    KeyRingExists,
    /// No key ring yet.
    #[error("the cluster has no key ring yet: the leader creates it shortly after init")]
    NoKeyRing,
    /// A key-ring rule refused the change (the rule's own message).
    #[error("{0}")]
    KeyRing(String),
    /// Promotion before every live node installed the key.
    #[error("the pending key is not installed on every live node yet")]
    KeyNotInstalledEverywhere,
    /// The cluster would have no manager left.
    #[error("node {0} is the last manager: promote another node first")]
    LastManager(NodeId),
}

impl From<secnet_keys::ring::RingError> for ModelError {
    fn from(e: secnet_keys::ring::RingError) -> Self {
        ModelError::KeyRing(e.to_string())
    }
}
