//! What `secnet service ...` shows.

use secnet_api::{LocalResponse, ServiceInfo, TaskInfo};

use super::network::SHORT_ID_LEN;
use super::{json_doc, json_line, lines, table, unexpected};
use crate::cli::{ListFormat, Render};
use crate::error::CliError;

/// The text shown for the answer to a `secnet service` command.
pub(super) fn render(how: &Render, response: LocalResponse) -> Result<String, CliError> {
    match (how, response) {
        (
            Render::ServiceCreate | Render::ServiceScale | Render::ServiceUpdate,
            LocalResponse::Services(svcs),
        ) => Ok(lines(svcs.iter().map(|s| s.id.as_str()))),
        (Render::ServiceLs { quiet, format }, LocalResponse::Services(svcs)) => {
            if *quiet {
                Ok(lines(svcs.iter().map(|s| s.id.as_str())))
            } else {
                match format {
                    ListFormat::Table => Ok(service_table(&svcs)),
                    ListFormat::Json => json_line(&svcs),
                }
            }
        }
        (Render::ServicePs { quiet, format }, LocalResponse::Tasks(tasks)) => {
            if *quiet {
                Ok(lines(tasks.iter().map(|t| t.id.as_str())))
            } else {
                match format {
                    ListFormat::Table => Ok(task_table(&tasks)),
                    ListFormat::Json => json_line(&tasks),
                }
            }
        }
        (Render::ServiceInspect { compact }, LocalResponse::Services(svcs)) => {
            json_doc(&svcs, *compact)
        }
        (Render::ServiceRm, LocalResponse::ServicesRemoved(names)) => {
            Ok(lines(names.iter().map(String::as_str)))
        }
        (how, other) => Err(unexpected(how, &other)),
    }
}

/// `service ls`: ID NAME MODE REPLICAS (running/desired) NETWORKS.
pub fn service_table(svcs: &[ServiceInfo]) -> String {
    let rows: Vec<Vec<String>> = svcs
        .iter()
        .map(|s| {
            vec![
                s.id.chars().take(SHORT_ID_LEN).collect(),
                s.name.clone(),
                s.mode.clone(),
                format!("{}/{}", s.running, s.desired),
                s.networks.join(","),
            ]
        })
        .collect();
    table(&["ID", "NAME", "MODE", "REPLICAS", "NETWORKS"], &rows)
}

/// `service ps`: ID NAME NODE DESIRED STATE CURRENT STATE IP ERROR.
pub fn task_table(tasks: &[TaskInfo]) -> String {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let error = match t.state.as_str() {
                "failed" | "rejected" | "orphaned" | "pending" => t.message.clone(),
                _ => String::new(),
            };
            vec![
                t.id.chars().take(SHORT_ID_LEN).collect(),
                t.name.clone(),
                t.node.clone(),
                t.desired.clone(),
                format!("{} {}", t.state, t.since),
                t.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                error,
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "NODE",
            "DESIRED STATE",
            "CURRENT STATE",
            "IP",
            "ERROR",
        ],
        &rows,
    )
}

/// `overall progress: 1 out of 2 tasks` (shown while `service create` waits).
pub fn progress_line(s: &ServiceInfo) -> String {
    format!(
        "overall progress: {} out of {} tasks",
        s.up_to_date.min(s.desired),
        s.desired
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn svc(name: &str, running: u32, desired: u32) -> ServiceInfo {
        ServiceInfo {
            id: "0123456789abcdef01234567".into(),
            name: name.into(),
            mode: "replicated".into(),
            desired,
            running,
            up_to_date: running,
            networks: vec!["apps".into(), "db".into()],
            command: vec!["sleep".into(), "1".into()],
            env: Default::default(),
            constraints: Vec::new(),
            restart_condition: "any".into(),
            restart_delay_secs: 5,
            restart_max_attempts: None,
            endpoint_mode: "vip".into(),
            version: 1,
            created: "2026-12-04T00:00:00Z".into(),
            updated: "2026-12-04T00:00:00Z".into(),
        }
    }

    #[test]
    fn services_and_tasks_show_as_docker_shows_them() {
        let t = service_table(&[svc("web", 1, 2)]);
        assert_eq!(
            t,
            "ID            NAME  MODE        REPLICAS  NETWORKS\n\
             0123456789ab  web   replicated  1/2       apps,db\n"
        );
        let task = TaskInfo {
            id: "abcdef0123456789abcdef01".into(),
            name: "web.1".into(),
            service: "web".into(),
            node: "".into(),
            desired: "running".into(),
            state: "pending".into(),
            since: "2026-12-04T00:00:01Z".into(),
            message: "no suitable node: no ready node satisfies node.hostname==x".into(),
            exit_code: None,
            endpoint: None,
            ip: None,
        };
        let t = task_table(&[task]);
        assert!(
            t.contains("web.1") && t.contains("pending 2026-12-04T00:00:01Z"),
            "{t}"
        );
        assert!(t.contains("node.hostname==x"), "{t}");
        assert_eq!(
            progress_line(&svc("web", 3, 2)),
            "overall progress: 2 out of 2 tasks"
        );
    }
}
