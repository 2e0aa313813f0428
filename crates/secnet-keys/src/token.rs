//! Join tokens.
//!
//! A node that joins a cluster has no trust anchor yet: it does not know the
//! cluster CA, so it cannot authenticate the manager it dials, and the manager
//! cannot authenticate it either. Like Docker Swarm's `SWMTKN-1-…` tokens, a
//! secnet join token solves both directions with one string that the operator
//! copies out of band:
//!
//! ```text
//! SNTKN-1-<sha256 of the cluster CA certificate, 64 hex>-<secret, 32 hex>
//! ```
//!
//! * the **CA digest** lets the joiner pin the CA that the manager presents
//!   during the TLS handshake (see
//!   `secnet_pki::join_client_config`), so a
//!   man-in-the-middle cannot substitute its own CA;
//! * the **secret** (16 random bytes) proves to the manager that the joiner
//!   was invited, and with which role: the worker token and the manager token
//!   differ only in the secret, as in Swarm. The manager compares secrets in
//!   constant time ([`JoinToken::secret_matches`]).
//!
//! Because the string reveals the secret, it is produced only by the
//! explicitly named [`JoinToken::to_string_secret`]; there is no `Display`,
//! and `Debug` redacts the secret.

use std::fmt;
use std::str::FromStr;

use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::secret::SecretBytes;

/// Every token starts with this.
pub const TOKEN_PREFIX: &str = "SNTKN-";
/// The only token format version this build reads and writes.
pub const TOKEN_VERSION: &str = "1";
/// Length of the secret part in bytes (32 hex characters).
pub const TOKEN_SECRET_LEN: usize = 16;

const FORMAT_HINT: &str = "SNTKN-1-<64 hex CA digest>-<32 hex secret>";

/// Why a string is not a valid join token. No variant ever contains the
/// token's secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Empty or all-whitespace input.
    #[error("the join token is empty; expected {FORMAT_HINT}")]
    Empty,
    /// Does not start with `SNTKN-`.
    #[error(
        "not a secnet join token: it must start with `SNTKN-` (a token looks like {FORMAT_HINT}){hint}"
    )]
    WrongPrefix {
        /// Extra advice, e.g. when a Docker Swarm token was pasted.
        hint: &'static str,
    },
    /// The version field is not `1`.
    #[error(
        "unsupported join token version {found}: this build accepts only version 1 ({FORMAT_HINT})"
    )]
    UnsupportedVersion {
        /// The version found, quoted, or a description when it is not a short
        /// alphanumeric word (so that a mangled secret is never echoed).
        found: String,
    },
    /// Not exactly version, digest and secret after the prefix.
    #[error(
        "malformed join token: found {found} dash-separated field(s) after `SNTKN-`, expected 3 (version, CA digest, secret) as in {FORMAT_HINT}"
    )]
    FieldCount {
        /// The number of fields found.
        found: usize,
    },
    /// The CA digest is not 64 characters long.
    #[error(
        "the CA digest in the join token has {found} characters, expected 64 lowercase hex characters (SHA-256 of the cluster CA certificate)"
    )]
    DigestLength {
        /// The number of characters found.
        found: usize,
    },
    /// The CA digest contains something other than `0-9a-f`.
    #[error("the CA digest in the join token is not lowercase hex: only the characters 0-9 and a-f are accepted")]
    DigestNotHex,
    /// The secret is not 32 characters long.
    #[error(
        "the secret in the join token has {found} characters, expected 32 lowercase hex characters"
    )]
    SecretLength {
        /// The number of characters found.
        found: usize,
    },
    /// The secret contains something other than `0-9a-f`.
    #[error("the secret in the join token is not lowercase hex: only the characters 0-9 and a-f are accepted")]
    SecretNotHex,
}

/// A parsed join token. See the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the cluster CA certificate (DER).
    pub ca_digest: [u8; 32],
    /// The random secret ([`TOKEN_SECRET_LEN`] bytes).
    pub secret: SecretBytes,
}

impl JoinToken {
    /// A new token for the CA with digest `ca_digest`, with a fresh random
    /// secret.
    pub fn generate<R: RngCore + CryptoRng>(ca_digest: [u8; 32], rng: &mut R) -> Self {
        Self {
            ca_digest,
            secret: SecretBytes::random(TOKEN_SECRET_LEN, rng),
        }
    }

    /// The token as the operator copies it. This reveals the secret, hence
    /// the explicit name; the buffer is wiped when dropped.
    pub fn to_string_secret(&self) -> Zeroizing<String> {
        let secret_hex = self.secret.to_hex();
        let mut s = Zeroizing::new(String::with_capacity(6 + 2 + 64 + 1 + 32));
        s.push_str(TOKEN_PREFIX);
        s.push_str(TOKEN_VERSION);
        s.push('-');
        s.push_str(&hex::encode(self.ca_digest));
        s.push('-');
        s.push_str(&secret_hex);
        s
    }

    /// Lowercase hex of the CA digest (not secret).
    pub fn ca_digest_hex(&self) -> String {
        hex::encode(self.ca_digest)
    }

    /// Whether this token's secret equals `expected`, in constant time.
    pub fn secret_matches(&self, expected: &SecretBytes) -> bool {
        self.secret.ct_eq(expected)
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &hex::encode(self.ca_digest))
            .field("secret", &self.secret)
            .finish()
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FromStr for JoinToken {
    type Err = TokenError;

    /// Parses `SNTKN-1-<64 hex>-<32 hex>`. Surrounding whitespace (a trailing
    /// newline from a file or a paste) is ignored; everything else is strict:
    /// hex must be lowercase, as the token is printed.
    fn from_str(s: &str) -> Result<Self, TokenError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(TokenError::Empty);
        }
        let Some(rest) = s.strip_prefix(TOKEN_PREFIX) else {
            let hint = if s.starts_with("SWMTKN-") {
                "; this looks like a Docker Swarm token"
            } else {
                ""
            };
            return Err(TokenError::WrongPrefix { hint });
        };
        let fields: Vec<&str> = rest.split('-').collect();
        // Check the version first: a future format may have other fields.
        let version = fields.first().copied().unwrap_or_default();
        if version != TOKEN_VERSION {
            let found = if version.is_empty() {
                "(empty)".to_string()
            } else if version.len() <= 8 && version.bytes().all(|b| b.is_ascii_alphanumeric()) {
                format!("`{version}`")
            } else {
                format!("({} characters)", version.chars().count())
            };
            return Err(TokenError::UnsupportedVersion { found });
        }
        let [_, digest, secret] = fields.as_slice() else {
            return Err(TokenError::FieldCount {
                found: fields.len(),
            });
        };
        if digest.len() != 64 || !digest.is_ascii() {
            return Err(TokenError::DigestLength {
                found: digest.chars().count(),
            });
        }
        if !is_lower_hex(digest) {
            return Err(TokenError::DigestNotHex);
        }
        if secret.len() != 2 * TOKEN_SECRET_LEN || !secret.is_ascii() {
            return Err(TokenError::SecretLength {
                found: secret.chars().count(),
            });
        }
        if !is_lower_hex(secret) {
            return Err(TokenError::SecretNotHex);
        }
        let mut ca_digest = [0u8; 32];
        hex::decode_to_slice(digest, &mut ca_digest).map_err(|_| TokenError::DigestNotHex)?;
        let secret = SecretBytes::from_hex(secret).map_err(|_| TokenError::SecretNotHex)?;
        Ok(Self { ca_digest, secret })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    const DIGEST: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn tok(v: &str, d: &str, s: &str) -> String {
        format!("SNTKN-{v}-{d}-{s}")
    }

    #[test]
    fn parse_valid() {
        let t: JoinToken = tok("1", DIGEST, SECRET).parse().expect("valid");
        assert_eq!(t.ca_digest_hex(), DIGEST);
        assert_eq!(hex::encode(t.secret.expose()), SECRET);
        assert_eq!(*t.to_string_secret(), tok("1", DIGEST, SECRET));
        // Surrounding whitespace is tolerated.
        let t2: JoinToken = format!("  {}\n", tok("1", DIGEST, SECRET))
            .parse()
            .expect("trimmed");
        assert_eq!(t, t2);
    }

    #[test]
    fn generate_round_trip_and_format() {
        let t = JoinToken::generate([7; 32], &mut OsRng);
        let s = t.to_string_secret();
        assert_eq!(s.len(), 6 + 2 + 64 + 1 + 32);
        assert!(s.starts_with("SNTKN-1-0707"));
        let back: JoinToken = s.parse().expect("round trip");
        assert_eq!(back, t);
        // Worker and manager tokens share the digest, differ in the secret.
        let other = JoinToken::generate([7; 32], &mut OsRng);
        assert_eq!(other.ca_digest, t.ca_digest);
        assert!(!other.secret_matches(&t.secret));
        assert!(t.secret_matches(&back.secret));
    }

    #[test]
    fn debug_redacts_secret() {
        let t: JoinToken = tok("1", DIGEST, SECRET).parse().expect("valid");
        let d = format!("{t:?}");
        assert!(!d.contains(SECRET), "{d}");
        assert!(d.contains(DIGEST));
        assert!(d.contains("redacted"));
    }

    #[test]
    fn precise_errors() {
        use TokenError::*;
        let e = |s: &str| s.parse::<JoinToken>().expect_err(s);
        assert_eq!(e(""), Empty);
        assert_eq!(e("  \n"), Empty);
        assert_eq!(e("hello"), WrongPrefix { hint: "" });
        let swarm = e(&format!("SWMTKN-1-{DIGEST}-{SECRET}"));
        assert!(swarm.to_string().contains("Docker Swarm"), "{swarm}");
        assert_eq!(
            e(&tok("2", DIGEST, SECRET)),
            UnsupportedVersion {
                found: "`2`".into()
            }
        );
        // A mangled token whose "version" is long must not be echoed.
        let err = e(&format!("SNTKN-{DIGEST}-{SECRET}"));
        assert_eq!(
            err,
            UnsupportedVersion {
                found: "(64 characters)".into()
            }
        );
        assert!(!err.to_string().contains(DIGEST));
        assert_eq!(e("SNTKN-1"), FieldCount { found: 1 });
        assert_eq!(e(&format!("SNTKN-1-{DIGEST}")), FieldCount { found: 2 });
        assert_eq!(
            e(&format!("SNTKN-1-{DIGEST}-{SECRET}-x")),
            FieldCount { found: 4 }
        );
        assert_eq!(
            e(&tok("1", &DIGEST[1..], SECRET)),
            DigestLength { found: 63 }
        );
        assert_eq!(e(&tok("1", &DIGEST.to_uppercase(), SECRET)), DigestNotHex);
        assert_eq!(
            e(&tok("1", &format!("{}g", &DIGEST[1..]), SECRET)),
            DigestNotHex
        );
        assert_eq!(
            e(&tok("1", DIGEST, &format!("{SECRET}00"))),
            SecretLength { found: 34 }
        );
        assert_eq!(
            e(&tok("1", DIGEST, &format!("{}Z", &SECRET[1..]))),
            SecretNotHex
        );
        // Multi-byte characters: counted as characters, never sliced.
        assert_eq!(
            e(&tok("1", &format!("{}é", &DIGEST[2..]), SECRET)),
            DigestLength { found: 63 }
        );
        // Messages say what is accepted.
        assert!(DigestNotHex.to_string().contains("0-9 and a-f"));
        assert!(SecretLength { found: 3 }.to_string().contains("32"));
        assert!(UnsupportedVersion {
            found: "`9`".into()
        }
        .to_string()
        .contains("only version 1"));
    }

    #[test]
    fn errors_never_contain_the_secret() {
        let bad = [
            tok("1", DIGEST, &format!("{SECRET}ff")),
            tok("1", DIGEST, &SECRET.to_uppercase()),
            tok("1x", DIGEST, SECRET),
            format!("SNTKN-{SECRET}"),
        ];
        for b in bad {
            let err = b.parse::<JoinToken>().expect_err(&b).to_string();
            assert!(!err.contains(SECRET), "{err}");
            assert!(!err.contains(&SECRET.to_uppercase()), "{err}");
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(digest in any::<[u8; 32]>(), secret in any::<[u8; 16]>()) {
            let t = JoinToken { ca_digest: digest, secret: SecretBytes::from_slice(&secret) };
            let s = t.to_string_secret();
            let back: JoinToken = s.parse().expect("round trip");
            prop_assert_eq!(back.ca_digest, digest);
            prop_assert!(back.secret_matches(&t.secret));
        }

        #[test]
        fn prop_from_str_never_panics(s in any::<String>()) {
            let _ = s.parse::<JoinToken>();
        }

        #[test]
        fn prop_from_str_never_panics_near_valid(s in "SNTKN-[0-9a-fA-F-]{0,110}") {
            if let Ok(t) = s.parse::<JoinToken>() {
                prop_assert_eq!(&*t.to_string_secret(), s.as_str());
            }
        }
    }
}
