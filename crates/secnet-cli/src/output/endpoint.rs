//! What `secnet endpoint ...` shows.

use secnet_api::{EndpointInfo, InterfaceInfo, LocalResponse};

use super::{json_doc, json_line, lines, table, unexpected};
use crate::cli::{ListFormat, Render};
use crate::error::CliError;

/// The text shown for the answer to a `secnet endpoint` command.
pub(super) fn render(how: &Render, response: LocalResponse) -> Result<String, CliError> {
    match (how, response) {
        (Render::EndpointCreate { format }, LocalResponse::Endpoint(ep)) => match format {
            ListFormat::Table => Ok(format!("{}\n", ep.name)),
            ListFormat::Json => json_line(&ep),
        },
        (Render::EndpointLs { quiet, format }, LocalResponse::Endpoints(eps)) => {
            if *quiet {
                Ok(lines(eps.iter().map(|e| e.name.as_str())))
            } else {
                match format {
                    ListFormat::Table => Ok(endpoint_table(&eps)),
                    ListFormat::Json => json_line(&eps),
                }
            }
        }
        (Render::EndpointInspect { compact }, LocalResponse::Endpoints(eps)) => {
            json_doc(&eps, *compact)
        }
        (Render::EndpointInspect { compact }, LocalResponse::Endpoint(ep)) => {
            json_doc(&[ep], *compact)
        }
        (Render::EndpointRm, LocalResponse::EndpointsRemoved(names)) => {
            Ok(lines(names.iter().map(String::as_str)))
        }
        (Render::EndpointInterfaces, LocalResponse::Endpoint(ep)) => {
            Ok(interface_table(&ep.interfaces))
        }
        (how, other) => Err(unexpected(how, &other)),
    }
}

/// The INTERFACES cell of `endpoint ls`: every interface as IFNAME:NETWORK, comma-separated.
fn interface_list(ep: &EndpointInfo) -> String {
    ep.interfaces
        .iter()
        .map(|i| format!("{}:{}", i.ifname, i.network))
        .collect::<Vec<_>>()
        .join(",")
}

/// `endpoint ls` as a table. NODE is the node's hostname; IP and MAC are eth0's.
pub fn endpoint_table(eps: &[EndpointInfo]) -> String {
    let rows: Vec<Vec<String>> = eps
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                e.network.clone(),
                e.node_hostname.clone(),
                e.ip.to_string(),
                e.mac.clone(),
                interface_list(e),
            ]
        })
        .collect();
    table(
        &["NAME", "NETWORK", "NODE", "IP", "MAC", "INTERFACES"],
        &rows,
    )
}

/// The interfaces of one endpoint (`endpoint connect` / `disconnect`).
pub fn interface_table(ifaces: &[InterfaceInfo]) -> String {
    let rows: Vec<Vec<String>> = ifaces
        .iter()
        .map(|i| {
            vec![
                i.ifname.clone(),
                i.network.clone(),
                i.cidr.clone(),
                i.gateway.to_string(),
                i.mac.clone(),
                i.mtu.to_string(),
            ]
        })
        .collect();
    table(
        &["INTERFACE", "NETWORK", "ADDRESS", "GATEWAY", "MAC", "MTU"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::output::render;

    fn iface(ifname: &str, net: &str, ip: &str, mac: &str) -> InterfaceInfo {
        let ip: std::net::Ipv4Addr = ip.parse().unwrap();
        let o = ip.octets();
        InterfaceInfo {
            ifname: ifname.into(),
            network: net.into(),
            network_id: format!("{net}-id"),
            ip,
            cidr: format!("{ip}/24"),
            gateway: std::net::Ipv4Addr::new(o[0], o[1], o[2], 1),
            mac: mac.into(),
            mtu: 1450,
        }
    }

    fn endpoint(name: &str, host: &str, ifaces: Vec<InterfaceInfo>) -> EndpointInfo {
        EndpointInfo {
            id: format!("{name}-0123456789abcdef"),
            name: name.into(),
            network: ifaces[0].network.clone(),
            node: "3f2a9c0d1e".into(),
            node_hostname: host.into(),
            ip: ifaces[0].ip,
            mac: ifaces[0].mac.clone(),
            netns: Some(format!("/run/secnet/netns/ep-{name}")),
            interfaces: ifaces,
            created: "2024-05-01T10:00:00Z".into(),
        }
    }

    fn endpoints() -> Vec<EndpointInfo> {
        vec![
            endpoint(
                "web1",
                "worker-long-name",
                vec![
                    iface("eth0", "backend", "10.0.1.2", "02:42:0a:00:01:02"),
                    iface("eth1", "frontend", "10.0.2.5", "02:42:0a:00:02:05"),
                ],
            ),
            endpoint(
                "db",
                "manager1",
                vec![iface("eth0", "backend", "10.0.1.10", "02:42:0a:00:01:0a")],
            ),
        ]
    }

    #[test]
    fn endpoint_table_columns() {
        let t = endpoint_table(&endpoints());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME  NETWORK  NODE              IP         MAC                \
                 INTERFACES",
                "web1  backend  worker-long-name  10.0.1.2   02:42:0a:00:01:02  \
                 eth0:backend,eth1:frontend",
                "db    backend  manager1          10.0.1.10  02:42:0a:00:01:0a  eth0:backend",
            ]
        );
        assert_eq!(
            endpoint_table(&[]),
            "NAME  NETWORK  NODE  IP  MAC  INTERFACES\n"
        );
    }

    #[test]
    fn endpoint_ls_quiet_and_json() {
        let eps = endpoints();
        let ls = |quiet, format| {
            render(
                &Render::EndpointLs { quiet, format },
                LocalResponse::Endpoints(eps.clone()),
            )
            .unwrap()
        };
        assert_eq!(ls(true, ListFormat::Table), "web1\ndb\n");
        assert_eq!(ls(false, ListFormat::Table), endpoint_table(&eps));
        let json = ls(false, ListFormat::Json);
        assert_eq!(json.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let obj = v.as_array().unwrap()[0].as_object().unwrap();
        for k in [
            "id",
            "name",
            "network",
            "node",
            "node_hostname",
            "ip",
            "mac",
            "netns",
            "interfaces",
            "created",
        ] {
            assert!(obj.contains_key(k), "missing {k}");
        }
        assert_eq!(obj["ip"], "10.0.1.2");
        assert_eq!(obj["netns"], "/run/secnet/netns/ep-web1");
        assert_eq!(obj["interfaces"][1]["cidr"], "10.0.2.5/24");
        let back: Vec<EndpointInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, eps);
    }

    #[test]
    fn endpoint_create_prints_the_name_or_an_object() {
        let ep = endpoints().remove(0);
        let table = render(
            &Render::EndpointCreate {
                format: ListFormat::Table,
            },
            LocalResponse::Endpoint(ep.clone()),
        )
        .unwrap();
        assert_eq!(table, "web1\n");
        let json = render(
            &Render::EndpointCreate {
                format: ListFormat::Json,
            },
            LocalResponse::Endpoint(ep.clone()),
        )
        .unwrap();
        assert!(json.starts_with('{') && json.ends_with("}\n"), "{json}");
        let back: EndpointInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ep);
        // A remote endpoint's netns is null.
        let mut remote = ep;
        remote.netns = None;
        let json = render(
            &Render::EndpointCreate {
                format: ListFormat::Json,
            },
            LocalResponse::Endpoint(remote),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["netns"].is_null());
    }

    #[test]
    fn endpoint_inspect_rm_and_interfaces() {
        let eps = endpoints();
        let pretty = render(
            &Render::EndpointInspect { compact: false },
            LocalResponse::Endpoints(eps.clone()),
        )
        .unwrap();
        assert!(pretty.starts_with("[\n  {\n"), "{pretty}");
        let back: Vec<EndpointInfo> = serde_json::from_str(&pretty).unwrap();
        assert_eq!(back, eps);
        let compact = render(
            &Render::EndpointInspect { compact: true },
            LocalResponse::Endpoint(eps[1].clone()),
        )
        .unwrap();
        assert_eq!(compact.lines().count(), 1);
        let back: Vec<EndpointInfo> = serde_json::from_str(&compact).unwrap();
        assert_eq!(back, vec![eps[1].clone()]);

        assert_eq!(
            render(
                &Render::EndpointRm,
                LocalResponse::EndpointsRemoved(vec!["web1".into(), "db".into()])
            )
            .unwrap(),
            "web1\ndb\n"
        );

        let t = render(
            &Render::EndpointInterfaces,
            LocalResponse::Endpoint(eps[0].clone()),
        )
        .unwrap();
        assert_eq!(
            t,
            "INTERFACE  NETWORK   ADDRESS      GATEWAY   MAC                MTU\n\
             eth0       backend   10.0.1.2/24  10.0.1.1  02:42:0a:00:01:02  1450\n\
             eth1       frontend  10.0.2.5/24  10.0.2.1  02:42:0a:00:02:05  1450\n"
        );
    }

    #[test]
    fn endpoint_commands_refuse_other_answers() {
        let err = render(&Render::EndpointInterfaces, LocalResponse::Left).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(err.to_string().contains("(Left) where Endpoint"), "{err}");
        let err = render(
            &Render::EndpointLs {
                quiet: false,
                format: ListFormat::Table,
            },
            LocalResponse::EndpointsRemoved(vec![]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("(EndpointsRemoved) where Endpoints"),
            "{err}"
        );
    }
}
