//! Driving the pre-shared-key ring: the leader seeds it, starts rotations (on schedule, on
//! `secnet key rotate`, and at once when a node is removed), promotes a pending key once
//! every live node has acknowledged it, and retires old keys; every node acknowledges the
//! pending key once its WireGuard endpoint has installed it for receiving. The rules
//! themselves are the pure `secnet_keys::ring`.

use std::collections::BTreeSet;
use std::time::Duration;

use tracing::{info, warn};

use secnet_keys::ring::RotationReason;
use secnet_keys::secret::Secret32;
use secnet_model::{ClusterState, Command, NodeId, NodeStatus};

use super::{unix_now, Member};
use crate::peer::Proposal;

/// Keys kept after a promotion: the new primary and the one before it, so sessions still
/// using the old key keep working until they rekey.
pub const KEYS_KEPT: usize = 2;

fn fresh_secret() -> Secret32 {
    Secret32::random(&mut rand::rngs::OsRng)
}

/// The nodes whose acknowledgement a promotion waits for: those the leader hears from.
pub fn live_nodes(state: &ClusterState) -> BTreeSet<u64> {
    state
        .nodes
        .values()
        .filter(|n| n.status == NodeStatus::Ready)
        .map(|n| n.id.0)
        .collect()
}

/// What the leader should propose next for the ring, if anything.
pub fn next_leader_step(state: &ClusterState, now: u64) -> Option<Command> {
    let config = state.config.as_ref()?;
    let Some(ring) = &state.key_ring else {
        return Some(Command::SeedKeyRing {
            secret: fresh_secret(),
            now,
        });
    };
    if let Some(removed) = state.rotations_owed.iter().next() {
        return Some(Command::BeginKeyRotation {
            secret: fresh_secret(),
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
            secret: fresh_secret(),
            now,
            reason: RotationReason::Scheduled,
        });
    }
    None
}

/// The leader's part, run every tick while leading.
pub(crate) async fn leader_step(m: &Member) {
    let super::Runtime::Manager(rt) = &m.rt else {
        return;
    };
    let state = m.view().state;
    if let Some(cmd) = next_leader_step(&state, unix_now()) {
        let what = match &cmd {
            Command::SeedKeyRing { .. } => "seeding the key ring".to_string(),
            Command::BeginKeyRotation { reason, .. } => format!("key rotation ({reason})"),
            Command::PromoteKey { .. } => "promoting the pending key".to_string(),
            _ => "retiring old keys".to_string(),
        };
        match rt.execute(Proposal::Command(cmd)).await {
            Ok(_) => info!("{what}"),
            Err(e) => warn!(error = %e, "{what} failed"),
        }
    }
}

/// Every node: acknowledges a pending key once its WireGuard endpoint has installed it for
/// receiving (see `TunnelSlot::can_acknowledge`), so that no node promotes a key a live
/// peer could not answer with.
pub(crate) async fn ack_loop(member: std::sync::Weak<Member>) {
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(m) = member.upgrade() else { return };
        let state = m.view().state;
        let me: NodeId = m.id.node_id;
        let Some(pending) = state.key_ring.as_ref().and_then(|r| r.pending()) else {
            continue;
        };
        let epoch = pending.epoch;
        let acked = state
            .key_ring
            .as_ref()
            .is_some_and(|r| r.acks(epoch).contains(&me.0));
        if acked || !state.nodes.contains_key(&me) || !m.tunnel.can_acknowledge(epoch) {
            continue;
        }
        if let Err(e) = m.write(Command::AckKey { node: me, epoch }).await {
            tracing::debug!(epoch, error = %e, "cannot acknowledge the pending key yet");
        }
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

    fn apply(s: &mut ClusterState, cmd: Command) {
        s.apply(cmd).unwrap();
    }

    #[test]
    fn the_leader_seeds_rotates_promotes_and_retires() {
        let mut s = state();
        let cmd = next_leader_step(&s, 10).unwrap();
        assert!(matches!(cmd, Command::SeedKeyRing { .. }));
        apply(&mut s, cmd);
        assert!(next_leader_step(&s, 50).is_none(), "nothing due yet");

        // Due after the interval: a scheduled rotation.
        let cmd = next_leader_step(&s, 110).unwrap();
        assert!(matches!(
            cmd,
            Command::BeginKeyRotation {
                reason: RotationReason::Scheduled,
                ..
            }
        ));
        apply(&mut s, cmd);
        // Not promoted until every live node (1 and 2; 3 is down) acknowledged.
        assert!(next_leader_step(&s, 111).is_none());
        apply(
            &mut s,
            Command::AckKey {
                node: NodeId(1),
                epoch: 2,
            },
        );
        assert!(next_leader_step(&s, 111).is_none());
        apply(
            &mut s,
            Command::AckKey {
                node: NodeId(2),
                epoch: 2,
            },
        );
        let cmd = next_leader_step(&s, 112).unwrap();
        assert!(
            matches!(&cmd, Command::PromoteKey { live, .. } if *live == BTreeSet::from([1, 2]))
        );
        apply(&mut s, cmd);
        let ring = s.key_ring.as_ref().unwrap();
        assert_eq!(ring.primary().epoch, 2);
        assert_eq!(ring.keys().count(), 2);

        // A removed node owes a rotation, which comes before anything else.
        apply(&mut s, Command::RemoveNode { id: NodeId(2) });
        let cmd = next_leader_step(&s, 113).unwrap();
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
        let cmd = next_leader_step(&s, 114).unwrap();
        apply(&mut s, cmd);
        // Three keys now: the oldest retires.
        let cmd = next_leader_step(&s, 115).unwrap();
        assert_eq!(
            format!("{cmd:?}"),
            format!("{:?}", Command::RetireKeys { keep: KEYS_KEPT })
        );
        apply(&mut s, cmd);
        assert_eq!(s.key_ring.as_ref().unwrap().keys().count(), KEYS_KEPT);
        assert!(next_leader_step(&s, 116).is_none());
    }
}
