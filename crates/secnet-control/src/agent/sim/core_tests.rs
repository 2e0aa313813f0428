//! The agent core in the harness: key ring, tunnels, liveness and the data path across a
//! simulated cluster.

use super::super::test_state::*;
use super::*;
use secnet_keys::ring::RotationReason;
use secnet_model::NodeStatus;

pub(super) const START: u64 = 1_700_000_100;

/// A three-node cluster (one manager, two workers) that has seeded its ring, registered
/// every key and peered every node with the others.
pub(super) fn converged() -> Sim {
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
