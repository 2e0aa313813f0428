//! The reconciler: the executor of the data path. The driver (`driver.rs`) hands it what
//! `agent::decide` planned for this node ([`DataPathPlan`]); each pass installs the
//! strict-mode rules, then observes the kernel, plans with `secnet_dataplane::plan` and
//! applies: on every new plan, on a kick, and every [`RESYNC`] to repair what was changed
//! behind our back. When the rules cannot be installed the pass programs the plan's
//! fallback, which has nothing of encrypted networks, so they come down in the very pass
//! that finds the rules missing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use secnet_dataplane::{Desired, Layout, StrictPolicy};

use super::Member;
use crate::agent::PlannedDataPath;

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

/// What the driver asks the reconciler to program: `agent::decide`'s data-path action for
/// the state at `applied_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPathPlan {
    pub applied_index: u64,
    /// With the strict-mode rules in place.
    pub secured: PlannedDataPath,
    /// Without them: nothing of encrypted networks.
    pub fallback: PlannedDataPath,
    pub strict: StrictPolicy,
}

/// Handle to a running reconciler.
pub struct Reconciler {
    pub(crate) layout: Layout,
    kick: Arc<Notify>,
    status: watch::Sender<ReconcileStatus>,
    plan: watch::Sender<Option<DataPathPlan>>,
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
            plan: watch::channel(None).0,
        }
    }

    /// Hands over the data path to program; a pass follows when it differs from the last.
    pub fn program(&self, plan: DataPathPlan) {
        self.plan.send_if_modified(|current| {
            if current.as_ref() == Some(&plan) {
                return false;
            }
            *current = Some(plan);
            true
        });
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
    let (kick, layout, mut plans) = {
        let Some(m) = member.upgrade() else { return };
        (
            m.reconciler.kick.clone(),
            m.reconciler.layout.clone(),
            m.reconciler.plan.subscribe(),
        )
    };
    let mut last_index = None;
    loop {
        let plan = plans.borrow_and_update().clone();
        // Nothing to program before the driver's first plan.
        if let Some(plan) = plan {
            let changed = last_index != Some(plan.applied_index);
            let applied_index = plan.applied_index;
            let layout = layout.clone();
            let (ready, errors, ops) =
                tokio::task::spawn_blocking(move || pass(&layout, &plan, changed))
                    .await
                    .unwrap_or_else(|e| {
                        (
                            BTreeSet::new(),
                            vec![format!("reconcile task failed: {e}")],
                            0,
                        )
                    });
            if ops > 0 {
                info!(ops, errors = errors.len(), "data path reconciled");
            }
            for e in &errors {
                warn!(error = %e, "data path operation failed");
            }
            let Some(m) = member.upgrade() else { return };
            m.reconciler.status.send_modify(|s| {
                s.pass += 1;
                s.applied_index = applied_index;
                s.ready = ready;
                s.errors = errors;
            });
            last_index = Some(applied_index);
        }
        tokio::select! {
            r = plans.changed() => if r.is_err() { return },
            _ = kick.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// One pass over a plan: strict mode first (encrypted networks exist on this node only while
/// their rules are known to be in place), then the secured path or the fallback. Returns
/// the endpoints ready after it, the errors and how many operations were applied.
fn pass(
    layout: &Layout,
    plan: &DataPathPlan,
    changed: bool,
) -> (BTreeSet<String>, Vec<String>, usize) {
    let (path, strict_error) = match secnet_dataplane::ensure_strict(layout, &plan.strict) {
        Ok(reinstalled) => {
            if reinstalled {
                info!(vnis = ?plan.strict.encrypted_vnis, "strict-mode rules installed");
            }
            (&plan.secured, None)
        }
        // Nothing to protect: not an error (a host without nftables can still run
        // unencrypted networks).
        Err(e) if plan.strict.encrypted_vnis.is_empty() => {
            debug!(error = %e, "strict-mode rules not installed (no encrypted networks)");
            (&plan.fallback, None)
        }
        Err(e) => (
            &plan.fallback,
            Some(format!(
                "strict mode unavailable, encrypted networks are down on this node: {e:#}"
            )),
        ),
    };
    // Parts the planner cannot program are left out by it; say so when the state changes
    // rather than every pass.
    if changed {
        for problem in path.desired.problems() {
            warn!(%problem, "part of the desired data path is ignored");
        }
    }
    let (mut ready, mut errors, ops) = reconcile_once(layout, &path.desired);
    errors.extend(strict_error);
    // An endpoint with an encrypted interface left out is not ready.
    for (name, why) in &path.waiting {
        ready.remove(name);
        errors.push(format!("endpoint {name}: {why}"));
    }
    (ready, errors, ops)
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
