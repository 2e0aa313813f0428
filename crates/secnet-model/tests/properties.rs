//! Property tests: random command sequences against the invariants of the replicated state.
//!
//! Every step applies the same command to three states: the state under test, a twin built
//! from the same sequence (determinism), and a copy reloaded from the previous step's JSON
//! (the serialized form carries everything `apply` depends on). After each step the invariants
//! of the cluster model are checked, a refused command must leave the state byte-for-byte
//! unchanged, and successful allocations are compared with a brute-force first-fit oracle.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use common::*;
use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use secnet_ipam::VNI_MIN;
use secnet_model::{
    validate_endpoint_name, validate_network_name, ClusterState, Command, Mac, NetworkSpec, Node,
    NodeId, Response, Role,
};

const POOL: &str = "10.20.0.0/24";
const MASK: u8 = 27;

/// Network names; `-bad` breaks the naming rule.
const NAMES: [&str; 5] = ["a", "b", "c", "d", "-bad"];
/// Network ids; `aa`, `ab` and `b0` are each a prefix of two of them.
const NET_IDS: [&str; 6] = [
    "aa0000000000000000000001",
    "aa0000000000000000000002",
    "ab0000000000000000000003",
    "ab0000000000000000000004",
    "b00000000000000000000005",
    "b00000000000000000000006",
];
/// Endpoint names; `bad/name` breaks the naming rule. Endpoint ids are `id-<name>`.
const EP_NAMES: [&str; 7] = ["e0", "e1", "e2", "e3", "e4", "e5", "bad/name"];

/// How a command names a network: one that exists (by name, id or id prefix), or a fixed
/// string that may name nothing, or several networks.
#[derive(Debug, Clone)]
enum NetRef {
    Existing(usize, RefStyle),
    Raw(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum RefStyle {
    Name,
    Id,
    /// The first `n` characters of the id (possibly ambiguous).
    Prefix(usize),
}

/// How a command names an endpoint: one that exists (by name or by id), or a fixed string.
#[derive(Debug, Clone)]
enum EpRef {
    Existing(usize, bool),
    Raw(&'static str),
}

/// A node: one that exists, or a fixed id (maybe removed, maybe never seen).
#[derive(Debug, Clone)]
enum NodeRef {
    Existing(usize),
    Raw(u64),
}

/// A command with its references still abstract; [`concretize`] resolves them against the
/// current state so that most commands hit existing objects.
#[derive(Debug, Clone)]
enum Op {
    CreateNetwork {
        id: &'static str,
        spec: NetworkSpec,
    },
    RemoveNetwork(NetRef),
    CreateEndpoint {
        name: &'static str,
        node: NodeRef,
        net: NetRef,
        ip: Option<u32>,
    },
    Connect {
        ep: EpRef,
        net: NetRef,
        ip: Option<u32>,
    },
    Disconnect {
        ep: EpRef,
        net: NetRef,
    },
    RemoveEndpoint(EpRef),
    AddNode(Node),
    RemoveNode(NodeRef),
    SetRole(NodeRef, Role),
}

fn v4(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn range(n: Ipv4Net) -> (u32, u32) {
    (u32::from(n.network()), u32::from(n.broadcast()))
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    let ((a0, a1), (b0, b1)) = (range(a), range(b));
    a0 <= b1 && b0 <= a1
}

/// A prefix in or around the pool: inside it, just past it, with host bits set, elsewhere.
fn prefix() -> impl Strategy<Value = Ipv4Net> {
    (25u8..=31, 0u32..256, 0u8..8).prop_map(|(len, idx, variant)| {
        let size = 1u32 << (32 - u32::from(len));
        let base = u32::from(Ipv4Addr::new(10, 20, 0, 0));
        let offset = (idx * size) % 256;
        let addr = match variant {
            0..=4 => base + offset,
            5 => base + 256 + offset, // 10.20.1.0/24: outside the pool
            6 => base + offset + 1,   // not canonical (unless /32)
            _ => u32::from(Ipv4Addr::new(192, 168, 0, 0)) + offset,
        };
        Ipv4Net::new(v4(addr), len).unwrap()
    })
}

fn network_spec() -> impl Strategy<Value = NetworkSpec> {
    (
        prop_oneof![10 => prop::sample::select(NAMES[..4].to_vec()), 1 => Just(NAMES[4])],
        prop::option::weighted(0.4, prefix()),
        prop::option::weighted(0.1, 0u32..70),
        prop::option::weighted(
            0.1,
            prop::sample::select(vec![1000u32, 1280, 1450, 9000, 9001]),
        ),
        prop_oneof![12 => Just("overlay"), 1 => Just("bridge")],
        any::<bool>(),
    )
        .prop_map(|(name, subnet, gw, mtu, driver, encrypted)| {
            // A gateway relative to the explicit subnet (or the pool): a host address, the
            // network or broadcast address, or outside.
            let gateway = gw.map(|off| {
                let base = subnet.map_or(u32::from(Ipv4Addr::new(10, 20, 0, 0)), |s| {
                    u32::from(s.network())
                });
                v4(base + off)
            });
            let mut s = spec(name);
            s.subnet = subnet;
            s.gateway = gateway;
            s.mtu = mtu;
            s.driver = driver.into();
            s.encrypted = encrypted;
            s
        })
}

fn net_ref() -> impl Strategy<Value = NetRef> {
    let style = prop_oneof![
        6 => Just(RefStyle::Name),
        1 => Just(RefStyle::Id),
        1 => (1usize..24).prop_map(RefStyle::Prefix),
    ];
    prop_oneof![
        8 => (any::<usize>(), style).prop_map(|(i, s)| NetRef::Existing(i, s)),
        1 => prop::sample::select(vec!["a", "b", "c", "d", "aa", "ab", "b0", "zz", ""])
            .prop_map(NetRef::Raw),
    ]
}

fn ep_ref() -> impl Strategy<Value = EpRef> {
    prop_oneof![
        8 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(i, by_id)| EpRef::Existing(i, by_id)),
        1 => prop::sample::select(vec!["e0", "e5", "id-e", "id-e1", "ghost", ""]).prop_map(EpRef::Raw),
    ]
}

fn node_ref() -> impl Strategy<Value = NodeRef> {
    prop_oneof![
        6 => any::<usize>().prop_map(NodeRef::Existing),
        1 => (1u64..=12).prop_map(NodeRef::Raw),
    ]
}

/// An explicit endpoint address as an offset from the network's first address: mostly a
/// host address, sometimes the network, gateway or broadcast address or outside the subnet.
fn address() -> impl Strategy<Value = Option<u32>> {
    prop::option::weighted(0.2, 0u32..40)
}

fn node_strategy() -> impl Strategy<Value = Node> {
    (
        2u64..=12,
        prop::sample::select(vec![Role::Worker, Role::Worker, Role::Manager]),
        prop::option::weighted(0.3, prefix()),
    )
        .prop_map(|(id, role, underlay)| {
            let mut n = node(id, role, &[]);
            n.underlay = underlay.map(IpNet::V4).into_iter().collect();
            n
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (prop::sample::select(NET_IDS.to_vec()), network_spec())
            .prop_map(|(id, spec)| Op::CreateNetwork { id, spec }),
        1 => net_ref().prop_map(Op::RemoveNetwork),
        6 => (
            prop_oneof![12 => prop::sample::select(EP_NAMES[..6].to_vec()), 1 => Just(EP_NAMES[6])],
            node_ref(),
            net_ref(),
            address(),
        )
            .prop_map(|(name, node, net, ip)| Op::CreateEndpoint { name, node, net, ip }),
        4 => (ep_ref(), net_ref(), address()).prop_map(|(ep, net, ip)| Op::Connect { ep, net, ip }),
        3 => (ep_ref(), net_ref()).prop_map(|(ep, net)| Op::Disconnect { ep, net }),
        2 => ep_ref().prop_map(Op::RemoveEndpoint),
        2 => node_strategy().prop_map(Op::AddNode),
        1 => node_ref().prop_map(Op::RemoveNode),
        1 => (node_ref(), prop::sample::select(vec![Role::Worker, Role::Manager]))
            .prop_map(|(n, role)| Op::SetRole(n, role)),
    ]
}

fn pick<T: Clone>(items: &[T], i: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[i % items.len()].clone())
}

fn network_key(s: &ClusterState, r: &NetRef) -> String {
    let nets: Vec<_> = s.networks.values().collect();
    match r {
        NetRef::Raw(raw) => (*raw).to_string(),
        NetRef::Existing(i, style) => match pick(&nets, *i) {
            None => "a".into(),
            Some(n) => match style {
                RefStyle::Name => n.name.clone(),
                RefStyle::Id => n.id.clone(),
                RefStyle::Prefix(len) => n.id[..*len].to_string(),
            },
        },
    }
}

fn endpoint_key(s: &ClusterState, r: &EpRef) -> String {
    let eps: Vec<_> = s.endpoints.values().collect();
    match r {
        EpRef::Raw(raw) => (*raw).to_string(),
        EpRef::Existing(i, by_id) => match pick(&eps, *i) {
            None => "e0".into(),
            Some(e) if *by_id => e.id.clone(),
            Some(e) => e.name.clone(),
        },
    }
}

fn node_key(s: &ClusterState, r: &NodeRef) -> NodeId {
    let ids: Vec<_> = s.nodes.keys().copied().collect();
    match r {
        NodeRef::Raw(id) => NodeId(*id),
        NodeRef::Existing(i) => pick(&ids, *i).unwrap_or(NodeId(1)),
    }
}

/// An explicit address at `offset` from the first address of the network `key` resolves to
/// (or of the pool when it resolves to none).
fn address_in(s: &ClusterState, key: &str, offset: Option<u32>) -> Option<Ipv4Addr> {
    let base = s
        .find_network(key)
        .map_or(u32::from(Ipv4Addr::new(10, 20, 0, 0)), |n| {
            u32::from(n.subnet.network())
        });
    offset.map(|o| v4(base + o))
}

/// Resolves an [`Op`] against the current state into the command every replica applies.
fn concretize(s: &ClusterState, op: &Op) -> Command {
    match op {
        Op::CreateNetwork { id, spec } => create_network_cmd(id, spec.clone()),
        Op::RemoveNetwork(n) => Command::RemoveNetwork {
            name_or_id: network_key(s, n),
        },
        Op::CreateEndpoint {
            name,
            node,
            net,
            ip,
        } => {
            let network = network_key(s, net);
            Command::CreateEndpoint {
                id: format!("id-{name}"),
                name: (*name).to_string(),
                node: node_key(s, node),
                ip: address_in(s, &network, *ip),
                network,
                created_at: 7,
            }
        }
        Op::Connect { ep, net, ip } => {
            let network = network_key(s, net);
            Command::ConnectEndpoint {
                name: endpoint_key(s, ep),
                ip: address_in(s, &network, *ip),
                network,
            }
        }
        Op::Disconnect { ep, net } => Command::DisconnectEndpoint {
            name: endpoint_key(s, ep),
            network: network_key(s, net),
        },
        Op::RemoveEndpoint(ep) => Command::RemoveEndpoint {
            name: endpoint_key(s, ep),
        },
        Op::AddNode(n) => Command::AddNode { node: n.clone() },
        Op::RemoveNode(n) => Command::RemoveNode { id: node_key(s, n) },
        Op::SetRole(n, role) => Command::SetRole {
            id: node_key(s, n),
            role: *role,
        },
    }
}

fn fresh() -> ClusterState {
    cluster_with(POOL, MASK, node(1, Role::Manager, &[]))
}

fn result_json(r: &secnet_model::CommandResult) -> String {
    serde_json::to_string(r).unwrap()
}

/// The invariants every reachable state keeps.
fn invariants(s: &ClusterState) -> Result<(), TestCaseError> {
    prop_assert!(s.is_initialized());
    prop_assert!(s.secrets.is_some());
    prop_assert!(s.managers().count() >= 1, "no manager left");

    for (id, n) in &s.nodes {
        prop_assert_eq!(*id, n.id);
        prop_assert!(!s.removed_nodes.contains(id), "removed node {} present", id);
    }

    // Networks: keyed by id, unique names, valid names, unique VNIs >= 4096, disjoint subnets,
    // gateway a host address of the subnet.
    let mut names = BTreeSet::new();
    let mut vnis = BTreeSet::new();
    let nets: Vec<_> = s.networks.values().collect();
    for (id, n) in &s.networks {
        prop_assert_eq!(id, &n.id);
        prop_assert!(
            validate_network_name(&n.name).is_ok(),
            "bad name {:?}",
            n.name
        );
        prop_assert_eq!(n.driver.as_str(), "overlay");
        prop_assert!(
            names.insert(n.name.clone()),
            "duplicate network name {}",
            n.name
        );
        prop_assert!(n.vni >= VNI_MIN, "vni {} < {}", n.vni, VNI_MIN);
        prop_assert!(vnis.insert(n.vni), "duplicate vni {}", n.vni);
        prop_assert_eq!(n.subnet, n.subnet.trunc(), "subnet not canonical");
        prop_assert!(n.subnet.prefix_len() <= 30);
        prop_assert!(n.subnet.contains(&n.gateway));
        prop_assert!(n.gateway != n.subnet.network() && n.gateway != n.subnet.broadcast());
        if let Some(mtu) = n.mtu {
            prop_assert!((1280..=9000).contains(&mtu));
        }
    }
    for (i, a) in nets.iter().enumerate() {
        for b in &nets[i + 1..] {
            prop_assert!(
                !overlaps(a.subnet, b.subnet),
                "{} ({}) overlaps {} ({})",
                a.subnet,
                a.name,
                b.subnet,
                b.name
            );
        }
    }

    // Endpoints.
    let mut used: BTreeMap<&str, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for (name, e) in &s.endpoints {
        prop_assert_eq!(name, &e.name, "endpoint keyed by another name");
        prop_assert!(validate_endpoint_name(&e.name).is_ok());
        prop_assert!(
            s.nodes.contains_key(&e.node),
            "{} on missing node {}",
            e.name,
            e.node
        );
        prop_assert!(!e.attachments.is_empty(), "{} has no attachment", e.name);
        let mut ifnames = BTreeSet::new();
        let mut on = BTreeSet::new();
        for a in &e.attachments {
            prop_assert!(
                ifnames.insert(a.ifname.as_str()),
                "duplicate ifname {}",
                a.ifname
            );
            prop_assert!(
                on.insert(a.network_id.as_str()),
                "attached twice to {}",
                a.network_id
            );
            let net = s.networks.get(&a.network_id);
            prop_assert!(
                net.is_some(),
                "{} attached to missing network {}",
                e.name,
                a.network_id
            );
            let net = net.unwrap();
            prop_assert!(
                net.subnet.contains(&a.ip),
                "{} outside {}",
                a.ip,
                net.subnet
            );
            prop_assert!(a.ip != net.gateway, "{} is the gateway", a.ip);
            prop_assert!(a.ip != net.subnet.network() && a.ip != net.subnet.broadcast());
            prop_assert_eq!(a.mac, Mac::for_ip(a.ip));
            prop_assert!(
                used.entry(a.network_id.as_str()).or_default().insert(a.ip),
                "address {} used twice on {}",
                a.ip,
                net.name
            );
        }
    }
    Ok(())
}

/// The underlay prefixes of the nodes, host bits cleared.
fn underlays(s: &ClusterState) -> Vec<Ipv4Net> {
    s.nodes
        .values()
        .flat_map(|n| n.underlay.iter())
        .filter_map(|p| match p {
            IpNet::V4(p) => Some(p.trunc()),
            IpNet::V6(_) => None,
        })
        .collect()
}

/// Compares what a successful command allocated with a brute-force first fit over `prev`.
fn check_allocation(
    prev: &ClusterState,
    cmd: &Command,
    res: &Response,
) -> Result<(), TestCaseError> {
    match (cmd, res) {
        (Command::CreateNetwork { spec, .. }, Response::Network(n)) => {
            let taken: Vec<Ipv4Net> = prev
                .networks
                .values()
                .map(|n| n.subnet)
                .chain(underlays(prev))
                .collect();
            match spec.subnet {
                Some(sub) => {
                    prop_assert_eq!(n.subnet, sub);
                    prop_assert_eq!(
                        n.gateway,
                        spec.gateway.unwrap_or(v4(u32::from(sub.network()) + 1))
                    );
                }
                None => {
                    let pool = net4(POOL);
                    let first_free = pool
                        .subnets(MASK)
                        .unwrap()
                        .find(|c| taken.iter().all(|t| !overlaps(*c, *t)));
                    prop_assert_eq!(Some(n.subnet), first_free, "not first fit");
                    prop_assert_eq!(n.gateway, v4(u32::from(n.subnet.network()) + 1));
                }
            }
            let vnis: BTreeSet<u32> = prev.networks.values().map(|n| n.vni).collect();
            let lowest = (VNI_MIN..).find(|v| !vnis.contains(v));
            prop_assert_eq!(Some(n.vni), lowest, "VNI not lowest free");
        }
        (
            Command::CreateEndpoint { ip, .. } | Command::ConnectEndpoint { ip, .. },
            Response::Endpoint(e),
        ) => {
            // The new attachment is the one `prev` did not have.
            let old: Vec<_> = prev
                .endpoints
                .get(&e.name)
                .map(|e| e.attachments.clone())
                .unwrap_or_default();
            prop_assert_eq!(e.attachments.len(), old.len() + 1);
            prop_assert_eq!(&e.attachments[..old.len()], &old[..]);
            let new = e.attachments.last().unwrap();
            let ifname_taken: BTreeSet<_> = old.iter().map(|a| a.ifname.clone()).collect();
            let lowest_if = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !ifname_taken.contains(n));
            prop_assert_eq!(Some(new.ifname.clone()), lowest_if);
            let net = &prev.networks[&new.network_id];
            let in_use: BTreeSet<Ipv4Addr> = prev
                .endpoints
                .values()
                .flat_map(|e| e.attachments.iter())
                .filter(|a| a.network_id == net.id)
                .map(|a| a.ip)
                .collect();
            match ip {
                Some(want) => prop_assert_eq!(new.ip, *want),
                None => {
                    let (lo, hi) = range(net.subnet);
                    let lowest = (lo + 1..hi)
                        .map(v4)
                        .find(|a| *a != net.gateway && !in_use.contains(a));
                    prop_assert_eq!(Some(new.ip), lowest, "address not lowest free");
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The effect of a successful command beyond allocation, and what no command may undo.
fn check_effect(
    prev: &ClusterState,
    s: &ClusterState,
    cmd: &Command,
    ok: bool,
) -> Result<(), TestCaseError> {
    // A removed id stays removed, whatever happens next.
    prop_assert!(prev.removed_nodes.is_subset(&s.removed_nodes));
    if !ok {
        return Ok(());
    }
    match cmd {
        Command::AddNode { node } => {
            prop_assert_eq!(s.nodes.get(&node.id), Some(node));
            prop_assert_eq!(s.nodes.len(), prev.nodes.len() + 1);
        }
        Command::RemoveNode { id } => {
            prop_assert!(s.removed_nodes.contains(id));
            prop_assert!(!s.nodes.contains_key(id));
            prop_assert_eq!(s.nodes.len() + 1, prev.nodes.len());
            let kept: Vec<_> = prev.endpoints.values().filter(|e| e.node != *id).collect();
            prop_assert_eq!(kept, s.endpoints.values().collect::<Vec<_>>());
        }
        Command::SetRole { id, role } => prop_assert_eq!(s.nodes[id].role, *role),
        Command::RemoveNetwork { name_or_id } => {
            let gone = prev.find_network(name_or_id).unwrap();
            prop_assert!(!s.networks.contains_key(&gone.id));
            prop_assert_eq!(s.networks.len() + 1, prev.networks.len());
            prop_assert!(prev.endpoints_on(&gone.id).is_empty());
        }
        Command::RemoveEndpoint { name } => {
            // By name or unique id prefix.
            let gone = prev.find_endpoint(name).unwrap();
            prop_assert!(!s.endpoints.contains_key(&gone.name));
            prop_assert_eq!(s.endpoints.len() + 1, prev.endpoints.len());
        }
        Command::DisconnectEndpoint { name, network } => {
            let net = prev.find_network(network).unwrap();
            let key = &prev.find_endpoint(name).unwrap().name;
            let before = &prev.endpoints[key].attachments;
            let after = &s.endpoints[key].attachments;
            let want: Vec<_> = before.iter().filter(|a| a.network_id != net.id).collect();
            prop_assert_eq!(after.iter().collect::<Vec<_>>(), want);
            prop_assert_eq!(after.len() + 1, before.len());
        }
        _ => {}
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut s = fresh();
    let mut twin = fresh();
    let mut reloaded = fresh();
    invariants(&s)?;
    for op in ops {
        let cmd = concretize(&s, &op);
        let before = json(&s);
        let prev = s.clone();
        let res = s.apply(cmd.clone());
        let after = json(&s);

        // (1) determinism: same sequence, same result and state.
        let twin_res = twin.apply(cmd.clone());
        prop_assert_eq!(result_json(&res), result_json(&twin_res));
        prop_assert_eq!(&after, &json(&twin));
        // A state reloaded from JSON behaves the same.
        let reloaded_res = reloaded.apply(cmd.clone());
        prop_assert_eq!(result_json(&res), result_json(&reloaded_res));
        prop_assert_eq!(&after, &json(&reloaded));

        match &res {
            // (2) a refused command changes nothing.
            Err(e) => prop_assert_eq!(&before, &after, "refused ({:?}) but changed", e),
            Ok(r) => check_allocation(&prev, &cmd, r)?,
        }
        check_effect(&prev, &s, &cmd, res.is_ok())?;

        // (3)-(5)
        invariants(&s)?;

        // (6) JSON round trip.
        let back: ClusterState = serde_json::from_str(&after).unwrap();
        prop_assert_eq!(&json(&back), &after);
        reloaded = back;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_keep_the_invariants(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        run(ops)?;
    }
}

/// The generators reach the interesting outcomes (not only refusals): a sanity check that
/// the property above is not vacuous.
#[test]
fn generators_reach_successes_and_refusals() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(op(), 60);
    let mut ok: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut refusals = 0usize;
    let mut errs: BTreeMap<String, usize> = BTreeMap::new();
    let mut max_endpoints = 0;
    for _ in 0..200 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut s = fresh();
        for op in ops {
            let cmd = concretize(&s, &op);
            let kind = match &cmd {
                Command::CreateNetwork { .. } => "create-network",
                Command::RemoveNetwork { .. } => "remove-network",
                Command::CreateEndpoint { .. } => "create-endpoint",
                Command::ConnectEndpoint { .. } => "connect",
                Command::DisconnectEndpoint { .. } => "disconnect",
                Command::RemoveEndpoint { .. } => "remove-endpoint",
                Command::AddNode { .. } => "add-node",
                Command::RemoveNode { .. } => "remove-node",
                Command::SetRole { .. } => "set-role",
                _ => "other",
            };
            match s.apply(cmd) {
                Ok(_) => *ok.entry(kind).or_default() += 1,
                Err(e) => {
                    refusals += 1;
                    let k = format!("{kind}: {e:?}");
                    let k: String = k.chars().take(40).collect();
                    *errs.entry(k).or_default() += 1;
                }
            }
            max_endpoints = max_endpoints.max(s.endpoints.len());
        }
    }
    for kind in [
        "create-network",
        "remove-network",
        "create-endpoint",
        "connect",
        "disconnect",
        "remove-endpoint",
        "add-node",
        "remove-node",
        "set-role",
    ] {
        assert!(
            ok.get(kind).copied().unwrap_or(0) >= 10,
            "{kind} rarely succeeds: {ok:?} {errs:#?}"
        );
    }
    assert!(refusals > 100);
    assert!(max_endpoints >= 4, "endpoints never pile up");
}
