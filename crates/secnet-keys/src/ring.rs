//! The cluster's pre-shared-key ring: a pure state machine for two-phase key
//! rotation.
//!
//! Why: every tunnel between two nodes mixes a cluster-wide pre-shared key
//! (PSK) into its handshake, and that key must be rotated (on a timer, on
//! `secnet key rotate`, and at once when a node is removed or demoted)
//! without dropping packets. Docker Swarm's answer, kept here, is a ring of
//! up to three keys where the newest one is installed for receiving by every
//! node before anyone sends with it. A node only starts handshakes with a
//! key once every live peer can answer them.
//!
//! A rotation goes through these steps, all driven by the leader and recorded
//! in the replicated state:
//!
//! 1. [`KeyRing::begin_rotation`] adds a [`KeyState::Pending`] key (the
//!    leader draws its secret) with the next epoch.
//! 2. Each node installs the pending key for receiving and says so; the
//!    leader records it with [`KeyRing::acknowledge`].
//! 3. [`KeyRing::try_promote`] makes the pending key [`KeyState::Primary`]
//!    once every live node has installed it; the previous primary becomes
//!    [`KeyState::Retiring`] and still carries the sessions made under it.
//! 4. Once sessions had time to move to the new key, [`KeyRing::retire`]
//!    drops the oldest retiring keys.
//!
//! A node removal supersedes a rotation in progress: the removed node may
//! have received the pending key, so that key is dropped and a new one is
//! added in its place (with a higher epoch, so no node can confuse the two).
//!
//! Everything here is deterministic: no I/O, no clock (time comes in as
//! `now_unix`, seconds since the Unix epoch) and no randomness (secrets come
//! in from the caller). Secrets never appear in `Debug` output; with serde a
//! secret is a hex string (see [`Secret32`]), so the serialized ring must
//! only be stored sealed (see [`seal`](crate::seal::seal)).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::secret::Secret32;

/// The most keys a ring holds (retiring ones, the primary and a pending one).
pub const MAX_RING_KEYS: usize = 3;

/// Bits of an epoch the WireGuard engine carries in its session indices, so that a responder
/// knows which pre-shared key an initiator used (`secnet-tunnel`'s dispatch). Keys in one
/// ring always differ in these bits: [`KeyRing::begin_rotation`] skips epochs that would not.
pub const EPOCH_TAG_BITS: u32 = 4;

/// The low [`EPOCH_TAG_BITS`] bits of `epoch`.
pub fn epoch_tag(epoch: u64) -> u64 {
    epoch & ((1 << EPOCH_TAG_BITS) - 1)
}

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Distributed to the nodes and installed for receiving only.
    Pending,
    /// Used for new handshakes. A ring has exactly one.
    Primary,
    /// A former primary: still accepted for receiving and on existing
    /// sessions until it is dropped.
    Retiring,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyState::Pending => "pending",
            KeyState::Primary => "primary",
            KeyState::Retiring => "retiring",
        })
    }
}

/// Why a rotation was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationReason {
    /// The primary key reached the rotation interval.
    Scheduled,
    /// An operator asked for it (`secnet key rotate`).
    Manual,
    /// This node was removed or demoted; supersedes a rotation in progress.
    NodeRemoved(u64),
}

impl fmt::Display for RotationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotationReason::Scheduled => f.write_str("scheduled"),
            RotationReason::Manual => f.write_str("manual"),
            RotationReason::NodeRemoved(node) => write!(f, "node {node} removed"),
        }
    }
}

/// One key of the ring. `Debug` shows everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingKey {
    /// Increases by one with every key the ring issues; never reused.
    pub epoch: u64,
    /// When the key was added (seconds since the Unix epoch).
    pub created_at: u64,
    /// Where the key is in its life.
    pub state: KeyState,
    /// When the key became primary (seconds since the Unix epoch); `None`
    /// while pending. Tells the leader how long sessions have had to move to
    /// this key before [`KeyRing::retire`].
    #[serde(default)]
    pub promoted_at: Option<u64>,
    /// The pre-shared key.
    pub secret: Secret32,
}

/// Errors from the key ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// A scheduled or manual rotation while another one waits for nodes.
    #[error("a key rotation (epoch {epoch}) is already in progress: {acked} node(s) have installed the new key so far, and it becomes primary once every live node has; try again after that (a node removal starts a new rotation at once)")]
    RotationInProgress {
        /// The pending key's epoch.
        epoch: u64,
        /// How many nodes have acknowledged it.
        acked: usize,
    },
    /// An epoch that the ring does not hold.
    #[error("key epoch {epoch} is not in the key ring, which holds epochs {held:?}: it was dropped or never issued")]
    UnknownEpoch {
        /// The epoch asked for.
        epoch: u64,
        /// The epochs the ring holds, oldest first.
        held: Vec<u64>,
    },
    /// Every `u64` epoch has been issued (cannot happen in practice).
    #[error("no key epoch is left to issue: the last one issued is {last}")]
    EpochsExhausted {
        /// The last epoch issued.
        last: u64,
    },
    /// A deserialized ring that breaks the ring's rules.
    #[error("invalid key ring: {reason}")]
    Invalid {
        /// The rule that is broken.
        reason: String,
    },
}

/// The cluster's pre-shared-key ring (see the [module docs](self)).
///
/// Invariants, kept by every operation and checked on deserialization:
/// between 1 and [`MAX_RING_KEYS`] keys with strictly increasing epochs;
/// exactly one primary; retiring keys older than the primary; at most one
/// pending key, the newest; acknowledgements only for epochs in the ring.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RingRepr")]
pub struct KeyRing {
    /// Oldest first.
    retiring: Vec<RingKey>,
    primary: RingKey,
    pending: Option<RingKey>,
    /// Epoch → nodes that installed it; no empty sets.
    acks: BTreeMap<u64, BTreeSet<u64>>,
    /// The highest epoch ever issued, including dropped pending keys.
    last_epoch: u64,
}

static NO_ACKS: BTreeSet<u64> = BTreeSet::new();

impl KeyRing {
    /// A new ring whose only key, epoch 1, is primary.
    pub fn seed(secret: Secret32, now_unix: u64) -> Self {
        Self {
            retiring: Vec::new(),
            primary: RingKey {
                epoch: 1,
                created_at: now_unix,
                state: KeyState::Primary,
                promoted_at: Some(now_unix),
                secret,
            },
            pending: None,
            acks: BTreeMap::new(),
            last_epoch: 1,
        }
    }

    /// Adds `secret` as a pending key and returns its epoch (one more than
    /// any epoch issued before).
    ///
    /// Refused with [`RingError::RotationInProgress`] while a key is pending,
    /// except for [`RotationReason::NodeRemoved`]: that one drops the
    /// pending key (the removed node may have received it), forgets the
    /// removed node's acknowledgements and adds the new key in its place.
    /// When the ring is full, the oldest retiring key is dropped first; the
    /// primary never is. Nothing changes when an error is returned.
    pub fn begin_rotation(
        &mut self,
        secret: Secret32,
        now_unix: u64,
        reason: RotationReason,
    ) -> Result<u64, RingError> {
        if let Some(pending) = &self.pending {
            if !matches!(reason, RotationReason::NodeRemoved(_)) {
                return Err(RingError::RotationInProgress {
                    epoch: pending.epoch,
                    acked: self.acks(pending.epoch).len(),
                });
            }
        }
        // Work on a copy, so that an error leaves the ring as it was.
        let mut next = self.clone();
        if let RotationReason::NodeRemoved(node) = reason {
            if let Some(old) = next.pending.take() {
                next.acks.remove(&old.epoch);
            }
            next.forget_node(node);
        }
        while next.len() >= MAX_RING_KEYS && !next.retiring.is_empty() {
            let dropped = next.retiring.remove(0);
            next.acks.remove(&dropped.epoch);
        }
        // The next epoch whose tag differs from every key left in the ring (at most two
        // skips: the ring holds at most two other keys here).
        let mut epoch = next.last_epoch;
        loop {
            epoch = epoch.checked_add(1).ok_or(RingError::EpochsExhausted {
                last: self.last_epoch,
            })?;
            if next.keys().all(|k| epoch_tag(k.epoch) != epoch_tag(epoch)) {
                break;
            }
        }
        *self = next;
        self.pending = Some(RingKey {
            epoch,
            created_at: now_unix,
            state: KeyState::Pending,
            promoted_at: None,
            secret,
        });
        self.last_epoch = epoch;
        Ok(epoch)
    }

    /// Records that `node` installed the key of `epoch` for receiving.
    /// Returns whether this is new (acknowledging twice changes nothing).
    pub fn acknowledge(&mut self, node: u64, epoch: u64) -> Result<bool, RingError> {
        if self.get(epoch).is_none() {
            return Err(self.unknown(epoch));
        }
        Ok(self.acks.entry(epoch).or_default().insert(node))
    }

    /// Promotes the pending key once every node of `live_nodes` has
    /// acknowledged it (nodes that are down or removed do not block; an
    /// empty set promotes at once). The previous primary becomes retiring.
    /// Returns the promoted epoch, or `None` when there is no pending key or
    /// a live node has not installed it yet.
    pub fn try_promote(&mut self, live_nodes: &BTreeSet<u64>, now_unix: u64) -> Option<u64> {
        let epoch = self.pending.as_ref()?.epoch;
        if !live_nodes.is_subset(self.acks(epoch)) {
            return None;
        }
        let mut promoted = self.pending.take()?;
        promoted.state = KeyState::Primary;
        promoted.promoted_at = Some(now_unix);
        let mut old = std::mem::replace(&mut self.primary, promoted);
        old.state = KeyState::Retiring;
        self.retiring.push(old);
        Some(epoch)
    }

    /// Drops the oldest retiring keys until at most `keep` keys remain
    /// (`keep` is at least 1; the primary and a pending key are never
    /// dropped, so more may remain). Returns the dropped epochs, oldest
    /// first.
    pub fn retire(&mut self, keep: usize) -> Vec<u64> {
        let keep = keep.max(1);
        let mut dropped = Vec::new();
        while self.len() > keep && !self.retiring.is_empty() {
            let key = self.retiring.remove(0);
            self.acks.remove(&key.epoch);
            dropped.push(key.epoch);
        }
        dropped
    }

    /// Whether a scheduled rotation is due: the primary key was created at
    /// least `interval_secs` before `now_unix` and no rotation is pending.
    /// A clock that went backwards counts as no time passed.
    pub fn due_for_rotation(&self, now_unix: u64, interval_secs: u64) -> bool {
        self.pending.is_none() && now_unix.saturating_sub(self.primary.created_at) >= interval_secs
    }

    /// Removes `node`'s acknowledgements of every key. Returns whether it
    /// had any.
    pub fn forget_node(&mut self, node: u64) -> bool {
        let mut changed = false;
        self.acks.retain(|_, nodes| {
            changed |= nodes.remove(&node);
            !nodes.is_empty()
        });
        changed
    }

    /// The key used for new handshakes.
    pub fn primary(&self) -> &RingKey {
        &self.primary
    }

    /// The key being rotated in, if any.
    pub fn pending(&self) -> Option<&RingKey> {
        self.pending.as_ref()
    }

    /// The retiring keys, oldest first.
    pub fn retiring(&self) -> &[RingKey] {
        &self.retiring
    }

    /// The key of `epoch`, if the ring holds it.
    pub fn get(&self, epoch: u64) -> Option<&RingKey> {
        self.keys().find(|k| k.epoch == epoch)
    }

    /// All keys, oldest first: retiring keys, the primary, a pending key.
    pub fn keys(&self) -> impl Iterator<Item = &RingKey> + '_ {
        self.retiring
            .iter()
            .chain(std::iter::once(&self.primary))
            .chain(self.pending.iter())
    }

    /// The nodes that acknowledged `epoch` (empty for an unknown epoch).
    pub fn acks(&self, epoch: u64) -> &BTreeSet<u64> {
        self.acks.get(&epoch).unwrap_or(&NO_ACKS)
    }

    /// The nodes of `live_nodes` that have not installed the pending key
    /// yet (empty when no key is pending).
    pub fn awaiting(&self, live_nodes: &BTreeSet<u64>) -> BTreeSet<u64> {
        match &self.pending {
            Some(p) => live_nodes.difference(self.acks(p.epoch)).copied().collect(),
            None => BTreeSet::new(),
        }
    }

    /// The highest epoch ever issued (dropped pending keys included).
    pub fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    fn len(&self) -> usize {
        self.retiring.len() + 1 + usize::from(self.pending.is_some())
    }

    fn unknown(&self, epoch: u64) -> RingError {
        RingError::UnknownEpoch {
            epoch,
            held: self.keys().map(|k| k.epoch).collect(),
        }
    }
}

/// The serialized form: `{"last_epoch", "keys" (oldest first), "acks"}`.
#[derive(Serialize)]
struct RingReprRef<'a> {
    last_epoch: u64,
    keys: Vec<&'a RingKey>,
    acks: &'a BTreeMap<u64, BTreeSet<u64>>,
}

#[derive(Deserialize)]
struct RingRepr {
    last_epoch: u64,
    keys: Vec<RingKey>,
    #[serde(default)]
    acks: BTreeMap<u64, BTreeSet<u64>>,
}

impl Serialize for KeyRing {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RingReprRef {
            last_epoch: self.last_epoch,
            keys: self.keys().collect(),
            acks: &self.acks,
        }
        .serialize(serializer)
    }
}

fn invalid(reason: impl Into<String>) -> RingError {
    RingError::Invalid {
        reason: reason.into(),
    }
}

impl TryFrom<RingRepr> for KeyRing {
    type Error = RingError;

    fn try_from(repr: RingRepr) -> Result<Self, RingError> {
        let n = repr.keys.len();
        if n == 0 || n > MAX_RING_KEYS {
            return Err(invalid(format!(
                "it holds {n} keys; a ring holds 1 to {MAX_RING_KEYS}"
            )));
        }
        let mut prev = 0u64;
        for key in &repr.keys {
            if key.epoch <= prev {
                return Err(invalid(format!(
                    "epoch {} follows epoch {prev}; epochs start at 1 and strictly increase",
                    key.epoch
                )));
            }
            prev = key.epoch;
        }
        if repr.last_epoch < prev {
            return Err(invalid(format!(
                "last issued epoch {} is below key epoch {prev}",
                repr.last_epoch
            )));
        }
        let mut retiring = Vec::new();
        let mut primary = None;
        let mut pending = None;
        for key in repr.keys {
            match (key.state, &primary, &pending) {
                (KeyState::Retiring, None, _) => retiring.push(key),
                (KeyState::Primary, None, _) => primary = Some(key),
                (KeyState::Pending, Some(_), None) => pending = Some(key),
                (state, _, _) => {
                    return Err(invalid(format!(
                        "key epoch {} is {state} out of order; a ring holds retiring keys, \
                         then one primary, then at most one pending key",
                        key.epoch
                    )))
                }
            }
        }
        let primary = primary.ok_or_else(|| invalid("it has no primary key"))?;
        let mut ring = KeyRing {
            retiring,
            primary,
            pending,
            acks: BTreeMap::new(),
            last_epoch: repr.last_epoch,
        };
        for (epoch, nodes) in repr.acks {
            if ring.get(epoch).is_none() {
                return Err(invalid(format!(
                    "acknowledgements for epoch {epoch}, which it does not hold"
                )));
            }
            if !nodes.is_empty() {
                ring.acks.insert(epoch, nodes);
            }
        }
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: u8) -> Secret32 {
        let mut bytes = [0u8; 32];
        for (i, x) in bytes.iter_mut().enumerate() {
            *x = b.wrapping_mul(31).wrapping_add(i as u8);
        }
        Secret32::new(bytes)
    }

    fn set(nodes: &[u64]) -> BTreeSet<u64> {
        nodes.iter().copied().collect()
    }

    fn epochs(ring: &KeyRing) -> Vec<(u64, KeyState)> {
        ring.keys().map(|k| (k.epoch, k.state)).collect()
    }

    /// Seeds and runs `rotations` complete rotations (no retire).
    fn rotated(rotations: u64) -> KeyRing {
        let mut ring = KeyRing::seed(s(1), 100);
        for i in 0..rotations {
            let e = ring
                .begin_rotation(s(i as u8 + 2), 200 + i, RotationReason::Scheduled)
                .expect("begin");
            assert_eq!(ring.try_promote(&set(&[]), 300 + i), Some(e));
        }
        ring
    }

    #[test]
    fn seed_is_a_single_primary_at_epoch_1() {
        let ring = KeyRing::seed(s(1), 100);
        assert_eq!(epochs(&ring), vec![(1, KeyState::Primary)]);
        assert_eq!(ring.primary().created_at, 100);
        assert_eq!(ring.primary().promoted_at, Some(100));
        assert!(ring.primary().secret.ct_eq(&s(1)));
        assert!(ring.pending().is_none());
        assert!(ring.retiring().is_empty());
        assert!(ring.acks(1).is_empty());
        assert_eq!(ring.last_epoch(), 1);
    }

    #[test]
    fn begin_rotation_adds_a_pending_key_with_the_next_epoch() {
        let mut ring = KeyRing::seed(s(1), 100);
        assert_eq!(
            ring.begin_rotation(s(2), 150, RotationReason::Manual),
            Ok(2)
        );
        assert_eq!(
            epochs(&ring),
            vec![(1, KeyState::Primary), (2, KeyState::Pending)]
        );
        let p = ring.pending().expect("pending");
        assert_eq!((p.created_at, p.promoted_at), (150, None));
        assert!(p.secret.ct_eq(&s(2)));
        assert_eq!(ring.primary().epoch, 1);
    }

    #[test]
    fn second_rotation_is_refused_while_one_is_pending() {
        let mut ring = KeyRing::seed(s(1), 100);
        ring.begin_rotation(s(2), 150, RotationReason::Scheduled)
            .expect("begin");
        ring.acknowledge(7, 2).expect("ack");
        ring.acknowledge(8, 2).expect("ack");
        let before = ring.clone();
        for reason in [RotationReason::Scheduled, RotationReason::Manual] {
            let err = ring.begin_rotation(s(3), 160, reason).expect_err("refused");
            assert_eq!(err, RingError::RotationInProgress { epoch: 2, acked: 2 });
            let msg = err.to_string();
            assert!(
                msg.contains("epoch 2") && msg.contains("2 node(s)"),
                "{msg}"
            );
        }
        assert_eq!(ring, before);
    }

    #[test]
    fn node_removed_supersedes_the_pending_key_with_a_fresh_epoch() {
        let mut ring = KeyRing::seed(s(1), 100);
        ring.begin_rotation(s(2), 150, RotationReason::Scheduled)
            .expect("begin");
        ring.acknowledge(5, 2).expect("ack");
        ring.acknowledge(6, 2).expect("ack");
        ring.acknowledge(5, 1).expect("ack");
        ring.acknowledge(6, 1).expect("ack");
        let e = ring
            .begin_rotation(s(3), 160, RotationReason::NodeRemoved(5))
            .expect("supersede");
        // Epoch 2 is never reused: node 5 may hold that key.
        assert_eq!(e, 3);
        assert_eq!(
            epochs(&ring),
            vec![(1, KeyState::Primary), (3, KeyState::Pending)]
        );
        assert!(ring.get(2).is_none());
        assert!(ring.acks(2).is_empty());
        assert!(ring.acks(3).is_empty());
        assert_eq!(ring.acks(1), &set(&[6]), "the removed node is forgotten");
        assert!(ring.pending().expect("pending").secret.ct_eq(&s(3)));
        assert_eq!(ring.last_epoch(), 3);
    }

    #[test]
    fn node_removed_without_pending_starts_a_rotation() {
        let mut ring = KeyRing::seed(s(1), 100);
        assert_eq!(
            ring.begin_rotation(s(2), 150, RotationReason::NodeRemoved(9)),
            Ok(2)
        );
        assert_eq!(ring.pending().map(|k| k.epoch), Some(2));
    }

    #[test]
    fn a_full_ring_drops_its_oldest_retiring_key_never_the_primary() {
        let mut ring = rotated(2);
        assert_eq!(
            epochs(&ring),
            vec![
                (1, KeyState::Retiring),
                (2, KeyState::Retiring),
                (3, KeyState::Primary)
            ]
        );
        ring.acknowledge(4, 1).expect("ack");
        ring.begin_rotation(s(9), 400, RotationReason::Scheduled)
            .expect("begin");
        assert_eq!(
            epochs(&ring),
            vec![
                (2, KeyState::Retiring),
                (3, KeyState::Primary),
                (4, KeyState::Pending)
            ]
        );
        assert!(ring.acks(1).is_empty());
        // A removal while full with a pending key: the pending key goes,
        // the retiring key stays.
        ring.begin_rotation(s(10), 410, RotationReason::NodeRemoved(1))
            .expect("supersede");
        assert_eq!(
            epochs(&ring),
            vec![
                (2, KeyState::Retiring),
                (3, KeyState::Primary),
                (5, KeyState::Pending)
            ]
        );
    }

    #[test]
    fn acknowledge_is_idempotent_and_rejects_unknown_epochs() {
        let mut ring = KeyRing::seed(s(1), 100);
        ring.begin_rotation(s(2), 150, RotationReason::Scheduled)
            .expect("begin");
        assert_eq!(ring.acknowledge(3, 2), Ok(true));
        assert_eq!(ring.acknowledge(3, 2), Ok(false));
        assert_eq!(ring.acks(2), &set(&[3]));
        assert_eq!(ring.acknowledge(3, 1), Ok(true), "any held epoch");
        let err = ring.acknowledge(3, 7).expect_err("unknown");
        assert_eq!(
            err,
            RingError::UnknownEpoch {
                epoch: 7,
                held: vec![1, 2]
            }
        );
        assert!(err.to_string().contains("epoch 7"), "{err}");
        assert!(err.to_string().contains("[1, 2]"), "{err}");
        assert_eq!(ring.acknowledge(3, 0).map_err(|_| ()), Err(()));
    }

    #[test]
    fn promotion_waits_for_every_live_node() {
        let mut ring = KeyRing::seed(s(1), 100);
        ring.begin_rotation(s(2), 150, RotationReason::Scheduled)
            .expect("begin");
        let live = set(&[1, 2, 3]);
        ring.acknowledge(1, 2).expect("ack");
        ring.acknowledge(2, 2).expect("ack");
        assert_eq!(ring.awaiting(&live), set(&[3]));
        assert_eq!(ring.try_promote(&live, 200), None);
        assert_eq!(ring.pending().map(|k| k.epoch), Some(2));
        // Node 3 went down: it no longer blocks.
        assert_eq!(ring.try_promote(&set(&[1, 2]), 210), Some(2));
        assert_eq!(
            epochs(&ring),
            vec![(1, KeyState::Retiring), (2, KeyState::Primary)]
        );
        assert_eq!(ring.primary().promoted_at, Some(210));
        assert_eq!(ring.primary().created_at, 150);
        assert!(ring.awaiting(&live).is_empty());
        assert_eq!(ring.try_promote(&live, 220), None, "nothing pending");
    }

    #[test]
    fn an_empty_live_set_promotes_at_once() {
        let mut ring = KeyRing::seed(s(1), 100);
        ring.begin_rotation(s(2), 150, RotationReason::Scheduled)
            .expect("begin");
        assert_eq!(ring.try_promote(&BTreeSet::new(), 151), Some(2));
    }

    #[test]
    fn acks_from_extra_nodes_do_not_matter() {
        let mut ring = KeyRing::seed(s(1), 100);
        ring.begin_rotation(s(2), 150, RotationReason::Scheduled)
            .expect("begin");
        for n in [1, 2, 99] {
            ring.acknowledge(n, 2).expect("ack");
        }
        assert_eq!(ring.try_promote(&set(&[1, 2]), 160), Some(2));
    }

    #[test]
    fn retire_drops_oldest_retiring_keys_only() {
        let mut ring = rotated(2);
        ring.acknowledge(4, 1).expect("ack");
        assert_eq!(ring.retire(3), Vec::<u64>::new());
        assert_eq!(ring.retire(2), vec![1]);
        assert!(ring.acks(1).is_empty());
        assert_eq!(
            epochs(&ring),
            vec![(2, KeyState::Retiring), (3, KeyState::Primary)]
        );
        ring.begin_rotation(s(8), 500, RotationReason::Manual)
            .expect("begin");
        // keep 0 counts as 1; primary and pending stay.
        assert_eq!(ring.retire(0), vec![2]);
        assert_eq!(
            epochs(&ring),
            vec![(3, KeyState::Primary), (4, KeyState::Pending)]
        );
        assert_eq!(ring.retire(1), Vec::<u64>::new());
        assert_eq!(ring.keys().count(), 2);
    }

    #[test]
    fn due_for_rotation_after_the_interval_unless_pending() {
        let mut ring = KeyRing::seed(s(1), 1_000);
        assert!(!ring.due_for_rotation(1_000, 3_600));
        assert!(!ring.due_for_rotation(4_599, 3_600));
        assert!(ring.due_for_rotation(4_600, 3_600));
        assert!(!ring.due_for_rotation(10, 3_600), "clock went backwards");
        assert!(ring.due_for_rotation(10, 0));
        ring.begin_rotation(s(2), 4_600, RotationReason::Scheduled)
            .expect("begin");
        assert!(!ring.due_for_rotation(100_000, 3_600), "rotation pending");
        ring.try_promote(&BTreeSet::new(), 4_700);
        assert!(!ring.due_for_rotation(8_199, 3_600));
        assert!(ring.due_for_rotation(8_200, 3_600), "age from created_at");
    }

    #[test]
    fn forget_node_removes_its_acks_everywhere() {
        let mut ring = KeyRing::seed(s(1), 100);
        ring.begin_rotation(s(2), 150, RotationReason::Scheduled)
            .expect("begin");
        for (n, e) in [(1, 1), (1, 2), (2, 2)] {
            ring.acknowledge(n, e).expect("ack");
        }
        assert!(ring.forget_node(1));
        assert!(!ring.forget_node(1));
        assert!(ring.acks(1).is_empty());
        assert_eq!(ring.acks(2), &set(&[2]));
        // No empty sets are left behind (equality with a fresh history).
        let mut other = KeyRing::seed(s(1), 100);
        other
            .begin_rotation(s(2), 150, RotationReason::Scheduled)
            .expect("begin");
        other.acknowledge(2, 2).expect("ack");
        assert_eq!(ring, other);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut ring = rotated(1);
        ring.begin_rotation(s(50), 1, RotationReason::Manual)
            .expect("begin");
        let dbg = format!("{ring:?} {ring:#?}");
        for k in ring.keys() {
            assert!(!dbg.contains(k.secret.to_hex().as_str()), "{dbg}");
            assert!(!dbg.contains(&format!("{:?}", k.secret.expose())));
        }
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn serde_round_trip_keeps_everything() {
        let mut ring = rotated(1);
        ring.begin_rotation(s(9), 500, RotationReason::NodeRemoved(3))
            .expect("begin");
        ring.acknowledge(4, 3).expect("ack");
        ring.acknowledge(5, 2).expect("ack");
        let json = serde_json::to_string(&ring).expect("serialize");
        assert!(json.contains(s(9).to_hex().as_str()), "{json}");
        assert!(json.contains("\"state\":\"pending\""), "{json}");
        let back: KeyRing = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, ring);
        assert_eq!(back.last_epoch(), 3);
    }

    #[test]
    fn a_full_rotation_cycle() {
        let mut ring = KeyRing::seed(s(1), 0);
        let live = set(&[1, 2]);
        for n in &live {
            ring.acknowledge(*n, 1).expect("ack");
        }
        assert!(ring.due_for_rotation(43_200, 43_200));
        let e = ring
            .begin_rotation(s(2), 43_200, RotationReason::Scheduled)
            .expect("begin");
        assert_eq!(ring.try_promote(&live, 43_201), None);
        for n in &live {
            ring.acknowledge(*n, e).expect("ack");
        }
        assert_eq!(ring.try_promote(&live, 43_202), Some(e));
        assert_eq!(ring.retire(1), vec![1]);
        assert_eq!(epochs(&ring), vec![(2, KeyState::Primary)]);
        assert_eq!(ring.acks(2), &live);
    }
}
