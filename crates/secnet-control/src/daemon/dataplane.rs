//! The reconciler: turns this node's share of the replicated state (its endpoints, and the
//! networks they are on with every remote endpoint of those networks) into kernel state, and
//! keeps it there. Planning is pure (`secnet_dataplane::plan`); this loop only observes,
//! plans and applies, on every state change and every [`RESYNC`] to repair what was changed
//! behind our back.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use secnet_dataplane::{Desired, Layout};

use super::views::underlay_mtu;
use super::Member;
pub use crate::agent::datapath::{desired_for, strict_policy_for, EncryptedPath};

/// How often the kernel is compared with the state even when nothing changed.
pub const RESYNC: Duration = Duration::from_secs(2);

/// What the last reconcile pass achieved.
#[derive(Debug, Clone, Default)]
pub struct ReconcileStatus {
    /// Increases with every finished pass.
    pub pass: u64,
    /// The state index the pass worked from.
    pub applied_index: u64,
    /// Endpoints fully programmed by that pass.
    pub ready: BTreeSet<String>,
    /// Errors of that pass (empty when the kernel matches the state).
    pub errors: Vec<String>,
}

/// Handle to a running reconciler.
pub struct Reconciler {
    pub(crate) layout: Layout,
    kick: Arc<Notify>,
    status: watch::Sender<ReconcileStatus>,
}

impl Reconciler {
    pub fn new(run_dir: PathBuf) -> Reconciler {
        Reconciler {
            layout: Layout {
                run_dir,
                host_netns: None,
            },
            kick: Arc::new(Notify::new()),
            status: watch::channel(ReconcileStatus::default()).0,
        }
    }

    /// Asks for a pass now.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    pub fn status(&self) -> watch::Receiver<ReconcileStatus> {
        self.status.subscribe()
    }

    /// The namespace path of a local endpoint.
    pub fn endpoint_netns(&self, name: &str) -> PathBuf {
        secnet_dataplane::endpoint_netns_path(&self.layout, name)
    }
}

/// Runs reconcile passes until the member stops.
pub(crate) async fn run(member: std::sync::Weak<Member>) {
    let (kick, layout) = {
        let Some(m) = member.upgrade() else { return };
        (m.reconciler.kick.clone(), m.reconciler.layout.clone())
    };
    let mut last_index = u64::MAX;
    let mut since_full = RESYNC;
    let tick = Duration::from_millis(250);
    loop {
        let Some(m) = member.upgrade() else { return };
        let view = m.view();
        let me = m.id.node_id;
        let vtep = m.id.data_path_addr;
        drop(m);
        if view.applied_index != last_index || since_full >= RESYNC {
            let policy = strict_policy_for(&view.state);
            let state = view.state.clone();
            let layout = layout.clone();
            let changed = view.applied_index != last_index;
            let result = tokio::task::spawn_blocking(move || {
                // Strict mode first: encrypted networks exist on this node only while their
                // rules are known to be in place.
                let (encrypted, strict_error) = match secnet_dataplane::ensure_strict(&layout, &policy) {
                    Ok(reinstalled) => {
                        if reinstalled {
                            info!(vnis = ?policy.encrypted_vnis, "strict-mode rules installed");
                        }
                        (EncryptedPath::Ready, None)
                    }
                    // Nothing to protect: not an error (a host without nftables can still
                    // run unencrypted networks).
                    Err(e) if policy.encrypted_vnis.is_empty() => {
                        debug!(error = %e, "strict-mode rules not installed (no encrypted networks)");
                        (EncryptedPath::Unavailable, None)
                    }
                    Err(e) => (
                        EncryptedPath::Unavailable,
                        Some(format!("strict mode unavailable, encrypted networks are down on this node: {e:#}")),
                    ),
                };
                let (desired, waiting) =
                    desired_for(&state, me, vtep, underlay_mtu(vtep), encrypted);
                // Parts the planner cannot program are left out by it; say so when the state
                // changes rather than every pass.
                if changed {
                    for problem in desired.problems() {
                        warn!(%problem, "part of the desired data path is ignored");
                    }
                }
                let (mut ready, mut errors, ops) = reconcile_once(&layout, &desired);
                errors.extend(strict_error);
                // An endpoint with an encrypted interface left out is not ready.
                for (name, why) in waiting {
                    ready.remove(&name);
                    errors.push(format!("endpoint {name}: {why}"));
                }
                (ready, errors, ops)
            })
            .await
                .unwrap_or_else(|e| {
                    (
                        BTreeSet::new(),
                        vec![format!("reconcile task failed: {e}")],
                        0,
                    )
                });
            let (ready, errors, ops) = result;
            if ops > 0 {
                info!(ops, errors = errors.len(), "data path reconciled");
            }
            for e in &errors {
                warn!(error = %e, "data path operation failed");
            }
            if let Some(m) = member.upgrade() {
                m.reconciler.status.send_modify(|s| {
                    s.pass += 1;
                    s.applied_index = view.applied_index;
                    s.ready = ready;
                    s.errors = errors;
                });
            }
            last_index = view.applied_index;
            since_full = Duration::ZERO;
        }
        tokio::select! {
            _ = kick.notified() => { since_full = RESYNC; }
            _ = tokio::time::sleep(tick) => { since_full += tick; }
        }
    }
}

/// One pass: observe, plan, apply. Returns the endpoints that match the desired state after
/// the pass, the errors, and how many operations were applied.
pub fn reconcile_once(
    layout: &Layout,
    desired: &Desired,
) -> (BTreeSet<String>, Vec<String>, usize) {
    let observed = match secnet_dataplane::observe(layout) {
        Ok(o) => o,
        Err(e) => {
            return (
                BTreeSet::new(),
                vec![format!("observing the kernel: {e:#}")],
                0,
            )
        }
    };
    let ops = secnet_dataplane::plan(desired, &observed);
    if ops.is_empty() {
        return (desired.endpoints.keys().cloned().collect(), Vec::new(), 0);
    }
    debug!(?ops, "applying data path operations");
    let report = secnet_dataplane::apply(layout, &ops);
    let errors: Vec<String> = report.errors().map(|e| e.to_string()).collect();
    // Check the outcome rather than trusting the report.
    let ready = match secnet_dataplane::observe(layout) {
        Ok(after) => {
            let remaining = secnet_dataplane::plan(desired, &after);
            desired
                .endpoints
                .keys()
                .filter(|name| !remaining.iter().any(|op| op.concerns_endpoint(name)))
                .cloned()
                .collect()
        }
        Err(_) => BTreeSet::new(),
    };
    (ready, errors, ops.len())
}
