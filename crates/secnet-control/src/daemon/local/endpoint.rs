//! Endpoint commands; each waits until this node's kernel matches.

use super::*;

/// How long an endpoint request waits for this node's kernel to match.
pub(super) const PROGRAMMING_TIMEOUT: Duration = Duration::from_secs(20);

pub(super) fn endpoint_view(
    m: &Member,
    state: &secnet_model::ClusterState,
    e: &secnet_model::Endpoint,
) -> secnet_api::EndpointInfo {
    let netns = (e.node == m.id.node_id)
        .then(|| m.reconciler.endpoint_netns(&e.name).display().to_string());
    endpoint_info(e, state, m.id.data_path_addr, netns)
}

/// Waits until this node's copy of the state satisfies `in_state`, then until a reconcile
/// pass that started from that state (or a later one) left endpoint `name` programmed (or,
/// with `gone`, removed) without errors.
pub(super) async fn wait_programmed(
    m: &Member,
    name: &str,
    gone: bool,
    in_state: impl Fn(&secnet_model::ClusterState) -> bool,
) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + PROGRAMMING_TIMEOUT;
    let timeout_error = |detail: String| {
        ApiError::internal(format!(
            "endpoint {name:?} was {} in the cluster state, but this node did not follow within {} s: {detail}",
            if gone { "removed" } else { "recorded" },
            PROGRAMMING_TIMEOUT.as_secs()
        ))
    };
    let index = m
        .wait_until(deadline, |v| in_state(&v.state).then_some(v.applied_index))
        .await
        .map_err(|_| {
            timeout_error("the change has not reached this node's copy of the state".into())
        })?;
    let mut status = m.reconciler.status();
    m.reconciler.kick();
    loop {
        {
            let s = status.borrow_and_update();
            if s.applied_index >= index {
                let done = if gone {
                    !s.ready.contains(name) && !m.reconciler.endpoint_netns(name).exists()
                } else {
                    // Errors about other endpoints or networks do not hold this one up (they
                    // show in `secnet status`); its own make it not ready.
                    s.ready.contains(name)
                };
                if done {
                    return Ok(());
                }
            }
        }
        if tokio::time::timeout_at(deadline, status.changed())
            .await
            .is_err()
        {
            let s = status.borrow();
            let detail = if s.errors.is_empty() {
                "no error reported".to_string()
            } else {
                s.errors.join("; ")
            };
            return Err(timeout_error(detail));
        }
    }
}

pub(super) async fn endpoint_create(
    m: &Member,
    network: String,
    name: Option<String>,
    ip: Option<std::net::Ipv4Addr>,
) -> LocalResult {
    let view = m.view();
    let net = view.state.find_network(&network)?.clone();
    let mut rng = rand::rngs::OsRng;
    let name = name.unwrap_or_else(|| {
        let suffix: u32 = rng.gen();
        format!("{}-{:06x}", net.name, suffix & 0xff_ffff)
    });
    secnet_model::state::validate_endpoint_name(&name)?;
    if view.state.endpoints.contains_key(&name) {
        return Err(secnet_model::ModelError::DuplicateEndpointName(name).into());
    }
    let cmd = Command::CreateEndpoint {
        id: secnet_model::ids::network_id_from_bytes(rng.gen()),
        name: name.clone(),
        node: m.id.node_id,
        network,
        ip,
        created_at: unix_now(),
    };
    m.write(cmd).await?;
    wait_programmed(m, &name, false, |st| st.endpoints.contains_key(&name)).await?;
    let v = m.view();
    let ep = v.state.find_endpoint(&name)?;
    Ok(LocalResponse::Endpoint(endpoint_view(m, &v.state, ep)))
}

pub(super) async fn endpoint_change(m: &Member, name: &str, cmd: Command) -> LocalResult {
    let ep = m.view().state.find_endpoint(name)?.clone();
    m.write(cmd).await?;
    if ep.node == m.id.node_id {
        let before = ep.attachments.clone();
        wait_programmed(m, name, false, |st| {
            st.endpoints
                .get(name)
                .is_some_and(|e| e.attachments != before)
        })
        .await?;
    }
    let v = m.view();
    let ep = v.state.find_endpoint(name)?;
    Ok(LocalResponse::Endpoint(endpoint_view(m, &v.state, ep)))
}

pub(super) async fn endpoint_rm(m: &Member, names: &[String]) -> LocalResult {
    // Resolve every name first: `rm a b` with a bad `b` removes nothing.
    let eps = names
        .iter()
        .map(|n| m.view().state.find_endpoint(n).cloned())
        .collect::<Result<Vec<_>, _>>()?;
    let mut removed = Vec::new();
    for ep in eps {
        m.write(Command::RemoveEndpoint {
            name: ep.name.clone(),
        })
        .await?;
        if ep.node == m.id.node_id {
            wait_programmed(m, &ep.name, true, |st| !st.endpoints.contains_key(&ep.name)).await?;
        }
        removed.push(ep.name);
    }
    Ok(LocalResponse::EndpointsRemoved(removed))
}
