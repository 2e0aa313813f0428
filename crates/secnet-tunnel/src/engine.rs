//! The engine: the peer table and what to do with each datagram, inner packet and timer tick.
//!
//! No sockets and no threads here. Every step is given its input (a datagram and its source,
//! or a packet read from the TUN device) and hands what must leave to a [`Transmit`]. The I/O
//! loop (`io.rs`) drives it with real sockets; the unit tests below drive engines against
//! each other in memory. The crate docs explain slots and the rotation flows.

mod peer;

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
use crate::dispatch::{self, epoch_tag, split_tunn_index, tunn_index, Datagram, INDEX_BASES};
use crate::key::{PublicKey, StaticKey};
use crate::psk::{PresharedKey, Ring};
use crate::{Counters, PeerStats, TunnelError};

use peer::{Peer, Slot, SlotId};

/// Handshake messages per second each of our static keys processes before it demands
/// cookies (boringtun's device module uses 100). Initiations are counted twice, once by our
/// pre-check and once inside `Tunn::decapsulate` (both use the same limiter), hence the 2×.
pub(crate) const HANDSHAKE_RATE_LIMIT: u64 = 2 * 100;

/// How long a replaced key (ours, or a peer's) stays usable at most: WireGuard's
/// REJECT_AFTER_TIME, after which no session under it would be accepted anyway.
pub(crate) const RETIRE_AFTER: Duration = Duration::from_secs(180);

/// Size of the scratch buffer: any datagram (≤ 65,535 bytes) plus WireGuard's overhead.
const SCRATCH_LEN: usize = 65_536 + 64;

/// Where the engine's output goes.
pub(crate) trait Transmit {
    /// Sends one UDP datagram; false if it could not be sent.
    fn send_datagram(&mut self, datagram: &[u8], to: SocketAddr) -> bool;
    /// Writes one IP packet to the TUN device; false if it could not be written.
    fn write_tun(&mut self, packet: &[u8]) -> bool;
}

/// One of our static keys, with the rate limiter that checks MAC1 for it (MAC1 is keyed by
/// the receiver's public key, so each of our keys needs its own).
struct LocalKey {
    /// Counts up with every `set_static_key`; slots name their local key by it.
    generation: u64,
    key: StaticKey,
    public: x25519::PublicKey,
    limiter: Arc<RateLimiter>,
}

impl LocalKey {
    fn new(key: StaticKey, generation: u64) -> Self {
        let public = x25519::PublicKey::from(key.public().0);
        let limiter = Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
        Self {
            generation,
            key,
            public,
            limiter,
        }
    }
}

/// Our current static key, and the one it replaced while peers may still use it.
struct Keys {
    current: LocalKey,
    previous: Option<(LocalKey, Instant)>,
}

impl Keys {
    fn get(&self, generation: u64) -> Option<&LocalKey> {
        if self.current.generation == generation {
            return Some(&self.current);
        }
        self.previous
            .as_ref()
            .map(|(key, _)| key)
            .filter(|key| key.generation == generation)
    }
}

/// Index bases (the top 20 bits of a `Tunn` index): one per peer and pair of static keys.
struct Bases {
    owner: HashMap<u32, Ipv4Addr>,
    next: u32,
}

impl Bases {
    /// A base no current slot uses. Counting up (from a random start) rather than drawing at
    /// random keeps a dropped slot's base out of use for a long time, so late packets for it
    /// find no slot instead of the wrong session. `None` only if all 2^20 are taken.
    fn allocate(&mut self, ip: Ipv4Addr) -> Option<u32> {
        if self.owner.len() >= (INDEX_BASES - 1) as usize {
            return None;
        }
        loop {
            let candidate = self.next;
            self.next = (self.next + 1) % INDEX_BASES;
            if candidate != 0 && !self.owner.contains_key(&candidate) {
                self.owner.insert(candidate, ip);
                return Some(candidate);
            }
        }
    }
}

/// The slot `id` of `peer`, made if it does not exist yet. `None` if our key or the PSK of
/// `id` is gone, or no index is free.
fn ensure_slot(
    peer: &mut Peer,
    ip: Ipv4Addr,
    id: SlotId,
    keys: &Keys,
    ring: &Ring,
    bases: &mut Bases,
) -> Option<usize> {
    if let Some(i) = peer.slot(&id) {
        return Some(i);
    }
    let local = keys.get(id.local)?;
    let psk = ring.psk(id.epoch)?;
    // Slots of one key pair share a base and differ in the tag, so the tag alone tells the
    // responder's epoch apart and the base stays the peer's for all its epochs.
    let shared = peer
        .slots
        .iter()
        .find(|s| s.id.local == id.local && s.id.peer_key == id.peer_key)
        .map(|s| split_tunn_index(s.index).0);
    let base = match shared {
        Some(base) => base,
        None => bases.allocate(ip)?,
    };
    let index = tunn_index(base, epoch_tag(id.epoch))?;
    let tunn = Tunn::new(
        local.key.secret_copy(),
        x25519::PublicKey::from(id.peer_key),
        psk,
        // Persistent keepalives are ours (see `Engine::tick`): boringtun would send them on
        // every slot, keeping sessions alive that only exist for a rotation.
        None,
        index,
        Some(Arc::clone(&local.limiter)),
    );
    tracing::debug!(
        peer = %ip,
        key = %PublicKey(id.peer_key),
        epoch = id.epoch,
        local = id.local,
        index,
        "new slot"
    );
    peer.slots.push(Slot {
        id,
        index,
        tunn,
        init_sent_at: None,
        confirmed: false,
    });
    Some(peer.slots.len() - 1)
}

/// The peer table and the per-packet logic.
pub(crate) struct Engine {
    keys: Keys,
    next_generation: u64,
    ring: Ring,
    /// Peers by tunnel address: their identity across key changes.
    peers: HashMap<Ipv4Addr, Peer>,
    /// Every peer's current and old public key.
    by_key: HashMap<[u8; 32], Ipv4Addr>,
    bases: Bases,
    /// How long replaced keys are kept at most ([`RETIRE_AFTER`]; tests shorten it).
    retire_after: Duration,
    counters: Counters,
    scratch: Vec<u8>,
}

impl Engine {
    pub(crate) fn new(key: StaticKey) -> Self {
        Self {
            keys: Keys {
                current: LocalKey::new(key, 0),
                previous: None,
            },
            next_generation: 1,
            ring: Ring::none(),
            peers: HashMap::new(),
            by_key: HashMap::new(),
            bases: Bases {
                owner: HashMap::new(),
                next: rand::thread_rng().gen_range(1..INDEX_BASES),
            },
            retire_after: RETIRE_AFTER,
            counters: Counters::default(),
            scratch: vec![0; SCRATCH_LEN],
        }
    }

    /// Our current public key.
    pub(crate) fn public_key(&self) -> PublicKey {
        self.keys.current.key.public()
    }

    /// The slot every peer should send on: current keys, primary epoch.
    fn preferred(&self, peer: &Peer) -> SlotId {
        SlotId {
            local: self.keys.current.generation,
            peer_key: peer.config.public_key,
            epoch: self.ring.primary(),
        }
    }

    /// Replaces the peer set. Peers are identified by tunnel address (or, for a peer whose
    /// address changed, by key): a peer not in `peers` is dropped at once with all its
    /// slots; a peer with a new key keeps the slots of its old key until the new one has
    /// carried traffic; endpoint, tunnel address and keepalive change in place.
    pub(crate) fn set_peers(&mut self, peers: Vec<PeerConfig>) -> Result<(), TunnelError> {
        let mut own = vec![self.keys.current.key.public()];
        own.extend(self.keys.previous.as_ref().map(|(k, _)| k.key.public()));
        validate_peers(&peers, &own)?;
        let now = Instant::now();
        let mut old = std::mem::take(&mut self.peers);
        let mut unmatched = Vec::new();
        for config in peers {
            match old.remove(&config.tunnel_ip) {
                Some(mut peer) => {
                    peer.update(config, now);
                    self.peers.insert(peer.config.tunnel_ip, peer);
                }
                None => unmatched.push(config),
            }
        }
        for config in unmatched {
            // A peer whose tunnel address changed but whose key did not (every peer left in
            // `old` has an address that is no longer in the set).
            let renumbered = old
                .iter()
                .find(|(_, p)| p.config.public_key == config.public_key)
                .map(|(ip, _)| *ip);
            let peer = match renumbered.and_then(|ip| old.remove(&ip)) {
                Some(mut peer) => {
                    tracing::debug!(peer = %config.tunnel_ip, old = %peer.config.tunnel_ip, "peer renumbered");
                    peer.update(config, now);
                    peer
                }
                None => {
                    tracing::debug!(peer = %config.tunnel_ip, key = %PublicKey(config.public_key), "peer added");
                    Peer::new(config, now)
                }
            };
            self.peers.insert(peer.config.tunnel_ip, peer);
        }
        for gone in old.keys() {
            tracing::debug!(peer = %gone, "peer removed");
        }
        // An old key that is now another peer's current key is that peer's, not this one's.
        let current: HashMap<[u8; 32], Ipv4Addr> = self
            .peers
            .iter()
            .map(|(ip, p)| (p.config.public_key, *ip))
            .collect();
        for peer in self.peers.values_mut() {
            if let Some(old_key) = peer.old_key.as_ref().map(|o| o.key) {
                if current.contains_key(&old_key) {
                    peer.old_key = None;
                    peer.slots.retain(|s| s.id.peer_key != old_key);
                }
            }
        }
        self.rebuild_routes();
        Ok(())
    }

    /// Installs a new PSK ring. Slots whose epoch left the ring, or whose epoch now means
    /// another key, go at once; the others keep their sessions.
    pub(crate) fn set_preshared_keys(
        &mut self,
        keys: Vec<PresharedKey>,
        primary: u64,
    ) -> Result<(), TunnelError> {
        let ring = Ring::new(keys, primary)?;
        for peer in self.peers.values_mut() {
            peer.slots.retain(|s| self.ring.same_key(&ring, s.id.epoch));
        }
        tracing::debug!(primary, "PSK ring installed");
        self.ring = ring;
        self.rebuild_routes();
        Ok(())
    }

    /// Makes `key` our key for new handshakes. The key it replaces keeps its slots, and keeps
    /// answering initiations addressed to it, until every peer has sent us traffic under the
    /// new key or [`RETIRE_AFTER`] has passed; a key replaced before that goes at once.
    pub(crate) fn set_static_key(&mut self, key: StaticKey) {
        if key.public() == self.keys.current.key.public() {
            return;
        }
        let now = Instant::now();
        let generation = self.next_generation;
        self.next_generation += 1;
        tracing::info!(public_key = %key.public(), "new static key");
        let replaced = std::mem::replace(&mut self.keys.current, LocalKey::new(key, generation));
        if let Some((gone, _)) = self.keys.previous.replace((replaced, now)) {
            for peer in self.peers.values_mut() {
                peer.slots.retain(|s| s.id.local != gone.generation);
            }
        }
        self.retire_old_keys(now);
        self.rebuild_routes();
    }

    /// Recomputes which peer owns each index base and each public key, after slots or peers
    /// changed.
    fn rebuild_routes(&mut self) {
        self.bases.owner.clear();
        self.by_key.clear();
        for (ip, peer) in &self.peers {
            for slot in &peer.slots {
                self.bases.owner.insert(split_tunn_index(slot.index).0, *ip);
            }
            self.by_key.insert(peer.config.public_key, *ip);
            if let Some(old) = &peer.old_key {
                self.by_key.insert(old.key, *ip);
            }
        }
    }

    /// Drops replaced keys that are no longer needed: a peer's old key once a slot with its
    /// new key has received data from it (it sends with the new key now), our previous key
    /// once every peer has sent us data under our current key; either after
    /// `retire_after` at the latest. Returns whether anything was dropped.
    fn retire_old_keys(&mut self, now: Instant) -> bool {
        let mut dropped = false;
        for (ip, peer) in &mut self.peers {
            let Some(old) = &peer.old_key else { continue };
            let new_carried = peer
                .slots
                .iter()
                .any(|s| s.confirmed && s.id.peer_key == peer.config.public_key);
            if new_carried || now.duration_since(old.since) >= self.retire_after {
                let old_key = old.key;
                tracing::debug!(peer = %ip, key = %PublicKey(old_key), new_carried, "peer's old key retired");
                peer.old_key = None;
                peer.slots.retain(|s| s.id.peer_key != old_key);
                dropped = true;
            }
        }
        if let Some((previous, since)) = &self.keys.previous {
            let current = self.keys.current.generation;
            let everyone_moved = self
                .peers
                .values()
                .all(|p| p.slots.iter().any(|s| s.confirmed && s.id.local == current));
            if everyone_moved || now.duration_since(*since) >= self.retire_after {
                let gone = previous.generation;
                tracing::info!(public_key = %previous.key.public(), everyone_moved, "previous static key retired");
                for peer in self.peers.values_mut() {
                    peer.slots.retain(|s| s.id.local != gone);
                }
                self.keys.previous = None;
                dropped = true;
            }
        }
        if dropped {
            self.rebuild_routes();
        }
        dropped
    }

    /// One datagram from the UDP socket.
    pub(crate) fn handle_datagram(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        tx: &mut impl Transmit,
    ) {
        let kind = dispatch::classify(datagram);
        let target = match kind {
            Datagram::Garbage => {
                self.counters.garbage += 1;
                return;
            }
            Datagram::HandshakeInit { .. } => self.responder_slot(from, datagram, kind, tx),
            routed => {
                let target = self.routed_slot(routed);
                if target.is_none() {
                    self.counters.unknown_peer += 1;
                }
                target
            }
        };
        let Some((ip, slot)) = target else { return };
        if self.decapsulate(ip, slot, from, datagram, kind, tx) {
            self.retire_old_keys(Instant::now());
        }
    }

    /// The slot an initiation goes to: our key is the one whose MAC1 it carries (current or
    /// previous), the peer is found by decrypting its static key, the epoch by the tag in
    /// its sender index. Everything that does not get that far is counted here.
    fn responder_slot(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        kind: Datagram,
        tx: &mut impl Transmit,
    ) -> Option<(Ipv4Addr, usize)> {
        // MAC1 and the rate limit first: parse_handshake_anon costs a Diffie-Hellman, and
        // anyone can send initiations. MAC1 says which of our keys the sender addressed.
        let mut verified = None;
        let locals =
            std::iter::once(&self.keys.current).chain(self.keys.previous.as_ref().map(|(k, _)| k));
        for local in locals {
            match local
                .limiter
                .verify_packet(Some(from.ip()), datagram, &mut self.scratch)
            {
                Ok(Packet::HandshakeInit(init)) => {
                    verified = Some((
                        local.generation,
                        parse_handshake_anon(local.key.secret(), &local.public, &init),
                    ));
                    break;
                }
                Err(TunnResult::Err(WireGuardError::InvalidMac)) => continue,
                Err(TunnResult::WriteToNetwork(cookie)) => {
                    self.counters.rate_limited += 1;
                    if !tx.send_datagram(cookie, from) {
                        self.counters.send_errors += 1;
                    }
                    return None;
                }
                Err(TunnResult::Err(WireGuardError::UnderLoad)) => {
                    self.counters.rate_limited += 1;
                    return None;
                }
                Ok(_) | Err(_) => break,
            }
        }
        let (local, half) = match verified {
            Some((local, Ok(half))) => (local, half),
            // A bad MAC1 for all our keys, or a static key that does not decrypt.
            None | Some((_, Err(_))) => {
                self.counters.garbage += 1;
                return None;
            }
        };
        let Some(&ip) = self.by_key.get(&half.peer_static_public) else {
            self.counters.unknown_peer += 1;
            return None;
        };
        let peer = self.peers.get_mut(&ip)?;
        let tag = kind.epoch_tag()?;
        let Some(epoch) = self.ring.epoch_by_tag(tag) else {
            // The initiator uses a PSK we do not have (yet, or any more): the handshake
            // could only fail, so save the work.
            tracing::debug!(peer = %ip, tag, "initiation for a PSK epoch not in our ring");
            peer.handshake_failures += 1;
            return None;
        };
        let id = SlotId {
            local,
            peer_key: half.peer_static_public,
            epoch,
        };
        match ensure_slot(peer, ip, id, &self.keys, &self.ring, &mut self.bases) {
            Some(slot) => Some((ip, slot)),
            None => {
                self.counters.unknown_peer += 1;
                None
            }
        }
    }

    /// The slot a response, cookie or data message names by its receiver index.
    fn routed_slot(&self, kind: Datagram) -> Option<(Ipv4Addr, usize)> {
        let index = kind.tunn_index()?;
        let ip = *self.bases.owner.get(&split_tunn_index(index).0)?;
        let slot = self.peers.get(&ip)?.slot_by_index(index)?;
        Some((ip, slot))
    }

    /// Hands a datagram to one slot's `Tunn` and acts on the result. Returns whether the slot
    /// just became confirmed (its first authenticated data from the peer).
    fn decapsulate(
        &mut self,
        ip: Ipv4Addr,
        slot: usize,
        from: SocketAddr,
        datagram: &[u8],
        kind: Datagram,
        tx: &mut impl Transmit,
    ) -> bool {
        let Some(peer) = self.peers.get_mut(&ip) else {
            return false;
        };
        let endpoint = peer.endpoint();
        let is_data = matches!(kind, Datagram::Data { .. });
        let result =
            peer.slots[slot]
                .tunn
                .decapsulate(Some(from.ip()), datagram, &mut self.scratch);
        let authenticated = !matches!(result, TunnResult::Err(_));
        match result {
            TunnResult::Done => peer.rx_bytes += datagram.len() as u64,
            TunnResult::WriteToNetwork(reply) => {
                peer.rx_bytes += datagram.len() as u64;
                send_to_peer(&mut self.counters, peer, slot, reply, endpoint, tx);
                // Flush what boringtun queued while it had no session.
                while let TunnResult::WriteToNetwork(queued) =
                    peer.slots[slot]
                        .tunn
                        .decapsulate(None, &[], &mut self.scratch)
                {
                    send_to_peer(&mut self.counters, peer, slot, queued, endpoint, tx);
                }
            }
            TunnResult::WriteToTunnelV4(packet, source) => {
                peer.rx_bytes += datagram.len() as u64;
                if source == peer.config.tunnel_ip {
                    if !tx.write_tun(packet) {
                        self.counters.tun_write_errors += 1;
                    }
                } else {
                    tracing::debug!(peer = %ip, %source, "inner source not allowed");
                    self.counters.disallowed_source += 1;
                    peer.dropped_invalid += 1;
                }
            }
            TunnResult::WriteToTunnelV6(_, source) => {
                peer.rx_bytes += datagram.len() as u64;
                tracing::debug!(peer = %ip, %source, "IPv6 inner packet not allowed");
                self.counters.disallowed_source += 1;
                peer.dropped_invalid += 1;
            }
            TunnResult::Err(error) => {
                tracing::trace!(peer = %ip, ?error, "datagram rejected");
                if is_data {
                    peer.dropped_invalid += 1;
                } else {
                    peer.handshake_failures += 1;
                }
            }
        }
        let slot = &mut peer.slots[slot];
        if is_data && authenticated && !slot.confirmed {
            slot.confirmed = true;
            return true;
        }
        false
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
        if !self.peers.contains_key(&destination) || packet.len() + 32 > self.scratch.len() {
            self.counters.no_route += 1;
            return;
        }
        self.send(destination, packet, tx);
    }

    /// Seals `packet` (empty: a keepalive) for the peer at `ip`: on the preferred slot if it
    /// has a session; else on the best slot that has one while the preferred slot
    /// handshakes; else on the preferred slot, which queues it and handshakes.
    fn send(&mut self, ip: Ipv4Addr, packet: &[u8], tx: &mut impl Transmit) {
        let current = self.keys.current.generation;
        let primary = self.ring.primary();
        let Some(peer) = self.peers.get_mut(&ip) else {
            return;
        };
        let preferred = SlotId {
            local: current,
            peer_key: peer.config.public_key,
            epoch: primary,
        };
        let endpoint = peer.endpoint();
        let sending = peer.sending_slot(&preferred, current);
        if let Some(slot) = sending {
            if let TunnResult::WriteToNetwork(datagram) =
                peer.slots[slot].tunn.encapsulate(packet, &mut self.scratch)
            {
                send_to_peer(&mut self.counters, peer, slot, datagram, endpoint, tx);
            }
            if peer.slots[slot].id == preferred {
                return;
            }
        }
        let Some(slot) = ensure_slot(peer, ip, preferred, &self.keys, &self.ring, &mut self.bases)
        else {
            if sending.is_none() {
                self.counters.no_route += 1;
            }
            return;
        };
        let tunn = &mut peer.slots[slot].tunn;
        let result = if sending.is_some() {
            // Sent already; only make sure the preferred slot is getting a session (Done
            // while a handshake is in progress).
            tunn.format_handshake_initiation(&mut self.scratch, false)
        } else {
            tunn.encapsulate(packet, &mut self.scratch)
        };
        if let TunnResult::WriteToNetwork(datagram) = result {
            send_to_peer(&mut self.counters, peer, slot, datagram, endpoint, tx);
        }
    }

    /// Runs every slot's timers (handshake retries, rekeying, keepalives), our persistent
    /// keepalives, and the retirement of replaced keys; call every 100–250 ms.
    pub(crate) fn tick(&mut self, tx: &mut impl Transmit) {
        let now = Instant::now();
        let mut keepalives = Vec::new();
        for (ip, peer) in &mut self.peers {
            let endpoint = peer.endpoint();
            for slot in 0..peer.slots.len() {
                let state = &mut peer.slots[slot];
                if state.init_sent_at.is_some_and(|at| state.init_answered(at)) {
                    state.init_sent_at = None;
                }
                match state.tunn.update_timers(&mut self.scratch) {
                    TunnResult::WriteToNetwork(datagram) => {
                        send_to_peer(&mut self.counters, peer, slot, datagram, endpoint, tx);
                    }
                    // boringtun gave up (90 s without an answer) or let an idle session
                    // expire; only the first is a failure, and it repeats the error every
                    // tick after.
                    TunnResult::Err(WireGuardError::ConnectionExpired)
                        if state.init_sent_at.is_some() =>
                    {
                        state.init_sent_at = None;
                        peer.handshake_failures += 1;
                    }
                    _ => {}
                }
            }
            if let (Some(due), Some(secs)) = (peer.next_keepalive, peer.config.keepalive) {
                if now >= due {
                    peer.next_keepalive = Some(now + Duration::from_secs(secs.into()));
                    keepalives.push(*ip);
                }
            }
        }
        // A persistent keepalive goes where data would go, so it keeps the sending session
        // (and the path to the peer) alive, and nothing else.
        for ip in keepalives {
            self.send(ip, &[], tx);
        }
        self.retire_old_keys(now);
    }

    /// Lets handshakes through again after a second of rate limiting.
    pub(crate) fn reset_rate_limiter(&self) {
        self.keys.current.limiter.reset_count();
        if let Some((previous, _)) = &self.keys.previous {
            previous.limiter.reset_count();
        }
    }

    pub(crate) fn peer_stats(&self) -> Vec<PeerStats> {
        let current = self.keys.current.generation;
        let mut stats: Vec<PeerStats> = self
            .peers
            .values()
            .map(|p| p.stats(&self.preferred(p), current))
            .collect();
        stats.sort_by_key(|s| s.tunnel_ip);
        stats
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    /// A datagram handed to [`Transmit::send_datagram`] that the socket did not take after
    /// all (the I/O loop sends in batches and learns this later): counted as a send error,
    /// and taken off the sent bytes of the peer it was for.
    pub(crate) fn note_unsent(&mut self, to: SocketAddr, bytes: usize) {
        self.counters.send_errors += 1;
        if let Some(peer) = self.peers.values_mut().find(|p| p.endpoint() == to) {
            peer.tx_bytes = peer.tx_bytes.saturating_sub(bytes as u64);
        }
    }

    /// Packets handed to [`Transmit::write_tun`] that the device did not take after all.
    pub(crate) fn note_tun_write_errors(&mut self, count: u64) {
        self.counters.tun_write_errors += count;
    }

    /// A packet read from the TUN device that could not be taken apart (see `offload`).
    pub(crate) fn note_no_route(&mut self) {
        self.counters.no_route += 1;
    }
}

fn send_to_peer(
    counters: &mut Counters,
    peer: &mut Peer,
    slot: usize,
    datagram: &[u8],
    to: SocketAddr,
    tx: &mut impl Transmit,
) {
    if tx.send_datagram(datagram, to) {
        peer.note_sent(slot, datagram);
    } else {
        counters.send_errors += 1;
    }
}

/// What a test can see of a slot.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotView {
    pub(crate) local: u64,
    pub(crate) peer_key: [u8; 32],
    pub(crate) epoch: u64,
    pub(crate) index: u32,
    pub(crate) session: bool,
    pub(crate) confirmed: bool,
}

#[cfg(test)]
impl Engine {
    /// The slots of the peer at `ip`, ordered by (local key generation, epoch).
    pub(crate) fn slots(&self, ip: Ipv4Addr) -> Vec<SlotView> {
        let mut slots: Vec<SlotView> = self
            .peers
            .get(&ip)
            .map(|p| {
                p.slots
                    .iter()
                    .map(|s| SlotView {
                        local: s.id.local,
                        peer_key: s.id.peer_key,
                        epoch: s.id.epoch,
                        index: s.index,
                        session: s.has_session(),
                        confirmed: s.confirmed,
                    })
                    .collect()
            })
            .unwrap_or_default();
        slots.sort_by_key(|s| (s.local, s.epoch));
        slots
    }

    /// The generation of our current static key.
    pub(crate) fn generation(&self) -> u64 {
        self.keys.current.generation
    }

    /// Whether we still keep the static key the current one replaced.
    pub(crate) fn has_previous_key(&self) -> bool {
        self.keys.previous.is_some()
    }
}

#[cfg(test)]
mod tests;
