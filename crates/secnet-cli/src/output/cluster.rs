//! What the cluster-level verbs show: `init`, `join`, `join-token`, `leave` and `status`.

use secnet_api::{LocalResponse, StatusInfo};

use super::{json_line, unexpected};
use crate::cli::{ListFormat, Render};
use crate::error::CliError;

/// The text shown for the answer to `init`, `join`, `join-token`, `leave` or `status`.
pub(super) fn render(how: &Render, response: LocalResponse) -> Result<String, CliError> {
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
        (Render::Status { format }, LocalResponse::Status(status)) => match format {
            ListFormat::Table => Ok(status_text(&status)),
            ListFormat::Json => json_line(&status),
        },
        (how, other) => Err(unexpected(how, &other)),
    }
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
    use crate::output::render;
    use secnet_model::Role;

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
