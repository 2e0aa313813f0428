//! A worker's runtime: it is not a Raft member; it holds a watch stream from a manager and
//! keeps the latest state (sealed on disk, so a restarted worker can answer before it
//! reconnects).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use secnet_api::wire;
use secnet_keys::seal;
use secnet_model::ClusterState;

use super::identity::Identity;
use super::{Daemon, Member, Runtime, View};
use crate::peer::{connect_tls, PeerRequest, PeerResponse, WatchEvent};

const CACHE_AAD: &[u8] = b"secnet worker state cache v1";

pub(crate) struct WorkerRt {
    view: watch::Sender<View>,
}

impl WorkerRt {
    pub(crate) fn new(daemon: &Arc<Daemon>, _id: &Identity) -> WorkerRt {
        let cached = std::fs::read(daemon.paths.worker_cache())
            .ok()
            .and_then(|sealed| seal::open(&daemon.kek, &sealed, CACHE_AAD).ok())
            .and_then(|plain| serde_json::from_slice::<WatchEvent>(plain.expose()).ok());
        let view = match cached {
            Some(ev) => View {
                applied_index: ev.applied_index,
                leader: ev.leader,
                state: Arc::new(ev.state),
            },
            None => View {
                applied_index: 0,
                leader: None,
                state: Arc::new(ClusterState::default()),
            },
        };
        WorkerRt {
            view: watch::channel(view).0,
        }
    }

    pub(crate) fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// A receiver that wakes on the next view the manager sends.
    pub(crate) fn subscribe(&self) -> watch::Receiver<View> {
        self.view.subscribe()
    }

    fn update(&self, ev: &WatchEvent) {
        self.view.send_replace(View {
            applied_index: ev.applied_index,
            leader: ev.leader,
            state: Arc::new(ev.state.clone()),
        });
    }
}

pub(crate) fn spawn_tasks(daemon: &Arc<Daemon>, member: &Arc<Member>) {
    member.spawn(watch_loop(daemon.clone(), Arc::downgrade(member)));
}

/// Follows the state from one manager after another: on a broken stream, the next one.
async fn watch_loop(daemon: Arc<Daemon>, member: std::sync::Weak<Member>) {
    let mut failures = 0u32;
    loop {
        let Some(m) = member.upgrade() else { return };
        let addrs = m.manager_addrs();
        let tls = m.client_tls.clone();
        drop(m);
        let mut progressed = false;
        for addr in addrs {
            match watch_one(&daemon, &member, addr, tls.clone()).await {
                Ok(()) => progressed = true,
                Err(e) if e.is::<WatchRefused>() => {
                    warn!(manager = %addr, error = %e, "the manager refused this node's watch")
                }
                Err(e) => debug!(manager = %addr, error = %e, "watch stream ended"),
            }
            if member.upgrade().is_none() {
                return;
            }
        }
        failures = if progressed { 0 } else { failures + 1 };
        if failures > 0 && failures % 10 == 1 {
            warn!("no manager reachable for the state watch; retrying");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The manager answered the watch with a denial (told apart from a broken stream by type).
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
struct WatchRefused(String);

async fn watch_one(
    daemon: &Arc<Daemon>,
    member: &std::sync::Weak<Member>,
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<()> {
    let mut conn = connect_tls(addr, tls).await?;
    wire::write_msg(&mut conn, &PeerRequest::Watch).await?;
    info!(manager = %addr, "watching the cluster state");
    loop {
        // Managers send an update at least every few seconds; silence means a dead peer.
        let msg =
            tokio::time::timeout(Duration::from_secs(10), wire::read_msg(&mut conn)).await??;
        let ev = match msg {
            Some(PeerResponse::Watch(ev)) => *ev,
            Some(PeerResponse::Denied(reason)) => return Err(WatchRefused(reason).into()),
            Some(other) => anyhow::bail!("unexpected message {other:?}"),
            None => return Ok(()),
        };
        let Some(m) = member.upgrade() else {
            return Ok(());
        };
        let Runtime::Worker(rt) = &m.rt else {
            return Ok(());
        };
        let changed = rt.view().applied_index != ev.applied_index || rt.view().leader != ev.leader;
        rt.update(&ev);
        if changed {
            persist(daemon, &ev);
        }
    }
}

fn persist(daemon: &Daemon, ev: &WatchEvent) {
    let Ok(json) = serde_json::to_vec(ev) else {
        return;
    };
    let sealed = seal::seal(&daemon.kek, &json, CACHE_AAD);
    if let Err(e) = seal::write_private_file(&daemon.paths.worker_cache(), &sealed) {
        warn!(error = %e, "cannot cache the cluster state");
    }
}
