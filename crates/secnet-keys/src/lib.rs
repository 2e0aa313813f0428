//! Key material for secnet: secrets in memory, join tokens, secrets at
//! rest, and the cluster PKI.
//!
//! * [`secret`]: zeroizing, redacted, constant-time-compared secret buffers.
//! * [`token`]: `SNTKN-1-…` join tokens that pin the cluster CA by digest.
//! * [`seal`](mod@seal): XChaCha20-Poly1305 sealing under a node-local
//!   key-encryption key, and `0600` atomic private files.
//! * [`pki`]: the cluster CA, node certificates and the TLS 1.3 (rustls,
//!   ring) configurations for mTLS and for joining.
//! * [`ring`](mod@ring): the cluster's pre-shared-key ring, a pure state
//!   machine for two-phase key rotation.
//!
//! This crate targets Unix (file modes).

pub mod pki;
pub mod ring;
pub mod seal;
pub mod secret;
pub mod token;

pub use pki::{
    ca_digest, cert_fingerprint, client_config, join_client_config, node_identity, server_config,
    server_name, CaCapture, CaDigestMismatch, ClusterCa, NodeIdentity, NodeKey, PkiError, Role,
    ALPN_SECNET, MANAGER_SERVER_NAME, NODE_CERT_VALIDITY, WORKER_SERVER_NAME,
};
pub use ring::{KeyRing, KeyState, RingError, RingKey, RotationReason, MAX_RING_KEYS};
pub use seal::{ensure_private_dir, open, seal, write_private_file, Kek, SealError};
pub use secret::{Secret32, SecretBytes};
pub use token::{JoinToken, TokenError};
