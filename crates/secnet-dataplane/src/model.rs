//! The data types: what a host should look like ([`Desired`]), what it looks
//! like ([`Observed`]), the steps between the two ([`Op`]) and where things
//! live on the host ([`Layout`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// An Ethernet address.
pub use secnet_types::Mac;

/// Name of the bridge in every network namespace.
pub const BRIDGE: &str = "br0";
/// Name of the VXLAN device in every network namespace (once moved there).
pub const VXLAN: &str = "vxlan0";
/// The loopback device.
pub const LOOPBACK: &str = "lo";
/// Sub-directory of the run directory that holds the namespace files.
pub const NETNS_DIR: &str = "netns";
/// File-name prefix of network namespaces.
pub const NETWORK_NS_PREFIX: &str = "net-";
/// File-name prefix of endpoint namespaces.
pub const ENDPOINT_NS_PREFIX: &str = "ep-";
/// How many characters of a network id name its namespace.
pub const NETWORK_ID_CHARS: usize = 12;

/// Where the data path of one host lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The daemon's run directory; namespaces are files under `<run_dir>/netns/`.
    pub run_dir: PathBuf,
    /// The namespace in which VXLAN devices are created (their UDP sockets live
    /// there, so it must hold the data-path address). `None`: the namespace of
    /// the calling process, which is what the daemon uses.
    pub host_netns: Option<PathBuf>,
}

impl Layout {
    pub fn new(run_dir: impl Into<PathBuf>, host_netns: Option<PathBuf>) -> Layout {
        Layout {
            run_dir: run_dir.into(),
            host_netns,
        }
    }

    /// `<run_dir>/netns`.
    pub fn netns_dir(&self) -> PathBuf {
        self.run_dir.join(NETNS_DIR)
    }

    /// Path of the namespace file called `ns` (e.g. `net-0123456789ab`).
    pub fn ns_path(&self, ns: &str) -> PathBuf {
        self.netns_dir().join(ns)
    }

    /// Prefix of the temporary names VXLAN devices have in the host namespace
    /// between creation and the move into their network namespace: `snv` + 4
    /// hex digits derived from the run directory, so two daemons sharing a host
    /// namespace never touch each other's devices.
    pub fn temp_link_prefix(&self) -> String {
        let h = fnv1a(self.run_dir.as_os_str().as_encoded_bytes());
        format!("snv{:04x}", h & 0xffff)
    }

    /// Temporary host-namespace name of the VXLAN device for `vni`
    /// (13 characters, below the kernel's 15).
    pub fn temp_vxlan_name(&self, vni: u32) -> String {
        format!("{}{:06x}", self.temp_link_prefix(), vni & 0x00ff_ffff)
    }

    /// True when `name` is one of our temporary VXLAN names.
    pub fn is_temp_link(&self, name: &str) -> bool {
        let prefix = self.temp_link_prefix();
        name.len() == prefix.len() + 6
            && name.starts_with(&prefix)
            && name[prefix.len()..].chars().all(|c| c.is_ascii_hexdigit())
    }
}

/// File name of a network's namespace: `net-` + the first 12 characters of its id.
pub fn network_ns_name(network_id: &str) -> String {
    let short: String = network_id.chars().take(NETWORK_ID_CHARS).collect();
    format!("{NETWORK_NS_PREFIX}{short}")
}

/// True when `name` is a file name the data path gives a namespace under
/// `<run_dir>/netns/`: `net-` and the first 12 characters (letters and digits) of a network
/// id, or `ep-` and an
/// endpoint name (1-64 letters, digits, `_`, `.` or `-`, starting with a letter or digit).
/// The exact shape, never a prefix alone: whatever else is in the directory belongs to
/// someone else and is left alone.
pub fn is_own_ns_name(name: &str) -> bool {
    if let Some(id) = name.strip_prefix(NETWORK_NS_PREFIX) {
        return id.len() == NETWORK_ID_CHARS && id.bytes().all(|c| c.is_ascii_alphanumeric());
    }
    let Some(ep) = name.strip_prefix(ENDPOINT_NS_PREFIX) else {
        return false;
    };
    let mut chars = ep.bytes();
    ep.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// File name of an endpoint's namespace: `ep-` + its name.
pub fn endpoint_ns_name(endpoint: &str) -> String {
    format!("{ENDPOINT_NS_PREFIX}{endpoint}")
}

/// Path of an endpoint's namespace file (what a container runtime joins).
pub fn endpoint_netns_path(layout: &Layout, name: &str) -> PathBuf {
    layout.ns_path(&endpoint_ns_name(name))
}

/// Path of a network's namespace file.
pub fn network_netns_path(layout: &Layout, network_id: &str) -> PathBuf {
    layout.ns_path(&network_ns_name(network_id))
}

/// Name of the network-side end of the veth pair of an endpoint interface:
/// `ve` + 11 hex digits of a stable hash of (endpoint, ifname).
pub fn veth_name(endpoint: &str, ifname: &str) -> String {
    let mut bytes = Vec::with_capacity(endpoint.len() + ifname.len() + 1);
    bytes.extend_from_slice(endpoint.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(ifname.as_bytes());
    format!("ve{:011x}", fnv1a(&bytes) & 0x0fff_ffff_ffff)
}

/// FNV-1a, 64 bits: a hash that never changes between versions or builds (unlike `DefaultHasher`), for names derived
/// from paths that a restarted (or upgraded) daemon must derive again.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

// ---------------------------------------------------------------------------
// Desired state
// ---------------------------------------------------------------------------

/// The data path one host should have: the networks with at least one local
/// endpoint, and the local endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// By network id.
    pub networks: BTreeMap<String, DesiredNetwork>,
    /// By endpoint name.
    pub endpoints: BTreeMap<String, DesiredEndpoint>,
}

/// One overlay network on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredNetwork {
    pub id: String,
    pub vni: u32,
    pub subnet: Ipv4Net,
    /// Address of `br0` (with the subnet's prefix length).
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    /// This host's data-path address: the VXLAN `local` (outer source) address.
    pub local_vtep: IpAddr,
    /// VXLAN UDP port.
    pub port: u16,
    /// The endpoints of this network on other hosts.
    pub remotes: Vec<RemoteEndpoint>,
}

/// An endpoint on another host, reached through that host's VTEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteEndpoint {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub vtep: IpAddr,
}

/// A local endpoint (a container's network namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredEndpoint {
    pub name: String,
    pub interfaces: Vec<DesiredInterface>,
}

/// One interface of a local endpoint, on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredInterface {
    /// Name inside the endpoint namespace (`eth0`, `eth1`, ...).
    pub ifname: String,
    pub network_id: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub mac: Mac,
    pub mtu: u32,
    pub gateway: Ipv4Addr,
    /// Whether the endpoint's default route goes through this interface's
    /// gateway (the first flagged interface wins).
    pub default_route: bool,
}

// ---------------------------------------------------------------------------
// Observed state
// ---------------------------------------------------------------------------

/// What exists on the host, as far as the data path is concerned.
///
/// Both network and endpoint namespaces are [`ObservedNs`], keyed by their
/// file name under `<run_dir>/netns/` (`net-…`, `ep-…`, or anything else
/// that happens to be mounted there).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Mounted network namespaces under `<run_dir>/netns/`, by file name.
    pub namespaces: BTreeMap<String, ObservedNs>,
    /// Entries of `<run_dir>/netns/` with one of our names that are not network
    /// namespaces (left over after a crash).
    pub stale_files: BTreeSet<String>,
    /// Entries of `<run_dir>/netns/` whose names we never give ([`is_own_ns_name`]):
    /// someone else's, so never planned for, opened or removed; only reported.
    #[serde(default)]
    pub foreign: BTreeSet<String>,
    /// Our temporary VXLAN devices left in the host namespace.
    pub host_temp_links: BTreeSet<String>,
}

/// The contents of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNs {
    /// All links, by name.
    pub links: BTreeMap<String, ObservedLink>,
    /// IPv4 default routes of the main table.
    pub default_routes: BTreeSet<DefaultRoute>,
    /// Forwarding entries of `vxlan0`'s own FDB (not the bridge's).
    pub fdb: BTreeMap<Mac, FdbEntry>,
    /// IPv4 neighbour entries on `vxlan0`.
    pub neigh: BTreeMap<Ipv4Addr, NeighEntry>,
}

/// One link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedLink {
    pub kind: LinkKind,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Name of the master device (the bridge a port is enslaved to).
    pub master: Option<String>,
    pub mac: Option<Mac>,
    pub alias: Option<String>,
    /// IPv4 addresses with their prefix length.
    pub addrs: BTreeSet<Ipv4Net>,
}

impl ObservedLink {
    /// A fresh, down link without addresses.
    pub fn new(kind: LinkKind, mtu: u32) -> ObservedLink {
        ObservedLink {
            kind,
            mtu,
            up: false,
            master: None,
            mac: None,
            alias: None,
            addrs: BTreeSet::new(),
        }
    }
}

/// The kind of a link, with what matters about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkKind {
    Loopback,
    Bridge,
    Vxlan(VxlanParams),
    /// A veth; `peer` is its other end when that lies in one of our namespaces.
    Veth {
        peer: Option<VethPeer>,
    },
    /// Anything else (`info_kind`, empty when unknown).
    Other(String),
}

/// The parameters of a VXLAN device that can only be set at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanParams {
    pub vni: u32,
    pub local: Option<IpAddr>,
    pub port: u16,
    pub learning: bool,
    pub proxy: bool,
}

/// The other end of a veth pair: a link in one of our namespaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VethPeer {
    /// Namespace file name.
    pub ns: String,
    pub ifname: String,
}

/// A default route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DefaultRoute {
    pub via: Option<Ipv4Addr>,
    pub dev: String,
}

/// One MAC's entry in the VXLAN FDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbEntry {
    /// Remote VTEPs (usually one; several for an appended entry).
    pub dsts: BTreeSet<IpAddr>,
    pub permanent: bool,
}

/// One neighbour (ARP) entry on `vxlan0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighEntry {
    pub mac: Option<Mac>,
    pub permanent: bool,
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// One step towards the desired state. Namespaces are named by their file
/// name under `<run_dir>/netns/`; every op carries what it needs to be
/// carried out without the [`Desired`] it was planned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Removes an entry of `netns/` that is not a namespace.
    DeleteStaleFile {
        name: String,
    },
    /// Deletes a temporary VXLAN device left in the host namespace.
    DeleteHostLink {
        name: String,
    },
    /// Deletes `links` inside (so veth peers and VXLAN sockets go at once),
    /// then unmounts and removes the namespace file.
    DeleteNetworkNs {
        ns: String,
        links: Vec<String>,
    },
    /// Same for an endpoint namespace (or any other stale namespace).
    DeleteEndpointNs {
        ns: String,
        links: Vec<String>,
    },
    /// Deletes `vxlan0` (its creation-time parameters are wrong).
    DeleteVxlan {
        ns: String,
    },
    /// Deletes a link (a veth deletes its peer with it).
    DeleteInterface {
        ns: String,
        name: String,
    },
    /// Deletes a permanent FDB entry of `vxlan0`.
    DelFdb {
        ns: String,
        mac: Mac,
    },
    /// Deletes a neighbour entry of `vxlan0`.
    DelNeigh {
        ns: String,
        ip: Ipv4Addr,
    },
    CreateNetworkNs {
        ns: String,
    },
    CreateEndpointNs {
        ns: String,
    },
    SetLoopbackUp {
        ns: String,
    },
    /// Creates the VXLAN device in the host namespace under a temporary name
    /// and moves it into `ns` as `vxlan0` (down, no master).
    CreateVxlan {
        ns: String,
        vni: u32,
        local: IpAddr,
        port: u16,
        mtu: u32,
    },
    /// Creates `br0` (down, no address).
    CreateBridge {
        ns: String,
        mtu: u32,
    },
    /// Fixes `br0` in place: MTU, addresses (deletes first, then adds), up.
    SetBridge {
        ns: String,
        mtu: Option<u32>,
        del_addrs: Vec<Ipv4Net>,
        add_addrs: Vec<Ipv4Net>,
        set_up: bool,
    },
    /// Fixes `vxlan0` in place.
    SetVxlan {
        ns: String,
        mtu: Option<u32>,
        master: Option<String>,
        set_up: bool,
    },
    /// Creates a veth pair inside network namespace `ns`: `veth` stays there
    /// (MTU `mtu`), the peer goes to `endpoint_ns` as `ifname` with MAC `mac`
    /// and MTU `peer_mtu`. Both ends are down.
    CreateInterface {
        ns: String,
        veth: String,
        endpoint_ns: String,
        ifname: String,
        mac: Mac,
        mtu: u32,
        peer_mtu: u32,
    },
    /// Fixes the network-side end of an endpoint's veth pair in place.
    SetVeth {
        ns: String,
        veth: String,
        /// The endpoint namespace of the peer (for reporting).
        endpoint_ns: String,
        mtu: Option<u32>,
        master: Option<String>,
        alias: Option<String>,
        set_up: bool,
    },
    /// Fixes an endpoint interface in place (deletes addresses first, then adds).
    ConfigureInterface {
        ns: String,
        ifname: String,
        mac: Option<Mac>,
        mtu: Option<u32>,
        alias: Option<String>,
        del_addrs: Vec<Ipv4Net>,
        add_addrs: Vec<Ipv4Net>,
        set_up: bool,
    },
    DelDefaultRoute {
        ns: String,
        via: Option<Ipv4Addr>,
        dev: String,
    },
    /// `ip route replace default via <via> dev <dev>`.
    SetDefaultRoute {
        ns: String,
        via: Ipv4Addr,
        dev: String,
    },
    /// `ip neigh replace <ip> lladdr <mac> dev vxlan0 nud permanent`.
    AddNeigh {
        ns: String,
        ip: Ipv4Addr,
        mac: Mac,
    },
    /// `bridge fdb replace <mac> dev vxlan0 dst <dst> self permanent`.
    AddFdb {
        ns: String,
        mac: Mac,
        dst: IpAddr,
    },
}

impl Op {
    /// The namespace the op works on (`None`: the host namespace or a stale file).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Op::DeleteStaleFile { .. } | Op::DeleteHostLink { .. } => None,
            Op::DeleteNetworkNs { ns, .. }
            | Op::DeleteEndpointNs { ns, .. }
            | Op::DeleteVxlan { ns }
            | Op::DeleteInterface { ns, .. }
            | Op::DelFdb { ns, .. }
            | Op::DelNeigh { ns, .. }
            | Op::CreateNetworkNs { ns }
            | Op::CreateEndpointNs { ns }
            | Op::SetLoopbackUp { ns }
            | Op::CreateVxlan { ns, .. }
            | Op::CreateBridge { ns, .. }
            | Op::SetBridge { ns, .. }
            | Op::SetVxlan { ns, .. }
            | Op::CreateInterface { ns, .. }
            | Op::SetVeth { ns, .. }
            | Op::ConfigureInterface { ns, .. }
            | Op::DelDefaultRoute { ns, .. }
            | Op::SetDefaultRoute { ns, .. }
            | Op::AddNeigh { ns, .. }
            | Op::AddFdb { ns, .. } => Some(ns),
        }
    }

    /// True when the op changes endpoint `name`'s namespace or its veth
    /// pairs. (Network-wide ops, such as FDB entries, concern no endpoint in
    /// particular.)
    pub fn concerns_endpoint(&self, name: &str) -> bool {
        let ep = endpoint_ns_name(name);
        match self {
            Op::CreateInterface { endpoint_ns, .. } | Op::SetVeth { endpoint_ns, .. } => {
                *endpoint_ns == ep
            }
            Op::DeleteStaleFile { name } => *name == ep,
            other => other.namespace() == Some(ep.as_str()),
        }
    }
}

fn fmt_addrs(addrs: &[Ipv4Net]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::DeleteStaleFile { name } => write!(f, "remove stale netns/{name}"),
            Op::DeleteHostLink { name } => write!(f, "delete host link {name}"),
            Op::DeleteNetworkNs { ns, .. } => write!(f, "delete network namespace {ns}"),
            Op::DeleteEndpointNs { ns, .. } => write!(f, "delete endpoint namespace {ns}"),
            Op::DeleteVxlan { ns } => write!(f, "[{ns}] delete {VXLAN}"),
            Op::DeleteInterface { ns, name } => write!(f, "[{ns}] delete link {name}"),
            Op::DelFdb { ns, mac } => write!(f, "[{ns}] delete fdb {}", mac),
            Op::DelNeigh { ns, ip } => write!(f, "[{ns}] delete neigh {ip}"),
            Op::CreateNetworkNs { ns } => write!(f, "create network namespace {ns}"),
            Op::CreateEndpointNs { ns } => write!(f, "create endpoint namespace {ns}"),
            Op::SetLoopbackUp { ns } => write!(f, "[{ns}] set lo up"),
            Op::CreateVxlan {
                ns,
                vni,
                local,
                port,
                mtu,
            } => write!(
                f,
                "[{ns}] create {VXLAN} id {vni} local {local} dstport {port} mtu {mtu}"
            ),
            Op::CreateBridge { ns, mtu } => write!(f, "[{ns}] create {BRIDGE} mtu {mtu}"),
            Op::SetBridge {
                ns,
                mtu,
                del_addrs,
                add_addrs,
                set_up,
            } => write!(
                f,
                "[{ns}] set {BRIDGE} mtu={mtu:?} del=[{}] add=[{}] up={set_up}",
                fmt_addrs(del_addrs),
                fmt_addrs(add_addrs)
            ),
            Op::SetVxlan {
                ns,
                mtu,
                master,
                set_up,
            } => write!(
                f,
                "[{ns}] set {VXLAN} mtu={mtu:?} master={master:?} up={set_up}"
            ),
            Op::CreateInterface {
                ns,
                veth,
                endpoint_ns,
                ifname,
                ..
            } => write!(f, "[{ns}] create veth {veth} <-> {endpoint_ns}/{ifname}"),
            Op::SetVeth {
                ns,
                veth,
                mtu,
                master,
                alias,
                set_up,
                ..
            } => write!(
                f,
                "[{ns}] set {veth} mtu={mtu:?} master={master:?} alias={alias:?} up={set_up}"
            ),
            Op::ConfigureInterface {
                ns,
                ifname,
                mac,
                mtu,
                alias,
                del_addrs,
                add_addrs,
                set_up,
            } => write!(
                f,
                "[{ns}] configure {ifname} mac={} mtu={mtu:?} alias={alias:?} del=[{}] add=[{}] up={set_up}",
                mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
                fmt_addrs(del_addrs),
                fmt_addrs(add_addrs)
            ),
            Op::DelDefaultRoute { ns, via, dev } => match via {
                Some(via) => write!(f, "[{ns}] delete default via {via} dev {dev}"),
                None => write!(f, "[{ns}] delete default dev {dev}"),
            },
            Op::SetDefaultRoute { ns, via, dev } => {
                write!(f, "[{ns}] default via {via} dev {dev}")
            }
            Op::AddNeigh { ns, ip, mac } => {
                write!(f, "[{ns}] neigh {ip} lladdr {} permanent", mac)
            }
            Op::AddFdb { ns, mac, dst } => {
                write!(f, "[{ns}] fdb {} dst {dst} permanent", mac)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Apply report
// ---------------------------------------------------------------------------

/// A failed op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// Position of the op in the slice given to [`crate::apply`].
    pub index: usize,
    pub op: Op,
    pub message: String,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.message)
    }
}

impl std::error::Error for OpError {}

/// What [`crate::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Ops carried out without error.
    pub applied: usize,
    /// One entry per failed op, in op order.
    pub errors: Vec<OpError>,
    /// How many processes were spawned (`ip`/`bridge` batches).
    pub processes: usize,
}

impl ApplyReport {
    /// The failed ops.
    pub fn errors(&self) -> impl Iterator<Item = &OpError> {
        self.errors.iter()
    }

    /// True when every op succeeded.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_names_we_give_are_ours() {
        for own in [
            "net-0123456789ab",
            "ep-web.1",
            "ep-a",
            &format!("ep-{}", "x".repeat(64)),
        ] {
            assert!(is_own_ns_name(own), "{own}");
        }
        // What `ip netns add` users, other daemons and tools put in a directory.
        for foreign in [
            "h1",
            "secnetd.lock",
            "net-c",
            "net-0123456789abc",
            "net-0123456789a/",
            "ep-",
            "ep--x",
            "ep-.x",
            "ep-a b",
            "EP-a",
            &format!("ep-{}", "x".repeat(65)),
        ] {
            assert!(!is_own_ns_name(foreign), "{foreign}");
        }
    }

    proptest! {
        #[test]
        fn names_we_make_are_recognised(
            id in "[0-9a-f]{24}",
            ep in "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
            any in "\\PC{0,80}",
        ) {
            prop_assert!(is_own_ns_name(&network_ns_name(&id)));
            prop_assert!(is_own_ns_name(&endpoint_ns_name(&ep)));
            // Never panics, and anything accepted has one of the two shapes.
            if is_own_ns_name(&any) {
                prop_assert!(any.starts_with(NETWORK_NS_PREFIX) || any.starts_with(ENDPOINT_NS_PREFIX));
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(network_ns_name("0123456789abcdefghij"), "net-0123456789ab");
        assert_eq!(network_ns_name("short"), "net-short");
        assert_eq!(endpoint_ns_name("web.1"), "ep-web.1");
        let v = veth_name("web.1", "eth0");
        assert_eq!(v.len(), 13);
        assert!(v.starts_with("ve"));
        assert_eq!(v, veth_name("web.1", "eth0"));
        assert_ne!(v, veth_name("web.1", "eth1"));
        assert_ne!(veth_name("a", "beth0"), veth_name("ab", "eth0"));
    }

    #[test]
    fn temp_names() {
        let l = Layout::new("/run/secnet", None);
        let n = l.temp_vxlan_name(4200);
        assert!(n.len() <= 15, "{n}");
        assert!(l.is_temp_link(&n));
        assert!(!l.is_temp_link("vxlan0"));
        let other = Layout::new("/run/other", None);
        assert!(!other.is_temp_link(&n) || other.temp_link_prefix() == l.temp_link_prefix());
    }

    #[test]
    fn concerns_endpoint() {
        let op = Op::ConfigureInterface {
            ns: endpoint_ns_name("a"),
            ifname: "eth0".into(),
            mac: None,
            mtu: None,
            alias: None,
            del_addrs: vec![],
            add_addrs: vec![],
            set_up: true,
        };
        assert!(op.concerns_endpoint("a"));
        assert!(!op.concerns_endpoint("b"));
        let op = Op::AddFdb {
            ns: network_ns_name("n"),
            mac: Mac([2, 0, 0, 0, 0, 1]),
            dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        assert!(!op.concerns_endpoint("a"));
    }
}
