//! How nodes and networks are shown to users (`node ls`, `network inspect`, ...).

use std::net::IpAddr;

use secnet_api::{EndpointInfo, InterfaceInfo, NetworkInfo, NodeInfo};
use secnet_model::{ClusterState, Endpoint, Network, Node, NodeId};

/// RFC 3339 (UTC, seconds) from Unix seconds.
pub(crate) fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

pub(crate) fn node_info(n: &Node, leader: Option<NodeId>, me: NodeId) -> NodeInfo {
    NodeInfo {
        id: n.id.to_string(),
        hostname: n.hostname.clone(),
        role: n.role.as_str().to_string(),
        status: n.status.as_str().to_string(),
        leader: leader == Some(n.id),
        is_self: n.id == me,
        advertise_addr: n.advertise_addr.to_string(),
        data_path_addr: n.data_path_addr.to_string(),
        joined: rfc3339(n.joined_at),
        cert_fingerprint: n.cert_fingerprint.clone(),
    }
}

/// The MTU of the interface holding `ip` on this host (1500 when it cannot be read).
pub(crate) fn underlay_mtu(ip: IpAddr) -> u32 {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return 1500;
    };
    for ifa in addrs {
        let matches = ifa
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
            == Some(ip);
        if matches {
            // Not /sys/class/net: a daemon that joined the host's mount namespace sees
            // there the links of the namespace sysfs was mounted for, not its own.
            if let Ok(Some(mtu)) = secnet_dataplane::link_mtu(&ifa.interface_name) {
                return mtu;
            }
        }
    }
    1500
}

pub(crate) fn network_info(n: &Network, data_path: IpAddr) -> NetworkInfo {
    NetworkInfo {
        id: n.id.clone(),
        name: n.name.clone(),
        driver: n.driver.clone(),
        scope: "cluster".into(),
        subnet: n.subnet,
        gateway: n.gateway,
        vni: n.vni,
        encrypted: n.encrypted,
        mtu: n.effective_mtu(underlay_mtu(data_path), data_path.is_ipv6()),
        attachable: n.attachable,
        labels: n.labels.clone(),
        created: rfc3339(n.created_at),
    }
}

/// An endpoint for users; `netns` only when it lives on this node.
pub(crate) fn endpoint_info(
    ep: &Endpoint,
    state: &ClusterState,
    data_path: IpAddr,
    netns: Option<String>,
) -> EndpointInfo {
    let underlay = underlay_mtu(data_path);
    let interfaces: Vec<InterfaceInfo> = ep
        .attachments
        .iter()
        .map(|a| {
            let net = state.networks.get(&a.network_id);
            InterfaceInfo {
                ifname: a.ifname.clone(),
                network: net.map(|n| n.name.clone()).unwrap_or_default(),
                network_id: a.network_id.clone(),
                ip: a.ip,
                cidr: format!(
                    "{}/{}",
                    a.ip,
                    net.map(|n| n.subnet.prefix_len()).unwrap_or(32)
                ),
                gateway: net.map(|n| n.gateway).unwrap_or(a.ip),
                mac: a.mac.to_string(),
                mtu: net
                    .map(|n| n.effective_mtu(underlay, data_path.is_ipv6()))
                    .unwrap_or(0),
            }
        })
        .collect();
    let first = interfaces.first().cloned();
    EndpointInfo {
        id: ep.id.clone(),
        name: ep.name.clone(),
        network: first
            .as_ref()
            .map(|i| i.network.clone())
            .unwrap_or_default(),
        node: ep.node.to_string(),
        node_hostname: state
            .nodes
            .get(&ep.node)
            .map(|n| n.hostname.clone())
            .unwrap_or_default(),
        ip: first
            .as_ref()
            .map(|i| i.ip)
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        mac: first.map(|i| i.mac).unwrap_or_default(),
        netns,
        interfaces,
        created: rfc3339(ep.created_at),
    }
}
