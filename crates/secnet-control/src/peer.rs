//! The control protocol between nodes: requests and answers carried in [`secnet_api::wire`]
//! frames over mutually authenticated TLS 1.3 on each manager's advertise address.
//!
//! A connection carries one request at a time; `Watch` turns it into a stream of state
//! updates from the manager.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use secnet_api::wire::{self, WireError};
use secnet_api::ApiError;
use secnet_keys::secret::SecretBytes;
use secnet_model::{ClusterState, Command, NodeId, Response, Role};

use crate::raft::TypeConfig;

/// What a node asks a manager.
// Each message is built, sent and dropped once per RPC; boxing the big variants would only add
// an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Admission with a join token (the only request allowed without a client certificate).
    Join(JoinPeerRequest),
    /// Raft replication (manager certificates only).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft election (manager certificates only).
    Vote(VoteRequest<u64>),
    /// Raft snapshot transfer (manager certificates only).
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A write, forwarded towards the leader; `hops` bounds forwarding loops.
    Propose { proposal: Proposal, hops: u8 },
    /// Stream the cluster state (the worker view) from now on.
    Watch,
    /// The sender is alive.
    Heartbeat { node_id: NodeId },
    /// A new certificate for the caller's key, for the role the state gives it.
    RenewCertificate { csr_der: Vec<u8> },
    /// Liveness probe (`secnet status` counts reachable managers with it).
    Ping,
}

/// A change only the leader can carry out.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Proposal {
    /// Append a command to the replicated log.
    Command(Command),
    /// Make a manager node a Raft voter (it must already be in the node table).
    AddVoter { id: NodeId, addr: SocketAddr },
    /// Remove a node from the Raft voters.
    RemoveVoter { id: NodeId },
}

/// The body of a join request.
#[derive(Serialize, Deserialize)]
pub struct JoinPeerRequest {
    /// The secret half of the join token.
    pub secret: SecretBytes,
    /// A CSR for the key the joiner made; only its public key is used.
    pub csr_der: Vec<u8>,
    pub hostname: String,
    pub advertise_addr: SocketAddr,
    pub data_path_addr: IpAddr,
    pub underlay: Vec<IpNet>,
}

impl std::fmt::Debug for JoinPeerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinPeerRequest")
            .field("hostname", &self.hostname)
            .field("advertise_addr", &self.advertise_addr)
            .finish_non_exhaustive()
    }
}

/// A manager the joiner can reach, with the certificate fingerprint it must present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRef {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub fingerprint: String,
}

/// What an admitted node receives.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinPeerResponse {
    pub node_id: NodeId,
    pub role: Role,
    pub cluster_id: String,
    pub cert_der: Vec<u8>,
    pub ca_der: Vec<u8>,
    pub managers: Vec<PeerRef>,
}

/// A write carried out by the leader, with the index of the log entry that holds it (0 for
/// membership changes), so the proposer can wait until its own state has caught up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Committed {
    pub response: Response,
    pub index: u64,
}

impl Committed {
    /// A change with nothing to wait for.
    pub fn done() -> Committed {
        Committed {
            response: Response::Done,
            index: 0,
        }
    }
}

/// One update of a watch stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchEvent {
    pub applied_index: u64,
    pub leader: Option<NodeId>,
    pub state: ClusterState,
}

/// A manager's answer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    Join(Result<JoinPeerResponse, ApiError>),
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Proposed(Result<Committed, ApiError>),
    Certificate(Result<Vec<u8>, ApiError>),
    Watch(Box<WatchEvent>),
    Ok,
    Pong {
        node_id: NodeId,
        leader: Option<NodeId>,
    },
    /// The request was refused (no or revoked certificate, wrong role).
    Denied(String),
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// TCP connect or the TLS handshake failed.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    /// The TLS handshake of a join failed because no CA in the manager's chain has the
    /// join token's digest (`pki::CaDigestMismatch`): told apart by type, not by message.
    #[error("cannot reach {addr}: {reason}")]
    CaDigestMismatch { addr: SocketAddr, reason: String },
    /// The connection broke or the answer was malformed.
    #[error("connection to {addr} failed: {source}")]
    Wire {
        addr: SocketAddr,
        #[source]
        source: WireError,
    },
    /// The peer did not answer in time.
    #[error("{addr} did not answer within {secs} s")]
    Timeout { addr: SocketAddr, secs: u64 },
    /// The peer refused us.
    #[error("{addr} refused the request: {reason}")]
    Denied { addr: SocketAddr, reason: String },
}

/// A connection to one manager, opened on first use and re-opened after a failure.
pub struct PeerClient {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    conn: Option<TlsStream<TcpStream>>,
}

/// How long TCP connect plus TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl PeerClient {
    pub fn new(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Self {
        PeerClient {
            addr,
            tls,
            conn: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn connect(&mut self) -> Result<&mut TlsStream<TcpStream>, PeerError> {
        if self.conn.is_none() {
            let conn = connect_tls(self.addr, self.tls.clone()).await?;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| PeerError::Unreachable {
            addr: self.addr,
            reason: "no connection".into(),
        })
    }

    /// Sends one request and waits for its answer. Any failure drops the connection so the
    /// next call starts afresh.
    pub async fn call(
        &mut self,
        req: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, PeerError> {
        let addr = self.addr;
        let result = tokio::time::timeout(timeout, async {
            let conn = self.connect().await?;
            wire::write_msg(conn, req)
                .await
                .map_err(|source| PeerError::Wire { addr, source })?;
            match wire::read_msg::<_, PeerResponse>(conn).await {
                Ok(Some(PeerResponse::Denied(reason))) => Err(PeerError::Denied { addr, reason }),
                Ok(Some(resp)) => Ok(resp),
                Ok(None) => Err(PeerError::Wire {
                    addr,
                    source: WireError::Truncated,
                }),
                Err(source) => Err(PeerError::Wire { addr, source }),
            }
        })
        .await
        .unwrap_or(Err(PeerError::Timeout {
            addr,
            secs: timeout.as_secs(),
        }));
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// Hands the open connection over (for a watch stream).
    pub async fn into_stream(mut self) -> Result<TlsStream<TcpStream>, PeerError> {
        self.connect().await?;
        self.conn.take().ok_or(PeerError::Unreachable {
            addr: self.addr,
            reason: "no connection".into(),
        })
    }
}

/// Opens a TLS connection to a manager, verifying it as `secnet-manager`.
/// Whether a TLS connector's error is the join verifier's [`secnet_pki::CaDigestMismatch`].
fn is_ca_digest_mismatch(e: &std::io::Error) -> bool {
    let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return false;
    };
    other
        .0
        .downcast_ref::<secnet_pki::CaDigestMismatch>()
        .is_some()
}

pub async fn connect_tls(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, PeerError> {
    let unreachable = |reason: String| PeerError::Unreachable { addr, reason };
    let fut = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls_pki_types::ServerName::try_from(secnet_pki::MANAGER_SERVER_NAME)
            .map_err(|e| unreachable(e.to_string()))?;
        TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let reason = format!("TLS handshake failed: {e}");
                if is_ca_digest_mismatch(&e) {
                    PeerError::CaDigestMismatch { addr, reason }
                } else {
                    unreachable(reason)
                }
            })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(unreachable("connect timed out".into())))
}
