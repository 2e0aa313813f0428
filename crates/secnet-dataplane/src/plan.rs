//! The pure planner: `plan(desired, observed) -> ops`.
//!
//! The planner keeps a *predicted* state: it starts from the observation and
//! runs every op it emits through [`crate::sim`], the same model that
//! [`crate::simulate`] uses. Every later decision looks at the predicted state,
//! so e.g. deleting a veth (which takes its peer with it) is seen by the
//! checks of the peer's namespace, and a freshly created `vxlan0` (down, no
//! master, empty FDB) is followed by the ops that configure it. Convergence in
//! one step — `plan(d, simulate(o, plan(d, o)))` is empty — follows from the
//! planner and the model agreeing; the property tests check it.
//!
//! Order of a plan (chosen so each op can succeed, and so consecutive ops
//! share one `ip -batch` process per namespace):
//!
//! 1. deletions: stale files, leftover temporary VXLANs in the host
//!    namespace, namespaces that are not desired, then inside desired
//!    namespaces the links that are wrong (a VXLAN with wrong creation
//!    parameters, unpaired veths, ...) and FDB/neighbour entries that must go;
//! 2. namespace creation;
//! 3. VXLAN creation (all in one host-namespace batch);
//! 4. per network namespace: `lo`, `br0`, `vxlan0` (enslave, up), veth pairs,
//!    neighbour entries (one `ip` batch), then FDB entries (one `bridge` batch);
//! 5. per endpoint namespace: `lo`, interfaces, default route.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use crate::model::*;
use crate::sim;

/// The normalised, validated desired state, keyed by namespace file name.
pub(crate) struct Norm<'a> {
    pub networks: BTreeMap<String, NormNet<'a>>,
    pub endpoints: BTreeMap<String, NormEp>,
}

pub(crate) struct NormNet<'a> {
    pub net: &'a DesiredNetwork,
    pub bridge_addr: Ipv4Net,
    /// MAC -> remote VTEP.
    pub fdb: BTreeMap<Mac, IpAddr>,
    /// IP -> MAC.
    pub neigh: BTreeMap<Ipv4Addr, Mac>,
    /// Local endpoint interfaces on this network.
    pub ports: Vec<Port>,
}

#[derive(Clone)]
pub(crate) struct Port {
    pub veth: String,
    pub endpoint_ns: String,
    pub ifname: String,
    pub mac: Mac,
    pub peer_mtu: u32,
}

pub(crate) struct NormEp {
    pub ifaces: Vec<NormIf>,
    pub default_route: Option<DefaultRoute>,
}

pub(crate) struct NormIf {
    pub ifname: String,
    pub net_ns: String,
    pub veth: String,
    pub mac: Mac,
    pub mtu: u32,
    pub addr: Ipv4Net,
}

/// Characters allowed in network ids, endpoint names and interface names:
/// they end up in file names and in `ip -batch` lines, so nothing that needs
/// quoting.
fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with('.')
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_mtu(mtu: u32) -> bool {
    (68..=65535).contains(&mtu)
}

/// Longest endpoint name: `ep-<name>/<ifname>` must fit in a link alias.
const MAX_ENDPOINT_NAME: usize = 200;
const MAX_NETWORK_ID: usize = 200;
const MAX_IFNAME: usize = 15;

pub(crate) fn normalize(desired: &Desired) -> (Norm<'_>, Vec<String>) {
    let mut problems = Vec::new();
    let mut networks: BTreeMap<String, NormNet<'_>> = BTreeMap::new();
    // network id -> ns name, for the networks that are valid.
    let mut net_ns_of: BTreeMap<&str, String> = BTreeMap::new();
    let mut vnis: BTreeSet<u32> = BTreeSet::new();
    for (key, net) in &desired.networks {
        let why = if key != &net.id {
            Some(format!("listed under key {key:?}"))
        } else if !valid_name(&net.id, MAX_NETWORK_ID) {
            Some("invalid id".to_string())
        } else if !(1..=0x00ff_ffff).contains(&net.vni) {
            Some(format!("invalid VNI {}", net.vni))
        } else if net.port == 0 {
            Some("port 0".to_string())
        } else if !valid_mtu(net.mtu) {
            Some(format!("invalid MTU {}", net.mtu))
        } else if net.local_vtep.is_unspecified() {
            Some("unspecified local VTEP".to_string())
        } else if !net.subnet.contains(&net.gateway) {
            Some(format!("gateway {} outside {}", net.gateway, net.subnet))
        } else if vnis.contains(&net.vni) {
            Some(format!("VNI {} used by another network", net.vni))
        } else if networks.contains_key(&network_ns_name(&net.id)) {
            Some(format!(
                "namespace {} taken by another network",
                network_ns_name(&net.id)
            ))
        } else {
            None
        };
        if let Some(why) = why {
            problems.push(format!("network {:?} ignored: {why}", net.id));
            continue;
        }
        let mut fdb = BTreeMap::new();
        let mut neigh = BTreeMap::new();
        for r in &net.remotes {
            if !r.mac.is_unicast() || r.vtep.is_unspecified() {
                problems.push(format!(
                    "network {:?}: remote {} ({}) ignored: bad MAC or VTEP",
                    net.id, r.ip, r.mac
                ));
                continue;
            }
            fdb.insert(r.mac, r.vtep);
            neigh.insert(r.ip, r.mac);
        }
        let ns = network_ns_name(&net.id);
        vnis.insert(net.vni);
        net_ns_of.insert(&net.id, ns.clone());
        networks.insert(
            ns,
            NormNet {
                net,
                bridge_addr: Ipv4Net::new(net.gateway, net.subnet.prefix_len())
                    .unwrap_or(net.subnet),
                fdb,
                neigh,
                ports: Vec::new(),
            },
        );
    }

    let mut endpoints = BTreeMap::new();
    for (key, ep) in &desired.endpoints {
        if key != &ep.name || !valid_name(&ep.name, MAX_ENDPOINT_NAME) {
            problems.push(format!("endpoint {:?} ignored: invalid name", ep.name));
            continue;
        }
        let ns = endpoint_ns_name(&ep.name);
        let mut ifaces: Vec<NormIf> = Vec::new();
        let mut default_route = None;
        for i in &ep.interfaces {
            let why = if !valid_name(&i.ifname, MAX_IFNAME) || i.ifname == LOOPBACK {
                Some("invalid interface name".to_string())
            } else if ifaces.iter().any(|x| x.ifname == i.ifname) {
                Some("duplicate interface name".to_string())
            } else if !net_ns_of.contains_key(i.network_id.as_str()) {
                Some(format!("network {:?} not (validly) desired", i.network_id))
            } else if i.prefix_len > 32 {
                Some(format!("prefix length {}", i.prefix_len))
            } else if !valid_mtu(i.mtu) {
                Some(format!("invalid MTU {}", i.mtu))
            } else if !i.mac.is_unicast() {
                Some(format!("MAC {} is not unicast", i.mac))
            } else {
                None
            };
            if let Some(why) = why {
                problems.push(format!(
                    "endpoint {:?} interface {:?} ignored: {why}",
                    ep.name, i.ifname
                ));
                continue;
            }
            let Some(net_ns) = net_ns_of.get(i.network_id.as_str()).cloned() else {
                continue;
            };
            let veth = veth_name(&ep.name, &i.ifname);
            let Some(net) = networks.get_mut(&net_ns) else {
                continue;
            };
            if net.ports.iter().any(|p| p.veth == veth) {
                problems.push(format!(
                    "endpoint {:?} interface {:?} ignored: veth name collision",
                    ep.name, i.ifname
                ));
                continue;
            }
            let addr = Ipv4Net::new(i.ip, i.prefix_len).unwrap_or_else(|_| Ipv4Net::from(i.ip));
            if i.default_route && default_route.is_none() {
                if addr.contains(&i.gateway) && i.gateway != i.ip {
                    default_route = Some(DefaultRoute {
                        via: Some(i.gateway),
                        dev: i.ifname.clone(),
                    });
                } else {
                    problems.push(format!(
                        "endpoint {:?} interface {:?}: gateway {} not on {addr}, no default route",
                        ep.name, i.ifname, i.gateway
                    ));
                }
            }
            net.ports.push(Port {
                veth: veth.clone(),
                endpoint_ns: ns.clone(),
                ifname: i.ifname.clone(),
                mac: i.mac,
                peer_mtu: i.mtu,
            });
            ifaces.push(NormIf {
                ifname: i.ifname.clone(),
                net_ns,
                veth,
                mac: i.mac,
                mtu: i.mtu,
                addr,
            });
        }
        endpoints.insert(
            ns,
            NormEp {
                ifaces,
                default_route,
            },
        );
    }
    (
        Norm {
            networks,
            endpoints,
        },
        problems,
    )
}

impl Desired {
    /// Why parts of this desired state will be ignored by [`plan`] (invalid
    /// names, VNIs, MTUs, MACs, interfaces on networks that are not listed,
    /// ...). Empty when everything is usable.
    pub fn problems(&self) -> Vec<String> {
        normalize(self).1
    }
}

fn vxlan_params(net: &DesiredNetwork) -> VxlanParams {
    VxlanParams {
        vni: net.vni,
        local: Some(net.local_vtep),
        port: net.port,
        learning: false,
        proxy: true,
    }
}

/// True when `(a_ns, a)` and `(b_ns, b)` are the two ends of one veth pair.
pub(crate) fn paired(state: &Observed, a_ns: &str, a: &str, b_ns: &str, b: &str) -> bool {
    let points_to = |ns: &str, name: &str, pns: &str, pname: &str| {
        state
            .namespaces
            .get(ns)
            .and_then(|n| n.links.get(name))
            .is_some_and(|l| match &l.kind {
                LinkKind::Veth { peer: Some(p) } => p.ns == pns && p.ifname == pname,
                _ => false,
            })
    };
    points_to(a_ns, a, b_ns, b) && points_to(b_ns, b, a_ns, a)
}

fn alias_for(ns: &str, ifname: &str) -> String {
    format!("{ns}/{ifname}")
}

/// Address changes: `(del, add)`. When anything is deleted every wanted
/// address is (re-)added, since deleting a primary address also deletes its
/// secondaries.
fn addr_diff(have: &BTreeSet<Ipv4Net>, want: &BTreeSet<Ipv4Net>) -> (Vec<Ipv4Net>, Vec<Ipv4Net>) {
    let del: Vec<Ipv4Net> = have.difference(want).copied().collect();
    let add: Vec<Ipv4Net> = if del.is_empty() {
        want.difference(have).copied().collect()
    } else {
        want.iter().copied().collect()
    };
    (del, add)
}

struct Planner {
    state: Observed,
    ops: Vec<Op>,
}

impl Planner {
    fn emit(&mut self, op: Op) {
        // Errors cannot happen for the ops the planner emits (the property
        // tests check that with `simulate_checked`); ignore them here.
        let _ = sim::step(&mut self.state, &op);
        self.ops.push(op);
    }

    fn ns(&self, ns: &str) -> Option<&ObservedNs> {
        self.state.namespaces.get(ns)
    }

    fn link(&self, ns: &str, name: &str) -> Option<&ObservedLink> {
        self.ns(ns).and_then(|n| n.links.get(name))
    }
}

/// Plans the ops that turn `observed` into `desired`. Pure. Invalid parts of
/// `desired` are ignored (see [`Desired::problems`]).
pub fn plan(desired: &Desired, observed: &Observed) -> Vec<Op> {
    let (norm, _) = normalize(desired);
    let mut p = Planner {
        state: observed.clone(),
        ops: Vec::new(),
    };
    delete_phase(&mut p, &norm);
    create_phase(&mut p, &norm);
    p.ops
}

fn delete_phase(p: &mut Planner, norm: &Norm<'_>) {
    for name in p.state.stale_files.clone() {
        p.emit(Op::DeleteStaleFile { name });
    }
    for name in p.state.host_temp_links.clone() {
        p.emit(Op::DeleteHostLink { name });
    }
    let undesired: Vec<String> = p
        .state
        .namespaces
        .keys()
        .filter(|ns| !norm.networks.contains_key(*ns) && !norm.endpoints.contains_key(*ns))
        .cloned()
        .collect();
    for ns in undesired {
        let Some(n) = p.ns(&ns) else { continue };
        let links: Vec<String> = n
            .links
            .iter()
            .filter(|(_, l)| l.kind != LinkKind::Loopback)
            .map(|(name, _)| name.clone())
            .collect();
        if ns.starts_with(NETWORK_NS_PREFIX) {
            p.emit(Op::DeleteNetworkNs { ns, links });
        } else {
            p.emit(Op::DeleteEndpointNs { ns, links });
        }
    }

    // Inside desired network namespaces.
    for (ns, n) in &norm.networks {
        let Some(names) = p
            .ns(ns)
            .map(|n| n.links.keys().cloned().collect::<Vec<_>>())
        else {
            continue;
        };
        let want_vx = vxlan_params(n.net);
        for name in names {
            let Some(link) = p.link(ns, &name) else {
                continue; // went with a peer
            };
            let keep = match (name.as_str(), &link.kind) {
                (_, LinkKind::Loopback) => true,
                (BRIDGE, kind) => *kind == LinkKind::Bridge,
                (VXLAN, LinkKind::Vxlan(have)) => *have == want_vx,
                (_, LinkKind::Veth { .. }) => n.ports.iter().any(|port| {
                    port.veth == name
                        && paired(&p.state, ns, &name, &port.endpoint_ns, &port.ifname)
                }),
                _ => false,
            };
            if keep {
                continue;
            }
            if name == VXLAN && matches!(link.kind, LinkKind::Vxlan(_)) {
                p.emit(Op::DeleteVxlan { ns: ns.clone() });
            } else {
                p.emit(Op::DeleteInterface {
                    ns: ns.clone(),
                    name,
                });
            }
        }
        if p.link(ns, VXLAN).is_none() {
            continue;
        }
        let Some(state) = p.ns(ns) else { continue };
        let del_fdb: Vec<Mac> = state
            .fdb
            .iter()
            .filter(|(mac, e)| match n.fdb.get(*mac) {
                // `replace` only rewrites the first remote of an entry.
                Some(_) => e.dsts.len() > 1,
                None => e.permanent,
            })
            .map(|(mac, _)| *mac)
            .collect();
        let del_neigh: Vec<Ipv4Addr> = state
            .neigh
            .iter()
            .filter(|(ip, e)| e.permanent && !n.neigh.contains_key(*ip))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in del_neigh {
            p.emit(Op::DelNeigh { ns: ns.clone(), ip });
        }
        for mac in del_fdb {
            p.emit(Op::DelFdb {
                ns: ns.clone(),
                mac,
            });
        }
    }

    // Inside desired endpoint namespaces: only veths and links with the
    // names we need; anything else a process made in there stays.
    for (ns, e) in &norm.endpoints {
        let Some(names) = p
            .ns(ns)
            .map(|n| n.links.keys().cloned().collect::<Vec<_>>())
        else {
            continue;
        };
        for name in names {
            let Some(link) = p.link(ns, &name) else {
                continue;
            };
            if link.kind == LinkKind::Loopback {
                continue;
            }
            let keep = match e.ifaces.iter().find(|i| i.ifname == name) {
                Some(i) => paired(&p.state, ns, &name, &i.net_ns, &i.veth),
                None => !matches!(link.kind, LinkKind::Veth { .. }),
            };
            if !keep {
                p.emit(Op::DeleteInterface {
                    ns: ns.clone(),
                    name,
                });
            }
        }
    }
}

fn create_phase(p: &mut Planner, norm: &Norm<'_>) {
    for ns in norm.networks.keys() {
        if p.ns(ns).is_none() {
            p.emit(Op::CreateNetworkNs { ns: ns.clone() });
        }
    }
    for ns in norm.endpoints.keys() {
        if p.ns(ns).is_none() {
            p.emit(Op::CreateEndpointNs { ns: ns.clone() });
        }
    }
    for (ns, n) in &norm.networks {
        if p.ns(ns).is_some() && p.link(ns, VXLAN).is_none() {
            p.emit(Op::CreateVxlan {
                ns: ns.clone(),
                vni: n.net.vni,
                local: n.net.local_vtep,
                port: n.net.port,
                mtu: n.net.mtu,
            });
        }
    }
    for (ns, n) in &norm.networks {
        network_ns_ops(p, ns, n);
    }
    for (ns, e) in &norm.endpoints {
        endpoint_ns_ops(p, ns, e);
    }
}

fn loopback_up(p: &mut Planner, ns: &str) {
    if p.link(ns, LOOPBACK).is_some_and(|l| !l.up) {
        p.emit(Op::SetLoopbackUp { ns: ns.to_string() });
    }
}

fn network_ns_ops(p: &mut Planner, ns: &str, n: &NormNet<'_>) {
    if p.ns(ns).is_none() {
        return;
    }
    let mtu = n.net.mtu;
    loopback_up(p, ns);

    if p.link(ns, BRIDGE).is_none() {
        p.emit(Op::CreateBridge {
            ns: ns.to_string(),
            mtu,
        });
    }
    if let Some(br) = p.link(ns, BRIDGE) {
        let want: BTreeSet<Ipv4Net> = [n.bridge_addr].into_iter().collect();
        let (del_addrs, add_addrs) = addr_diff(&br.addrs, &want);
        let op = Op::SetBridge {
            ns: ns.to_string(),
            mtu: (br.mtu != mtu).then_some(mtu),
            del_addrs,
            add_addrs,
            set_up: !br.up,
        };
        if !is_noop(&op) {
            p.emit(op);
        }
    }

    if let Some(vx) = p.link(ns, VXLAN) {
        let op = Op::SetVxlan {
            ns: ns.to_string(),
            mtu: (vx.mtu != mtu).then_some(mtu),
            master: (vx.master.as_deref() != Some(BRIDGE)).then(|| BRIDGE.to_string()),
            set_up: !vx.up,
        };
        if !is_noop(&op) {
            p.emit(op);
        }
    }

    for port in &n.ports {
        if !paired(&p.state, ns, &port.veth, &port.endpoint_ns, &port.ifname) {
            p.emit(Op::CreateInterface {
                ns: ns.to_string(),
                veth: port.veth.clone(),
                endpoint_ns: port.endpoint_ns.clone(),
                ifname: port.ifname.clone(),
                mac: port.mac,
                mtu,
                peer_mtu: port.peer_mtu,
            });
        }
        let Some(v) = p.link(ns, &port.veth) else {
            continue;
        };
        let alias = alias_for(&port.endpoint_ns, &port.ifname);
        let op = Op::SetVeth {
            ns: ns.to_string(),
            veth: port.veth.clone(),
            endpoint_ns: port.endpoint_ns.clone(),
            mtu: (v.mtu != mtu).then_some(mtu),
            master: (v.master.as_deref() != Some(BRIDGE)).then(|| BRIDGE.to_string()),
            alias: (v.alias.as_deref() != Some(alias.as_str())).then_some(alias),
            set_up: !v.up,
        };
        if !is_noop(&op) {
            p.emit(op);
        }
    }

    if p.link(ns, VXLAN).is_none() {
        return;
    }
    let want_neigh = NeighEntry {
        mac: None,
        permanent: true,
    };
    for (ip, mac) in &n.neigh {
        let ok = p.ns(ns).and_then(|s| s.neigh.get(ip))
            == Some(&NeighEntry {
                mac: Some(*mac),
                ..want_neigh
            });
        if !ok {
            p.emit(Op::AddNeigh {
                ns: ns.to_string(),
                ip: *ip,
                mac: *mac,
            });
        }
    }
    for (mac, dst) in &n.fdb {
        let want = FdbEntry {
            dsts: [*dst].into_iter().collect(),
            permanent: true,
        };
        if p.ns(ns).and_then(|s| s.fdb.get(mac)) != Some(&want) {
            p.emit(Op::AddFdb {
                ns: ns.to_string(),
                mac: *mac,
                dst: *dst,
            });
        }
    }
}

fn endpoint_ns_ops(p: &mut Planner, ns: &str, e: &NormEp) {
    if p.ns(ns).is_none() {
        return;
    }
    loopback_up(p, ns);
    for i in &e.ifaces {
        let Some(l) = p.link(ns, &i.ifname) else {
            continue; // its network side could not be created
        };
        let want: BTreeSet<Ipv4Net> = [i.addr].into_iter().collect();
        let (del_addrs, add_addrs) = addr_diff(&l.addrs, &want);
        let alias = alias_for(&i.net_ns, &i.veth);
        let op = Op::ConfigureInterface {
            ns: ns.to_string(),
            ifname: i.ifname.clone(),
            mac: (l.mac != Some(i.mac)).then_some(i.mac),
            mtu: (l.mtu != i.mtu).then_some(i.mtu),
            alias: (l.alias.as_deref() != Some(alias.as_str())).then_some(alias),
            del_addrs,
            add_addrs,
            set_up: !l.up,
        };
        if !is_noop(&op) {
            p.emit(op);
        }
    }
    let have: Vec<DefaultRoute> = p
        .ns(ns)
        .map(|n| n.default_routes.iter().cloned().collect())
        .unwrap_or_default();
    for r in have {
        if Some(&r) != e.default_route.as_ref() {
            p.emit(Op::DelDefaultRoute {
                ns: ns.to_string(),
                via: r.via,
                dev: r.dev,
            });
        }
    }
    if let Some(want) = &e.default_route {
        let present = p.ns(ns).is_some_and(|n| n.default_routes.contains(want));
        let dev_ok = p.link(ns, &want.dev).is_some();
        if let (false, true, Some(via)) = (present, dev_ok, want.via) {
            p.emit(Op::SetDefaultRoute {
                ns: ns.to_string(),
                via,
                dev: want.dev.clone(),
            });
        }
    }
}

/// True for a fix-in-place op that changes nothing.
fn is_noop(op: &Op) -> bool {
    match op {
        Op::SetBridge {
            mtu,
            del_addrs,
            add_addrs,
            set_up,
            ..
        } => mtu.is_none() && del_addrs.is_empty() && add_addrs.is_empty() && !set_up,
        Op::SetVxlan {
            mtu,
            master,
            set_up,
            ..
        } => mtu.is_none() && master.is_none() && !set_up,
        Op::SetVeth {
            mtu,
            master,
            alias,
            set_up,
            ..
        } => mtu.is_none() && master.is_none() && alias.is_none() && !set_up,
        Op::ConfigureInterface {
            mac,
            mtu,
            alias,
            del_addrs,
            add_addrs,
            set_up,
            ..
        } => {
            mac.is_none()
                && mtu.is_none()
                && alias.is_none()
                && del_addrs.is_empty()
                && add_addrs.is_empty()
                && !set_up
        }
        _ => false,
    }
}

/// The observation a host would give once `desired` is fully in place
/// (MACs the kernel picks, of bridges and network-side veths, are `None`).
/// Pure; independent of the planner, so tests can compare the two.
pub fn render(desired: &Desired) -> Observed {
    let (norm, _) = normalize(desired);
    let mut out = Observed::default();
    let lo = || {
        let mut l = ObservedLink::new(LinkKind::Loopback, sim::LOOPBACK_MTU);
        l.up = true;
        l
    };
    for (ns, n) in &norm.networks {
        let mut o = ObservedNs::default();
        o.links.insert(LOOPBACK.into(), lo());
        let mut br = ObservedLink::new(LinkKind::Bridge, n.net.mtu);
        br.up = true;
        br.addrs.insert(n.bridge_addr);
        o.links.insert(BRIDGE.into(), br);
        let mut vx = ObservedLink::new(LinkKind::Vxlan(vxlan_params(n.net)), n.net.mtu);
        vx.up = true;
        vx.master = Some(BRIDGE.into());
        o.links.insert(VXLAN.into(), vx);
        for port in &n.ports {
            let mut v = ObservedLink::new(
                LinkKind::Veth {
                    peer: Some(VethPeer {
                        ns: port.endpoint_ns.clone(),
                        ifname: port.ifname.clone(),
                    }),
                },
                n.net.mtu,
            );
            v.up = true;
            v.master = Some(BRIDGE.into());
            v.alias = Some(alias_for(&port.endpoint_ns, &port.ifname));
            o.links.insert(port.veth.clone(), v);
        }
        for (mac, dst) in &n.fdb {
            o.fdb.insert(
                *mac,
                FdbEntry {
                    dsts: [*dst].into_iter().collect(),
                    permanent: true,
                },
            );
        }
        for (ip, mac) in &n.neigh {
            o.neigh.insert(
                *ip,
                NeighEntry {
                    mac: Some(*mac),
                    permanent: true,
                },
            );
        }
        out.namespaces.insert(ns.clone(), o);
    }
    for (ns, e) in &norm.endpoints {
        let mut o = ObservedNs::default();
        o.links.insert(LOOPBACK.into(), lo());
        for i in &e.ifaces {
            let mut l = ObservedLink::new(
                LinkKind::Veth {
                    peer: Some(VethPeer {
                        ns: i.net_ns.clone(),
                        ifname: i.veth.clone(),
                    }),
                },
                i.mtu,
            );
            l.up = true;
            l.mac = Some(i.mac);
            l.alias = Some(alias_for(&i.net_ns, &i.veth));
            l.addrs.insert(i.addr);
            o.links.insert(i.ifname.clone(), l);
        }
        if let Some(r) = &e.default_route {
            o.default_routes.insert(r.clone());
        }
        out.namespaces.insert(ns.clone(), o);
    }
    out
}
