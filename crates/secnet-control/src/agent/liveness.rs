//! Node liveness, a leader's duty: a node the leader has not heard from for
//! [`NODE_DOWN_AFTER`] is marked `Down`, and `Ready` again when it speaks. The leader hears
//! heartbeats (every node sends one every second); the ages of the last ones are a fact of
//! the leader, and a new leader gives everyone [`NODE_DOWN_AFTER`] before it marks anyone
//! down, since it has heard nobody yet.

use std::collections::BTreeMap;
use std::time::Duration;

use secnet_model::{ClusterState, Command, NodeId, NodeStatus};

/// Silence after which the leader marks a node down.
pub const NODE_DOWN_AFTER: Duration = Duration::from_secs(5);

/// What the leader knows about liveness: how long it has led, and how long ago it last heard
/// from each node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Liveness {
    pub leading_for: Duration,
    pub heard: BTreeMap<NodeId, Duration>,
}

/// The status changes leader `me` should propose.
pub fn status_changes(state: &ClusterState, me: NodeId, live: &Liveness) -> Vec<Command> {
    let grace = live.leading_for < NODE_DOWN_AFTER;
    state
        .nodes
        .values()
        .filter_map(|node| {
            let alive = node.id == me
                || live
                    .heard
                    .get(&node.id)
                    .is_some_and(|age| *age < NODE_DOWN_AFTER);
            let status = match (node.status, alive) {
                (NodeStatus::Down, true) => NodeStatus::Ready,
                (NodeStatus::Ready, false) if !grace => NodeStatus::Down,
                _ => return None,
            };
            Some(Command::SetStatus {
                id: node.id,
                status,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_state::*;
    use super::*;

    fn heard(ages: &[(NodeId, u64)]) -> BTreeMap<NodeId, Duration> {
        ages.iter()
            .map(|(n, s)| (*n, Duration::from_secs(*s)))
            .collect()
    }

    fn changes(state: &ClusterState, leading_for: u64, ages: &[(NodeId, u64)]) -> Vec<String> {
        let live = Liveness {
            leading_for: Duration::from_secs(leading_for),
            heard: heard(ages),
        };
        status_changes(state, MANAGER, &live)
            .into_iter()
            .map(|c| match c {
                Command::SetStatus { id, status } => format!("{}:{}", id.0, status.as_str()),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn silent_nodes_go_down_after_the_grace_and_come_back_when_heard() {
        let mut s = cluster();
        // A new leader has heard nobody: nothing changes during its grace.
        assert!(changes(&s, 0, &[]).is_empty());
        assert!(changes(&s, 4, &[(WORKER, 1)]).is_empty());
        // Past the grace: the silent worker goes down, the one heard recently stays; the
        // leader itself is never marked down.
        assert_eq!(
            changes(&s, 6, &[(WORKER, 1), (OTHER_WORKER, 5)]),
            ["3:down"]
        );
        apply(
            &mut s,
            Command::SetStatus {
                id: OTHER_WORKER,
                status: NodeStatus::Down,
            },
        );
        assert!(changes(&s, 7, &[(WORKER, 1)]).is_empty());
        // Heard again (even during a new leader's grace): ready.
        assert_eq!(changes(&s, 0, &[(OTHER_WORKER, 0)]), ["3:ready"]);
    }
}
