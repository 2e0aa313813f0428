//! Endpoints: address allocation, connect/disconnect, removal and what they block.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use secnet_ipam::{IpamError, ReservedKind};
use secnet_model::{Command, Mac, ModelError, NodeId, Response, Role};

#[test]
fn create_endpoint_allocates_the_lowest_free_address() {
    let mut s = cluster();
    let a = create_network(&mut s, &net_id(1), spec("a")); // 10.20.0.0/26, gw .1
    let e1 = create_endpoint(&mut s, "e1", 1, "a", None);
    assert_eq!(e1.id, "ep-e1");
    assert_eq!(e1.name, "e1");
    assert_eq!(e1.node, FIRST);
    assert_eq!(e1.created_at, 1_700_000_200);
    assert_eq!(e1.attachments.len(), 1);
    let att = &e1.attachments[0];
    assert_eq!(att.network_id, a.id);
    assert_eq!(att.ifname, "eth0");
    assert_eq!(att.ip, ip("10.20.0.2"));
    assert_eq!(att.mac, Mac([0x02, 0x42, 10, 20, 0, 2]));
    assert_eq!(att.mac.to_string(), "02:42:0a:14:00:02");

    let e2 = create_endpoint(&mut s, "e2", 1, &net_id(1), None);
    assert_eq!(e2.attachments[0].ip, ip("10.20.0.3"));
    assert_eq!(e2.attachments[0].mac, Mac::for_ip(ip("10.20.0.3")));
    assert_eq!(
        s.endpoints_on(&a.id),
        vec!["e1".to_string(), "e2".to_string()]
    );
}

#[test]
fn allocation_skips_network_gateway_and_broadcast_until_exhausted() {
    let mut s = cluster();
    let mut sp = spec("small");
    sp.subnet = Some(net4("192.168.1.0/29"));
    sp.gateway = Some(ip("192.168.1.2"));
    create_network(&mut s, &net_id(1), sp);
    let got: Vec<_> = (0..5)
        .map(|i| create_endpoint(&mut s, &format!("e{i}"), 1, "small", None).attachments[0].ip)
        .collect();
    assert_eq!(
        got,
        [
            "192.168.1.1",
            "192.168.1.3",
            "192.168.1.4",
            "192.168.1.5",
            "192.168.1.6"
        ]
        .map(ip)
    );
    assert_eq!(
        refused(&mut s, create_endpoint_cmd("e5", 1, "small", None)),
        ModelError::Ipam(IpamError::AddressExhausted {
            subnet: net4("192.168.1.0/29")
        })
    );
}

#[test]
fn explicit_addresses_are_validated() {
    let mut s = cluster();
    create_network(&mut s, &net_id(1), spec("a")); // 10.20.0.0/26, gw .1
    let subnet = net4("10.20.0.0/26");

    let e = create_endpoint(&mut s, "fixed", 1, "a", Some(ip("10.20.0.10")));
    assert_eq!(e.attachments[0].ip, ip("10.20.0.10"));
    assert_eq!(e.attachments[0].mac, Mac::for_ip(ip("10.20.0.10")));

    let cases = [
        (
            "10.20.0.64",
            IpamError::AddressOutsideSubnet {
                address: ip("10.20.0.64"),
                subnet,
            },
        ),
        (
            "10.20.0.1",
            IpamError::AddressReserved {
                address: ip("10.20.0.1"),
                subnet,
                kind: ReservedKind::Gateway,
            },
        ),
        (
            "10.20.0.0",
            IpamError::AddressReserved {
                address: ip("10.20.0.0"),
                subnet,
                kind: ReservedKind::Network,
            },
        ),
        (
            "10.20.0.63",
            IpamError::AddressReserved {
                address: ip("10.20.0.63"),
                subnet,
                kind: ReservedKind::Broadcast,
            },
        ),
        (
            "10.20.0.10",
            IpamError::AddressInUse {
                address: ip("10.20.0.10"),
                subnet,
            },
        ),
    ];
    for (addr, want) in cases {
        assert_eq!(
            refused(&mut s, create_endpoint_cmd("other", 1, "a", Some(ip(addr)))),
            ModelError::Ipam(want),
            "{addr}"
        );
    }

    // Automatic allocation fills around explicit addresses.
    create_endpoint(&mut s, "fixed3", 1, "a", Some(ip("10.20.0.3")));
    let got: Vec<_> = (0..3)
        .map(|i| create_endpoint(&mut s, &format!("auto{i}"), 1, "a", None).attachments[0].ip)
        .collect();
    assert_eq!(got, ["10.20.0.2", "10.20.0.4", "10.20.0.5"].map(ip));
}

#[test]
fn create_endpoint_refusals() {
    let mut s = cluster();
    create_network(&mut s, &net_id(1), spec("a"));
    create_network(&mut s, &net_id(2), spec("b"));
    create_endpoint(&mut s, "e", 1, "a", None);

    // Duplicate names, even on another network or node.
    assert_eq!(
        refused(&mut s, create_endpoint_cmd("e", 1, "b", None)),
        ModelError::DuplicateEndpointName("e".into())
    );
    for bad in ["", "-e", "a/b", "x y", &"e".repeat(65)] {
        assert_eq!(
            refused(&mut s, create_endpoint_cmd(bad, 1, "a", None)),
            ModelError::InvalidEndpointName(bad.to_string())
        );
    }
    create_endpoint(&mut s, &"e".repeat(64), 1, "a", None);
    assert_eq!(
        refused(&mut s, create_endpoint_cmd("f", 7, "a", None)),
        ModelError::NodeNotFound(NodeId(7).to_string())
    );
    assert_eq!(
        refused(&mut s, create_endpoint_cmd("f", 1, "nope", None)),
        ModelError::NetworkNotFound("nope".into())
    );
}

#[test]
fn connect_adds_an_interface_on_the_other_network() {
    let mut s = cluster();
    let a = create_network(&mut s, &net_id(1), spec("a")); // 10.20.0.0/26
    let b = create_network(&mut s, &net_id(2), spec("b")); // 10.20.0.64/26, gw .65
    create_endpoint(&mut s, "e", 1, "a", None);

    let res = s
        .apply(Command::ConnectEndpoint {
            name: "e".into(),
            network: "b".into(),
            ip: None,
        })
        .unwrap();
    let Response::Endpoint(ep) = res else {
        panic!("expected an endpoint")
    };
    assert_eq!(s.endpoints["e"], ep);
    assert_eq!(ep.attachments.len(), 2);
    assert_eq!(ep.attachments[0].network_id, a.id);
    assert_eq!(ep.attachments[0].ifname, "eth0");
    assert_eq!(ep.attachments[1].network_id, b.id);
    assert_eq!(ep.attachments[1].ifname, "eth1");
    assert_eq!(ep.attachments[1].ip, ip("10.20.0.66"));
    assert_eq!(ep.attachments[1].mac, Mac::for_ip(ip("10.20.0.66")));
    assert_eq!(s.endpoints_on(&b.id), vec!["e".to_string()]);

    // A second connect to the same network, by name or by id, is refused.
    for network in ["b".to_string(), b.id.clone()] {
        assert_eq!(
            refused(
                &mut s,
                Command::ConnectEndpoint {
                    name: "e".into(),
                    network: network.clone(),
                    ip: None
                }
            ),
            ModelError::AlreadyConnected {
                endpoint: "e".into(),
                network
            }
        );
    }
    // So is connecting to eth0's network again.
    assert!(matches!(
        refused(
            &mut s,
            Command::ConnectEndpoint {
                name: "e".into(),
                network: "a".into(),
                ip: None
            }
        ),
        ModelError::AlreadyConnected { .. }
    ));
    assert_eq!(
        refused(
            &mut s,
            Command::ConnectEndpoint {
                name: "ghost".into(),
                network: "b".into(),
                ip: None
            }
        ),
        ModelError::EndpointNotFound("ghost".into())
    );
    assert_eq!(
        refused(
            &mut s,
            Command::ConnectEndpoint {
                name: "e".into(),
                network: "ghost".into(),
                ip: None
            }
        ),
        ModelError::NetworkNotFound("ghost".into())
    );
}

#[test]
fn connect_with_an_explicit_address() {
    let mut s = cluster();
    create_network(&mut s, &net_id(1), spec("a"));
    create_network(&mut s, &net_id(2), spec("b"));
    create_network(&mut s, &net_id(3), spec("c"));
    create_endpoint(&mut s, "e", 1, "a", None);
    create_endpoint(&mut s, "f", 1, "b", None); // 10.20.0.66

    assert_eq!(
        refused(
            &mut s,
            Command::ConnectEndpoint {
                name: "e".into(),
                network: "b".into(),
                ip: Some(ip("10.20.0.66"))
            }
        ),
        ModelError::Ipam(IpamError::AddressInUse {
            address: ip("10.20.0.66"),
            subnet: net4("10.20.0.64/26")
        })
    );
    assert!(matches!(
        refused(
            &mut s,
            Command::ConnectEndpoint {
                name: "e".into(),
                network: "b".into(),
                ip: Some(ip("10.20.0.2"))
            }
        ),
        ModelError::Ipam(IpamError::AddressOutsideSubnet { .. })
    ));
    s.apply(Command::ConnectEndpoint {
        name: "e".into(),
        network: "b".into(),
        ip: Some(ip("10.20.0.100")),
    })
    .unwrap();
    assert_eq!(s.endpoints["e"].attachments[1].ip, ip("10.20.0.100"));

    // A third network becomes eth2.
    s.apply(Command::ConnectEndpoint {
        name: "e".into(),
        network: "c".into(),
        ip: None,
    })
    .unwrap();
    let names: Vec<_> = s.endpoints["e"]
        .attachments
        .iter()
        .map(|a| a.ifname.as_str())
        .collect();
    assert_eq!(names, ["eth0", "eth1", "eth2"]);
    assert_eq!(s.endpoints["e"].attachments[2].ip, ip("10.20.0.130"));
}

#[test]
fn connect_by_endpoint_id_prefix() {
    // `ConnectEndpoint` looks the endpoint up with `find_endpoint` (name or unique id prefix);
    // a lookup by id must then update that endpoint, not fail.
    let mut s = cluster();
    create_network(&mut s, &net_id(1), spec("a"));
    create_network(&mut s, &net_id(2), spec("b"));
    create_endpoint(&mut s, "web", 1, "a", None); // id "ep-web"
    create_endpoint(&mut s, "db", 1, "a", None); // id "ep-db"
    assert_eq!(s.find_endpoint("ep-w").unwrap().name, "web");
    // An ambiguous prefix is reported as such.
    assert_eq!(
        s.find_endpoint("ep-").unwrap_err(),
        ModelError::AmbiguousEndpoint("ep-".into())
    );

    s.apply(Command::ConnectEndpoint {
        name: "ep-w".into(),
        network: "b".into(),
        ip: None,
    })
    .unwrap();
    assert_eq!(s.endpoints["web"].attachments.len(), 2);
    assert_eq!(s.endpoints["db"].attachments.len(), 1);
    assert!(!s.endpoints.contains_key("ep-w"));
}

#[test]
fn disconnect_rules() {
    let mut s = cluster();
    let a = create_network(&mut s, &net_id(1), spec("a"));
    let b = create_network(&mut s, &net_id(2), spec("b"));
    create_network(&mut s, &net_id(3), spec("c"));
    create_endpoint(&mut s, "e", 1, "a", None);

    assert_eq!(
        refused(
            &mut s,
            Command::DisconnectEndpoint {
                name: "e".into(),
                network: "a".into()
            }
        ),
        ModelError::LastAttachment("e".into())
    );
    assert_eq!(
        refused(
            &mut s,
            Command::DisconnectEndpoint {
                name: "e".into(),
                network: "b".into()
            }
        ),
        ModelError::NotConnected {
            endpoint: "e".into(),
            network: "b".into()
        }
    );
    assert_eq!(
        refused(
            &mut s,
            Command::DisconnectEndpoint {
                name: "ghost".into(),
                network: "a".into()
            }
        ),
        ModelError::EndpointNotFound("ghost".into())
    );
    assert_eq!(
        refused(
            &mut s,
            Command::DisconnectEndpoint {
                name: "e".into(),
                network: "ghost".into()
            }
        ),
        ModelError::NetworkNotFound("ghost".into())
    );

    s.apply(Command::ConnectEndpoint {
        name: "e".into(),
        network: "b".into(),
        ip: None,
    })
    .unwrap();
    // Disconnecting eth0 leaves eth1; the next connect reuses the free name eth0.
    let res = s
        .apply(Command::DisconnectEndpoint {
            name: "e".into(),
            network: a.id.clone(),
        })
        .unwrap();
    assert!(matches!(res, Response::Endpoint(ref ep) if ep.attachments.len() == 1));
    let ep = &s.endpoints["e"];
    assert_eq!(ep.attachments.len(), 1);
    assert_eq!(ep.attachments[0].network_id, b.id);
    assert_eq!(ep.attachments[0].ifname, "eth1");
    assert!(s.endpoints_on(&a.id).is_empty());
    // Now b is the last one.
    assert_eq!(
        refused(
            &mut s,
            Command::DisconnectEndpoint {
                name: "e".into(),
                network: "b".into()
            }
        ),
        ModelError::LastAttachment("e".into())
    );
    s.apply(Command::ConnectEndpoint {
        name: "e".into(),
        network: "c".into(),
        ip: None,
    })
    .unwrap();
    let names: Vec<_> = s.endpoints["e"]
        .attachments
        .iter()
        .map(|a| a.ifname.as_str())
        .collect();
    assert_eq!(names, ["eth1", "eth0"]);

    // The address on a disconnected network is free again.
    let f = create_endpoint(&mut s, "f", 1, "a", None);
    assert_eq!(f.attachments[0].ip, ip("10.20.0.2"));
}

#[test]
fn remove_endpoint_frees_its_addresses() {
    let mut s = cluster();
    create_network(&mut s, &net_id(1), spec("a"));
    create_network(&mut s, &net_id(2), spec("b"));
    create_endpoint(&mut s, "e1", 1, "a", None); // .2
    create_endpoint(&mut s, "e2", 1, "a", None); // .3
    s.apply(Command::ConnectEndpoint {
        name: "e1".into(),
        network: "b".into(),
        ip: None,
    })
    .unwrap(); // .66

    let res = s
        .apply(Command::RemoveEndpoint { name: "e1".into() })
        .unwrap();
    assert!(matches!(res, Response::Done));
    assert!(!s.endpoints.contains_key("e1"));
    assert_eq!(
        refused(&mut s, Command::RemoveEndpoint { name: "e1".into() }),
        ModelError::EndpointNotFound("e1".into())
    );

    let e3 = create_endpoint(&mut s, "e3", 1, "a", None);
    assert_eq!(e3.attachments[0].ip, ip("10.20.0.2"));
    let e4 = create_endpoint(&mut s, "e4", 1, "b", None);
    assert_eq!(e4.attachments[0].ip, ip("10.20.0.66"));
    // The name is free again too.
    let e1 = create_endpoint(&mut s, "e1", 1, "a", None);
    assert_eq!(e1.attachments[0].ip, ip("10.20.0.4"));
}

#[test]
fn remove_network_is_refused_while_endpoints_are_attached() {
    let mut s = cluster();
    create_network(&mut s, &net_id(1), spec("a"));
    let b = create_network(&mut s, &net_id(2), spec("b"));
    create_endpoint(&mut s, "zeta", 1, "b", None);
    create_endpoint(&mut s, "alpha", 1, "a", None);
    s.apply(Command::ConnectEndpoint {
        name: "alpha".into(),
        network: "b".into(),
        ip: None,
    })
    .unwrap();

    let want = ModelError::NetworkInUse {
        network: "b".into(),
        endpoints: vec!["alpha".into(), "zeta".into()],
    };
    assert_eq!(
        refused(
            &mut s,
            Command::RemoveNetwork {
                name_or_id: "b".into()
            }
        ),
        want
    );
    // Same answer by id.
    assert_eq!(
        refused(
            &mut s,
            Command::RemoveNetwork {
                name_or_id: b.id.clone()
            }
        ),
        want
    );
    assert!(want.to_string().contains("alpha, zeta"));

    s.apply(Command::RemoveEndpoint {
        name: "zeta".into(),
    })
    .unwrap();
    assert_eq!(
        refused(
            &mut s,
            Command::RemoveNetwork {
                name_or_id: "b".into()
            }
        ),
        ModelError::NetworkInUse {
            network: "b".into(),
            endpoints: vec!["alpha".into()],
        }
    );
    s.apply(Command::DisconnectEndpoint {
        name: "alpha".into(),
        network: "b".into(),
    })
    .unwrap();
    s.apply(Command::RemoveNetwork {
        name_or_id: "b".into(),
    })
    .unwrap();
    assert!(!s.networks.contains_key(&b.id));
    // "a" still has alpha.
    assert!(matches!(
        refused(
            &mut s,
            Command::RemoveNetwork {
                name_or_id: "a".into()
            }
        ),
        ModelError::NetworkInUse { .. }
    ));
}

#[test]
fn endpoints_on_other_nodes() {
    let mut s = cluster();
    s.apply(Command::AddNode {
        node: node(2, Role::Worker, &[]),
    })
    .unwrap();
    create_network(&mut s, &net_id(1), spec("a"));
    let e1 = create_endpoint(&mut s, "on1", 1, "a", None);
    let e2 = create_endpoint(&mut s, "on2", 2, "a", None);
    assert_eq!(e1.node, NodeId(1));
    assert_eq!(e2.node, NodeId(2));
    // Addresses are per network, not per node.
    assert_eq!(e2.attachments[0].ip, ip("10.20.0.3"));
}

#[test]
fn mac_text_round_trips() {
    let mac = Mac::for_ip(ip("10.20.255.254"));
    assert_eq!(mac.to_string(), "02:42:0a:14:ff:fe");
    assert_eq!("02:42:0a:14:ff:fe".parse::<Mac>().unwrap(), mac);
    assert_eq!("02:42:0A:14:FF:FE".parse::<Mac>().unwrap(), mac);
    assert_eq!(format!("{mac:?}"), "Mac(02:42:0a:14:ff:fe)");
    assert_eq!(
        serde_json::to_string(&mac).unwrap(),
        "\"02:42:0a:14:ff:fe\""
    );
    assert_eq!(
        serde_json::from_str::<Mac>("\"02:42:0a:14:ff:fe\"").unwrap(),
        mac
    );
    for bad in [
        "",
        "02:42:0a:14:ff",
        "02:42:0a:14:ff:fe:00",
        "2:42:0a:14:ff:fe",
        "zz:42:0a:14:ff:fe",
        "02-42-0a-14-ff-fe",
    ] {
        assert!(bad.parse::<Mac>().is_err(), "{bad:?}");
    }
    assert!(serde_json::from_str::<Mac>("\"nope\"").is_err());
}
