//! What `secnet node ...` shows.

use secnet_api::{LocalResponse, NodeInfo};

use super::{json_doc, json_line, lines, table, unexpected};
use crate::cli::{ListFormat, Render};
use crate::error::CliError;

/// The text shown for the answer to a `secnet node` command.
pub(super) fn render(how: &Render, response: LocalResponse) -> Result<String, CliError> {
    match (how, response) {
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
        (Render::NodeRotateKey, LocalResponse::WireguardKey(k)) => Ok(format!(
            "Node {} ({}) has a new WireGuard key.\n  public key: {}\n  previous:   {}\n",
            k.node, k.hostname, k.public_key, k.previous_public_key
        )),
        (how, other) => Err(unexpected(how, &other)),
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::output::render;
    use crate::output::test_fixtures::node;

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
}
