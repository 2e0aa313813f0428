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
mod tests {
    use super::super::test_state::*;
    use super::*;
    use secnet_keys::ring::RotationReason;
    use secnet_model::NodeStatus;

    const START: u64 = 1_700_000_100;

    /// A three-node cluster (one manager, two workers) that has seeded its ring, registered
    /// every key and peered every node with the others.
    fn converged() -> Sim {
        let mut sim = Sim::new(cluster(), START);
        sim.run_until("a converged cluster", 10, |s| {
            s.primary() == Some(1) && s.nodes.keys().all(|n| s.tunnel_converged(*n, 1))
        });
        sim
    }

    fn promotions(sim: &Sim) -> usize {
        sim.log
            .iter()
            .filter(|(_, c)| matches!(c, Command::PromoteKey { .. }))
            .count()
    }

    #[test]
    fn a_new_cluster_seeds_its_ring_and_every_node_peers_with_every_other() {
        let mut sim = Sim::new(cluster(), START);
        let steps = sim.run_until("ring, keys and peers everywhere", 10, |s| {
            s.primary() == Some(1) && s.nodes.keys().all(|n| s.tunnel_converged(*n, 1))
        });
        // Step 1: keys registered and the ring seeded; step 2: ring and peers installed.
        assert!(steps <= 3, "{steps} steps");
        let by_leader: Vec<_> = sim.log.iter().filter(|(n, _)| *n == MANAGER).collect();
        assert!(matches!(
            by_leader.last(),
            Some((_, Command::SeedKeyRing { .. }))
        ));
        assert!(sim.refused.is_empty(), "{:?}", sim.refused);
        assert_eq!(sim.state.wireguard.len(), 3);
    }

    #[test]
    fn a_scheduled_rotation_reaches_every_node_before_it_is_promoted() {
        let mut sim = converged();
        let before = sim.log.len();
        sim.now += 3600; // the test cluster's rotation interval
        sim.run_until("epoch 2 primary everywhere", 10, |s| {
            s.primary() == Some(2) && s.nodes.keys().all(|n| s.tunnel_converged(*n, 2))
        });
        // In order: the rotation, every node's acknowledgement, the promotion. (The
        // promotion invariant itself is checked by the harness on the step it happens.)
        let kinds: Vec<String> = sim.log[before..]
            .iter()
            .map(|(n, c)| match c {
                Command::BeginKeyRotation { reason, .. } => format!("begin:{reason}"),
                Command::AckKey { node, epoch } => format!("ack:{}:{epoch}:{}", node.0, n.0),
                Command::PromoteKey { .. } => "promote".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds[0], format!("begin:{}", RotationReason::Scheduled));
        assert_eq!(kinds.last().map(String::as_str), Some("promote"));
        let acks: BTreeSet<_> = kinds.iter().filter(|k| k.starts_with("ack:")).collect();
        assert_eq!(acks.len(), 3, "{kinds:?}");
        // Each node acknowledged for itself.
        assert!(acks.iter().all(|k| {
            let parts: Vec<_> = k.split(':').collect();
            parts[1] == parts[3]
        }));
        assert_eq!(sim.state.key_ring.as_ref().unwrap().keys().count(), 2);
    }

    #[test]
    fn a_node_that_goes_silent_is_marked_down_and_holds_no_promotion_back() {
        let mut sim = converged();
        sim.cut_off.insert(OTHER_WORKER);
        sim.now += 3600;
        // While it is still Ready, its acknowledgement is awaited.
        sim.step();
        sim.step();
        let ring = sim.state.key_ring.as_ref().unwrap();
        assert_eq!(
            (ring.primary().epoch, ring.pending().map(|k| k.epoch)),
            (1, Some(2))
        );
        let silent = NODE_DOWN_AFTER.as_secs() as usize + 3;
        sim.run_until("the silent node marked down", silent, |s| {
            s.state.nodes[&OTHER_WORKER].status == NodeStatus::Down
        });
        sim.run_until("promotion without it", 3, |s| s.primary() == Some(2));
        assert!(!sim.nodes[&OTHER_WORKER].facts.holds_key(2));
        // Back: marked ready, and it catches up with the ring it missed.
        sim.cut_off.clear();
        sim.run_until("back and converged", 5, |s| {
            s.state.nodes[&OTHER_WORKER].status == NodeStatus::Ready
                && s.tunnel_converged(OTHER_WORKER, 2)
        });
    }

    #[test]
    fn a_new_leader_marks_nobody_down_during_its_grace() {
        // The leader has never heard from node 3, but it has only just started leading.
        let mut sim = Sim::new(cluster(), START);
        sim.cut_off.insert(OTHER_WORKER);
        for _ in 0..NODE_DOWN_AFTER.as_secs() {
            sim.step();
        }
        assert_eq!(sim.state.nodes[&OTHER_WORKER].status, NodeStatus::Ready);
        assert!(!sim
            .log
            .iter()
            .any(|(_, c)| matches!(c, Command::SetStatus { .. })));
        sim.run_until("down once the grace is over", 3, |s| {
            s.state.nodes[&OTHER_WORKER].status == NodeStatus::Down
        });
        // The heard nodes stay ready.
        assert_eq!(sim.state.nodes[&WORKER].status, NodeStatus::Ready);
    }

    #[test]
    fn a_node_whose_endpoint_refuses_the_key_never_acknowledges_it() {
        let mut sim = converged();
        sim.keys_refused.insert(WORKER);
        sim.now += 3600;
        for _ in 0..20 {
            sim.step();
        }
        let ring = sim.state.key_ring.as_ref().unwrap();
        assert_eq!(ring.pending().map(|k| k.epoch), Some(2));
        assert!(!ring.acks(2).contains(&WORKER.0));
        assert_eq!(ring.acks(2).len(), 2, "the other two acknowledged");
        assert_eq!(promotions(&sim), 0);
        // Once its endpoint takes the ring, it acknowledges and the key is promoted.
        sim.keys_refused.clear();
        sim.run_until("promotion once the key is installed", 5, |s| {
            s.primary() == Some(2)
        });
    }

    #[test]
    fn removing_a_node_rotates_to_a_key_it_never_receives() {
        let mut sim = converged();
        sim.cut_off.insert(OTHER_WORKER);
        sim.state
            .apply(Command::RemoveNode { id: OTHER_WORKER })
            .unwrap();
        sim.run_until("a new primary without the removed node", 10, |s| {
            s.primary() == Some(2) && [MANAGER, WORKER].iter().all(|n| s.tunnel_converged(*n, 2))
        });
        assert!(sim.log.iter().any(|(_, c)| matches!(
            c,
            Command::BeginKeyRotation { reason: RotationReason::NodeRemoved(n), .. } if *n == OTHER_WORKER.0
        )));
        let removed = &sim.nodes[&OTHER_WORKER];
        assert!(!removed.facts.holds_key(2));
        assert!(removed
            .view
            .key_ring
            .as_ref()
            .unwrap()
            .keys()
            .all(|k| k.epoch < 2));
        // Nobody peers with it any more.
        for n in [MANAGER, WORKER] {
            let peers = &sim.nodes[&n].facts.tunnel.as_ref().unwrap().peers;
            assert_eq!(peers.len(), 1, "node {n} still peers with the removed node");
        }
    }

    #[test]
    fn encrypted_endpoints_reach_each_other_only_through_tunnel_addresses() {
        let mut state = cluster();
        create_network(&mut state, "secure", true);
        create_network(&mut state, "plain", false);
        create_endpoint(&mut state, "a", WORKER, "secure");
        create_endpoint(&mut state, "b", OTHER_WORKER, "secure");
        create_endpoint(&mut state, "c", WORKER, "plain");
        create_endpoint(&mut state, "d", OTHER_WORKER, "plain");
        let ip = |s: &ClusterState, name: &str| s.find_endpoint(name).unwrap().attachments[0].ip;
        let mut sim = Sim::new(state, START);
        let (a, b, d) = (
            ip(&sim.state, "a"),
            ip(&sim.state, "b"),
            ip(&sim.state, "d"),
        );
        sim.run_until("both remote endpoints programmed on node 2", 10, |s| {
            let v = s.remote_vteps(WORKER);
            v.contains_key(&b) && v.contains_key(&d)
        });
        let tunnel_of = |s: &Sim, n: NodeId| IpAddr::V4(s.state.wireguard[&n].tunnel_ip);
        let on_2 = sim.remote_vteps(WORKER);
        assert_eq!(on_2[&b], tunnel_of(&sim, OTHER_WORKER));
        assert_eq!(on_2[&d], sim.state.nodes[&OTHER_WORKER].data_path_addr);
        assert_eq!(sim.remote_vteps(OTHER_WORKER)[&a], tunnel_of(&sim, WORKER));
        // A worker's proposals about its own key and acknowledgements were all accepted.
        assert!(sim.refused.is_empty(), "{:?}", sim.refused);
    }

    #[test]
    fn a_node_without_strict_mode_programs_nothing_of_encrypted_networks() {
        let mut state = cluster();
        create_network(&mut state, "secure", true);
        create_network(&mut state, "plain", false);
        create_endpoint(&mut state, "a", WORKER, "secure");
        create_endpoint(&mut state, "b", OTHER_WORKER, "secure");
        create_endpoint(&mut state, "d", OTHER_WORKER, "plain");
        create_endpoint(&mut state, "c", WORKER, "plain");
        let mut sim = Sim::new(state, START);
        sim.strict_unavailable.insert(WORKER);
        let d = sim.state.find_endpoint("d").unwrap().attachments[0].ip;
        sim.run_until("the plain network programmed on node 2", 10, |s| {
            s.remote_vteps(WORKER).contains_key(&d)
        });
        for _ in 0..5 {
            sim.step();
        }
        let programmed = sim.nodes[&WORKER].programmed.clone().unwrap();
        let secure = &sim.state.find_network("secure").unwrap().id;
        assert!(!programmed.networks.contains_key(secure));
        assert!(programmed.endpoints["a"].interfaces.is_empty());
        assert_eq!(programmed.endpoints["c"].interfaces.len(), 1);
        // The other worker, with its rules in place, has the encrypted network.
        let other = sim.nodes[&OTHER_WORKER].programmed.clone().unwrap();
        assert!(other.networks.contains_key(secure));
    }

    // ---- services: the scheduler in the harness -------------------------------------

    use secnet_model::{Constraint, RestartCondition, RestartPolicy, ServiceMode, ServiceSpec};

    fn service_spec(name: &str, replicas: u32) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            command: vec!["sleep".into(), "infinity".into()],
            env: Default::default(),
            networks: vec!["apps".into()],
            mode: ServiceMode::Replicated,
            replicas,
            constraints: Vec::new(),
            restart: RestartPolicy::default(),
            endpoint_mode: Default::default(),
            update: Default::default(),
        }
    }

    /// A three-node cluster with network "apps" and `spec` created at START.
    fn with_service(spec: ServiceSpec) -> Sim {
        let mut state = cluster();
        create_network(&mut state, "apps", false);
        state
            .apply(Command::Service(ServiceCommand::Create {
                id: format!("svc-{}", spec.name),
                spec,
                created_at: START,
            }))
            .unwrap();
        Sim::new(state, START)
    }

    fn update(sim: &mut Sim, spec: ServiceSpec) {
        let id = sim.state.find_service(&spec.name).unwrap().id.clone();
        let now = sim.now;
        sim.state
            .apply(Command::Service(ServiceCommand::Update {
                id,
                spec,
                updated_at: now,
            }))
            .unwrap();
    }

    fn nodes_of(tasks: &[&Task]) -> BTreeSet<NodeId> {
        tasks.iter().filter_map(|t| t.node).collect()
    }

    #[test]
    fn two_replicas_run_on_two_different_nodes() {
        let mut sim = with_service(service_spec("web", 2));
        sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
        let running = sim.running("web");
        assert_eq!(nodes_of(&running).len(), 2, "{running:?}");
        let slots: BTreeSet<u32> = running.iter().map(|t| t.slot).collect();
        assert_eq!(slots, BTreeSet::from([1, 2]));
        // Each runs in its own endpoint on the service's network, on its own node.
        for t in &running {
            let ep = &sim.state.endpoints[&super::super::tasks::endpoint_name(&t.id)];
            assert_eq!(Some(ep.node), t.node);
            assert_eq!(ep.attachments[0].network_id, "id-apps");
        }
        // Converged: the scheduler proposes nothing more.
        let before = sim.log.len();
        for _ in 0..5 {
            sim.step();
        }
        let scheduling = sim.log[before..]
            .iter()
            .filter(|(_, c)| matches!(c, Command::Service(_)))
            .count();
        assert_eq!(scheduling, 0, "{:?}", &sim.log[before..]);
    }

    #[test]
    fn a_failed_task_is_replaced_after_the_delay_and_none_means_never() {
        let mut sim = with_service(service_spec("web", 1));
        sim.run_until("running", 8, |s| s.running("web").len() == 1);
        let first = sim.running("web")[0].id.clone();
        sim.exit_task(&first, 3);
        sim.step(); // its node reports the exit
        let failed = &sim.state.tasks[&first];
        assert_eq!(
            (failed.state, failed.exit_code),
            (TaskState::Failed, Some(3))
        );
        assert_eq!(failed.message, "exited with code 3");
        // The default policy waits 5 s before the replacement.
        for _ in 0..4 {
            sim.step();
        }
        assert!(
            sim.live_tasks("web").is_empty(),
            "replaced before the delay"
        );
        sim.run_until("replaced and running", 8, |s| s.running("web").len() == 1);
        let second = sim.running("web")[0];
        assert_eq!((second.slot, second.attempt), (1, 2));

        let mut spec = service_spec("web", 1);
        spec.restart = RestartPolicy {
            condition: RestartCondition::None,
            delay_secs: 0,
            max_attempts: None,
        };
        update(&mut sim, spec);
        let id = sim.running("web")[0].id.clone();
        sim.exit_task(&id, 1);
        for _ in 0..10 {
            sim.step();
        }
        assert!(sim.live_tasks("web").is_empty());
        assert_eq!(sim.state.tasks[&id].state, TaskState::Failed);
    }

    #[test]
    fn max_attempts_bounds_the_replacements() {
        let mut spec = service_spec("flaky", 1);
        spec.restart = RestartPolicy {
            condition: RestartCondition::OnFailure,
            delay_secs: 0,
            max_attempts: Some(2),
        };
        let mut sim = with_service(spec);
        for round in 0..3 {
            sim.run_until("running", 8, |s| s.running("flaky").len() == 1);
            let id = sim.running("flaky")[0].id.clone();
            assert_eq!(sim.state.tasks[&id].attempt, round + 1);
            sim.exit_task(&id, 1);
            sim.step(); // reported failed
        }
        for _ in 0..10 {
            sim.step();
        }
        assert!(sim.live_tasks("flaky").is_empty(), "a fourth try");
    }

    #[test]
    fn a_down_nodes_task_is_rescheduled_on_another_node() {
        let mut sim = with_service(service_spec("web", 2));
        sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
        // A worker's task (the harness runs no election, so the leader stays up).
        let victim = nodes_of(&sim.running("web"))
            .into_iter()
            .find(|n| *n != MANAGER)
            .unwrap();
        sim.cut_off.insert(victim);
        let steps = sim.run_until("2/2 again without the lost node", 20, |s| {
            let running = s.running("web");
            running.len() == 2 && !nodes_of(&running).contains(&victim)
        });
        // Marked down after 5 s, then a new endpoint and process elsewhere: within the 15 s
        // the issue asks of the real cluster.
        assert!(steps <= 15, "{steps} steps");
        let orphaned: Vec<_> = sim
            .state
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Orphaned)
            .collect();
        assert_eq!(orphaned.len(), 1);
        assert_eq!(orphaned[0].node, Some(victim));
    }

    #[test]
    fn scaling_to_zero_stops_everything_and_back_up_brings_tasks_back() {
        let mut sim = with_service(service_spec("web", 2));
        sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
        update(&mut sim, service_spec("web", 0));
        sim.run_until("all stopped", 5, |s| {
            s.live_tasks("web").is_empty()
                && s.state
                    .tasks
                    .values()
                    .all(|t| t.state == TaskState::Shutdown)
        });
        update(&mut sim, service_spec("web", 3));
        sim.run_until("3/3 running", 5, |s| s.running("web").len() == 3);
        assert_eq!(
            nodes_of(&sim.running("web")).len(),
            3,
            "spread over the three nodes"
        );
    }

    #[test]
    fn global_mode_runs_one_task_per_eligible_node_including_a_new_one() {
        let mut spec = service_spec("agent", 0);
        spec.mode = ServiceMode::Global;
        spec.constraints = vec!["node.role==worker".parse().unwrap()];
        let mut sim = with_service(spec);
        sim.run_until("one per worker", 5, |s| s.running("agent").len() == 2);
        assert_eq!(
            nodes_of(&sim.running("agent")),
            BTreeSet::from([WORKER, OTHER_WORKER])
        );
        sim.add_node(node(NodeId(4), Role::Worker));
        sim.run_until("the new worker too", 5, |s| s.running("agent").len() == 3);
        assert!(nodes_of(&sim.running("agent")).contains(&NodeId(4)));
    }

    #[test]
    fn an_unsatisfiable_constraint_leaves_tasks_pending_with_a_reason() {
        let mut spec = service_spec("web", 2);
        spec.constraints = vec!["node.hostname==nowhere".parse::<Constraint>().unwrap()];
        let mut sim = with_service(spec);
        for _ in 0..10 {
            sim.step();
        }
        let live = sim.live_tasks("web");
        assert_eq!(live.len(), 2);
        for t in &live {
            assert_eq!(t.state, TaskState::Pending);
            assert!(
                t.message.contains("node.hostname==nowhere"),
                "{}",
                t.message
            );
        }
        // Not an error loop: two tasks made once, nothing proposed since.
        let adds = sim
            .log
            .iter()
            .filter(|(_, c)| matches!(c, Command::Service(ServiceCommand::AddTask { .. })))
            .count();
        assert_eq!(adds, 2);
        // A node that satisfies it appears: they are assigned.
        let mut spec = service_spec("web", 2);
        spec.constraints = vec!["node.hostname==host2".parse().unwrap()];
        update(&mut sim, spec);
        sim.run_until("assigned to host2 and running", 10, |s| {
            s.running("web").len() == 2
        });
        assert_eq!(nodes_of(&sim.running("web")), BTreeSet::from([WORKER]));
    }

    #[test]
    fn a_new_leader_resumes_scheduling_where_the_old_one_left_off() {
        let mut sim = with_service(service_spec("web", 3));
        // The old leader made the tasks but could not finish; the state is all there is.
        sim.step();
        let made = sim.live_tasks("web").len();
        assert_eq!(made, 3);
        // Node 2 takes over (the harness switches the flag, as an election would).
        sim.nodes.get_mut(&MANAGER).unwrap().facts.leader = false;
        sim.nodes.get_mut(&WORKER).unwrap().facts.leader = true;
        sim.state
            .apply(Command::SetRole {
                id: WORKER,
                role: Role::Manager,
            })
            .unwrap();
        sim.run_until("3/3 running", 5, |s| s.running("web").len() == 3);
        assert_eq!(sim.live_tasks("web").len(), 3, "no task made twice");
    }

    #[test]
    fn a_node_that_comes_back_stops_the_task_the_cluster_replaced() {
        // On workers only: the harness cannot cut the leader off.
        let mut spec = service_spec("web", 1);
        spec.constraints = vec!["node.role==worker".parse().unwrap()];
        let mut sim = with_service(spec);
        sim.run_until("running", 8, |s| s.running("web").len() == 1);
        let lost = sim.running("web")[0].clone();
        let node = lost.node.unwrap();
        assert_ne!(node, MANAGER);
        sim.cut_off.insert(node);
        sim.run_until("replaced elsewhere", 20, |s| {
            s.running("web").iter().any(|t| t.node != Some(node))
        });
        // While cut off it still runs its copy: it cannot know.
        assert_eq!(
            sim.nodes[&node].facts.tasks.processes.get(&lost.id),
            Some(&Process::Running)
        );
        sim.cut_off.clear();
        let ep = super::super::tasks::endpoint_name(&lost.id);
        sim.run_until("the old copy stopped and its endpoint gone", 5, |s| {
            s.nodes[&node].facts.tasks.processes.get(&lost.id) != Some(&Process::Running)
                && !s.state.endpoints.contains_key(&ep)
        });
        assert_eq!(sim.running("web").len(), 1, "exactly one copy runs");
    }

    #[test]
    fn removing_a_service_stops_its_tasks_and_removes_their_endpoints() {
        let mut sim = with_service(service_spec("web", 2));
        sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
        let now = sim.now;
        sim.state
            .apply(Command::Service(ServiceCommand::Remove {
                id: "svc-web".into(),
                at: now,
            }))
            .unwrap();
        sim.run_until("no process, no endpoint, no task", 10, |s| {
            s.nodes.values().all(|n| {
                n.facts
                    .tasks
                    .processes
                    .values()
                    .all(|p| *p != Process::Running)
            }) && s.state.endpoints.is_empty()
                && s.state.tasks.is_empty()
        });
    }

    #[test]
    fn a_restarted_daemon_reports_its_lost_tasks_failed_and_they_come_back_once() {
        let mut sim = with_service(service_spec("web", 2));
        sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
        let t = sim.running("web")[0].clone();
        let node = t.node.unwrap();
        // secnetd restarts on that node: its processes are gone (killed, see daemon/tasks.rs).
        sim.nodes
            .get_mut(&node)
            .unwrap()
            .facts
            .tasks
            .processes
            .clear();
        sim.step();
        let lost = &sim.state.tasks[&t.id];
        assert_eq!(lost.state, TaskState::Failed);
        assert!(
            lost.message.contains("secnetd restarted"),
            "{}",
            lost.message
        );
        let processes = |s: &Sim| -> usize {
            s.nodes
                .values()
                .map(|n| {
                    n.facts
                        .tasks
                        .processes
                        .values()
                        .filter(|p| **p == Process::Running)
                        .count()
                })
                .sum()
        };
        for _ in 0..12 {
            sim.step();
            assert!(processes(&sim) <= 2, "more processes than replicas");
        }
        assert_eq!(sim.running("web").len(), 2);
        assert_eq!(processes(&sim), 2);
    }

    #[test]
    fn an_update_replaces_the_tasks_one_at_a_time_stop_first_with_the_delay() {
        let mut sim = with_service(service_spec("web", 3));
        sim.run_until("3/3 running", 8, |s| s.running("web").len() == 3);
        let mut spec = service_spec("web", 3);
        spec.env.insert("MODE".into(), "blue".into());
        spec.update = secnet_model::UpdatePolicy {
            parallelism: 1,
            delay_secs: 3,
        };
        update(&mut sim, spec);
        let current = sim.state.find_service("web").unwrap().tasks_version;
        assert_eq!(current, 2, "an env change is a new task template");
        let up_to_date = |s: &Sim| {
            s.running("web")
                .iter()
                .filter(|t| t.service_version == current)
                .count()
        };
        let mut became_current = Vec::new();
        for _ in 0..40 {
            sim.step();
            // Stop first, one at a time: never fewer than two running.
            assert!(sim.running("web").len() >= 2, "{:?}", sim.live_tasks("web"));
            assert!(sim.live_tasks("web").len() <= 3);
            let n = up_to_date(&sim);
            if became_current.last().map(|(k, _)| *k) != Some(n) && n > 0 {
                became_current.push((n, sim.now));
            }
            if n == 3 {
                break;
            }
        }
        assert_eq!(up_to_date(&sim), 3, "{:?}", sim.live_tasks("web"));
        // Each batch waited for the delay after the previous one ran.
        for w in became_current.windows(2) {
            assert!(w[1].1 - w[0].1 >= 3, "{became_current:?}");
        }
        // Scaling alone replaces nothing.
        let mut spec = sim.state.find_service("web").unwrap().spec.clone();
        spec.replicas = 4;
        update(&mut sim, spec);
        assert_eq!(
            sim.state.find_service("web").unwrap().tasks_version,
            current
        );
        sim.run_until("4/4", 8, |s| s.running("web").len() == 4);
        assert_eq!(up_to_date(&sim), 4);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// For random clusters, specs and failures: never more live tasks than desired,
        /// never on an ineligible node (the harness checks every placement), and once the
        /// failures stop, convergence to the desired count.
        #[test]
        fn the_scheduler_never_overshoots_never_misplaces_and_converges(
            workers in 1usize..5,
            replicas in 0u32..6,
            global in proptest::bool::ANY,
            constraint in 0u8..3,
            events in proptest::collection::vec((0u8..4, 0usize..8), 0..30),
        ) {
            let mut spec = service_spec("svc", replicas);
            spec.restart.delay_secs = 1;
            if global {
                spec.mode = ServiceMode::Global;
            }
            spec.constraints = match constraint {
                0 => Vec::new(),
                1 => vec!["node.role==worker".parse().unwrap()],
                _ => vec!["node.hostname!=host2".parse().unwrap()],
            };
            let mut state = cluster();
            // cluster() has two workers; add the rest.
            for i in 2..workers {
                let id = NodeId(10 + i as u64);
                state.apply(Command::AddNode { node: node(id, Role::Worker) }).unwrap();
            }
            create_network(&mut state, "apps", false);
            state.apply(Command::Service(ServiceCommand::Create {
                id: "svc-svc".into(), spec: spec.clone(), created_at: START,
            })).unwrap();
            let mut sim = Sim::new(state, START);
            let workers_ids: Vec<NodeId> = sim.state.nodes.values()
                .filter(|n| n.role == Role::Worker).map(|n| n.id).collect();
            let check = |sim: &Sim| {
                let live = sim.live_tasks("svc");
                if global {
                    let per_node = nodes_of(&live);
                    proptest::prop_assert_eq!(per_node.len(), live.iter().filter(|t| t.node.is_some()).count());
                } else {
                    proptest::prop_assert!(live.len() <= replicas as usize, "{} live > {replicas}", live.len());
                    let slots: BTreeSet<u32> = live.iter().map(|t| t.slot).collect();
                    proptest::prop_assert_eq!(slots.len(), live.len(), "two live tasks in one slot");
                }
                Ok(())
            };
            for (kind, pick) in events {
                let target = workers_ids[pick % workers_ids.len()];
                match kind {
                    0 => { sim.cut_off.insert(target); }
                    1 => { sim.cut_off.remove(&target); }
                    2 => {
                        let running: Vec<String> = sim.running("svc").iter()
                            .filter(|t| t.node.is_some_and(|n| !sim.cut_off.contains(&n)))
                            .map(|t| t.id.clone()).collect();
                        if let Some(id) = running.get(pick % running.len().max(1)) {
                            sim.exit_task(id, 1);
                        }
                    }
                    _ => {}
                }
                sim.step();
                check(&sim)?;
            }
            sim.cut_off.clear();
            let service = sim.state.find_service("svc").unwrap().clone();
            let converged = |s: &Sim| {
                let eligible = s.state.nodes.values().filter(|n| service.admits(n)).count();
                let want = if global { eligible } else if eligible == 0 { 0 } else { replicas as usize };
                s.running("svc").len() == want
            };
            for _ in 0..30 {
                if converged(&sim) { break; }
                sim.step();
                check(&sim)?;
            }
            proptest::prop_assert!(converged(&sim), "not converged: {:?}", sim.live_tasks("svc"));
        }
    }
}
