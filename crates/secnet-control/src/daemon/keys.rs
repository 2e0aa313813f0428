//! Driving the pre-shared-key ring: the leader proposes what `agent::keys::next_leader_step`
//! decides, every tick while leading; every node acknowledges the pending key when
//! `agent::keys::acknowledgement` says it owes it (its endpoint installed the key).

use std::time::Duration;

use tracing::{info, warn};

use secnet_keys::secret::Secret32;

use super::{unix_now, Member};
use crate::agent::keys::{acknowledgement, describe, next_leader_step};
use crate::peer::Proposal;

pub use crate::agent::keys::{live_nodes, KEYS_KEPT};

fn fresh_secret() -> Secret32 {
    Secret32::random(&mut rand::rngs::OsRng)
}

/// The leader's part, run every tick while leading.
pub(crate) async fn leader_step(m: &Member) {
    let super::Runtime::Manager(rt) = &m.rt else {
        return;
    };
    let state = m.view().state;
    if let Some(cmd) = next_leader_step(&state, fresh_secret, unix_now()) {
        let what = describe(&cmd);
        match rt.execute(Proposal::Command(cmd)).await {
            Ok(_) => info!("{what}"),
            Err(e) => warn!(error = %e, "{what} failed"),
        }
    }
}

/// Every node: acknowledges a pending key once its WireGuard endpoint has installed it for
/// receiving (see `TunnelSlot::can_acknowledge`).
pub(crate) async fn ack_loop(member: std::sync::Weak<Member>) {
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(m) = member.upgrade() else { return };
        let state = m.view().state;
        let Some(ack) = acknowledgement(&state, m.id.node_id, |e| m.tunnel.can_acknowledge(e))
        else {
            continue;
        };
        if let Err(e) = m.write(ack).await {
            tracing::debug!(error = %e, "cannot acknowledge the pending key yet");
        }
    }
}
