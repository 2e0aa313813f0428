//! Reading the kernel: `ip -j` / `bridge -j` output into [`Observed`].
//!
//! Spawns per observation: one `ip -j -d -batch -` per namespace (`addr show`
//! gives links with details and addresses, plus `route show` and
//! `neigh show`), one `bridge -j fdb show dev vxlan0` per namespace that has
//! a `vxlan0`, and one `ip -j link show type vxlan` in the host namespace.
//!
//! Parsing is liberal: unknown fields are ignored, missing or oddly typed
//! ones count as not present, entries without a name are skipped.
//!
//! Veth peers: `ip` only gives a veth's peer as (`link_netnsid`,
//! `link_index`), and netns ids are local to each namespace, so ifindexes
//! alone are ambiguous (fresh namespaces all number their links 1, 2, 3...).
//! Two ends are taken to be a pair when each one's `link_index` is the
//! other's ifindex and the link aliases we set (`<ns>/<ifname>` of the other
//! end) name each other; without aliases a pair is accepted when the
//! ifindexes match only one candidate.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{bail, Context};
use ipnet::Ipv4Net;
use serde_json::Value;

use crate::cmd::{self, Tool, COMMAND_TIMEOUT};
use crate::model::*;
use crate::netns::is_netns_file;

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

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn u64_of(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Parses the output of `ip -j -d addr show` (or `link show`).
pub(crate) fn parse_links(v: &Value) -> Vec<RawLink> {
    let mut out = Vec::new();
    for l in array(v) {
        let Some(name) = str_of(l, "ifname") else {
            continue;
        };
        let flags = strings(l, "flags");
        let info = l.get("linkinfo");
        let info_kind = info.and_then(|i| str_of(i, "info_kind"));
        let loopback =
            str_of(l, "link_type") == Some("loopback") || flags.iter().any(|f| f == "LOOPBACK");
        let kind = match info_kind {
            Some("bridge") => LinkKind::Bridge,
            Some("veth") => LinkKind::Veth { peer: None },
            Some("vxlan") => {
                let d = info
                    .and_then(|i| i.get("info_data"))
                    .unwrap_or(&Value::Null);
                let local = str_of(d, "local")
                    .or_else(|| str_of(d, "local6"))
                    .and_then(|s| s.parse::<IpAddr>().ok());
                LinkKind::Vxlan(VxlanParams {
                    vni: u64_of(d, "id")
                        .and_then(|x| u32::try_from(x).ok())
                        .unwrap_or(0),
                    local,
                    port: u64_of(d, "port")
                        .and_then(|x| u16::try_from(x).ok())
                        .unwrap_or(0),
                    learning: d.get("learning").and_then(Value::as_bool).unwrap_or(false),
                    proxy: d.get("proxy").and_then(Value::as_bool).unwrap_or(false),
                })
            }
            _ if loopback => LinkKind::Loopback,
            Some(other) => LinkKind::Other(other.to_string()),
            None => LinkKind::Other(String::new()),
        };
        let addrs = array(l.get("addr_info").unwrap_or(&Value::Null))
            .iter()
            .filter(|a| str_of(a, "family") == Some("inet"))
            .filter_map(|a| {
                let ip = str_of(a, "local")?.parse::<Ipv4Addr>().ok()?;
                let len = u8::try_from(u64_of(a, "prefixlen")?).ok()?;
                Ipv4Net::new(ip, len).ok()
            })
            .collect();
        out.push(RawLink {
            name: name.to_string(),
            ifindex: u64_of(l, "ifindex"),
            link_index: u64_of(l, "link_index"),
            link: ObservedLink {
                kind,
                mtu: u64_of(l, "mtu")
                    .and_then(|x| u32::try_from(x).ok())
                    .unwrap_or(0),
                up: flags.iter().any(|f| f == "UP"),
                master: str_of(l, "master").map(str::to_owned),
                mac: str_of(l, "address").and_then(parse_mac),
                alias: str_of(l, "ifalias").map(str::to_owned),
                addrs,
            },
        });
    }
    out
}

/// Parses `ip -j route show`: the IPv4 default routes of the main table.
pub(crate) fn parse_default_routes(v: &Value) -> BTreeSet<DefaultRoute> {
    array(v)
        .iter()
        .filter(|r| str_of(r, "dst") == Some("default"))
        .filter(|r| str_of(r, "type").is_none_or(|t| t == "unicast"))
        .filter_map(|r| {
            Some(DefaultRoute {
                via: str_of(r, "gateway").and_then(|g| g.parse().ok()),
                dev: str_of(r, "dev")?.to_string(),
            })
        })
        .collect()
}

/// Parses `ip -j neigh show`: IPv4 entries on `vxlan0`.
pub(crate) fn parse_neigh(v: &Value) -> BTreeMap<Ipv4Addr, NeighEntry> {
    array(v)
        .iter()
        .filter(|n| str_of(n, "dev").is_none_or(|d| d == VXLAN))
        .filter_map(|n| {
            let ip = str_of(n, "dst")?.parse::<Ipv4Addr>().ok()?;
            let permanent = strings(n, "state")
                .iter()
                .any(|s| s.eq_ignore_ascii_case("permanent"));
            Some((
                ip,
                NeighEntry {
                    mac: str_of(n, "lladdr").and_then(parse_mac),
                    permanent,
                },
            ))
        })
        .collect()
}

/// Parses `bridge -j fdb show dev vxlan0`: entries of the VXLAN device's own
/// FDB (those with a `master` belong to the bridge's FDB and are skipped).
pub(crate) fn parse_fdb(v: &Value) -> BTreeMap<Mac, FdbEntry> {
    let mut out: BTreeMap<Mac, FdbEntry> = BTreeMap::new();
    for e in array(v) {
        if e.get("master").is_some() || str_of(e, "ifname").is_some_and(|d| d != VXLAN) {
            continue;
        }
        let Some(mac) = str_of(e, "mac").and_then(parse_mac) else {
            continue;
        };
        let permanent = strings(e, "state")
            .iter()
            .any(|s| s.eq_ignore_ascii_case("permanent"));
        let entry = out.entry(mac).or_insert(FdbEntry {
            dsts: BTreeSet::new(),
            permanent: true,
        });
        entry.permanent &= permanent;
        if let Some(dst) = str_of(e, "dst").and_then(|d| d.parse::<IpAddr>().ok()) {
            entry.dsts.insert(dst);
        }
    }
    out
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

fn json_values(s: &str) -> anyhow::Result<Vec<Value>> {
    serde_json::Deserializer::from_str(s)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .context("parsing JSON")
}

fn observe_ns(path: &Path) -> anyhow::Result<RawNs> {
    let out = cmd::run(
        cmd::command(Some(path), Tool::Ip, &["-j", "-d", "-force", "-batch", "-"]),
        "addr show\nroute show\nneigh show\n",
        COMMAND_TIMEOUT,
    )
    .context("running ip")?;
    if !out.success() {
        bail!("`ip -j -d -batch -` failed: {}", out.describe());
    }
    let values = json_values(&out.stdout)?;
    let [links, routes, neigh] = values.as_slice() else {
        bail!(
            "`ip -j -d -batch -` printed {} JSON values, not 3",
            values.len()
        );
    };
    let links = parse_links(links);
    let mut fdb = BTreeMap::new();
    if links.iter().any(|l| l.name == VXLAN) {
        let out = cmd::run(
            cmd::command(
                Some(path),
                Tool::Bridge,
                &["-j", "fdb", "show", "dev", VXLAN],
            ),
            "",
            COMMAND_TIMEOUT,
        )
        .context("running bridge")?;
        if !out.success() {
            bail!("`bridge -j fdb show` failed: {}", out.describe());
        }
        for v in json_values(&out.stdout)? {
            fdb.extend(parse_fdb(&v));
        }
    }
    Ok(RawNs {
        links,
        default_routes: parse_default_routes(routes),
        fdb,
        neigh: parse_neigh(neigh),
    })
}

fn observe_host_temp_links(layout: &Layout) -> anyhow::Result<BTreeSet<String>> {
    let out = cmd::run(
        cmd::command(
            layout.host_netns.as_deref(),
            Tool::Ip,
            &["-j", "link", "show", "type", "vxlan"],
        ),
        "",
        COMMAND_TIMEOUT,
    )
    .context("running ip in the host namespace")?;
    if !out.success() {
        bail!(
            "`ip -j link show type vxlan` in the host namespace failed: {}",
            out.describe()
        );
    }
    let mut names = BTreeSet::new();
    for v in json_values(&out.stdout)? {
        for l in parse_links(&v) {
            if layout.is_temp_link(&l.name) {
                names.insert(l.name);
            }
        }
    }
    Ok(names)
}

/// Reads the data path of the host described by `layout`. Entries of
/// `<run_dir>/netns/` that are not network namespaces end up in
/// [`Observed::stale_files`] (names that are not UTF-8 are skipped). A
/// missing directory is an empty observation.
pub fn observe(layout: &Layout) -> anyhow::Result<Observed> {
    let dir = layout.netns_dir();
    let mut observed = Observed {
        host_temp_links: observe_host_temp_links(layout)?,
        ..Observed::default()
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => Some(rd),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut raw = BTreeMap::new();
    for entry in entries.into_iter().flatten() {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::warn!(name = ?entry.file_name(), dir = %dir.display(), "ignoring a non-UTF-8 name");
            continue;
        };
        let path = entry.path();
        if is_netns_file(&path) {
            let ns = observe_ns(&path)
                .with_context(|| format!("observing namespace {}", path.display()))?;
            raw.insert(name, ns);
        } else {
            observed.stale_files.insert(name);
        }
    }
    observed.namespaces = resolve(raw);
    Ok(observed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or(Value::Null)
    }

    const NET_NS_ADDR: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
    {"ifindex":2,"link_index":2,"ifname":"vxlan0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"master":"br0","link_type":"ether","address":"6a:fb:a3:bd:94:ab","link_netnsid":0,"linkinfo":{"info_kind":"vxlan","info_data":{"id":4200,"local":"198.51.100.1","port_range":{"low":0,"high":0},"port":4789,"learning":false,"proxy":true,"ttl":0},"info_slave_kind":"bridge","info_slave_data":{"state":"forwarding"}},"addr_info":[]},
    {"ifindex":3,"ifname":"br0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"link_type":"ether","address":"6a:fb:a3:bd:94:ab","linkinfo":{"info_kind":"bridge","info_data":{"stp_state":0}},"addr_info":[{"family":"inet","local":"10.77.0.1","prefixlen":24},{"family":"inet6","local":"fe80::1","prefixlen":64}]},
    {"ifindex":4,"link_index":2,"ifname":"veabc","flags":["BROADCAST","MULTICAST","UP"],"mtu":1450,"master":"br0","link_type":"ether","address":"7e:74:a0:d4:06:8f","link_netnsid":1,"ifalias":"ep-a/eth0","linkinfo":{"info_kind":"veth","info_slave_kind":"bridge"},"addr_info":[]},
    {"ifindex":5,"ifname":"weird","mtu":"x","flags":7},
    {"noname":true}]"#;

    #[test]
    fn parses_links() {
        let links = parse_links(&v(NET_NS_ADDR));
        assert_eq!(links.len(), 5);
        assert_eq!(links[0].link.kind, LinkKind::Loopback);
        assert!(links[0].link.up);
        let vx = &links[1];
        assert_eq!(
            vx.link.kind,
            LinkKind::Vxlan(VxlanParams {
                vni: 4200,
                local: Some(
                    "198.51.100.1"
                        .parse()
                        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
                ),
                port: 4789,
                learning: false,
                proxy: true,
            })
        );
        assert_eq!(vx.link.master.as_deref(), Some("br0"));
        assert_eq!(vx.link.mtu, 1450);
        let br = &links[2];
        assert_eq!(br.link.kind, LinkKind::Bridge);
        assert_eq!(br.link.addrs.len(), 1);
        let ve = &links[3];
        assert_eq!(ve.link.kind, LinkKind::Veth { peer: None });
        assert_eq!(ve.link_index, Some(2));
        assert_eq!(ve.link.alias.as_deref(), Some("ep-a/eth0"));
        assert!(ve.link.up);
        let weird = &links[4];
        assert_eq!(weird.link.mtu, 0);
        assert!(!weird.link.up);
        assert_eq!(weird.link.kind, LinkKind::Other(String::new()));
    }

    #[test]
    fn liberal_on_garbage() {
        for s in [
            "null",
            "{}",
            "[1,2,3]",
            "[{}]",
            r#"[{"ifname":3}]"#,
            "\"x\"",
        ] {
            let val = v(s);
            let _ = parse_links(&val);
            let _ = parse_default_routes(&val);
            let _ = parse_neigh(&val);
            let _ = parse_fdb(&val);
        }
    }

    #[test]
    fn parses_routes_neigh_fdb() {
        let routes = v(
            r#"[{"type":"unicast","dst":"default","gateway":"10.77.0.1","dev":"eth0","flags":[]},
                {"dst":"10.77.0.0/24","dev":"eth0","protocol":"kernel"},
                {"type":"unreachable","dst":"default"},
                {"dst":"default","dev":"eth1"}]"#,
        );
        let r = parse_default_routes(&routes);
        assert_eq!(r.len(), 2);
        assert!(r.contains(&DefaultRoute {
            via: Some(Ipv4Addr::new(10, 77, 0, 1)),
            dev: "eth0".into()
        }));
        assert!(r.contains(&DefaultRoute {
            via: None,
            dev: "eth1".into()
        }));

        let neigh = v(
            r#"[{"dst":"10.77.0.11","dev":"vxlan0","lladdr":"02:42:0a:4d:00:0b","state":["PERMANENT"]},
                {"dst":"10.77.0.12","dev":"vxlan0","lladdr":"02:42:0a:4d:00:0c","state":["REACHABLE"]},
                {"dst":"10.77.0.13","dev":"vxlan0","state":"FAILED"},
                {"dst":"10.77.0.14","dev":"br0","lladdr":"02:42:0a:4d:00:0e","state":["PERMANENT"]},
                {"dst":"fe80::1","dev":"vxlan0","lladdr":"02:42:0a:4d:00:0f","state":["PERMANENT"]}]"#,
        );
        let n = parse_neigh(&neigh);
        assert_eq!(n.len(), 3);
        assert!(n[&Ipv4Addr::new(10, 77, 0, 11)].permanent);
        assert!(!n[&Ipv4Addr::new(10, 77, 0, 12)].permanent);
        assert_eq!(n[&Ipv4Addr::new(10, 77, 0, 13)].mac, None);

        let fdb = v(
            r#"[{"mac":"6a:fb:a3:bd:94:ab","flags":[],"master":"br0","state":"permanent"},
                {"mac":"00:00:00:00:00:00","dst":"198.51.100.7","flags":["self"],"state":"permanent"},
                {"mac":"00:00:00:00:00:00","dst":"198.51.100.8","flags":["self"],"state":"permanent"},
                {"mac":"02:42:0a:4d:00:0b","dst":"198.51.100.2","linkNetNsId":0,"flags":["self"],"state":"permanent"},
                {"mac":"02:42:0a:4d:00:0c","dst":"198.51.100.3","flags":["self"],"state":""}]"#,
        );
        let f = parse_fdb(&fdb);
        assert_eq!(f.len(), 3);
        assert_eq!(f[&[0; 6]].dsts.len(), 2);
        assert!(f[&[2, 0x42, 10, 0x4d, 0, 0x0b]].permanent);
        assert!(!f[&[2, 0x42, 10, 0x4d, 0, 0x0c]].permanent);
    }

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

    #[test]
    fn json_stream() {
        let vals = json_values("[1]\n[]\n[{\"a\":2}]\n").unwrap_or_default();
        assert_eq!(vals.len(), 3);
        assert_eq!(vals[2], json!([{"a": 2}]));
    }
}
