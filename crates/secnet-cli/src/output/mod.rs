//! Everything `secnet` shows on stdout: rendering of the daemon's answers (pure, so tested)
//! and the one function that writes them.
//!
//! [`render`] hands each answer to the module of its command group: [`cluster`] (`init`,
//! `join`, `join-token`, `leave`, `status`), [`node`], [`network`], [`endpoint`], [`key`] and
//! [`tunnel`]. The helpers they share (tables, JSON, lines) are here.

mod cluster;
mod endpoint;
mod key;
mod network;
mod node;
pub mod service;
#[cfg(test)]
mod test_fixtures;
mod tunnel;

use std::io::Write;

use secnet_api::LocalResponse;
use serde::Serialize;

use crate::cli::Render;
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
    match how {
        Render::Init
        | Render::Join
        | Render::JoinToken { .. }
        | Render::Leave
        | Render::Status { .. } => cluster::render(how, response),
        Render::NodeLs { .. }
        | Render::NodeInspect { .. }
        | Render::NodePromote
        | Render::NodeDemote
        | Render::NodeRm
        | Render::NodeRotateKey => node::render(how, response),
        Render::NetworkCreate
        | Render::NetworkLs { .. }
        | Render::NetworkInspect { .. }
        | Render::NetworkRm => network::render(how, response),
        Render::EndpointCreate { .. }
        | Render::EndpointLs { .. }
        | Render::EndpointInspect { .. }
        | Render::EndpointRm
        | Render::EndpointInterfaces => endpoint::render(how, response),
        Render::Keys { .. } => key::render(how, response),
        Render::Tunnel { .. } => tunnel::render(how, response),
        Render::ServiceCreate
        | Render::ServiceLs { .. }
        | Render::ServicePs { .. }
        | Render::ServiceInspect { .. }
        | Render::ServiceScale
        | Render::ServiceUpdate
        | Render::ServiceRm => service::render(how, response),
    }
}

/// The error for an answer that does not fit the command.
fn unexpected(how: &Render, other: &LocalResponse) -> CliError {
    CliError::UnexpectedResponse {
        expected: expected_response(how),
        got: response_name(other).into(),
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
        Render::ServiceCreate
        | Render::ServiceLs { .. }
        | Render::ServiceInspect { .. }
        | Render::ServiceScale
        | Render::ServiceUpdate => "Services",
        Render::ServicePs { .. } => "Tasks",
        Render::ServiceRm => "ServicesRemoved",
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
        LocalResponse::Services(_) => "Services",
        LocalResponse::Tasks(_) => "Tasks",
        LocalResponse::ServicesRemoved(_) => "ServicesRemoved",
        LocalResponse::TaskLogs(_) => "TaskLogs",
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use test_fixtures::{network, node};

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
}
