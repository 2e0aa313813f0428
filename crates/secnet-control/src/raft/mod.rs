//! Raft consensus among the managers: openraft's type configuration for secnet and the
//! persistent storage ([`store`]) that keeps the log and the cluster state on disk.
//!
//! The replicated state machine is [`secnet_model::ClusterState`]: every committed
//! [`secnet_model::Command`] is applied to it in log order on every manager, and the
//! [`secnet_model::CommandResult`] of the leader's application is returned to the proposer.

openraft::declare_raft_types!(
    /// secnet's Raft type configuration.
    pub TypeConfig:
        D = secnet_model::Command,
        R = secnet_model::CommandResult,
        NodeId = u64,
        // `addr` is the manager's advertise address, "ip:port".
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A running Raft node of secnet.
pub type Raft = openraft::Raft<TypeConfig>;

pub mod store;
