//! An independent reading of a namespace with `ip -j` / `bridge -j`: the way
//! the executor read the kernel before it spoke netlink. The kernel tests
//! check that [`secnet_dataplane::observe`] sees exactly what these tools
//! print (veth peers aside: `ip` does not resolve them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::Ipv4Net;
use secnet_dataplane::*;
use serde_json::Value;

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

fn json(ns: &Path, args: &[&str]) -> Value {
    let out = super::must(ns, args);
    if out.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    match serde_json::from_str(&out) {
        Ok(v) => v,
        Err(e) => panic!("{args:?}: {e}: {out}"),
    }
}

/// `ip -j -d addr show`: links by name (veth peers left out).
pub fn links(v: &Value) -> BTreeMap<String, ObservedLink> {
    let mut out = BTreeMap::new();
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
        out.insert(
            name.to_string(),
            ObservedLink {
                kind,
                mtu: u64_of(l, "mtu")
                    .and_then(|x| u32::try_from(x).ok())
                    .unwrap_or(0),
                up: flags.iter().any(|f| f == "UP"),
                master: str_of(l, "master").map(str::to_owned),
                mac: str_of(l, "address").and_then(|s| s.parse::<Mac>().ok()),
                alias: str_of(l, "ifalias").map(str::to_owned),
                addrs,
            },
        );
    }
    out
}

/// `ip -j route show`: the IPv4 default routes of the main table.
pub fn default_routes(v: &Value) -> BTreeSet<DefaultRoute> {
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

/// `ip -j neigh show`: IPv4 entries on `vxlan0`.
pub fn neigh(v: &Value) -> BTreeMap<Ipv4Addr, NeighEntry> {
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
                    mac: str_of(n, "lladdr").and_then(|s| s.parse::<Mac>().ok()),
                    permanent,
                },
            ))
        })
        .collect()
}

/// `bridge -j fdb show dev vxlan0`: entries of the VXLAN device's own FDB.
pub fn fdb(v: &Value) -> BTreeMap<Mac, FdbEntry> {
    let mut out: BTreeMap<Mac, FdbEntry> = BTreeMap::new();
    for e in array(v) {
        if e.get("master").is_some() || str_of(e, "ifname").is_some_and(|d| d != VXLAN) {
            continue;
        }
        let Some(mac) = str_of(e, "mac").and_then(|s| s.parse::<Mac>().ok()) else {
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

/// Everything of one namespace, as the tools print it.
pub fn namespace(ns: &Path) -> ObservedNs {
    let links = links(&json(ns, &["ip", "-j", "-d", "addr", "show"]));
    let fdb = if links.contains_key(VXLAN) {
        fdb(&json(ns, &["bridge", "-j", "fdb", "show", "dev", VXLAN]))
    } else {
        BTreeMap::new()
    };
    ObservedNs {
        links,
        default_routes: default_routes(&json(ns, &["ip", "-j", "route", "show"])),
        fdb,
        neigh: neigh(&json(ns, &["ip", "-j", "neigh", "show"])),
    }
}

/// The names of the VXLAN devices of a namespace.
pub fn vxlan_names(ns: &Path) -> BTreeSet<String> {
    links(&json(ns, &["ip", "-j", "link", "show", "type", "vxlan"]))
        .into_keys()
        .collect()
}

/// `observed` with every veth peer forgotten (`ip` does not resolve them).
pub fn without_peers(mut observed: ObservedNs) -> ObservedNs {
    for l in observed.links.values_mut() {
        if let LinkKind::Veth { peer } = &mut l.kind {
            *peer = None;
        }
    }
    observed
}
