//! Parsing rtnetlink replies into the model.
//!
//! Every field is derived the way `ip -j -d addr show`, `ip -j route show`,
//! `ip -j neigh show` and `bridge -j fdb show dev vxlan0` derive what they
//! print (which is what the executor read before it spoke netlink), so
//! plans do not change with the way the kernel is read:
//!
//! * links: `kind` from `IFLA_INFO_KIND` (`bridge`, `veth`, `vxlan`, else
//!   loopback by `ARPHRD_LOOPBACK`/`IFF_LOOPBACK`, else the kind string or
//!   empty), `up` from `IFF_UP`, `master` the name of the `IFLA_MASTER` link
//!   (`if<N>` when it is not in the namespace), `mac` only for 6-byte
//!   addresses, `alias` from `IFLA_IFALIAS`; VXLAN `local` only when not the
//!   unspecified address, `learning` and `proxy` false when absent;
//! * veth peers: the peer's ifindex (`IFLA_LINK`) counts only when the peer
//!   is in another namespace (`IFLA_LINK_NETNSID` present), as `ip` prints
//!   `link_index` only then;
//! * routes: IPv4 default routes (prefix length 0) of the main table, of type
//!   unicast, not cloned, with an output device;
//! * neighbours: IPv4 entries on `vxlan0`, except those `ip neigh show`
//!   hides (state `NOARP` or `NONE` only, unless proxy or externally
//!   learned);
//! * FDB: entries of `vxlan0`'s own table (those with `NDA_MASTER` belong to
//!   the bridge's and are skipped), one per MAC with all its destinations,
//!   permanent only when every row is.
//!
//! Reading is liberal where it can be: only the attributes above are parsed
//! (so an attribute a newer kernel added or changed cannot hide a link), and
//! messages of other families are skipped. An attribute that is needed but
//! malformed fails the observation instead of silently dropping the object.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{DataplaneError, Result};
use ipnet::Ipv4Net;
use netlink_packet_core::{
    parse_ip, parse_string, parse_u16_be, parse_u32, parse_u8, NlasIterator, NLA_HEADER_SIZE,
};
use netlink_packet_route::address::AddressHeader;
use netlink_packet_route::link::{LinkFlags, LinkHeader, LinkLayerType};
use netlink_packet_route::neighbour::NeighbourHeader;
use netlink_packet_route::route::RouteHeader;
use netlink_packet_route::AddressFamily;

use super::RawLink;
use crate::model::*;

// Message types and attribute numbers (linux/rtnetlink.h, if_link.h,
// if_addr.h, neighbour.h).
pub(super) const RTM_NEWLINK: u16 = 16;
pub(super) const RTM_NEWADDR: u16 = 20;
pub(super) const RTM_NEWROUTE: u16 = 24;
pub(super) const RTM_NEWNEIGH: u16 = 28;

const LINK_HEADER_LEN: usize = 16;
const ADDR_HEADER_LEN: usize = 8;
const ROUTE_HEADER_LEN: usize = 12;
const NEIGH_HEADER_LEN: usize = 12;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_IFALIAS: u16 = 20;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VXLAN_ID: u16 = 1;
const IFLA_VXLAN_LOCAL: u16 = 4;
const IFLA_VXLAN_LEARNING: u16 = 7;
const IFLA_VXLAN_PROXY: u16 = 11;
const IFLA_VXLAN_PORT: u16 = 15;
const IFLA_VXLAN_LOCAL6: u16 = 17;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u32 = 254;
const RTN_UNICAST: u8 = 1;
const RTM_F_CLONED: u32 = 0x200;

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NDA_MASTER: u16 = 9;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
const NTF_PROXY: u8 = 0x08;
const NTF_EXT_LEARNED: u8 = 0x10;

/// The values of the attributes of one message that we read, by number.
/// Others are not parsed at all; a malformed one (bad framing) fails the
/// message.
fn attrs<'a>(what: &str, buf: &'a [u8], wanted: &[u16]) -> Result<HashMap<u16, &'a [u8]>> {
    let mut out = HashMap::new();
    for nla in NlasIterator::new(buf) {
        let nla = nla.map_err(|e| malformed(format!("{what}: malformed attribute: {e}")))?;
        if wanted.contains(&nla.kind()) {
            let kind = nla.kind();
            let len = usize::from(nla.length());
            let value = nla.into_inner().get(NLA_HEADER_SIZE..len).unwrap_or(&[]);
            out.insert(kind, value);
        }
    }
    Ok(out)
}

/// A reply the kernel sent that does not read as the netlink message it should be.
fn malformed(message: String) -> DataplaneError {
    DataplaneError::Netlink {
        context: "reading a netlink reply".into(),
        message,
        errno: None,
    }
}

fn bad(what: &str, attr: &str, e: impl std::fmt::Display) -> DataplaneError {
    malformed(format!("{what}: bad {attr}: {e}"))
}

fn mac_of(value: &[u8]) -> Option<Mac> {
    <[u8; 6]>::try_from(value).ok().map(Mac)
}

fn ipv4_of(value: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from)
}

/// Name of ifindex `i` as `ip` prints it.
pub(super) fn name_of(names: &HashMap<u32, String>, i: u32) -> String {
    names.get(&i).cloned().unwrap_or_else(|| format!("if{i}"))
}

/// A link message as read, with indexes not yet turned into names.
#[derive(Debug, Clone)]
pub(super) struct NlLink {
    pub raw: RawLink,
    /// The kind string (`IFLA_INFO_KIND`).
    pub kind: Option<String>,
    pub master: Option<u32>,
}

/// The VXLAN parameters of `IFLA_INFO_DATA`.
fn parse_vxlan(what: &str, data: &[u8]) -> Result<VxlanParams> {
    let a = attrs(
        what,
        data,
        &[
            IFLA_VXLAN_ID,
            IFLA_VXLAN_LOCAL,
            IFLA_VXLAN_LOCAL6,
            IFLA_VXLAN_PORT,
            IFLA_VXLAN_LEARNING,
            IFLA_VXLAN_PROXY,
        ],
    )?;
    let flag = |k: u16, name: &str| -> Result<bool> {
        a.get(&k)
            .map(|v| parse_u8(v).map(|x| x != 0))
            .transpose()
            .map(|x| x.unwrap_or(false))
            .map_err(|e| bad(what, name, e))
    };
    let local4 = a
        .get(&IFLA_VXLAN_LOCAL)
        .map(|v| ipv4_of(v).ok_or_else(|| bad(what, "vxlan local", "not 4 bytes")))
        .transpose()?
        .filter(|ip| !ip.is_unspecified())
        .map(IpAddr::V4);
    let local6 = a
        .get(&IFLA_VXLAN_LOCAL6)
        .map(|v| {
            <[u8; 16]>::try_from(*v)
                .map(Ipv6Addr::from)
                .map_err(|_| bad(what, "vxlan local6", "not 16 bytes"))
        })
        .transpose()?
        .filter(|ip| !ip.is_unspecified())
        .map(IpAddr::V6);
    Ok(VxlanParams {
        vni: a
            .get(&IFLA_VXLAN_ID)
            .map(|v| parse_u32(v))
            .transpose()
            .map_err(|e| bad(what, "vxlan id", e))?
            .unwrap_or(0),
        local: local4.or(local6),
        port: a
            .get(&IFLA_VXLAN_PORT)
            .map(|v| parse_u16_be(v))
            .transpose()
            .map_err(|e| bad(what, "vxlan port", e))?
            .unwrap_or(0),
        learning: flag(IFLA_VXLAN_LEARNING, "vxlan learning")?,
        proxy: flag(IFLA_VXLAN_PROXY, "vxlan proxy")?,
    })
}

/// One `RTM_NEWLINK` payload.
pub(super) fn parse_link(payload: &[u8]) -> Result<NlLink> {
    let header = LinkHeader::parse(payload).map_err(|e| malformed(format!("link message: {e}")))?;
    let what = format!("link {}", header.index);
    let a = attrs(
        &what,
        payload.get(LINK_HEADER_LEN..).unwrap_or(&[]),
        &[
            IFLA_ADDRESS,
            IFLA_IFNAME,
            IFLA_MTU,
            IFLA_LINK,
            IFLA_MASTER,
            IFLA_LINKINFO,
            IFLA_IFALIAS,
            IFLA_LINK_NETNSID,
        ],
    )?;
    let string = |k: u16, name: &str| -> Result<Option<String>> {
        a.get(&k)
            .map(|v| parse_string(v))
            .transpose()
            .map_err(|e| bad(&what, name, e))
    };
    let u32_attr = |k: u16, name: &str| -> Result<Option<u32>> {
        a.get(&k)
            .map(|v| parse_u32(v))
            .transpose()
            .map_err(|e| bad(&what, name, e))
    };
    let name = string(IFLA_IFNAME, "name")?.ok_or_else(|| malformed(format!("{what}: no name")))?;
    let what = format!("link {name}");
    let mut kind = None;
    let mut data = None;
    if let Some(info) = a.get(&IFLA_LINKINFO) {
        let info = attrs(&what, info, &[IFLA_INFO_KIND, IFLA_INFO_DATA])?;
        kind = info
            .get(&IFLA_INFO_KIND)
            .map(|v| parse_string(v))
            .transpose()
            .map_err(|e| bad(&what, "kind", e))?;
        data = info.get(&IFLA_INFO_DATA).copied();
    }
    let loopback = header.link_layer_type == LinkLayerType::Loopback
        || header.flags.contains(LinkFlags::Loopback);
    let link_kind = match kind.as_deref() {
        Some("bridge") => LinkKind::Bridge,
        Some("veth") => LinkKind::Veth { peer: None },
        Some("vxlan") => LinkKind::Vxlan(parse_vxlan(&what, data.unwrap_or(&[]))?),
        _ if loopback => LinkKind::Loopback,
        Some(other) => LinkKind::Other(other.to_string()),
        None => LinkKind::Other(String::new()),
    };
    let peer_index = u32_attr(IFLA_LINK, "link")?.filter(|i| *i != 0);
    let link_index = if a.contains_key(&IFLA_LINK_NETNSID) {
        peer_index.map(u64::from)
    } else {
        None
    };
    Ok(NlLink {
        raw: RawLink {
            name,
            ifindex: Some(u64::from(header.index)),
            link_index,
            link: ObservedLink {
                kind: link_kind,
                mtu: u32_attr(IFLA_MTU, "mtu")?.unwrap_or(0),
                up: header.flags.contains(LinkFlags::Up),
                master: None,
                mac: a.get(&IFLA_ADDRESS).and_then(|v| mac_of(v)),
                alias: string(IFLA_IFALIAS, "alias")?,
                addrs: BTreeSet::new(),
            },
        },
        kind,
        master: u32_attr(IFLA_MASTER, "master")?,
    })
}

/// One `RTM_NEWADDR` payload: `(ifindex, IPv4 address)`, `None` for other
/// families.
pub(super) fn parse_addr(payload: &[u8]) -> Result<Option<(u32, Ipv4Net)>> {
    let header =
        AddressHeader::parse(payload).map_err(|e| malformed(format!("address message: {e}")))?;
    if header.family != AddressFamily::Inet {
        return Ok(None);
    }
    let what = format!("address on link {}", header.index);
    let a = attrs(
        &what,
        payload.get(ADDR_HEADER_LEN..).unwrap_or(&[]),
        &[IFA_LOCAL, IFA_ADDRESS],
    )?;
    let Some(v) = a.get(&IFA_LOCAL).or_else(|| a.get(&IFA_ADDRESS)) else {
        return Ok(None);
    };
    let ip = ipv4_of(v).ok_or_else(|| bad(&what, "address", "not 4 bytes"))?;
    Ok(Ipv4Net::new(ip, header.prefix_len)
        .ok()
        .map(|net| (header.index, net)))
}

/// One `RTM_NEWROUTE` payload: an IPv4 default route of the main table, as
/// `ip route show` lists it.
pub(super) fn parse_route(
    payload: &[u8],
    names: &HashMap<u32, String>,
) -> Result<Option<DefaultRoute>> {
    let header =
        RouteHeader::parse(payload).map_err(|e| malformed(format!("route message: {e}")))?;
    if header.address_family != AddressFamily::Inet
        || header.destination_prefix_length != 0
        || u8::from(header.kind) != RTN_UNICAST
        || header.flags.bits() & RTM_F_CLONED != 0
    {
        return Ok(None);
    }
    let what = "default route";
    let a = attrs(
        what,
        payload.get(ROUTE_HEADER_LEN..).unwrap_or(&[]),
        &[RTA_OIF, RTA_GATEWAY, RTA_TABLE],
    )?;
    let table = match a.get(&RTA_TABLE) {
        Some(v) => parse_u32(v).map_err(|e| bad(what, "table", e))?,
        None => u32::from(header.table),
    };
    if table != RT_TABLE_MAIN {
        return Ok(None);
    }
    let Some(oif) = a.get(&RTA_OIF) else {
        return Ok(None);
    };
    let oif = parse_u32(oif).map_err(|e| bad(what, "device", e))?;
    let via = a.get(&RTA_GATEWAY).and_then(|v| ipv4_of(v));
    Ok(Some(DefaultRoute {
        via,
        dev: name_of(names, oif),
    }))
}

/// A neighbour message's header and the attributes we read.
pub(super) struct NlNeigh {
    ifindex: u32,
    state: u16,
    flags: u8,
    dst: Option<IpAddr>,
    lladdr: Option<Vec<u8>>,
    master: bool,
}

pub(super) fn parse_neigh_msg(payload: &[u8], family: AddressFamily) -> Result<Option<NlNeigh>> {
    let header = NeighbourHeader::parse(payload)
        .map_err(|e| malformed(format!("neighbour message: {e}")))?;
    if header.family != family {
        return Ok(None);
    }
    let what = format!("neighbour on link {}", header.ifindex);
    let a = attrs(
        &what,
        payload.get(NEIGH_HEADER_LEN..).unwrap_or(&[]),
        &[NDA_DST, NDA_LLADDR, NDA_MASTER],
    )?;
    Ok(Some(NlNeigh {
        ifindex: header.ifindex,
        state: u16::from(header.state),
        flags: header.flags.bits(),
        dst: a
            .get(&NDA_DST)
            .map(|v| parse_ip(v))
            .transpose()
            .map_err(|e| bad(&what, "destination", e))?,
        lladdr: a.get(&NDA_LLADDR).map(|v| v.to_vec()),
        master: a.contains_key(&NDA_MASTER),
    }))
}

/// IPv4 neighbours on `vxlan0`, as `ip neigh show` lists them.
pub(super) fn neigh_entry(
    n: &NlNeigh,
    names: &HashMap<u32, String>,
) -> Option<(Ipv4Addr, NeighEntry)> {
    let shown = n.state & !NUD_NOARP & 0xff != 0 || n.flags & (NTF_PROXY | NTF_EXT_LEARNED) != 0;
    if !shown || name_of(names, n.ifindex) != VXLAN {
        return None;
    }
    let IpAddr::V4(ip) = n.dst? else {
        return None;
    };
    Some((
        ip,
        NeighEntry {
            mac: n.lladdr.as_deref().and_then(mac_of),
            permanent: n.state & NUD_PERMANENT != 0,
        },
    ))
}

/// Adds one bridge-family neighbour to `vxlan0`'s own FDB (`vxlan` is its
/// ifindex).
pub(super) fn add_fdb_row(out: &mut BTreeMap<Mac, FdbEntry>, n: &NlNeigh, vxlan: u32) {
    if n.ifindex != vxlan || n.master {
        return;
    }
    let Some(mac) = n.lladdr.as_deref().and_then(mac_of) else {
        return;
    };
    let entry = out.entry(mac).or_insert(FdbEntry {
        dsts: BTreeSet::new(),
        permanent: true,
    });
    entry.permanent &= n.state & NUD_PERMANENT != 0;
    if let Some(dst) = n.dst {
        entry.dsts.insert(dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;
    use netlink_packet_route::address::{AddressAttribute, AddressMessage};
    use netlink_packet_route::link::{
        InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
    };
    use netlink_packet_route::neighbour::NeighbourMessage;
    use netlink_packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
    };
    use netlink_packet_route::route::RouteMessage;
    use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteType};

    fn bytes(m: &impl Emitable) -> Vec<u8> {
        let mut b = vec![0u8; m.buffer_len()];
        m.emit(&mut b);
        b
    }

    fn link(index: u32, name: &str, attrs: Vec<LinkAttribute>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.link_layer_type = LinkLayerType::Ether;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.extend(attrs);
        m
    }

    fn kind(k: InfoKind, data: Option<InfoData>) -> LinkAttribute {
        let mut info = vec![LinkInfo::Kind(k)];
        info.extend(data.map(LinkInfo::Data));
        LinkAttribute::LinkInfo(info)
    }

    #[test]
    fn parses_links() {
        let mut lo = link(1, "lo", vec![LinkAttribute::Mtu(65536)]);
        lo.header.link_layer_type = LinkLayerType::Loopback;
        lo.header.flags = LinkFlags::Up | LinkFlags::Loopback;
        lo.attributes.push(LinkAttribute::Address(vec![0; 6]));
        let lo = parse_link(&bytes(&lo)).expect("lo");
        assert_eq!(lo.raw.link.kind, LinkKind::Loopback);
        assert!(lo.raw.link.up);
        assert_eq!(lo.raw.link.mac, Some(Mac([0; 6])));

        let mut vx = link(
            2,
            "vxlan0",
            vec![
                LinkAttribute::Mtu(1450),
                LinkAttribute::Controller(3),
                LinkAttribute::Link(2),
                LinkAttribute::LinkNetNsId(0),
                LinkAttribute::Address(vec![0x6a, 0xfb, 0xa3, 0xbd, 0x94, 0xab]),
                kind(
                    InfoKind::Vxlan,
                    Some(InfoData::Vxlan(vec![
                        InfoVxlan::Id(4200),
                        InfoVxlan::Local("198.51.100.1".parse().expect("ip")),
                        InfoVxlan::Port(4789),
                        InfoVxlan::Learning(false),
                        InfoVxlan::Proxy(true),
                        InfoVxlan::Ttl(0),
                    ])),
                ),
            ],
        );
        vx.header.flags = LinkFlags::Up;
        let vx = parse_link(&bytes(&vx)).expect("vxlan");
        assert_eq!(
            vx.raw.link.kind,
            LinkKind::Vxlan(VxlanParams {
                vni: 4200,
                local: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))),
                port: 4789,
                learning: false,
                proxy: true,
            })
        );
        assert_eq!(vx.master, Some(3));
        assert_eq!(vx.raw.link.mtu, 1450);
        assert_eq!(vx.raw.link_index, Some(2));
        assert_eq!(vx.kind.as_deref(), Some("vxlan"));

        // A VXLAN without local (0.0.0.0), learning or proxy attributes.
        let bare = link(
            7,
            "vx1",
            vec![kind(
                InfoKind::Vxlan,
                Some(InfoData::Vxlan(vec![
                    InfoVxlan::Id(9),
                    InfoVxlan::Local(Ipv4Addr::UNSPECIFIED),
                ])),
            )],
        );
        let bare = parse_link(&bytes(&bare)).expect("bare vxlan");
        assert_eq!(
            bare.raw.link.kind,
            LinkKind::Vxlan(VxlanParams {
                vni: 9,
                local: None,
                port: 0,
                learning: false,
                proxy: false,
            })
        );

        let br = link(3, "br0", vec![kind(InfoKind::Bridge, None)]);
        let br = parse_link(&bytes(&br)).expect("bridge");
        assert_eq!(br.raw.link.kind, LinkKind::Bridge);
        assert!(!br.raw.link.up);

        // A veth whose peer is in another namespace: link_index; one whose
        // peer is beside it (no netnsid): none, as `ip` prints it.
        let ve = link(
            4,
            "veabc",
            vec![
                LinkAttribute::Link(2),
                LinkAttribute::LinkNetNsId(1),
                LinkAttribute::IfAlias("ep-a/eth0".into()),
                kind(InfoKind::Veth, None),
            ],
        );
        let ve = parse_link(&bytes(&ve)).expect("veth");
        assert_eq!(ve.raw.link.kind, LinkKind::Veth { peer: None });
        assert_eq!(ve.raw.link_index, Some(2));
        assert_eq!(ve.raw.ifindex, Some(4));
        assert_eq!(ve.raw.link.alias.as_deref(), Some("ep-a/eth0"));
        let local = link(
            5,
            "vb",
            vec![LinkAttribute::Link(6), kind(InfoKind::Veth, None)],
        );
        assert_eq!(
            parse_link(&bytes(&local)).expect("veth").raw.link_index,
            None
        );

        // Other kinds keep their name; no kind at all is the empty string; a
        // 4-byte hardware address is no MAC.
        let tun = link(8, "tu0", vec![kind(InfoKind::Tun, None)]);
        let tun = parse_link(&bytes(&tun)).expect("tun");
        assert_eq!(tun.raw.link.kind, LinkKind::Other("tun".into()));
        let ipip = link(9, "t4", vec![LinkAttribute::Address(vec![0; 4])]);
        let ipip = parse_link(&bytes(&ipip)).expect("no kind");
        assert_eq!(ipip.raw.link.kind, LinkKind::Other(String::new()));
        assert_eq!(ipip.raw.link.mac, None);
        assert_eq!(ipip.raw.link.mtu, 0);
    }

    #[test]
    fn liberal_on_unknown_strict_on_needed() {
        // An attribute we do not read, malformed (IFLA_TXQLEN with 1 byte):
        // ignored.
        let mut m = link(3, "x", vec![]);
        let mut b = bytes(&m);
        b.extend_from_slice(&[5, 0, 13, 0, 1, 0, 0, 0]);
        assert!(parse_link(&b).is_ok());
        // A needed one (IFLA_MTU with 1 byte): an error, not a link without MTU.
        m.attributes.clear();
        let mut b = bytes(&m);
        b.extend_from_slice(&[5, 0, IFLA_MTU as u8, 0, 1, 0, 0, 0]);
        b.extend_from_slice(&[6, 0, IFLA_IFNAME as u8, 0, b'x', 0, 0, 0]);
        let err = parse_link(&b).expect_err("bad mtu");
        assert!(err.to_string().contains("mtu"), "{err}");
        // Truncated garbage.
        assert!(parse_link(&[1, 2, 3]).is_err());
        assert!(parse_addr(&[]).is_err());
        assert!(parse_route(&[0; 4], &HashMap::new()).is_err());
        assert!(parse_neigh_msg(&[9], AddressFamily::Inet).is_err());
    }

    #[test]
    fn parses_addresses() {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = 24;
        m.header.index = 3;
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(
                10, 77, 0, 1,
            ))));
        m.attributes
            .push(AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(
                10, 77, 0, 1,
            ))));
        assert_eq!(
            parse_addr(&bytes(&m)).expect("addr"),
            Some((3, "10.77.0.1/24".parse().expect("net")))
        );
        m.header.family = AddressFamily::Inet6;
        m.attributes = vec![AddressAttribute::Address(IpAddr::V6(Ipv6Addr::LOCALHOST))];
        assert_eq!(parse_addr(&bytes(&m)).expect("addr6"), None);
    }

    fn route(table: u8, dst_len: u8, kind: RouteType, attrs: Vec<RouteAttribute>) -> Vec<u8> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.table = table;
        m.header.destination_prefix_length = dst_len;
        m.header.kind = kind;
        m.attributes = attrs;
        bytes(&m)
    }

    #[test]
    fn parses_default_routes() {
        let names: HashMap<u32, String> = [(2, "eth0".to_string())].into();
        let gw = RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(10, 77, 0, 1)));
        let r = parse_route(
            &route(
                254,
                0,
                RouteType::Unicast,
                vec![gw.clone(), RouteAttribute::Oif(2)],
            ),
            &names,
        )
        .expect("route");
        assert_eq!(
            r,
            Some(DefaultRoute {
                via: Some(Ipv4Addr::new(10, 77, 0, 1)),
                dev: "eth0".into()
            })
        );
        // No gateway; a device we do not know by name.
        let r = parse_route(
            &route(254, 0, RouteType::Unicast, vec![RouteAttribute::Oif(9)]),
            &names,
        )
        .expect("route");
        assert_eq!(
            r,
            Some(DefaultRoute {
                via: None,
                dev: "if9".into()
            })
        );
        for skipped in [
            route(254, 24, RouteType::Unicast, vec![RouteAttribute::Oif(2)]),
            route(255, 0, RouteType::Unicast, vec![RouteAttribute::Oif(2)]),
            route(254, 0, RouteType::Unreachable, vec![]),
            route(254, 0, RouteType::Unicast, vec![gw.clone()]),
            route(
                0,
                0,
                RouteType::Unicast,
                vec![RouteAttribute::Table(100), RouteAttribute::Oif(2)],
            ),
        ] {
            assert_eq!(parse_route(&skipped, &names).expect("route"), None);
        }
        // The table attribute wins over the header's.
        let r = route(
            0,
            0,
            RouteType::Unicast,
            vec![RouteAttribute::Table(254), RouteAttribute::Oif(2)],
        );
        assert!(parse_route(&r, &names).expect("route").is_some());
    }

    fn neigh(
        family: AddressFamily,
        ifindex: u32,
        state: u16,
        dst: Option<IpAddr>,
        mac: Option<Mac>,
        master: bool,
    ) -> NlNeigh {
        let mut m = NeighbourMessage::default();
        m.header.family = family;
        m.header.ifindex = ifindex;
        m.header.state = NeighbourState::from(state);
        m.header.flags = NeighbourFlags::Own;
        if let Some(d) = dst {
            m.attributes.push(NeighbourAttribute::Destination(match d {
                IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
                IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
            }));
        }
        if let Some(mac) = mac {
            m.attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.octets().to_vec()));
        }
        if master {
            m.attributes.push(NeighbourAttribute::Controller(3));
        }
        parse_neigh_msg(&bytes(&m), family)
            .expect("neigh")
            .expect("family")
    }

    #[test]
    fn parses_neighbours_like_ip() {
        let names: HashMap<u32, String> = [(2, VXLAN.to_string()), (3, BRIDGE.to_string())].into();
        let ip = |d: u8| IpAddr::V4(Ipv4Addr::new(10, 77, 0, d));
        let mac = |d: u8| Mac([2, 0x42, 10, 0x4d, 0, d]);
        let e = neigh_entry(
            &neigh(
                AddressFamily::Inet,
                2,
                NUD_PERMANENT,
                Some(ip(11)),
                Some(mac(11)),
                false,
            ),
            &names,
        );
        assert_eq!(
            e,
            Some((
                Ipv4Addr::new(10, 77, 0, 11),
                NeighEntry {
                    mac: Some(mac(11)),
                    permanent: true
                }
            ))
        );
        // Reachable: shown, not permanent. Failed without lladdr: shown.
        let e = neigh_entry(
            &neigh(
                AddressFamily::Inet,
                2,
                0x02,
                Some(ip(12)),
                Some(mac(12)),
                false,
            ),
            &names,
        );
        assert_eq!(e.map(|(_, n)| n.permanent), Some(false));
        let e = neigh_entry(
            &neigh(AddressFamily::Inet, 2, 0x20, Some(ip(13)), None, false),
            &names,
        );
        assert_eq!(e.map(|(_, n)| n.mac), Some(None));
        // NOARP only, or NONE: hidden by `ip neigh show`. Another device: skipped.
        for n in [
            neigh(
                AddressFamily::Inet,
                2,
                NUD_NOARP,
                Some(ip(14)),
                Some(mac(14)),
                false,
            ),
            neigh(AddressFamily::Inet, 2, 0, Some(ip(15)), None, false),
            neigh(
                AddressFamily::Inet,
                3,
                NUD_PERMANENT,
                Some(ip(16)),
                Some(mac(16)),
                false,
            ),
        ] {
            assert_eq!(neigh_entry(&n, &names), None);
        }
        // Other families are not parsed as this one.
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet6;
        assert!(parse_neigh_msg(&bytes(&m), AddressFamily::Inet)
            .expect("parse")
            .is_none());
    }

    #[test]
    fn builds_the_vxlan_fdb() {
        let dst = |d: u8| IpAddr::V4(Ipv4Addr::new(198, 51, 100, d));
        let mut fdb = BTreeMap::new();
        let b = AddressFamily::Bridge;
        for n in [
            // The bridge's own entry for vxlan0: skipped.
            neigh(
                b,
                2,
                NUD_PERMANENT,
                None,
                Some(Mac([0x6a, 0xfb, 0xa3, 0xbd, 0x94, 0xab])),
                true,
            ),
            // Default destinations (appended): one entry, two dsts.
            neigh(
                b,
                2,
                NUD_PERMANENT | NUD_NOARP,
                Some(dst(7)),
                Some(Mac([0; 6])),
                false,
            ),
            neigh(b, 2, NUD_PERMANENT, Some(dst(8)), Some(Mac([0; 6])), false),
            neigh(
                b,
                2,
                NUD_PERMANENT,
                Some(dst(2)),
                Some(Mac([2, 0x42, 10, 0x4d, 0, 0x0b])),
                false,
            ),
            neigh(
                b,
                2,
                0x02,
                Some(dst(3)),
                Some(Mac([2, 0x42, 10, 0x4d, 0, 0x0c])),
                false,
            ),
            // Another device's entry: skipped.
            neigh(
                b,
                4,
                NUD_PERMANENT,
                Some(dst(9)),
                Some(Mac([2, 0, 0, 0, 0, 9])),
                false,
            ),
        ] {
            add_fdb_row(&mut fdb, &n, 2);
        }
        assert_eq!(fdb.len(), 3);
        assert_eq!(fdb[&Mac([0; 6])].dsts.len(), 2);
        assert!(fdb[&Mac([0; 6])].permanent);
        assert!(fdb[&Mac([2, 0x42, 10, 0x4d, 0, 0x0b])].permanent);
        assert!(!fdb[&Mac([2, 0x42, 10, 0x4d, 0, 0x0c])].permanent);
    }
}
