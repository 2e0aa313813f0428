//! Address flags (`--advertise-addr eth0`, `--listen-addr 0.0.0.0:2377`, ...) and the
//! underlay prefixes a node reports to IPAM. Resolved inside the daemon because interface
//! names only mean something in the daemon's network namespace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net};
use nix::ifaddrs::getifaddrs;

use secnet_api::ApiError;

pub use secnet_types::DEFAULT_CONTROL_PORT;

/// IPv4 addresses per interface (loopback excluded), in interface order.
fn interface_addrs() -> Vec<(String, Ipv4Net)> {
    let mut out = Vec::new();
    let Ok(addrs) = getifaddrs() else {
        return out;
    };
    for ifa in addrs {
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) else {
            continue;
        };
        let ip = a.ip();
        if ip.is_loopback() {
            continue;
        }
        let prefix = u32::from(m.ip()).count_ones() as u8;
        if let Ok(net) = Ipv4Net::new(ip, prefix) {
            out.push((ifa.interface_name.clone(), net));
        }
    }
    out
}

fn interface_names() -> Vec<String> {
    let mut names: Vec<String> = nix::net::if_::if_nameindex()
        .map(|l| {
            l.iter()
                .map(|i| i.name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Resolves `IP`, `IP:PORT`, `IFACE` or `IFACE:PORT`. `flag` names the option in errors.
pub fn resolve(
    spec: &str,
    flag: &str,
    allow_port: bool,
) -> Result<(IpAddr, Option<u16>), ApiError> {
    let spec = spec.trim();
    if let Ok(sa) = spec.parse::<SocketAddr>() {
        if !allow_port {
            return Err(ApiError::invalid(format!(
                "{flag} {spec:?}: a port is not accepted here; give an IP address or an interface name"
            )));
        }
        return Ok((sa.ip(), Some(sa.port())));
    }
    if let Ok(ip) = spec.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let (name, port) = match spec.rsplit_once(':') {
        Some((name, port)) => {
            if !allow_port {
                return Err(ApiError::invalid(format!(
                    "{flag} {spec:?}: a port is not accepted here; give an IP address or an interface name"
                )));
            }
            let port: u16 = port.parse().map_err(|_| {
                ApiError::invalid(format!(
                    "{flag} {spec:?}: invalid port {port:?}; expected a number from 1 to 65535"
                ))
            })?;
            (name, Some(port))
        }
        None => (spec, None),
    };
    let names = interface_names();
    if !names.iter().any(|n| n == name) {
        return Err(ApiError::invalid(format!(
            "{flag} {spec:?}: not an IP address and no interface named {name:?} exists; expected an IP address or one of the interfaces {}",
            names.join(", ")
        )));
    }
    let addrs: Vec<Ipv4Addr> = interface_addrs()
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, net)| net.addr())
        .collect();
    match addrs.as_slice() {
        [one] => Ok((IpAddr::V4(*one), port)),
        [] => Err(ApiError::invalid(format!(
            "{flag} {spec:?}: interface {name} has no IPv4 address"
        ))),
        many => Err(ApiError::invalid(format!(
            "{flag} {spec:?}: interface {name} has more than one IPv4 address ({}); give the address to use instead",
            many.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The single non-loopback IPv4 address of this host, for when `--advertise-addr` is not given.
pub fn default_advertise_ip() -> Result<IpAddr, ApiError> {
    let addrs = interface_addrs();
    match addrs.as_slice() {
        [(_, one)] => Ok(IpAddr::V4(one.addr())),
        [] => Err(ApiError::invalid(
            "could not choose an IP address to advertise: this host has no IPv4 address besides loopback; use --advertise-addr",
        )),
        many => Err(ApiError::invalid(format!(
            "could not choose an IP address to advertise since this system has multiple addresses on different interfaces ({}); use --advertise-addr",
            many.iter().map(|(n, a)| format!("{} on {n}", a.addr())).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The addresses a node will use, resolved from the flags with Swarm's defaults.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAddrs {
    pub listen: SocketAddr,
    pub advertise: SocketAddr,
    pub data_path: IpAddr,
}

/// Applies Swarm's rules: listen defaults to 0.0.0.0:2377; advertise defaults to the listen
/// IP (or the host's single address) with the listen port; data-path defaults to the
/// advertise IP; unspecified addresses cannot be advertised.
pub fn resolve_all(
    advertise: Option<&str>,
    listen: Option<&str>,
    data_path: Option<&str>,
) -> Result<ResolvedAddrs, ApiError> {
    let (listen_ip, listen_port) = match listen {
        Some(s) => resolve(s, "--listen-addr", true)?,
        None => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), None),
    };
    let listen_port = listen_port.unwrap_or(DEFAULT_CONTROL_PORT);
    // Check each flag's own syntax before applying defaults, so the error names the flag the
    // user got wrong.
    let explicit_data = match data_path {
        Some(s) => Some(resolve(s, "--data-path-addr", false)?.0),
        None => None,
    };
    let (adv_ip, adv_port) = match advertise {
        Some(s) => resolve(s, "--advertise-addr", true)?,
        None if !listen_ip.is_unspecified() => (listen_ip, None),
        None => (default_advertise_ip()?, None),
    };
    if adv_ip.is_unspecified() {
        return Err(ApiError::invalid(format!(
            "--advertise-addr {adv_ip}: an unspecified address cannot be advertised; give this node's address or interface"
        )));
    }
    let data_ip = explicit_data.unwrap_or(adv_ip);
    if data_ip.is_unspecified() {
        return Err(ApiError::invalid(
            "data path address must be a non-zero IP address or network interface (without a port number)",
        ));
    }
    Ok(ResolvedAddrs {
        listen: SocketAddr::new(listen_ip, listen_port),
        advertise: SocketAddr::new(adv_ip, adv_port.unwrap_or(listen_port)),
        data_path: data_ip,
    })
}

/// Prefixes on this host's underlay: every interface network and every non-default IPv4
/// route. IPAM keeps overlay subnets clear of them so an overlay never shadows a host route.
pub fn underlay_prefixes() -> Vec<IpNet> {
    let mut out: Vec<IpNet> = interface_addrs()
        .into_iter()
        .map(|(_, n)| IpNet::V4(n.trunc()))
        .collect();
    if let Ok(text) = std::fs::read_to_string("/proc/net/route") {
        out.extend(parse_proc_routes(&text));
    }
    out.sort();
    out.dedup();
    out
}

/// The first of this host's interface networks and routes (`(device, prefix)`) that overlaps
/// the tunnel network, ignoring secnet's own TUN device. The nodes' tunnel addresses live
/// there, with a route through the TUN device; a host route into the same range would
/// compete with it.
pub fn tunnel_network_conflict(
    host: &[(String, Ipv4Net)],
    tunnel: Ipv4Net,
    tun_name: &str,
) -> Option<(String, Ipv4Net)> {
    host.iter()
        .filter(|(dev, _)| dev != tun_name)
        .find(|(_, net)| net.contains(&tunnel.network()) || tunnel.contains(&net.network()))
        .cloned()
}

/// Every interface network and non-default IPv4 route of this host, with its device.
pub fn host_prefixes_by_device() -> Vec<(String, Ipv4Net)> {
    let mut out: Vec<(String, Ipv4Net)> = interface_addrs()
        .into_iter()
        .map(|(dev, n)| (dev, n.trunc()))
        .collect();
    if let Ok(text) = std::fs::read_to_string("/proc/net/route") {
        out.extend(parse_proc_routes_by_device(&text));
    }
    out
}

/// Parses `/proc/net/route`: hex little-endian destination and mask; default routes skipped
/// (a /0 would exclude every subnet).
pub fn parse_proc_routes(text: &str) -> Vec<IpNet> {
    parse_proc_routes_by_device(text)
        .into_iter()
        .map(|(_, n)| IpNet::V4(n))
        .collect()
}

fn parse_proc_routes_by_device(text: &str) -> Vec<(String, Ipv4Net)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let iface = cols.first()?;
            if *iface == "lo" {
                return None;
            }
            let dest = u32::from_str_radix(cols.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(cols.get(7)?, 16).ok()?;
            let prefix = u32::from_be(mask).count_ones() as u8;
            if prefix == 0 {
                return None;
            }
            let net = Ipv4Net::new(Ipv4Addr::from(u32::from_be(dest)), prefix).ok()?;
            Some((iface.to_string(), net.trunc()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tunnel_network_conflicts() {
        let tunnel: Ipv4Net = "100.96.0.0/16".parse().unwrap();
        let host = |list: &[(&str, &str)]| -> Vec<(String, Ipv4Net)> {
            list.iter()
                .map(|(d, n)| (d.to_string(), n.parse().unwrap()))
                .collect()
        };
        let clear = host(&[("eth0", "192.0.2.0/24"), ("eth1", "100.97.0.0/16")]);
        assert_eq!(tunnel_network_conflict(&clear, tunnel, "sntun0"), None);
        // Inside, around, and secnet's own device (ignored).
        for (dev, net) in [("eth0", "100.96.5.0/24"), ("wg0", "100.64.0.0/10")] {
            let h = host(&[("eth9", "10.0.0.0/8"), (dev, net)]);
            assert_eq!(
                tunnel_network_conflict(&h, tunnel, "sntun0"),
                Some((dev.to_string(), net.parse().unwrap()))
            );
        }
        let own = host(&[("sntun0", "100.96.0.0/16")]);
        assert_eq!(tunnel_network_conflict(&own, tunnel, "sntun0"), None);
    }

    #[test]
    fn proc_routes_skip_default_and_loopback() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let nets = parse_proc_routes(text);
        assert_eq!(
            nets,
            vec![
                "192.0.2.0/24".parse::<IpNet>().unwrap(),
                "172.17.0.0/16".parse().unwrap()
            ]
        );
    }

    #[test]
    fn explicit_addresses_resolve() {
        assert_eq!(
            resolve("192.0.2.1:2400", "--advertise-addr", true).unwrap(),
            ("192.0.2.1".parse().unwrap(), Some(2400))
        );
        let e = resolve("192.0.2.1:2400", "--data-path-addr", false).unwrap_err();
        assert!(e.message.contains("port is not accepted"), "{}", e.message);
        let e = resolve("nosuchif0", "--advertise-addr", true).unwrap_err();
        assert!(e.message.contains("nosuchif0"), "{}", e.message);
        let e = resolve_all(Some("0.0.0.0"), None, None).unwrap_err();
        assert!(e.message.contains("unspecified"), "{}", e.message);
    }

    proptest::proptest! {
        #[test]
        fn route_parser_never_panics(s in ".{0,400}") {
            let _ = parse_proc_routes(&s);
        }
        #[test]
        fn resolve_never_panics(s in ".{0,60}") {
            let _ = resolve(&s, "--advertise-addr", true);
        }
    }
}
