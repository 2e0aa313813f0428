//! Network commands: create and rm.

use super::*;

pub(super) async fn network_create(m: &Member, spec: NetworkSpec) -> LocalResult {
    // Check what can be checked here first, so a bad request fails the same way whether or
    // not the cluster can take writes right now.
    secnet_model::validate_network_name(&spec.name)?;
    if let Some(mtu) = spec.mtu {
        secnet_model::validate_mtu(mtu)?;
        // The underlay must carry the encapsulated frame: check against this node's
        // data-path interface.
        let underlay = super::super::views::underlay_mtu(m.id.data_path_addr);
        let v6 = m.id.data_path_addr.is_ipv6();
        let overhead = secnet_model::encapsulation_overhead(spec.encrypted, v6);
        let max = underlay.saturating_sub(overhead);
        if mtu > max {
            return Err(ApiError::invalid(format!(
                "MTU {mtu} is more than the data path can carry: this node's data-path interface ({}) has MTU {underlay} and the encapsulation needs {overhead} bytes, so at most {max}",
                m.id.data_path_addr
            )));
        }
    }
    if m.view()
        .state
        .networks
        .values()
        .any(|n| n.name == spec.name)
    {
        return Err(secnet_model::ModelError::DuplicateNetworkName(spec.name).into());
    }
    let id = secnet_model::ids::network_id_from_bytes(rand::rngs::OsRng.gen());
    let cmd = Command::CreateNetwork {
        id,
        spec,
        created_at: unix_now(),
    };
    match m.write(cmd).await? {
        Response::Network(n) => Ok(LocalResponse::Network(network_info(
            &n,
            m.id.data_path_addr,
        ))),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

pub(super) async fn network_rm(m: &Member, names: &[String]) -> LocalResult {
    let mut removed = Vec::new();
    // Resolve every name first: `rm a b` with a bad `b` removes nothing.
    let ids = names
        .iter()
        .map(|n| {
            m.view()
                .state
                .find_network(n)
                .map(|n| (n.id.clone(), n.name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (id, name) in ids {
        m.write(Command::RemoveNetwork { name_or_id: id }).await?;
        removed.push(name);
    }
    Ok(LocalResponse::NetworksRemoved(removed))
}
