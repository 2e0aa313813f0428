//! Everything `secnet` shows on stdout: rendering of the daemon's answers (pure, so tested)
//! and the one function that writes them.

use std::io::Write;

use secnet_api::{EndpointInfo, InterfaceInfo, LocalResponse, NetworkInfo, NodeInfo, StatusInfo};
use serde::Serialize;

use crate::cli::{ListFormat, Render};
use crate::error::CliError;

/// Writes `text` to stdout. A closed pipe (`secnet node ls | head -1`) is not an error.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Output(e)),
        _ => Ok(()),
    }
}

/// The text shown for the daemon's answer, or an error when the answer does not fit the
/// command.
pub fn render(how: &Render, response: LocalResponse) -> Result<String, CliError> {
    match (how, response) {
        (
            Render::Init,
            LocalResponse::Initialized {
                node_id,
                join_command,
                ..
            },
        ) => Ok(format!(
            "Cluster initialized: current node ({node_id}) is now a manager.\n\
             \n\
             To add a worker to this cluster, run the following command:\n\
             \n    {join_command}\n\
             \n\
             To add a manager to this cluster, run 'secnet join-token manager' and follow the \
             instructions.\n"
        )),
        (Render::Join, LocalResponse::Joined { role, .. }) => {
            Ok(format!("This node joined a cluster as a {role}.\n"))
        }
        (
            Render::JoinToken {
                role,
                quiet,
                rotate,
            },
            LocalResponse::JoinToken { token, command },
        ) => {
            if *quiet {
                return Ok(format!("{token}\n"));
            }
            let mut s = String::new();
            if *rotate {
                s.push_str(&format!("Successfully rotated {role} join token.\n\n"));
            }
            s.push_str(&format!(
                "To add a {role} to this cluster, run the following command:\n\n    {command}\n"
            ));
            Ok(s)
        }
        (Render::Leave, LocalResponse::Left) => Ok("Node left the cluster.\n".into()),
        (Render::NodeLs { quiet, format }, LocalResponse::Nodes(nodes)) => {
            if *quiet {
                Ok(lines(nodes.iter().map(|n| n.id.as_str())))
            } else {
                match format {
                    ListFormat::Table => Ok(node_table(&nodes)),
                    ListFormat::Json => json_line(&nodes),
                }
            }
        }
        (Render::NodeInspect { compact }, LocalResponse::Nodes(nodes)) => {
            json_doc(&nodes, *compact)
        }
        (Render::NodePromote, LocalResponse::NodesChanged(ids)) => Ok(ids
            .iter()
            .map(|id| format!("Node {id} promoted to a manager in the cluster.\n"))
            .collect()),
        (Render::NodeDemote, LocalResponse::NodesChanged(ids)) => Ok(ids
            .iter()
            .map(|id| format!("Manager {id} demoted in the cluster.\n"))
            .collect()),
        (Render::NodeRm, LocalResponse::NodesChanged(ids)) => {
            Ok(lines(ids.iter().map(String::as_str)))
        }
        (Render::NetworkCreate, LocalResponse::Network(net)) => Ok(format!("{}\n", net.id)),
        (Render::NetworkLs { quiet, format }, LocalResponse::Networks(nets)) => {
            if *quiet {
                Ok(lines(nets.iter().map(|n| n.id.as_str())))
            } else {
                match format {
                    ListFormat::Table => Ok(network_table(&nets)),
                    ListFormat::Json => json_line(&nets),
                }
            }
        }
        (Render::NetworkInspect { compact }, LocalResponse::Networks(nets)) => {
            json_doc(&nets, *compact)
        }
        (Render::NetworkInspect { compact }, LocalResponse::Network(net)) => {
            json_doc(&[net], *compact)
        }
        (Render::NetworkRm, LocalResponse::NetworksRemoved(names)) => {
            Ok(lines(names.iter().map(String::as_str)))
        }
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
        (Render::Keys { format }, LocalResponse::Keys(keys)) => match format {
            ListFormat::Table => Ok(table(
                &["EPOCH", "STATE", "CREATED", "PROMOTED", "INSTALLED ON"],
                &keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.epoch.to_string(),
                            k.state.clone(),
                            k.created.clone(),
                            k.promoted.clone().unwrap_or_else(|| "-".into()),
                            format!("{}/{} nodes", k.installed_on, k.nodes),
                        ]
                    })
                    .collect::<Vec<_>>(),
            )),
            ListFormat::Json => json_line(&keys),
        },
        (Render::NodeRotateKey, LocalResponse::WireguardKey(k)) => Ok(format!(
            "Node {} ({}) has a new WireGuard key.\n  public key: {}\n  previous:   {}\n",
            k.node, k.hostname, k.public_key, k.previous_public_key
        )),
        (Render::Tunnel { format }, LocalResponse::Tunnel(t)) => match format {
            ListFormat::Json => json_line(&t),
            ListFormat::Table => {
                let dash = || "-".to_string();
                let mut out = format!(
                    "Endpoint: {}  tunnel address {}  key epoch {}  public key {}\n",
                    if t.up {
                        t.listen.clone().unwrap_or_else(dash)
                    } else {
                        "down".into()
                    },
                    t.tunnel_ip.map(|i| i.to_string()).unwrap_or_else(dash),
                    t.key_epoch.map(|e| e.to_string()).unwrap_or_else(dash),
                    t.public_key.clone().unwrap_or_else(dash),
                );
                out.push_str(&format!(
                    "Dropped: {} garbage, {} from unknown keys, {} spoofed sources, {} rate-limited handshakes\n",
                    t.garbage, t.unknown_peer, t.disallowed_source, t.rate_limited
                ));
                out.push_str(&format!(
                    "Strict mode dropped: {} encrypted VXLAN packets arriving, {} leaving outside the tunnel\n\n",
                    t.strict_dropped_in, t.strict_dropped_out
                ));
                out.push_str(&table(
                    &[
                        "NODE",
                        "HOSTNAME",
                        "ENDPOINT",
                        "TUNNEL IP",
                        "KEY EPOCH",
                        "HANDSHAKE",
                        "RX",
                        "TX",
                        "FAILURES",
                        "INVALID",
                    ],
                    &t.peers
                        .iter()
                        .map(|p| {
                            vec![
                                p.node.chars().take(12).collect(),
                                p.hostname.clone(),
                                p.endpoint.clone(),
                                p.tunnel_ip.to_string(),
                                p.key_epoch
                                    .map(|e| e.to_string())
                                    .unwrap_or_else(|| "-".into()),
                                p.last_handshake_secs
                                    .map(|s| format!("{s}s ago"))
                                    .unwrap_or_else(|| "never".into()),
                                p.rx_bytes.to_string(),
                                p.tx_bytes.to_string(),
                                p.handshake_failures.to_string(),
                                p.dropped_invalid.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ));
                Ok(out)
            }
        },
        (Render::Status { format }, LocalResponse::Status(status)) => match format {
            ListFormat::Table => Ok(status_text(&status)),
            ListFormat::Json => json_line(&status),
        },
        (how, other) => Err(CliError::UnexpectedResponse {
            expected: expected_response(how),
            got: response_name(&other).into(),
        }),
    }
}

fn expected_response(how: &Render) -> &'static str {
    match how {
        Render::Init => "Initialized",
        Render::Join => "Joined",
        Render::JoinToken { .. } => "JoinToken",
        Render::Leave => "Left",
        Render::NodeLs { .. } | Render::NodeInspect { .. } => "Nodes",
        Render::NodePromote | Render::NodeDemote | Render::NodeRm => "NodesChanged",
        Render::NetworkCreate => "Network",
        Render::NetworkLs { .. } | Render::NetworkInspect { .. } => "Networks",
        Render::NetworkRm => "NetworksRemoved",
        Render::EndpointCreate { .. } | Render::EndpointInterfaces => "Endpoint",
        Render::EndpointLs { .. } | Render::EndpointInspect { .. } => "Endpoints",
        Render::EndpointRm => "EndpointsRemoved",
        Render::Status { .. } => "Status",
        Render::Keys { .. } => "Keys",
        Render::Tunnel { .. } => "Tunnel",
        Render::NodeRotateKey => "WireguardKey",
    }
}

pub fn response_name(r: &LocalResponse) -> &'static str {
    match r {
        LocalResponse::Initialized { .. } => "Initialized",
        LocalResponse::Joined { .. } => "Joined",
        LocalResponse::JoinToken { .. } => "JoinToken",
        LocalResponse::Left => "Left",
        LocalResponse::Nodes(_) => "Nodes",
        LocalResponse::NodesChanged(_) => "NodesChanged",
        LocalResponse::Network(_) => "Network",
        LocalResponse::Networks(_) => "Networks",
        LocalResponse::NetworksRemoved(_) => "NetworksRemoved",
        LocalResponse::Endpoint(_) => "Endpoint",
        LocalResponse::Endpoints(_) => "Endpoints",
        LocalResponse::EndpointsRemoved(_) => "EndpointsRemoved",
        LocalResponse::Status(_) => "Status",
        LocalResponse::Keys(_) => "Keys",
        LocalResponse::Tunnel(_) => "Tunnel",
        LocalResponse::WireguardKey(_) => "WireguardKey",
    }
}

fn lines<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.map(|s| format!("{s}\n")).collect()
}

fn to_json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> Result<String, CliError> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.map(|s| s + "\n")
        .map_err(|e| CliError::Output(std::io::Error::other(e)))
}

/// `--format json` of the listings: one line.
fn json_line<T: Serialize + ?Sized>(value: &T) -> Result<String, CliError> {
    to_json(value, false)
}

/// The inspect commands: an indented JSON array, or one line with `--format json`.
fn json_doc<T: Serialize + ?Sized>(value: &T, compact: bool) -> Result<String, CliError> {
    to_json(value, !compact)
}

/// Aligned columns: every column as wide as its widest cell, two spaces between columns,
/// no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &mut dyn Iterator<Item = &str>| {
        let mut line = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = w.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(&mut headers.iter().copied());
    for row in rows {
        push_row(&mut row.iter().map(String::as_str));
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The MANAGER STATUS column: Leader, Reachable or Unreachable for managers, empty for
/// workers.
fn manager_status(n: &NodeInfo) -> &'static str {
    if n.role != "manager" {
        ""
    } else if n.leader {
        "Leader"
    } else if n.status == "ready" {
        "Reachable"
    } else {
        "Unreachable"
    }
}

/// `node ls` as a table.
pub fn node_table(nodes: &[NodeInfo]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                if n.is_self {
                    format!("{} *", n.id)
                } else {
                    n.id.clone()
                },
                n.hostname.clone(),
                capitalize(&n.status),
                n.role.clone(),
                manager_status(n).to_string(),
                n.advertise_addr.clone(),
                n.data_path_addr.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "HOSTNAME",
            "STATUS",
            "ROLE",
            "MANAGER STATUS",
            "ADVERTISE ADDR",
            "DATA PATH ADDR",
        ],
        &rows,
    )
}

/// Network IDs in the table are shortened to this many characters, as Docker does.
pub const SHORT_ID_LEN: usize = 12;

/// `network ls` as a table.
pub fn network_table(nets: &[NetworkInfo]) -> String {
    let rows: Vec<Vec<String>> = nets
        .iter()
        .map(|n| {
            vec![
                n.id.chars().take(SHORT_ID_LEN).collect(),
                n.name.clone(),
                n.driver.clone(),
                n.scope.clone(),
                n.subnet.to_string(),
                n.vni.to_string(),
                n.encrypted.to_string(),
                n.mtu.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NETWORK ID",
            "NAME",
            "DRIVER",
            "SCOPE",
            "SUBNET",
            "VNI",
            "ENCRYPTED",
            "MTU",
        ],
        &rows,
    )
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

/// `status` for humans: `Key: value` lines with aligned values; unknown values show as `-`.
pub fn status_text(s: &StatusInfo) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let pairs: Vec<(&str, String)> = vec![
        ("State", s.state.clone()),
        ("Node ID", opt(&s.node_id)),
        ("Hostname", s.hostname.clone()),
        ("Role", opt(&s.role)),
        ("Cluster ID", opt(&s.cluster_id)),
        ("Leader ID", opt(&s.leader_id)),
        ("Leader address", opt(&s.leader_addr)),
        (
            "Managers",
            format!("{} ({} reachable)", s.managers, s.managers_reachable),
        ),
        ("Nodes", s.nodes.to_string()),
        ("Networks", s.networks.to_string()),
        ("Advertise address", opt(&s.advertise_addr)),
        ("Data path address", opt(&s.data_path_addr)),
        ("Applied index", s.applied_index.to_string()),
        ("Run directory", s.run_dir.clone()),
        (
            "Data path",
            if s.dataplane_errors.is_empty() {
                format!("in sync ({} reconcile passes)", s.dataplane_passes)
            } else {
                format!(
                    "{} errors: {}",
                    s.dataplane_errors.len(),
                    s.dataplane_errors.join("; ")
                )
            },
        ),
    ];
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let mut out: String = pairs
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect();
    if s.state == "inactive" {
        out.push_str(
            "\nThis node is not in a cluster: run 'secnet init' to create one, or \
             'secnet join' to join one.\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use secnet_model::Role;
    use std::collections::BTreeMap;

    fn node(id: &str, host: &str, role: &str, status: &str, leader: bool, me: bool) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            hostname: host.into(),
            role: role.into(),
            status: status.into(),
            leader,
            is_self: me,
            advertise_addr: "192.0.2.11:2377".into(),
            data_path_addr: "192.0.2.11".into(),
            joined: "2024-05-01T10:00:00Z".into(),
            cert_fingerprint: "ab12".into(),
        }
    }

    fn network(id: &str, name: &str) -> NetworkInfo {
        NetworkInfo {
            id: id.into(),
            name: name.into(),
            driver: "overlay".into(),
            scope: "swarm".into(),
            subnet: "10.0.1.0/24".parse().unwrap(),
            gateway: "10.0.1.1".parse().unwrap(),
            vni: 4097,
            encrypted: true,
            mtu: 1390,
            attachable: false,
            labels: BTreeMap::from([("team".to_string(), "db".to_string())]),
            created: "2024-05-01T10:00:00Z".into(),
        }
    }

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

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "LONG HEADER", "C"],
            &[
                vec!["xxxx".into(), "y".into(), "z".into()],
                vec!["x".into(), "".into(), "".into()],
            ],
        );
        assert_eq!(t, "A     LONG HEADER  C\nxxxx  y            z\nx\n");
    }

    #[test]
    fn node_table_marks_self_and_manager_status() {
        let nodes = vec![
            node("n1aaaa", "manager1", "manager", "ready", true, true),
            node("n2bbbb", "manager2", "manager", "ready", false, false),
            node("n3cccc", "manager3", "manager", "down", false, false),
            node(
                "n4dddd",
                "worker-long-name",
                "worker",
                "ready",
                false,
                false,
            ),
        ];
        let t = node_table(&nodes);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            "ID        HOSTNAME          STATUS  ROLE     MANAGER STATUS  ADVERTISE ADDR   \
             DATA PATH ADDR"
        );
        assert_eq!(
            lines[1],
            "n1aaaa *  manager1          Ready   manager  Leader          192.0.2.11:2377  \
             192.0.2.11"
        );
        assert!(lines[2].starts_with("n2bbbb    manager2          Ready   manager  Reachable "));
        assert!(lines[3].starts_with("n3cccc    manager3          Down    manager  Unreachable "));
        assert!(lines[4]
            .starts_with("n4dddd    worker-long-name  Ready   worker                   192"));
        // Every column starts at the same offset on every line.
        let col = lines[0].find("ADVERTISE ADDR").unwrap();
        for l in &lines[1..] {
            assert_eq!(l.find("192.0.2.11:2377"), Some(col), "{l}");
        }
        assert!(t.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn node_ls_quiet_and_json() {
        let nodes = vec![
            node("n1", "h1", "manager", "ready", true, true),
            node("n2", "h2", "worker", "ready", false, false),
        ];
        let quiet = render(
            &Render::NodeLs {
                quiet: true,
                format: ListFormat::Table,
            },
            LocalResponse::Nodes(nodes.clone()),
        )
        .unwrap();
        assert_eq!(quiet, "n1\nn2\n");
        let json = render(
            &Render::NodeLs {
                quiet: false,
                format: ListFormat::Json,
            },
            LocalResponse::Nodes(nodes.clone()),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 2);
        let keys: Vec<&str> = arr[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "id",
            "hostname",
            "role",
            "status",
            "leader",
            "self",
            "advertise_addr",
            "data_path_addr",
            "joined",
            "cert_fingerprint",
        ] {
            assert!(keys.contains(&k), "missing {k} in {keys:?}");
        }
        assert_eq!(arr[0]["self"], true);
        let back: Vec<NodeInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, nodes);
    }

    #[test]
    fn network_table_shortens_ids() {
        let nets = vec![
            network("0123456789abcdef0123", "backend"),
            network("short", "a-much-longer-name"),
        ];
        let t = network_table(&nets);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NETWORK ID    NAME                DRIVER   SCOPE  SUBNET       VNI   ENCRYPTED  MTU"
        );
        assert_eq!(
            lines[1],
            "0123456789ab  backend             overlay  swarm  10.0.1.0/24  4097  true       1390"
        );
        assert!(lines[2].starts_with("short         a-much-longer-name  overlay"));
    }

    #[test]
    fn network_json_has_documented_keys_and_full_ids() {
        let nets = vec![network("0123456789abcdef0123", "backend")];
        let json = render(
            &Render::NetworkLs {
                quiet: false,
                format: ListFormat::Json,
            },
            LocalResponse::Networks(nets.clone()),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let obj = v.as_array().unwrap()[0].as_object().unwrap();
        for k in [
            "id",
            "name",
            "driver",
            "scope",
            "subnet",
            "gateway",
            "vni",
            "encrypted",
            "mtu",
            "attachable",
            "labels",
            "created",
        ] {
            assert!(obj.contains_key(k), "missing {k}");
        }
        assert_eq!(obj["id"], "0123456789abcdef0123");
        assert_eq!(obj["subnet"], "10.0.1.0/24");
        let back: Vec<NetworkInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, nets);
        let quiet = render(
            &Render::NetworkLs {
                quiet: true,
                format: ListFormat::Table,
            },
            LocalResponse::Networks(nets),
        )
        .unwrap();
        assert_eq!(quiet, "0123456789abcdef0123\n");
    }

    #[test]
    fn inspect_is_a_pretty_array_by_default() {
        let nets = vec![network("abc", "backend")];
        let pretty = render(
            &Render::NetworkInspect { compact: false },
            LocalResponse::Networks(nets.clone()),
        )
        .unwrap();
        assert!(pretty.starts_with("[\n  {\n"), "{pretty}");
        let compact = render(
            &Render::NetworkInspect { compact: true },
            LocalResponse::Network(nets[0].clone()),
        )
        .unwrap();
        assert_eq!(compact.lines().count(), 1);
        let a: serde_json::Value = serde_json::from_str(&pretty).unwrap();
        let b: serde_json::Value = serde_json::from_str(&compact).unwrap();
        assert_eq!(a, b);
        let nodes = render(
            &Render::NodeInspect { compact: false },
            LocalResponse::Nodes(vec![node("n1", "h", "worker", "ready", false, false)]),
        )
        .unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&nodes)
            .unwrap()
            .is_array());
    }

    #[test]
    fn init_and_join_token_messages() {
        let s = render(
            &Render::Init,
            LocalResponse::Initialized {
                node_id: "abc123".into(),
                cluster_id: "c1".into(),
                join_command: "secnet join --token SNTKN-1-xyz 192.0.2.11:2377".into(),
            },
        )
        .unwrap();
        assert_eq!(
            s,
            "Cluster initialized: current node (abc123) is now a manager.\n\
             \n\
             To add a worker to this cluster, run the following command:\n\
             \n\
             \x20   secnet join --token SNTKN-1-xyz 192.0.2.11:2377\n\
             \n\
             To add a manager to this cluster, run 'secnet join-token manager' and follow the \
             instructions.\n"
        );
        let resp = || LocalResponse::JoinToken {
            token: "SNTKN-1-m".into(),
            command: "secnet join --token SNTKN-1-m 192.0.2.11:2377".into(),
        };
        let jt = |quiet, rotate| Render::JoinToken {
            role: Role::Manager,
            quiet,
            rotate,
        };
        assert_eq!(
            render(&jt(false, false), resp()).unwrap(),
            "To add a manager to this cluster, run the following command:\n\n    \
             secnet join --token SNTKN-1-m 192.0.2.11:2377\n"
        );
        assert_eq!(render(&jt(true, false), resp()).unwrap(), "SNTKN-1-m\n");
        assert_eq!(render(&jt(true, true), resp()).unwrap(), "SNTKN-1-m\n");
        assert!(render(&jt(false, true), resp())
            .unwrap()
            .starts_with("Successfully rotated manager join token.\n\nTo add a manager"));
    }

    #[test]
    fn simple_messages() {
        let joined = LocalResponse::Joined {
            node_id: "n".into(),
            role: "worker".into(),
            cluster_id: "c".into(),
        };
        assert_eq!(
            render(&Render::Join, joined).unwrap(),
            "This node joined a cluster as a worker.\n"
        );
        assert_eq!(
            render(&Render::Leave, LocalResponse::Left).unwrap(),
            "Node left the cluster.\n"
        );
        assert_eq!(
            render(
                &Render::NetworkRm,
                LocalResponse::NetworksRemoved(vec!["a".into(), "b".into()])
            )
            .unwrap(),
            "a\nb\n"
        );
        assert_eq!(
            render(
                &Render::NetworkCreate,
                LocalResponse::Network(network("abcdef", "n"))
            )
            .unwrap(),
            "abcdef\n"
        );
        assert_eq!(
            render(
                &Render::NodePromote,
                LocalResponse::NodesChanged(vec!["w1".into()])
            )
            .unwrap(),
            "Node w1 promoted to a manager in the cluster.\n"
        );
        assert_eq!(
            render(
                &Render::NodeRm,
                LocalResponse::NodesChanged(vec!["w1".into()])
            )
            .unwrap(),
            "w1\n"
        );
    }

    #[test]
    fn wrong_response_is_an_internal_error() {
        let err = render(&Render::NetworkCreate, LocalResponse::Left).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(err.to_string().contains("Left"), "{err}");
    }

    #[test]
    fn status_text_aligns_and_marks_missing() {
        let s = StatusInfo {
            state: "inactive".into(),
            node_id: None,
            hostname: "box".into(),
            role: None,
            cluster_id: None,
            leader_id: None,
            leader_addr: None,
            managers: 0,
            managers_reachable: 0,
            nodes: 0,
            networks: 0,
            advertise_addr: None,
            data_path_addr: None,
            applied_index: 0,
            dataplane_passes: 0,
            dataplane_errors: Vec::new(),
            run_dir: "/run/secnet".into(),
        };
        let t = status_text(&s);
        assert!(
            t.starts_with("State:             inactive\nNode ID:           -\n"),
            "{t}"
        );
        assert!(t.contains("Managers:          0 (0 reachable)\n"), "{t}");
        assert!(t.contains("Run directory:     /run/secnet\n"), "{t}");
        assert!(t.contains("secnet init"), "{t}");
        let json = render(
            &Render::Status {
                format: ListFormat::Json,
            },
            LocalResponse::Status(s.clone()),
        )
        .unwrap();
        let back: StatusInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
