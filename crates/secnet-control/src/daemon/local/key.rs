//! Key-ring commands: ls and rotate.

use super::*;

pub(super) fn key_infos(state: &secnet_model::ClusterState) -> Vec<secnet_api::KeyInfo> {
    let Some(ring) = &state.key_ring else {
        return Vec::new();
    };
    ring.keys()
        .map(|k| secnet_api::KeyInfo {
            epoch: k.epoch,
            state: k.state.to_string(),
            created: super::super::views::rfc3339(k.created_at),
            promoted: k.promoted_at.map(super::super::views::rfc3339),
            installed_on: match k.state {
                secnet_keys::ring::KeyState::Pending => ring.acks(k.epoch).len(),
                _ => state.nodes.len(),
            },
            nodes: state.nodes.len(),
        })
        .collect()
}

/// `key rotate`: a manual rotation; answers once the new key is primary (every live node
/// installed it) or fails with the reason.
pub(super) async fn key_rotate(m: &Member) -> LocalResult {
    if m.role() != Role::Manager {
        return Err(ApiError::invalid(
            "this node is not a manager: keys are rotated from a manager",
        ));
    }
    let cmd = Command::BeginKeyRotation {
        secret: secnet_keys::secret::Secret32::random(&mut rand::rngs::OsRng),
        now: unix_now(),
        reason: secnet_keys::ring::RotationReason::Manual,
    };
    let epoch = match m.write(cmd).await? {
        Response::KeyEpoch(e) => e,
        other => return Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let promoted = |v: &View| {
        let primary = v.state.key_ring.as_ref().map(|r| r.primary().epoch);
        (primary.unwrap_or(0) >= epoch).then(|| LocalResponse::Keys(key_infos(&v.state)))
    };
    let last = match m.wait_until(deadline, promoted).await {
        Ok(answer) => return Ok(answer),
        Err(last) => last,
    };
    let state = &last.state;
    let waiting: Vec<String> = state
        .key_ring
        .as_ref()
        .map(|r| {
            r.awaiting(&crate::agent::keys::live_nodes(state))
                .into_iter()
                .map(|n| {
                    state
                        .nodes
                        .get(&NodeId(n))
                        .map(|x| x.hostname.clone())
                        .unwrap_or_else(|| NodeId(n).to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    Err(ApiError::unavailable(format!(
        "key epoch {epoch} was distributed but not every live node installed it within 30 s (waiting for: {}); it becomes primary as soon as they do",
        waiting.join(", ")
    )))
}
