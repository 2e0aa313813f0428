//! openraft's network: Raft RPCs to other managers over the mTLS control protocol.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use crate::peer::{PeerClient, PeerError, PeerRequest, PeerResponse};
use crate::raft::TypeConfig;

/// Makes one [`RaftPeer`] per target manager.
#[derive(Clone)]
pub struct RaftNetworkFactoryImpl {
    tls: Arc<rustls::ClientConfig>,
}

impl RaftNetworkFactoryImpl {
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        RaftNetworkFactoryImpl { tls }
    }
}

/// A Raft connection to one manager.
pub struct RaftPeer {
    target: u64,
    client: Option<PeerClient>,
    addr_error: Option<String>,
}

impl RaftNetworkFactory<TypeConfig> for RaftNetworkFactoryImpl {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> RaftPeer {
        match node.addr.parse::<SocketAddr>() {
            Ok(addr) => RaftPeer {
                target,
                client: Some(PeerClient::new(addr, self.tls.clone())),
                addr_error: None,
            },
            Err(e) => RaftPeer {
                target,
                client: None,
                addr_error: Some(format!("bad address {:?}: {e}", node.addr)),
            },
        }
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

fn to_rpc_error<E: std::error::Error>(e: PeerError) -> RPCError<u64, BasicNode, E> {
    match e {
        PeerError::Unreachable { .. }
        | PeerError::CaDigestMismatch { .. }
        | PeerError::Denied { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        PeerError::Wire { .. } | PeerError::Timeout { .. } => {
            RPCError::Network(NetworkError::new(&e))
        }
    }
}

impl RaftPeer {
    async fn call<E: std::error::Error>(
        &mut self,
        req: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, RPCError<u64, BasicNode, E>> {
        let Some(client) = self.client.as_mut() else {
            let msg = self.addr_error.clone().unwrap_or_default();
            return Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other(msg),
            )));
        };
        // Give the transport a little more than openraft's own deadline so openraft's timeout,
        // not ours, decides.
        let timeout = option.hard_ttl() + Duration::from_millis(200);
        client.call(&req, timeout).await.map_err(to_rpc_error)
    }

    fn unexpected<E: std::error::Error>(resp: &PeerResponse) -> RPCError<u64, BasicNode, E> {
        RPCError::Network(NetworkError::new(&std::io::Error::other(format!(
            "unexpected answer {resp:?}"
        ))))
    }
}

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        match self.call(PeerRequest::AppendEntries(rpc), &option).await? {
            PeerResponse::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(Self::unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        match self
            .call(PeerRequest::InstallSnapshot(rpc), &option)
            .await?
        {
            PeerResponse::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(Self::unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        match self.call(PeerRequest::Vote(rpc), &option).await? {
            PeerResponse::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(Self::unexpected(&other)),
        }
    }
}
