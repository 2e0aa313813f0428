//! The desired data path of a node, derived from the cluster state.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use secnet_model::{ClusterState, NodeId};

use super::super::test_state::*;
use super::{desired_for, EncryptedPath};

const UNDERLAY_MTU: u32 = 1500;

fn vtep(node: NodeId) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, node.0 as u8))
}

fn tunnel(node: NodeId) -> IpAddr {
    IpAddr::V4(tunnel_ip(node))
}

fn ip_of(s: &ClusterState, endpoint: &str) -> Ipv4Addr {
    s.endpoints[endpoint].attachments[0].ip
}

/// Worker 2 has `mine`, worker 3 `theirs`, both on network `name`.
fn two_endpoints(encrypted: bool) -> ClusterState {
    let mut s = cluster();
    create_network(&mut s, "net", encrypted);
    create_endpoint(&mut s, "mine", WORKER, "net");
    create_endpoint(&mut s, "theirs", OTHER_WORKER, "net");
    s
}

fn remotes(d: &secnet_dataplane::Desired) -> Vec<(Ipv4Addr, IpAddr)> {
    d.networks["id-net"]
        .remotes
        .iter()
        .map(|r| (r.ip, r.vtep))
        .collect()
}

#[test]
fn plain_networks_run_between_data_path_addresses() {
    let s = two_endpoints(false);
    for path in [EncryptedPath::Unavailable, EncryptedPath::Ready] {
        let (d, waiting) = desired_for(&s, WORKER, vtep(WORKER), UNDERLAY_MTU, path);
        assert!(waiting.is_empty());
        let net = &d.networks["id-net"];
        assert_eq!(net.local_vtep, vtep(WORKER));
        assert_eq!(net.port, 4789);
        assert_eq!(
            net.mtu,
            s.networks["id-net"].effective_mtu(UNDERLAY_MTU, false)
        );
        assert_eq!(remotes(&d), vec![(ip_of(&s, "theirs"), vtep(OTHER_WORKER))]);
        // Only this node's endpoints get interfaces; the first one carries the default route.
        assert_eq!(d.endpoints.keys().collect::<Vec<_>>(), vec!["mine"]);
        let eth0 = &d.endpoints["mine"].interfaces[0];
        assert_eq!(eth0.ip, ip_of(&s, "mine"));
        assert_eq!(eth0.network_id, "id-net");
        assert!(eth0.default_route);
    }
}

#[test]
fn encrypted_networks_run_between_tunnel_addresses() {
    let mut s = two_endpoints(true);
    set_tunnel(&mut s, WORKER);
    set_tunnel(&mut s, OTHER_WORKER);
    let (d, waiting) = desired_for(&s, WORKER, vtep(WORKER), UNDERLAY_MTU, EncryptedPath::Ready);
    assert!(waiting.is_empty());
    assert_eq!(d.networks["id-net"].local_vtep, tunnel(WORKER));
    assert_eq!(
        remotes(&d),
        vec![(ip_of(&s, "theirs"), tunnel(OTHER_WORKER))]
    );
    // WireGuard's overhead comes off the MTU.
    let plain = two_endpoints(false);
    assert!(d.networks["id-net"].mtu < plain.networks["id-net"].effective_mtu(UNDERLAY_MTU, false));
}

#[test]
fn a_peer_without_a_tunnel_address_is_never_reached_in_clear() {
    let mut s = two_endpoints(true);
    set_tunnel(&mut s, WORKER);
    let (d, _) = desired_for(&s, WORKER, vtep(WORKER), UNDERLAY_MTU, EncryptedPath::Ready);
    assert!(remotes(&d).is_empty());
}

#[test]
fn encrypted_interfaces_wait_for_strict_mode_and_a_tunnel_address() {
    let mut s = two_endpoints(true);
    let (d, waiting) = desired_for(&s, WORKER, vtep(WORKER), UNDERLAY_MTU, EncryptedPath::Ready);
    assert!(d.networks.is_empty());
    assert!(d.endpoints["mine"].interfaces.is_empty());
    assert!(
        waiting["mine"].contains("this node has no tunnel address yet"),
        "{waiting:?}"
    );

    set_tunnel(&mut s, WORKER);
    let (d, waiting) = desired_for(
        &s,
        WORKER,
        vtep(WORKER),
        UNDERLAY_MTU,
        EncryptedPath::Unavailable,
    );
    assert!(d.networks.is_empty());
    assert_eq!(
        waiting["mine"],
        "network net is encrypted and strict mode is not in place on this node; its interface waits"
    );
}

#[test]
fn a_node_without_endpoints_wants_nothing() {
    let s = two_endpoints(false);
    let (d, waiting) = desired_for(
        &s,
        MANAGER,
        vtep(MANAGER),
        UNDERLAY_MTU,
        EncryptedPath::Ready,
    );
    assert!(d.networks.is_empty());
    assert!(d.endpoints.is_empty());
    assert!(waiting.is_empty());
}

#[test]
fn a_second_network_is_a_second_interface_without_the_default_route() {
    let mut s = two_endpoints(false);
    create_network(&mut s, "other", false);
    apply(
        &mut s,
        secnet_model::Command::ConnectEndpoint {
            name: "mine".into(),
            network: "other".into(),
            ip: None,
        },
    );
    let (d, _) = desired_for(&s, WORKER, vtep(WORKER), UNDERLAY_MTU, EncryptedPath::Ready);
    let ifs = &d.endpoints["mine"].interfaces;
    assert_eq!(ifs.len(), 2);
    assert!(ifs[0].default_route && !ifs[1].default_route);
    // Nobody else is on `other`: no FDB entries there.
    assert!(d.networks["id-other"].remotes.is_empty());
}
