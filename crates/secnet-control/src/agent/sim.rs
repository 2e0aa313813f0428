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
use secnet_model::{ClusterState, Command, NodeId, Role};
use secnet_tunnel::StaticKey;

use super::authz::worker_may_propose;
use super::keys::live_nodes;
use super::liveness::{Liveness, NODE_DOWN_AFTER};
use super::{decide, Action, NodeFacts, TunnelFacts};
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
    secrets: u8,
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
            self.secrets = self.secrets.wrapping_add(1);
            let secret = Secret32::new([self.secrets; 32]);
            let node = &self.nodes[&id];
            let actions = decide(&node.view, &node.facts, || secret, self.now);
            for action in actions {
                self.perform(id, action);
            }
        }
        self.now += 1;
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
}
