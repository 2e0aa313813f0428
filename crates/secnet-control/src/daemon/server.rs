//! The manager's control server: mTLS on the listen address. Every request except `Join`
//! and `Ping` must come with a client certificate whose fingerprint is in the node table,
//! so removing a node revokes it at once.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use secnet_api::{wire, ApiError, ErrorKind};
use secnet_model::{Command, Node, NodeId, NodeStatus, Response, Role};
use secnet_pki::{self as pki, ClusterCa, NODE_CERT_VALIDITY};

use super::{Member, Runtime};
use crate::agent::authz::{identify, worker_may_propose, DenyReason};
use crate::peer::{
    JoinPeerRequest, JoinPeerResponse, PeerRef, PeerRequest, PeerResponse, WatchEvent,
};

pub(crate) async fn bind(member: &Member) -> Result<TcpListener, super::StartError> {
    let addr = member.id.listen_addr;
    TcpListener::bind(addr)
        .await
        .map_err(|source| super::StartError::Listen { addr, source })
}

pub(crate) async fn serve(member: Weak<Member>, listener: TcpListener) {
    let acceptor = {
        let Some(m) = member.upgrade() else { return };
        match pki::server_config(&m.id.ca_der, &m.id.cert_der, &m.key) {
            Ok(cfg) => TlsAcceptor::from(cfg),
            Err(e) => {
                warn!(error = %e, "cannot build the TLS server configuration");
                return;
            }
        }
    };
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let member = member.clone();
        tokio::spawn(async move {
            if let Err(e) = handle_conn(member, acceptor, tcp).await {
                debug!(%peer, error = %e, "control connection closed");
            }
        });
    }
}

/// The largest request accepted from a peer without a certificate (a join request is a few
/// kilobytes).
const ANONYMOUS_MAX_FRAME: usize = 64 * 1024;
/// How long a peer without a certificate may stay silent.
const ANONYMOUS_IDLE: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection.
#[derive(Clone)]
enum Caller {
    Anonymous,
    Node { fingerprint: String },
}

async fn handle_conn(
    member: Weak<Member>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
) -> anyhow::Result<()> {
    let _ = tcp.set_nodelay(true);
    let mut conn = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await??;
    let caller = match conn.get_ref().1.peer_certificates() {
        Some([leaf, ..]) => Caller::Node {
            fingerprint: pki::cert_fingerprint(leaf),
        },
        _ => Caller::Anonymous,
    };
    loop {
        // Before a peer has shown a certificate it may only join: small frames, and it must
        // speak promptly.
        let req = match &caller {
            Caller::Anonymous => {
                let read = wire::read_msg_max::<_, PeerRequest>(&mut conn, ANONYMOUS_MAX_FRAME);
                tokio::time::timeout(ANONYMOUS_IDLE, read).await??
            }
            Caller::Node { .. } => wire::read_msg::<_, PeerRequest>(&mut conn).await?,
        };
        let Some(req) = req else {
            return Ok(());
        };
        let Some(m) = member.upgrade() else {
            return Ok(());
        };
        if matches!(req, PeerRequest::Watch) {
            return stream_state(m, &caller, conn).await;
        }
        let resp = handle(&m, &caller, req).await;
        drop(m);
        wire::write_msg(&mut conn, &resp).await?;
    }
}

/// The node a certificate belongs to (see [`identify`]).
fn authorize(
    m: &Member,
    caller: &Caller,
    need_manager: bool,
) -> Result<(NodeId, Role), DenyReason> {
    let Caller::Node { fingerprint } = caller else {
        return Err(DenyReason::NoClientCertificate);
    };
    identify(
        &m.view().state,
        &m.id.bootstrap_managers,
        fingerprint,
        need_manager,
        |id| raft_member(m, id),
    )
}

/// Whether `id` is in this manager's Raft membership (voter or learner).
fn raft_member(m: &Member, id: NodeId) -> bool {
    match &m.rt {
        Runtime::Manager(rt) => rt
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .any(|(n, _)| *n == id.0),
        Runtime::Worker(_) => false,
    }
}

async fn handle(m: &Member, caller: &Caller, req: PeerRequest) -> PeerResponse {
    let Runtime::Manager(rt) = &m.rt else {
        return PeerResponse::Denied("this node is not a manager".into());
    };
    match req {
        PeerRequest::Ping => match authorize(m, caller, false) {
            Ok(_) => PeerResponse::Pong {
                node_id: m.id.node_id,
                leader: rt.view().leader,
            },
            Err(e) => PeerResponse::Denied(e.to_string()),
        },
        PeerRequest::Join(j) => PeerResponse::Join(admit(m, j).await),
        PeerRequest::AppendEntries(r) => match authorize(m, caller, true) {
            Ok(_) => PeerResponse::AppendEntries(rt.raft.append_entries(r).await),
            Err(e) => PeerResponse::Denied(e.to_string()),
        },
        PeerRequest::Vote(r) => match authorize(m, caller, true) {
            Ok(_) => PeerResponse::Vote(rt.raft.vote(r).await),
            Err(e) => PeerResponse::Denied(e.to_string()),
        },
        PeerRequest::InstallSnapshot(r) => match authorize(m, caller, true) {
            Ok(_) => PeerResponse::InstallSnapshot(rt.raft.install_snapshot(r).await),
            Err(e) => PeerResponse::Denied(e.to_string()),
        },
        PeerRequest::Heartbeat { node_id } => match authorize(m, caller, false) {
            Ok((id, _)) if id == node_id => {
                rt.record_heartbeat(id, Instant::now());
                PeerResponse::Ok
            }
            Ok((id, _)) => {
                PeerResponse::Denied(format!("node {id} sent a heartbeat for {node_id}"))
            }
            Err(e) => PeerResponse::Denied(e.to_string()),
        },
        PeerRequest::Propose { proposal, hops } => match authorize(m, caller, false) {
            Ok((id, role)) => {
                if role == Role::Worker && !worker_may_propose(&m.view().state, id, &proposal) {
                    return PeerResponse::Proposed(Err(ApiError::new(
                        ErrorKind::Denied,
                        format!("node {id} is a worker: this change can only be made on a manager"),
                    )));
                }
                PeerResponse::Proposed(m.propose(proposal, hops).await)
            }
            Err(e) => PeerResponse::Denied(e.to_string()),
        },
        PeerRequest::RenewCertificate { csr_der } => match authorize(m, caller, false) {
            Ok((id, _)) => PeerResponse::Certificate(renew(m, id, &csr_der).await),
            Err(e) => PeerResponse::Denied(e.to_string()),
        },
        PeerRequest::Watch => PeerResponse::Denied("watch must be the first request".into()),
    }
}

/// Signs a node's CSR with the CA, for the node's current role and id.
fn sign(m: &Member, node_id: NodeId, role: Role, csr_der: &[u8]) -> Result<Vec<u8>, ApiError> {
    let view = m.view();
    let (Some(secrets), Some(config)) = (&view.state.secrets, &view.state.config) else {
        return Err(ApiError::unavailable(
            "this manager has not caught up with the cluster state yet; retry",
        ));
    };
    let ca = ClusterCa::from_parts(view.state.ca_cert_der.clone(), secrets.ca_key.clone())
        .map_err(|e| ApiError::internal(format!("cluster CA unusable: {e}")))?;
    ca.sign_node(
        csr_der,
        node_id.0,
        role,
        &config.cluster_id,
        NODE_CERT_VALIDITY,
        std::time::SystemTime::now(),
    )
    .map_err(|e| ApiError::invalid(format!("cannot sign the node's certificate: {e}")))
}

/// Re-issues the certificate of a node (for the role the state gives it) and records the
/// new fingerprint, which revokes the old certificate.
pub(crate) async fn renew(m: &Member, id: NodeId, csr_der: &[u8]) -> Result<Vec<u8>, ApiError> {
    let role = m
        .view()
        .state
        .nodes
        .get(&id)
        .map(|n| n.role)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("node {id} is not in the cluster"),
            )
        })?;
    let previous = m
        .view()
        .state
        .nodes
        .get(&id)
        .map(|n| n.cert_fingerprint.clone())
        .unwrap_or_default();
    let cert = sign(m, id, role, csr_der)?;
    m.write(Command::UpdateCertificate {
        id,
        previous,
        fingerprint: pki::cert_fingerprint(&cert),
    })
    .await?;
    info!(node = %id, role = %role, "certificate re-issued");
    Ok(cert)
}

/// Checks a join token and admits the node: signs its certificate and adds it to the state.
async fn admit(m: &Member, j: JoinPeerRequest) -> Result<JoinPeerResponse, ApiError> {
    let view = m.view();
    let state = &view.state;
    let (Some(secrets), Some(config)) = (&state.secrets, &state.config) else {
        return Err(ApiError::unavailable(
            "this manager has not caught up with the cluster state yet; retry",
        ));
    };
    let role = if j.secret.ct_eq(&secrets.manager_token) {
        Role::Manager
    } else if j.secret.ct_eq(&secrets.worker_token) {
        Role::Worker
    } else {
        warn!(hostname = %j.hostname, "join refused: invalid token");
        return Err(ApiError::new(
            ErrorKind::Denied,
            "invalid join token: it does not match this cluster's current worker or manager token (it may have been rotated); get a fresh one with `secnet join-token worker|manager` on a manager",
        ));
    };
    let mut rng = rand::rngs::OsRng;
    let node_id = loop {
        let id = NodeId(rng.gen());
        if id.0 != 0 && !state.nodes.contains_key(&id) && !state.removed_nodes.contains(&id) {
            break id;
        }
    };
    let cert_der = sign(m, node_id, role, &j.csr_der)?;
    let node = Node {
        id: node_id,
        hostname: j.hostname.clone(),
        role,
        status: NodeStatus::Ready,
        advertise_addr: j.advertise_addr,
        data_path_addr: j.data_path_addr,
        cert_fingerprint: pki::cert_fingerprint(&cert_der),
        underlay: j.underlay,
        joined_at: super::unix_now(),
    };
    match m.write(Command::AddNode { node }).await? {
        Response::Node(_) => {}
        other => return Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
    info!(node = %node_id, hostname = %j.hostname, role = %role, "node admitted");
    let managers: Vec<PeerRef> = super::peer_refs(state);
    Ok(JoinPeerResponse {
        node_id,
        role,
        cluster_id: config.cluster_id.clone(),
        cert_der,
        ca_der: state.ca_cert_der.clone(),
        managers,
    })
}

/// Streams the worker view of the state: at once, on every change, and every 2 s so a
/// watcher can tell a live manager from a dead one.
async fn stream_state(
    m: Arc<Member>,
    caller: &Caller,
    mut conn: tokio_rustls::server::TlsStream<TcpStream>,
) -> anyhow::Result<()> {
    if let Err(e) = authorize(&m, caller, false) {
        wire::write_msg(&mut conn, &PeerResponse::Denied(e.to_string())).await?;
        return Ok(());
    }
    let Runtime::Manager(rt) = &m.rt else {
        return Ok(());
    };
    let mut state_rx = rt.state_rx();
    let mut metrics = rt.raft.metrics();
    let weak = Arc::downgrade(&m);
    drop(m);
    loop {
        let Some(m) = weak.upgrade() else {
            return Ok(());
        };
        // A removed node loses its watch at the next update. The check and what is sent come
        // from one snapshot, so a removal and the key rotation it causes can never reach the
        // removed node together.
        let view = m.view();
        let Caller::Node { fingerprint } = caller else {
            return Ok(());
        };
        if view.state.is_initialized() && view.state.node_by_fingerprint(fingerprint).is_none() {
            return Ok(());
        }
        let ev = WatchEvent {
            applied_index: view.applied_index,
            leader: view.leader,
            state: view.state.worker_view(),
        };
        drop(m);
        wire::write_msg(&mut conn, &PeerResponse::Watch(Box::new(ev))).await?;
        tokio::select! {
            r = state_rx.changed() => r?,
            r = metrics.changed() => r?,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
