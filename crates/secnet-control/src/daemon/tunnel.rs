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
use secnet_model::{ClusterState, NodeId};
use secnet_tunnel::{PeerConfig, StaticKey, Tunnel, TunnelConfig};

use super::Member;
use crate::agent::tunnel::{desired_keys, desired_peers, key_registration, wireguard_port};

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

    /// Whether the node may acknowledge key `epoch`: its endpoint holds it for receiving, or
    /// no endpoint runs (one that starts later is given the whole ring before any peer).
    pub fn can_acknowledge(&self, epoch: u64) -> bool {
        if self.get().is_none() {
            return true;
        }
        self.keys
            .lock()
            .ok()
            .and_then(|k| k.as_ref().map(|(epochs, _)| epochs.contains(&epoch)))
            .unwrap_or(false)
    }
}

/// Records `public` as this node's WireGuard key in the state, when the state holds another
/// (`agent::tunnel::key_registration`). A failure (no leader yet, a write refused) is only
/// logged: the caller's loop tries again on its next turn.
async fn register_key(m: &Member, state: &ClusterState, me: NodeId, public: &str) {
    let Some(cmd) = key_registration(state, me, Some(public)) else {
        return;
    };
    if let Err(e) = m.write(cmd).await {
        tracing::debug!(error = %e, "cannot register the WireGuard key yet");
    }
}

/// Registers the key, starts the endpoint once the tunnel address is known, and keeps its
/// keys and peers equal to the state; replaces the static key when asked to
/// (`node rotate-key`).
pub(crate) async fn run(member: std::sync::Weak<Member>, store: KeyStore, key: StaticKey) {
    let mut key = key;
    let mut public = key.public().to_string();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(m) = member.upgrade() else { return };
        let state = m.view().state;
        let me = m.id.node_id;
        if !state.nodes.contains_key(&me) {
            continue;
        }
        let Some(mine) = state.wireguard.get(&me).cloned() else {
            register_key(&m, &state, me, &public).await;
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
            info!(public_key = %public, "WireGuard static key rotated");
        }
        if mine.public_key != public {
            // Our new key, or another key registered (a restore, or an interrupted
            // rotation): ours wins.
            register_key(&m, &state, me, &public).await;
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
                    if let Ok(mut slot) = m.tunnel.tunnel.lock() {
                        *slot = Some(Arc::new(t));
                    }
                    // A new endpoint has no keys and no peers yet.
                    if let Ok(mut k) = m.tunnel.keys.lock() {
                        *k = None;
                    }
                    if let Ok(mut p) = m.tunnel.peers.lock() {
                        p.clear();
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
        let Some(t) = m.tunnel.get() else { continue };
        // Keys before peers, and no peers before the ring exists: every session is keyed
        // with a pre-shared key of the ring (the leader seeds it within a second of init).
        let Some((keys, primary)) = desired_keys(&state) else {
            continue;
        };
        let epochs: Vec<u64> = keys.iter().map(|k| k.epoch).collect();
        let changed = m
            .tunnel
            .keys
            .lock()
            .map(|k| k.as_ref() != Some(&(epochs.clone(), primary)))
            .unwrap_or(true);
        if changed {
            match t.set_preshared_keys(keys, primary) {
                Ok(()) => {
                    tracing::debug!(?epochs, primary, "pre-shared keys installed");
                    if let Ok(mut k) = m.tunnel.keys.lock() {
                        *k = Some((epochs, primary));
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot install the pre-shared keys");
                    continue;
                }
            }
        }
        let peers = desired_peers(&state, me);
        let changed = m.tunnel.peers.lock().map(|p| *p != peers).unwrap_or(true);
        if changed {
            match t.set_peers(peers.clone()) {
                Ok(()) => {
                    if let Ok(mut p) = m.tunnel.peers.lock() {
                        *p = peers;
                    }
                }
                Err(e) => warn!(error = %e, "cannot update the WireGuard peers"),
            }
        }
    }
}
