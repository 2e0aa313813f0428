//! One peer: its configuration, the key it had before its current one, and its slots.
//!
//! A slot is one boringtun `Tunn`, for one (our static key, the peer's static key, PSK
//! epoch). boringtun cannot change any of the three in place, so every rotation means new
//! slots beside the old ones; the engine decides which slot sends ([`Peer::sending_slot`])
//! and when old slots go.

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use boringtun::noise::Tunn;

use crate::config::PeerConfig;
use crate::dispatch::{self, Datagram};
use crate::key::PublicKey;
use crate::PeerStats;

/// boringtun stamps a new session with the time of its last `update_timers` call, so the
/// session age it reports can be up to a tick too large; allow for that, and more.
const HANDSHAKE_CLOCK_SLACK: Duration = Duration::from_secs(1);

/// What a slot's `Tunn` was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SlotId {
    /// Generation of our static key (see `LocalKey`).
    pub(super) local: u64,
    /// The peer's static public key.
    pub(super) peer_key: [u8; 32],
    /// The PSK epoch.
    pub(super) epoch: u64,
}

pub(super) struct Slot {
    pub(super) id: SlotId,
    /// Our 24-bit index for this `Tunn` (base and epoch tag, see `dispatch`).
    pub(super) index: u32,
    pub(super) tunn: Tunn,
    /// When we last sent a handshake initiation that has not been answered yet.
    pub(super) init_sent_at: Option<Instant>,
    /// Whether the peer has sent authenticated data (a keepalive counts) on this slot: proof
    /// that it holds the slot's keys and sends with them.
    pub(super) confirmed: bool,
}

impl Slot {
    /// Whether boringtun would send data on it right away (it has a current session).
    pub(super) fn has_session(&self) -> bool {
        self.tunn.time_since_last_handshake().is_some()
    }

    /// Whether a session was established after our last initiation went out.
    pub(super) fn init_answered(&self, sent_at: Instant) -> bool {
        self.tunn
            .time_since_last_handshake()
            .is_some_and(|age| age <= sent_at.elapsed() + HANDSHAKE_CLOCK_SLACK)
    }
}

/// The key a peer had before `set_peers` gave it a new one.
pub(super) struct OldKey {
    pub(super) key: [u8; 32],
    pub(super) since: Instant,
}

pub(super) struct Peer {
    pub(super) config: PeerConfig,
    pub(super) old_key: Option<OldKey>,
    pub(super) slots: Vec<Slot>,
    /// When our persistent keepalive is next due (see `Engine::tick`).
    pub(super) next_keepalive: Option<Instant>,
    pub(super) rx_bytes: u64,
    pub(super) tx_bytes: u64,
    pub(super) handshake_failures: u64,
    pub(super) dropped_invalid: u64,
}

impl Peer {
    pub(super) fn new(config: PeerConfig, now: Instant) -> Self {
        Self {
            next_keepalive: keepalive_due(&config, now),
            config,
            old_key: None,
            slots: Vec::new(),
            rx_bytes: 0,
            tx_bytes: 0,
            handshake_failures: 0,
            dropped_invalid: 0,
        }
    }

    /// Takes a new configuration for the same peer (same tunnel address, or same key). A new
    /// public key keeps the slots of the key it replaces beside the new ones until the new
    /// key has carried traffic (see `Engine::retire_old_keys`); only one old key is kept, so
    /// the slots of any older one go now.
    pub(super) fn update(&mut self, config: PeerConfig, now: Instant) {
        if config.public_key != self.config.public_key {
            let replaced = self.config.public_key;
            tracing::debug!(
                peer = %config.tunnel_ip,
                old = %PublicKey(replaced),
                new = %PublicKey(config.public_key),
                "peer has a new key; the old one stays until the new one carries traffic"
            );
            self.old_key = Some(OldKey {
                key: replaced,
                since: now,
            });
            self.slots
                .retain(|s| s.id.peer_key == config.public_key || s.id.peer_key == replaced);
        }
        if config.keepalive != self.config.keepalive {
            self.next_keepalive = keepalive_due(&config, now);
        }
        self.config = config;
    }

    pub(super) fn slot(&self, id: &SlotId) -> Option<usize> {
        self.slots.iter().position(|s| s.id == *id)
    }

    pub(super) fn slot_by_index(&self, index: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.index == index)
    }

    /// The slot to send on: `preferred` (our current key, the peer's current key, the
    /// primary epoch) if it has a session; otherwise the newest other slot with a session,
    /// "newest" ranked by our current static key, then the peer's current key, then the
    /// highest PSK epoch, then the most recent handshake. Keys are retired oldest first
    /// (static keys once replaced, PSKs by epoch), so this keeps us off the keys that go
    /// next; and a slot only has a session if the peer holds its keys. `None` when no slot
    /// has a session.
    pub(super) fn sending_slot(&self, preferred: &SlotId, current_local: u64) -> Option<usize> {
        if let Some(i) = self
            .slot(preferred)
            .filter(|&i| self.slots[i].has_session())
        {
            return Some(i);
        }
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s, s.tunn.time_since_last_handshake()?)))
            .max_by_key(|(_, s, age)| {
                (
                    s.id.local == current_local,
                    s.id.peer_key == self.config.public_key,
                    s.id.epoch,
                    Reverse(*age),
                )
            })
            .map(|(i, _, _)| i)
    }

    /// Book-keeping for every datagram we send to the peer on slot `slot`: an initiation that
    /// replaces an unanswered one (boringtun retries every 5 s) is a failed attempt.
    pub(super) fn note_sent(&mut self, slot: usize, datagram: &[u8]) {
        self.tx_bytes += datagram.len() as u64;
        if matches!(dispatch::classify(datagram), Datagram::HandshakeInit { .. }) {
            let Some(slot) = self.slots.get_mut(slot) else {
                return;
            };
            if slot.init_sent_at.is_some_and(|at| !slot.init_answered(at)) {
                self.handshake_failures += 1;
            }
            slot.init_sent_at = Some(Instant::now());
        }
    }

    pub(super) fn stats(&self, preferred: &SlotId, current_local: u64) -> PeerStats {
        let sending = self
            .sending_slot(preferred, current_local)
            .map(|i| &self.slots[i]);
        PeerStats {
            public_key: PublicKey(self.config.public_key),
            endpoint: self.config.endpoint,
            tunnel_ip: self.config.tunnel_ip,
            key_epoch: sending.map(|s| s.id.epoch),
            last_handshake: sending.and_then(|s| s.tunn.time_since_last_handshake()),
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            handshake_failures: self.handshake_failures,
            dropped_invalid: self.dropped_invalid,
        }
    }

    pub(super) fn endpoint(&self) -> SocketAddr {
        self.config.endpoint
    }
}

fn keepalive_due(config: &PeerConfig, now: Instant) -> Option<Instant> {
    config
        .keepalive
        .map(|secs| now + Duration::from_secs(secs.into()))
}
