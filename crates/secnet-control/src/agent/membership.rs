//! A node's decisions about its own membership: switch runtime when the replicated state gives
//! it another role (`node promote` / `node demote`), renew its certificate before it expires,
//! and, as a manager, ask to become a Raft voter. The daemon carries them out (`Daemon`'s role
//! watcher and `manager.rs`'s `ensure_voter`), since they replace or extend the very member
//! that runs the driver.

use std::time::Duration;

use secnet_model::{ClusterState, NodeId, Role};

/// What a node should do about its membership now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipStep {
    /// The state gives this node another role: get a certificate for it and restart the
    /// runtime as that role.
    SwitchRole(Role),
    /// Same role, but the certificate is due for renewal.
    RenewCertificate,
}

/// The membership step node `me`, running as `running`, should take (`None`: nothing, or
/// the node is not in the state).
pub fn membership_step(
    state: &ClusterState,
    me: NodeId,
    running: Role,
    certificate_due: bool,
) -> Option<MembershipStep> {
    let node = state.nodes.get(&me)?;
    if node.role != running {
        Some(MembershipStep::SwitchRole(node.role))
    } else if certificate_due {
        Some(MembershipStep::RenewCertificate)
    } else {
        None
    }
}

/// Whether manager `me` should ask to become a Raft voter: it is not one, and the state
/// knows it as a manager, or it is fresh from a join (no state yet). A demoted node never
/// re-adds itself.
pub fn wants_voter(state: &ClusterState, me: NodeId, is_voter: bool) -> bool {
    if is_voter {
        return false;
    }
    match state.nodes.get(&me) {
        Some(n) => n.role == Role::Manager,
        None => !state.is_initialized(),
    }
}

/// Whether a certificate expiring at `not_after` should be renewed at `now`: past a point
/// between 50% and 80% of its lifetime, spread by node id so a cluster's nodes do not all renew
/// at once (Swarm does the same with a random point).
pub fn renewal_due(
    not_after: std::time::SystemTime,
    now: std::time::SystemTime,
    lifetime: Duration,
    node: NodeId,
) -> bool {
    let lifetime = lifetime.as_secs();
    let per_mille = 500 + (node.0 % 301);
    let renew_after = lifetime * per_mille / 1000;
    let remaining = not_after
        .duration_since(now)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    lifetime.saturating_sub(remaining) > renew_after
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::super::test_state::*;
    use super::*;
    use secnet_model::Command;

    #[test]
    fn a_role_change_comes_before_a_renewal() {
        let s = cluster();
        assert_eq!(membership_step(&s, WORKER, Role::Worker, false), None);
        assert_eq!(
            membership_step(&s, WORKER, Role::Worker, true),
            Some(MembershipStep::RenewCertificate)
        );
        // Running as a manager while the state says worker (a demotion): switch, even when
        // the certificate is due too (the switch gets a new one).
        assert_eq!(
            membership_step(&s, WORKER, Role::Manager, true),
            Some(MembershipStep::SwitchRole(Role::Worker))
        );
        // Not in the state (removed, or not caught up): nothing.
        assert_eq!(membership_step(&s, NodeId(99), Role::Worker, true), None);
    }

    #[test]
    fn only_managers_and_fresh_joiners_ask_to_vote() {
        let mut s = cluster();
        assert!(wants_voter(&s, MANAGER, false));
        assert!(!wants_voter(&s, MANAGER, true));
        assert!(
            !wants_voter(&s, WORKER, false),
            "a worker, or a demoted manager"
        );
        assert!(wants_voter(
            &secnet_model::ClusterState::default(),
            NodeId(7),
            false
        ));
        assert!(
            !wants_voter(&s, NodeId(7), false),
            "unknown to an initialized state"
        );
        apply(
            &mut s,
            Command::SetRole {
                id: WORKER,
                role: Role::Manager,
            },
        );
        assert!(wants_voter(&s, WORKER, false));
    }

    #[test]
    fn renewal_happens_between_half_and_four_fifths_of_the_lifetime() {
        let lifetime = Duration::from_secs(90 * 86400);
        let issued = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let not_after = issued + lifetime;
        for node in [NodeId(0), NodeId(150), NodeId(300), NodeId(u64::MAX)] {
            let at = |frac: f64| issued + Duration::from_secs_f64(lifetime.as_secs_f64() * frac);
            assert!(!renewal_due(not_after, at(0.49), lifetime, node), "{node}");
            assert!(renewal_due(not_after, at(0.81), lifetime, node), "{node}");
            assert!(renewal_due(
                not_after,
                not_after + Duration::from_secs(1),
                lifetime,
                node
            ));
        }
        // Nodes spread over the window.
        let at_65 = issued + lifetime.mul_f64(0.65);
        let due: usize = (0..301)
            .filter(|n| renewal_due(not_after, at_65, lifetime, NodeId(*n)))
            .count();
        assert!((100..200).contains(&due), "{due}");
    }
}
