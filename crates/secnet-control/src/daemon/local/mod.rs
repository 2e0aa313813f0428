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
use secnet_keys::secret::SecretBytes;
use secnet_keys::token::{JoinToken, TOKEN_SECRET_LEN};
use secnet_model::{
    ClusterConfig, ClusterSecrets, Command, NetworkSpec, Node, NodeId, NodeStatus, Response, Role,
};
use secnet_pki::{self as pki, ClusterCa, NodeKey, NODE_CERT_VALIDITY};

use super::addrs;
use super::identity::{self, Identity};
use super::views::{endpoint_info, network_info, node_info};
use super::{unix_now, Daemon, Member, StartError, View};
use crate::peer::{connect_tls, JoinPeerRequest, PeerRequest, PeerResponse, Proposal};

pub use secnet_model::DEFAULT_KEY_ROTATION_SECS;
pub use secnet_types::DEFAULT_DATA_PATH_PORT;

/// Refuses a socket path another daemon still answers on, and removes one nobody answers
/// on (what a crashed daemon leaves behind).
pub fn ensure_socket_free(socket: &Path) -> Result<(), StartError> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(StartError::SocketInUse(socket.to_path_buf()));
    }
    match std::fs::remove_file(socket) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StartError::io(format!(
            "removing the old socket {}",
            socket.display()
        ))(e)),
    }
}

/// Serves the local API until the listener fails.
pub async fn serve_local(daemon: Arc<Daemon>, socket: &Path) -> Result<(), StartError> {
    let at = |what: &str| StartError::io(format!("{what} {}", socket.display()));
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(at("creating the directory of the socket"))?;
    }
    ensure_socket_free(socket)?;
    // Bind under a temporary name, restrict it, then move it into place: the socket is never
    // reachable with a wider mode.
    let tmp = socket.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(at("binding the socket"))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(at("restricting the socket"))?;
    std::fs::rename(&tmp, socket).map_err(at("moving into place the socket"))?;
    info!(socket = %socket.display(), "local API listening");
    loop {
        let (conn, _) = listener
            .accept()
            .await
            .map_err(at("accepting a connection on"))?;
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
        let due = req.answered_with();
        // The contract of the API: a request gets its own kind of answer or an error.
        let result = secnet_api::checked_answer(due, dispatch(&daemon, req).await);
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
        LocalRequest::ServiceCreate(_) => "service create",
        LocalRequest::ServiceLs => "service ls",
        LocalRequest::ServicePs { .. } => "service ps",
        LocalRequest::ServiceInspect { .. } => "service inspect",
        LocalRequest::ServiceScale { .. } => "service scale",
        LocalRequest::ServiceRm { .. } => "service rm",
        LocalRequest::ServiceUpdate { .. } => "service update",
        LocalRequest::ServiceLogs { .. } => "service logs",
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
                LocalRequest::ServiceCreate(spec) => service_create(&m, spec).await,
                LocalRequest::ServiceLs => service_ls(&m),
                LocalRequest::ServicePs { service } => service_ps(&m, &service),
                LocalRequest::ServiceInspect { services } => service_inspect(&m, &services),
                LocalRequest::ServiceScale { service, replicas } => {
                    service_scale(&m, &service, replicas).await
                }
                LocalRequest::ServiceRm { services } => service_rm(&m, &services).await,
                LocalRequest::ServiceLogs { service, since } => service_logs(&m, &service, &since),
                LocalRequest::ServiceUpdate { service, change } => {
                    service_update(&m, &service, &change).await
                }
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

mod cluster;
mod endpoint;
mod key;
mod network;
mod node;
mod service;
mod tunnel;

use cluster::*;
use endpoint::*;
use key::*;
use network::*;
use node::*;
use service::*;
use tunnel::*;
