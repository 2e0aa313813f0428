//! The local API on the daemon's Unix socket (mode 0600: root only), one request per
//! connection-frame, answered with a [`LocalResult`].

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

use secnet_api::{
    wire, ApiError, ErrorKind, InitRequest, JoinRequest, LocalRequest, LocalResponse, LocalResult,
    StatusInfo,
};
use secnet_keys::pki::{self, ClusterCa, NodeKey, NODE_CERT_VALIDITY};
use secnet_keys::secret::SecretBytes;
use secnet_keys::token::{JoinToken, TOKEN_SECRET_LEN};
use secnet_model::{
    ClusterConfig, ClusterSecrets, Command, NetworkSpec, Node, NodeId, NodeStatus, Response, Role,
};

use super::addrs;
use super::identity::{self, Identity};
use super::views::{endpoint_info, network_info, node_info};
use super::{unix_now, Daemon, Member};
use crate::peer::{connect_tls, JoinPeerRequest, PeerRequest, PeerResponse, Proposal};

/// Default `--key-rotation-interval`: Swarm's 12 hours.
pub const DEFAULT_KEY_ROTATION_SECS: u64 = 12 * 3600;
/// Default `--data-path-port`: VXLAN's IANA port.
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;

/// Serves the local API until the listener fails.
pub async fn serve_local(daemon: Arc<Daemon>, socket: &Path) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    // Bind under a temporary name, restrict it, then move it into place: the socket is never
    // reachable with a wider mode.
    let tmp = socket.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, socket)?;
    info!(socket = %socket.display(), "local API listening");
    loop {
        let (conn, _) = listener.accept().await?;
        let daemon = daemon.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_conn(daemon, conn).await {
                debug!(error = %e, "local connection closed");
            }
        });
    }
}

async fn serve_conn(daemon: Arc<Daemon>, mut conn: UnixStream) -> anyhow::Result<()> {
    while let Some(req) = wire::read_msg::<_, LocalRequest>(&mut conn).await? {
        let name = request_name(&req);
        let result = dispatch(&daemon, req).await;
        if let Err(e) = &result {
            info!(request = name, kind = ?e.kind, error = %e.message, "request refused");
        }
        wire::write_msg(&mut conn, &result).await?;
    }
    Ok(())
}

fn request_name(req: &LocalRequest) -> &'static str {
    match req {
        LocalRequest::Init(_) => "init",
        LocalRequest::Join(_) => "join",
        LocalRequest::JoinToken { .. } => "join-token",
        LocalRequest::Leave { .. } => "leave",
        LocalRequest::NodeLs => "node ls",
        LocalRequest::NodeInspect { .. } => "node inspect",
        LocalRequest::NodePromote { .. } => "node promote",
        LocalRequest::NodeDemote { .. } => "node demote",
        LocalRequest::NodeRm { .. } => "node rm",
        LocalRequest::NodeRotateKey { .. } => "node rotate-key",
        LocalRequest::NetworkCreate(_) => "network create",
        LocalRequest::NetworkLs => "network ls",
        LocalRequest::NetworkInspect { .. } => "network inspect",
        LocalRequest::NetworkRm { .. } => "network rm",
        LocalRequest::Status => "status",
        LocalRequest::EndpointCreate { .. } => "endpoint create",
        LocalRequest::EndpointLs { .. } => "endpoint ls",
        LocalRequest::EndpointInspect { .. } => "endpoint inspect",
        LocalRequest::EndpointRm { .. } => "endpoint rm",
        LocalRequest::EndpointConnect { .. } => "endpoint connect",
        LocalRequest::EndpointDisconnect { .. } => "endpoint disconnect",
        LocalRequest::KeyLs => "key ls",
        LocalRequest::KeyRotate => "key rotate",
        LocalRequest::TunnelLs => "tunnel ls",
    }
}

async fn dispatch(daemon: &Arc<Daemon>, req: LocalRequest) -> LocalResult {
    match req {
        LocalRequest::Init(r) => init(daemon, r).await,
        LocalRequest::Join(r) => join(daemon, r).await,
        LocalRequest::Status => status(daemon).await,
        LocalRequest::Leave { force } => leave(daemon, force).await,
        other => {
            let m = daemon.member_or_err().await?;
            match other {
                LocalRequest::JoinToken { role, rotate } => join_token(&m, role, rotate).await,
                LocalRequest::NodeLs => {
                    let v = m.view();
                    let mut nodes: Vec<_> = v
                        .state
                        .nodes
                        .values()
                        .map(|n| node_info(n, v.leader, m.id.node_id))
                        .collect();
                    nodes.sort_by(|a, b| (&a.hostname, &a.id).cmp(&(&b.hostname, &b.id)));
                    Ok(LocalResponse::Nodes(nodes))
                }
                LocalRequest::NodeInspect { nodes } => {
                    let v = m.view();
                    let out = describe_each(
                        &nodes,
                        |k| v.state.find_node(k),
                        |n| node_info(n, v.leader, m.id.node_id),
                    )?;
                    Ok(LocalResponse::Nodes(out))
                }
                LocalRequest::NodePromote { nodes } => set_roles(&m, &nodes, Role::Manager).await,
                LocalRequest::NodeDemote { nodes } => set_roles(&m, &nodes, Role::Worker).await,
                LocalRequest::NodeRm { nodes, force } => node_rm(&m, &nodes, force).await,
                LocalRequest::NodeRotateKey { node } => node_rotate_key(&m, node).await,
                LocalRequest::NetworkCreate(spec) => network_create(&m, spec).await,
                LocalRequest::NetworkLs => {
                    let v = m.view();
                    let mut nets: Vec<_> = v
                        .state
                        .networks
                        .values()
                        .map(|n| network_info(n, m.id.data_path_addr))
                        .collect();
                    nets.sort_by(|a, b| a.name.cmp(&b.name));
                    Ok(LocalResponse::Networks(nets))
                }
                LocalRequest::NetworkInspect { networks } => {
                    let v = m.view();
                    let out = describe_each(
                        &networks,
                        |k| v.state.find_network(k),
                        |n| network_info(n, m.id.data_path_addr),
                    )?;
                    Ok(LocalResponse::Networks(out))
                }
                LocalRequest::NetworkRm { networks } => network_rm(&m, &networks).await,
                LocalRequest::EndpointCreate { network, name, ip } => {
                    endpoint_create(&m, network, name, ip).await
                }
                LocalRequest::EndpointLs { network } => {
                    let v = m.view();
                    let net_id = match &network {
                        Some(n) => Some(v.state.find_network(n)?.id.clone()),
                        None => None,
                    };
                    let eps = v
                        .state
                        .endpoints
                        .values()
                        .filter(|e| {
                            net_id
                                .as_ref()
                                .is_none_or(|id| e.attachments.iter().any(|a| &a.network_id == id))
                        })
                        .map(|e| endpoint_view(&m, &v.state, e))
                        .collect();
                    Ok(LocalResponse::Endpoints(eps))
                }
                LocalRequest::EndpointInspect { endpoints } => {
                    let v = m.view();
                    let eps = describe_each(
                        &endpoints,
                        |k| v.state.find_endpoint(k),
                        |e| endpoint_view(&m, &v.state, e),
                    )?;
                    Ok(LocalResponse::Endpoints(eps))
                }
                LocalRequest::EndpointRm { endpoints } => endpoint_rm(&m, &endpoints).await,
                LocalRequest::EndpointConnect {
                    network,
                    endpoint,
                    ip,
                } => {
                    let cmd = Command::ConnectEndpoint {
                        name: endpoint.clone(),
                        network,
                        ip,
                    };
                    endpoint_change(&m, &endpoint, cmd).await
                }
                LocalRequest::KeyLs => Ok(LocalResponse::Keys(key_infos(&m.view().state))),
                LocalRequest::KeyRotate => key_rotate(&m).await,
                LocalRequest::TunnelLs => {
                    let layout = m.reconciler.layout.clone();
                    let drops = tokio::task::spawn_blocking(move || {
                        secnet_dataplane::strict_drops(&layout)
                    })
                    .await
                    .map_err(internal)?
                    .map_err(|e| internal(format!("reading the strict-mode counters: {e:#}")))?;
                    Ok(LocalResponse::Tunnel(tunnel_info(&m, drops)))
                }
                LocalRequest::EndpointDisconnect { network, endpoint } => {
                    let cmd = Command::DisconnectEndpoint {
                        name: endpoint.clone(),
                        network,
                    };
                    endpoint_change(&m, &endpoint, cmd).await
                }
                LocalRequest::Init(_)
                | LocalRequest::Join(_)
                | LocalRequest::Status
                | LocalRequest::Leave { .. } => Err(ApiError::internal("unreachable")),
            }
        }
    }
}

/// The `inspect` requests: what each key names, described in the order asked. A key that
/// names nothing fails the whole request, so the answer never silently leaves one out.
fn describe_each<'s, T: 's, I>(
    keys: &[String],
    find: impl Fn(&str) -> Result<&'s T, secnet_model::ModelError>,
    describe: impl Fn(&T) -> I,
) -> Result<Vec<I>, ApiError> {
    let described = keys
        .iter()
        .map(|k| find(k).map(&describe))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(described)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn random_secret() -> SecretBytes {
    SecretBytes::random(TOKEN_SECRET_LEN, &mut rand::rngs::OsRng)
}

fn token_string(ca_der: &[u8], secret: &SecretBytes) -> String {
    let token = JoinToken {
        ca_digest: pki::ca_digest(ca_der),
        secret: secret.clone(),
    };
    token.to_string_secret().to_string()
}

async fn init(daemon: &Arc<Daemon>, r: InitRequest) -> LocalResult {
    let _guard = daemon.ops.lock().await;
    if r.force_new_cluster {
        return force_new_cluster(daemon).await;
    }
    if daemon.member().await.is_some() {
        return Err(ApiError::invalid(
            "this node is already part of a cluster: use `secnet leave --force` first, or `secnet init --force-new-cluster` to recover a cluster that lost quorum",
        ));
    }
    let pools = secnet_ipam::PoolConfig::new(
        r.default_addr_pools.clone(),
        r.default_addr_pool_mask_length.unwrap_or(0),
    )
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let data_path_port = r.data_path_port.unwrap_or(DEFAULT_DATA_PATH_PORT);
    if !(1024..=49151).contains(&data_path_port) {
        return Err(ApiError::invalid(format!(
            "--data-path-port {data_path_port}: accepted range is 1024 to 49151"
        )));
    }
    let wireguard_port = r
        .wireguard_port
        .unwrap_or(secnet_model::DEFAULT_WIREGUARD_PORT);
    if wireguard_port < 1024 || wireguard_port == data_path_port {
        return Err(ApiError::invalid(format!(
            "--wireguard-port {wireguard_port}: accepted range is 1024 to 65535, and it must differ from the data-path port ({data_path_port})"
        )));
    }
    let rotation = r
        .key_rotation_interval_secs
        .unwrap_or(DEFAULT_KEY_ROTATION_SECS);
    if rotation < 10 {
        return Err(ApiError::invalid(format!(
            "--key-rotation-interval {rotation}s: the shortest accepted interval is 10s"
        )));
    }
    let addrs = addrs::resolve_all(
        r.advertise_addr.as_deref(),
        r.listen_addr.as_deref(),
        r.data_path_addr.as_deref(),
    )?;
    refuse_tunnel_network_conflict()?;

    let mut rng = rand::rngs::OsRng;
    let cluster_id = secnet_model::ids::network_id_from_bytes(rng.gen());
    let node_id = NodeId(rng.gen::<u64>().max(1));
    let ca = ClusterCa::generate(&cluster_id).map_err(internal)?;
    let key = NodeKey::generate().map_err(internal)?;
    let csr = key.csr_der(node_id.0).map_err(internal)?;
    let cert_der = ca
        .sign_node(
            &csr,
            node_id.0,
            Role::Manager,
            &cluster_id,
            NODE_CERT_VALIDITY,
            std::time::SystemTime::now(),
        )
        .map_err(internal)?;
    let id = Identity {
        node_id,
        cluster_id: cluster_id.clone(),
        hostname: daemon.cfg.hostname.clone(),
        listen_addr: addrs.listen,
        advertise_addr: addrs.advertise,
        data_path_addr: addrs.data_path,
        ca_der: ca.cert_der.clone(),
        cert_der: cert_der.clone(),
        bootstrap_managers: Vec::new(),
        role: Role::Manager,
    };
    let secrets = ClusterSecrets {
        ca_key: ca.key_pkcs8.clone(),
        worker_token: random_secret(),
        manager_token: random_secret(),
    };
    let worker_token = token_string(&ca.cert_der, &secrets.worker_token);
    let now = unix_now();
    let node = Node {
        id: node_id,
        hostname: daemon.cfg.hostname.clone(),
        role: Role::Manager,
        status: NodeStatus::Ready,
        advertise_addr: addrs.advertise,
        data_path_addr: addrs.data_path,
        cert_fingerprint: pki::cert_fingerprint(&cert_der),
        underlay: addrs::underlay_prefixes(),
        joined_at: now,
    };
    let cmd = Command::Bootstrap {
        config: ClusterConfig {
            cluster_id: cluster_id.clone(),
            pools,
            data_path_port,
            wireguard_port,
            key_rotation_interval_secs: rotation,
            created_at: now,
        },
        ca_cert_der: ca.cert_der.clone(),
        secrets,
        node,
    };

    let member = Member::start(daemon, id.clone(), key, true)
        .await
        .map_err(|e| ApiError::invalid(format!("cannot start the manager: {e:#}")))?;
    let result = async {
        wait_leader(&member, Duration::from_secs(10)).await?;
        member.write(cmd).await
    }
    .await;
    if let Err(e) = result {
        member.stop().await;
        let _ = identity::wipe(&daemon.paths);
        return Err(e);
    }
    // The identity is written last: a crash before this line leaves a node that is not in a
    // cluster, and its partial Raft data is discarded at the next start.
    identity::save(&daemon.paths, &daemon.kek, &id, member.key_secret()).map_err(internal)?;
    daemon.set_member(Some(member)).await;
    info!(node = %node_id, cluster = %cluster_id, "cluster initialized");
    Ok(LocalResponse::Initialized {
        node_id: node_id.to_string(),
        cluster_id,
        join_command: format!("secnet join --token {worker_token} {}", addrs.advertise),
    })
}

async fn wait_leader(member: &Member, timeout: Duration) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let super::Runtime::Manager(rt) = &member.rt {
            if rt.is_leader() {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::unavailable(
                "this manager did not become leader of its new cluster in time",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `init --force-new-cluster`: a manager that lost its quorum restarts the cluster alone from
/// its own copy of the state. The other managers are removed (their logs diverged; they join
/// again); workers stay.
async fn force_new_cluster(daemon: &Arc<Daemon>) -> LocalResult {
    let member = daemon.member().await.ok_or_else(|| {
        ApiError::invalid("--force-new-cluster needs a node that was a manager of a cluster")
    })?;
    if member.role() != Role::Manager {
        return Err(ApiError::invalid(
            "--force-new-cluster must run on a manager: this node is a worker",
        ));
    }
    let mut state = (*member.view().state).clone();
    if !state.is_initialized() {
        return Err(ApiError::invalid(
            "this manager holds no cluster state to recover from",
        ));
    }
    let me = member.id.node_id;
    let others: Vec<NodeId> = state
        .managers()
        .map(|n| n.id)
        .filter(|id| *id != me)
        .collect();
    for id in &others {
        state.nodes.remove(id);
        state.removed_nodes.insert(*id);
    }
    let id = member.id.clone();
    let key = member.key.clone();
    daemon.set_member(None).await;
    std::fs::remove_file(daemon.paths.raft_db()).map_err(internal)?;
    let member = Member::start(daemon, id.clone(), key, true)
        .await
        .map_err(|e| ApiError::internal(format!("cannot restart the manager: {e:#}")))?;
    wait_leader(&member, Duration::from_secs(10)).await?;
    member
        .write(Command::Restore {
            state: Box::new(state),
        })
        .await?;
    daemon.set_member(Some(member.clone())).await;
    warn!(
        removed = others.len(),
        "started a new cluster from this manager's state"
    );
    let worker = member
        .view()
        .state
        .secrets
        .as_ref()
        .map(|s| token_string(&id.ca_der, &s.worker_token))
        .unwrap_or_default();
    Ok(LocalResponse::Initialized {
        node_id: me.to_string(),
        cluster_id: id.cluster_id,
        join_command: format!("secnet join --token {worker} {}", id.advertise_addr),
    })
}

async fn join(daemon: &Arc<Daemon>, r: JoinRequest) -> LocalResult {
    let _guard = daemon.ops.lock().await;
    if daemon.member().await.is_some() {
        return Err(ApiError::invalid(
            "this node is already part of a cluster: run `secnet leave` first to join another",
        ));
    }
    let token: JoinToken = r
        .token
        .parse()
        .map_err(|e: secnet_keys::token::TokenError| ApiError::invalid(e.to_string()))?;
    let remote = tokio::net::lookup_host(&r.remote)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "invalid manager address {:?}: expected HOST:PORT, e.g. 192.0.2.10:2377",
                r.remote
            ))
        })?;
    let addrs = addrs::resolve_all(
        r.advertise_addr.as_deref(),
        r.listen_addr.as_deref(),
        r.data_path_addr.as_deref(),
    )?;
    refuse_tunnel_network_conflict()?;
    let key = NodeKey::generate().map_err(internal)?;
    let csr = key.csr_der(0).map_err(internal)?;
    let (tls, capture) = pki::join_client_config(token.ca_digest).map_err(internal)?;
    let mut conn = connect_tls(remote, tls).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("does not match") || text.contains("digest") {
            ApiError::new(ErrorKind::Denied, format!("{text}: the token belongs to another cluster, or something impersonates the manager"))
        } else {
            ApiError::unavailable(text)
        }
    })?;
    let req = PeerRequest::Join(JoinPeerRequest {
        secret: token.secret.clone(),
        csr_der: csr,
        hostname: daemon.cfg.hostname.clone(),
        advertise_addr: addrs.advertise,
        data_path_addr: addrs.data_path,
        underlay: addrs::underlay_prefixes(),
    });
    wire::write_msg(&mut conn, &req)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let resp = tokio::time::timeout(Duration::from_secs(30), wire::read_msg(&mut conn))
        .await
        .map_err(|_| {
            ApiError::unavailable(format!(
                "the manager at {remote} did not answer within 30 s"
            ))
        })?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let resp = match resp {
        Some(PeerResponse::Join(r)) => r?,
        Some(PeerResponse::Denied(reason)) => return Err(ApiError::new(ErrorKind::Denied, reason)),
        other => {
            return Err(ApiError::internal(format!(
                "unexpected answer to join: {other:?}"
            )))
        }
    };
    let ca_der = capture
        .take()
        .ok_or_else(|| ApiError::internal("the TLS handshake did not pin the cluster CA"))?;
    if ca_der != resp.ca_der {
        return Err(ApiError::new(
            ErrorKind::Denied,
            "the manager sent a CA certificate different from the one its TLS chain proved",
        ));
    }
    let id = Identity {
        node_id: resp.node_id,
        cluster_id: resp.cluster_id.clone(),
        hostname: daemon.cfg.hostname.clone(),
        listen_addr: addrs.listen,
        advertise_addr: addrs.advertise,
        data_path_addr: addrs.data_path,
        ca_der,
        cert_der: resp.cert_der,
        bootstrap_managers: resp.managers,
        role: resp.role,
    };
    identity::save(&daemon.paths, &daemon.kek, &id, &key.key_pkcs8).map_err(internal)?;
    let member = Member::start(daemon, id.clone(), key, false)
        .await
        .map_err(|e| ApiError::internal(format!("joined, but cannot start: {e:#}")))?;
    daemon.set_member(Some(member.clone())).await;
    if resp.role == Role::Manager {
        // The new manager becomes a voter once it caught up with the log.
        let p = Proposal::AddVoter {
            id: id.node_id,
            addr: id.advertise_addr,
        };
        member.propose(p, 0).await?;
    }
    info!(node = %id.node_id, role = %resp.role, "joined the cluster");
    Ok(LocalResponse::Joined {
        node_id: id.node_id.to_string(),
        role: resp.role.as_str().to_string(),
        cluster_id: resp.cluster_id,
    })
}

async fn join_token(m: &Member, role: Role, rotate: bool) -> LocalResult {
    if m.role() != Role::Manager {
        return Err(ApiError::invalid(
            "this node is not a manager: join tokens are only available on managers",
        ));
    }
    let secret = if rotate {
        let secret = random_secret();
        m.write(Command::RotateToken {
            role,
            secret: secret.clone(),
        })
        .await?;
        secret
    } else {
        let view = m.view();
        let s = view.state.secrets.as_ref().ok_or_else(|| {
            ApiError::unavailable("this manager has not caught up with the cluster state yet")
        })?;
        match role {
            Role::Worker => s.worker_token.clone(),
            Role::Manager => s.manager_token.clone(),
        }
    };
    let token = token_string(&m.id.ca_der, &secret);
    let addr = m
        .me()
        .map(|n| n.advertise_addr)
        .unwrap_or(m.id.advertise_addr);
    Ok(LocalResponse::JoinToken {
        command: format!("secnet join --token {token} {addr}"),
        token,
    })
}

async fn leave(daemon: &Arc<Daemon>, force: bool) -> LocalResult {
    let _guard = daemon.ops.lock().await;
    let m = daemon.member_or_err().await?;
    let me = m.id.node_id;
    if m.role() == Role::Manager && !force {
        return Err(ApiError::invalid(
            "this node is a manager: leaving reduces the managers' fault tolerance. Demote it first with `secnet node demote`, or use `secnet leave --force` to leave anyway",
        ));
    }
    let others = m.view().state.managers().filter(|n| n.id != me).count();
    if others > 0 {
        if m.role() == Role::Manager {
            if let Err(e) = m.propose(Proposal::RemoveVoter { id: me }, 0).await {
                warn!(error = %e, "cannot leave the Raft voters cleanly");
            }
        }
        // Removing ourselves revokes our certificate everywhere.
        match m.write(Command::RemoveNode { id: me }).await {
            Ok(_) => {}
            Err(e) if force => {
                warn!(error = %e, "cannot remove this node from the cluster; leaving anyway")
            }
            Err(e) => {
                return Err(ApiError::unavailable(format!(
                "cannot tell the cluster that this node leaves ({}); use --force to leave anyway",
                e.message
            )))
            }
        }
    }
    let layout = m.reconciler.layout.clone();
    drop(m);
    daemon.set_member(None).await;
    // Take this node's endpoints and networks out of the kernel.
    let cleanup = tokio::task::spawn_blocking(move || {
        let mut result =
            super::dataplane::reconcile_once(&layout, &secnet_dataplane::Desired::default());
        // No encrypted network is left on this node: its strict-mode rules go too.
        if let Err(e) = secnet_dataplane::remove_strict(&layout) {
            result.1.push(format!("{e:#}"));
        }
        result
    })
    .await
    .map_err(internal)?;
    for e in cleanup.1 {
        warn!(error = %e, "leaving: data path cleanup");
    }
    identity::wipe(&daemon.paths).map_err(internal)?;
    info!("left the cluster");
    Ok(LocalResponse::Left)
}

/// A host with its own addresses or routes in the tunnel network cannot carry encrypted
/// networks: its route would compete with the TUN device's. Refused at `init` and `join`,
/// before anything is made.
fn refuse_tunnel_network_conflict() -> Result<(), ApiError> {
    let host = addrs::host_prefixes_by_device();
    match addrs::tunnel_network_conflict(&host, secnet_model::TUNNEL_SUBNET, super::tunnel::TUN_NAME) {
        None => Ok(()),
        Some((dev, net)) => Err(ApiError::invalid(format!(
            "this host has {net} on {dev}, which overlaps secnet's tunnel network {} (the nodes' WireGuard tunnel addresses); remove or move that address or route first, the tunnel network cannot be changed in this version",
            secnet_model::TUNNEL_SUBNET
        ))),
    }
}

async fn set_roles(m: &Member, keys: &[String], role: Role) -> LocalResult {
    let mut changed = Vec::new();
    for key in keys {
        let node = m.view().state.find_node(key)?.clone();
        if node.role == role {
            changed.push(node.id.to_string());
            continue;
        }
        // The role first: the node learns it through its own Raft log while it is still a
        // member, and switches to the worker runtime. Managers keep accepting its Raft
        // messages while it is in the membership, so a demoted leader can still hand over.
        m.write(Command::SetRole { id: node.id, role }).await?;
        if role == Role::Worker {
            m.propose(Proposal::RemoveVoter { id: node.id }, 0).await?;
        }
        changed.push(node.id.to_string());
    }
    Ok(LocalResponse::NodesChanged(changed))
}

async fn node_rm(m: &Member, keys: &[String], force: bool) -> LocalResult {
    let mut removed = Vec::new();
    for key in keys {
        let node = m.view().state.find_node(key)?.clone();
        if node.role == Role::Manager {
            return Err(ApiError::invalid(format!(
                "node {} ({}) is a manager: demote it with `secnet node demote` before removing it",
                node.id, node.hostname
            )));
        }
        if node.status != NodeStatus::Down && !force {
            return Err(ApiError::invalid(format!(
                "node {} ({}) is not down and can't be removed; stop it first or use --force",
                node.id, node.hostname
            )));
        }
        m.write(Command::RemoveNode { id: node.id }).await?;
        removed.push(node.id.to_string());
    }
    Ok(LocalResponse::NodesChanged(removed))
}

/// Asks a node (this one by default) for a new WireGuard static key and waits until it has
/// registered one. The node makes the key itself; its peers switch to it without losing
/// packets (the old sessions carry traffic until the new handshakes complete).
async fn node_rotate_key(m: &Member, key: Option<String>) -> LocalResult {
    let view = m.view();
    let node = match &key {
        Some(k) => view.state.find_node(k)?.clone(),
        None => view
            .state
            .nodes
            .get(&m.id.node_id)
            .cloned()
            .ok_or_else(|| ApiError::unavailable("this node is not in the cluster state yet"))?,
    };
    let previous = view
        .state
        .wireguard
        .get(&node.id)
        .map(|w| w.public_key.clone())
        .ok_or_else(|| {
            ApiError::from(secnet_model::ModelError::NoWireguardKey(
                node.hostname.clone(),
            ))
        })?;
    m.write(Command::RequestWireguardRotation { id: node.id })
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state = m.view().state;
        if let Some(w) = state.wireguard.get(&node.id) {
            if w.public_key != previous && !w.rotation_requested {
                return Ok(LocalResponse::WireguardKey(secnet_api::WireguardKeyInfo {
                    node: node.id.to_string(),
                    hostname: node.hostname.clone(),
                    public_key: w.public_key.clone(),
                    previous_public_key: previous,
                }));
            }
        } else {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!(
                    "node {} ({}) left the cluster meanwhile",
                    node.id, node.hostname
                ),
            ));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::unavailable(format!(
                "node {} ({}) has not registered a new key within 30 s (status {:?}); the request stands, and the node rotates its key as soon as it runs",
                node.id,
                node.hostname,
                state.nodes.get(&node.id).map(|n| n.status)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn network_create(m: &Member, spec: NetworkSpec) -> LocalResult {
    // Check what can be checked here first, so a bad request fails the same way whether or
    // not the cluster can take writes right now.
    secnet_model::validate_network_name(&spec.name)?;
    if let Some(mtu) = spec.mtu {
        secnet_model::validate_mtu(mtu)?;
        // The underlay must carry the encapsulated frame: check against this node's
        // data-path interface.
        let underlay = super::views::underlay_mtu(m.id.data_path_addr);
        let v6 = m.id.data_path_addr.is_ipv6();
        let overhead = if v6 {
            secnet_model::VXLAN_OVERHEAD_V6
        } else {
            secnet_model::VXLAN_OVERHEAD_V4
        } + if spec.encrypted {
            if v6 {
                secnet_model::WIREGUARD_OVERHEAD_V6
            } else {
                secnet_model::WIREGUARD_OVERHEAD_V4
            }
        } else {
            0
        };
        let max = underlay.saturating_sub(overhead);
        if mtu > max {
            return Err(ApiError::invalid(format!(
                "MTU {mtu} is more than the data path can carry: this node's data-path interface ({}) has MTU {underlay} and the encapsulation needs {overhead} bytes, so at most {max}",
                m.id.data_path_addr
            )));
        }
    }
    if m.view()
        .state
        .networks
        .values()
        .any(|n| n.name == spec.name)
    {
        return Err(secnet_model::ModelError::DuplicateNetworkName(spec.name).into());
    }
    let id = secnet_model::ids::network_id_from_bytes(rand::rngs::OsRng.gen());
    let cmd = Command::CreateNetwork {
        id,
        spec,
        created_at: unix_now(),
    };
    match m.write(cmd).await? {
        Response::Network(n) => Ok(LocalResponse::Network(network_info(
            &n,
            m.id.data_path_addr,
        ))),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

async fn network_rm(m: &Member, names: &[String]) -> LocalResult {
    let mut removed = Vec::new();
    // Resolve every name first: `rm a b` with a bad `b` removes nothing.
    let ids = names
        .iter()
        .map(|n| {
            m.view()
                .state
                .find_network(n)
                .map(|n| (n.id.clone(), n.name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (id, name) in ids {
        m.write(Command::RemoveNetwork { name_or_id: id }).await?;
        removed.push(name);
    }
    Ok(LocalResponse::NetworksRemoved(removed))
}

async fn status(daemon: &Arc<Daemon>) -> LocalResult {
    let Some(m) = daemon.member().await else {
        return Ok(LocalResponse::Status(StatusInfo {
            state: "inactive".into(),
            node_id: None,
            hostname: daemon.cfg.hostname.clone(),
            role: None,
            cluster_id: None,
            leader_id: None,
            leader_addr: None,
            managers: 0,
            managers_reachable: 0,
            nodes: 0,
            networks: 0,
            advertise_addr: None,
            data_path_addr: None,
            applied_index: 0,
            dataplane_passes: 0,
            dataplane_errors: Vec::new(),
        }));
    };
    let v = m.view();
    let (managers_reachable, managers) = m.managers_reachable().await;
    let leader = v.leader.and_then(|l| v.state.nodes.get(&l));
    Ok(LocalResponse::Status(StatusInfo {
        state: "active".into(),
        node_id: Some(m.id.node_id.to_string()),
        hostname: m.id.hostname.clone(),
        role: Some(m.role().as_str().to_string()),
        cluster_id: Some(m.id.cluster_id.clone()),
        leader_id: leader.map(|n| n.id.to_string()),
        leader_addr: leader.map(|n| n.advertise_addr.to_string()),
        managers,
        managers_reachable,
        nodes: v.state.nodes.len(),
        networks: v.state.networks.len(),
        advertise_addr: Some(m.id.advertise_addr.to_string()),
        data_path_addr: Some(m.id.data_path_addr.to_string()),
        applied_index: v.applied_index,
        dataplane_passes: m.reconciler.status().borrow().pass,
        dataplane_errors: m.reconciler.status().borrow().errors.clone(),
    }))
}

/// How long an endpoint request waits for this node's kernel to match.
const PROGRAMMING_TIMEOUT: Duration = Duration::from_secs(20);

fn endpoint_view(
    m: &Member,
    state: &secnet_model::ClusterState,
    e: &secnet_model::Endpoint,
) -> secnet_api::EndpointInfo {
    let netns = (e.node == m.id.node_id)
        .then(|| m.reconciler.endpoint_netns(&e.name).display().to_string());
    endpoint_info(e, state, m.id.data_path_addr, netns)
}

/// Waits until this node's copy of the state satisfies `in_state`, then until a reconcile
/// pass that started from that state (or a later one) left endpoint `name` programmed (or,
/// with `gone`, removed) without errors.
async fn wait_programmed(
    m: &Member,
    name: &str,
    gone: bool,
    in_state: impl Fn(&secnet_model::ClusterState) -> bool,
) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + PROGRAMMING_TIMEOUT;
    let timeout_error = |detail: String| {
        ApiError::internal(format!(
            "endpoint {name:?} was {} in the cluster state, but this node did not follow within {} s: {detail}",
            if gone { "removed" } else { "recorded" },
            PROGRAMMING_TIMEOUT.as_secs()
        ))
    };
    let index = loop {
        let v = m.view();
        if in_state(&v.state) {
            break v.applied_index;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(timeout_error(
                "the change has not reached this node's copy of the state".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut status = m.reconciler.status();
    m.reconciler.kick();
    loop {
        {
            let s = status.borrow_and_update();
            if s.applied_index >= index {
                let done = if gone {
                    !s.ready.contains(name) && !m.reconciler.endpoint_netns(name).exists()
                } else {
                    // Errors about other endpoints or networks do not hold this one up (they
                    // show in `secnet status`); its own make it not ready.
                    s.ready.contains(name)
                };
                if done {
                    return Ok(());
                }
            }
        }
        if tokio::time::timeout_at(deadline, status.changed())
            .await
            .is_err()
        {
            let s = status.borrow();
            let detail = if s.errors.is_empty() {
                "no error reported".to_string()
            } else {
                s.errors.join("; ")
            };
            return Err(timeout_error(detail));
        }
    }
}

async fn endpoint_create(
    m: &Member,
    network: String,
    name: Option<String>,
    ip: Option<std::net::Ipv4Addr>,
) -> LocalResult {
    let view = m.view();
    let net = view.state.find_network(&network)?.clone();
    let mut rng = rand::rngs::OsRng;
    let name = name.unwrap_or_else(|| {
        let suffix: u32 = rng.gen();
        format!("{}-{:06x}", net.name, suffix & 0xff_ffff)
    });
    secnet_model::state::validate_endpoint_name(&name)?;
    if view.state.endpoints.contains_key(&name) {
        return Err(secnet_model::ModelError::DuplicateEndpointName(name).into());
    }
    let cmd = Command::CreateEndpoint {
        id: secnet_model::ids::network_id_from_bytes(rng.gen()),
        name: name.clone(),
        node: m.id.node_id,
        network,
        ip,
        created_at: unix_now(),
    };
    m.write(cmd).await?;
    wait_programmed(m, &name, false, |st| st.endpoints.contains_key(&name)).await?;
    let v = m.view();
    let ep = v.state.find_endpoint(&name)?;
    Ok(LocalResponse::Endpoint(endpoint_view(m, &v.state, ep)))
}

async fn endpoint_change(m: &Member, name: &str, cmd: Command) -> LocalResult {
    let ep = m.view().state.find_endpoint(name)?.clone();
    m.write(cmd).await?;
    if ep.node == m.id.node_id {
        let before = ep.attachments.clone();
        wait_programmed(m, name, false, |st| {
            st.endpoints
                .get(name)
                .is_some_and(|e| e.attachments != before)
        })
        .await?;
    }
    let v = m.view();
    let ep = v.state.find_endpoint(name)?;
    Ok(LocalResponse::Endpoint(endpoint_view(m, &v.state, ep)))
}

async fn endpoint_rm(m: &Member, names: &[String]) -> LocalResult {
    // Resolve every name first: `rm a b` with a bad `b` removes nothing.
    let eps = names
        .iter()
        .map(|n| m.view().state.find_endpoint(n).cloned())
        .collect::<Result<Vec<_>, _>>()?;
    let mut removed = Vec::new();
    for ep in eps {
        m.write(Command::RemoveEndpoint {
            name: ep.name.clone(),
        })
        .await?;
        if ep.node == m.id.node_id {
            wait_programmed(m, &ep.name, true, |st| !st.endpoints.contains_key(&ep.name)).await?;
        }
        removed.push(ep.name);
    }
    Ok(LocalResponse::EndpointsRemoved(removed))
}

fn key_infos(state: &secnet_model::ClusterState) -> Vec<secnet_api::KeyInfo> {
    let Some(ring) = &state.key_ring else {
        return Vec::new();
    };
    ring.keys()
        .map(|k| secnet_api::KeyInfo {
            epoch: k.epoch,
            state: k.state.to_string(),
            created: super::views::rfc3339(k.created_at),
            promoted: k.promoted_at.map(super::views::rfc3339),
            installed_on: match k.state {
                secnet_keys::ring::KeyState::Pending => ring.acks(k.epoch).len(),
                _ => state.nodes.len(),
            },
            nodes: state.nodes.len(),
        })
        .collect()
}

/// `key rotate`: a manual rotation; answers once the new key is primary (every live node
/// installed it) or fails with the reason.
async fn key_rotate(m: &Member) -> LocalResult {
    if m.role() != Role::Manager {
        return Err(ApiError::invalid(
            "this node is not a manager: keys are rotated from a manager",
        ));
    }
    let cmd = Command::BeginKeyRotation {
        secret: secnet_keys::secret::Secret32::random(&mut rand::rngs::OsRng),
        now: unix_now(),
        reason: secnet_keys::ring::RotationReason::Manual,
    };
    let epoch = match m.write(cmd).await? {
        Response::KeyEpoch(e) => e,
        other => return Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state = m.view().state;
        let primary = state
            .key_ring
            .as_ref()
            .map(|r| r.primary().epoch)
            .unwrap_or(0);
        if primary >= epoch {
            return Ok(LocalResponse::Keys(key_infos(&state)));
        }
        if tokio::time::Instant::now() > deadline {
            let waiting: Vec<String> = state
                .key_ring
                .as_ref()
                .map(|r| {
                    r.awaiting(&super::keys::live_nodes(&state))
                        .into_iter()
                        .map(|n| {
                            state
                                .nodes
                                .get(&NodeId(n))
                                .map(|x| x.hostname.clone())
                                .unwrap_or_else(|| NodeId(n).to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(ApiError::unavailable(format!(
                "key epoch {epoch} was distributed but not every live node installed it within 30 s (waiting for: {}); it becomes primary as soon as they do",
                waiting.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tunnel_info(m: &Member, drops: secnet_dataplane::StrictDrops) -> secnet_api::TunnelInfo {
    let state = m.view().state;
    let mine = state.wireguard.get(&m.id.node_id);
    let key_epoch = state.key_ring.as_ref().map(|r| r.primary().epoch);
    let Some(t) = m.tunnel.get() else {
        return secnet_api::TunnelInfo {
            up: false,
            public_key: mine.map(|w| w.public_key.clone()),
            tunnel_ip: mine.map(|w| w.tunnel_ip),
            listen: None,
            key_epoch,
            peers: Vec::new(),
            garbage: 0,
            unknown_peer: 0,
            disallowed_source: 0,
            rate_limited: 0,
            strict_dropped_in: drops.inbound,
            strict_dropped_out: drops.outbound,
        };
    };
    let peers = t
        .stats()
        .into_iter()
        .map(|p| {
            let key = p.public_key.to_string();
            let node = state
                .wireguard
                .iter()
                .find(|(_, w)| w.public_key == key)
                .map(|(id, _)| *id);
            secnet_api::TunnelPeerInfo {
                node: node.map(|n| n.to_string()).unwrap_or_default(),
                hostname: node
                    .and_then(|n| state.nodes.get(&n))
                    .map(|n| n.hostname.clone())
                    .unwrap_or_default(),
                public_key: key,
                endpoint: p.endpoint.to_string(),
                tunnel_ip: p.tunnel_ip,
                last_handshake_secs: p.last_handshake.map(|d| d.as_secs()),
                key_epoch: p.key_epoch,
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
                handshake_failures: p.handshake_failures,
                dropped_invalid: p.dropped_invalid,
            }
        })
        .collect();
    let c = t.counters();
    secnet_api::TunnelInfo {
        up: t.is_running(),
        public_key: Some(t.public_key().to_string()),
        tunnel_ip: mine.map(|w| w.tunnel_ip),
        listen: Some(t.local_addr().to_string()),
        key_epoch,
        peers,
        garbage: c.garbage,
        unknown_peer: c.unknown_peer,
        disallowed_source: c.disallowed_source,
        rate_limited: c.rate_limited,
        strict_dropped_in: drops.inbound,
        strict_dropped_out: drops.outbound,
    }
}
