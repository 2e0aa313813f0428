//! Planner tests: examples and properties (pure; no kernel).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use proptest::prelude::*;
use secnet_dataplane::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const NET_ID: &str = "n4200abcdefghijklmnop";

fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn net(prefix: &str) -> Ipv4Net {
    prefix.parse().unwrap_or_else(|_| Ipv4Net::default())
}

fn example() -> Desired {
    let mut d = Desired::default();
    d.networks.insert(
        NET_ID.into(),
        DesiredNetwork {
            id: NET_ID.into(),
            vni: 4200,
            subnet: net("10.77.0.0/24"),
            gateway: v4(10, 77, 0, 1),
            mtu: 1450,
            local_vtep: IpAddr::V4(v4(198, 51, 100, 1)),
            port: 4789,
            remotes: vec![RemoteEndpoint {
                ip: v4(10, 77, 0, 11),
                mac: Mac([0x02, 0x42, 0x0a, 0x4d, 0x00, 0x0b]),
                vtep: IpAddr::V4(v4(198, 51, 100, 2)),
            }],
        },
    );
    d.endpoints.insert(
        "epa".into(),
        DesiredEndpoint {
            name: "epa".into(),
            interfaces: vec![DesiredInterface {
                ifname: "eth0".into(),
                network_id: NET_ID.into(),
                ip: v4(10, 77, 0, 10),
                prefix_len: 24,
                mac: Mac([0x02, 0x42, 0x0a, 0x4d, 0x00, 0x0a]),
                mtu: 1450,
                gateway: v4(10, 77, 0, 1),
                default_route: true,
            }],
        },
    );
    d
}

fn net_ns() -> String {
    network_ns_name(NET_ID)
}

fn converged(d: &Desired) -> Observed {
    render(d)
}

fn link_mut<'a>(o: &'a mut Observed, ns: &str, name: &str) -> &'a mut ObservedLink {
    match o.namespaces.get_mut(ns).and_then(|n| n.links.get_mut(name)) {
        Some(l) => l,
        None => panic!("no {ns}/{name}"),
    }
}

/// Plans, checks the plan runs in the model, and that it converges.
fn plan_and_check(d: &Desired, o: &Observed) -> Vec<Op> {
    let ops = plan(d, o);
    let after = match simulate_checked(o, &ops) {
        Ok(s) => s,
        Err((i, why)) => panic!("op {i} cannot run: {why}\nops: {ops:#?}"),
    };
    let again = plan(d, &after);
    assert!(
        again.is_empty(),
        "not converged: {again:#?}\nfirst plan: {ops:#?}"
    );
    ops
}

// ---------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------

#[test]
fn names_used_by_the_daemon() {
    assert_eq!(net_ns(), "net-n4200abcdefg");
    let l = Layout::new("/run/secnet", None);
    assert_eq!(
        endpoint_netns_path(&l, "epa"),
        std::path::PathBuf::from("/run/secnet/netns/ep-epa")
    );
    assert_eq!(
        network_netns_path(&l, NET_ID),
        std::path::PathBuf::from("/run/secnet/netns/net-n4200abcdefg")
    );
}

#[test]
fn from_scratch() {
    let d = example();
    let ops = plan_and_check(&d, &Observed::default());
    let kinds: Vec<&str> = ops
        .iter()
        .map(|op| match op {
            Op::CreateNetworkNs { .. } => "CreateNetworkNs",
            Op::CreateEndpointNs { .. } => "CreateEndpointNs",
            Op::CreateVxlan { .. } => "CreateVxlan",
            Op::SetLoopbackUp { .. } => "SetLoopbackUp",
            Op::CreateBridge { .. } => "CreateBridge",
            Op::SetBridge { .. } => "SetBridge",
            Op::SetVxlan { .. } => "SetVxlan",
            Op::CreateInterface { .. } => "CreateInterface",
            Op::SetVeth { .. } => "SetVeth",
            Op::AddNeigh { .. } => "AddNeigh",
            Op::AddFdb { .. } => "AddFdb",
            Op::ConfigureInterface { .. } => "ConfigureInterface",
            Op::SetDefaultRoute { .. } => "SetDefaultRoute",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "CreateNetworkNs",
            "CreateEndpointNs",
            "CreateVxlan",
            "SetLoopbackUp",
            "CreateBridge",
            "SetBridge",
            "SetVxlan",
            "CreateInterface",
            "SetVeth",
            "AddNeigh",
            "AddFdb",
            "SetLoopbackUp",
            "ConfigureInterface",
            "SetDefaultRoute",
        ]
    );
    assert_eq!(simulate(&Observed::default(), &ops), render(&d));
    assert!(ops.contains(&Op::CreateVxlan {
        ns: net_ns(),
        vni: 4200,
        local: IpAddr::V4(v4(198, 51, 100, 1)),
        port: 4789,
        mtu: 1450,
    }));
}

#[test]
fn converged_state_needs_nothing() {
    let d = example();
    assert!(plan(&d, &converged(&d)).is_empty());
    assert!(plan(&Desired::default(), &Observed::default()).is_empty());
}

#[test]
fn lost_fdb_entry_is_exactly_re_added() {
    let d = example();
    let mut o = converged(&d);
    let mac = Mac([0x02, 0x42, 0x0a, 0x4d, 0x00, 0x0b]);
    o.namespaces.get_mut(&net_ns()).map(|n| n.fdb.remove(&mac));
    assert_eq!(
        plan_and_check(&d, &o),
        vec![Op::AddFdb {
            ns: net_ns(),
            mac,
            dst: IpAddr::V4(v4(198, 51, 100, 2)),
        }]
    );
}

#[test]
fn bridge_down_and_wrong_mtu_fixed_in_place() {
    let d = example();
    let mut o = converged(&d);
    link_mut(&mut o, &net_ns(), BRIDGE).up = false;
    assert_eq!(
        plan_and_check(&d, &o),
        vec![Op::SetBridge {
            ns: net_ns(),
            mtu: None,
            del_addrs: vec![],
            add_addrs: vec![],
            set_up: true,
        }]
    );
    let mut o = converged(&d);
    link_mut(&mut o, &net_ns(), VXLAN).mtu = 1500;
    link_mut(&mut o, &net_ns(), BRIDGE).addrs = [net("10.77.0.2/24")].into_iter().collect();
    assert_eq!(
        plan_and_check(&d, &o),
        vec![
            Op::SetBridge {
                ns: net_ns(),
                mtu: None,
                del_addrs: vec![net("10.77.0.2/24")],
                add_addrs: vec![net("10.77.0.1/24")],
                set_up: false,
            },
            Op::SetVxlan {
                ns: net_ns(),
                mtu: Some(1450),
                master: None,
                set_up: false,
            }
        ]
    );
}

#[test]
fn changed_vni_recreates_vxlan_and_its_entries() {
    let mut d = example();
    let o = converged(&d);
    if let Some(n) = d.networks.get_mut(NET_ID) {
        n.vni = 4300;
    }
    let ops = plan_and_check(&d, &o);
    assert_eq!(ops[0], Op::DeleteVxlan { ns: net_ns() });
    assert!(matches!(ops[1], Op::CreateVxlan { vni: 4300, .. }));
    assert!(ops.iter().any(|op| matches!(op, Op::AddFdb { .. })));
    assert!(ops.iter().any(|op| matches!(op, Op::AddNeigh { .. })));
    // The bridge, veths and the endpoint are left alone.
    assert!(!ops.iter().any(|op| matches!(
        op,
        Op::CreateBridge { .. } | Op::CreateInterface { .. } | Op::ConfigureInterface { .. }
    )));
}

#[test]
fn extra_entries_removed_kernel_entries_kept() {
    let d = example();
    let mut o = converged(&d);
    let n = o.namespaces.get_mut(&net_ns()).map(|n| {
        n.fdb.insert(
            Mac([2, 0, 0, 0, 0, 0x99]),
            FdbEntry {
                dsts: [IpAddr::V4(v4(198, 51, 100, 9))].into_iter().collect(),
                permanent: true,
            },
        );
        n.fdb.insert(
            Mac([2, 0, 0, 0, 0, 0x98]),
            FdbEntry {
                dsts: [IpAddr::V4(v4(198, 51, 100, 8))].into_iter().collect(),
                permanent: false,
            },
        );
        n.neigh.insert(
            v4(10, 77, 0, 99),
            NeighEntry {
                mac: Some(Mac([2, 0, 0, 0, 0, 0x99])),
                permanent: true,
            },
        );
        n.neigh.insert(
            v4(10, 77, 0, 98),
            NeighEntry {
                mac: None,
                permanent: false,
            },
        );
    });
    assert!(n.is_some());
    assert_eq!(
        plan_and_check(&d, &o),
        vec![
            Op::DelNeigh {
                ns: net_ns(),
                ip: v4(10, 77, 0, 99)
            },
            Op::DelFdb {
                ns: net_ns(),
                mac: Mac([2, 0, 0, 0, 0, 0x99])
            },
        ]
    );
}

#[test]
fn last_endpoint_gone_removes_everything() {
    let d = example();
    let mut o = converged(&d);
    o.stale_files.insert("garbage".into());
    o.host_temp_links.insert("snv1234001068".into());
    let ops = plan_and_check(&Desired::default(), &o);
    assert_eq!(
        ops,
        vec![
            Op::DeleteStaleFile {
                name: "garbage".into()
            },
            Op::DeleteHostLink {
                name: "snv1234001068".into()
            },
            Op::DeleteEndpointNs {
                ns: "ep-epa".into(),
                links: vec!["eth0".into()]
            },
            Op::DeleteNetworkNs {
                ns: net_ns(),
                // eth0's peer went with it.
                links: vec![BRIDGE.into(), VXLAN.into()]
            },
        ]
    );
    assert_eq!(simulate(&o, &ops), Observed::default());
}

#[test]
fn endpoint_namespace_is_kept_and_repaired() {
    let d = example();
    let mut o = converged(&d);
    // A process made a tun device; someone deleted the veth; an old default route.
    let ep = o.namespaces.get_mut("ep-epa").map(|n| {
        n.links.insert(
            "tun0".into(),
            ObservedLink::new(LinkKind::Other("tun".into()), 1500),
        );
        n.default_routes.insert(DefaultRoute {
            via: Some(v4(10, 77, 0, 254)),
            dev: "tun0".into(),
        });
    });
    assert!(ep.is_some());
    let veth = veth_name("epa", "eth0");
    o = simulate(
        &o,
        &[Op::DeleteInterface {
            ns: net_ns(),
            name: veth.clone(),
        }],
    );
    let ops = plan_and_check(&d, &o);
    assert!(!ops.iter().any(|op| matches!(
        op,
        Op::DeleteEndpointNs { .. } | Op::CreateEndpointNs { .. }
    )));
    assert!(!ops
        .iter()
        .any(|op| matches!(op, Op::DeleteInterface { name, .. } if name == "tun0")));
    assert!(ops
        .iter()
        .any(|op| matches!(op, Op::CreateInterface { veth: v, .. } if *v == veth)));
    assert!(ops.contains(&Op::DelDefaultRoute {
        ns: "ep-epa".into(),
        via: Some(v4(10, 77, 0, 254)),
        dev: "tun0".into()
    }));
    assert!(ops
        .iter()
        .any(|op| matches!(op, Op::SetDefaultRoute { .. })));
}

#[test]
fn unpaired_and_foreign_links_in_network_ns_are_removed() {
    let d = example();
    let mut o = converged(&d);
    let veth = veth_name("epa", "eth0");
    // The expected veth exists but points nowhere; a foreign veth is on br0.
    if let LinkKind::Veth { peer } = &mut link_mut(&mut o, &net_ns(), &veth).kind {
        *peer = None;
    }
    if let LinkKind::Veth { peer } = &mut link_mut(&mut o, "ep-epa", "eth0").kind {
        *peer = None;
    }
    o.namespaces.get_mut(&net_ns()).map(|n| {
        n.links.insert(
            "vethzzz".into(),
            ObservedLink::new(LinkKind::Veth { peer: None }, 1500),
        )
    });
    let ops = plan_and_check(&d, &o);
    assert!(ops.contains(&Op::DeleteInterface {
        ns: net_ns(),
        name: veth.clone()
    }));
    assert!(ops.contains(&Op::DeleteInterface {
        ns: net_ns(),
        name: "vethzzz".into()
    }));
    assert!(ops.contains(&Op::DeleteInterface {
        ns: "ep-epa".into(),
        name: "eth0".into()
    }));
}

#[test]
fn problems_are_reported_and_ignored() {
    let mut d = example();
    let mut bad = d.networks[NET_ID].clone();
    bad.id = "bad/id".into();
    d.networks.insert("bad/id".into(), bad);
    let mut dup = d.networks[NET_ID].clone();
    dup.id = "zzzz".into();
    d.networks.insert("zzzz".into(), dup); // same VNI
    if let Some(ep) = d.endpoints.get_mut("epa") {
        let mut i = ep.interfaces[0].clone();
        i.ifname = "eth1".into();
        i.network_id = "missing".into();
        ep.interfaces.push(i);
        let mut i = ep.interfaces[0].clone();
        i.mac = Mac([1, 0, 0x5e, 0, 0, 1]);
        i.ifname = "eth2".into();
        ep.interfaces.push(i);
    }
    let problems = d.problems();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(example().problems().is_empty());
    // The valid part is planned as if alone.
    assert_eq!(
        plan(&d, &Observed::default()),
        plan(&example(), &Observed::default())
    );
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

const IDS: &[&str] = &["aaaaaaaaaaaa0001", "bbbbbbbbbbbbbbbbbbbbbbbbb", "c"];
const BAD_IDS: &[&str] = &[
    "aaaaaaaaaaaa0002", // same namespace name as the first
    "bad/id",
];
const EP_NAMES: &[&str] = &["a", "b", "c.1"];
const MACS: &[Mac] = &[
    Mac([2, 0, 0, 0, 0, 1]),
    Mac([2, 0, 0, 0, 0, 2]),
    Mac([2, 0, 0, 0, 0, 3]),
    Mac([2, 0, 0, 0, 0, 4]),
];

fn pick<T: Clone + std::fmt::Debug>(pool: &[T]) -> impl Strategy<Value = T> {
    let pool = pool.to_vec();
    (0..pool.len()).prop_map(move |i| pool[i].clone())
}

/// Mostly from `good`, now and then from `bad`.
fn mostly<T: Clone + std::fmt::Debug + 'static>(good: &[T], bad: &[T]) -> BoxedStrategy<T> {
    prop_oneof![12 => pick(good), 1 => pick(bad)].boxed()
}

fn arb_vtep() -> BoxedStrategy<IpAddr> {
    mostly(
        &[
            IpAddr::V4(v4(198, 51, 100, 1)),
            IpAddr::V4(v4(198, 51, 100, 2)),
            IpAddr::V4(v4(198, 51, 100, 3)),
        ],
        &[IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
    )
}

fn arb_mac() -> BoxedStrategy<Mac> {
    mostly(MACS, &[Mac([1, 0, 0x5e, 0, 0, 1]), Mac([0; 6])])
}

fn arb_network() -> impl Strategy<Value = DesiredNetwork> {
    (
        mostly(IDS, BAD_IDS),
        mostly(&[4200u32, 4201, 4202], &[0, 1 << 24]),
        0u8..3,
        mostly(&[true], &[false]),
        mostly(&[1450u32, 1400, 9000], &[10]),
        arb_vtep(),
        mostly(&[4789u16, 4790], &[0]),
        prop::collection::vec((0u8..4, arb_mac(), arb_vtep()), 0..4),
    )
        .prop_map(
            |(id, vni, n, gw_ok, mtu, local_vtep, port, remotes)| DesiredNetwork {
                id: id.to_string(),
                vni,
                subnet: Ipv4Net::new(v4(10, n, 0, 0), 24).unwrap_or_default(),
                gateway: if gw_ok {
                    v4(10, n, 0, 1)
                } else {
                    v4(10, 99, 0, 1)
                },
                mtu,
                local_vtep,
                port,
                remotes: remotes
                    .into_iter()
                    .map(|(i, mac, vtep)| RemoteEndpoint {
                        ip: v4(10, n, 0, 20 + i),
                        mac,
                        vtep,
                    })
                    .collect(),
            },
        )
}

fn arb_interface() -> impl Strategy<Value = DesiredInterface> {
    (
        mostly(
            &["eth0", "eth1", "eth2"],
            &["lo", "x/y", "much-too-long-name"],
        ),
        mostly(IDS, BAD_IDS),
        0u8..3,
        0u8..4,
        mostly(&[24u8, 16], &[33]),
        arb_mac(),
        mostly(&[1450u32, 1400, 1500], &[0]),
        mostly(&[true], &[false]),
        any::<bool>(),
    )
        .prop_map(
            |(ifname, net, n, host, prefix_len, mac, mtu, gw_ok, default_route)| DesiredInterface {
                ifname: ifname.to_string(),
                network_id: net.to_string(),
                ip: v4(10, n, 0, 10 + host),
                prefix_len,
                mac,
                mtu,
                gateway: if gw_ok {
                    v4(10, n, 0, 1)
                } else {
                    v4(192, 0, 2, 1)
                },
                default_route,
            },
        )
}

fn arb_desired() -> impl Strategy<Value = Desired> {
    (
        prop::collection::vec((arb_network(), any::<u8>()), 0..4),
        prop::collection::vec(
            (
                mostly(EP_NAMES, &["bad name", ""]),
                prop::collection::vec(arb_interface(), 0..3),
            ),
            0..4,
        ),
    )
        .prop_map(|(nets, eps)| {
            let mut d = Desired::default();
            for (n, k) in nets {
                // Mostly keyed by id, sometimes not.
                let key = if k < 245 {
                    n.id.clone()
                } else {
                    "other".into()
                };
                d.networks.insert(key, n);
            }
            for (name, interfaces) in eps {
                d.endpoints.insert(
                    name.to_string(),
                    DesiredEndpoint {
                        name: name.to_string(),
                        interfaces,
                    },
                );
            }
            d
        })
}

/// A change to an observed state. Indexes pick among what exists (modulo).
#[derive(Debug, Clone)]
enum Mutation {
    DropNs(usize),
    DropLink(usize, usize),
    Down(usize, usize),
    Mtu(usize, usize, u32),
    Master(usize, usize, Option<String>),
    Alias(usize, usize, Option<String>),
    LinkMac(usize, usize, Mac),
    Addrs(usize, usize, Vec<Ipv4Net>),
    Kind(usize, usize, LinkKind),
    Unpair(usize, usize),
    Pair(usize, usize, usize, usize),
    AddLink(usize, String, LinkKind),
    AddNs(String),
    AddStale(String),
    AddHostTemp(String),
    Fdb(usize, Mac, Vec<IpAddr>, bool),
    DropFdb(usize, usize),
    Neigh(usize, Ipv4Addr, Option<Mac>, bool),
    DropNeigh(usize, usize),
    Route(usize, Option<Ipv4Addr>, String),
    DropRoute(usize, usize),
}

fn arb_kind() -> impl Strategy<Value = LinkKind> {
    prop_oneof![
        Just(LinkKind::Bridge),
        Just(LinkKind::Veth { peer: None }),
        Just(LinkKind::Other("dummy".into())),
        (
            pick(&[4200u32, 4201, 4300]),
            arb_vtep(),
            pick(&[4789u16, 4790]),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(vni, local, port, learning, proxy)| LinkKind::Vxlan(VxlanParams {
                    vni,
                    local: Some(local),
                    port,
                    learning,
                    proxy,
                })
            ),
    ]
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let idx = || 0usize..16;
    let name = || pick(&["br0", "vxlan0", "eth0", "eth1", "vethx", "lo2"]).prop_map(str::to_string);
    let ns_name = || {
        pick(&[
            "net-aaaaaaaaaaaa",
            "net-bbbbbbbbbbbb",
            "net-c",
            "ep-a",
            "ep-b",
            "ep-ghost",
            "foreign",
        ])
        .prop_map(str::to_string)
    };
    prop_oneof![
        idx().prop_map(Mutation::DropNs),
        (idx(), idx()).prop_map(|(a, b)| Mutation::DropLink(a, b)),
        (idx(), idx()).prop_map(|(a, b)| Mutation::Down(a, b)),
        (idx(), idx(), pick(&[1500u32, 1450, 1400])).prop_map(|(a, b, m)| Mutation::Mtu(a, b, m)),
        (idx(), idx(), prop::option::of(name())).prop_map(|(a, b, m)| Mutation::Master(a, b, m)),
        (
            idx(),
            idx(),
            prop::option::of(pick(&["x/y", "ep-a/eth0"]).prop_map(str::to_string))
        )
            .prop_map(|(a, b, m)| Mutation::Alias(a, b, m)),
        (idx(), idx(), arb_mac()).prop_map(|(a, b, m)| Mutation::LinkMac(a, b, m)),
        (
            idx(),
            idx(),
            prop::collection::vec(
                pick(&["10.0.0.1/24", "10.0.0.10/24", "10.1.0.10/16", "10.2.0.1/24"]).prop_map(net),
                0..3
            )
        )
            .prop_map(|(a, b, v)| Mutation::Addrs(a, b, v)),
        (idx(), idx(), arb_kind()).prop_map(|(a, b, k)| Mutation::Kind(a, b, k)),
        (idx(), idx()).prop_map(|(a, b)| Mutation::Unpair(a, b)),
        (idx(), idx(), idx(), idx()).prop_map(|(a, b, c, d)| Mutation::Pair(a, b, c, d)),
        (idx(), name(), arb_kind()).prop_map(|(a, n, k)| Mutation::AddLink(a, n, k)),
        ns_name().prop_map(Mutation::AddNs),
        prop_oneof![ns_name(), Just("junk".to_string())].prop_map(Mutation::AddStale),
        Just(Mutation::AddHostTemp("snv12340010cc".into())),
        (
            idx(),
            pick(MACS),
            prop::collection::vec(arb_vtep(), 0..3),
            any::<bool>()
        )
            .prop_map(|(a, m, d, p)| Mutation::Fdb(a, m, d, p)),
        (idx(), idx()).prop_map(|(a, b)| Mutation::DropFdb(a, b)),
        (
            idx(),
            (0u8..3, 20u8..24),
            prop::option::of(pick(MACS)),
            any::<bool>()
        )
            .prop_map(|(a, (n, h), m, p)| Mutation::Neigh(a, v4(10, n, 0, h), m, p)),
        (idx(), idx()).prop_map(|(a, b)| Mutation::DropNeigh(a, b)),
        (
            idx(),
            prop::option::of(pick(&[v4(10, 0, 0, 1), v4(10, 1, 0, 1), v4(10, 0, 0, 254)])),
            name()
        )
            .prop_map(|(a, v, d)| Mutation::Route(a, v, d)),
        (idx(), idx()).prop_map(|(a, b)| Mutation::DropRoute(a, b)),
    ]
}

fn nth_key<K: Clone, V>(m: &BTreeMap<K, V>, i: usize) -> Option<K> {
    if m.is_empty() {
        None
    } else {
        m.keys().nth(i % m.len()).cloned()
    }
}

fn set_peer(o: &mut Observed, ns: &str, name: &str, to: Option<VethPeer>) {
    if let Some(l) = o.namespaces.get_mut(ns).and_then(|n| n.links.get_mut(name)) {
        if let LinkKind::Veth { peer } = &mut l.kind {
            *peer = to;
        }
    }
}

fn peer_of(o: &Observed, ns: &str, name: &str) -> Option<VethPeer> {
    match &o.namespaces.get(ns)?.links.get(name)?.kind {
        LinkKind::Veth { peer } => peer.clone(),
        _ => None,
    }
}

/// Removes one end's pairing, on both ends (observations are symmetric).
fn unpair(o: &mut Observed, ns: &str, name: &str) {
    if let Some(p) = peer_of(o, ns, name) {
        if peer_of(o, &p.ns, &p.ifname).is_some_and(|b| b.ns == ns && b.ifname == name) {
            set_peer(o, &p.ns, &p.ifname, None);
        }
    }
    set_peer(o, ns, name, None);
}

fn mutate(o: &mut Observed, m: &Mutation) {
    let ns_at = |o: &Observed, i: usize| nth_key(&o.namespaces, i);
    let link_at = |o: &Observed, i: usize, j: usize| {
        let ns = ns_at(o, i)?;
        let l = nth_key(&o.namespaces.get(&ns)?.links, j)?;
        Some((ns, l))
    };
    match m.clone() {
        Mutation::DropNs(i) => {
            if let Some(ns) = ns_at(o, i) {
                let names: Vec<String> = o.namespaces[&ns].links.keys().cloned().collect();
                for n in names {
                    unpair(o, &ns, &n);
                }
                o.namespaces.remove(&ns);
            }
        }
        Mutation::DropLink(i, j) => {
            // `lo` cannot be deleted.
            if let Some((ns, l)) = link_at(o, i, j).filter(|(_, l)| l != LOOPBACK) {
                unpair(o, &ns, &l);
                o.namespaces.get_mut(&ns).map(|n| n.links.remove(&l));
            }
        }
        Mutation::Down(i, j) => {
            if let Some((ns, l)) = link_at(o, i, j) {
                link_mut(o, &ns, &l).up = false;
            }
        }
        Mutation::Mtu(i, j, mtu) => {
            if let Some((ns, l)) = link_at(o, i, j) {
                link_mut(o, &ns, &l).mtu = mtu;
            }
        }
        Mutation::Master(i, j, master) => {
            if let Some((ns, l)) = link_at(o, i, j) {
                let l = link_mut(o, &ns, &l);
                // Bridges and `lo` cannot be bridge ports.
                if !matches!(l.kind, LinkKind::Bridge | LinkKind::Loopback) {
                    l.master = master;
                }
            }
        }
        Mutation::Alias(i, j, alias) => {
            if let Some((ns, l)) = link_at(o, i, j) {
                link_mut(o, &ns, &l).alias = alias;
            }
        }
        Mutation::LinkMac(i, j, mac) => {
            if let Some((ns, l)) = link_at(o, i, j) {
                link_mut(o, &ns, &l).mac = Some(mac);
            }
        }
        Mutation::Addrs(i, j, addrs) => {
            if let Some((ns, l)) = link_at(o, i, j) {
                link_mut(o, &ns, &l).addrs = addrs.into_iter().collect();
            }
        }
        Mutation::Kind(i, j, kind) => {
            if let Some((ns, l)) = link_at(o, i, j) {
                if link_mut(o, &ns, &l).kind != LinkKind::Loopback {
                    unpair(o, &ns, &l);
                    link_mut(o, &ns, &l).kind = kind;
                }
            }
        }
        Mutation::Unpair(i, j) => {
            if let Some((ns, l)) = link_at(o, i, j) {
                unpair(o, &ns, &l);
            }
        }
        Mutation::Pair(i, j, k, l) => {
            if let (Some(a), Some(b)) = (link_at(o, i, j), link_at(o, k, l)) {
                let is_veth = |o: &Observed, (ns, n): &(String, String)| {
                    matches!(o.namespaces[ns].links[n].kind, LinkKind::Veth { .. })
                };
                if a != b && is_veth(o, &a) && is_veth(o, &b) {
                    unpair(o, &a.0, &a.1);
                    unpair(o, &b.0, &b.1);
                    set_peer(
                        o,
                        &a.0,
                        &a.1,
                        Some(VethPeer {
                            ns: b.0.clone(),
                            ifname: b.1.clone(),
                        }),
                    );
                    set_peer(
                        o,
                        &b.0,
                        &b.1,
                        Some(VethPeer {
                            ns: a.0.clone(),
                            ifname: a.1.clone(),
                        }),
                    );
                }
            }
        }
        Mutation::AddLink(i, name, kind) => {
            if let Some(ns) = ns_at(o, i) {
                o.namespaces.get_mut(&ns).map(|n| {
                    n.links
                        .entry(name)
                        .or_insert_with(|| ObservedLink::new(kind, 1500))
                });
            }
        }
        Mutation::AddNs(ns) => {
            if !o.stale_files.contains(&ns) {
                o.namespaces.entry(ns).or_default().links.insert(
                    LOOPBACK.into(),
                    ObservedLink::new(LinkKind::Loopback, 65536),
                );
            }
        }
        Mutation::AddStale(name) => {
            if !o.namespaces.contains_key(&name) {
                o.stale_files.insert(name);
            }
        }
        Mutation::AddHostTemp(name) => {
            o.host_temp_links.insert(name);
        }
        Mutation::Fdb(i, mac, dsts, permanent) => {
            if let Some(ns) = ns_at(o, i) {
                o.namespaces.get_mut(&ns).map(|n| {
                    n.fdb.insert(
                        mac,
                        FdbEntry {
                            dsts: dsts.into_iter().collect(),
                            permanent,
                        },
                    )
                });
            }
        }
        Mutation::DropFdb(i, j) => {
            if let Some(ns) = ns_at(o, i) {
                if let Some(n) = o.namespaces.get_mut(&ns) {
                    if let Some(k) = nth_key(&n.fdb, j) {
                        n.fdb.remove(&k);
                    }
                }
            }
        }
        Mutation::Neigh(i, ip, mac, permanent) => {
            if let Some(ns) = ns_at(o, i) {
                o.namespaces
                    .get_mut(&ns)
                    .map(|n| n.neigh.insert(ip, NeighEntry { mac, permanent }));
            }
        }
        Mutation::DropNeigh(i, j) => {
            if let Some(ns) = ns_at(o, i) {
                if let Some(n) = o.namespaces.get_mut(&ns) {
                    if let Some(k) = nth_key(&n.neigh, j) {
                        n.neigh.remove(&k);
                    }
                }
            }
        }
        Mutation::Route(i, via, dev) => {
            if let Some(ns) = ns_at(o, i) {
                o.namespaces
                    .get_mut(&ns)
                    .map(|n| n.default_routes.insert(DefaultRoute { via, dev }));
            }
        }
        Mutation::DropRoute(i, j) => {
            if let Some(ns) = ns_at(o, i) {
                if let Some(n) = o.namespaces.get_mut(&ns) {
                    if let Some(r) = n
                        .default_routes
                        .iter()
                        .nth(j % n.default_routes.len().max(1))
                        .cloned()
                    {
                        n.default_routes.remove(&r);
                    }
                }
            }
        }
    }
}

/// Damages `o` with `muts`, keeping it something `observe` could return
/// (FDB and neighbour entries exist only on a `vxlan0`).
fn damaged(mut o: Observed, muts: &[Mutation]) -> Observed {
    for m in muts {
        mutate(&mut o, m);
    }
    for n in o.namespaces.values_mut() {
        if !n.links.contains_key(VXLAN) {
            n.fdb.clear();
            n.neigh.clear();
        }
    }
    o
}

/// A random observation: some desired state's rendering, damaged.
fn arb_observed() -> impl Strategy<Value = Observed> {
    (arb_desired(), prop::collection::vec(arb_mutation(), 0..16))
        .prop_map(|(d, muts)| damaged(render(&d), &muts))
}

fn check_symmetric(o: &Observed) -> bool {
    o.namespaces.iter().all(|(ns, n)| {
        n.links.iter().all(|(name, l)| match &l.kind {
            LinkKind::Veth { peer: Some(p) } => {
                peer_of(o, &p.ns, &p.ifname).is_some_and(|b| b.ns == *ns && b.ifname == *name)
            }
            _ => true,
        })
    })
}

/// What the planner is responsible for: everything in an observation except
/// kernel-chosen MACs (of anything but endpoint interfaces), `lo`'s details,
/// the master of endpoint interfaces, anything on a `vxlan0` that is not ours,
/// addresses of network-namespace links but `br0`, aliases of non-veths,
/// non-veth links inside endpoint namespaces (a process may make those) and
/// FDB/neighbour entries that the kernel made (non-permanent).
fn managed_view(o: &Observed) -> Observed {
    let mut o = o.clone();
    for (ns, n) in o.namespaces.iter_mut() {
        let endpoint = ns.starts_with(ENDPOINT_NS_PREFIX);
        n.links.retain(|_, l| {
            !endpoint || matches!(l.kind, LinkKind::Veth { .. } | LinkKind::Loopback)
        });
        for l in n.links.values_mut() {
            if l.kind == LinkKind::Loopback {
                *l = ObservedLink {
                    up: l.up,
                    ..ObservedLink::new(LinkKind::Loopback, 0)
                };
            } else if !endpoint {
                l.mac = None;
                // Addresses only on the bridge, aliases only on veths.
                if l.kind != LinkKind::Bridge {
                    l.addrs.clear();
                }
                if !matches!(l.kind, LinkKind::Veth { .. }) {
                    l.alias = None;
                }
            } else {
                // Not managed inside endpoint namespaces.
                l.master = None;
            }
        }
        n.fdb.retain(|_, e| e.permanent && !endpoint);
        n.neigh.retain(|_, e| e.permanent && !endpoint);
        if !endpoint {
            n.default_routes.clear();
        }
    }
    o
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// The rendering of a desired state needs no ops, and planning from
    /// nothing produces exactly that rendering.
    #[test]
    fn render_is_a_fixed_point(d in arb_desired()) {
        prop_assert!(plan(&d, &render(&d)).is_empty());
        let ops = plan(&d, &Observed::default());
        let after = simulate_checked(&Observed::default(), &ops);
        prop_assert_eq!(after, Ok(render(&d)));
    }

    /// From any observation, one plan converges, and each of its ops can
    /// run when its turn comes.
    #[test]
    fn converges_in_one_step(d in arb_desired(), o in arb_observed()) {
        prop_assert!(check_symmetric(&o));
        let ops = plan(&d, &o);
        let after = simulate_checked(&o, &ops);
        prop_assert!(after.is_ok(), "{:?}\nops: {:#?}", after.as_ref().err(), ops);
        let after = after.unwrap_or_default();
        let again = plan(&d, &after);
        prop_assert!(again.is_empty(), "second plan: {:#?}\nfirst: {:#?}", again, ops);
        // Nothing stale is left, and every desired namespace is there.
        prop_assert!(after.stale_files.is_empty() && after.host_temp_links.is_empty());
        for ns in render(&d).namespaces.keys() {
            prop_assert!(after.namespaces.contains_key(ns));
        }
        for ns in after.namespaces.keys() {
            prop_assert!(render(&d).namespaces.contains_key(ns), "{} left", ns);
        }
        // And what is there is what is desired.
        prop_assert_eq!(managed_view(&after), managed_view(&render(&d)));
    }

    /// A damaged version of the desired state's own rendering converges too,
    /// and endpoint namespaces that exist are never recreated.
    #[test]
    fn repairs_damage(d in arb_desired(), muts in prop::collection::vec(arb_mutation(), 0..16)) {
        let o = damaged(render(&d), &muts);
        let ops = plan(&d, &o);
        let after = simulate_checked(&o, &ops);
        prop_assert!(after.is_ok(), "{:?}", after.as_ref().err());
        let after = after.unwrap_or_default();
        prop_assert!(plan(&d, &after).is_empty());
        prop_assert_eq!(managed_view(&after), managed_view(&render(&d)));
        for op in &ops {
            if let Op::DeleteEndpointNs { ns, .. } = op {
                prop_assert!(!render(&d).namespaces.contains_key(ns));
            }
        }
        // Applying a plan twice changes nothing more.
        let once = simulate(&o, &ops);
        prop_assert_eq!(simulate(&once, &plan(&d, &once)), once);
    }
}
