//! Two (or three) engines wired to each other in memory.

use super::*;
use boringtun::noise::TunnResult;

const EA: &str = "198.51.100.1:51820";
const EB: &str = "198.51.100.2:51820";
const EC: &str = "198.51.100.3:51820";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(100, 96, 0, last)
}

/// A minimal IPv4/UDP packet (boringtun reads the version, total length and addresses).
fn packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The test key of `epoch`.
fn psk(epoch: u64) -> PresharedKey {
    PresharedKey::new(epoch, [epoch as u8 ^ 0x5A; 32])
}

#[derive(Default)]
struct Wire {
    datagrams: Vec<(Vec<u8>, SocketAddr)>,
    tun: Vec<Vec<u8>>,
}

impl Transmit for Wire {
    fn send_datagram(&mut self, datagram: &[u8], to: SocketAddr) -> bool {
        self.datagrams.push((datagram.to_vec(), to));
        true
    }
    fn write_tun(&mut self, packet: &[u8]) -> bool {
        self.tun.push(packet.to_vec());
        true
    }
}

struct Node {
    engine: Engine,
    addr: SocketAddr,
    wire: Wire,
}

impl Node {
    fn new(addr: &str) -> Self {
        Self {
            engine: Engine::new(StaticKey::generate()),
            addr: addr.parse().unwrap(),
            wire: Wire::default(),
        }
    }

    fn key(&self) -> [u8; 32] {
        self.engine.public_key().0
    }

    fn peer_config(&self, tunnel_ip: Ipv4Addr) -> PeerConfig {
        PeerConfig {
            public_key: self.key(),
            endpoint: self.addr,
            tunnel_ip,
            keepalive: None,
        }
    }

    /// Installs a ring of `epochs` (key bytes: the epoch) with `primary`.
    fn ring(&mut self, epochs: &[u64], primary: u64) {
        let keys = epochs.iter().map(|&e| psk(e)).collect();
        self.engine.set_preshared_keys(keys, primary).unwrap();
    }

    fn send(&mut self, packet: &[u8]) {
        self.engine.handle_tun_packet(packet, &mut self.wire);
    }

    fn take_tun(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.wire.tun)
    }
}

/// Delivers datagrams between the nodes (by destination address) until none are left.
fn pump(nodes: &mut [&mut Node]) {
    for _ in 0..100 {
        let mut in_flight = Vec::new();
        for node in nodes.iter_mut() {
            for (d, to) in node.wire.datagrams.drain(..) {
                in_flight.push((d, node.addr, to));
            }
        }
        if in_flight.is_empty() {
            return;
        }
        for (d, from, to) in in_flight {
            if let Some(node) = nodes.iter_mut().find(|n| n.addr == to) {
                node.engine.handle_datagram(from, &d, &mut node.wire);
            }
        }
    }
    panic!("datagrams still flowing after 100 rounds");
}

/// A (100.96.0.1) and B (100.96.0.2), peers of each other, without a PSK.
fn pair() -> (Node, Node) {
    let mut a = Node::new(EA);
    let mut b = Node::new(EB);
    a.engine.set_peers(vec![b.peer_config(ip(2))]).unwrap();
    b.engine.set_peers(vec![a.peer_config(ip(1))]).unwrap();
    (a, b)
}

/// [`pair`] with the ring `{epoch}` on both.
fn pair_with_psk(epoch: u64) -> (Node, Node) {
    let (mut a, mut b) = pair();
    a.ring(&[epoch], epoch);
    b.ring(&[epoch], epoch);
    (a, b)
}

fn stats_of(node: &Node) -> PeerStats {
    node.engine.peer_stats().remove(0)
}

#[test]
fn handshake_then_data_both_ways() {
    let (mut a, mut b) = pair_with_psk(7);
    let p = packet(ip(1), ip(2), b"hello");
    a.send(&p);
    pump(&mut [&mut a, &mut b]);
    assert_eq!(
        b.take_tun(),
        vec![p],
        "queued packet flushed after the handshake"
    );
    let reply = packet(ip(2), ip(1), b"world");
    b.send(&reply);
    pump(&mut [&mut a, &mut b]);
    assert_eq!(a.take_tun(), vec![reply]);
    for node in [&a, &b] {
        let s = stats_of(node);
        assert!(s.last_handshake.is_some());
        assert_eq!(s.key_epoch, Some(7));
        assert!(s.rx_bytes > 0 && s.tx_bytes > 0, "{s:?}");
        assert_eq!(s.handshake_failures, 0);
        assert_eq!(s.dropped_invalid, 0);
        assert_eq!(node.engine.counters(), Counters::default());
    }
}

#[test]
fn inner_source_must_be_the_peers_tunnel_ip() {
    let (mut a, mut b) = pair();
    // A forges a packet that claims to come from 100.96.0.9.
    a.send(&packet(ip(9), ip(2), b"spoofed"));
    pump(&mut [&mut a, &mut b]);
    assert!(b.take_tun().is_empty());
    assert_eq!(b.engine.counters().disallowed_source, 1);
    assert_eq!(stats_of(&b).dropped_invalid, 1);
    // The honest packet still goes through.
    let honest = packet(ip(1), ip(2), b"honest");
    a.send(&honest);
    pump(&mut [&mut a, &mut b]);
    assert_eq!(b.take_tun(), vec![honest]);
}

#[test]
fn no_route_for_unknown_destinations_or_non_ipv4() {
    let (mut a, _b) = pair();
    a.send(&packet(ip(1), ip(77), b"x"));
    a.send(&[0x60; 48]);
    a.send(&[]);
    assert_eq!(a.engine.counters().no_route, 3);
    assert!(a.wire.datagrams.is_empty());
}

#[test]
fn garbage_and_unknown_indices_are_counted() {
    let (mut a, mut b) = pair();
    let from: SocketAddr = EC.parse().unwrap();
    b.engine.handle_datagram(from, b"hello", &mut b.wire);
    b.engine.handle_datagram(from, &[1; 148], &mut b.wire);
    let mut init = vec![0u8; 148];
    init[0] = 1;
    b.engine.handle_datagram(from, &init, &mut b.wire); // bad MAC1
    let mut data = vec![0u8; 64];
    data[0] = 4;
    data[4..8].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    b.engine.handle_datagram(from, &data, &mut b.wire);
    let c = b.engine.counters();
    assert_eq!(c.garbage, 3, "{c:?}");
    assert_eq!(c.unknown_peer, 1, "{c:?}");
    assert!(b.wire.datagrams.is_empty(), "nothing is answered");
    // The real peer is unaffected.
    let p = packet(ip(1), ip(2), b"still fine");
    a.send(&p);
    pump(&mut [&mut a, &mut b]);
    assert_eq!(b.take_tun(), vec![p]);
}

#[test]
fn data_for_a_known_index_that_fails_to_open_is_dropped_invalid() {
    let (mut a, mut b) = pair();
    a.send(&packet(ip(1), ip(2), b"x"));
    pump(&mut [&mut a, &mut b]);
    b.take_tun();
    a.send(&packet(ip(1), ip(2), b"tampered"));
    let (mut d, to) = a.wire.datagrams.pop().unwrap();
    let last = d.len() - 1;
    d[last] ^= 1;
    b.engine.handle_datagram(a.addr, &d, &mut b.wire);
    assert!(b.take_tun().is_empty());
    assert_eq!(to, b.addr);
    assert_eq!(stats_of(&b).dropped_invalid, 1);
    // Replaying an authentic datagram is rejected too.
    a.send(&packet(ip(1), ip(2), b"once"));
    let (d, _) = a.wire.datagrams.pop().unwrap();
    b.engine.handle_datagram(a.addr, &d, &mut b.wire);
    b.engine.handle_datagram(a.addr, &d, &mut b.wire);
    assert_eq!(b.take_tun().len(), 1);
    assert_eq!(stats_of(&b).dropped_invalid, 2);
}

#[test]
fn initiation_from_a_stranger_is_unknown_peer() {
    let (_a, mut b) = pair();
    let mut c = Node::new(EC);
    c.engine.set_peers(vec![b.peer_config(ip(2))]).unwrap();
    c.send(&packet(ip(3), ip(2), b"let me in"));
    pump(&mut [&mut b, &mut c]);
    assert_eq!(b.engine.counters().unknown_peer, 1);
    assert!(b.take_tun().is_empty());
    assert!(stats_of(&c).last_handshake.is_none());
}

#[test]
fn psk_mismatch_fails_the_handshake() {
    let (mut a, mut b) = pair();
    a.engine
        .set_preshared_keys(vec![PresharedKey::new(1, [1; 32])], 1)
        .unwrap();
    b.engine
        .set_preshared_keys(vec![PresharedKey::new(1, [2; 32])], 1)
        .unwrap();
    a.send(&packet(ip(1), ip(2), b"x"));
    pump(&mut [&mut a, &mut b]);
    assert!(b.take_tun().is_empty());
    assert_eq!(
        stats_of(&a).handshake_failures,
        1,
        "A cannot open B's response"
    );
    assert!(stats_of(&a).last_handshake.is_none());
    assert_eq!(stats_of(&a).key_epoch, None);
}

#[test]
fn new_bytes_under_the_same_epoch_make_a_new_session() {
    let (mut a, mut b) = pair_with_psk(1);
    a.send(&packet(ip(1), ip(2), b"x"));
    pump(&mut [&mut a, &mut b]);
    b.take_tun();
    let old_index = b.engine.slots(ip(1))[0].index;
    // An authentic datagram under the old session, delivered late.
    a.send(&packet(ip(1), ip(2), b"late"));
    let (late, _) = a.wire.datagrams.pop().unwrap();

    for node in [&mut a, &mut b] {
        node.engine
            .set_preshared_keys(vec![PresharedKey::new(1, [0xEE; 32])], 1)
            .unwrap();
    }
    assert!(
        b.engine.slots(ip(1)).is_empty(),
        "the old key's slot is gone"
    );
    b.engine.handle_datagram(a.addr, &late, &mut b.wire);
    assert_eq!(b.engine.counters().unknown_peer, 1, "old index is gone");

    let p = packet(ip(1), ip(2), b"under the new key");
    a.send(&p);
    pump(&mut [&mut a, &mut b]);
    assert_eq!(b.take_tun(), vec![p]);
    assert_ne!(b.engine.slots(ip(1))[0].index, old_index);
    assert!(stats_of(&b).rx_bytes > 0, "counters survive the slots");
}

#[test]
fn endpoint_and_tunnel_ip_change_in_place() {
    let (mut a, mut b) = pair();
    a.send(&packet(ip(1), ip(2), b"x"));
    pump(&mut [&mut a, &mut b]);
    b.take_tun();
    let index = b.engine.slots(ip(1))[0].index;
    // A moves to a new underlay address and tunnel address.
    a.addr = "198.51.100.11:51820".parse().unwrap();
    b.engine.set_peers(vec![a.peer_config(ip(11))]).unwrap();
    let slots = b.engine.slots(ip(11));
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].index, index);
    assert!(slots[0].session, "session kept");
    let p = packet(ip(11), ip(2), b"from the new address");
    a.send(&p);
    pump(&mut [&mut a, &mut b]);
    assert_eq!(b.take_tun(), vec![p]);
    b.send(&packet(ip(2), ip(11), b"back"));
    assert_eq!(b.wire.datagrams.last().unwrap().1, a.addr);
    b.send(&packet(ip(2), ip(1), b"old address"));
    assert_eq!(b.engine.counters().no_route, 1);
}

#[test]
fn removed_peers_are_gone_at_once() {
    let (mut a, mut b) = pair();
    a.send(&packet(ip(1), ip(2), b"x"));
    pump(&mut [&mut a, &mut b]);
    b.take_tun();
    b.engine.set_peers(vec![]).unwrap();
    assert!(b.engine.peer_stats().is_empty());
    a.send(&packet(ip(1), ip(2), b"anyone there?"));
    pump(&mut [&mut a, &mut b]);
    assert!(b.take_tun().is_empty());
    assert_eq!(b.engine.counters().unknown_peer, 1);
    b.send(&packet(ip(2), ip(1), b"x"));
    assert_eq!(b.engine.counters().no_route, 1);
}

#[test]
fn invalid_peer_sets_are_rejected_and_the_old_set_kept() {
    let (a, mut b) = pair();
    let c = Node::new(EC);
    let err = b
        .engine
        .set_peers(vec![a.peer_config(ip(1)), c.peer_config(ip(1))]);
    assert!(matches!(err, Err(TunnelError::InvalidPeers(_))));
    let err = b.engine.set_peers(vec![
        a.peer_config(ip(1)),
        PeerConfig {
            public_key: a.key(),
            ..c.peer_config(ip(3))
        },
    ]);
    assert!(matches!(err, Err(TunnelError::InvalidPeers(_))), "dup key");
    let own = PeerConfig {
        public_key: b.key(),
        ..a.peer_config(ip(5))
    };
    assert!(b.engine.set_peers(vec![own]).is_err());
    assert_eq!(b.engine.peer_stats().len(), 1);
}

#[test]
fn indices_are_unique_and_24_bit() {
    let mut a = Node::new(EA);
    a.ring(&[30, 31], 31);
    let peers: Vec<PeerConfig> = (0..50u8)
        .map(|i| PeerConfig {
            public_key: StaticKey::generate().public().0,
            endpoint: EB.parse().unwrap(),
            tunnel_ip: Ipv4Addr::new(100, 96, 1, i),
            keepalive: None,
        })
        .collect();
    a.engine.bases.next = INDEX_BASES - 10; // exercise the wrap-around
    a.engine.set_peers(peers.clone()).unwrap();
    for p in &peers {
        // Slots are made when needed: a packet for each peer makes its primary one.
        a.send(&packet(ip(1), p.tunnel_ip, b"x"));
    }
    let mut seen = std::collections::HashSet::new();
    for p in &peers {
        let slots = a.engine.slots(p.tunnel_ip);
        assert_eq!(slots.len(), 1);
        let index = slots[0].index;
        assert!(index > 0 && index < 1 << 24);
        assert_eq!(
            split_tunn_index(index).1,
            epoch_tag(31),
            "tagged with the epoch"
        );
        assert!(seen.insert(index));
    }
    assert_eq!(a.engine.bases.owner.len(), 50);
}

#[test]
fn timers_retry_the_handshake_and_count_nothing_while_waiting() {
    let (mut a, _b) = pair();
    a.send(&packet(ip(1), ip(2), b"x"));
    assert_eq!(a.wire.datagrams.len(), 1, "initiation");
    a.engine.tick(&mut a.wire);
    assert_eq!(a.wire.datagrams.len(), 1, "no retry before REKEY_TIMEOUT");
    assert_eq!(stats_of(&a).handshake_failures, 0);
}

#[test]
fn handshake_flood_is_rate_limited_with_cookies() {
    let (a, mut b) = pair();
    let attacker: SocketAddr = EC.parse().unwrap();
    // Authentic-looking initiations (right MAC1) from a known key, far more than the limit.
    let a_secret = a.engine.keys.current.key.secret_copy();
    let b_public = x25519::PublicKey::from(b.key());
    let mut tunn = Tunn::new(a_secret, b_public, None, None, 1 << 4, None);
    let mut buf = vec![0u8; 256];
    for _ in 0..(HANDSHAKE_RATE_LIMIT as usize) {
        let TunnResult::WriteToNetwork(init) = tunn.format_handshake_initiation(&mut buf, true)
        else {
            panic!("no initiation");
        };
        let init = init.to_vec();
        b.engine.handle_datagram(attacker, &init, &mut b.wire);
    }
    let c = b.engine.counters();
    assert!(c.rate_limited > 0, "{c:?}");
    let cookies = b
        .wire
        .datagrams
        .iter()
        .filter(|(d, to)| *to == attacker && dispatch::classify(d) != Datagram::Garbage)
        .filter(|(d, _)| matches!(dispatch::classify(d), Datagram::Cookie { .. }))
        .count() as u64;
    assert_eq!(
        cookies, c.rate_limited,
        "each limited initiation gets a cookie"
    );
}

#[test]
fn unanswered_initiations_count_as_failures() {
    let (mut a, _b) = pair();
    a.send(&packet(ip(1), ip(2), b"is anyone there?"));
    assert_eq!(a.wire.datagrams.len(), 1, "initiation");
    // boringtun retries after REKEY_TIMEOUT (5 s).
    let start = std::time::Instant::now();
    while a.wire.datagrams.len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(8), "no retry");
        std::thread::sleep(Duration::from_millis(100));
        a.engine.tick(&mut a.wire);
    }
    assert!(matches!(
        dispatch::classify(&a.wire.datagrams[1].0),
        Datagram::HandshakeInit { .. }
    ));
    assert_eq!(stats_of(&a).handshake_failures, 1);
}

#[test]
fn answered_initiations_are_not_failures() {
    let (mut a, mut b) = pair();
    a.send(&packet(ip(1), ip(2), b"x"));
    pump(&mut [&mut a, &mut b]);
    for _ in 0..3 {
        a.engine.tick(&mut a.wire);
        b.engine.tick(&mut b.wire);
    }
    assert!(a.engine.peers[&ip(2)]
        .slots
        .iter()
        .all(|s| s.init_sent_at.is_none()));
    assert_eq!(stats_of(&a).handshake_failures, 0);
}

mod rotation;
