//! The replicated cluster state and the deterministic function that applies commands to it.
//!
//! Every manager applies the same committed commands in the same order, so `apply` must be a
//! pure function of (state, command): no clock, no randomness, no I/O. Whatever needs those
//! (ids, timestamps, secrets) is chosen by the proposer and carried inside the command.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use secnet_keys::ring::{KeyRing, RotationReason};
use secnet_keys::secret::{Secret32, SecretBytes};

use crate::error::ModelError;
use crate::ids::NodeId;
use crate::objects::{
    Attachment, ClusterConfig, Endpoint, Mac, Network, NetworkSpec, Node, NodeStatus, Role, MIN_MTU,
};

/// Largest MTU accepted for `--opt mtu` (jumbo frames).
pub const MAX_MTU: u32 = 9000;

/// Secrets held only by managers; workers receive a view without them.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterSecrets {
    /// PKCS#8 private key of the cluster root CA.
    pub ca_key: SecretBytes,
    /// The secret half of the worker join token.
    pub worker_token: SecretBytes,
    /// The secret half of the manager join token.
    pub manager_token: SecretBytes,
}

impl std::fmt::Debug for ClusterSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecrets(<redacted>)")
    }
}

/// Everything the cluster agrees on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterState {
    pub config: Option<ClusterConfig>,
    /// DER of the cluster root CA certificate (public).
    pub ca_cert_der: Vec<u8>,
    /// Present on managers, `None` in the view sent to workers.
    pub secrets: Option<ClusterSecrets>,
    pub nodes: BTreeMap<NodeId, Node>,
    /// Networks by id.
    pub networks: BTreeMap<String, Network>,
    /// Ids of removed nodes: never admitted again, so a stale node cannot come back.
    pub removed_nodes: BTreeSet<NodeId>,
    /// Endpoints by name.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Services by id.
    #[serde(default)]
    pub services: BTreeMap<String, crate::services::Service>,
    /// Tasks by id.
    #[serde(default)]
    pub tasks: BTreeMap<String, crate::services::Task>,
    /// The pre-shared keys of the encrypted data path. Every node holds it (workers too:
    /// their tunnels need it); it reaches them only over mTLS and is sealed at rest.
    #[serde(default)]
    pub key_ring: Option<KeyRing>,
    /// Each node's WireGuard public key (base64) and tunnel address, registered by the node
    /// itself; the private key never leaves the node.
    #[serde(default)]
    pub wireguard: BTreeMap<NodeId, WireguardPeer>,
    /// Nodes removed since the last key rotation they caused: the leader starts a
    /// `NodeRemoved` rotation for each, so a removed node never learns the next key.
    #[serde(default)]
    pub rotations_owed: BTreeSet<NodeId>,
}

/// The subnet tunnel addresses come from: one address per node, on the hosts' TUN devices
/// only (never routed outside a host).
pub const TUNNEL_SUBNET: ipnet::Ipv4Net =
    ipnet::Ipv4Net::new_assert(std::net::Ipv4Addr::new(100, 96, 0, 0), 16);

/// A node's WireGuard identity in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireguardPeer {
    /// Base64, as `wg` shows it.
    pub public_key: String,
    /// The node's address inside the tunnel; encrypted networks' VXLAN runs between these.
    pub tunnel_ip: std::net::Ipv4Addr,
    /// `secnet node rotate-key` asked the node for a new static key; cleared when the node
    /// registers a different key. Replicated so that a node that is down rotates when it
    /// comes back.
    #[serde(default)]
    pub rotation_requested: bool,
}

/// A change to the cluster state, proposed through Raft.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Services and their tasks (`services.rs`).
    Service(crate::services::ServiceCommand),
    /// Creates the cluster (first command of every log).
    Bootstrap {
        config: ClusterConfig,
        ca_cert_der: Vec<u8>,
        secrets: ClusterSecrets,
        node: Node,
    },
    /// Admits a node whose join token was checked by the proposing manager.
    AddNode { node: Node },
    /// Removes a node; its certificate is refused from then on.
    RemoveNode { id: NodeId },
    /// Promotes or demotes a node.
    SetRole { id: NodeId, role: Role },
    /// Records whether the leader hears from a node.
    SetStatus { id: NodeId, status: NodeStatus },
    /// Records a node's re-issued certificate (role change or renewal); the old one is
    /// refused from then on.
    /// Compare-and-swap: refused unless the node's current fingerprint is `previous`, so two
    /// managers answering the same renewal cannot leave the node with the wrong one.
    UpdateCertificate {
        id: NodeId,
        previous: String,
        fingerprint: String,
    },
    /// Replaces a join token's secret (`join-token --rotate`).
    RotateToken { role: Role, secret: SecretBytes },
    /// Creates a network; subnet and VNI are allocated here, in log order, so two concurrent
    /// creates can never receive the same subnet.
    CreateNetwork {
        id: String,
        spec: NetworkSpec,
        created_at: u64,
    },
    /// Removes a network by name or id.
    RemoveNetwork { name_or_id: String },
    /// Creates an endpoint on `node` attached to `network` (its `eth0`); the address is
    /// allocated here unless `ip` asks for one.
    CreateEndpoint {
        id: String,
        name: String,
        node: NodeId,
        network: String,
        ip: Option<std::net::Ipv4Addr>,
        created_at: u64,
    },
    /// Attaches an endpoint to one more network (`eth1`, `eth2`, ...).
    ConnectEndpoint {
        name: String,
        network: String,
        ip: Option<std::net::Ipv4Addr>,
    },
    /// Detaches an endpoint from a network.
    DisconnectEndpoint { name: String, network: String },
    /// Removes an endpoint.
    RemoveEndpoint { name: String },
    /// Registers (or replaces, for `node rotate-key`) a node's WireGuard public key; the
    /// first registration allocates its tunnel address.
    SetWireguardKey { id: NodeId, public_key: String },
    /// Asks a node to replace its WireGuard static key (`secnet node rotate-key`).
    RequestWireguardRotation { id: NodeId },
    /// Creates the key ring with its first key (the leader does this once).
    SeedKeyRing { secret: Secret32, now: u64 },
    /// Adds a pending key (installed for receiving everywhere before it is used).
    BeginKeyRotation {
        secret: Secret32,
        now: u64,
        reason: RotationReason,
    },
    /// A node installed key `epoch` for receiving.
    AckKey { node: NodeId, epoch: u64 },
    /// Makes the pending key primary if every node in `live` acknowledged it (the leader
    /// decides who is live; the rule itself is deterministic).
    PromoteKey { live: BTreeSet<u64>, now: u64 },
    /// Drops the oldest retiring keys down to `keep` keys.
    RetireKeys { keep: usize },
    /// Replaces the whole state (`init --force-new-cluster` re-seeds a new log with it).
    Restore { state: Box<ClusterState> },
}

/// What a successful command returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    /// Nothing to report.
    Done,
    /// The node as stored.
    Node(Node),
    /// The network as stored.
    Network(Network),
    /// The endpoint as stored.
    Endpoint(Endpoint),
    /// A key epoch (begun or promoted).
    KeyEpoch(u64),
    /// The service as stored.
    Service(crate::services::Service),
}

/// The result of applying a command, as returned to the proposer.
pub type CommandResult = Result<Response, ModelError>;

impl ClusterState {
    /// Whether `init` has run.
    pub fn is_initialized(&self) -> bool {
        self.config.is_some()
    }

    /// The view of the state a worker may hold: no CA key, no join tokens.
    pub fn worker_view(&self) -> ClusterState {
        ClusterState {
            secrets: None,
            ..self.clone()
        }
    }

    /// Managers (Raft voters) by id.
    pub fn managers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values().filter(|n| n.role == Role::Manager)
    }

    /// The node whose current certificate has this fingerprint.
    pub fn node_by_fingerprint(&self, fingerprint: &str) -> Option<&Node> {
        self.nodes
            .values()
            .find(|n| n.cert_fingerprint == fingerprint)
    }

    /// Finds a network by exact name, exact id, or unique id prefix (like Docker).
    pub fn find_network(&self, name_or_id: &str) -> Result<&Network, ModelError> {
        if let Some(n) = self.networks.values().find(|n| n.name == name_or_id) {
            return Ok(n);
        }
        if let Some(n) = self.networks.get(name_or_id) {
            return Ok(n);
        }
        let mut matches = self
            .networks
            .values()
            .filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id));
        match (matches.next(), matches.next()) {
            (Some(n), None) => Ok(n),
            (Some(_), Some(_)) => Err(ModelError::AmbiguousNetwork(name_or_id.to_string())),
            _ => Err(ModelError::NetworkNotFound(name_or_id.to_string())),
        }
    }

    /// Finds a node by id, unique id prefix, or unique hostname.
    pub fn find_node(&self, key: &str) -> Result<&Node, ModelError> {
        let by_host: Vec<&Node> = self.nodes.values().filter(|n| n.hostname == key).collect();
        if by_host.len() == 1 {
            return Ok(by_host[0]);
        }
        let by_id: Vec<&Node> = self
            .nodes
            .values()
            .filter(|n| !key.is_empty() && n.id.to_string().starts_with(&key.to_lowercase()))
            .collect();
        match (by_id.len(), by_host.len()) {
            (1, _) => Ok(by_id[0]),
            (0, 0) => Err(ModelError::NodeNotFound(key.to_string())),
            _ => Err(ModelError::AmbiguousNode(key.to_string())),
        }
    }

    /// Applies one committed command. Deterministic; on error the state is unchanged.
    pub fn apply(&mut self, cmd: Command) -> CommandResult {
        if !matches!(cmd, Command::Bootstrap { .. } | Command::Restore { .. })
            && !self.is_initialized()
        {
            return Err(ModelError::NotInitialized);
        }
        match cmd {
            Command::Service(c) => self.apply_service(c),
            Command::Bootstrap {
                config,
                ca_cert_der,
                secrets,
                node,
            } => {
                if self.is_initialized() {
                    return Err(ModelError::AlreadyInitialized);
                }
                self.config = Some(config);
                self.ca_cert_der = ca_cert_der;
                self.secrets = Some(secrets);
                self.nodes.insert(node.id, node.clone());
                Ok(Response::Node(node))
            }
            Command::AddNode { node } => {
                if self.removed_nodes.contains(&node.id) || self.nodes.contains_key(&node.id) {
                    return Err(ModelError::NodeIdTaken(node.id));
                }
                self.nodes.insert(node.id, node.clone());
                Ok(Response::Node(node))
            }
            Command::RemoveNode { id } => {
                let node = self
                    .nodes
                    .get(&id)
                    .ok_or_else(|| ModelError::NodeNotFound(id.to_string()))?;
                if node.role == Role::Manager && self.managers().count() == 1 {
                    return Err(ModelError::LastManager(id));
                }
                self.nodes.remove(&id);
                self.removed_nodes.insert(id);
                // Its endpoints go with it, everywhere.
                self.endpoints.retain(|_, e| e.node != id);
                self.wireguard.remove(&id);
                // It must never receive a key made from now on: rotate.
                if let Some(ring) = self.key_ring.as_mut() {
                    ring.forget_node(id.0);
                    self.rotations_owed.insert(id);
                }
                Ok(Response::Done)
            }
            Command::SetRole { id, role } => {
                let managers = self.managers().count();
                let node = self
                    .nodes
                    .get_mut(&id)
                    .ok_or_else(|| ModelError::NodeNotFound(id.to_string()))?;
                if node.role == Role::Manager && role == Role::Worker && managers == 1 {
                    return Err(ModelError::LastManager(id));
                }
                node.role = role;
                Ok(Response::Node(node.clone()))
            }
            Command::SetStatus { id, status } => {
                let node = self
                    .nodes
                    .get_mut(&id)
                    .ok_or_else(|| ModelError::NodeNotFound(id.to_string()))?;
                node.status = status;
                Ok(Response::Done)
            }
            Command::UpdateCertificate {
                id,
                previous,
                fingerprint,
            } => {
                let node = self
                    .nodes
                    .get_mut(&id)
                    .ok_or_else(|| ModelError::NodeNotFound(id.to_string()))?;
                if node.cert_fingerprint != previous {
                    return Err(ModelError::CertificateChanged(id));
                }
                node.cert_fingerprint = fingerprint;
                Ok(Response::Done)
            }
            Command::RotateToken { role, secret } => {
                let secrets = self.secrets.as_mut().ok_or(ModelError::NotInitialized)?;
                match role {
                    Role::Worker => secrets.worker_token = secret,
                    Role::Manager => secrets.manager_token = secret,
                }
                Ok(Response::Done)
            }
            Command::CreateNetwork {
                id,
                spec,
                created_at,
            } => self
                .create_network(id, spec, created_at)
                .map(Response::Network),
            Command::RemoveNetwork { name_or_id } => {
                let net = self.find_network(&name_or_id)?;
                let users = self.endpoints_on(&net.id);
                if !users.is_empty() {
                    return Err(ModelError::NetworkInUse {
                        network: net.name.clone(),
                        endpoints: users,
                    });
                }
                if let Some(svc) = self
                    .services
                    .values()
                    .find(|s| s.spec.networks.contains(&net.id))
                {
                    return Err(crate::services::ServiceError::NetworkInUse {
                        network: net.name.clone(),
                        service: svc.spec.name.clone(),
                    }
                    .into());
                }
                let id = net.id.clone();
                self.networks.remove(&id);
                Ok(Response::Done)
            }
            Command::CreateEndpoint {
                id,
                name,
                node,
                network,
                ip,
                created_at,
            } => {
                validate_endpoint_name(&name)?;
                if self.services.values().any(|s| s.spec.name == name) {
                    return Err(crate::services::ServiceError::NameTaken(name).into());
                }
                if self.endpoints.contains_key(&name) {
                    return Err(ModelError::DuplicateEndpointName(name));
                }
                if !self.nodes.contains_key(&node) {
                    return Err(ModelError::NodeNotFound(node.to_string()));
                }
                let attachment = self.new_attachment(&network, ip, "eth0".into())?;
                let ep = Endpoint {
                    id,
                    name: name.clone(),
                    node,
                    attachments: vec![attachment],
                    created_at,
                };
                self.endpoints.insert(name, ep.clone());
                Ok(Response::Endpoint(ep))
            }
            Command::ConnectEndpoint { name, network, ip } => {
                let ep = self.find_endpoint(&name)?.clone();
                let net_id = self.find_network(&network)?.id.clone();
                if ep.attachments.iter().any(|a| a.network_id == net_id) {
                    return Err(ModelError::AlreadyConnected {
                        endpoint: name,
                        network,
                    });
                }
                let ifname = (0..)
                    .map(|i| format!("eth{i}"))
                    .find(|n| ep.attachments.iter().all(|a| &a.ifname != n))
                    .unwrap_or_default();
                let attachment = self.new_attachment(&network, ip, ifname)?;
                // `find_endpoint` also accepts an id prefix: update the endpoint it found,
                // keyed by its name, not by what the user typed.
                let ep = self
                    .endpoints
                    .get_mut(&ep.name)
                    .ok_or_else(|| ModelError::EndpointNotFound(name.clone()))?;
                ep.attachments.push(attachment);
                Ok(Response::Endpoint(ep.clone()))
            }
            Command::DisconnectEndpoint { name, network } => {
                let net_id = self.find_network(&network)?.id.clone();
                let key = self.find_endpoint(&name)?.name.clone();
                let ep = self
                    .endpoints
                    .get_mut(&key)
                    .ok_or_else(|| ModelError::EndpointNotFound(name.clone()))?;
                if !ep.attachments.iter().any(|a| a.network_id == net_id) {
                    return Err(ModelError::NotConnected {
                        endpoint: name,
                        network,
                    });
                }
                if ep.attachments.len() == 1 {
                    return Err(ModelError::LastAttachment(name));
                }
                ep.attachments.retain(|a| a.network_id != net_id);
                Ok(Response::Endpoint(ep.clone()))
            }
            Command::RemoveEndpoint { name } => {
                let key = self.find_endpoint(&name)?.name.clone();
                self.endpoints.remove(&key);
                Ok(Response::Done)
            }
            Command::SetWireguardKey { id, public_key } => {
                if !self.nodes.contains_key(&id) {
                    return Err(ModelError::NodeNotFound(id.to_string()));
                }
                if public_key.len() != 44 || !public_key.ends_with('=') {
                    return Err(ModelError::InvalidPublicKey(public_key));
                }
                if let Some(peer) = self.wireguard.get_mut(&id) {
                    if peer.public_key != public_key {
                        peer.rotation_requested = false;
                    }
                    peer.public_key = public_key;
                } else {
                    let subnet = TUNNEL_SUBNET;
                    let used: BTreeSet<std::net::Ipv4Addr> =
                        self.wireguard.values().map(|p| p.tunnel_ip).collect();
                    // The first address is left out like a gateway: no host owns it.
                    let tunnel_ip = secnet_ipam::allocate_address(subnet, subnet.network(), &used)?;
                    self.wireguard.insert(
                        id,
                        WireguardPeer {
                            public_key,
                            tunnel_ip,
                            rotation_requested: false,
                        },
                    );
                }
                Ok(Response::Done)
            }
            Command::RequestWireguardRotation { id } => {
                let node = self
                    .nodes
                    .get(&id)
                    .ok_or_else(|| ModelError::NodeNotFound(id.to_string()))?;
                let hostname = node.hostname.clone();
                let peer = self
                    .wireguard
                    .get_mut(&id)
                    .ok_or(ModelError::NoWireguardKey(hostname))?;
                peer.rotation_requested = true;
                Ok(Response::Done)
            }
            Command::SeedKeyRing { secret, now } => {
                if self.key_ring.is_some() {
                    return Err(ModelError::KeyRingExists);
                }
                self.key_ring = Some(KeyRing::seed(secret, now));
                Ok(Response::Done)
            }
            Command::BeginKeyRotation {
                secret,
                now,
                reason,
            } => {
                let ring = self.key_ring.as_mut().ok_or(ModelError::NoKeyRing)?;
                let epoch = ring.begin_rotation(secret, now, reason)?;
                if let RotationReason::NodeRemoved(id) = reason {
                    self.rotations_owed.remove(&NodeId(id));
                }
                Ok(Response::KeyEpoch(epoch))
            }
            Command::AckKey { node, epoch } => {
                if !self.nodes.contains_key(&node) {
                    return Err(ModelError::NodeNotFound(node.to_string()));
                }
                let ring = self.key_ring.as_mut().ok_or(ModelError::NoKeyRing)?;
                ring.acknowledge(node.0, epoch)?;
                Ok(Response::Done)
            }
            Command::PromoteKey { live, now } => {
                let ring = self.key_ring.as_mut().ok_or(ModelError::NoKeyRing)?;
                match ring.try_promote(&live, now) {
                    Some(epoch) => Ok(Response::KeyEpoch(epoch)),
                    None => Err(ModelError::KeyNotInstalledEverywhere),
                }
            }
            Command::RetireKeys { keep } => {
                let ring = self.key_ring.as_mut().ok_or(ModelError::NoKeyRing)?;
                ring.retire(keep);
                Ok(Response::Done)
            }
            Command::Restore { state } => {
                *self = *state;
                Ok(Response::Done)
            }
        }
    }

    /// Names of the endpoints attached to a network.
    pub fn endpoints_on(&self, network_id: &str) -> Vec<String> {
        self.endpoints
            .values()
            .filter(|e| e.attachments.iter().any(|a| a.network_id == network_id))
            .map(|e| e.name.clone())
            .collect()
    }

    /// Finds an endpoint by name, or by unique id prefix.
    pub fn find_endpoint(&self, name_or_id: &str) -> Result<&Endpoint, ModelError> {
        if let Some(e) = self.endpoints.get(name_or_id) {
            return Ok(e);
        }
        let mut m = self
            .endpoints
            .values()
            .filter(|e| !name_or_id.is_empty() && e.id.starts_with(name_or_id));
        match (m.next(), m.next()) {
            (Some(e), None) => Ok(e),
            (Some(_), Some(_)) => Err(ModelError::AmbiguousEndpoint(name_or_id.to_string())),
            _ => Err(ModelError::EndpointNotFound(name_or_id.to_string())),
        }
    }

    /// An address on a network: the requested one (validated) or the lowest free.
    fn new_attachment(
        &self,
        network: &str,
        ip: Option<std::net::Ipv4Addr>,
        ifname: String,
    ) -> Result<Attachment, ModelError> {
        let net = self.find_network(network)?;
        let in_use: BTreeSet<std::net::Ipv4Addr> = self
            .endpoints
            .values()
            .flat_map(|e| e.attachments.iter())
            .filter(|a| a.network_id == net.id)
            .map(|a| a.ip)
            .collect();
        let ip = match ip {
            Some(ip) => {
                secnet_ipam::validate_address(net.subnet, net.gateway, &in_use, ip)?;
                ip
            }
            None => secnet_ipam::allocate_address(net.subnet, net.gateway, &in_use)?,
        };
        Ok(Attachment {
            network_id: net.id.clone(),
            ifname,
            ip,
            mac: Mac::for_ip(ip),
        })
    }

    fn create_network(
        &mut self,
        id: String,
        spec: NetworkSpec,
        created_at: u64,
    ) -> Result<Network, ModelError> {
        validate_network_name(&spec.name)?;
        if spec.driver != "overlay" {
            return Err(ModelError::UnsupportedDriver(spec.driver));
        }
        if self.networks.values().any(|n| n.name == spec.name) {
            return Err(ModelError::DuplicateNetworkName(spec.name));
        }
        if self.networks.contains_key(&id) {
            return Err(ModelError::NetworkIdTaken(id));
        }
        if let Some(mtu) = spec.mtu {
            validate_mtu(mtu)?;
        }
        let config = self.config.as_ref().ok_or(ModelError::NotInitialized)?;
        let in_use: Vec<_> = self.networks.values().map(|n| n.subnet).collect();
        let excluded: Vec<_> = self
            .nodes
            .values()
            .flat_map(|n| n.underlay.iter().copied())
            .collect();
        let (subnet, gateway) = match spec.subnet {
            Some(subnet) => {
                secnet_ipam::validate_explicit(subnet, spec.gateway, &in_use, &excluded)?
            }
            None => {
                if spec.gateway.is_some() {
                    return Err(ModelError::GatewayWithoutSubnet);
                }
                let subnet = secnet_ipam::allocate_subnet(&config.pools, &in_use, &excluded)?;
                (subnet, secnet_ipam::default_gateway(subnet))
            }
        };
        let vnis: BTreeSet<u32> = self.networks.values().map(|n| n.vni).collect();
        let vni = secnet_ipam::allocate_vni(&vnis)?;
        let network = Network {
            id: id.clone(),
            name: spec.name,
            driver: spec.driver,
            subnet,
            gateway,
            vni,
            encrypted: spec.encrypted,
            mtu: spec.mtu,
            attachable: spec.attachable,
            labels: spec.labels,
            created_at,
        };
        self.networks.insert(id, network.clone());
        Ok(network)
    }
}

/// Network names follow Docker's rule: a letter or digit, then letters, digits, `_`, `.`, `-`.
pub fn validate_network_name(name: &str) -> Result<(), ModelError> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            name.len() <= 64
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ModelError::InvalidNetworkName(name.to_string()))
    }
}

/// Endpoint names follow the same rule as network names (they name files and appear in
/// DNS later).
pub fn validate_endpoint_name(name: &str) -> Result<(), ModelError> {
    validate_network_name(name).map_err(|_| ModelError::InvalidEndpointName(name.to_string()))
}

/// Shortest `--key-rotation-interval` accepted: a rotation must finish (every live node
/// installs the pending key) well before the next one starts.
pub const MIN_KEY_ROTATION_SECS: u64 = 10;
/// Longest `--key-rotation-interval` accepted: one year (8760h).
pub const MAX_KEY_ROTATION_SECS: u64 = 8760 * 3600;
/// `--key-rotation-interval` when none is given: Swarm's 12 hours.
pub const DEFAULT_KEY_ROTATION_SECS: u64 = 12 * 3600;

/// Checks a key rotation interval (seconds) against the accepted range; the CLI and the
/// daemon both ask here, so they accept exactly the same values.
pub fn validate_key_rotation_interval(secs: u64) -> Result<(), ModelError> {
    if (MIN_KEY_ROTATION_SECS..=MAX_KEY_ROTATION_SECS).contains(&secs) {
        Ok(())
    } else {
        Err(ModelError::InvalidKeyRotationInterval(secs))
    }
}

/// Checks an explicit MTU against the range secnet supports.
pub fn validate_mtu(mtu: u32) -> Result<(), ModelError> {
    if (MIN_MTU..=MAX_MTU).contains(&mtu) {
        Ok(())
    } else {
        Err(ModelError::InvalidMtu(mtu))
    }
}
