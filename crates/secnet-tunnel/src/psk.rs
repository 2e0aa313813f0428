//! The cluster's pre-shared keys as the tunnel sees them: a small ring of keys with epochs,
//! one of which is primary (used for the handshakes this endpoint starts).
//!
//! The ring lives in the replicated state (`secnet-keys`); the daemon hands it over with
//! [`Tunnel::set_preshared_keys`](crate::Tunnel::set_preshared_keys). Each key's epoch
//! travels in every handshake initiation as a 4-bit tag (see [`crate::dispatch`]), so the
//! responder knows which key the initiator mixed in. That is why the ring must never hold two
//! keys whose epochs agree in their low 4 bits: the cluster ring holds at most three keys
//! with consecutive epochs, so this never happens there, and [`Ring::new`] enforces it.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::dispatch::epoch_tag;
use crate::TunnelError;

/// Most keys a ring may hold: the cluster ring's three, plus one of slack for a node that
/// installs the next key a moment before it drops the oldest.
pub const MAX_PRESHARED_KEYS: usize = 4;

/// One pre-shared key of the cluster ring. Zeroized on drop; `Debug` shows the epoch only.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey {
    /// The key's epoch in the ring (its position in time; higher is newer).
    pub epoch: u64,
    key: [u8; 32],
}

impl PresharedKey {
    /// The key `key` of epoch `epoch`. The caller's array is a copy; zeroize it when done.
    pub fn new(epoch: u64, key: [u8; 32]) -> Self {
        Self { epoch, key }
    }

    /// The secret bytes, for one boringtun `Tunn` (which takes them by value).
    pub(crate) fn secret(&self) -> [u8; 32] {
        self.key
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresharedKey")
            .field("epoch", &self.epoch)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The keys this endpoint can use, and the primary one.
///
/// Before the daemon installs a ring the endpoint runs without a PSK, as epoch 0: that keeps
/// a bare endpoint (tests, a node before it has the ring) usable.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    keys: Vec<PresharedKey>,
    primary: u64,
}

impl Ring {
    /// No pre-shared key at all: epoch 0, `psk = None`.
    pub(crate) fn none() -> Self {
        Self {
            keys: Vec::new(),
            primary: 0,
        }
    }

    /// Checks and builds a ring: 1 to [`MAX_PRESHARED_KEYS`] keys, epochs distinct in their
    /// low 4 bits (the tag), `primary` one of them.
    pub(crate) fn new(keys: Vec<PresharedKey>, primary: u64) -> Result<Self, TunnelError> {
        let bad = |why: String| Err(TunnelError::InvalidKeyRing(why));
        if keys.is_empty() || keys.len() > MAX_PRESHARED_KEYS {
            return bad(format!(
                "{} keys; a ring holds 1 to {MAX_PRESHARED_KEYS}",
                keys.len()
            ));
        }
        for (i, key) in keys.iter().enumerate() {
            if let Some(other) = keys[..i]
                .iter()
                .find(|k| epoch_tag(k.epoch) == epoch_tag(key.epoch))
            {
                return bad(format!(
                    "epochs {} and {} share the index tag {} (duplicate, or 16 apart)",
                    other.epoch,
                    key.epoch,
                    epoch_tag(key.epoch)
                ));
            }
        }
        if !keys.iter().any(|k| k.epoch == primary) {
            return bad(format!("primary epoch {primary} is not in the ring"));
        }
        Ok(Self { keys, primary })
    }

    pub(crate) fn primary(&self) -> u64 {
        self.primary
    }

    /// The PSK of `epoch`: `None` if the ring has no such epoch, `Some(None)` for the
    /// PSK-less epoch 0 of a bare endpoint.
    pub(crate) fn psk(&self, epoch: u64) -> Option<Option<[u8; 32]>> {
        if self.keys.is_empty() {
            return (epoch == 0).then_some(None);
        }
        self.keys
            .iter()
            .find(|k| k.epoch == epoch)
            .map(|k| Some(k.secret()))
    }

    /// The epoch whose tag is `tag`, if the ring has one (at most one, see [`Ring::new`]).
    pub(crate) fn epoch_by_tag(&self, tag: u8) -> Option<u64> {
        if self.keys.is_empty() {
            return (tag == epoch_tag(0)).then_some(0);
        }
        self.keys
            .iter()
            .map(|k| k.epoch)
            .find(|&e| epoch_tag(e) == tag)
    }

    /// Whether `epoch` means the same key in both rings (so its sessions may stay).
    pub(crate) fn same_key(&self, other: &Ring, epoch: u64) -> bool {
        match (self.psk(epoch), other.psk(epoch)) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(epoch: u64) -> PresharedKey {
        PresharedKey::new(epoch, [epoch as u8; 32])
    }

    #[test]
    fn debug_shows_the_epoch_only() {
        let shown = format!("{:?}", PresharedKey::new(7, [0x41; 32]));
        assert!(shown.contains("epoch: 7"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.contains("65"), "{shown}");
    }

    #[test]
    fn ring_validation() {
        assert!(Ring::new(vec![key(1), key(2), key(3)], 2).is_ok());
        assert!(Ring::new(vec![key(15), key(16), key(17)], 17).is_ok());
        for (keys, primary) in [
            (vec![], 0),
            (vec![key(1)], 2),
            (vec![key(1), key(1)], 1),
            (vec![key(1), key(17)], 1),
            (vec![key(1), key(2), key(3), key(4), key(5)], 1),
        ] {
            assert!(
                matches!(
                    Ring::new(keys, primary),
                    Err(TunnelError::InvalidKeyRing(_))
                ),
                "primary {primary}"
            );
        }
    }

    #[test]
    fn lookups() {
        let bare = Ring::none();
        assert_eq!(bare.psk(0), Some(None));
        assert_eq!(bare.psk(1), None);
        assert_eq!(bare.epoch_by_tag(0), Some(0));
        assert_eq!(bare.epoch_by_tag(1), None);

        let ring = Ring::new(vec![key(16), key(17)], 17).unwrap();
        assert_eq!(ring.primary(), 17);
        assert_eq!(ring.psk(17), Some(Some([17; 32])));
        assert_eq!(ring.psk(0), None);
        assert_eq!(ring.epoch_by_tag(0), Some(16));
        assert_eq!(ring.epoch_by_tag(1), Some(17));
        assert_eq!(ring.epoch_by_tag(2), None);

        let changed = Ring::new(vec![PresharedKey::new(16, [9; 32]), key(17)], 16).unwrap();
        assert!(ring.same_key(&changed, 17));
        assert!(!ring.same_key(&changed, 16), "same epoch, other bytes");
        assert!(!ring.same_key(&bare, 0));
        assert!(bare.same_key(&Ring::none(), 0));
    }
}
