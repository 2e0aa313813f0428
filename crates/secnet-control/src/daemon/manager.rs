//! A manager's runtime: the Raft node, the mTLS control server, and the leader's duties
//! (node liveness, admitting voters).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, ServerState};
use tokio::sync::watch;
use tracing::{info, warn};

use secnet_api::{ApiError, Transient};
use secnet_model::NodeId;

use super::identity::Identity;
use super::StartError;
use super::{Daemon, Member, View, WRITE_TIMEOUT};
use crate::agent::membership::wants_voter;
use crate::peer::{Committed, Proposal};
use crate::raft::store::{RedbStore, StateView};
use crate::raft::Raft;
use crate::raft_net::RaftNetworkFactoryImpl;

/// Raft heartbeat period.
const RAFT_HEARTBEAT_MS: u64 = 250;

pub(crate) struct ManagerRt {
    pub(crate) raft: Raft,
    state_rx: watch::Receiver<Arc<StateView>>,
    node_id: NodeId,
    /// Last heartbeat per node, kept by whichever manager hears it; only the leader acts.
    liveness: Mutex<HashMap<NodeId, Instant>>,
}

/// Election timeouts: each manager gets its own window, derived from its id, because
/// openraft 0.9 draws the timeout once per process and two survivors with equal draws can
/// split votes forever.
fn election_window(id: NodeId) -> (u64, u64) {
    let slot = (id.0 % 8) * 150;
    let min = 1000 + slot;
    (min, min + 140)
}

impl ManagerRt {
    pub(crate) async fn start(
        daemon: &Arc<Daemon>,
        id: &Identity,
        client_tls: Arc<rustls::ClientConfig>,
        bootstrap: bool,
    ) -> Result<ManagerRt, StartError> {
        let (log, sm) = RedbStore::open(&daemon.paths.raft_db(), daemon.kek.clone())?;
        let state_rx = sm.subscribe();
        let (min, max) = election_window(id.node_id);
        let config = Config {
            cluster_name: id.cluster_id.clone(),
            heartbeat_interval: RAFT_HEARTBEAT_MS,
            election_timeout_min: min,
            election_timeout_max: max,
            // Snapshot every 10000 entries, like Swarm, so the log stays bounded.
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10_000),
            max_in_snapshot_log_to_keep: 1000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let raft = Raft::new(
            id.node_id.0,
            Arc::new(config),
            RaftNetworkFactoryImpl::new(client_tls),
            log,
            sm,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        if bootstrap {
            let mut members = BTreeMap::new();
            members.insert(id.node_id.0, BasicNode::new(id.advertise_addr.to_string()));
            raft.initialize(members)
                .await
                .map_err(|e| StartError::Raft(format!("initializing the cluster: {e}")))?;
        }
        Ok(ManagerRt {
            raft,
            state_rx,
            node_id: id.node_id,
            liveness: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
    }

    pub(crate) fn view(&self) -> View {
        let sv = self.state_rx.borrow().clone();
        View {
            applied_index: sv.applied_index,
            leader: self.raft.metrics().borrow().current_leader.map(NodeId),
            state: sv.state.clone(),
        }
    }

    pub(crate) fn state_rx(&self) -> watch::Receiver<Arc<StateView>> {
        self.state_rx.clone()
    }

    pub(crate) fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id.0)
    }

    /// Whether a quorum acknowledged this leader recently. openraft 0.9 keeps a leader that
    /// lost its quorum in place; we refuse writes at once instead of letting them hang.
    fn has_quorum(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        match m.millis_since_quorum_ack {
            Some(ms) => ms < 3 * RAFT_HEARTBEAT_MS + 500,
            None => false,
        }
    }

    pub(crate) fn record_heartbeat(&self, id: NodeId, at: Instant) {
        if let Ok(mut l) = self.liveness.lock() {
            l.insert(id, at);
        }
    }

    fn voters(&self) -> BTreeSet<u64> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    fn quorum_error(&self) -> ApiError {
        let voters = self.voters().len();
        ApiError::unavailable(format!(
            "the cluster has lost quorum: this leader has not heard from a majority of the {voters} managers; writes are refused until a majority is back (or run `secnet init --force-new-cluster` on a surviving manager)"
        ))
    }

    /// Runs a proposal on this node, which must be the leader.
    pub(crate) async fn execute(&self, proposal: Proposal) -> Result<Committed, ApiError> {
        if !self.has_quorum() {
            return Err(self.quorum_error());
        }
        match proposal {
            Proposal::Command(cmd) => {
                let fut = self.raft.client_write(cmd);
                match tokio::time::timeout(WRITE_TIMEOUT, fut).await {
                    Err(_) => Err(self.quorum_error()),
                    Ok(Ok(resp)) => {
                        let index = resp.log_id.index;
                        resp.data
                            .map(|response| Committed { response, index })
                            .map_err(ApiError::from)
                    }
                    Ok(Err(e)) => Err(raft_write_error(e)),
                }
            }
            Proposal::AddVoter { id, addr } => {
                let voters = self.voters();
                if voters.contains(&id.0) {
                    return Ok(Committed::done());
                }
                let node = BasicNode::new(addr.to_string());
                let add = self.raft.add_learner(id.0, node, true);
                match tokio::time::timeout(Duration::from_secs(20), add).await {
                    Err(_) => {
                        return Err(ApiError::unavailable(format!(
                            "manager {id} at {addr} did not catch up with the log within 20 s"
                        )))
                    }
                    Ok(Err(e)) => return Err(raft_write_error(e)),
                    Ok(Ok(_)) => {}
                }
                let mut new_voters = self.voters();
                new_voters.insert(id.0);
                self.change_voters(new_voters).await?;
                info!(node = %id, "added to the Raft voters");
                Ok(Committed::done())
            }
            Proposal::RemoveVoter { id } => {
                let mut voters = self.voters();
                if !voters.remove(&id.0) {
                    return Ok(Committed::done());
                }
                if voters.is_empty() {
                    return Err(ApiError::invalid(format!(
                        "node {id} is the last manager: promote another node first"
                    )));
                }
                self.change_voters(voters).await?;
                info!(node = %id, "removed from the Raft voters");
                Ok(Committed::done())
            }
        }
    }

    async fn change_voters(&self, voters: BTreeSet<u64>) -> Result<(), ApiError> {
        let fut = self.raft.change_membership(voters, false);
        match tokio::time::timeout(Duration::from_secs(15), fut).await {
            Err(_) => Err(self.quorum_error()),
            Ok(Err(e)) => Err(raft_write_error(e)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// How long ago this manager last heard from each node (its liveness facts while it
    /// leads; `agent::liveness` decides).
    pub(crate) fn heard(&self) -> std::collections::BTreeMap<NodeId, Duration> {
        let now = Instant::now();
        self.liveness
            .lock()
            .map(|seen| {
                seen.iter()
                    .map(|(id, t)| (*id, now.duration_since(*t)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The message of a write that met a change of leadership; [`super::Member::propose`]
/// retries those.
pub(crate) const LEADERSHIP_CHANGED: &str = "leadership changed while the write was in flight";

fn raft_write_error<E: std::fmt::Display + 'static>(e: RaftError<u64, E>) -> ApiError {
    if let RaftError::APIError(api) = &e {
        let any: &dyn std::any::Any = api;
        if let Some(ClientWriteError::ForwardToLeader(_)) =
            any.downcast_ref::<ClientWriteError<u64, BasicNode>>()
        {
            return ApiError::between_leaders(Transient::LeadershipChanged, LEADERSHIP_CHANGED);
        }
    }
    match e {
        RaftError::APIError(e) => {
            ApiError::unavailable(format!("cannot write to the cluster: {e}"))
        }
        RaftError::Fatal(e) => ApiError::internal(format!("the Raft node stopped: {e}")),
    }
}

/// Starts the control server and the background duties of a manager.
pub(crate) async fn spawn_tasks(
    daemon: &Arc<Daemon>,
    member: &Arc<Member>,
) -> Result<(), StartError> {
    let listener = super::server::bind(member).await?;
    member.spawn(super::server::serve(Arc::downgrade(member), listener));
    member.spawn(ensure_voter(Arc::downgrade(member)));
    let _ = daemon;
    Ok(())
}

/// A manager that is not yet a Raft voter (just joined, promoted, or restarted after the
/// leader lost track of it) asks the leader to add it.
async fn ensure_voter(member: std::sync::Weak<Member>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(m) = member.upgrade() else { return };
        let super::Runtime::Manager(rt) = &m.rt else {
            return;
        };
        let is_voter = rt.voters().contains(&m.id.node_id.0);
        if is_voter {
            tokio::time::sleep(Duration::from_secs(4)).await;
            continue;
        }
        // Only a manager in the state, or one fresh from a join: a demoted node does not
        // re-add itself (`agent::membership::wants_voter`).
        if !wants_voter(&m.view().state, m.id.node_id, is_voter) {
            continue;
        }
        let proposal = Proposal::AddVoter {
            id: m.id.node_id,
            addr: m.id.advertise_addr,
        };
        match m.propose(proposal, 0).await {
            Ok(_) => tracing::debug!("asked to become a Raft voter"),
            Err(e) => warn!(error = %e, "cannot become a Raft voter yet"),
        }
    }
}
