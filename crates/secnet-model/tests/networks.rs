//! Network creation, allocation, validation, lookup and removal.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use secnet_ipam::{IpamError, ReservedKind, VNI_MIN};
use secnet_model::{Command, ModelError, Response, Role};

#[test]
fn subnets_are_allocated_first_fit_from_the_pool() {
    let mut s = cluster();
    let a = create_network(&mut s, &net_id(1), spec("a"));
    let b = create_network(&mut s, &net_id(2), spec("b"));
    let c = create_network(&mut s, &net_id(3), spec("c"));
    assert_eq!(
        [a.subnet, b.subnet, c.subnet],
        [
            net4("10.20.0.0/26"),
            net4("10.20.0.64/26"),
            net4("10.20.0.128/26")
        ]
    );
    assert_eq!(
        [a.gateway, b.gateway, c.gateway],
        [ip("10.20.0.1"), ip("10.20.0.65"), ip("10.20.0.129")],
        "default gateway is the first address"
    );
    assert_eq!([a.vni, b.vni, c.vni], [4096, 4097, 4098]);
    assert_eq!(VNI_MIN, 4096);

    // Everything from the spec and the command is stored.
    assert_eq!(a.id, net_id(1));
    assert_eq!(a.name, "a");
    assert_eq!(a.driver, "overlay");
    assert_eq!(a.created_at, 1_700_000_100);
    assert!(a.attachable && !a.encrypted && a.mtu.is_none());

    // Removing the middle one frees its subnet and VNI for the next network.
    let res = s
        .apply(Command::RemoveNetwork {
            name_or_id: "b".into(),
        })
        .unwrap();
    assert!(matches!(res, Response::Done));
    assert!(!s.networks.contains_key(&net_id(2)));
    assert_eq!(s.networks.len(), 2);
    let d = create_network(&mut s, &net_id(4), spec("d"));
    assert_eq!(d.subnet, net4("10.20.0.64/26"));
    assert_eq!(d.gateway, ip("10.20.0.65"));
    assert_eq!(d.vni, 4097);

    // The next one goes after the highest.
    let e = create_network(&mut s, &net_id(5), spec("e"));
    assert_eq!(e.subnet, net4("10.20.0.192/26"));
    assert_eq!(e.vni, 4099);

    // Removing the first frees VNI 4096, which is reused.
    s.apply(Command::RemoveNetwork {
        name_or_id: net_id(1),
    })
    .unwrap();
    let f = create_network(&mut s, &net_id(6), spec("f"));
    assert_eq!(f.vni, 4096);
    assert_eq!(f.subnet, net4("10.20.0.0/26"));

    // The name of a removed network can be used again.
    let b2 = create_network(&mut s, &net_id(7), spec("b"));
    assert_eq!(b2.subnet, net4("10.20.1.0/26"));
    assert_eq!(b2.vni, 4100);
}

#[test]
fn exhausted_pool_is_refused() {
    let mut s = cluster_with("10.20.0.0/24", 26, node(1, Role::Manager, &[]));
    for i in 0..4 {
        create_network(&mut s, &net_id(i), spec(&format!("n{i}")));
    }
    let err = refused(&mut s, create_network_cmd(&net_id(9), spec("n9")));
    assert_eq!(
        err,
        ModelError::Ipam(IpamError::Exhausted {
            pools: vec![net4("10.20.0.0/24")],
            mask_length: 26
        })
    );
    // An explicit subnet outside the pool still works.
    let mut sp = spec("n9");
    sp.subnet = Some(net4("172.16.0.0/24"));
    let n = create_network(&mut s, &net_id(9), sp);
    assert_eq!(n.subnet, net4("172.16.0.0/24"));
    assert_eq!(n.vni, 4100);
}

#[test]
fn explicit_subnet_and_gateway() {
    let mut s = cluster();
    let mut sp = spec("explicit");
    sp.subnet = Some(net4("192.168.50.0/24"));
    sp.gateway = Some(ip("192.168.50.254"));
    let n = create_network(&mut s, &net_id(1), sp);
    assert_eq!(n.subnet, net4("192.168.50.0/24"));
    assert_eq!(n.gateway, ip("192.168.50.254"));
    assert_eq!(n.vni, 4096);

    // Subnet only: the gateway defaults to the first address.
    let mut sp = spec("subnet-only");
    sp.subnet = Some(net4("192.168.60.0/25"));
    let n = create_network(&mut s, &net_id(2), sp);
    assert_eq!(n.gateway, ip("192.168.60.1"));

    // An explicit subnet inside the pool is skipped by automatic allocation.
    let mut sp = spec("in-pool");
    sp.subnet = Some(net4("10.20.0.0/27"));
    create_network(&mut s, &net_id(3), sp);
    let auto = create_network(&mut s, &net_id(4), spec("auto"));
    assert_eq!(auto.subnet, net4("10.20.0.64/26"));
    assert_eq!(auto.vni, 4099);
}

#[test]
fn explicit_subnet_errors_come_from_ipam() {
    let mut s = cluster();
    create_network(&mut s, &net_id(1), spec("a")); // 10.20.0.0/26

    let mut sp = spec("x");
    sp.subnet = Some(net4("10.20.0.32/27"));
    assert_eq!(
        refused(&mut s, create_network_cmd(&net_id(2), sp)),
        ModelError::Ipam(IpamError::OverlapsNetwork {
            subnet: net4("10.20.0.32/27"),
            existing: net4("10.20.0.0/26")
        })
    );

    let mut sp = spec("x");
    sp.subnet = Some(net4("10.30.0.1/24"));
    assert!(matches!(
        refused(&mut s, create_network_cmd(&net_id(2), sp)),
        ModelError::Ipam(IpamError::NotCanonical { .. })
    ));

    let mut sp = spec("x");
    sp.subnet = Some(net4("10.30.0.0/31"));
    assert!(matches!(
        refused(&mut s, create_network_cmd(&net_id(2), sp)),
        ModelError::Ipam(IpamError::SubnetTooSmall { .. })
    ));

    let mut sp = spec("x");
    sp.subnet = Some(net4("10.30.0.0/24"));
    sp.gateway = Some(ip("10.31.0.1"));
    assert!(matches!(
        refused(&mut s, create_network_cmd(&net_id(2), sp)),
        ModelError::Ipam(IpamError::GatewayOutsideSubnet { .. })
    ));

    for (gw, kind) in [
        ("10.30.0.0", ReservedKind::Network),
        ("10.30.0.255", ReservedKind::Broadcast),
    ] {
        let mut sp = spec("x");
        sp.subnet = Some(net4("10.30.0.0/24"));
        sp.gateway = Some(ip(gw));
        assert!(matches!(
            refused(&mut s, create_network_cmd(&net_id(2), sp)),
            ModelError::Ipam(IpamError::GatewayReserved { kind: k, .. }) if k == kind
        ));
    }
}

#[test]
fn gateway_without_subnet_is_refused() {
    let mut s = cluster();
    let mut sp = spec("x");
    sp.gateway = Some(ip("10.20.0.1"));
    assert_eq!(
        refused(&mut s, create_network_cmd(&net_id(1), sp)),
        ModelError::GatewayWithoutSubnet
    );
    assert!(s.networks.is_empty());
}

#[test]
fn duplicate_name_and_id_are_refused() {
    let mut s = cluster();
    let a = create_network(&mut s, &net_id(1), spec("a"));
    let mut sp = spec("a");
    sp.subnet = Some(net4("192.168.0.0/24"));
    assert_eq!(
        refused(&mut s, create_network_cmd(&net_id(2), sp)),
        ModelError::DuplicateNetworkName("a".into())
    );
    assert_eq!(
        refused(&mut s, create_network_cmd(&net_id(1), spec("b"))),
        ModelError::NetworkIdTaken(net_id(1))
    );
    assert_eq!(s.networks.len(), 1);
    assert_eq!(s.networks[&net_id(1)], a);
}

#[test]
fn network_names_follow_the_rule() {
    let mut s = cluster();
    let long_ok = "a".repeat(64);
    let too_long = "a".repeat(65);
    for bad in [
        "", "-x", "_x", ".x", "a/b", "a b", "a:b", "é", "net\n", &too_long,
    ] {
        assert_eq!(
            refused(&mut s, create_network_cmd(&net_id(1), spec(bad))),
            ModelError::InvalidNetworkName(bad.to_string()),
            "{bad:?} must be refused"
        );
    }
    for (i, good) in ["a", "A", "0", "9net", "my-net_1.prod", "x-", "x.", &long_ok]
        .into_iter()
        .enumerate()
    {
        let n = create_network(&mut s, &net_id(100 + i as u64), spec(good));
        assert_eq!(n.name, good);
    }
    assert_eq!(s.networks.len(), 8);
}

#[test]
fn only_the_overlay_driver_exists() {
    let mut s = cluster();
    for driver in ["bridge", "Overlay", "", "macvlan"] {
        let mut sp = spec("x");
        sp.driver = driver.into();
        assert_eq!(
            refused(&mut s, create_network_cmd(&net_id(1), sp)),
            ModelError::UnsupportedDriver(driver.into())
        );
    }
}

#[test]
fn mtu_must_be_in_range() {
    let mut s = cluster();
    for mtu in [0, 576, 1279, 9001, u32::MAX] {
        let mut sp = spec("x");
        sp.mtu = Some(mtu);
        assert_eq!(
            refused(&mut s, create_network_cmd(&net_id(1), sp)),
            ModelError::InvalidMtu(mtu)
        );
    }
    for (i, mtu) in [1280, 1450, 9000].into_iter().enumerate() {
        let mut sp = spec(&format!("m{i}"));
        sp.mtu = Some(mtu);
        let n = create_network(&mut s, &net_id(i as u64), sp);
        assert_eq!(n.mtu, Some(mtu));
        assert_eq!(n.effective_mtu(1500, false), mtu, "explicit MTU wins");
    }
}

#[test]
fn effective_mtu_subtracts_the_encapsulations() {
    let mut s = cluster();
    let plain = create_network(&mut s, &net_id(1), spec("plain"));
    let mut sp = spec("enc");
    sp.encrypted = true;
    let enc = create_network(&mut s, &net_id(2), sp);
    assert!(enc.encrypted);
    assert_eq!(plain.effective_mtu(1500, false), 1450);
    assert_eq!(plain.effective_mtu(1500, true), 1430);
    assert_eq!(enc.effective_mtu(1500, false), 1390);
    assert_eq!(enc.effective_mtu(1500, true), 1350);
    assert_eq!(enc.effective_mtu(9000, false), 8890);
    assert_eq!(enc.effective_mtu(100, true), 0, "saturates");
}

#[test]
fn labels_and_flags_are_kept() {
    let mut s = cluster();
    let mut sp = spec("x");
    sp.labels.insert("team".into(), "net".into());
    sp.attachable = false;
    sp.encrypted = true;
    let n = create_network(&mut s, &net_id(1), sp);
    assert_eq!(n.labels.get("team").map(String::as_str), Some("net"));
    assert!(!n.attachable);
    assert!(n.encrypted);
}

#[test]
fn underlay_prefixes_are_avoided() {
    // The bootstrap node's underlay is 10.20.0.0/26; a second node's is 10.20.0.70/26 (an
    // interface address standing for 10.20.0.64/26) and an IPv6 prefix that never matters.
    let mut s = cluster_with(
        "10.20.0.0/24",
        26,
        node(1, Role::Manager, &["10.20.0.0/26"]),
    );
    s.apply(Command::AddNode {
        node: node(2, Role::Worker, &["10.20.0.70/26", "fd00::/8"]),
    })
    .unwrap();
    let a = create_network(&mut s, &net_id(1), spec("a"));
    let b = create_network(&mut s, &net_id(2), spec("b"));
    assert_eq!(a.subnet, net4("10.20.0.128/26"));
    assert_eq!(b.subnet, net4("10.20.0.192/26"));
    assert!(matches!(
        refused(&mut s, create_network_cmd(&net_id(3), spec("c"))),
        ModelError::Ipam(IpamError::Exhausted { .. })
    ));

    // Explicit subnets overlapping an underlay prefix are refused too.
    let mut sp = spec("c");
    sp.subnet = Some(net4("10.20.0.96/27"));
    assert_eq!(
        refused(&mut s, create_network_cmd(&net_id(3), sp)),
        ModelError::Ipam(IpamError::OverlapsUnderlay {
            subnet: net4("10.20.0.96/27"),
            underlay: net4("10.20.0.64/26")
        })
    );
    let mut sp = spec("c");
    sp.subnet = Some(net4("10.0.0.0/8"));
    assert!(matches!(
        refused(&mut s, create_network_cmd(&net_id(3), sp)),
        ModelError::Ipam(IpamError::OverlapsNetwork { .. } | IpamError::OverlapsUnderlay { .. })
    ));

    // Once the node is gone its underlay no longer blocks anything.
    s.apply(Command::RemoveNode {
        id: secnet_model::NodeId(2),
    })
    .unwrap();
    let c = create_network(&mut s, &net_id(3), spec("c"));
    assert_eq!(c.subnet, net4("10.20.0.64/26"));
}

#[test]
fn find_network_by_name_id_and_prefix() {
    let mut s = cluster();
    let id1 = "aaaa11110000000000000001".to_string();
    let id2 = "aaaa22220000000000000002".to_string();
    let id3 = "bbbb00000000000000000003".to_string();
    create_network(&mut s, &id1, spec("one"));
    create_network(&mut s, &id2, spec("two"));
    // A network whose name looks like an id prefix of the others.
    create_network(&mut s, &id3, spec("aaaa"));

    assert_eq!(s.find_network("one").unwrap().id, id1);
    assert_eq!(s.find_network(&id2).unwrap().name, "two");
    assert_eq!(s.find_network("aaaa1").unwrap().id, id1);
    assert_eq!(s.find_network("aaaa2222").unwrap().id, id2);
    assert_eq!(s.find_network("b").unwrap().id, id3);
    // The exact name wins over an id prefix.
    assert_eq!(s.find_network("aaaa").unwrap().id, id3);
    assert_eq!(
        s.find_network("aaa").unwrap_err(),
        ModelError::AmbiguousNetwork("aaa".into())
    );
    assert_eq!(
        s.find_network("a").unwrap_err(),
        ModelError::AmbiguousNetwork("a".into())
    );
    assert_eq!(
        s.find_network("c").unwrap_err(),
        ModelError::NetworkNotFound("c".into())
    );
    assert_eq!(
        s.find_network("").unwrap_err(),
        ModelError::NetworkNotFound(String::new())
    );
    assert_eq!(
        s.find_network("ONE").unwrap_err(),
        ModelError::NetworkNotFound("ONE".into())
    );

    // RemoveNetwork resolves the same way.
    assert_eq!(
        refused(
            &mut s,
            Command::RemoveNetwork {
                name_or_id: "aaa".into()
            }
        ),
        ModelError::AmbiguousNetwork("aaa".into())
    );
    assert_eq!(
        refused(
            &mut s,
            Command::RemoveNetwork {
                name_or_id: "zzz".into()
            }
        ),
        ModelError::NetworkNotFound("zzz".into())
    );
    s.apply(Command::RemoveNetwork {
        name_or_id: "aaaa2".into(),
    })
    .unwrap();
    assert!(!s.networks.contains_key(&id2));
    // Now "aaa" is no longer ambiguous.
    assert_eq!(s.find_network("aaa").unwrap().id, id1);
}
