//! The agent core: everything a node decides, as pure functions of what the cluster state
//! says, what the node observes locally and the time, so the decisions are tested without a
//! kernel, sockets or a clock (see `sim/`, which runs a whole cluster of them in memory).
//! The daemon (`crate::daemon`) is the driver: it gathers the facts, asks here, and carries
//! out the [`Action`]s against the kernel, the tunnel engine and Raft.
//!
//! | decision | home |
//! |---|---|
//! | this node's data path (endpoints, networks, remote endpoints) and strict-mode rules | [`datapath`] |
//! | this node's WireGuard peers and pre-shared keys | [`tunnel`] |
//! | key acknowledgements (every node) and the key ring's next step (the leader) | [`keys`] |
//! | which nodes are down (the leader, from the heartbeats it hears) | [`liveness`] |
//! | which node runs which task of each service (the leader) | [`scheduler`] |
//! | this node's tasks: their endpoints, processes and reports (every node) | [`tasks`] |
//! | switching role, renewing the certificate, asking to vote (carried out by the daemon: they replace the member) | [`membership`] |
//! | who a peer is and what a worker may propose | [`authz`] |
//!
//! The task runner, service discovery, the load balancer and the ingress/gateway rules of
//! the coming issues are further modules here, each a function of the same inputs, and
//! further [`Action`] variants for the driver.

pub mod authz;
pub mod datapath;
pub mod keys;
pub mod liveness;
pub mod membership;
pub mod scheduler;
pub mod tasks;
pub mod tunnel;

#[cfg(test)]
mod sim;
#[cfg(test)]
pub(crate) mod test_state;

use std::collections::BTreeMap;
use std::net::IpAddr;

use secnet_dataplane::{Desired, StrictPolicy};
use secnet_keys::secret::Secret32;
use secnet_model::{ClusterState, Command, NodeId};
use secnet_tunnel::{PeerConfig, PresharedKey};

use datapath::EncryptedPath;

/// What a node observes locally, as opposed to what the replicated state says.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    /// This node.
    pub me: NodeId,
    /// Whether this node leads the Raft group now (a worker never does).
    pub leader: bool,
    /// While it leads: for how long, and when it last heard from each node.
    pub liveness: liveness::Liveness,
    /// The data-path address: the local VTEP of unencrypted networks.
    pub data_path_addr: IpAddr,
    /// The MTU of the underlay interface that holds the data-path address.
    pub underlay_mtu: u32,
    /// This node's WireGuard public key (base64), once its static key is loaded.
    pub public_key: Option<String>,
    /// What this node's WireGuard endpoint holds; `None` while no endpoint runs.
    pub tunnel: Option<TunnelFacts>,
    /// The task processes this node runs and the endpoints its data path has ready.
    pub tasks: tasks::TaskFacts,
}

/// What a running WireGuard endpoint was last given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelFacts {
    /// Epochs of the pre-shared keys installed, and the primary's; `None` before any.
    pub keys: Option<(Vec<u64>, u64)>,
    /// The peers installed.
    pub peers: Vec<PeerConfig>,
}

impl NodeFacts {
    /// Whether this node may acknowledge key `epoch`: its endpoint holds it for receiving,
    /// or no endpoint runs (one that starts later is given the whole ring before any peer).
    pub fn holds_key(&self, epoch: u64) -> bool {
        match &self.tunnel {
            None => true,
            Some(t) => t.keys.as_ref().is_some_and(|(e, _)| e.contains(&epoch)),
        }
    }
}

/// A data path to program, and the endpoints it leaves out for now (with why): they are
/// not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDataPath {
    pub desired: Desired,
    pub waiting: BTreeMap<String, String>,
}

/// Something a node must do, decided by [`decide`] and carried out by the driver.
#[derive(Debug, Clone)]
pub enum Action {
    /// Install the strict-mode rules `strict`, then program `secured`; if the rules cannot
    /// be installed, program `fallback` instead, which has nothing of encrypted networks.
    /// Both are decided here so that the executor fails closed in the very pass that finds
    /// the rules missing, without deciding anything itself.
    ProgramDataPath {
        secured: PlannedDataPath,
        fallback: PlannedDataPath,
        strict: StrictPolicy,
    },
    /// Install these pre-shared keys in the endpoint; `primary` keys new handshakes.
    SetTunnelKeys {
        keys: Vec<PresharedKey>,
        primary: u64,
    },
    /// Make these the endpoint's peers.
    SetTunnelPeers(Vec<PeerConfig>),
    /// Propose a command to the cluster (the leader runs it, any other node writes it
    /// through a manager).
    Propose(Command),
    /// Start task `id`'s process inside the namespace of `endpoint`.
    StartTask {
        id: String,
        command: Vec<String>,
        env: BTreeMap<String, String>,
        endpoint: String,
    },
    /// Stop task `id`'s process (SIGTERM, then SIGKILL after a grace period).
    StopTask { id: String },
}

/// Fresh randomness, for decisions that make something new. The driver draws from the OS;
/// the harness counts, so its runs repeat exactly.
pub trait Entropy {
    /// The secret of a new key of the ring.
    fn secret(&mut self) -> Secret32;
    /// The id of a new object (a task).
    fn id(&mut self) -> String;
}

/// Everything node `facts.me` should do now, given the state it has and what it observes;
/// `entropy` makes secrets and ids for what the leader creates. The order is the order to
/// carry them out in: keys before peers (no session without a key of the ring), and no
/// peers before the ring exists.
pub fn decide(
    state: &ClusterState,
    facts: &NodeFacts,
    entropy: &mut dyn Entropy,
    now: u64,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if !state.nodes.contains_key(&facts.me) {
        // Not (or no longer) a member: nothing of the cluster's is ours to program.
        return actions;
    }
    let planned = |encrypted| {
        let (desired, waiting) = datapath::desired_for(
            state,
            facts.me,
            facts.data_path_addr,
            facts.underlay_mtu,
            encrypted,
        );
        PlannedDataPath { desired, waiting }
    };
    actions.push(Action::ProgramDataPath {
        secured: planned(EncryptedPath::Ready),
        fallback: planned(EncryptedPath::Unavailable),
        strict: datapath::strict_policy_for(state),
    });
    if let Some(register) = tunnel::key_registration(state, facts.me, facts.public_key.as_deref()) {
        actions.push(Action::Propose(register));
    }
    if let (Some(installed), Some((keys, primary))) = (&facts.tunnel, tunnel::desired_keys(state)) {
        let epochs: Vec<u64> = keys.iter().map(|k| k.epoch).collect();
        if installed.keys.as_ref() != Some(&(epochs, primary)) {
            actions.push(Action::SetTunnelKeys { keys, primary });
        }
        let peers = tunnel::desired_peers(state, facts.me);
        if installed.peers != peers {
            actions.push(Action::SetTunnelPeers(peers));
        }
    }
    actions.extend(tasks::plan(state, facts.me, &facts.tasks, now, &mut || {
        entropy.id()
    }));
    if let Some(ack) = keys::acknowledgement(state, facts.me, |e| facts.holds_key(e)) {
        actions.push(Action::Propose(ack));
    }
    if facts.leader {
        let statuses = liveness::status_changes(state, facts.me, &facts.liveness);
        // Scheduling waits for this round's status changes to land: a plan made from the
        // state before them could place a task on a node just marked down.
        let settled = statuses.is_empty();
        actions.extend(statuses.into_iter().map(Action::Propose));
        if let Some(step) = keys::next_leader_step(state, || entropy.secret(), now) {
            actions.push(Action::Propose(step));
        }
        if settled {
            let tasks = scheduler::plan(state, now, &mut || entropy.id());
            actions.extend(tasks.into_iter().map(Action::Propose));
        }
    }
    actions
}
