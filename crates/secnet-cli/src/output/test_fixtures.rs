//! Answers of the daemon that the rendering tests of several command groups share.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use secnet_api::{NetworkInfo, NodeInfo};

pub(super) fn node(
    id: &str,
    host: &str,
    role: &str,
    status: &str,
    leader: bool,
    me: bool,
) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        hostname: host.into(),
        role: role.into(),
        status: status.into(),
        leader,
        is_self: me,
        advertise_addr: "192.0.2.11:2377".into(),
        data_path_addr: "192.0.2.11".into(),
        joined: "2024-05-01T10:00:00Z".into(),
        cert_fingerprint: "ab12".into(),
    }
}

pub(super) fn network(id: &str, name: &str) -> NetworkInfo {
    NetworkInfo {
        id: id.into(),
        name: name.into(),
        driver: "overlay".into(),
        scope: "swarm".into(),
        subnet: "10.0.1.0/24".parse().unwrap(),
        gateway: "10.0.1.1".parse().unwrap(),
        vni: 4097,
        encrypted: true,
        mtu: 1390,
        attachable: false,
        labels: BTreeMap::from([("team".to_string(), "db".to_string())]),
        created: "2024-05-01T10:00:00Z".into(),
    }
}
