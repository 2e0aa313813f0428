//! This node's WireGuard endpoint: its static key (made here, sealed at rest, never sent
//! anywhere; only the public half goes into the replicated state), and a `secnet-tunnel`
//! endpoint on `data-path-addr:51820` with a TUN device, whose peers are the other nodes,
//! keyed with the primary pre-shared key of the ring.
//!
//! Encrypted networks' VXLAN runs between tunnel addresses (see `dataplane.rs`), so their
//! frames are routed into the TUN device and sealed here; strict mode (nftables, installed by
//! the reconciler) drops any of them that would take another way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use secnet_keys::seal::{self, Kek};
use secnet_tunnel::{PeerConfig, PresharedKey, StaticKey, Tunnel, TunnelConfig};

use super::Member;
use crate::agent::tunnel::wireguard_port;
use crate::agent::TunnelFacts;

pub use crate::agent::tunnel::TUN_NAME;

const KEY_FILE: &str = "wireguard-key.sealed";
const KEY_AAD: &[u8] = b"secnet wireguard static key v1";

/// Where the node's WireGuard static key is kept, sealed.
#[derive(Clone)]
pub struct KeyStore {
    pub dir: PathBuf,
    pub kek: Arc<Kek>,
}

impl KeyStore {
    /// Loads this node's WireGuard static key, making one on first use.
    pub fn load_or_create(&self) -> std::io::Result<StaticKey> {
        let path = self.dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(sealed) => {
                let plain =
                    seal::open(&self.kek, &sealed, KEY_AAD).map_err(std::io::Error::other)?;
                let bytes: [u8; 32] = plain.expose().try_into().map_err(|_| {
                    std::io::Error::other("the sealed WireGuard key is not 32 bytes")
                })?;
                Ok(StaticKey::from_bytes(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = StaticKey::generate();
                self.store(&key)?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    /// Seals `key` into place (written aside, then renamed: a crash leaves the old key or
    /// the new one, never neither).
    pub fn store(&self, key: &StaticKey) -> std::io::Result<()> {
        let sealed = seal::seal(&self.kek, key.to_secret_bytes().as_ref(), KEY_AAD);
        seal::write_private_file(&self.dir.join(KEY_FILE), &sealed).map_err(std::io::Error::other)
    }
}

/// The running endpoint of a member (none until the node's tunnel address is known), and
/// what was last handed to it.
#[derive(Default)]
pub struct TunnelSlot {
    tunnel: Mutex<Option<Arc<Tunnel>>>,
    peers: Mutex<Vec<PeerConfig>>,
    /// The key ring installed in the endpoint: (epochs, primary).
    keys: Mutex<Option<(Vec<u64>, u64)>>,
    /// This node's public key, for the driver's key registration.
    public: Mutex<Option<String>>,
}

impl TunnelSlot {
    pub fn get(&self) -> Option<Arc<Tunnel>> {
        self.tunnel.lock().ok().and_then(|t| t.clone())
    }

    /// Takes the endpoint out of the slot (member stop). It stops when the returned handle,
    /// the last one, is dropped, which joins its I/O thread: drop it off the runtime's
    /// workers.
    pub fn take(&self) -> Option<Arc<Tunnel>> {
        self.tunnel.lock().ok().and_then(|mut t| t.take())
    }

    /// This node's WireGuard public key, once the loop loaded its static key.
    pub fn public_key(&self) -> Option<String> {
        self.public.lock().ok().and_then(|p| p.clone())
    }

    fn set_public_key(&self, public: &str) {
        if let Ok(mut p) = self.public.lock() {
            *p = Some(public.to_string());
        }
    }

    /// What the running endpoint was last given (`None`: no endpoint runs).
    pub fn facts(&self) -> Option<TunnelFacts> {
        self.get()?;
        Some(TunnelFacts {
            keys: self.keys.lock().ok().and_then(|k| k.clone()),
            peers: self.peers.lock().map(|p| p.clone()).unwrap_or_default(),
        })
    }

    /// Hands the ring to the endpoint (`Action::SetTunnelKeys`); whether it took it.
    pub(crate) fn install_keys(&self, keys: Vec<PresharedKey>, primary: u64) -> bool {
        let Some(t) = self.get() else { return false };
        let epochs: Vec<u64> = keys.iter().map(|k| k.epoch).collect();
        match t.set_preshared_keys(keys, primary) {
            Ok(()) => {
                tracing::debug!(?epochs, primary, "pre-shared keys installed");
                if let Ok(mut k) = self.keys.lock() {
                    *k = Some((epochs, primary));
                }
                true
            }
            Err(e) => {
                warn!(error = %e, "cannot install the pre-shared keys");
                false
            }
        }
    }

    /// Hands the peers to the endpoint (`Action::SetTunnelPeers`).
    pub(crate) fn install_peers(&self, peers: Vec<PeerConfig>) {
        let Some(t) = self.get() else { return };
        match t.set_peers(peers.clone()) {
            Ok(()) => {
                if let Ok(mut p) = self.peers.lock() {
                    *p = peers;
                }
            }
            Err(e) => warn!(error = %e, "cannot update the WireGuard peers"),
        }
    }
}

/// Starts the endpoint once this node's key is registered and its tunnel address known, and
/// replaces the static key when asked to (`node rotate-key`). The driver (`driver.rs`)
/// registers the key and hands the endpoint its keys and peers.
pub(crate) async fn run(member: std::sync::Weak<Member>, store: KeyStore, key: StaticKey) {
    let mut key = key;
    let mut public = key.public().to_string();
    if let Some(m) = member.upgrade() {
        m.tunnel.set_public_key(&public);
    }
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(m) = member.upgrade() else { return };
        let state = m.view().state;
        let me = m.id.node_id;
        if !state.nodes.contains_key(&me) {
            continue;
        }
        // Not registered yet: the driver proposes it.
        let Some(mine) = state.wireguard.get(&me).cloned() else {
            continue;
        };
        if mine.public_key == public && mine.rotation_requested {
            // A new static key: sealed first (a crash after this re-registers it at the
            // next start), then the endpoint takes it beside the old one, then the peers
            // learn it through the state.
            let new = StaticKey::generate();
            if let Err(e) = store.store(&new) {
                warn!(error = %e, "cannot store a new WireGuard key; the rotation waits");
                continue;
            }
            if let Some(t) = m.tunnel.get() {
                t.set_static_key(StaticKey::from_bytes(*new.to_secret_bytes()));
            }
            key = new;
            public = key.public().to_string();
            m.tunnel.set_public_key(&public);
            info!(public_key = %public, "WireGuard static key rotated");
        }
        if mine.public_key != public {
            // Our new key, or another key registered (a restore, or an interrupted
            // rotation): ours wins, once the driver has registered it.
            continue;
        }
        if m.tunnel.get().is_none() {
            let config = TunnelConfig {
                listen: SocketAddr::new(m.id.data_path_addr, wireguard_port(&state)),
                tun_name: TUN_NAME.into(),
                tun_addr: mine.tunnel_ip,
                tun_prefix: secnet_model::TUNNEL_SUBNET.prefix_len(),
                mtu: super::views::underlay_mtu(m.id.data_path_addr)
                    .saturating_sub(secnet_model::WIREGUARD_OVERHEAD_V4),
                private_key: StaticKey::from_bytes(*key.to_secret_bytes()),
            };
            // The endpoint's threads must start from a plain thread of this namespace, not a
            // runtime worker; its result comes back over a channel, so no runtime worker
            // blocks while it starts.
            let (done, started) = tokio::sync::oneshot::channel();
            let spawned = std::thread::Builder::new()
                .name("secnet-tunnel-start".into())
                .spawn(move || {
                    // The receiver only goes away when this loop does.
                    let _ = done.send(Tunnel::start(config));
                });
            if let Err(e) = spawned {
                warn!(error = %e, "cannot start a thread for the WireGuard endpoint");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            match started.await {
                Ok(Ok(t)) => {
                    info!(tunnel_ip = %mine.tunnel_ip, port = wireguard_port(&state), "WireGuard endpoint up");
                    // A new endpoint has no keys and no peers yet: say so before it is
                    // visible, so the driver gives it the whole ring, then the peers.
                    if let Ok(mut k) = m.tunnel.keys.lock() {
                        *k = None;
                    }
                    if let Ok(mut p) = m.tunnel.peers.lock() {
                        p.clear();
                    }
                    if let Ok(mut slot) = m.tunnel.tunnel.lock() {
                        *slot = Some(Arc::new(t));
                    }
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot start the WireGuard endpoint; encrypted networks are unavailable on this node");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                // The starting thread panicked (it is gone); try again on the next round.
                Err(_) => continue,
            }
        }
    }
}
