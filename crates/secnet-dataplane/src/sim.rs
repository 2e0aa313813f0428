//! A pure model of what each [`Op`] does to the kernel, as far as
//! [`Observed`] can tell. The planner predicts with it; tests use it to check
//! that plans converge in one step and that every op's preconditions hold
//! when it runs (which is what makes the op order right).
//!
//! Kernel behaviour the model follows:
//! * deleting one end of a veth pair deletes the other;
//! * deleting a namespace deletes its veths' peers (the executor deletes them
//!   explicitly first, so this also holds while a process keeps the
//!   namespace alive);
//! * deleting a device drops its FDB/neighbour entries and the routes through
//!   it, and releases the ports enslaved to it;
//! * deleting the last IPv4 address of a device flushes the routes through it,
//!   deleting an address may take the other addresses of its subnet along;
//! * `fdb replace` rewrites only the first remote of an entry;
//! * new devices are down, without master and addresses.

use crate::model::*;

/// MTU of `lo` in a fresh namespace.
pub(crate) const LOOPBACK_MTU: u32 = 65536;

/// Applies `ops` to `observed` in the model, ignoring ops whose
/// preconditions fail (as the executor would report and skip them).
pub fn simulate(observed: &Observed, ops: &[Op]) -> Observed {
    let mut s = observed.clone();
    for op in ops {
        let _ = step(&mut s, op);
    }
    s
}

/// Like [`simulate`], but fails at the first op whose preconditions do not
/// hold (the namespace or device it needs is missing, the name it creates is
/// taken, ...): `Err((index, why))`.
pub fn simulate_checked(observed: &Observed, ops: &[Op]) -> Result<Observed, (usize, String)> {
    let mut s = observed.clone();
    for (i, op) in ops.iter().enumerate() {
        step(&mut s, op).map_err(|e| (i, format!("{op}: {e}")))?;
    }
    Ok(s)
}

type StepResult = Result<(), String>;

fn ns_mut<'a>(s: &'a mut Observed, ns: &str) -> Result<&'a mut ObservedNs, String> {
    s.namespaces
        .get_mut(ns)
        .ok_or_else(|| format!("no namespace {ns}"))
}

fn link_mut<'a>(s: &'a mut Observed, ns: &str, name: &str) -> Result<&'a mut ObservedLink, String> {
    ns_mut(s, ns)?
        .links
        .get_mut(name)
        .ok_or_else(|| format!("no link {name} in {ns}"))
}

fn need_master(s: &Observed, ns: &str, master: &Option<String>) -> StepResult {
    if let Some(m) = master {
        let is_bridge = s
            .namespaces
            .get(ns)
            .and_then(|n| n.links.get(m))
            .is_some_and(|l| l.kind == LinkKind::Bridge);
        if !is_bridge {
            return Err(format!("no bridge {m} in {ns}"));
        }
    }
    Ok(())
}

/// True when the peer recorded on `(ns, name)` points back at it.
fn mutual_peer(s: &Observed, ns: &str, name: &str) -> Option<VethPeer> {
    let link = s.namespaces.get(ns)?.links.get(name)?;
    let LinkKind::Veth { peer: Some(p) } = &link.kind else {
        return None;
    };
    let back = s.namespaces.get(&p.ns)?.links.get(&p.ifname)?;
    match &back.kind {
        LinkKind::Veth { peer: Some(b) } if b.ns == ns && b.ifname == name => Some(p.clone()),
        _ => None,
    }
}

/// Removes a link with everything that goes with it.
fn remove_link(s: &mut Observed, ns: &str, name: &str) -> StepResult {
    let peer = mutual_peer(s, ns, name);
    let n = ns_mut(s, ns)?;
    if n.links.remove(name).is_none() {
        return Err(format!("no link {name} in {ns}"));
    }
    n.default_routes.retain(|r| r.dev != name);
    if name == VXLAN {
        n.fdb.clear();
        n.neigh.clear();
    }
    for l in n.links.values_mut() {
        if l.master.as_deref() == Some(name) {
            l.master = None;
        }
    }
    if let Some(p) = peer {
        remove_link(s, &p.ns, &p.ifname)?;
    }
    Ok(())
}

fn remove_ns(s: &mut Observed, ns: &str) -> StepResult {
    let names: Vec<String> = s
        .namespaces
        .get(ns)
        .ok_or_else(|| format!("no namespace {ns}"))?
        .links
        .keys()
        .cloned()
        .collect();
    for name in names {
        if let Some(p) = mutual_peer(s, ns, &name) {
            remove_link(s, &p.ns, &p.ifname)?;
        }
    }
    s.namespaces.remove(ns);
    Ok(())
}

fn create_ns(s: &mut Observed, ns: &str) -> StepResult {
    if s.namespaces.contains_key(ns) || s.stale_files.contains(ns) {
        return Err(format!("netns/{ns} exists"));
    }
    let mut n = ObservedNs::default();
    n.links.insert(
        LOOPBACK.to_string(),
        ObservedLink::new(LinkKind::Loopback, LOOPBACK_MTU),
    );
    s.namespaces.insert(ns.to_string(), n);
    Ok(())
}

fn add_link(s: &mut Observed, ns: &str, name: &str, link: ObservedLink) -> StepResult {
    let n = ns_mut(s, ns)?;
    if n.links.contains_key(name) {
        return Err(format!("link {name} exists in {ns}"));
    }
    n.links.insert(name.to_string(), link);
    Ok(())
}

fn set_addrs(
    s: &mut Observed,
    ns: &str,
    dev: &str,
    del: &[ipnet::Ipv4Net],
    add: &[ipnet::Ipv4Net],
) -> StepResult {
    let l = link_mut(s, ns, dev)?;
    for a in del {
        // Deleting a primary address deletes the secondaries of its subnet
        // too (`promote_secondaries` is off by default); the model assumes
        // the worst.
        if l.addrs.remove(a) {
            l.addrs.retain(|x| x.trunc() != a.trunc());
        }
    }
    let flushed = !del.is_empty() && l.addrs.is_empty();
    for a in add {
        l.addrs.insert(*a);
    }
    if flushed {
        ns_mut(s, ns)?.default_routes.retain(|r| r.dev != dev);
    }
    Ok(())
}

fn vxlan_mut<'a>(s: &'a mut Observed, ns: &str) -> Result<&'a mut ObservedNs, String> {
    let n = ns_mut(s, ns)?;
    if !n
        .links
        .get(VXLAN)
        .is_some_and(|l| matches!(l.kind, LinkKind::Vxlan(_)))
    {
        return Err(format!("no {VXLAN} in {ns}"));
    }
    Ok(n)
}

/// The in-place changes of the `Set*` and `ConfigureInterface` ops: each attribute the op
/// gives replaces the link's; one it leaves out (`None`, or `set_up` false) keeps what the
/// link has, since these ops never take a device down or drop its master or alias.
fn update_link(
    l: &mut ObservedLink,
    mtu: &Option<u32>,
    master: &Option<String>,
    alias: &Option<String>,
    set_up: bool,
) {
    if let Some(m) = mtu {
        l.mtu = *m;
    }
    if let Some(m) = master {
        l.master = Some(m.clone());
    }
    if let Some(a) = alias {
        l.alias = Some(a.clone());
    }
    if set_up {
        l.up = true;
    }
}

/// Applies one op to the model.
pub(crate) fn step(s: &mut Observed, op: &Op) -> StepResult {
    match op {
        Op::DeleteStaleFile { name } => {
            if !s.stale_files.remove(name) {
                return Err(format!("no stale file {name}"));
            }
        }
        Op::DeleteHostLink { name } => {
            if !s.host_temp_links.remove(name) {
                return Err(format!("no host link {name}"));
            }
        }
        Op::DeleteNetworkNs { ns, .. } | Op::DeleteEndpointNs { ns, .. } => remove_ns(s, ns)?,
        Op::DeleteVxlan { ns } => {
            vxlan_mut(s, ns)?;
            remove_link(s, ns, VXLAN)?;
        }
        Op::DeleteInterface { ns, name } => remove_link(s, ns, name)?,
        Op::DelFdb { ns, mac } => {
            if vxlan_mut(s, ns)?.fdb.remove(mac).is_none() {
                return Err(format!("no fdb entry {}", mac));
            }
        }
        Op::DelNeigh { ns, ip } => {
            if vxlan_mut(s, ns)?.neigh.remove(ip).is_none() {
                return Err(format!("no neighbour {ip}"));
            }
        }
        Op::CreateNetworkNs { ns } | Op::CreateEndpointNs { ns } => create_ns(s, ns)?,
        Op::SetLoopbackUp { ns } => link_mut(s, ns, LOOPBACK)?.up = true,
        Op::CreateVxlan {
            ns,
            vni,
            local,
            port,
            mtu,
        } => {
            let kind = LinkKind::Vxlan(VxlanParams {
                vni: *vni,
                local: Some(*local),
                port: *port,
                learning: false,
                proxy: true,
            });
            add_link(s, ns, VXLAN, ObservedLink::new(kind, *mtu))?;
            let n = ns_mut(s, ns)?;
            n.fdb.clear();
            n.neigh.clear();
        }
        Op::CreateBridge { ns, mtu } => {
            add_link(s, ns, BRIDGE, ObservedLink::new(LinkKind::Bridge, *mtu))?;
        }
        Op::SetBridge {
            ns,
            mtu,
            del_addrs,
            add_addrs,
            set_up,
        } => {
            let l = link_mut(s, ns, BRIDGE)?;
            if l.kind != LinkKind::Bridge {
                return Err(format!("{BRIDGE} in {ns} is no bridge"));
            }
            update_link(l, mtu, &None, &None, *set_up);
            set_addrs(s, ns, BRIDGE, del_addrs, add_addrs)?;
        }
        Op::SetVxlan {
            ns,
            mtu,
            master,
            set_up,
        } => {
            need_master(s, ns, master)?;
            vxlan_mut(s, ns)?;
            update_link(link_mut(s, ns, VXLAN)?, mtu, master, &None, *set_up);
        }
        Op::CreateInterface {
            ns,
            veth,
            endpoint_ns,
            ifname,
            mac,
            mtu,
            peer_mtu,
        } => {
            let free = |n: &str, name: &str| {
                s.namespaces
                    .get(n)
                    .map(|x| !x.links.contains_key(name))
                    .ok_or_else(|| format!("no namespace {n}"))
            };
            if !free(ns, veth)?
                || !free(endpoint_ns, ifname)?
                || (ns, veth) == (endpoint_ns, ifname)
            {
                return Err(format!("{ns}/{veth} or {endpoint_ns}/{ifname} exists"));
            }
            let near = ObservedLink::new(
                LinkKind::Veth {
                    peer: Some(VethPeer {
                        ns: endpoint_ns.clone(),
                        ifname: ifname.clone(),
                    }),
                },
                *mtu,
            );
            let mut far = ObservedLink::new(
                LinkKind::Veth {
                    peer: Some(VethPeer {
                        ns: ns.clone(),
                        ifname: veth.clone(),
                    }),
                },
                *peer_mtu,
            );
            far.mac = Some(*mac);
            add_link(s, ns, veth, near)?;
            add_link(s, endpoint_ns, ifname, far)?;
        }
        Op::SetVeth {
            ns,
            veth,
            mtu,
            master,
            alias,
            set_up,
            ..
        } => {
            need_master(s, ns, master)?;
            update_link(link_mut(s, ns, veth)?, mtu, master, alias, *set_up);
        }
        Op::ConfigureInterface {
            ns,
            ifname,
            mac,
            mtu,
            alias,
            del_addrs,
            add_addrs,
            set_up,
        } => {
            let l = link_mut(s, ns, ifname)?;
            if let Some(m) = mac {
                l.mac = Some(*m);
            }
            update_link(l, mtu, &None, alias, *set_up);
            set_addrs(s, ns, ifname, del_addrs, add_addrs)?;
        }
        Op::DelDefaultRoute { ns, via, dev } => {
            let r = DefaultRoute {
                via: *via,
                dev: dev.clone(),
            };
            if !ns_mut(s, ns)?.default_routes.remove(&r) {
                return Err(format!("no default route via {via:?} dev {dev}"));
            }
        }
        Op::SetDefaultRoute { ns, via, dev } => {
            let l = link_mut(s, ns, dev)?;
            if !l.up {
                return Err(format!("{dev} is down"));
            }
            if !l.addrs.iter().any(|a| a.contains(via)) {
                return Err(format!("gateway {via} is not on {dev}"));
            }
            let n = ns_mut(s, ns)?;
            // `replace`: one default route is left.
            n.default_routes.clear();
            n.default_routes.insert(DefaultRoute {
                via: Some(*via),
                dev: dev.clone(),
            });
        }
        Op::AddNeigh { ns, ip, mac } => {
            let n = vxlan_mut(s, ns)?;
            if !n.links.get(VXLAN).is_some_and(|l| l.up) {
                return Err(format!("{VXLAN} is down"));
            }
            n.neigh.insert(
                *ip,
                NeighEntry {
                    mac: Some(*mac),
                    permanent: true,
                },
            );
        }
        Op::AddFdb { ns, mac, dst } => {
            let n = vxlan_mut(s, ns)?;
            let e = n.fdb.entry(*mac).or_insert(FdbEntry {
                dsts: Default::default(),
                permanent: true,
            });
            // `replace` rewrites the entry's first remote only.
            let first = e.dsts.iter().next().copied();
            if let Some(first) = first {
                e.dsts.remove(&first);
            }
            e.dsts.insert(*dst);
            e.permanent = true;
        }
    }
    Ok(())
}
