//! Real TLS 1.3 handshakes over 127.0.0.1 with the configurations from
//! `secnet_pki`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use secnet_pki::{
    cert_fingerprint, client_config, join_client_config, node_identity, server_config, server_name,
    ClusterCa, NodeKey, Role, ALPN_SECNET, NODE_CERT_VALIDITY,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const CLUSTER: &str = "tls-test-cluster";
const STEP: Duration = Duration::from_secs(10);

struct Node {
    cert: Vec<u8>,
    key: NodeKey,
}

fn issue(ca: &ClusterCa, cluster: &str, id: u64, role: Role) -> Node {
    let key = NodeKey::generate().expect("key");
    let csr = key.csr_der(id).expect("csr");
    let cert = ca
        .sign_node(
            &csr,
            id,
            role,
            cluster,
            NODE_CERT_VALIDITY,
            SystemTime::now(),
        )
        .expect("sign");
    Node { cert, key }
}

/// What the server saw of a successful handshake.
#[derive(Debug)]
struct ServerView {
    peer_certs: Option<Vec<Vec<u8>>>,
    alpn: Option<Vec<u8>>,
}

/// What the client saw of a successful handshake.
#[derive(Debug)]
struct ClientView {
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
}

/// Runs one connection: the server accepts, sends one byte and waits for
/// one; the client connects, reads the byte and answers. The byte exchange
/// makes a TLS 1.3 client learn of a server-side rejection of its
/// certificate (which happens after the client's handshake completes).
async fn exchange(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> (Result<ServerView, String>, Result<ClientView, String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(server);
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = tokio::time::timeout(STEP, acceptor.accept(tcp))
            .await
            .map_err(|_| "server: handshake timed out".to_string())?
            .map_err(|e| format!("server: {e}"))?;
        let (_, conn) = tls.get_ref();
        let view = ServerView {
            peer_certs: conn
                .peer_certificates()
                .map(|cs| cs.iter().map(|c| c.to_vec()).collect()),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        };
        tls.write_all(b"s")
            .await
            .map_err(|e| format!("server write: {e}"))?;
        tls.flush()
            .await
            .map_err(|e| format!("server flush: {e}"))?;
        let mut b = [0u8; 1];
        tokio::time::timeout(STEP, tls.read_exact(&mut b))
            .await
            .map_err(|_| "server: read timed out".to_string())?
            .map_err(|e| format!("server read: {e}"))?;
        Ok::<_, String>(view)
    });

    let client_res = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let connector = TlsConnector::from(client);
        let mut tls = tokio::time::timeout(STEP, connector.connect(name, tcp))
            .await
            .map_err(|_| "client: handshake timed out".to_string())?
            .map_err(|e| format!("client: {e}"))?;
        let (_, conn) = tls.get_ref();
        let view = ClientView {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version(),
        };
        let mut b = [0u8; 1];
        tokio::time::timeout(STEP, tls.read_exact(&mut b))
            .await
            .map_err(|_| "client: read timed out".to_string())?
            .map_err(|e| format!("client read: {e}"))?;
        tls.write_all(b"c")
            .await
            .map_err(|e| format!("client write: {e}"))?;
        tls.flush()
            .await
            .map_err(|e| format!("client flush: {e}"))?;
        Ok::<_, String>(view)
    }
    .await;
    let server_res = server_task.await.expect("server task");
    (server_res, client_res)
}

/// A chain that does not lead to the trusted CA: webpki reports an unknown
/// issuer, or a bad signature when the foreign CA has the same subject name
/// (two CAs of one cluster id do).
fn is_untrusted(err: &str) -> bool {
    err.contains("UnknownIssuer") || err.contains("BadSignature")
}

fn manager_name() -> ServerName<'static> {
    server_name(Role::Manager)
}

#[tokio::test]
async fn mtls_manager_to_manager() {
    let ca = ClusterCa::generate(CLUSTER).expect("ca");
    let a = issue(&ca, CLUSTER, 1, Role::Manager);
    let b = issue(&ca, CLUSTER, 2, Role::Manager);
    let (s, c) = exchange(
        server_config(&ca.cert_der, &a.cert, &a.key).expect("server cfg"),
        client_config(&ca.cert_der, &b.cert, &b.key).expect("client cfg"),
        manager_name(),
    )
    .await;
    let s = s.expect("server ok");
    let c = c.expect("client ok");
    let peer = s.peer_certs.expect("client presented a certificate");
    assert_eq!(peer.len(), 1);
    assert_eq!(peer[0], b.cert);
    assert_eq!(cert_fingerprint(&peer[0]), cert_fingerprint(&b.cert));
    let id = node_identity(&peer[0]).expect("identity");
    assert_eq!((id.node_id, id.role), (2, Role::Manager));
    assert_eq!(s.alpn.as_deref(), Some(ALPN_SECNET));
    assert_eq!(c.alpn.as_deref(), Some(ALPN_SECNET));
    assert_eq!(c.version, Some(rustls::ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn worker_client_to_manager() {
    let ca = ClusterCa::generate(CLUSTER).expect("ca");
    let m = issue(&ca, CLUSTER, 1, Role::Manager);
    let w = issue(&ca, CLUSTER, 7, Role::Worker);
    let (s, c) = exchange(
        server_config(&ca.cert_der, &m.cert, &m.key).expect("server cfg"),
        client_config(&ca.cert_der, &w.cert, &w.key).expect("client cfg"),
        manager_name(),
    )
    .await;
    c.expect("client ok");
    let peer = s.expect("server ok").peer_certs.expect("cert");
    let id = node_identity(&peer[0]).expect("identity");
    assert_eq!((id.node_id, id.role), (7, Role::Worker));
}

#[tokio::test]
async fn client_cert_from_another_ca_is_rejected() {
    let ca = ClusterCa::generate(CLUSTER).expect("ca");
    let m = issue(&ca, CLUSTER, 1, Role::Manager);
    // A rogue CA with the same subject (same cluster id) and one without.
    for rogue_cluster in [CLUSTER, "rogue-cluster"] {
        let rogue_ca = ClusterCa::generate(rogue_cluster).expect("rogue ca");
        let rogue = issue(&rogue_ca, rogue_cluster, 2, Role::Manager);
        // The rogue client even trusts the right CA for the server.
        let (s, c) = exchange(
            server_config(&ca.cert_der, &m.cert, &m.key).expect("server cfg"),
            client_config(&ca.cert_der, &rogue.cert, &rogue.key).expect("client cfg"),
            manager_name(),
        )
        .await;
        let err = s.expect_err("server must reject the rogue client certificate");
        assert!(is_untrusted(&err), "{err}");
        assert!(c.is_err(), "client must not get application data");
    }
}

#[tokio::test]
async fn server_from_another_ca_is_rejected() {
    let ca = ClusterCa::generate(CLUSTER).expect("ca");
    let rogue_ca = ClusterCa::generate(CLUSTER).expect("rogue ca");
    let rogue = issue(&rogue_ca, CLUSTER, 1, Role::Manager);
    let b = issue(&ca, CLUSTER, 2, Role::Manager);
    let (_, c) = exchange(
        server_config(&rogue_ca.cert_der, &rogue.cert, &rogue.key).expect("server cfg"),
        client_config(&ca.cert_der, &b.cert, &b.key).expect("client cfg"),
        manager_name(),
    )
    .await;
    let err = c.expect_err("client must reject the server");
    assert!(is_untrusted(&err), "{err}");
}

#[tokio::test]
async fn worker_cannot_impersonate_manager() {
    let ca = ClusterCa::generate(CLUSTER).expect("ca");
    let w = issue(&ca, CLUSTER, 3, Role::Worker);
    let m = issue(&ca, CLUSTER, 1, Role::Manager);
    let (_, c) = exchange(
        server_config(&ca.cert_der, &w.cert, &w.key).expect("server cfg"),
        client_config(&ca.cert_der, &m.cert, &m.key).expect("client cfg"),
        manager_name(),
    )
    .await;
    let err = c.expect_err("a worker certificate is not valid for secnet-manager");
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for name"),
        "{err}"
    );

    // The joiner is not fooled either, even with the right CA digest.
    let (cfg, capture) = join_client_config(ca.digest()).expect("join cfg");
    let (_, c) = exchange(
        server_config(&ca.cert_der, &w.cert, &w.key).expect("server cfg"),
        cfg,
        manager_name(),
    )
    .await;
    let err = c.expect_err("join must refuse a worker server");
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for name"),
        "{err}"
    );
    assert!(capture.take().is_none());
}

#[tokio::test]
async fn join_with_right_digest_captures_ca() {
    let ca = ClusterCa::generate(CLUSTER).expect("ca");
    let m = issue(&ca, CLUSTER, 1, Role::Manager);
    let (cfg, capture) = join_client_config(ca.digest()).expect("join cfg");
    let (s, c) = exchange(
        server_config(&ca.cert_der, &m.cert, &m.key).expect("server cfg"),
        cfg,
        manager_name(),
    )
    .await;
    let s = s.expect("server accepts an unauthenticated joiner at the TLS level");
    assert!(s.peer_certs.is_none());
    let c = c.expect("client ok");
    assert_eq!(c.alpn.as_deref(), Some(ALPN_SECNET));
    assert_eq!(capture.take().expect("captured"), ca.cert_der);
    assert!(capture.take().is_none(), "take() empties the capture");
}

#[tokio::test]
async fn join_with_wrong_digest_fails() {
    let ca = ClusterCa::generate(CLUSTER).expect("ca");
    let m = issue(&ca, CLUSTER, 1, Role::Manager);
    // A token of another cluster (or a man-in-the-middle's CA).
    let other = ClusterCa::generate("other-cluster").expect("other ca");
    let (cfg, capture) = join_client_config(other.digest()).expect("join cfg");
    let (s, c) = exchange(
        server_config(&ca.cert_der, &m.cert, &m.key).expect("server cfg"),
        cfg,
        manager_name(),
    )
    .await;
    let err = c.expect_err("digest mismatch");
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains("man-in-the-middle"), "{err}");
    assert!(s.is_err());
    assert!(capture.take().is_none());

    let mut flipped = ca.digest();
    flipped[31] ^= 1;
    let (cfg, capture) = join_client_config(flipped).expect("join cfg");
    let (_, c) = exchange(
        server_config(&ca.cert_der, &m.cert, &m.key).expect("server cfg"),
        cfg,
        manager_name(),
    )
    .await;
    assert!(c.expect_err("digest mismatch").contains("digest mismatch"));
    assert!(capture.take().is_none());
}

#[tokio::test]
async fn join_refuses_mitm_presenting_the_real_ca_with_its_own_leaf() {
    // The attacker knows the real CA certificate (it is public) and sends it
    // along, but its leaf is signed by its own CA.
    let ca = ClusterCa::generate(CLUSTER).expect("ca");
    let evil_ca = ClusterCa::generate(CLUSTER).expect("evil ca");
    let evil = issue(&evil_ca, CLUSTER, 1, Role::Manager);
    let (cfg, capture) = join_client_config(ca.digest()).expect("join cfg");
    let (_, c) = exchange(
        server_config(&ca.cert_der, &evil.cert, &evil.key).expect("server cfg"),
        cfg,
        manager_name(),
    )
    .await;
    let err = c.expect_err("leaf not signed by the pinned CA");
    assert!(is_untrusted(&err), "{err}");
    assert!(capture.take().is_none());
}

#[tokio::test]
async fn server_refuses_tls12() {
    let ca = ClusterCa::generate(CLUSTER).expect("ca");
    let m = issue(&ca, CLUSTER, 1, Role::Manager);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der.clone().into()).expect("root");
    let tls12 = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (s, c) = exchange(
        server_config(&ca.cert_der, &m.cert, &m.key).expect("server cfg"),
        Arc::new(tls12),
        manager_name(),
    )
    .await;
    assert!(s.is_err());
    assert!(c.is_err());
}
