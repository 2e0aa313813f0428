//! `secnet node ...`: the nodes of the cluster.

use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};
use secnet_api::LocalRequest;

use super::{InspectFormatArg, Invocation, ListFormat, Render};

pub(super) const NODE_LONG_ABOUT: &str = "\
Manage the nodes of the cluster. `ls` and `inspect` work on any node, workers included; \
`promote`, `demote` and `rm` must run on a manager.";

/// `secnet node ...`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the nodes of the cluster
    #[command(
        visible_alias = "list",
        long_about = "\
List the nodes of the cluster. The node you are on is marked with `*` after its ID. Works \
on any node, workers included.

MANAGER STATUS is Leader for the Raft leader, Reachable or Unreachable for the other \
managers, and empty for workers.

Examples:
  secnet node ls
  secnet node ls -q
  secnet node ls --format json"
    )]
    Ls(NodeLsArgs),

    /// Show details of one or more nodes as JSON
    #[command(long_about = "\
Show details of one or more nodes (by ID, unique ID prefix or hostname) as a JSON array. \
Works on any node, workers included.

Examples:
  secnet node inspect worker1
  secnet node inspect --format json 3f2a worker2")]
    Inspect(NodeInspectArgs),

    /// Make one or more workers managers
    #[command(long_about = "\
Make one or more workers managers: they become Raft voters and accept commands. Run it on \
a manager.

Keep an odd number of managers (3 or 5): a cluster stays writable while a majority of them \
is reachable.

Example:
  secnet node promote worker1 worker2")]
    Promote(NodeTargets),

    /// Make one or more managers workers
    #[command(long_about = "\
Make one or more managers workers: they leave the Raft voters. Run it on a manager. The \
last manager cannot be demoted.

Example:
  secnet node demote manager3")]
    Demote(NodeTargets),

    /// Remove one or more workers from the cluster
    #[command(
        visible_alias = "remove",
        long_about = "\
Remove one or more workers from the cluster. Run it on a manager.

A removed node's certificate is refused from then on, so it can no longer talk to the \
cluster, and its endpoints are removed everywhere: from the cluster state, and from the \
overlay data path of the other nodes, which stop sending it overlay traffic.

Managers are refused: demote them first (`secnet node demote`). Without --force, a node \
whose status is not down is refused: stop it first, or rather run `secnet leave` on it, \
which removes it from the cluster too.

Examples:
  secnet node rm worker3
  secnet node rm --force 3f2a"
    )]
    Rm(NodeRmArgs),

    /// Replace a node's WireGuard static key, without interrupting traffic
    #[command(
        name = "rotate-key",
        long_about = "\
Replace a node's WireGuard static key (this node's when NODE is left out).

The node makes the new key itself (the private half never leaves it; it is sealed at rest), \
registers the public half through the cluster state, and keeps the old key for the sessions \
that use it. Its peers open new sessions to the new key beside the old ones and move their \
traffic over once the new handshakes complete, so no packet is lost. The command returns when \
the node has registered its new key (within 30 s, or it says what it waits for: a node that \
is down rotates when it comes back). Workers can rotate only their own key.

Examples:
  secnet node rotate-key
  secnet node rotate-key worker3"
    )]
    RotateKey(NodeRotateKeyArgs),
}

/// Options of `secnet node rotate-key`.
#[derive(Debug, Args)]
pub struct NodeRotateKeyArgs {
    /// The node whose key to replace: ID, unique ID prefix or hostname (default: this node).
    #[arg(value_name = "NODE", value_parser = NonEmptyStringValueParser::new())]
    pub node: Option<String>,
}

/// Options of `secnet node ls`.
#[derive(Debug, Args)]
pub struct NodeLsArgs {
    /// Print only the node IDs, one a line.
    #[arg(short, long, conflicts_with = "format")]
    pub quiet: bool,

    /// Output format: table (aligned columns) or json (a JSON array of nodes).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Options of `secnet node inspect`.
#[derive(Debug, Args)]
pub struct NodeInspectArgs {
    #[command(flatten)]
    pub format: InspectFormatArg,

    /// Nodes to show: ID, unique ID prefix or hostname.
    #[arg(required = true, value_name = "NODE", value_parser = NonEmptyStringValueParser::new())]
    pub nodes: Vec<String>,
}

/// The nodes `promote` / `demote` act on.
#[derive(Debug, Args)]
pub struct NodeTargets {
    /// Nodes: ID, unique ID prefix or hostname.
    #[arg(required = true, value_name = "NODE", value_parser = NonEmptyStringValueParser::new())]
    pub nodes: Vec<String>,
}

/// Options of `secnet node rm`.
#[derive(Debug, Args)]
pub struct NodeRmArgs {
    /// Remove the nodes even if their status is not down (managers are refused all the same).
    #[arg(short, long)]
    pub force: bool,

    /// Nodes to remove: ID, unique ID prefix or hostname.
    #[arg(required = true, value_name = "NODE", value_parser = NonEmptyStringValueParser::new())]
    pub nodes: Vec<String>,
}

impl NodeCommand {
    /// The request of each `secnet node` command.
    pub(super) fn invocation(self) -> Invocation {
        match self {
            NodeCommand::Ls(a) => Invocation::short(
                LocalRequest::NodeLs,
                Render::NodeLs {
                    quiet: a.quiet,
                    format: a.format,
                },
            ),
            NodeCommand::Inspect(a) => Invocation::short(
                LocalRequest::NodeInspect { nodes: a.nodes },
                Render::NodeInspect {
                    compact: a.format.compact(),
                },
            ),
            NodeCommand::Promote(a) => Invocation::short(
                LocalRequest::NodePromote { nodes: a.nodes },
                Render::NodePromote,
            ),
            NodeCommand::Demote(a) => Invocation::short(
                LocalRequest::NodeDemote { nodes: a.nodes },
                Render::NodeDemote,
            ),
            NodeCommand::Rm(a) => Invocation::short(
                LocalRequest::NodeRm {
                    nodes: a.nodes,
                    force: a.force,
                },
                Render::NodeRm,
            ),
            NodeCommand::RotateKey(a) => Invocation {
                request: LocalRequest::NodeRotateKey { node: a.node },
                timeout: Duration::from_secs(45),
                render: Render::NodeRotateKey,
                progress: Some("Rotating the WireGuard key...".into()),
                converge: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::{assert_sends, json, parse, parse_err};

    #[test]
    fn node_commands_parse() {
        let inv = parse(&["node", "ls"]);
        assert_eq!(json(&inv.request), json(&LocalRequest::NodeLs));
        assert_eq!(
            inv.render,
            Render::NodeLs {
                quiet: false,
                format: ListFormat::Table
            }
        );
        assert_eq!(
            parse(&["node", "ls", "-q"]).render,
            Render::NodeLs {
                quiet: true,
                format: ListFormat::Table
            }
        );
        assert_eq!(
            parse(&["node", "ls", "--format", "json"]).render,
            Render::NodeLs {
                quiet: false,
                format: ListFormat::Json
            }
        );
        let e = parse_err(&["node", "ls", "--format", "yaml"]);
        assert!(e.contains("yaml"), "{e}");
        parse_err(&["node", "ls", "-q", "--format", "json"]);

        let inv = parse(&["node", "inspect", "a", "b"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::NodeInspect {
                nodes: vec!["a".into(), "b".into()]
            })
        );
        assert_eq!(inv.render, Render::NodeInspect { compact: false });
        let inv = parse(&["node", "inspect", "--format", "json", "a"]);
        assert_eq!(inv.render, Render::NodeInspect { compact: true });
        parse_err(&["node", "inspect"]);

        assert_sends(
            &["node", "promote", "w1", "w2"],
            &LocalRequest::NodePromote {
                nodes: vec!["w1".into(), "w2".into()],
            },
        );
        assert_sends(
            &["node", "demote", "m3"],
            &LocalRequest::NodeDemote {
                nodes: vec!["m3".into()],
            },
        );
        assert_sends(
            &["node", "rm", "w3"],
            &LocalRequest::NodeRm {
                nodes: vec!["w3".into()],
                force: false,
            },
        );
        assert_sends(
            &["node", "rm", "--force", "w3", "w4"],
            &LocalRequest::NodeRm {
                nodes: vec!["w3".into(), "w4".into()],
                force: true,
            },
        );
        parse_err(&["node", "promote"]);
    }
}
