//! Waiting on this node's view of the cluster: one place that turns "poll the state until X"
//! into "wake when the state or the leader changes, and check X". Every local command that
//! waits for a change to land (a write read back, an endpoint recorded, a key promoted, a
//! leader elected) waits here, so none sleeps and polls.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Member, Runtime, View};
use crate::raft::store::StateView;

/// Wakes when what [`Member::view`] returns may have changed.
pub(crate) enum ViewChanges {
    /// A manager's view changes with every applied entry and every change of leader (the
    /// leader comes from Raft's metrics, not from the state).
    Manager {
        state: watch::Receiver<Arc<StateView>>,
        metrics: watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
    },
    /// A worker's view is what its manager last sent.
    Worker(watch::Receiver<View>),
}

impl ViewChanges {
    /// Returns once the view changed since the last call (or since this was made), or
    /// `false` when it can no longer change (the member is shutting down).
    pub(crate) async fn changed(&mut self) -> bool {
        match self {
            ViewChanges::Manager { state, metrics } => tokio::select! {
                r = state.changed() => r.is_ok(),
                r = metrics.changed() => r.is_ok(),
            },
            ViewChanges::Worker(view) => view.changed().await.is_ok(),
        }
    }
}

impl Member {
    /// Subscribes to changes of this node's view, marking the current one as seen.
    pub(crate) fn view_changes(&self) -> ViewChanges {
        match &self.rt {
            Runtime::Manager(rt) => {
                let mut state = rt.state_rx();
                state.mark_unchanged();
                let mut metrics = rt.raft.metrics();
                metrics.mark_unchanged();
                ViewChanges::Manager { state, metrics }
            }
            Runtime::Worker(rt) => ViewChanges::Worker(rt.subscribe()),
        }
    }

    /// Waits until `ready` gives an answer for this node's view, checking the view now and
    /// each time it changes, until `deadline`. On timeout (or when the view can no longer
    /// change) returns the last view, so the caller can say what was still missing.
    pub(crate) async fn wait_until<T>(
        &self,
        deadline: Instant,
        ready: impl FnMut(&View) -> Option<T>,
    ) -> Result<T, View> {
        // Subscribe before the first look: a change between the two wakes the loop.
        let mut changes = self.view_changes();
        wait_on(&mut changes, deadline, || self.view(), ready).await
    }
}

/// The loop of [`Member::wait_until`], over any view: look, ask, sleep until a change.
async fn wait_on<V, T>(
    changes: &mut ViewChanges,
    deadline: Instant,
    look: impl Fn() -> V,
    mut ready: impl FnMut(&V) -> Option<T>,
) -> Result<T, V> {
    loop {
        let view = look();
        if let Some(answer) = ready(&view) {
            return Ok(answer);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                let view = look();
                return ready(&view).ok_or(view);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use secnet_model::ClusterState;

    fn view(applied_index: u64) -> View {
        View {
            applied_index,
            leader: None,
            state: Arc::new(ClusterState::default()),
        }
    }

    /// A worker-style view channel, and a task that publishes indexes 1..=n, one per second
    /// of (paused, simulated) time.
    fn publishing(n: u64) -> (watch::Receiver<View>, impl Fn() -> View) {
        let (tx, rx) = watch::channel(view(0));
        let reader = rx.clone();
        tokio::spawn(async move {
            for i in 1..=n {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tx.send_replace(view(i));
            }
            // Keep the channel open: a closed one ends the wait at once.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        (rx, move || reader.borrow().clone())
    }

    #[tokio::test(start_paused = true)]
    async fn wakes_on_the_change_that_satisfies_it_not_before_or_after() {
        let (rx, look) = publishing(5);
        let mut changes = ViewChanges::Worker(rx);
        let start = Instant::now();
        let mut looks = 0;
        let got = wait_on(&mut changes, start + Duration::from_secs(30), look, |v| {
            looks += 1;
            (v.applied_index >= 3).then_some(v.applied_index)
        })
        .await;
        assert_eq!(got.unwrap(), 3);
        // Woken by each publication: at 1 s, 2 s and 3 s of simulated time, not by a poll.
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(looks, 4, "one look now and one per change");
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_at_the_deadline_with_the_last_view() {
        let (rx, look) = publishing(2);
        let mut changes = ViewChanges::Worker(rx);
        let start = Instant::now();
        let got = wait_on(&mut changes, start + Duration::from_secs(10), look, |v| {
            (v.applied_index >= 3).then_some(())
        })
        .await;
        assert_eq!(got.unwrap_err().applied_index, 2);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_view_that_can_no_longer_change_ends_the_wait_at_once() {
        let (tx, rx) = watch::channel(view(7));
        let reader = rx.clone();
        drop(tx);
        let mut changes = ViewChanges::Worker(rx);
        let start = Instant::now();
        let got = wait_on(
            &mut changes,
            start + Duration::from_secs(10),
            || reader.borrow().clone(),
            |v| (v.applied_index > 7).then_some(()),
        )
        .await;
        assert_eq!(got.unwrap_err().applied_index, 7);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
