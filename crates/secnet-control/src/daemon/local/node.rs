//! Node commands: promote, demote, rm, rotate-key.

use super::*;

pub(super) async fn set_roles(m: &Member, keys: &[String], role: Role) -> LocalResult {
    let mut changed = Vec::new();
    for key in keys {
        let node = m.view().state.find_node(key)?.clone();
        if node.role == role {
            changed.push(node.id.to_string());
            continue;
        }
        // The role first: the node learns it through its own Raft log while it is still a
        // member, and switches to the worker runtime. Managers keep accepting its Raft
        // messages while it is in the membership, so a demoted leader can still hand over.
        m.write(Command::SetRole { id: node.id, role }).await?;
        if role == Role::Worker {
            m.propose(Proposal::RemoveVoter { id: node.id }, 0).await?;
        }
        changed.push(node.id.to_string());
    }
    Ok(LocalResponse::NodesChanged(changed))
}

pub(super) async fn node_rm(m: &Member, keys: &[String], force: bool) -> LocalResult {
    let mut removed = Vec::new();
    for key in keys {
        let node = m.view().state.find_node(key)?.clone();
        if node.role == Role::Manager {
            return Err(ApiError::invalid(format!(
                "node {} ({}) is a manager: demote it with `secnet node demote` before removing it",
                node.id, node.hostname
            )));
        }
        if node.status != NodeStatus::Down && !force {
            return Err(ApiError::invalid(format!(
                "node {} ({}) is not down and can't be removed; stop it first or use --force",
                node.id, node.hostname
            )));
        }
        m.write(Command::RemoveNode { id: node.id }).await?;
        removed.push(node.id.to_string());
    }
    Ok(LocalResponse::NodesChanged(removed))
}

/// Asks a node (this one by default) for a new WireGuard static key and waits until it has
/// registered one. The node makes the key itself; its peers switch to it without losing
/// packets (the old sessions carry traffic until the new handshakes complete).
pub(super) async fn node_rotate_key(m: &Member, key: Option<String>) -> LocalResult {
    let view = m.view();
    let node = match &key {
        Some(k) => view.state.find_node(k)?.clone(),
        None => view
            .state
            .nodes
            .get(&m.id.node_id)
            .cloned()
            .ok_or_else(|| ApiError::unavailable("this node is not in the cluster state yet"))?,
    };
    let previous = view
        .state
        .wireguard
        .get(&node.id)
        .map(|w| w.public_key.clone())
        .ok_or_else(|| {
            ApiError::from(secnet_model::ModelError::NoWireguardKey(
                node.hostname.clone(),
            ))
        })?;
    m.write(Command::RequestWireguardRotation { id: node.id })
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Done when the node registered a key other than the previous one; over when it left.
    let registered = |v: &View| match v.state.wireguard.get(&node.id) {
        Some(w) if w.public_key != previous && !w.rotation_requested => Some(Ok(
            LocalResponse::WireguardKey(secnet_api::WireguardKeyInfo {
                node: node.id.to_string(),
                hostname: node.hostname.clone(),
                public_key: w.public_key.clone(),
                previous_public_key: previous.clone(),
            }),
        )),
        Some(_) => None,
        None => Some(Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "node {} ({}) left the cluster meanwhile",
                node.id, node.hostname
            ),
        ))),
    };
    match m.wait_until(deadline, registered).await {
        Ok(answer) => answer,
        Err(last) => Err(ApiError::unavailable(format!(
            "node {} ({}) has not registered a new key within 30 s (status {:?}); the request stands, and the node rotates its key as soon as it runs",
            node.id,
            node.hostname,
            last.state.nodes.get(&node.id).map(|n| n.status)
        ))),
    }
}
