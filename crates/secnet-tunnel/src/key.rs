//! The node's WireGuard static key pair.
//!
//! [`StaticKey`] is the private half. It wraps boringtun's re-export of x25519-dalek 2.x's
//! `StaticSecret`, which zeroizes itself when dropped. The wrapper adds no `Clone` (the only
//! copies are the ones boringtun's `Tunn::new` needs, one per peer, each zeroized on drop) and
//! a `Debug` that shows the public half only. Persistence is the daemon's job: it seals
//! [`StaticKey::to_secret_bytes`] at rest and gives them back to [`StaticKey::from_bytes`].
//!
//! [`PublicKey`] is the public half as 32 bytes, shown and parsed as standard base64 with
//! padding, the way `wg` prints keys.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use boringtun::x25519;
use rand::RngCore as _;
use zeroize::{Zeroize as _, Zeroizing};

/// A node's private WireGuard key (X25519). Never printed; zeroized on drop.
pub struct StaticKey {
    secret: x25519::StaticSecret,
    public: PublicKey,
}

impl StaticKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self::from_bytes(*bytes)
    }

    /// The key whose secret scalar is `bytes` (clamping happens inside X25519, as in `wg`).
    /// The caller's array is a copy; zeroize it (or pass a `Zeroizing`'s contents) when done.
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        let secret = x25519::StaticSecret::from(bytes);
        bytes.zeroize();
        let public = PublicKey(x25519::PublicKey::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// The secret bytes, for sealing at rest. The returned buffer zeroizes itself on drop.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public half, derived once at construction.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The secret, borrowed (for `parse_handshake_anon`).
    pub(crate) fn secret(&self) -> &x25519::StaticSecret {
        &self.secret
    }

    /// A copy of the secret for one boringtun `Tunn`.
    /// boringtun takes the secret by value; the copy zeroizes itself when that `Tunn` drops.
    pub(crate) fn secret_copy(&self) -> x25519::StaticSecret {
        self.secret.clone()
    }
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKey")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A WireGuard public key: 32 bytes, displayed as base64 like `wg show`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for PublicKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl From<PublicKey> for [u8; 32] {
    fn from(key: PublicKey) -> Self {
        key.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// Why a string is not a WireGuard public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseKeyError {
    /// The text is not standard (padded) base64.
    #[error("key is not valid base64")]
    Base64,
    /// The text decodes to something other than 32 bytes.
    #[error("key decodes to {0} bytes, expected 32")]
    Length(usize),
}

impl FromStr for PublicKey {
    type Err = ParseKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = STANDARD
            .decode(s.trim())
            .map_err(|_| ParseKeyError::Base64)?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ParseKeyError::Length(bytes.len()))?;
        Ok(Self(arr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// RFC 7748 §6.1: Alice's key pair.
    #[test]
    fn public_key_matches_rfc7748_vector() {
        let key = StaticKey::from_bytes(unhex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        assert_eq!(
            key.public().0,
            unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
    }

    #[test]
    fn public_key_matches_boringtun_derivation() {
        for _ in 0..16 {
            let key = StaticKey::generate();
            let theirs = x25519::PublicKey::from(&key.secret_copy());
            assert_eq!(key.public().0, theirs.to_bytes());
        }
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            StaticKey::generate().public(),
            StaticKey::generate().public()
        );
    }

    #[test]
    fn secret_bytes_round_trip() {
        let key = StaticKey::generate();
        let again = StaticKey::from_bytes(*key.to_secret_bytes());
        assert_eq!(key.public(), again.public());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = StaticKey::from_bytes([0x41; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"));
        assert!(shown.contains(&key.public().to_string()));
        let secret_b64 = STANDARD.encode(*key.to_secret_bytes());
        assert!(!shown.contains(&secret_b64));
        assert!(!shown.contains("65, 65"));
    }

    #[test]
    fn display_is_wg_style_base64() {
        let key = PublicKey([0u8; 32]);
        assert_eq!(
            key.to_string(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
        assert_eq!(key.to_string().len(), 44);
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert_eq!(
            "not base64!".parse::<PublicKey>(),
            Err(ParseKeyError::Base64)
        );
        assert_eq!("AAAA".parse::<PublicKey>(), Err(ParseKeyError::Length(3)));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in any::<[u8; 32]>()) {
            let key = PublicKey(bytes);
            prop_assert_eq!(key.to_string().parse::<PublicKey>(), Ok(key));
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = s.parse::<PublicKey>();
        }
    }
}
