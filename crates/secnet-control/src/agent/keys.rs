//! The pre-shared-key ring's decisions: what the leader proposes next (seed the ring, start
//! a rotation on schedule or when a node was removed, promote a pending key once every live
//! node acknowledged it, retire old keys) and when a node acknowledges the pending key (once
//! its WireGuard endpoint holds it for receiving). The ring's own rules are the pure
//! `secnet_keys::ring`; fresh secrets come from the caller, so the decisions are
//! deterministic.

use std::collections::BTreeSet;

use secnet_keys::ring::RotationReason;
use secnet_keys::secret::Secret32;
use secnet_model::{ClusterState, Command, NodeId, NodeStatus};

/// Keys kept after a promotion: the new primary and the one before it, so sessions still
/// using the old key keep working until they rekey.
pub const KEYS_KEPT: usize = 2;

/// The nodes whose acknowledgement a promotion waits for: those the leader hears from.
pub fn live_nodes(state: &ClusterState) -> BTreeSet<u64> {
    state
        .nodes
        .values()
        .filter(|n| n.status == NodeStatus::Ready)
        .map(|n| n.id.0)
        .collect()
}

/// What the leader should propose next for the ring, if anything; `fresh` makes the secret
/// of a new key.
pub fn next_leader_step(
    state: &ClusterState,
    fresh: impl FnOnce() -> Secret32,
    now: u64,
) -> Option<Command> {
    let config = state.config.as_ref()?;
    let Some(ring) = &state.key_ring else {
        return Some(Command::SeedKeyRing {
            secret: fresh(),
            now,
        });
    };
    if let Some(removed) = state.rotations_owed.iter().next() {
        return Some(Command::BeginKeyRotation {
            secret: fresh(),
            now,
            reason: RotationReason::NodeRemoved(removed.0),
        });
    }
    if ring.pending().is_some() {
        let live = live_nodes(state);
        if ring.clone().try_promote(&live, now).is_some() {
            return Some(Command::PromoteKey { live, now });
        }
        return None;
    }
    if ring.keys().count() > KEYS_KEPT {
        return Some(Command::RetireKeys { keep: KEYS_KEPT });
    }
    if ring.due_for_rotation(now, config.key_rotation_interval_secs) {
        return Some(Command::BeginKeyRotation {
            secret: fresh(),
            now,
            reason: RotationReason::Scheduled,
        });
    }
    None
}

/// The acknowledgement node `me` owes, if any: the pending key's, once `installed(epoch)`
/// says its endpoint holds the key for receiving, so that no key is promoted that a live
/// peer could not answer with.
pub fn acknowledgement(
    state: &ClusterState,
    me: NodeId,
    installed: impl Fn(u64) -> bool,
) -> Option<Command> {
    let ring = state.key_ring.as_ref()?;
    let epoch = ring.pending()?.epoch;
    let owed = state.nodes.contains_key(&me) && !ring.acks(epoch).contains(&me.0);
    (owed && installed(epoch)).then_some(Command::AckKey { node: me, epoch })
}

/// A short description of a leader's key command, for its log line.
pub fn describe(cmd: &Command) -> String {
    match cmd {
        Command::SeedKeyRing { .. } => "seeding the key ring".to_string(),
        Command::BeginKeyRotation { reason, .. } => format!("key rotation ({reason})"),
        Command::PromoteKey { .. } => "promoting the pending key".to_string(),
        _ => "retiring old keys".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use secnet_model::{ClusterConfig, Node, Role};

    fn node(id: u64, status: NodeStatus) -> Node {
        Node {
            id: NodeId(id),
            hostname: format!("h{id}"),
            role: if id == 1 { Role::Manager } else { Role::Worker },
            status,
            advertise_addr: format!("192.0.2.{id}:2377").parse().unwrap(),
            data_path_addr: format!("198.51.100.{id}").parse().unwrap(),
            cert_fingerprint: format!("fp{id}"),
            underlay: Vec::new(),
            joined_at: 0,
        }
    }

    fn state() -> ClusterState {
        let mut s = ClusterState {
            config: Some(ClusterConfig {
                cluster_id: "c".into(),
                pools: secnet_ipam::PoolConfig::default(),
                data_path_port: 4789,
                wireguard_port: 51820,
                key_rotation_interval_secs: 100,
                created_at: 0,
            }),
            ..Default::default()
        };
        for (id, st) in [
            (1, NodeStatus::Ready),
            (2, NodeStatus::Ready),
            (3, NodeStatus::Down),
        ] {
            s.nodes.insert(NodeId(id), node(id, st));
        }
        s
    }

    fn fresh() -> Secret32 {
        Secret32::new([7; 32])
    }

    fn apply(s: &mut ClusterState, cmd: Command) {
        s.apply(cmd).unwrap();
    }

    #[test]
    fn the_leader_seeds_rotates_promotes_and_retires() {
        let mut s = state();
        let cmd = next_leader_step(&s, fresh, 10).unwrap();
        assert!(matches!(cmd, Command::SeedKeyRing { .. }));
        apply(&mut s, cmd);
        assert!(next_leader_step(&s, fresh, 50).is_none(), "nothing due yet");

        // Due after the interval: a scheduled rotation.
        let cmd = next_leader_step(&s, fresh, 110).unwrap();
        assert!(matches!(
            cmd,
            Command::BeginKeyRotation {
                reason: RotationReason::Scheduled,
                ..
            }
        ));
        apply(&mut s, cmd);
        // Not promoted until every live node (1 and 2; 3 is down) acknowledged.
        assert!(next_leader_step(&s, fresh, 111).is_none());
        apply(
            &mut s,
            Command::AckKey {
                node: NodeId(1),
                epoch: 2,
            },
        );
        assert!(next_leader_step(&s, fresh, 111).is_none());
        apply(
            &mut s,
            Command::AckKey {
                node: NodeId(2),
                epoch: 2,
            },
        );
        let cmd = next_leader_step(&s, fresh, 112).unwrap();
        assert!(
            matches!(&cmd, Command::PromoteKey { live, .. } if *live == BTreeSet::from([1, 2]))
        );
        apply(&mut s, cmd);
        let ring = s.key_ring.as_ref().unwrap();
        assert_eq!(ring.primary().epoch, 2);
        assert_eq!(ring.keys().count(), 2);

        // A removed node owes a rotation, which comes before anything else.
        apply(&mut s, Command::RemoveNode { id: NodeId(2) });
        let cmd = next_leader_step(&s, fresh, 113).unwrap();
        assert!(matches!(
            cmd,
            Command::BeginKeyRotation {
                reason: RotationReason::NodeRemoved(2),
                ..
            }
        ));
        apply(&mut s, cmd);
        assert!(s.rotations_owed.is_empty());
        apply(
            &mut s,
            Command::AckKey {
                node: NodeId(1),
                epoch: 3,
            },
        );
        let cmd = next_leader_step(&s, fresh, 114).unwrap();
        apply(&mut s, cmd);
        // Three keys now: the oldest retires.
        let cmd = next_leader_step(&s, fresh, 115).unwrap();
        assert_eq!(
            format!("{cmd:?}"),
            format!("{:?}", Command::RetireKeys { keep: KEYS_KEPT })
        );
        apply(&mut s, cmd);
        assert_eq!(s.key_ring.as_ref().unwrap().keys().count(), KEYS_KEPT);
        assert!(next_leader_step(&s, fresh, 116).is_none());
    }
}
