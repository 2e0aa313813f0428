//! Key rotations (PSK ring and static keys) under continuous traffic: nothing may be lost.

use super::*;
use proptest::prelude::*;

/// A and B with a packet each way every step. Every step checks that both packets arrived
/// within that step, exactly once: one lost, late or duplicated packet fails the test.
struct Link {
    a: Node,
    b: Node,
    steps: u64,
}

impl Link {
    /// A and B, ring `{1}` (primary 1) on both, a session already up.
    fn new() -> Self {
        let (mut a, mut b) = pair_with_psk(1);
        // One side first: when both start a handshake at once, boringtun's two sessions race
        // and count failures that have nothing to do with rotations.
        let hello = packet(ip(1), ip(2), b"hello");
        a.send(&hello);
        pump(&mut [&mut a, &mut b]);
        assert_eq!(b.take_tun(), vec![hello]);
        let mut link = Self { a, b, steps: 0 };
        link.step();
        link
    }

    fn step(&mut self) {
        self.steps += 1;
        let n = self.steps;
        // Timers run between steps, as the I/O loop runs them (they stamp session times).
        self.a.engine.tick(&mut self.a.wire);
        self.b.engine.tick(&mut self.b.wire);
        let to_b = packet(ip(1), ip(2), format!("A to B, step {n}").as_bytes());
        let to_a = packet(ip(2), ip(1), format!("B to A, step {n}").as_bytes());
        self.a.send(&to_b);
        self.b.send(&to_a);
        pump(&mut [&mut self.a, &mut self.b]);
        assert_eq!(self.b.take_tun(), vec![to_b], "step {n}: A to B");
        assert_eq!(self.a.take_tun(), vec![to_a], "step {n}: B to A");
    }

    fn steps(&mut self, count: usize) {
        for _ in 0..count {
            self.step();
        }
    }

    fn node(&mut self, which: Side) -> &mut Node {
        match which {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Nothing was dropped on the way: no unknown index, no failed handshake or datagram.
    fn assert_clean(&self) {
        for node in [&self.a, &self.b] {
            let c = node.engine.counters();
            assert_eq!(c.unknown_peer, 0, "{c:?}");
            assert_eq!(c.garbage, 0, "{c:?}");
            let s = stats_of(node);
            assert_eq!(s.handshake_failures, 0, "{s:?}");
            assert_eq!(s.dropped_invalid, 0, "{s:?}");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

fn epochs(node: &Node, peer: Ipv4Addr) -> Vec<u64> {
    let mut e: Vec<u64> = node.engine.slots(peer).iter().map(|s| s.epoch).collect();
    e.dedup();
    e
}

#[test]
fn psk_rotation_loses_no_packet_whichever_node_promotes_first() {
    for first in [Side::A, Side::B] {
        let mut link = Link::new();
        link.steps(2);
        assert_eq!(stats_of(&link.a).key_epoch, Some(1));

        // Phase 1: the new key is installed for receiving, on one node and then the other.
        link.node(first).ring(&[1, 2], 1);
        link.steps(2);
        link.node(first.other()).ring(&[1, 2], 1);
        link.steps(2);
        for node in [&link.a, &link.b] {
            assert_eq!(stats_of(node).key_epoch, Some(1), "not used before primary");
        }

        // Phase 2: it becomes primary on one node, a few steps later on the other.
        link.node(first).ring(&[1, 2], 2);
        link.steps(3);
        assert_eq!(stats_of(link.node(first)).key_epoch, Some(2), "{first:?}");
        assert_eq!(
            stats_of(link.node(first.other())).key_epoch,
            Some(1),
            "the other node keeps its primary session"
        );
        link.node(first.other()).ring(&[1, 2], 2);
        link.steps(3);
        for node in [&link.a, &link.b] {
            assert_eq!(stats_of(node).key_epoch, Some(2));
            assert_eq!(epochs(node, peer_ip(node)), vec![1, 2]);
        }

        // Phase 3: the oldest key is dropped, and its slots with it.
        link.node(first).ring(&[2], 2);
        let node = link.node(first);
        assert_eq!(epochs(node, peer_ip(node)), vec![2], "dropped at once");
        link.steps(2);
        link.node(first.other()).ring(&[2], 2);
        link.steps(3);
        for node in [&link.a, &link.b] {
            assert_eq!(epochs(node, peer_ip(node)), vec![2]);
            assert_eq!(stats_of(node).key_epoch, Some(2));
        }
        link.assert_clean();
        assert_eq!(link.steps, 18);
    }
}

/// The other node's tunnel address, seen from `node`.
fn peer_ip(node: &Node) -> Ipv4Addr {
    if node.addr == EA.parse().unwrap() {
        ip(2)
    } else {
        ip(1)
    }
}

#[test]
fn responder_picks_the_psk_by_the_index_tag() {
    let (mut a, mut b) = pair();
    a.ring(&[1, 2], 2);
    b.ring(&[1, 2], 1);
    let p = packet(ip(1), ip(2), b"under epoch 2");
    a.send(&p);
    let init = &a.wire.datagrams[0].0;
    assert_eq!(dispatch::classify(init).epoch_tag(), Some(epoch_tag(2)));
    pump(&mut [&mut a, &mut b]);
    assert_eq!(b.take_tun(), vec![p]);
    let slots = b.engine.slots(ip(1));
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(slots[0].epoch, 2, "B answered with the key A used");
    assert!(slots[0].session && slots[0].confirmed);
    assert_eq!(stats_of(&a).key_epoch, Some(2));
    assert_eq!(stats_of(&b).handshake_failures, 0);
    // B sends on that session while it brings up its own primary (epoch 1).
    assert_eq!(stats_of(&b).key_epoch, Some(2));
    let back = packet(ip(2), ip(1), b"back");
    b.send(&back);
    pump(&mut [&mut a, &mut b]);
    assert_eq!(a.take_tun(), vec![back]);
    assert_eq!(epochs(&b, ip(1)), vec![1, 2]);
    assert_eq!(stats_of(&b).key_epoch, Some(1), "B's primary is up now");
}

#[test]
fn initiation_for_an_epoch_not_in_the_ring_is_dropped_and_counted() {
    let (mut a, mut b) = pair();
    a.ring(&[3], 3);
    b.ring(&[1, 2], 1);
    a.send(&packet(ip(1), ip(2), b"x"));
    assert_eq!(a.wire.datagrams.len(), 1);
    pump(&mut [&mut a, &mut b]);
    assert!(b.wire.datagrams.is_empty(), "not answered");
    assert!(b.take_tun().is_empty());
    assert!(b.engine.slots(ip(1)).is_empty(), "no slot made for it");
    assert_eq!(stats_of(&b).handshake_failures, 1);
    assert_eq!(b.engine.counters(), Counters::default());
    assert_eq!(stats_of(&a).key_epoch, None);
}

#[test]
fn invalid_rings_are_rejected_and_nothing_changes() {
    let mut link = Link::new();
    for (keys, primary) in [
        (vec![], 1),
        (vec![psk(1), psk(2)], 3),
        (vec![psk(1), psk(17)], 1),
        (vec![psk(1), psk(1)], 1),
        (vec![psk(1), psk(2), psk(3), psk(4), psk(5)], 1),
    ] {
        let err = link.a.engine.set_preshared_keys(keys, primary);
        assert!(
            matches!(err, Err(TunnelError::InvalidKeyRing(_))),
            "{err:?}"
        );
    }
    assert_eq!(epochs(&link.a, ip(2)), vec![1]);
    link.steps(2);
    assert_eq!(stats_of(&link.a).key_epoch, Some(1));
    link.assert_clean();
}

/// When B learns A's new public key, relative to A's switch.
#[derive(Debug, Clone, Copy)]
enum Learns {
    Before,
    Together,
    After,
}

#[test]
fn static_key_rotation_loses_no_packet_whenever_the_peer_learns_the_key() {
    for learns in [Learns::Before, Learns::Together, Learns::After] {
        let mut link = Link::new();
        link.steps(2);
        let old_a = link.a.key();
        link.a
            .send(&packet(ip(1), ip(2), b"sealed under the old key"));
        let (late, _) = link.a.wire.datagrams.pop().unwrap();
        let new = StaticKey::generate();
        let new_a = new.public().0;
        let b_learns = |link: &mut Link| {
            let config = PeerConfig {
                public_key: new_a,
                ..link.a.peer_config(ip(1))
            };
            link.b.engine.set_peers(vec![config]).unwrap();
        };
        match learns {
            Learns::Before => {
                b_learns(&mut link);
                link.steps(2);
                link.a.engine.set_static_key(new);
                link.steps(3);
            }
            Learns::Together => {
                link.a.engine.set_static_key(new);
                b_learns(&mut link);
                link.steps(3);
            }
            Learns::After => {
                link.a.engine.set_static_key(new);
                link.steps(3);
                assert!(link.a.engine.has_previous_key(), "B still uses it");
                b_learns(&mut link);
                link.steps(3);
            }
        }
        assert_eq!(link.a.key(), new_a, "{learns:?}");
        assert!(
            !link.a.engine.has_previous_key(),
            "{learns:?}: old key dropped"
        );
        let current = link.a.engine.generation();
        assert!(
            link.a
                .engine
                .slots(ip(2))
                .iter()
                .all(|s| s.local == current),
            "{learns:?}"
        );
        let b_slots = link.b.engine.slots(ip(1));
        assert!(
            b_slots.iter().all(|s| s.peer_key == new_a),
            "{learns:?}: B forgot A's old key"
        );
        assert_eq!(stats_of(&link.b).public_key, PublicKey(new_a));
        // A datagram sealed under the old key, delivered late, finds nothing.
        link.b
            .engine
            .handle_datagram(link.a.addr, &late, &mut link.b.wire);
        assert!(link.b.take_tun().is_empty(), "{learns:?}");
        assert_ne!(old_a, new_a);
        link.steps(2);
        // Every packet arrived; failures are allowed only where a node initiated towards a
        // key the other did not know yet.
        for node in [&link.a, &link.b] {
            assert_eq!(stats_of(node).dropped_invalid, 0, "{learns:?}");
            assert_eq!(node.engine.counters().disallowed_source, 0);
        }
    }
}

#[test]
fn both_nodes_rotate_static_keys_at_once() {
    let mut link = Link::new();
    link.steps(1);
    link.a.engine.set_static_key(StaticKey::generate());
    link.b.engine.set_static_key(StaticKey::generate());
    link.steps(1);
    let a_learns = PeerConfig {
        public_key: link.b.key(),
        ..link.b.peer_config(ip(2))
    };
    let b_learns = PeerConfig {
        public_key: link.a.key(),
        ..link.a.peer_config(ip(1))
    };
    link.a.engine.set_peers(vec![a_learns]).unwrap();
    link.b.engine.set_peers(vec![b_learns]).unwrap();
    link.steps(3);
    for (node, peer) in [(&link.a, &link.b), (&link.b, &link.a)] {
        assert!(!node.engine.has_previous_key());
        let slots = node.engine.slots(peer_ip(node));
        assert_eq!(slots.len(), 1, "{slots:?}");
        assert_eq!(slots[0].local, node.engine.generation());
        assert_eq!(slots[0].peer_key, peer.key());
    }
}

#[test]
fn previous_static_key_still_answers_initiations() {
    let (mut a, mut b) = pair();
    // A switches keys before any session exists; B does not know the new key yet, so it
    // initiates towards the old one.
    a.engine.set_static_key(StaticKey::generate());
    assert!(a.engine.has_previous_key(), "B has not moved yet");
    let p = packet(ip(2), ip(1), b"to the old key");
    b.send(&p);
    pump(&mut [&mut a, &mut b]);
    assert_eq!(a.take_tun(), vec![p]);
    let slots = a.engine.slots(ip(2));
    assert_eq!(slots.len(), 1);
    assert_ne!(
        slots[0].local,
        a.engine.generation(),
        "answered with the old key"
    );
    // A answers on that session while it tries its new key (which B rejects for now).
    let back = packet(ip(1), ip(2), b"back");
    a.send(&back);
    pump(&mut [&mut a, &mut b]);
    assert_eq!(b.take_tun(), vec![back]);
    assert_eq!(
        b.engine.counters().unknown_peer,
        1,
        "A's new key, unknown to B"
    );
}

#[test]
fn replaced_keys_are_dropped_after_the_bound() {
    let mut link = Link::new();
    // No peer moves to A's new key, yet it is dropped once the bound has passed.
    link.a.engine.retire_after = Duration::ZERO;
    link.a.engine.set_static_key(StaticKey::generate());
    assert!(!link.a.engine.has_previous_key());
    assert!(link.a.engine.slots(ip(2)).is_empty());

    // B learns a new key for A that A does not have: B's old-key slots go at the bound.
    let (mut a, mut b) = pair();
    a.send(&packet(ip(1), ip(2), b"x"));
    pump(&mut [&mut a, &mut b]);
    assert_eq!(b.take_tun().len(), 1);
    let config = PeerConfig {
        public_key: StaticKey::generate().public().0,
        ..a.peer_config(ip(1))
    };
    b.engine.set_peers(vec![config]).unwrap();
    b.engine.tick(&mut b.wire);
    assert_eq!(b.engine.slots(ip(1)).len(), 1, "kept until the bound");
    b.engine.retire_after = Duration::ZERO;
    b.engine.tick(&mut b.wire);
    assert!(b.engine.slots(ip(1)).is_empty());
    a.send(&packet(ip(1), ip(2), b"under the old key"));
    pump(&mut [&mut a, &mut b]);
    assert!(b.take_tun().is_empty());
    assert_eq!(b.engine.counters().unknown_peer, 1);
}

#[test]
fn removed_peer_is_forgotten_at_once_mid_rotation() {
    let mut link = Link::new();
    // A rotates; B knows both keys of A and has sessions under both.
    link.a.engine.set_static_key(StaticKey::generate());
    link.steps(1);
    let config = PeerConfig {
        public_key: link.a.key(),
        ..link.a.peer_config(ip(1))
    };
    link.b.engine.set_peers(vec![config]).unwrap();
    // Old-key data, sent before B's removal and delivered after it.
    link.a.send(&packet(ip(1), ip(2), b"late"));
    let late = link.a.wire.datagrams.clone();
    link.a.wire.datagrams.clear();

    link.b.engine.set_peers(vec![]).unwrap();
    assert!(link.b.engine.peer_stats().is_empty());
    for (d, _) in &late {
        link.b
            .engine
            .handle_datagram(link.a.addr, d, &mut link.b.wire);
    }
    link.a.send(&packet(ip(1), ip(2), b"anyone there?"));
    pump(&mut [&mut link.a, &mut link.b]);
    assert!(link.b.take_tun().is_empty());
    let c = link.b.engine.counters();
    assert!(c.unknown_peer >= 2, "{c:?}");
    assert_eq!(c.garbage, 0, "{c:?}");
}

#[test]
fn persistent_keepalives_go_on_the_sending_session_only() {
    let mut link = Link::new();
    link.a.ring(&[1, 2], 2);
    link.b.ring(&[1, 2], 2);
    link.steps(1);
    assert_eq!(epochs(&link.a, ip(2)), vec![1, 2]);
    let config = PeerConfig {
        keepalive: Some(25),
        ..link.b.peer_config(ip(2))
    };
    link.a.engine.set_peers(vec![config]).unwrap();
    link.a.engine.peers.get_mut(&ip(2)).unwrap().next_keepalive = Some(Instant::now());
    link.a.engine.tick(&mut link.a.wire);
    let sent: Vec<_> = link
        .a
        .wire
        .datagrams
        .iter()
        .map(|(d, _)| d.clone())
        .collect();
    assert_eq!(sent.len(), 1, "one keepalive");
    let sending = link.b.engine.slots(ip(1));
    let epoch2 = sending.iter().find(|s| s.epoch == 2).unwrap().index;
    assert_eq!(dispatch::classify(&sent[0]).tunn_index(), Some(epoch2));
    assert_eq!(sent[0].len(), dispatch::DATA_MIN_LEN);
    pump(&mut [&mut link.a, &mut link.b]);
    link.steps(1);
    link.assert_clean();
}

/// One change of the cluster ring, as the leader makes them.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// A new newest key, receive-only.
    Install(u64),
    /// The newest key becomes primary.
    Promote(u64),
    /// The oldest key (older than the primary) goes.
    Retire(u64),
}

/// The versions of the ring a sequence of changes goes through, starting from `{1}`.
fn versions(choices: &[u8]) -> Vec<(Vec<u64>, u64, Option<Change>)> {
    let mut keys = vec![1u64];
    let mut primary = 1u64;
    let mut out = vec![(keys.clone(), primary, None)];
    for &choice in choices {
        let newest = *keys.last().unwrap();
        let mut possible = Vec::new();
        if keys.len() < 3 {
            possible.push(Change::Install(newest + 1));
        }
        if primary < newest {
            possible.push(Change::Promote(newest));
        }
        if keys[0] < primary {
            possible.push(Change::Retire(keys[0]));
        }
        let change = possible[usize::from(choice) % possible.len()];
        match change {
            Change::Install(e) => keys.push(e),
            Change::Promote(e) => primary = e,
            Change::Retire(_) => {
                keys.remove(0);
            }
        }
        out.push((keys.clone(), primary, Some(change)));
    }
    out
}

/// What a schedule step does.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// A applies the next ring version (if that keeps the rules below).
    AdvanceA,
    /// B does.
    AdvanceB,
    /// A packet each way.
    Traffic,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::AdvanceA),
        Just(Action::AdvanceB),
        Just(Action::Traffic)
    ]
}

/// Whether a node may apply version `next` while the other node is at version `other`:
/// a key is installed on both before it becomes primary on either, and a key is retired
/// only after its successor is primary on both and has carried a packet since (`synced[i]`:
/// traffic flowed while both were at version `i` or later).
fn may_apply(
    versions: &[(Vec<u64>, u64, Option<Change>)],
    next: usize,
    other: usize,
    synced: &[bool],
) -> bool {
    match versions[next].2 {
        None | Some(Change::Install(_)) => true,
        Some(Change::Promote(e)) => versions[other].0.contains(&e),
        Some(Change::Retire(e)) => {
            let superseded = versions
                .iter()
                .position(|(_, primary, _)| *primary > e)
                .unwrap_or(versions.len());
            other >= superseded && synced.get(superseded) == Some(&true)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ring_changes_in_any_order_lose_no_packet(
        choices in proptest::collection::vec(any::<u8>(), 1..10),
        schedule in proptest::collection::vec(action(), 0..40),
    ) {
        let versions = versions(&choices);
        let mut link = Link::new();
        let mut at = [0usize, 0usize];
        let mut synced = vec![false; versions.len()];
        synced[0] = true;
        let apply = |link: &mut Link, side: usize, version: usize| {
            let (keys, primary, _) = &versions[version];
            let node = if side == 0 { &mut link.a } else { &mut link.b };
            node.ring(keys, *primary);
        };
        let traffic = |link: &mut Link, at: &[usize; 2], synced: &mut Vec<bool>| {
            link.step();
            for s in synced.iter_mut().take(at[0].min(at[1]) + 1) {
                *s = true;
            }
        };
        for action in schedule {
            let side = match action {
                Action::AdvanceA => 0,
                Action::AdvanceB => 1,
                Action::Traffic => {
                    traffic(&mut link, &at, &mut synced);
                    continue;
                }
            };
            let next = at[side] + 1;
            if next < versions.len() && may_apply(&versions, next, at[1 - side], &synced) {
                apply(&mut link, side, next);
                at[side] = next;
            } else {
                traffic(&mut link, &at, &mut synced);
            }
        }
        // Both catch up, each change as soon as the rules allow.
        while at[0] + 1 < versions.len() || at[1] + 1 < versions.len() {
            let mut moved = false;
            for side in [0, 1] {
                let next = at[side] + 1;
                if next < versions.len() && may_apply(&versions, next, at[1 - side], &synced) {
                    apply(&mut link, side, next);
                    at[side] = next;
                    moved = true;
                }
            }
            if !moved {
                traffic(&mut link, &at, &mut synced);
            }
        }
        link.steps(2);
        let (keys, primary, _) = versions.last().unwrap();
        for node in [&link.a, &link.b] {
            for slot in node.engine.slots(peer_ip(node)) {
                prop_assert!(keys.contains(&slot.epoch), "slot of retired epoch {}", slot.epoch);
            }
            prop_assert_eq!(stats_of(node).key_epoch, Some(*primary));
            prop_assert_eq!(stats_of(node).dropped_invalid, 0);
            prop_assert_eq!(node.engine.counters().unknown_peer, 0);
        }
    }
}
