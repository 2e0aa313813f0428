//! Who may do what: which node a peer's certificate belongs to, and which proposals a
//! worker may make. Pure, so the security-critical decisions are tested without sockets;
//! the peer server (`daemon/server.rs`) asks here for every request.

use secnet_model::{ClusterState, Command, NodeId, Role, ServiceCommand};

use crate::peer::{PeerRef, Proposal};

/// The node a certificate fingerprint belongs to, from the state or, before this manager's
/// state knows the cluster, from the managers it learned at join (`bootstrap`). With
/// `need_manager` (Raft traffic) only managers pass, and a node still in the Raft membership
/// (`in_raft`) while it is being demoted. Pure, so the decision is tested without sockets.
pub(crate) fn identify(
    state: &ClusterState,
    bootstrap: &[PeerRef],
    fingerprint: &str,
    need_manager: bool,
    in_raft: impl Fn(NodeId) -> bool,
) -> Result<(NodeId, Role), DenyReason> {
    if let Some(node) = state.node_by_fingerprint(fingerprint) {
        // Raft traffic: managers, and a node being demoted until it has left the Raft
        // membership (a demoted leader must be able to hand over).
        if need_manager && node.role != Role::Manager && !in_raft(node.id) {
            return Err(DenyReason::NotAManager(node.id));
        }
        return Ok((node.id, node.role));
    }
    if !state.is_initialized() {
        if let Some(p) = bootstrap.iter().find(|p| p.fingerprint == fingerprint) {
            return Ok((p.id, Role::Manager));
        }
    }
    Err(DenyReason::UnknownCertificate)
}

/// Why a peer request is refused; its text is what `PeerResponse::Denied` carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DenyReason {
    #[error("a client certificate is required")]
    NoClientCertificate,
    #[error("node {0} is not a manager")]
    NotAManager(NodeId),
    #[error("certificate not recognized: the node was removed from the cluster or never joined")]
    UnknownCertificate,
}

/// Workers may create and remove networks (as any node may in secnet), manage their own
/// endpoints and remove themselves (`leave`); membership, roles and tokens are otherwise
/// managers' business.
pub(crate) fn worker_may_propose(state: &ClusterState, caller: NodeId, p: &Proposal) -> bool {
    let own_endpoint = |name: &str| state.find_endpoint(name).is_ok_and(|e| e.node == caller);
    match p {
        Proposal::Command(Command::CreateNetwork { .. } | Command::RemoveNetwork { .. }) => true,
        Proposal::Command(
            Command::RemoveNode { id }
            | Command::AckKey { node: id, .. }
            | Command::SetWireguardKey { id, .. }
            | Command::RequestWireguardRotation { id },
        ) => *id == caller,
        // Endpoints live in one node's kernel: a worker manages its own.
        Proposal::Command(Command::CreateEndpoint { node, .. }) => *node == caller,
        Proposal::Command(
            Command::RemoveEndpoint { name }
            | Command::ConnectEndpoint { name, .. }
            | Command::DisconnectEndpoint { name, .. },
        ) => own_endpoint(name),
        // A node reports the state of the tasks it runs, and of no other.
        Proposal::Command(Command::Service(ServiceCommand::Report { id, node, .. })) => {
            *node == caller && state.tasks.get(id).is_some_and(|t| t.node == Some(caller))
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
