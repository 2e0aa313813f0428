//! The cluster PKI: the cluster CA, node keys and certificates, and the
//! rustls configurations every secnet connection uses.
//!
//! Why a private CA: every control-plane connection is mutually
//! authenticated TLS 1.3 between nodes of one cluster, and nothing outside
//! the cluster should be able to mint an identity in it. The CA is created
//! on the first manager ([`ClusterCa::generate`]); each node makes its own
//! key ([`NodeKey`]) and sends only a CSR, so private keys never travel.
//!
//! The CA decides what a certificate says. [`ClusterCa::sign_node`] takes
//! nothing but the public key from a CSR (after checking the CSR's
//! signature): the node id (CN, 16 hex digits), the role (OU) and the
//! cluster (O) come from the caller, i.e. from the manager's replicated
//! state. The role is also encoded as the only DNS SAN: managers get
//! [`MANAGER_SERVER_NAME`], workers [`WORKER_SERVER_NAME`]. A client that
//! dials a manager verifies the server name `secnet-manager`, so a worker's
//! certificate, although signed by the same CA, can never impersonate a
//! manager.
//!
//! Why fingerprints: revocation is membership. A server authorizes a peer by
//! looking up [`cert_fingerprint`] of its certificate in the replicated node
//! table; removing a node from the table revokes it at once, without CRLs.
//!
//! Why CA-digest pinning for joins: a joining node has no trust anchor yet.
//! Its join token carries the SHA-256 digest of the CA certificate (as
//! Swarm's `SWMTKN` does), and [`join_client_config`] accepts a manager only
//! if the chain it presents contains a CA with exactly that digest and the
//! manager's certificate verifies against it. The joiner then keeps that CA
//! ([`CaCapture`]) as its trust anchor for everything afterwards. For the
//! same reason the server presents the chain `[node cert, CA cert]`, and it
//! lets clients without a certificate complete the handshake: the join RPC
//! is authenticated by the token's secret instead, and the application
//! checks the client certificate for every other RPC.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::OsRng;
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use secnet_keys::secret::SecretBytes;
pub use secnet_types::Role;

/// DNS name in every manager certificate; clients dialing a manager verify it.
pub const MANAGER_SERVER_NAME: &str = "secnet-manager";
/// DNS name in every worker certificate.
pub const WORKER_SERVER_NAME: &str = "secnet-worker";
/// The ALPN protocol of secnet's control plane.
pub const ALPN_SECNET: &[u8] = b"secnet/1";
/// Default lifetime of a node certificate.
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Lifetime of the cluster CA certificate (20 years).
pub const CA_CERT_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Certificates are valid from this long before they are issued, so that a
/// peer whose clock is a little behind accepts a fresh certificate.
pub const CERT_BACKDATE: Duration = Duration::from_secs(3600);
/// Common name of the cluster CA.
pub const CA_COMMON_NAME: &str = "secnet cluster root CA";
/// Longest cluster id accepted (X.520 upper bound of an organization name).
pub const MAX_CLUSTER_ID_LEN: usize = 64;

/// Errors of the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Certificate, key or CSR generation or parsing failed in rcgen.
    #[error("certificate operation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused a configuration.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// A rustls certificate verifier could not be built.
    #[error("TLS certificate verifier could not be built: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The cluster id is unusable.
    #[error(
        "invalid cluster id {id:?}: it must be 1 to {MAX_CLUSTER_ID_LEN} printable characters"
    )]
    InvalidClusterId {
        /// The rejected id.
        id: String,
    },
    /// The CSR cannot be parsed or its signature does not verify.
    #[error("invalid certificate signing request: {0}")]
    BadCsr(String),
    /// A key is not an ECDSA P-256 key.
    #[error("unsupported key: {0}; secnet uses ECDSA P-256 keys only")]
    UnsupportedKey(String),
    /// A certificate cannot be parsed or is not what was expected.
    #[error("invalid certificate: {0}")]
    BadCertificate(String),
    /// The CA private key does not belong to the CA certificate.
    #[error("the CA private key does not match the CA certificate's public key")]
    KeyMismatch,
    /// `sign_node` was asked for a cluster other than the CA's.
    #[error("this CA belongs to cluster {ca:?}, refusing to sign a certificate for cluster {requested:?}")]
    ClusterMismatch {
        /// The CA's cluster id.
        ca: String,
        /// The requested cluster id.
        requested: String,
    },
    /// Validity or issue time is out of range.
    #[error("invalid certificate validity: {0}")]
    InvalidValidity(String),
}

/// The DNS SAN in certificates of `role`, and the TLS server name to verify when dialing
/// a node of that role.
pub fn role_server_name(role: Role) -> &'static str {
    match role {
        Role::Manager => MANAGER_SERVER_NAME,
        Role::Worker => WORKER_SERVER_NAME,
    }
}

/// The [`ServerName`] to pass to a TLS connector when dialing a node of
/// `role` (for managers: `secnet-manager`).
pub fn server_name(role: Role) -> ServerName<'static> {
    ServerName::try_from(role_server_name(role)).expect("the role server names are valid DNS names")
}

/// SHA-256 of a certificate's DER encoding: the digest carried by join
/// tokens.
pub fn ca_digest(cert_der: &[u8]) -> [u8; 32] {
    Sha256::digest(cert_der).into()
}

/// Lowercase hex SHA-256 of a certificate's DER encoding: the key under
/// which the node table authorizes a peer.
pub fn cert_fingerprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn to_offset(t: SystemTime) -> Result<time::OffsetDateTime, PkiError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::InvalidValidity("time before 1970".into()))?
        .as_secs();
    let secs = i64::try_from(secs)
        .map_err(|_| PkiError::InvalidValidity("time too far in the future".into()))?;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| PkiError::InvalidValidity(format!("time out of range: {e}")))
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    // Positive, and no leading zero byte: a canonical 16-byte INTEGER.
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&b)
}

fn check_cluster_id(id: &str) -> Result<(), PkiError> {
    if id.is_empty() || id.chars().count() > MAX_CLUSTER_ID_LEN || id.chars().any(char::is_control)
    {
        return Err(PkiError::InvalidClusterId { id: id.to_string() });
    }
    Ok(())
}

fn p256_key_from_pkcs8(key_pkcs8: &SecretBytes) -> Result<KeyPair, PkiError> {
    let kp = KeyPair::try_from(key_pkcs8.expose())
        .map_err(|e| PkiError::UnsupportedKey(format!("cannot parse PKCS#8 key: {e}")))?;
    if kp.algorithm() != &PKCS_ECDSA_P256_SHA256 {
        return Err(PkiError::UnsupportedKey(format!(
            "key algorithm is {:?}",
            kp.algorithm()
        )));
    }
    Ok(kp)
}

fn parse_cert(der: &[u8]) -> Result<x509_parser::certificate::X509Certificate<'_>, PkiError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(PkiError::BadCertificate(
            "trailing bytes after the certificate".into(),
        )),
        Err(e) => Err(PkiError::BadCertificate(format!("cannot parse: {e}"))),
    }
}

fn single_attr<'a>(
    mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
    what: &str,
) -> Result<String, PkiError> {
    let first = it
        .next()
        .ok_or_else(|| PkiError::BadCertificate(format!("no {what} in subject")))?;
    if it.next().is_some() {
        return Err(PkiError::BadCertificate(format!(
            "more than one {what} in subject"
        )));
    }
    first
        .as_str()
        .map(str::to_string)
        .map_err(|e| PkiError::BadCertificate(format!("{what} is not a string: {e}")))
}

/// The cluster's certificate authority: certificate and private key.
#[derive(Clone)]
pub struct ClusterCa {
    /// The self-signed CA certificate (DER).
    pub cert_der: Vec<u8>,
    /// The CA private key (PKCS#8 DER). Seal it before storing it.
    pub key_pkcs8: SecretBytes,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("digest", &hex::encode(self.digest()))
            .field("key_pkcs8", &self.key_pkcs8)
            .finish()
    }
}

impl ClusterCa {
    /// Creates a new self-signed CA for `cluster_id`: ECDSA P-256, CN
    /// [`CA_COMMON_NAME`], O = `cluster_id`, valid for 20 years, basic
    /// constraints CA with path length 0 (it signs node certificates only).
    pub fn generate(cluster_id: &str) -> Result<ClusterCa, PkiError> {
        Self::generate_at(cluster_id, SystemTime::now())
    }

    /// [`ClusterCa::generate`] with an explicit current time.
    pub fn generate_at(cluster_id: &str, now: SystemTime) -> Result<ClusterCa, PkiError> {
        check_cluster_id(cluster_id)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_id);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        params.not_before = to_offset(now.checked_sub(CERT_BACKDATE).unwrap_or(now))?;
        params.not_after = to_offset(
            now.checked_add(CA_CERT_VALIDITY)
                .ok_or_else(|| PkiError::InvalidValidity("CA expiry overflows".into()))?,
        )?;
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa {
            cert_der: cert.der().to_vec(),
            key_pkcs8: SecretBytes::new(key.serialize_der()),
        })
    }

    /// Rebuilds a CA from stored parts, checking that the certificate is a
    /// CA certificate and that the key belongs to it.
    pub fn from_parts(cert_der: Vec<u8>, key_pkcs8: SecretBytes) -> Result<ClusterCa, PkiError> {
        let key = p256_key_from_pkcs8(&key_pkcs8)?;
        {
            let cert = parse_cert(&cert_der)?;
            if !cert.is_ca() {
                return Err(PkiError::BadCertificate(
                    "not a CA certificate (basic constraints CA is not set)".into(),
                ));
            }
            if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
                return Err(PkiError::KeyMismatch);
            }
        }
        Ok(ClusterCa {
            cert_der,
            key_pkcs8,
        })
    }

    /// SHA-256 of the CA certificate, as carried in join tokens.
    pub fn digest(&self) -> [u8; 32] {
        ca_digest(&self.cert_der)
    }

    /// The cluster id (the O of the CA certificate).
    pub fn cluster_id(&self) -> Result<String, PkiError> {
        let cert = parse_cert(&self.cert_der)?;
        single_attr(cert.subject().iter_organization(), "organization (O)")
    }

    /// Issues a node certificate for the public key in `csr_der`.
    ///
    /// Everything the CSR requests besides its public key (subject, SANs,
    /// extensions) is ignored; the CSR's self-signature is verified and the
    /// key must be ECDSA P-256. The certificate gets CN = `node_id` as 16
    /// lowercase hex digits, OU = the role, O = `cluster_id` (which must be
    /// the CA's), the role's DNS SAN, key usage digitalSignature, extended
    /// key usages serverAuth and clientAuth, and validity from
    /// `now - CERT_BACKDATE` to `now + validity` (capped at the CA's expiry).
    pub fn sign_node(
        &self,
        csr_der: &[u8],
        node_id: u64,
        role: Role,
        cluster_id: &str,
        validity: Duration,
        now: SystemTime,
    ) -> Result<Vec<u8>, PkiError> {
        let ca_cluster = self.cluster_id()?;
        if ca_cluster != cluster_id {
            return Err(PkiError::ClusterMismatch {
                ca: ca_cluster,
                requested: cluster_id.to_string(),
            });
        }
        if validity.is_zero() {
            return Err(PkiError::InvalidValidity(
                "validity must be positive".into(),
            ));
        }

        let csr = CertificateSigningRequestParams::from_der(&csr_der.into())
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let public_key = csr.public_key;
        if public_key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(PkiError::UnsupportedKey(format!(
                "CSR is signed with {:?}",
                public_key.algorithm()
            )));
        }
        // An uncompressed P-256 point: 0x04 || X (32) || Y (32).
        let raw = public_key.der_bytes();
        if raw.len() != 65 || raw[0] != 0x04 {
            return Err(PkiError::UnsupportedKey(
                "CSR public key is not an uncompressed P-256 point".into(),
            ));
        }

        let ca_cert = parse_cert(&self.cert_der)?;
        let ca_not_after = ca_cert.validity().not_after.timestamp();
        let ca_not_after = UNIX_EPOCH
            + Duration::from_secs(u64::try_from(ca_not_after).map_err(|_| {
                PkiError::BadCertificate("CA certificate expires before 1970".into())
            })?);
        let not_after = now
            .checked_add(validity)
            .ok_or_else(|| PkiError::InvalidValidity("expiry overflows".into()))?
            .min(ca_not_after);
        if not_after <= now {
            return Err(PkiError::InvalidValidity(
                "the CA certificate has expired".into(),
            ));
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{node_id:016x}"));
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, role.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_id);
        params.subject_alt_names = vec![SanType::DnsName(role_server_name(role).try_into()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = to_offset(now.checked_sub(CERT_BACKDATE).unwrap_or(now))?;
        params.not_after = to_offset(not_after)?;

        let ca_key = p256_key_from_pkcs8(&self.key_pkcs8)?;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), ca_key)?;
        let cert = params.signed_by(&public_key, &issuer)?;
        Ok(cert.der().to_vec())
    }
}

/// A node's private key (ECDSA P-256, PKCS#8 DER).
#[derive(Clone)]
pub struct NodeKey {
    /// The private key (PKCS#8 DER). Seal it before storing it.
    pub key_pkcs8: SecretBytes,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl NodeKey {
    /// A fresh ECDSA P-256 key.
    pub fn generate() -> Result<NodeKey, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        Ok(NodeKey {
            key_pkcs8: SecretBytes::new(key.serialize_der()),
        })
    }

    /// Rebuilds a key from its PKCS#8 DER, checking it is ECDSA P-256.
    pub fn from_pkcs8(key_pkcs8: SecretBytes) -> Result<NodeKey, PkiError> {
        p256_key_from_pkcs8(&key_pkcs8)?;
        Ok(NodeKey { key_pkcs8 })
    }

    /// A CSR (DER) for this key. Its subject (CN = node id in hex) is only
    /// informative: the CA ignores everything but the public key.
    pub fn csr_der(&self, node_id: u64) -> Result<Vec<u8>, PkiError> {
        let key = p256_key_from_pkcs8(&self.key_pkcs8)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{node_id:016x}"));
        let csr = params.serialize_request(&key)?;
        Ok(csr.der().to_vec())
    }

    /// Whether `cert_der` certifies this key's public key.
    pub fn matches_cert(&self, cert_der: &[u8]) -> Result<bool, PkiError> {
        let key = p256_key_from_pkcs8(&self.key_pkcs8)?;
        let cert = parse_cert(cert_der)?;
        Ok(cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
    }

    /// The key in the form rustls takes (a copy of the PKCS#8 DER, which
    /// rustls keeps for the lifetime of the configuration).
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.expose().to_vec()))
    }
}

/// What a node certificate says about its node. Parsing does not verify
/// anything: use it on certificates that a rustls handshake (or
/// [`server_config`]'s verifier) has already verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// From the CN.
    pub node_id: u64,
    /// From the OU.
    pub role: Role,
    /// From the O.
    pub cluster_id: String,
    /// End of validity.
    pub not_after: SystemTime,
    /// [`cert_fingerprint`] of the certificate.
    pub fingerprint: String,
}

/// Reads the node id, role and cluster from a node certificate issued by
/// [`ClusterCa::sign_node`].
pub fn node_identity(cert_der: &[u8]) -> Result<NodeIdentity, PkiError> {
    let cert = parse_cert(cert_der)?;
    let subject = cert.subject();
    let cn = single_attr(subject.iter_common_name(), "common name (CN)")?;
    if cn.len() != 16 || !cn.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PkiError::BadCertificate(format!(
            "CN {cn:?} is not a node id (16 hex digits)"
        )));
    }
    let node_id = u64::from_str_radix(&cn, 16)
        .map_err(|e| PkiError::BadCertificate(format!("CN {cn:?}: {e}")))?;
    let ou = single_attr(
        subject.iter_organizational_unit(),
        "organizational unit (OU)",
    )?;
    let role = Role::from_str(&ou).map_err(PkiError::BadCertificate)?;
    let cluster_id = single_attr(subject.iter_organization(), "organization (O)")?;
    let not_after = cert.validity().not_after.timestamp();
    let not_after = UNIX_EPOCH
        + Duration::from_secs(
            u64::try_from(not_after)
                .map_err(|_| PkiError::BadCertificate("certificate expires before 1970".into()))?,
        );
    Ok(NodeIdentity {
        node_id,
        role,
        cluster_id,
        not_after,
        fingerprint: cert_fingerprint(cert_der),
    })
}

fn ca_roots(ca_der: &[u8]) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec()))?;
    Ok(Arc::new(roots))
}

/// Server configuration for a node: TLS 1.3 only, ring provider, ALPN
/// `secnet/1`, presenting `[node cert, CA cert]`.
///
/// Client certificates are verified against the CA when presented; clients
/// without a certificate are let through at the TLS level **only** because
/// the join RPC authenticates with the token instead. The application must
/// check the peer certificate (present, and its [`cert_fingerprint`] in the
/// node table) for every other RPC.
pub fn server_config(
    ca_der: &[u8],
    node_cert_der: &[u8],
    node_key: &NodeKey,
) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = ring_provider();
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(ca_roots(ca_der)?, provider.clone())
            .allow_unauthenticated()
            .build()?;
    let chain = vec![
        CertificateDer::from(node_cert_der.to_vec()),
        CertificateDer::from(ca_der.to_vec()),
    ];
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain, node_key.private_key_der())?;
    config.alpn_protocols = vec![ALPN_SECNET.to_vec()];
    Ok(Arc::new(config))
}

/// Client configuration for a node with a certificate: TLS 1.3 only, ring
/// provider, ALPN `secnet/1`, trusting only the cluster CA and presenting
/// the node certificate. Dial managers with
/// [`server_name(Role::Manager)`](server_name).
pub fn client_config(
    ca_der: &[u8],
    node_cert_der: &[u8],
    node_key: &NodeKey,
) -> Result<Arc<ClientConfig>, PkiError> {
    let provider = ring_provider();
    let verifier =
        WebPkiServerVerifier::builder_with_provider(ca_roots(ca_der)?, provider.clone()).build()?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(
            vec![CertificateDer::from(node_cert_der.to_vec())],
            node_key.private_key_der(),
        )?;
    config.alpn_protocols = vec![ALPN_SECNET.to_vec()];
    Ok(Arc::new(config))
}

/// Where [`join_client_config`]'s verifier puts the CA certificate (DER) it
/// pinned. Filled during the handshake, once the CA's digest matched the
/// token and the manager's certificate verified against it.
#[derive(Debug, Clone, Default)]
pub struct CaCapture(Arc<Mutex<Option<Vec<u8>>>>);

impl CaCapture {
    /// Takes the captured CA certificate, if any.
    pub fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn set(&self, der: Vec<u8>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(der);
    }
}

/// Error reported when no certificate in the manager's chain has the digest
/// from the join token. It reaches the caller as
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))` (inside
/// the `io::Error` of a TLS connector), which rustls prints with `Debug`, so
/// `Debug` prints the message too.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", Self::MESSAGE)]
pub struct CaDigestMismatch;

impl CaDigestMismatch {
    /// The message shown to the operator.
    pub const MESSAGE: &'static str = "the manager's CA does not match the join token (digest mismatch): wrong cluster or a man-in-the-middle";
}

impl fmt::Debug for CaDigestMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

struct JoinVerifier {
    expected_ca_digest: [u8; 32],
    provider: Arc<CryptoProvider>,
    capture: CaCapture,
}

impl fmt::Debug for JoinVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinVerifier")
            .field("expected_ca_digest", &hex::encode(self.expected_ca_digest))
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for JoinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| ca_digest(c) == self.expected_ca_digest)
            .ok_or_else(|| {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    CaDigestMismatch,
                ))))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("join verifier: {e}")))?;
        // Always the manager name, whatever the caller dialed: a joiner only
        // ever talks to managers.
        verifier.verify_server_cert(
            end_entity,
            &[],
            &server_name(Role::Manager),
            ocsp_response,
            now,
        )?;
        self.capture.set(ca.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client configuration for joining: no client certificate, TLS 1.3 only,
/// ring provider, ALPN `secnet/1`. The server is accepted only if its chain
/// contains a certificate whose SHA-256 is `expected_ca_digest` (from the
/// join token) and its end-entity certificate verifies against that CA, as
/// the only root, for the name `secnet-manager`. The CA is then put into the
/// returned [`CaCapture`]; after a successful handshake the joiner takes it
/// and trusts it for everything afterwards.
pub fn join_client_config(
    expected_ca_digest: [u8; 32],
) -> Result<(Arc<ClientConfig>, CaCapture), PkiError> {
    let provider = ring_provider();
    let capture = CaCapture::default();
    let verifier = JoinVerifier {
        expected_ca_digest,
        provider: provider.clone(),
        capture: capture.clone(),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_SECNET.to_vec()];
    Ok((Arc::new(config), capture))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    const CLUSTER: &str = "cl-test-1";
    const DAY: u64 = 24 * 3600;

    fn issue(ca: &ClusterCa, id: u64, role: Role) -> (Vec<u8>, NodeKey) {
        let key = NodeKey::generate().expect("key");
        let csr = key.csr_der(id).expect("csr");
        let cert = ca
            .sign_node(
                &csr,
                id,
                role,
                CLUSTER,
                NODE_CERT_VALIDITY,
                SystemTime::now(),
            )
            .expect("sign");
        (cert, key)
    }

    fn dns_sans(cert_der: &[u8]) -> Vec<String> {
        let cert = parse_cert(cert_der).expect("parse");
        let mut out = Vec::new();
        if let Some(san) = cert.subject_alternative_name().expect("san ext") {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => out.push(d.to_string()),
                    other => out.push(format!("{other:?}")),
                }
            }
        }
        out
    }

    #[test]
    fn ca_generate_fields() {
        let now = SystemTime::now();
        let ca = ClusterCa::generate_at(CLUSTER, now).expect("ca");
        let cert = parse_cert(&ca.cert_der).expect("parse");
        assert!(cert.is_ca());
        let cn = single_attr(cert.subject().iter_common_name(), "cn").expect("cn");
        assert_eq!(cn, CA_COMMON_NAME);
        assert_eq!(ca.cluster_id().expect("o"), CLUSTER);
        // Self-signed.
        assert_eq!(cert.subject(), cert.issuer());
        let bc = cert
            .basic_constraints()
            .expect("bc")
            .expect("bc present")
            .value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let nb = cert.validity().not_before.timestamp();
        let na = cert.validity().not_after.timestamp();
        let now_s = now.duration_since(UNIX_EPOCH).expect("epoch").as_secs() as i64;
        assert_eq!(now_s - nb, CERT_BACKDATE.as_secs() as i64);
        assert_eq!(na - now_s, CA_CERT_VALIDITY.as_secs() as i64);
        assert!(na - now_s >= 20 * 365 * DAY as i64);
        // Digest and fingerprint.
        assert_eq!(ca.digest(), ca_digest(&ca.cert_der));
        assert_eq!(ca.digest(), <[u8; 32]>::from(Sha256::digest(&ca.cert_der)));
        assert_eq!(cert_fingerprint(&ca.cert_der), hex::encode(ca.digest()));
        let fp = cert_fingerprint(&ca.cert_der);
        assert_eq!(fp.len(), 64);
        assert!(fp
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        // Debug does not show the key.
        let dbg = format!("{ca:?}");
        assert!(dbg.contains("redacted"), "{dbg}");
        // Two CAs differ.
        let other = ClusterCa::generate(CLUSTER).expect("ca");
        assert_ne!(other.digest(), ca.digest());
    }

    #[test]
    fn ca_rejects_bad_cluster_ids() {
        for bad in ["", "a\nb", &"x".repeat(65)] {
            assert!(matches!(
                ClusterCa::generate(bad),
                Err(PkiError::InvalidClusterId { .. })
            ));
        }
        ClusterCa::generate(&"x".repeat(64)).expect("64 chars is fine");
    }

    #[test]
    fn ca_from_parts_checks_key_and_ca() {
        let ca = ClusterCa::generate(CLUSTER).expect("ca");
        let back =
            ClusterCa::from_parts(ca.cert_der.clone(), ca.key_pkcs8.clone()).expect("from parts");
        assert_eq!(back.digest(), ca.digest());
        let other = ClusterCa::generate(CLUSTER).expect("ca");
        assert!(matches!(
            ClusterCa::from_parts(ca.cert_der.clone(), other.key_pkcs8.clone()),
            Err(PkiError::KeyMismatch)
        ));
        let (node_cert, node_key) = issue(&ca, 1, Role::Manager);
        assert!(matches!(
            ClusterCa::from_parts(node_cert, node_key.key_pkcs8.clone()),
            Err(PkiError::BadCertificate(_))
        ));
        assert!(ClusterCa::from_parts(b"junk".to_vec(), ca.key_pkcs8.clone()).is_err());
        assert!(
            ClusterCa::from_parts(ca.cert_der.clone(), SecretBytes::from_slice(b"junk")).is_err()
        );
    }

    #[test]
    fn node_cert_fields() {
        let ca = ClusterCa::generate(CLUSTER).expect("ca");
        let now = SystemTime::now();
        let key = NodeKey::generate().expect("key");
        let csr = key.csr_der(0xabc).expect("csr");
        let der = ca
            .sign_node(&csr, 0xabc, Role::Manager, CLUSTER, NODE_CERT_VALIDITY, now)
            .expect("sign");
        assert!(key.matches_cert(&der).expect("match"));
        assert!(!NodeKey::generate()
            .expect("key")
            .matches_cert(&der)
            .expect("match"));
        let cert = parse_cert(&der).expect("parse");
        assert!(!cert.is_ca());
        let subj = cert.subject();
        assert_eq!(
            single_attr(subj.iter_common_name(), "cn").expect("cn"),
            "0000000000000abc"
        );
        assert_eq!(
            single_attr(subj.iter_organizational_unit(), "ou").expect("ou"),
            "manager"
        );
        assert_eq!(
            single_attr(subj.iter_organization(), "o").expect("o"),
            CLUSTER
        );
        assert_eq!(dns_sans(&der), vec![MANAGER_SERVER_NAME.to_string()]);
        let ca_cert = parse_cert(&ca.cert_der).expect("ca");
        assert_eq!(cert.issuer(), ca_cert.subject());

        let mut saw_ku = false;
        let mut saw_eku = false;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::KeyUsage(ku) => {
                    saw_ku = true;
                    assert!(ku.digital_signature());
                    assert!(!ku.key_cert_sign());
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    saw_eku = true;
                    assert!(eku.server_auth && eku.client_auth);
                    assert!(!eku.any);
                }
                _ => {}
            }
        }
        assert!(saw_ku && saw_eku);

        let nb = cert.validity().not_before.timestamp();
        let na = cert.validity().not_after.timestamp();
        let now_s = now.duration_since(UNIX_EPOCH).expect("epoch").as_secs() as i64;
        assert_eq!(na - now_s, 90 * DAY as i64);
        assert_eq!(now_s - nb, CERT_BACKDATE.as_secs() as i64);

        let id = node_identity(&der).expect("identity");
        assert_eq!(id.node_id, 0xabc);
        assert_eq!(id.role, Role::Manager);
        assert_eq!(id.cluster_id, CLUSTER);
        assert_eq!(id.fingerprint, cert_fingerprint(&der));
        assert_eq!(id.not_after, UNIX_EPOCH + Duration::from_secs(na as u64));

        // Serial numbers are random.
        let der2 = ca
            .sign_node(&csr, 0xabc, Role::Manager, CLUSTER, NODE_CERT_VALIDITY, now)
            .expect("sign");
        assert_ne!(
            parse_cert(&der2).expect("parse").raw_serial(),
            cert.raw_serial()
        );
    }

    #[test]
    fn worker_cert_has_only_worker_name() {
        let ca = ClusterCa::generate(CLUSTER).expect("ca");
        let (der, _) = issue(&ca, u64::MAX, Role::Worker);
        assert_eq!(dns_sans(&der), vec![WORKER_SERVER_NAME.to_string()]);
        let id = node_identity(&der).expect("identity");
        assert_eq!(id.node_id, u64::MAX);
        assert_eq!(id.role, Role::Worker);
    }

    #[test]
    fn csr_subject_and_sans_are_ignored() {
        let ca = ClusterCa::generate(CLUSTER).expect("ca");
        // A worker asks for a manager identity, another node id, an IP SAN
        // and CA powers.
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(vec![
            MANAGER_SERVER_NAME.to_string(),
            "evil.example".to_string(),
            "10.0.0.1".to_string(),
        ])
        .expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "0000000000000001");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "manager");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "other-cluster");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let csr = params.serialize_request(&key).expect("csr");
        let der = ca
            .sign_node(
                csr.der(),
                2,
                Role::Worker,
                CLUSTER,
                NODE_CERT_VALIDITY,
                SystemTime::now(),
            )
            .expect("sign");
        let id = node_identity(&der).expect("identity");
        assert_eq!(id.node_id, 2);
        assert_eq!(id.role, Role::Worker);
        assert_eq!(id.cluster_id, CLUSTER);
        assert_eq!(dns_sans(&der), vec![WORKER_SERVER_NAME.to_string()]);
        let cert = parse_cert(&der).expect("parse");
        assert!(!cert.is_ca());
        // The public key is the CSR's.
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
    }

    #[test]
    fn csr_with_bad_signature_or_key_is_refused() {
        let ca = ClusterCa::generate(CLUSTER).expect("ca");
        let key = NodeKey::generate().expect("key");
        let mut csr = key.csr_der(1).expect("csr");
        let n = csr.len();
        csr[n - 5] ^= 0x01; // inside the signature
        let err = ca
            .sign_node(
                &csr,
                1,
                Role::Worker,
                CLUSTER,
                NODE_CERT_VALIDITY,
                SystemTime::now(),
            )
            .expect_err("bad signature");
        assert!(matches!(err, PkiError::BadCsr(_)), "{err}");
        assert!(ca
            .sign_node(
                b"junk",
                1,
                Role::Worker,
                CLUSTER,
                NODE_CERT_VALIDITY,
                SystemTime::now()
            )
            .is_err());
        assert!(ca
            .sign_node(
                &[],
                1,
                Role::Worker,
                CLUSTER,
                NODE_CERT_VALIDITY,
                SystemTime::now()
            )
            .is_err());

        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let csr = CertificateParams::default()
            .serialize_request(&p384)
            .expect("csr");
        let err = ca
            .sign_node(
                csr.der(),
                1,
                Role::Worker,
                CLUSTER,
                NODE_CERT_VALIDITY,
                SystemTime::now(),
            )
            .expect_err("p384");
        assert!(matches!(err, PkiError::UnsupportedKey(_)), "{err}");
    }

    #[test]
    fn sign_node_checks_cluster_and_validity() {
        let ca = ClusterCa::generate(CLUSTER).expect("ca");
        let key = NodeKey::generate().expect("key");
        let csr = key.csr_der(1).expect("csr");
        let now = SystemTime::now();
        assert!(matches!(
            ca.sign_node(&csr, 1, Role::Worker, "other", NODE_CERT_VALIDITY, now),
            Err(PkiError::ClusterMismatch { .. })
        ));
        assert!(matches!(
            ca.sign_node(&csr, 1, Role::Worker, CLUSTER, Duration::ZERO, now),
            Err(PkiError::InvalidValidity(_))
        ));
        // Capped at the CA's expiry.
        let der = ca
            .sign_node(
                &csr,
                1,
                Role::Worker,
                CLUSTER,
                Duration::from_secs(100 * 365 * DAY),
                now,
            )
            .expect("sign");
        let na = parse_cert(&der)
            .expect("parse")
            .validity()
            .not_after
            .timestamp();
        let ca_na = parse_cert(&ca.cert_der)
            .expect("parse")
            .validity()
            .not_after
            .timestamp();
        assert_eq!(na, ca_na);
        // After the CA expired: refused.
        let later = now + CA_CERT_VALIDITY + Duration::from_secs(DAY);
        assert!(matches!(
            ca.sign_node(&csr, 1, Role::Worker, CLUSTER, NODE_CERT_VALIDITY, later),
            Err(PkiError::InvalidValidity(_))
        ));
    }

    #[test]
    fn node_key_round_trip_and_debug() {
        let k = NodeKey::generate().expect("key");
        let k2 = NodeKey::from_pkcs8(k.key_pkcs8.clone()).expect("parse");
        assert!(k.key_pkcs8.ct_eq(&k2.key_pkcs8));
        assert_eq!(format!("{k:?}"), "NodeKey(<redacted>)");
        assert!(NodeKey::from_pkcs8(SecretBytes::from_slice(b"nope")).is_err());
        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        assert!(matches!(
            NodeKey::from_pkcs8(SecretBytes::new(p384.serialize_der())),
            Err(PkiError::UnsupportedKey(_))
        ));
    }

    #[test]
    fn node_identity_rejects_other_certs() {
        let ca = ClusterCa::generate(CLUSTER).expect("ca");
        assert!(node_identity(&ca.cert_der).is_err());
        assert!(node_identity(b"").is_err());
        let (mut der, _) = issue(&ca, 5, Role::Worker);
        der.push(0);
        assert!(node_identity(&der).is_err());
    }

    #[test]
    fn role_serde_and_names() {
        assert_eq!(
            serde_json::to_string(&Role::Manager).expect("ser"),
            "\"manager\""
        );
        assert_eq!(
            serde_json::from_str::<Role>("\"worker\"").expect("de"),
            Role::Worker
        );
        assert!(serde_json::from_str::<Role>("\"Manager\"").is_err());
        assert_eq!(Role::Manager.to_string(), "manager");
        assert_eq!("worker".parse::<Role>(), Ok(Role::Worker));
        assert!("admin".parse::<Role>().is_err());
        assert_eq!(
            server_name(Role::Manager),
            ServerName::try_from("secnet-manager").expect("name")
        );
        assert_eq!(role_server_name(Role::Worker), "secnet-worker");
    }

    #[test]
    fn configs_build() {
        let ca = ClusterCa::generate(CLUSTER).expect("ca");
        let (der, key) = issue(&ca, 1, Role::Manager);
        let s = server_config(&ca.cert_der, &der, &key).expect("server");
        assert_eq!(s.alpn_protocols, vec![ALPN_SECNET.to_vec()]);
        let c = client_config(&ca.cert_der, &der, &key).expect("client");
        assert_eq!(c.alpn_protocols, vec![ALPN_SECNET.to_vec()]);
        let (j, cap) = join_client_config(ca.digest()).expect("join");
        assert_eq!(j.alpn_protocols, vec![ALPN_SECNET.to_vec()]);
        assert!(cap.take().is_none());
        // A CA that is not a certificate is refused.
        assert!(server_config(b"junk", &der, &key).is_err());
        assert!(client_config(b"junk", &der, &key).is_err());
        // A key that does not match the certificate is refused by rustls.
        let other = NodeKey::generate().expect("key");
        assert!(server_config(&ca.cert_der, &der, &other).is_err());
    }
}
