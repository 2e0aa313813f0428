//! `secnet service logs`: the output of a service's tasks on this node, each line prefixed
//! with the task's name, once or (`--follow`) as it comes. A task on another node keeps its
//! output there; the command says where.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use secnet_api::{ApiError, LocalRequest, LocalResponse, TaskLog};

use crate::cli::SHORT_TIMEOUT;
use crate::client;
use crate::error::CliError;

const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// The lines of `log.text`, each prefixed with `NAME@NODE | `.
pub fn prefixed(log: &TaskLog) -> String {
    log.text
        .lines()
        .map(|l| format!("{}@{} | {l}\n", log.name, log.node))
        .collect()
}

pub async fn logs(socket: &Path, service: &str, follow: bool) -> Result<(), CliError> {
    let mut since: BTreeMap<String, u64> = BTreeMap::new();
    let mut told = BTreeSet::new();
    loop {
        let request = LocalRequest::ServiceLogs {
            service: service.to_string(),
            since: since.clone(),
        };
        let LocalResponse::TaskLogs(logs) = client::call(socket, &request, SHORT_TIMEOUT).await?
        else {
            return Err(CliError::Api(ApiError::internal("no logs in the answer")));
        };
        for log in &logs {
            if log.here {
                crate::output::print(&prefixed(log))?;
                since.insert(log.task_id.clone(), log.offset);
            } else if !log.node.is_empty() && told.insert(log.task_id.clone()) {
                eprintln!(
                    "{} runs on {}: its output is kept there (run `secnet service logs {service}` on {})",
                    log.name, log.node, log.node
                );
            }
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_names_its_task() {
        let log = TaskLog {
            task_id: "t".into(),
            name: "web.1".into(),
            node: "h2".into(),
            here: true,
            offset: 12,
            text: "one\ntwo\n".into(),
        };
        assert_eq!(prefixed(&log), "web.1@h2 | one\nweb.1@h2 | two\n");
    }
}
