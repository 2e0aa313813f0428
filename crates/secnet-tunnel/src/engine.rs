//! The engine: the peer table and what to do with each datagram, inner packet and timer tick.
//!
//! No sockets and no threads here. Every step is given its input (a datagram and its source,
//! or a packet read from the TUN device) and hands what must leave to a [`Transmit`]. The I/O
//! loop (`io.rs`) drives it with real sockets; the unit tests below drive two engines against
//! each other in memory.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{errors::WireGuardError, Packet, Tunn, TunnResult};
use boringtun::x25519;
use rand::Rng as _;

use crate::config::{validate_peers, PeerConfig};
use crate::dispatch::{self, Datagram};
use crate::key::{PublicKey, StaticKey};
use crate::{Counters, PeerStats, TunnelError};

/// Handshake messages per second the whole endpoint processes before it demands cookies
/// (boringtun's device module uses 100). Initiations are counted twice, once by our
/// pre-check and once inside `Tunn::decapsulate` (both use the same limiter), hence the 2×.
pub(crate) const HANDSHAKE_RATE_LIMIT: u64 = 2 * 100;

/// Size of the scratch buffer: any datagram (≤ 65,535 bytes) plus WireGuard's overhead.
const SCRATCH_LEN: usize = 65_536 + 64;

/// Indices are 24 bits: boringtun keeps the low 8 bits of the 32-bit wire index for sessions.
const INDEX_SPACE: u32 = 1 << 24;

/// Where the engine's output goes.
pub(crate) trait Transmit {
    /// Sends one UDP datagram; false if it could not be sent.
    fn send_datagram(&mut self, datagram: &[u8], to: SocketAddr) -> bool;
    /// Writes one IP packet to the TUN device; false if it could not be written.
    fn write_tun(&mut self, packet: &[u8]) -> bool;
}

struct Peer {
    config: PeerConfig,
    tunn: Tunn,
    /// Our index for this `Tunn` (the wire's receiver index is `index << 8 | session`).
    index: u32,
    rx_bytes: u64,
    tx_bytes: u64,
    handshake_failures: u64,
    dropped_invalid: u64,
    /// When we last sent a handshake initiation that has not been answered yet.
    init_sent_at: Option<Instant>,
}

/// boringtun stamps a new session with the time of its last `update_timers` call, so the
/// session age it reports can be up to a tick too large; allow for that, and more.
const HANDSHAKE_CLOCK_SLACK: Duration = Duration::from_secs(1);

impl Peer {
    /// Whether a session was established after our last initiation went out.
    fn init_answered(&self, sent_at: Instant) -> bool {
        self.tunn
            .time_since_last_handshake()
            .is_some_and(|age| age <= sent_at.elapsed() + HANDSHAKE_CLOCK_SLACK)
    }

    /// Book-keeping for every datagram we send to the peer: an initiation that replaces an
    /// unanswered one (boringtun retries every 5 s) is a failed attempt.
    fn note_sent(&mut self, datagram: &[u8]) {
        self.tx_bytes += datagram.len() as u64;
        if matches!(dispatch::classify(datagram), Datagram::HandshakeInit { .. }) {
            if self.init_sent_at.is_some_and(|at| !self.init_answered(at)) {
                self.handshake_failures += 1;
            }
            self.init_sent_at = Some(Instant::now());
        }
    }

    fn stats(&self) -> PeerStats {
        PeerStats {
            public_key: PublicKey(self.config.public_key),
            endpoint: self.config.endpoint,
            tunnel_ip: self.config.tunnel_ip,
            last_handshake: self.tunn.time_since_last_handshake(),
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            handshake_failures: self.handshake_failures,
            dropped_invalid: self.dropped_invalid,
        }
    }
}

/// The peer table and the per-packet logic.
pub(crate) struct Engine {
    key: StaticKey,
    public: x25519::PublicKey,
    limiter: Arc<RateLimiter>,
    peers: HashMap<[u8; 32], Peer>,
    by_index: HashMap<u32, [u8; 32]>,
    by_ip: HashMap<Ipv4Addr, [u8; 32]>,
    next_index: u32,
    counters: Counters,
    scratch: Vec<u8>,
}

impl Engine {
    pub(crate) fn new(key: StaticKey) -> Self {
        let public = x25519::PublicKey::from(key.public().0);
        let limiter = Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
        Self {
            key,
            public,
            limiter,
            peers: HashMap::new(),
            by_index: HashMap::new(),
            by_ip: HashMap::new(),
            next_index: rand::thread_rng().gen_range(1..INDEX_SPACE),
            counters: Counters::default(),
            scratch: vec![0; SCRATCH_LEN],
        }
    }

    #[cfg(test)]
    pub(crate) fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    /// A 24-bit index not used by any current peer. Counting up (from a random start) rather
    /// than drawing at random keeps a replaced `Tunn`'s index out of use for a long time, so
    /// late packets for it find no peer instead of the wrong session.
    fn allocate_index(&mut self) -> u32 {
        loop {
            let candidate = self.next_index;
            self.next_index = (self.next_index + 1) % INDEX_SPACE;
            if candidate != 0 && !self.by_index.contains_key(&candidate) {
                return candidate;
            }
        }
    }

    fn new_tunn(&mut self, config: &PeerConfig) -> (Tunn, u32) {
        let index = self.allocate_index();
        // Reserve it now so a second new peer in the same update gets another one.
        self.by_index.insert(index, config.public_key);
        let tunn = Tunn::new(
            self.key.secret_copy(),
            x25519::PublicKey::from(config.public_key),
            config.psk,
            config.keepalive,
            index,
            Some(Arc::clone(&self.limiter)),
        );
        (tunn, index)
    }

    /// Replaces the peer set. Peers not in `peers` are dropped at once (with their sessions);
    /// new peers get a fresh `Tunn`; a changed PSK or keepalive also means a fresh `Tunn`
    /// (boringtun has no setter for either), with a new index; a changed endpoint or tunnel
    /// address is applied in place (the session keys do not depend on them).
    pub(crate) fn set_peers(&mut self, peers: Vec<PeerConfig>) -> Result<(), TunnelError> {
        validate_peers(&peers, &self.key.public())?;
        let mut old = std::mem::take(&mut self.peers);
        self.by_index.clear();
        // Keep the indices of the peers we keep, so new ones do not take them.
        for config in &peers {
            if let Some(existing) = old.get(&config.public_key) {
                let same_session = existing.config.psk == config.psk
                    && existing.config.keepalive == config.keepalive;
                if same_session {
                    self.by_index.insert(existing.index, config.public_key);
                }
            }
        }
        for config in peers {
            let peer = match old.remove(&config.public_key) {
                Some(mut existing)
                    if existing.config.psk == config.psk
                        && existing.config.keepalive == config.keepalive =>
                {
                    existing.config = config;
                    existing
                }
                Some(existing) => {
                    let (tunn, index) = self.new_tunn(&config);
                    tracing::debug!(peer = %PublicKey(config.public_key), index, "session parameters changed: new Tunn");
                    Peer {
                        config,
                        tunn,
                        index,
                        init_sent_at: None,
                        ..existing
                    }
                }
                None => {
                    let (tunn, index) = self.new_tunn(&config);
                    tracing::debug!(peer = %PublicKey(config.public_key), index, "peer added");
                    Peer {
                        config,
                        tunn,
                        index,
                        rx_bytes: 0,
                        tx_bytes: 0,
                        handshake_failures: 0,
                        dropped_invalid: 0,
                        init_sent_at: None,
                    }
                }
            };
            self.peers.insert(peer.config.public_key, peer);
        }
        for gone in old.keys() {
            tracing::debug!(peer = %PublicKey(*gone), "peer removed");
        }
        self.by_ip = self
            .peers
            .values()
            .map(|p| (p.config.tunnel_ip, p.config.public_key))
            .collect();
        Ok(())
    }

    /// One datagram from the UDP socket.
    pub(crate) fn handle_datagram(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        tx: &mut impl Transmit,
    ) {
        let kind = dispatch::classify(datagram);
        let key = match kind {
            Datagram::Garbage => {
                self.counters.garbage += 1;
                return;
            }
            Datagram::HandshakeInit { .. } => {
                // MAC1 and the rate limit first: parse_handshake_anon costs a Diffie-Hellman,
                // and anyone can send initiations.
                match self
                    .limiter
                    .verify_packet(Some(from.ip()), datagram, &mut self.scratch)
                {
                    Ok(Packet::HandshakeInit(init)) => {
                        match parse_handshake_anon(self.key.secret(), &self.public, &init) {
                            Ok(half) if self.peers.contains_key(&half.peer_static_public) => {
                                half.peer_static_public
                            }
                            Ok(_) => {
                                self.counters.unknown_peer += 1;
                                return;
                            }
                            Err(_) => {
                                self.counters.garbage += 1;
                                return;
                            }
                        }
                    }
                    Ok(_) => {
                        self.counters.garbage += 1;
                        return;
                    }
                    Err(TunnResult::WriteToNetwork(cookie)) => {
                        self.counters.rate_limited += 1;
                        if !tx.send_datagram(cookie, from) {
                            self.counters.send_errors += 1;
                        }
                        return;
                    }
                    Err(TunnResult::Err(WireGuardError::UnderLoad)) => {
                        self.counters.rate_limited += 1;
                        return;
                    }
                    Err(_) => {
                        self.counters.garbage += 1;
                        return;
                    }
                }
            }
            routed => match routed
                .peer_index()
                .and_then(|index| self.by_index.get(&index))
            {
                Some(key) => *key,
                None => {
                    self.counters.unknown_peer += 1;
                    return;
                }
            },
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            self.counters.unknown_peer += 1;
            return;
        };
        let endpoint = peer.config.endpoint;
        let is_data = matches!(kind, Datagram::Data { .. });
        match peer
            .tunn
            .decapsulate(Some(from.ip()), datagram, &mut self.scratch)
        {
            TunnResult::Done => peer.rx_bytes += datagram.len() as u64,
            TunnResult::WriteToNetwork(reply) => {
                peer.rx_bytes += datagram.len() as u64;
                send_to_peer(&mut self.counters, peer, reply, endpoint, tx);
                // Flush what boringtun queued while it had no session.
                while let TunnResult::WriteToNetwork(queued) =
                    peer.tunn.decapsulate(None, &[], &mut self.scratch)
                {
                    send_to_peer(&mut self.counters, peer, queued, endpoint, tx);
                }
            }
            TunnResult::WriteToTunnelV4(packet, source) => {
                peer.rx_bytes += datagram.len() as u64;
                if source == peer.config.tunnel_ip {
                    if !tx.write_tun(packet) {
                        self.counters.tun_write_errors += 1;
                    }
                } else {
                    tracing::debug!(peer = %PublicKey(key), %source, "inner source not allowed");
                    self.counters.disallowed_source += 1;
                    peer.dropped_invalid += 1;
                }
            }
            TunnResult::WriteToTunnelV6(_, source) => {
                peer.rx_bytes += datagram.len() as u64;
                tracing::debug!(peer = %PublicKey(key), %source, "IPv6 inner packet not allowed");
                self.counters.disallowed_source += 1;
                peer.dropped_invalid += 1;
            }
            TunnResult::Err(error) => {
                tracing::trace!(peer = %PublicKey(key), ?error, "datagram rejected");
                if is_data {
                    peer.dropped_invalid += 1;
                } else {
                    peer.handshake_failures += 1;
                }
            }
        }
    }

    /// One IP packet read from the TUN device.
    pub(crate) fn handle_tun_packet(&mut self, packet: &[u8], tx: &mut impl Transmit) {
        let destination = match Tunn::dst_address(packet) {
            Some(IpAddr::V4(destination)) => destination,
            _ => {
                self.counters.no_route += 1;
                return;
            }
        };
        let Some(peer) = self
            .by_ip
            .get(&destination)
            .and_then(|key| self.peers.get_mut(key))
        else {
            self.counters.no_route += 1;
            return;
        };
        if packet.len() + 32 > self.scratch.len() {
            self.counters.no_route += 1;
            return;
        }
        let endpoint = peer.config.endpoint;
        if let TunnResult::WriteToNetwork(datagram) =
            peer.tunn.encapsulate(packet, &mut self.scratch)
        {
            send_to_peer(&mut self.counters, peer, datagram, endpoint, tx);
        }
    }

    /// Runs every peer's timers (handshake retries, rekeying, keepalives); call every
    /// 100–250 ms.
    pub(crate) fn tick(&mut self, tx: &mut impl Transmit) {
        for peer in self.peers.values_mut() {
            if peer.init_sent_at.is_some_and(|at| peer.init_answered(at)) {
                peer.init_sent_at = None;
            }
            let endpoint = peer.config.endpoint;
            match peer.tunn.update_timers(&mut self.scratch) {
                TunnResult::WriteToNetwork(datagram) => {
                    send_to_peer(&mut self.counters, peer, datagram, endpoint, tx);
                }
                // boringtun gave up (90 s without an answer) or let an idle session expire;
                // only the first is a failure, and it repeats the error every tick after.
                TunnResult::Err(WireGuardError::ConnectionExpired)
                    if peer.init_sent_at.is_some() =>
                {
                    peer.init_sent_at = None;
                    peer.handshake_failures += 1;
                }
                _ => {}
            }
        }
    }

    /// Lets handshakes through again after a second of rate limiting.
    pub(crate) fn reset_rate_limiter(&self) {
        self.limiter.reset_count();
    }

    pub(crate) fn peer_stats(&self) -> Vec<PeerStats> {
        let mut stats: Vec<PeerStats> = self.peers.values().map(Peer::stats).collect();
        stats.sort_by_key(|s| s.tunnel_ip);
        stats
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    #[cfg(test)]
    fn index_of(&self, key: &[u8; 32]) -> Option<u32> {
        self.peers.get(key).map(|p| p.index)
    }

    #[cfg(test)]
    fn last_handshake(&self, key: &[u8; 32]) -> Option<Duration> {
        self.peers
            .get(key)
            .and_then(|p| p.tunn.time_since_last_handshake())
    }
}

fn send_to_peer(
    counters: &mut Counters,
    peer: &mut Peer,
    datagram: &[u8],
    to: SocketAddr,
    tx: &mut impl Transmit,
) {
    if tx.send_datagram(datagram, to) {
        peer.note_sent(datagram);
    } else {
        counters.send_errors += 1;
    }
}

#[cfg(test)]
mod tests;
