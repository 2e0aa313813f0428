//! The netlink requests of the executor: each one the message that an `ip`
//! or `bridge` command line sends (same flags and attributes, so the kernel
//! state is the same), written as that line in error messages.

use std::fmt;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::model::*;
use crate::nl::{Conn, NlError};

/// `NUD_NOARP | NUD_PERMANENT`: the state `bridge fdb ... permanent` sends.
const FDB_STATE: u16 = 0x40 | 0x80;

/// One netlink request, in the words of the `ip`/`bridge` command line that
/// sends the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Req {
    /// `ip link del NAME`.
    LinkDel { name: String },
    /// `ip link add NAME mtu MTU type bridge`.
    AddBridge { name: String, mtu: u32 },
    /// `ip link add NAME mtu MTU type vxlan id VNI local IP dstport PORT nolearning proxy`.
    AddVxlan {
        name: String,
        mtu: u32,
        vni: u32,
        local: IpAddr,
        port: u16,
    },
    /// `ip link set NAME netns PATH name NEW`.
    MoveLink {
        name: String,
        ns: PathBuf,
        new_name: String,
    },
    /// `ip link add NAME mtu MTU type veth peer name PEER address MAC mtu PEER_MTU netns PATH`.
    AddVeth {
        name: String,
        mtu: u32,
        peer: String,
        peer_mac: Mac,
        peer_mtu: u32,
        peer_ns: PathBuf,
    },
    /// `ip link set NAME up`.
    SetUp { name: String },
    /// `ip link set NAME mtu MTU`.
    SetMtu { name: String, mtu: u32 },
    /// `ip link set NAME master MASTER`.
    SetMaster { name: String, master: String },
    /// `ip link set NAME alias ALIAS`.
    SetAlias { name: String, alias: String },
    /// `ip link set NAME address MAC`.
    SetAddress { name: String, mac: Mac },
    /// `ip addr del NET dev DEV`.
    AddrDel { dev: String, net: Ipv4Net },
    /// `ip addr replace NET dev DEV`.
    AddrReplace { dev: String, net: Ipv4Net },
    /// `ip route del default [via VIA] dev DEV`.
    RouteDel { via: Option<Ipv4Addr>, dev: String },
    /// `ip route replace default via VIA dev DEV`.
    RouteReplace { via: Ipv4Addr, dev: String },
    /// `ip neigh replace IP lladdr MAC dev vxlan0 nud permanent`.
    NeighReplace { ip: Ipv4Addr, mac: Mac },
    /// `ip neigh del IP dev vxlan0`.
    NeighDel { ip: Ipv4Addr },
    /// `bridge fdb replace MAC dev vxlan0 dst DST self permanent`.
    FdbReplace { mac: Mac, dst: IpAddr },
    /// `bridge fdb del MAC dev vxlan0 self`.
    FdbDel { mac: Mac },
}

impl fmt::Display for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Req::LinkDel { name } => write!(f, "link del {name}"),
            Req::AddBridge { name, mtu } => write!(f, "link add {name} mtu {mtu} type bridge"),
            Req::AddVxlan {
                name,
                mtu,
                vni,
                local,
                port,
            } => write!(
                f,
                "link add {name} mtu {mtu} type vxlan id {vni} local {local} dstport {port} nolearning proxy"
            ),
            Req::MoveLink { name, ns, new_name } => {
                write!(f, "link set {name} netns {} name {new_name}", ns.display())
            }
            Req::AddVeth {
                name,
                mtu,
                peer,
                peer_mac,
                peer_mtu,
                peer_ns,
            } => write!(
                f,
                "link add {name} mtu {mtu} type veth peer name {peer} address {} mtu {peer_mtu} netns {}",
                peer_mac,
                peer_ns.display()
            ),
            Req::SetUp { name } => write!(f, "link set {name} up"),
            Req::SetMtu { name, mtu } => write!(f, "link set {name} mtu {mtu}"),
            Req::SetMaster { name, master } => write!(f, "link set {name} master {master}"),
            Req::SetAlias { name, alias } => write!(f, "link set {name} alias {alias}"),
            Req::SetAddress { name, mac } => {
                write!(f, "link set {name} address {}", mac)
            }
            Req::AddrDel { dev, net } => write!(f, "addr del {net} dev {dev}"),
            Req::AddrReplace { dev, net } => write!(f, "addr replace {net} dev {dev}"),
            Req::RouteDel { via: Some(v), dev } => write!(f, "route del default via {v} dev {dev}"),
            Req::RouteDel { via: None, dev } => write!(f, "route del default dev {dev}"),
            Req::RouteReplace { via, dev } => {
                write!(f, "route replace default via {via} dev {dev}")
            }
            Req::NeighReplace { ip, mac } => write!(
                f,
                "neigh replace {ip} lladdr {} dev {VXLAN} nud permanent",
                mac
            ),
            Req::NeighDel { ip } => write!(f, "neigh del {ip} dev {VXLAN}"),
            Req::FdbReplace { mac, dst } => write!(
                f,
                "fdb replace {} dev {VXLAN} dst {dst} self permanent",
                mac
            ),
            Req::FdbDel { mac } => write!(f, "fdb del {} dev {VXLAN} self", mac),
        }
    }
}

fn link_named(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m
}

fn link_info(kind: InfoKind, data: Option<InfoData>) -> LinkAttribute {
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    LinkAttribute::LinkInfo(info)
}

fn vxlan_message(name: &str, mtu: u32, vni: u32, local: IpAddr, port: u16) -> LinkMessage {
    let mut m = link_named(name);
    m.attributes.push(LinkAttribute::Mtu(mtu));
    let local = match local {
        IpAddr::V4(v4) => InfoVxlan::Local(v4),
        IpAddr::V6(v6) => InfoVxlan::Local6(v6),
    };
    m.attributes.push(link_info(
        InfoKind::Vxlan,
        Some(InfoData::Vxlan(vec![
            InfoVxlan::Id(vni),
            local,
            InfoVxlan::Port(port),
            InfoVxlan::Learning(false),
            InfoVxlan::Proxy(true),
        ])),
    ));
    m
}

fn veth_message(
    name: &str,
    mtu: u32,
    peer: &str,
    peer_mac: &Mac,
    peer_mtu: u32,
    peer_ns: &File,
) -> LinkMessage {
    let mut p = link_named(peer);
    p.attributes
        .push(LinkAttribute::Address(peer_mac.octets().to_vec()));
    p.attributes.push(LinkAttribute::Mtu(peer_mtu));
    p.attributes
        .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
    let mut m = link_named(name);
    m.attributes.push(LinkAttribute::Mtu(mtu));
    m.attributes.push(link_info(
        InfoKind::Veth,
        Some(InfoData::Veth(InfoVeth::Peer(p))),
    ));
    m
}

fn addr_message(index: u32, net: &Ipv4Net) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.prefix_len = net.prefix_len();
    m.header.index = index;
    // `ip addr` gives loopback addresses host scope, the others global.
    m.header.scope = if net.addr().is_loopback() {
        AddressScope::Host
    } else {
        AddressScope::Universe
    };
    let ip = IpAddr::V4(net.addr());
    m.attributes.push(AddressAttribute::Local(ip));
    m.attributes.push(AddressAttribute::Address(ip));
    m
}

fn route_message(index: u32, via: Option<Ipv4Addr>, replace: bool) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.destination_prefix_length = 0;
    if replace {
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
    } else {
        // Any protocol, scope and type: like `ip route del`.
        m.header.scope = RouteScope::NoWhere;
    }
    if let Some(v) = via {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(v)));
    }
    m.attributes.push(RouteAttribute::Oif(index));
    m
}

fn neigh_message(index: u32, ip: Ipv4Addr, mac: Option<&Mac>) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    if let Some(mac) = mac {
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.octets().to_vec()));
    }
    m
}

fn fdb_message(index: u32, mac: &Mac, dst: Option<IpAddr>) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::from(FDB_STATE);
    m.header.flags = NeighbourFlags::Own; // NTF_SELF: vxlan0's own table
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.octets().to_vec()));
    if let Some(d) = dst {
        m.attributes.push(NeighbourAttribute::Destination(match d {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
    }
    m
}

/// Why a request failed.
pub(super) enum ExecError {
    Netlink(NlError),
    Other(String),
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Netlink(e) => write!(f, "{e}"),
            ExecError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl From<NlError> for ExecError {
    fn from(e: NlError) -> ExecError {
        ExecError::Netlink(e)
    }
}

fn index(conn: &mut Conn, name: &str) -> Result<u32, ExecError> {
    conn.index(name).map_err(|e| match e.errno() {
        Some(19) => ExecError::Other(format!("cannot find device {name}")),
        _ => ExecError::Other(format!("cannot find device {name}: {e}")),
    })
}

fn open_ns(path: &std::path::Path) -> Result<File, ExecError> {
    File::open(path).map_err(|e| ExecError::Other(format!("cannot open {}: {e}", path.display())))
}

fn set(conn: &mut Conn, m: LinkMessage) -> Result<(), ExecError> {
    Ok(conn.ack(RouteNetlinkMessage::SetLink(m), 0)?)
}

/// Sends one request and waits for the kernel's answer.
pub(super) fn exec(conn: &mut Conn, req: &Req) -> Result<(), ExecError> {
    use RouteNetlinkMessage as M;
    const NEW: u16 = NLM_F_CREATE | NLM_F_EXCL;
    const REPLACE: u16 = NLM_F_CREATE | NLM_F_REPLACE;
    match req {
        Req::LinkDel { name } => Ok(conn.ack(M::DelLink(link_named(name)), 0)?),
        Req::AddBridge { name, mtu } => {
            let mut m = link_named(name);
            m.attributes.push(LinkAttribute::Mtu(*mtu));
            m.attributes.push(link_info(InfoKind::Bridge, None));
            Ok(conn.ack(M::NewLink(m), NEW)?)
        }
        Req::AddVxlan {
            name,
            mtu,
            vni,
            local,
            port,
        } => Ok(conn.ack(
            M::NewLink(vxlan_message(name, *mtu, *vni, *local, *port)),
            NEW,
        )?),
        Req::MoveLink { name, ns, new_name } => {
            let file = open_ns(ns)?;
            let mut m = LinkMessage::default();
            m.header.index = index(conn, name)?;
            m.attributes.push(LinkAttribute::NetNsFd(file.as_raw_fd()));
            m.attributes.push(LinkAttribute::IfName(new_name.clone()));
            set(conn, m)
        }
        Req::AddVeth {
            name,
            mtu,
            peer,
            peer_mac,
            peer_mtu,
            peer_ns,
        } => {
            let file = open_ns(peer_ns)?;
            let m = veth_message(name, *mtu, peer, peer_mac, *peer_mtu, &file);
            Ok(conn.ack(M::NewLink(m), NEW)?)
        }
        Req::SetUp { name } => {
            let mut m = link_named(name);
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
            set(conn, m)
        }
        Req::SetMtu { name, mtu } => {
            let mut m = link_named(name);
            m.attributes.push(LinkAttribute::Mtu(*mtu));
            set(conn, m)
        }
        Req::SetMaster { name, master } => {
            let master = index(conn, master)?;
            let mut m = link_named(name);
            m.attributes.push(LinkAttribute::Controller(master));
            set(conn, m)
        }
        Req::SetAlias { name, alias } => {
            let mut m = link_named(name);
            m.attributes.push(LinkAttribute::IfAlias(alias.clone()));
            set(conn, m)
        }
        Req::SetAddress { name, mac } => {
            let mut m = link_named(name);
            m.attributes
                .push(LinkAttribute::Address(mac.octets().to_vec()));
            set(conn, m)
        }
        Req::AddrDel { dev, net } => {
            let m = addr_message(index(conn, dev)?, net);
            Ok(conn.ack(M::DelAddress(m), 0)?)
        }
        Req::AddrReplace { dev, net } => {
            let m = addr_message(index(conn, dev)?, net);
            Ok(conn.ack(M::NewAddress(m), REPLACE)?)
        }
        Req::RouteDel { via, dev } => {
            let m = route_message(index(conn, dev)?, *via, false);
            Ok(conn.ack(M::DelRoute(m), 0)?)
        }
        Req::RouteReplace { via, dev } => {
            let m = route_message(index(conn, dev)?, Some(*via), true);
            Ok(conn.ack(M::NewRoute(m), REPLACE)?)
        }
        Req::NeighReplace { ip, mac } => {
            let m = neigh_message(index(conn, VXLAN)?, *ip, Some(mac));
            Ok(conn.ack(M::NewNeighbour(m), REPLACE)?)
        }
        Req::NeighDel { ip } => {
            let m = neigh_message(index(conn, VXLAN)?, *ip, None);
            Ok(conn.ack(M::DelNeighbour(m), 0)?)
        }
        Req::FdbReplace { mac, dst } => {
            let m = fdb_message(index(conn, VXLAN)?, mac, Some(*dst));
            Ok(conn.ack(M::NewNeighbour(m), REPLACE)?)
        }
        Req::FdbDel { mac } => {
            let m = fdb_message(index(conn, VXLAN)?, mac, None);
            Ok(conn.ack(M::DelNeighbour(m), 0)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    /// The messages carry what `ip`/`bridge` send for the same lines.
    #[test]
    fn messages() {
        let vx = vxlan_message(
            "snv0000000042",
            1450,
            42,
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
            4789,
        );
        let info = vx.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i.clone()),
            _ => None,
        });
        let data = info.unwrap_or_default().into_iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Vxlan(d)) => Some(d),
            _ => None,
        });
        let data = data.unwrap_or_default();
        for want in [
            InfoVxlan::Id(42),
            InfoVxlan::Local(Ipv4Addr::new(198, 51, 100, 1)),
            InfoVxlan::Port(4789),
            InfoVxlan::Learning(false),
            InfoVxlan::Proxy(true),
        ] {
            assert!(data.contains(&want), "{want:?} in {data:?}");
        }
        assert!(vx.buffer_len() > 0);

        let fdb = fdb_message(
            7,
            &Mac([2, 0, 0, 0, 0, 9]),
            Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9))),
        );
        assert_eq!(fdb.header.family, AddressFamily::Bridge);
        assert_eq!(fdb.header.ifindex, 7);
        assert_eq!(u16::from(fdb.header.state), 0xc0);
        assert!(fdb.header.flags.contains(NeighbourFlags::Own));
        assert_eq!(fdb.attributes.len(), 2);
        assert_eq!(
            fdb_message(7, &Mac([2, 0, 0, 0, 0, 9]), None)
                .attributes
                .len(),
            1
        );

        let n = neigh_message(
            7,
            Ipv4Addr::new(10, 0, 0, 9),
            Some(&Mac([2, 0, 0, 0, 0, 9])),
        );
        assert_eq!(n.header.family, AddressFamily::Inet);
        assert_eq!(n.header.state, NeighbourState::Permanent);

        let a = addr_message(3, &"10.77.0.1/24".parse().unwrap_or_default());
        assert_eq!((a.header.prefix_len, a.header.index), (24, 3));
        assert_eq!(a.header.scope, AddressScope::Universe);
        let lo = addr_message(1, &"127.0.0.2/8".parse().unwrap_or_default());
        assert_eq!(lo.header.scope, AddressScope::Host);

        let r = route_message(2, Some(Ipv4Addr::new(10, 77, 0, 1)), true);
        assert_eq!(r.header.table, RouteHeader::RT_TABLE_MAIN);
        assert_eq!(r.header.kind, RouteType::Unicast);
        assert_eq!(r.attributes.len(), 2);
        let d = route_message(2, None, false);
        assert_eq!(d.header.scope, RouteScope::NoWhere);
        assert_eq!(d.attributes, vec![RouteAttribute::Oif(2)]);
    }
}
