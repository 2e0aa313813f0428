//! This node's WireGuard endpoint: its static key (made here, sealed at rest, never sent
//! anywhere; only the public half goes into the replicated state), and a `secnet-tunnel`
//! endpoint on `data-path-addr:51820` with a TUN device, whose peers are the other nodes,
//! keyed with the primary pre-shared key of the ring.
//!
//! Encrypted networks' VXLAN runs between tunnel addresses (see `dataplane.rs`), so their
//! frames are routed into the TUN device and sealed here; strict mode (nftables, installed by
//! the reconciler) drops any of them that would take another way.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use secnet_keys::seal::{self, Kek};
use secnet_model::{ClusterState, Command, NodeId};
use secnet_tunnel::{PeerConfig, StaticKey, Tunnel, TunnelConfig};

use super::Member;

/// WireGuard's port.
pub const WIREGUARD_PORT: u16 = 51820;
/// The TUN device's name in the host namespace.
pub const TUN_NAME: &str = "sntun0";
/// Keepalive towards every peer, so NAT state and handshakes stay fresh.
const KEEPALIVE_SECS: u16 = 25;

const KEY_FILE: &str = "wireguard-key.sealed";
const KEY_AAD: &[u8] = b"secnet wireguard static key v1";

/// Loads this node's WireGuard static key, making one on first use.
pub fn load_or_create_key(state_dir: &Path, kek: &Kek) -> std::io::Result<StaticKey> {
    let path = state_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(sealed) => {
            let plain = seal::open(kek, &sealed, KEY_AAD).map_err(std::io::Error::other)?;
            let bytes: [u8; 32] = plain
                .expose()
                .try_into()
                .map_err(|_| std::io::Error::other("the sealed WireGuard key is not 32 bytes"))?;
            Ok(StaticKey::from_bytes(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = StaticKey::generate();
            let sealed = seal::seal(kek, key.to_secret_bytes().as_ref(), KEY_AAD);
            seal::write_private_file(&path, &sealed).map_err(std::io::Error::other)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// The running endpoint of a member (none until the node's tunnel address is known).
#[derive(Default)]
pub struct TunnelSlot {
    tunnel: Mutex<Option<Arc<Tunnel>>>,
    peers: Mutex<Vec<PeerConfig>>,
}

impl TunnelSlot {
    pub fn get(&self) -> Option<Arc<Tunnel>> {
        self.tunnel.lock().ok().and_then(|t| t.clone())
    }

    /// Stops the endpoint (member stop).
    pub fn stop(&self) {
        if let Ok(mut t) = self.tunnel.lock() {
            t.take();
        }
    }
}

/// The other nodes as WireGuard peers, keyed with the ring's primary key.
pub fn desired_peers(state: &ClusterState, me: NodeId) -> Vec<PeerConfig> {
    let psk = state
        .key_ring
        .as_ref()
        .map(|r| *r.primary().secret.expose());
    state
        .wireguard
        .iter()
        .filter(|(id, _)| **id != me)
        .filter_map(|(id, wg)| {
            let node = state.nodes.get(id)?;
            let public_key: secnet_tunnel::PublicKey = wg.public_key.parse().ok()?;
            Some(PeerConfig {
                public_key: public_key.0,
                endpoint: SocketAddr::new(node.data_path_addr, WIREGUARD_PORT),
                tunnel_ip: wg.tunnel_ip,
                psk,
                keepalive: Some(KEEPALIVE_SECS),
            })
        })
        .collect()
}

/// Registers the key, starts the endpoint once the tunnel address is known, and keeps its
/// peers equal to the state.
pub(crate) async fn run(member: std::sync::Weak<Member>, key: Arc<StaticKey>) {
    let public = key.public().to_string();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(m) = member.upgrade() else { return };
        let state = m.view().state;
        let me = m.id.node_id;
        if !state.nodes.contains_key(&me) {
            continue;
        }
        let Some(mine) = state.wireguard.get(&me).cloned() else {
            if let Err(e) = m
                .write(Command::SetWireguardKey {
                    id: me,
                    public_key: public.clone(),
                })
                .await
            {
                tracing::debug!(error = %e, "cannot register the WireGuard key yet");
            }
            continue;
        };
        if mine.public_key != public {
            // Another key is registered (a restore, or an interrupted rotation): ours wins.
            let _ = m
                .write(Command::SetWireguardKey {
                    id: me,
                    public_key: public.clone(),
                })
                .await;
            continue;
        }
        if m.tunnel.get().is_none() {
            let config = TunnelConfig {
                listen: SocketAddr::new(m.id.data_path_addr, WIREGUARD_PORT),
                tun_name: TUN_NAME.into(),
                tun_addr: mine.tunnel_ip,
                tun_prefix: secnet_model::TUNNEL_SUBNET.prefix_len(),
                mtu: super::views::underlay_mtu(m.id.data_path_addr)
                    .saturating_sub(secnet_model::WIREGUARD_OVERHEAD_V4),
                private_key: StaticKey::from_bytes(*key.to_secret_bytes()),
            };
            // The endpoint's threads must start from a plain thread of this namespace, not a
            // runtime worker.
            let started = std::thread::spawn(move || Tunnel::start(config)).join();
            match started {
                Ok(Ok(t)) => {
                    info!(tunnel_ip = %mine.tunnel_ip, port = WIREGUARD_PORT, "WireGuard endpoint up");
                    if let Ok(mut slot) = m.tunnel.tunnel.lock() {
                        *slot = Some(Arc::new(t));
                    }
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot start the WireGuard endpoint; encrypted networks are unavailable on this node");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                Err(_) => continue,
            }
        }
        let peers = desired_peers(&state, me);
        let changed = m.tunnel.peers.lock().map(|p| *p != peers).unwrap_or(true);
        if changed {
            if let Some(t) = m.tunnel.get() {
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
}
