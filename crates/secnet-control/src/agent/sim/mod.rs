//! A whole cluster of agents in memory, in simulated time: the deterministic multi-node
//! harness of the agent core. One replicated state stands for what the managers agree on
//! (every accepted proposal is applied to it in order, as Raft would); each node has its own
//! copy, delivered at the start of every step, and its own local facts, which change only
//! through the actions it takes. A node can be cut off (it neither hears nor acts, like a
//! partitioned or stopped host). Invariants the real cluster relies on are checked on every
//! step, so a test fails at the step that breaks one.
//!
//! Future planners (the scheduler, service discovery) plug in as further parts of
//! [`decide`]; their tests drive this harness the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use secnet_dataplane::Desired;
use secnet_keys::secret::Secret32;
use secnet_model::{ClusterState, Command, NodeId, Role, ServiceCommand, Task, TaskState};
use secnet_tunnel::StaticKey;

use super::authz::worker_may_propose;
use super::keys::live_nodes;
use super::liveness::{Liveness, NODE_DOWN_AFTER};
use super::tasks::{Process, TaskFacts};
use super::{decide, Action, Entropy, NodeFacts, TunnelFacts};
use crate::peer::Proposal;

/// One simulated node.
pub(crate) struct SimNode {
    /// The state this node has.
    pub view: ClusterState,
    pub facts: NodeFacts,
    /// The data path it last programmed.
    pub programmed: Option<Desired>,
}

pub(crate) struct Sim {
    /// What the managers agree on.
    pub state: ClusterState,
    pub nodes: BTreeMap<NodeId, SimNode>,
    /// Unix seconds; one step is one second.
    pub now: u64,
    /// Nodes that neither receive the state nor act.
    pub cut_off: BTreeSet<NodeId>,
    /// Nodes whose endpoint refuses new pre-shared keys (fault injection: the engine
    /// rejects the ring); they keep what they had.
    pub keys_refused: BTreeSet<NodeId>,
    /// Nodes whose strict-mode rules cannot be installed (fault injection: no nftables).
    pub strict_unavailable: BTreeSet<NodeId>,
    /// Every accepted proposal, in order, with its proposer.
    pub log: Vec<(NodeId, Command)>,
    /// Proposals the authorization refused, with the proposer.
    pub refused: Vec<(NodeId, Command)>,
    /// When the leader last heard a heartbeat from each node (every connected node sends
    /// one every step), and since when it leads.
    heard_at: BTreeMap<NodeId, u64>,
    leader_since: u64,
    secrets: u64,
}

/// The harness's entropy: a counter, so every run is the same.
struct Counter<'a>(&'a mut u64);

impl Entropy for Counter<'_> {
    fn secret(&mut self) -> Secret32 {
        *self.0 += 1;
        Secret32::new([*self.0 as u8; 32])
    }
    fn id(&mut self) -> String {
        *self.0 += 1;
        format!("task{:06}", *self.0)
    }
}

impl Sim {
    /// A cluster whose state is `state`: every node in it runs an endpoint, holds a static
    /// key derived from its id and has not registered it yet. The lowest manager leads.
    pub fn new(state: ClusterState, now: u64) -> Sim {
        let leader = state
            .nodes
            .values()
            .filter(|n| n.role == Role::Manager)
            .map(|n| n.id)
            .min();
        let nodes = state
            .nodes
            .values()
            .map(|n| {
                let key = StaticKey::from_bytes([n.id.0 as u8; 32]);
                let facts = NodeFacts {
                    me: n.id,
                    leader: Some(n.id) == leader,
                    liveness: Liveness::default(),
                    data_path_addr: n.data_path_addr,
                    underlay_mtu: 1500,
                    public_key: Some(key.public().to_string()),
                    tunnel: Some(TunnelFacts::default()),
                    tasks: TaskFacts::default(),
                };
                let node = SimNode {
                    view: state.clone(),
                    facts,
                    programmed: None,
                };
                (n.id, node)
            })
            .collect();
        Sim {
            state,
            nodes,
            now,
            cut_off: BTreeSet::new(),
            keys_refused: BTreeSet::new(),
            strict_unavailable: BTreeSet::new(),
            log: Vec::new(),
            refused: Vec::new(),
            heard_at: BTreeMap::new(),
            leader_since: now,
            secrets: 0,
        }
    }

    /// A node joins (as `AddNode` would admit it), with an endpoint and a static key.
    pub fn add_node(&mut self, node: secnet_model::Node) {
        self.state
            .apply(Command::AddNode { node: node.clone() })
            .unwrap();
        let key = StaticKey::from_bytes([node.id.0 as u8; 32]);
        let facts = NodeFacts {
            me: node.id,
            leader: false,
            liveness: Liveness::default(),
            data_path_addr: node.data_path_addr,
            underlay_mtu: 1500,
            public_key: Some(key.public().to_string()),
            tunnel: Some(TunnelFacts::default()),
            tasks: TaskFacts::default(),
        };
        let sim_node = SimNode {
            view: self.state.clone(),
            facts,
            programmed: None,
        };
        self.nodes.insert(node.id, sim_node);
    }

    /// One second: every connected node gets the agreed state, decides and acts.
    pub fn step(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in &ids {
            if !self.cut_off.contains(id) {
                self.nodes.get_mut(id).unwrap().view = self.state.clone();
                self.heard_at.insert(*id, self.now);
            }
        }
        let now = self.now;
        let liveness = Liveness {
            leading_for: Duration::from_secs(now - self.leader_since),
            heard: self
                .heard_at
                .iter()
                .map(|(id, at)| (*id, Duration::from_secs(now - at)))
                .collect(),
        };
        for node in self.nodes.values_mut().filter(|n| n.facts.leader) {
            node.facts.liveness = liveness.clone();
        }
        for id in ids {
            if self.cut_off.contains(&id) {
                continue;
            }
            let node = self.nodes.get_mut(&id).unwrap();
            node.facts.tasks.endpoints_ready = node
                .programmed
                .iter()
                .flat_map(|d| d.endpoints.values())
                .filter(|e| !e.interfaces.is_empty())
                .map(|e| e.name.clone())
                .collect();
            let node = &self.nodes[&id];
            let mut entropy = Counter(&mut self.secrets);
            let actions = decide(&node.view, &node.facts, &mut entropy, self.now);
            for action in actions {
                self.perform(id, action);
            }
        }
        self.now += 1;
    }

    /// Fault injection: the process of task `id` exits with `code` on its node (the node's
    /// runner reports it at its next decision).
    pub fn exit_task(&mut self, id: &str, code: i32) {
        let node = self.state.tasks[id].node.expect("a task with a node");
        let processes = &mut self.nodes.get_mut(&node).unwrap().facts.tasks.processes;
        assert_eq!(
            processes.get(id),
            Some(&Process::Running),
            "task {id} is not running"
        );
        processes.insert(
            id.to_string(),
            Process::Exited {
                code: Some(code),
                signal: None,
            },
        );
    }

    /// Steps until `done` holds, at most `max` steps; panics naming `what` otherwise.
    pub fn run_until(&mut self, what: &str, max: usize, done: impl Fn(&Sim) -> bool) -> usize {
        for n in 0..max {
            if done(self) {
                return n;
            }
            self.step();
        }
        assert!(done(self), "{what}: not reached within {max} steps");
        max
    }

    fn perform(&mut self, id: NodeId, action: Action) {
        let node = self.nodes.get_mut(&id).unwrap();
        match action {
            Action::ProgramDataPath {
                secured, fallback, ..
            } => {
                // As the reconciler does: the secured path once the rules are in place, the
                // fallback in the pass that finds they cannot be.
                let rules_in_place = !self.strict_unavailable.contains(&id);
                let chosen = if rules_in_place { secured } else { fallback };
                node.programmed = Some(chosen.desired);
            }
            Action::SetTunnelKeys { .. } if self.keys_refused.contains(&id) => {}
            Action::SetTunnelKeys { keys, primary } => {
                let epochs = keys.iter().map(|k| k.epoch).collect();
                node.facts.tunnel.as_mut().unwrap().keys = Some((epochs, primary));
            }
            Action::SetTunnelPeers(peers) => {
                node.facts.tunnel.as_mut().unwrap().peers = peers;
            }
            Action::Propose(cmd) => self.propose(id, cmd),
            // The node's process table: a started task runs until it exits or is stopped.
            Action::StartTask { id: task, .. } => {
                node.facts.tasks.processes.insert(task, Process::Running);
            }
            Action::StopTask { id: task } => {
                node.facts.tasks.processes.insert(
                    task,
                    Process::Exited {
                        code: None,
                        signal: Some(15),
                    },
                );
            }
        }
    }

    /// What a manager does with a proposal: authorize it, check the promotion invariant,
    /// apply it to the agreed state.
    fn propose(&mut self, id: NodeId, cmd: Command) {
        let role = self.state.nodes.get(&id).map(|n| n.role);
        let proposal = Proposal::Command(cmd.clone());
        if role != Some(Role::Manager) && !worker_may_propose(&self.state, id, &proposal) {
            self.refused.push((id, cmd));
            return;
        }
        if let Command::AckKey { node, epoch } = &cmd {
            let holds = self.nodes[node].facts.holds_key(*epoch);
            assert!(
                holds,
                "node {node} acknowledged key {epoch} it does not hold"
            );
        }
        self.check_placement(&cmd);
        if let Command::PromoteKey { .. } = &cmd {
            let epoch = self
                .state
                .key_ring
                .as_ref()
                .unwrap()
                .pending()
                .unwrap()
                .epoch;
            for live in live_nodes(&self.state) {
                let holds = self.nodes[&NodeId(live)].facts.holds_key(epoch);
                assert!(
                    holds,
                    "key {epoch} promoted while live node {live} lacks it"
                );
            }
        }
        // A proposal made from a stale view may be refused by the model; the node tries
        // again on a later step, as the daemon's loops do.
        if self.state.apply(cmd.clone()).is_ok() {
            self.log.push((id, cmd));
        }
    }

    /// The scheduler's invariant: a task goes only to a node the service admits.
    fn check_placement(&self, cmd: &Command) {
        let (service_id, node) = match cmd {
            Command::Service(ServiceCommand::AddTask { task }) => match task.node {
                Some(n) => (task.service_id.clone(), n),
                None => return,
            },
            Command::Service(ServiceCommand::Assign { id, node, .. }) => {
                (self.state.tasks[id].service_id.clone(), *node)
            }
            _ => return,
        };
        let service = &self.state.services[&service_id];
        let node = &self.state.nodes[&node];
        assert!(
            service.admits(node),
            "a task of {} placed on ineligible node {}",
            service.spec.name,
            node.hostname
        );
    }

    /// Live tasks of a service (wanted and not ended).
    pub fn live_tasks(&self, service: &str) -> Vec<&Task> {
        let id = &self.state.find_service(service).unwrap().id;
        self.state.tasks_of(id).filter(|t| t.is_live()).collect()
    }

    /// Tasks of a service reported running.
    pub fn running(&self, service: &str) -> Vec<&Task> {
        self.live_tasks(service)
            .into_iter()
            .filter(|t| t.state == TaskState::Running)
            .collect()
    }

    /// The primary epoch of the agreed ring.
    pub fn primary(&self) -> Option<u64> {
        self.state.key_ring.as_ref().map(|r| r.primary().epoch)
    }

    /// Whether node `id`'s endpoint holds `epoch` as its primary and every other member of
    /// the cluster as a peer.
    pub fn tunnel_converged(&self, id: NodeId, epoch: u64) -> bool {
        let t = self.nodes[&id].facts.tunnel.as_ref().unwrap();
        let peers: BTreeSet<_> = t.peers.iter().map(|p| p.tunnel_ip).collect();
        let others: BTreeSet<_> = self
            .state
            .wireguard
            .iter()
            .filter(|(n, _)| **n != id && self.state.nodes.contains_key(n))
            .map(|(_, w)| w.tunnel_ip)
            .collect();
        let members = self.state.nodes.len();
        t.keys.as_ref().is_some_and(|(_, p)| *p == epoch)
            && peers == others
            && peers.len() == members - 1
    }

    /// The VTEPs node `id` programmed for remote endpoint addresses.
    pub fn remote_vteps(&self, id: NodeId) -> BTreeMap<std::net::Ipv4Addr, IpAddr> {
        self.nodes[&id]
            .programmed
            .iter()
            .flat_map(|d| d.networks.values())
            .flat_map(|n| n.remotes.iter().map(|r| (r.ip, r.vtep)))
            .collect()
    }
}

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod service_tests;
