//! Key material for secnet: secrets in memory, join tokens, secrets at
//! rest and the pre-shared-key ring. No TLS and no X.509 here: the cluster
//! PKI is `secnet-pki`, so that crates which only need secrets (the model,
//! and through it the CLI) do not link rustls or rcgen.
//!
//! * [`secret`]: zeroizing, redacted, constant-time-compared secret buffers.
//! * [`token`]: `SNTKN-1-…` join tokens that pin the cluster CA by digest.
//! * [`seal`](mod@seal): XChaCha20-Poly1305 sealing under a node-local
//!   key-encryption key, and `0600` atomic private files.
//! * [`ring`](mod@ring): the cluster's pre-shared-key ring, a pure state
//!   machine for two-phase key rotation.
//!
//! This crate targets Unix (file modes).

pub mod ring;
pub mod seal;
pub mod secret;
pub mod token;

pub use ring::{KeyRing, KeyState, RingError, RingKey, RotationReason, MAX_RING_KEYS};
pub use seal::{ensure_private_dir, open, seal, write_private_file, Kek, SealError};
pub use secret::{Secret32, SecretBytes};
pub use token::{JoinToken, TokenError};
