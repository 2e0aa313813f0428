//! Secret byte containers.
//!
//! Why: key material (join-token secrets, the key-encryption key, private
//! keys) must not linger in freed memory, must not end up in logs by accident
//! and must not be compared with an early-exit `==` that leaks, through
//! timing, how many leading bytes an attacker guessed right. The types here
//! therefore
//!
//! * wipe their buffer when dropped ([`Zeroize`] + [`ZeroizeOnDrop`]),
//! * print only their length in `Debug` and have no `Display`,
//! * compare in constant time ([`SecretBytes::ct_eq`], [`Secret32::ct_eq`]),
//! * make every read explicit through `expose()`, which is easy to grep for.
//!
//! With serde they are a lowercase hex string; deserialization decodes
//! straight into the zeroizing buffer and wipes any owned input string it is
//! handed. (Copies the serde data format itself makes cannot be reached from
//! here: keep secrets in files written with
//! [`write_private_file`](crate::seal::write_private_file).)

use std::fmt;

use rand::{CryptoRng, RngCore};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A variable-length secret that is wiped from memory when dropped.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`; the buffer is wiped when the value drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copies `bytes` into a new secret (the caller still owns and should
    /// wipe its own copy).
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// `len` random bytes from `rng`.
    pub fn random<R: RngCore + CryptoRng>(len: usize, rng: &mut R) -> Self {
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        Self(v)
    }

    /// The secret bytes. Every read of the secret goes through here.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison (the lengths are not hidden).
    pub fn ct_eq(&self, other: &SecretBytes) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }

    /// Lowercase hex of the secret in a buffer that is wiped when dropped.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0))
    }

    /// Decodes a hex string (either case) into a secret.
    pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
        if s.len() % 2 != 0 {
            return Err(hex::FromHexError::OddLength);
        }
        let mut out = SecretBytes(vec![0u8; s.len() / 2]);
        hex::decode_to_slice(s, &mut out.0)?;
        Ok(out)
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl PartialEq for SecretBytes {
    /// Constant time, see [`SecretBytes::ct_eq`].
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted, {} bytes>)", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SecretBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a hex string of even length")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretBytes, E> {
                SecretBytes::from_hex(v).map_err(|e| E::custom(format!("invalid secret hex: {e}")))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<SecretBytes, E> {
                let v = Zeroizing::new(v);
                self.visit_str(&v)
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A 32-byte secret (symmetric key) that is wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret32([u8; 32]);

impl Secret32 {
    /// Wraps `bytes` (the array is `Copy`: wipe the caller's copy if it
    /// matters).
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// 32 random bytes from `rng`.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut s = Self([0u8; 32]);
        rng.fill_bytes(&mut s.0);
        s
    }

    /// Copies a 32-byte slice; `None` when the length is not 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        let mut s = Self([0u8; 32]);
        s.0.copy_from_slice(bytes);
        Some(s)
    }

    /// The secret bytes. Every read of the secret goes through here.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Secret32) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lowercase hex of the secret in a buffer that is wiped when dropped.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }

    /// Decodes exactly 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
        let mut out = Self([0u8; 32]);
        hex::decode_to_slice(s, &mut out.0)?;
        Ok(out)
    }
}

impl PartialEq for Secret32 {
    /// Constant time, see [`Secret32::ct_eq`].
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for Secret32 {}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret32(<redacted, 32 bytes>)")
    }
}

impl Serialize for Secret32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Secret32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Secret32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string of 64 hex characters")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret32, E> {
                Secret32::from_hex(v).map_err(|e| {
                    E::custom(format!(
                        "invalid 32-byte secret (expected 64 hex characters): {e}"
                    ))
                })
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Secret32, E> {
                let v = Zeroizing::new(v);
                self.visit_str(&v)
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::new(b"hunter2hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "SecretBytes(<redacted, 14 bytes>)");
        let k = Secret32::new([0xab; 32]);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("ab"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn ct_eq_semantics() {
        let a = SecretBytes::from_slice(b"abc");
        assert!(a.ct_eq(&SecretBytes::from_slice(b"abc")));
        assert!(!a.ct_eq(&SecretBytes::from_slice(b"abd")));
        assert!(!a.ct_eq(&SecretBytes::from_slice(b"ab")));
        assert!(!a.ct_eq(&SecretBytes::default()));
        assert_eq!(a, a.clone());

        let x = Secret32::new([1; 32]);
        let mut yb = [1; 32];
        yb[31] = 2;
        assert!(x.ct_eq(&Secret32::new([1; 32])));
        assert!(!x.ct_eq(&Secret32::new(yb)));
    }

    #[test]
    fn serde_hex_round_trip() {
        let s = SecretBytes::new(vec![0, 1, 0xfe, 0xff]);
        let j = serde_json::to_string(&s).expect("serialize");
        assert_eq!(j, "\"0001feff\"");
        let back: SecretBytes = serde_json::from_str(&j).expect("deserialize");
        assert!(back.ct_eq(&s));

        let k = Secret32::random(&mut OsRng);
        let j = serde_json::to_string(&k).expect("serialize");
        assert_eq!(j.len(), 66);
        let back: Secret32 = serde_json::from_str(&j).expect("deserialize");
        assert!(back.ct_eq(&k));

        // Owned-string path (serde_json::Value hands over a String).
        let v = serde_json::Value::String("00ff".into());
        let back: SecretBytes = serde_json::from_value(v).expect("from value");
        assert_eq!(back.expose(), &[0, 0xff]);
    }

    #[test]
    fn serde_rejects_bad_hex() {
        assert!(serde_json::from_str::<SecretBytes>("\"abc\"").is_err());
        assert!(serde_json::from_str::<SecretBytes>("\"zz\"").is_err());
        assert!(serde_json::from_str::<SecretBytes>("12").is_err());
        assert!(serde_json::from_str::<Secret32>("\"00\"").is_err());
        let long = format!("\"{}\"", "0".repeat(66));
        assert!(serde_json::from_str::<Secret32>(&long).is_err());
    }

    #[test]
    fn zeroize_wipes() {
        let mut s = SecretBytes::from_slice(b"secret");
        s.zeroize();
        assert!(s.expose().iter().all(|b| *b == 0));
        let mut k = Secret32::new([7; 32]);
        k.zeroize();
        assert_eq!(k.expose(), &[0; 32]);
    }

    #[test]
    fn random_and_slices() {
        let a = SecretBytes::random(16, &mut OsRng);
        let b = SecretBytes::random(16, &mut OsRng);
        assert_eq!(a.len(), 16);
        assert!(!a.ct_eq(&b));
        assert!(Secret32::from_slice(&[0; 31]).is_none());
        assert!(Secret32::from_slice(&[0; 32]).is_some());
        assert!(SecretBytes::default().is_empty());
    }

    fn _assert_zeroize_on_drop<T: ZeroizeOnDrop>() {}
    #[test]
    fn types_zeroize_on_drop() {
        _assert_zeroize_on_drop::<SecretBytes>();
        _assert_zeroize_on_drop::<Secret32>();
    }
}
