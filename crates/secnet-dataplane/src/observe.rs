//! Reading the kernel: rtnetlink dumps into [`Observed`].
//!
//! One pass runs on one worker thread ([`crate::nl`]) that opens one netlink
//! socket per namespace: in the host namespace a link dump (our temporary
//! VXLAN devices), and in each namespace under `<run_dir>/netns/` dumps of
//! links, IPv4 addresses, IPv4 routes and IPv4 neighbours, plus the bridge
//! family's FDB when the namespace has a `vxlan0`. No process is spawned.
//! [`messages`] turns the replies into the model, field by field the way
//! `ip`/`bridge -j` print them.
//!
//! Veth peers: the kernel only gives a veth's peer as (`IFLA_LINK_NETNSID`,
//! `IFLA_LINK`), and netns ids are local to each namespace, so ifindexes
//! alone are ambiguous (fresh namespaces all number their links 1, 2, 3...).
//! Two ends are taken to be a pair when each one's `link_index` is the
//! other's ifindex and the link aliases we set (`<ns>/<ifname>` of the other
//! end) name each other; without aliases a pair is accepted when the
//! ifindexes match only one candidate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::error::{DataplaneError, Result};
use ipnet::Ipv4Net;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::model::*;
use crate::netns::is_netns_file;
use crate::nl::{self, Conn, Reply, Target};

mod messages;

use messages::{
    add_fdb_row, name_of, neigh_entry, parse_addr, parse_link, parse_neigh_msg, parse_route,
    NlLink, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH, RTM_NEWROUTE,
};

/// A link as parsed, before peers are resolved.
#[derive(Debug, Clone)]
pub(crate) struct RawLink {
    pub name: String,
    pub ifindex: Option<u64>,
    pub link_index: Option<u64>,
    pub link: ObservedLink,
}

/// A namespace as parsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawNs {
    pub links: Vec<RawLink>,
    pub default_routes: BTreeSet<DefaultRoute>,
    pub fdb: BTreeMap<Mac, FdbEntry>,
    pub neigh: BTreeMap<Ipv4Addr, NeighEntry>,
}

fn dump(conn: &mut Conn, what: &str, msg: RouteNetlinkMessage) -> Result<Vec<Reply>> {
    conn.dump(msg).map_err(|e| DataplaneError::Netlink {
        context: format!("dumping {what}"),
        errno: e.errno(),
        message: e.to_string(),
    })
}

/// Puts `context` in front of an error's text: what the whole step was doing.
fn within(context: impl FnOnce() -> String) -> impl FnOnce(DataplaneError) -> DataplaneError {
    move |e| match e {
        DataplaneError::Netlink {
            context: inner,
            message,
            errno,
        } => DataplaneError::Netlink {
            context: format!("{}: {inner}", context()),
            message,
            errno,
        },
        DataplaneError::Io {
            context: inner,
            source,
        } => DataplaneError::Io {
            context: format!("{}: {inner}", context()),
            source,
        },
        other => other,
    }
}

/// A failure to reach a namespace's netlink socket (entering it, or opening the socket).
fn unreachable_ns(context: String, message: String) -> DataplaneError {
    DataplaneError::Netlink {
        context,
        message,
        errno: None,
    }
}

/// All links of the namespace `conn` is in, with master names resolved.
fn dump_links(conn: &mut Conn) -> Result<Vec<NlLink>> {
    let mut links = Vec::new();
    for r in dump(
        conn,
        "links",
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
    )? {
        if r.kind == RTM_NEWLINK {
            links.push(parse_link(&r.payload)?);
        }
    }
    let names: HashMap<u32, String> = links
        .iter()
        .filter_map(|l| Some((u32::try_from(l.raw.ifindex?).ok()?, l.raw.name.clone())))
        .collect();
    for l in &mut links {
        l.raw.link.master = l.master.map(|m| name_of(&names, m));
    }
    Ok(links)
}

fn neigh_dump(family: AddressFamily) -> RouteNetlinkMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family;
    RouteNetlinkMessage::GetNeighbour(msg)
}

/// Everything of one namespace.
fn observe_ns(conn: &mut Conn) -> Result<RawNs> {
    let links = dump_links(conn)?;
    let names: HashMap<u32, String> = links
        .iter()
        .filter_map(|l| Some((u32::try_from(l.raw.ifindex?).ok()?, l.raw.name.clone())))
        .collect();
    let mut links: Vec<RawLink> = links.into_iter().map(|l| l.raw).collect();

    let mut addr_msg = AddressMessage::default();
    addr_msg.header.family = AddressFamily::Inet;
    let mut addrs: HashMap<u64, BTreeSet<Ipv4Net>> = HashMap::new();
    for r in dump(conn, "addresses", RouteNetlinkMessage::GetAddress(addr_msg))? {
        if r.kind == RTM_NEWADDR {
            if let Some((index, net)) = parse_addr(&r.payload)? {
                addrs.entry(u64::from(index)).or_default().insert(net);
            }
        }
    }
    for l in &mut links {
        if let Some(a) = l.ifindex.and_then(|i| addrs.remove(&i)) {
            l.link.addrs = a;
        }
    }

    let mut route_msg = RouteMessage::default();
    route_msg.header.address_family = AddressFamily::Inet;
    let mut default_routes = BTreeSet::new();
    for r in dump(conn, "routes", RouteNetlinkMessage::GetRoute(route_msg))? {
        if r.kind == RTM_NEWROUTE {
            default_routes.extend(parse_route(&r.payload, &names)?);
        }
    }

    let mut neigh = BTreeMap::new();
    for r in dump(conn, "neighbours", neigh_dump(AddressFamily::Inet))? {
        if r.kind == RTM_NEWNEIGH {
            if let Some(n) = parse_neigh_msg(&r.payload, AddressFamily::Inet)? {
                neigh.extend(neigh_entry(&n, &names));
            }
        }
    }

    let mut fdb = BTreeMap::new();
    let vxlan = names
        .iter()
        .find(|(_, n)| n.as_str() == VXLAN)
        .map(|(i, _)| *i);
    if let Some(vxlan) = vxlan {
        for r in dump(conn, "the FDB", neigh_dump(AddressFamily::Bridge))? {
            if r.kind == RTM_NEWNEIGH {
                if let Some(n) = parse_neigh_msg(&r.payload, AddressFamily::Bridge)? {
                    add_fdb_row(&mut fdb, &n, vxlan);
                }
            }
        }
    }
    Ok(RawNs {
        links,
        default_routes,
        fdb,
        neigh,
    })
}

/// Turns parsed namespaces into [`ObservedNs`]es, resolving veth peers.
pub(crate) fn resolve(raw: BTreeMap<String, RawNs>) -> BTreeMap<String, ObservedNs> {
    // ifindex -> veths with that ifindex, over all namespaces.
    let mut by_index: BTreeMap<u64, Vec<(&str, &RawLink)>> = BTreeMap::new();
    for (ns, r) in &raw {
        for l in &r.links {
            if let (LinkKind::Veth { .. }, Some(i)) = (&l.link.kind, l.ifindex) {
                by_index.entry(i).or_default().push((ns, l));
            }
        }
    }
    let alias_is = |l: &RawLink, ns: &str, name: &str| {
        l.link.alias.as_deref() == Some(format!("{ns}/{name}").as_str())
    };
    let mut pick: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    for (ns, r) in &raw {
        for l in &r.links {
            let (LinkKind::Veth { .. }, Some(me), Some(other)) =
                (&l.link.kind, l.ifindex, l.link_index)
            else {
                continue;
            };
            let cands: Vec<(&str, &RawLink)> = by_index
                .get(&other)
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .filter(|(cns, c)| c.link_index == Some(me) && !(*cns == ns && c.name == l.name))
                .copied()
                .collect();
            let chosen = cands
                .iter()
                .find(|(cns, c)| alias_is(l, cns, &c.name))
                .or_else(|| {
                    let back: Vec<_> = cands
                        .iter()
                        .filter(|(_, c)| alias_is(c, ns, &l.name))
                        .collect();
                    (back.len() == 1).then(|| back[0])
                })
                .or_else(|| (cands.len() == 1).then(|| &cands[0]));
            if let Some((cns, c)) = chosen {
                pick.insert(
                    (ns.clone(), l.name.clone()),
                    (cns.to_string(), c.name.clone()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    for (ns, r) in raw {
        let mut o = ObservedNs {
            links: BTreeMap::new(),
            default_routes: r.default_routes,
            fdb: r.fdb,
            neigh: r.neigh,
        };
        for l in r.links {
            let mut link = l.link;
            if let LinkKind::Veth { peer } = &mut link.kind {
                let me = (ns.clone(), l.name.clone());
                if let Some(there) = pick.get(&me) {
                    if pick.get(there) == Some(&me) {
                        *peer = Some(VethPeer {
                            ns: there.0.clone(),
                            ifname: there.1.clone(),
                        });
                    }
                }
            }
            o.links.insert(l.name, link);
        }
        out.insert(ns, o);
    }
    out
}

/// The MTU of the link called `name` in the calling thread's network namespace (`None`:
/// no such link). Read over rtnetlink rather than from `/sys/class/net`, which shows the
/// links of the namespace that mounted sysfs, not necessarily the caller's.
pub fn link_mtu(name: &str) -> Result<Option<u32>> {
    let mut conn = Conn::open().map_err(|e| DataplaneError::io("opening a netlink socket", e))?;
    Ok(dump_links(&mut conn)?
        .into_iter()
        .find(|l| l.raw.name == name)
        .map(|l| l.raw.link.mtu))
}

/// Reads the data path of the host described by `layout`. Entries of
/// `<run_dir>/netns/` with our names ([`is_own_ns_name`]) that are not network
/// namespaces end up in [`Observed::stale_files`]; entries with any other name
/// in [`Observed::foreign`], untouched (not even opened); names that are not
/// UTF-8 are skipped. A missing directory is an empty observation.
pub fn observe(layout: &Layout) -> Result<Observed> {
    nl::with_worker(layout, |w| -> Result<Observed> {
        let dir = layout.netns_dir();
        let host = w
            .enter(&Target::Host)
            .map_err(|e| unreachable_ns("observing the host namespace".into(), e))?;
        let host_temp_links = dump_links(host)
            .map_err(within(|| "observing the host namespace".into()))?
            .into_iter()
            .filter(|l| l.kind.as_deref() == Some("vxlan") && layout.is_temp_link(&l.raw.name))
            .map(|l| l.raw.name)
            .collect();
        let mut observed = Observed {
            host_temp_links,
            ..Observed::default()
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(rd) => Some(rd),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(DataplaneError::io(format!("reading {}", dir.display()), e)),
        };
        let mut raw = BTreeMap::new();
        for entry in entries.into_iter().flatten() {
            let entry =
                entry.map_err(|e| DataplaneError::io(format!("reading {}", dir.display()), e))?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(name = ?entry.file_name(), dir = %dir.display(), "ignoring a non-UTF-8 name");
                continue;
            };
            if !is_own_ns_name(&name) {
                observed.foreign.insert(name);
                continue;
            }
            let path = entry.path();
            if is_netns_file(&path) {
                let context = || format!("observing namespace {}", path.display());
                let ns = w
                    .enter(&Target::Ns(name.clone()))
                    .map_err(|e| unreachable_ns(context(), e))
                    .and_then(|conn| observe_ns(conn).map_err(within(context)))?;
                raw.insert(name, ns);
            } else {
                observed.stale_files.insert(name);
            }
        }
        observed.namespaces = resolve(raw);
        Ok(observed)
    })
    .map_err(|e| DataplaneError::io("running the netlink worker", e))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn veth(name: &str, ifindex: u64, link_index: u64, alias: Option<&str>) -> RawLink {
        let mut link = ObservedLink::new(LinkKind::Veth { peer: None }, 1500);
        link.alias = alias.map(str::to_owned);
        RawLink {
            name: name.into(),
            ifindex: Some(ifindex),
            link_index: Some(link_index),
            link,
        }
    }

    fn peer_of(o: &BTreeMap<String, ObservedNs>, ns: &str, name: &str) -> Option<VethPeer> {
        match &o.get(ns)?.links.get(name)?.kind {
            LinkKind::Veth { peer } => peer.clone(),
            _ => None,
        }
    }

    #[test]
    fn resolves_peers_with_aliases_despite_equal_ifindexes() {
        // Two network namespaces with identical numbering, each with one
        // endpoint: ifindexes alone are ambiguous.
        let mut raw = BTreeMap::new();
        for (net, ep) in [("net-a", "ep-a"), ("net-b", "ep-b")] {
            raw.insert(
                net.to_string(),
                RawNs {
                    links: vec![veth("ve1", 4, 2, Some(&format!("{ep}/eth0")))],
                    ..RawNs::default()
                },
            );
            raw.insert(
                ep.to_string(),
                RawNs {
                    links: vec![veth("eth0", 2, 4, Some(&format!("{net}/ve1")))],
                    ..RawNs::default()
                },
            );
        }
        let o = resolve(raw.clone());
        let want = |ns: &str, ifname: &str| {
            Some(VethPeer {
                ns: ns.into(),
                ifname: ifname.into(),
            })
        };
        assert_eq!(peer_of(&o, "net-a", "ve1"), want("ep-a", "eth0"));
        assert_eq!(peer_of(&o, "ep-a", "eth0"), want("net-a", "ve1"));
        assert_eq!(peer_of(&o, "net-b", "ve1"), want("ep-b", "eth0"));
        assert_eq!(peer_of(&o, "ep-b", "eth0"), want("net-b", "ve1"));

        // Without aliases the pairing is ambiguous: no peers.
        for r in raw.values_mut() {
            for l in &mut r.links {
                l.link.alias = None;
            }
        }
        let o = resolve(raw.clone());
        assert_eq!(peer_of(&o, "net-a", "ve1"), None);

        // With one alias on one side it is not.
        if let Some(r) = raw.get_mut("net-a") {
            r.links[0].link.alias = Some("ep-a/eth0".into());
        }
        let o = resolve(raw);
        assert_eq!(peer_of(&o, "net-a", "ve1"), want("ep-a", "eth0"));
        assert_eq!(peer_of(&o, "ep-a", "eth0"), want("net-a", "ve1"));
    }

    #[test]
    fn resolves_unique_pair_without_aliases() {
        let mut raw = BTreeMap::new();
        raw.insert(
            "net-a".to_string(),
            RawNs {
                links: vec![veth("ve1", 7, 3, None)],
                ..RawNs::default()
            },
        );
        raw.insert(
            "ep-a".to_string(),
            RawNs {
                links: vec![veth("eth0", 3, 7, None), veth("eth9", 9, 77, None)],
                ..RawNs::default()
            },
        );
        let o = resolve(raw);
        assert_eq!(
            peer_of(&o, "net-a", "ve1").map(|p| p.ifname),
            Some("eth0".to_string())
        );
        assert_eq!(peer_of(&o, "ep-a", "eth9"), None);
    }
}
