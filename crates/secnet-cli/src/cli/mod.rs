//! The command line: clap definitions, value parsers, and the translation of a parsed command
//! into the [`LocalRequest`] sent to the daemon plus how its answer is shown.
//!
//! Every value the CLI can check on its own (CIDRs, ports, durations, `--opt`, `--label`) is
//! checked here by a clap value parser, so a bad value is a usage error (exit code 2) whose
//! message names the value, and nothing is sent to the daemon.
//!
//! Each command group has its own module, holding its clap definitions, its value parsers and
//! its translation into a request: [`cluster`] (`init`, `join`, `join-token`, `leave`,
//! `status`), [`node`], [`network`], [`endpoint`] (with `run` and `exec`), [`key`] and
//! [`tunnel`]; [`parse`] holds the generic value parsers (CIDRs, mask lengths, labels). This
//! module holds the root command, the types the groups share and the dispatch to the groups.

mod cluster;
mod endpoint;
mod key;
mod network;
mod node;
mod parse;
mod service;
#[cfg(test)]
mod test_support;
mod tunnel;

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secnet_api::LocalRequest;
use secnet_model::Role;

use self::cluster::{
    InitArgs, JoinArgs, JoinTokenArgs, LeaveArgs, StatusArgs, INIT_LONG_ABOUT, JOIN_LONG_ABOUT,
    JOIN_TOKEN_LONG_ABOUT, LEAVE_LONG_ABOUT, STATUS_LONG_ABOUT,
};
use self::endpoint::{
    EndpointCommand, ExecArgs, RunArgs, ENDPOINT_LONG_ABOUT, EXEC_LONG_ABOUT, RUN_LONG_ABOUT,
};
use self::key::{KeyCommand, KEY_LONG_ABOUT};
use self::network::{NetworkCommand, NETWORK_LONG_ABOUT};
use self::node::{NodeCommand, NODE_LONG_ABOUT};
use self::service::{ServiceCommand, SERVICE_LONG_ABOUT};
use self::tunnel::{TunnelCommand, TUNNEL_LONG_ABOUT};

/// Where `secnetd` listens unless `--socket` / `SECNET_SOCKET` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/secnet/secnet.sock";

/// How long `init` and `join` may take (certificate issuance, Raft membership change).
pub const LONG_TIMEOUT: Duration = Duration::from_secs(60);
/// How long any other request may take.
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the endpoint requests that change this node's kernel objects (create, rm,
/// connect, disconnect) may take: the daemon answers once the namespace and its interfaces
/// exist, or are gone, on this node.
pub const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(30);

const ROOT_LONG_ABOUT: &str = "\
secnet builds overlay networks across the nodes of a Linux cluster, the way Docker Swarm's \
overlay networks do, without Docker: VXLAN between the nodes, and on each node endpoints \
(network namespaces) attached to the networks. Encrypted networks (--opt encrypted) carry \
their VXLAN through WireGuard tunnels between the nodes, and never in clear.

This command talks to the local secnet daemon (secnetd) over its Unix socket; it must \
usually run as root. Start by creating a cluster on one node with `secnet init`, then add \
the other nodes with the `secnet join` command it prints. Create networks with \
`secnet network create`, and attach this host's programs to them with `secnet endpoint \
create`, `secnet run` and `secnet exec`.

Examples:
  secnet init --advertise-addr eth0
  secnet join --token SNTKN-1-... 192.0.2.11:2377
  secnet node ls
  secnet network create -d overlay --subnet 10.20.0.0/24 backend
  secnet network ls --format json
  secnet run --network backend -- ping -c 3 10.20.0.2

Exit codes:
  0  success
  1  the daemon refused the request (invalid, not found, conflict, denied)
  2  the command line is wrong (unknown flag, bad value)
  3  the daemon or the cluster is unavailable (daemon not running, no quorum, timeout)
  4  internal error (daemon bug, unexpected answer)
`secnet run` and `secnet exec` exit with the code of the command they ran (128+N when \
signal N killed it), and with the codes above when they fail before running it.";

/// The `secnet` command line.
#[derive(Debug, Parser)]
#[command(
    name = "secnet",
    version,
    about = "Manage a secnet cluster and its overlay networks",
    long_about = ROOT_LONG_ABOUT,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Path of the secnet daemon's Unix socket.
    ///
    /// The CLI sends each command to the local secnetd through this socket. The socket is
    /// owned by root, so secnet normally needs root (sudo).
    #[arg(
        long,
        global = true,
        display_order = 1000,
        value_name = "PATH",
        env = "SECNET_SOCKET",
        default_value = DEFAULT_SOCKET
    )]
    pub socket: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new cluster with this node as its first manager
    #[command(long_about = INIT_LONG_ABOUT)]
    Init(InitArgs),

    /// Join this node to an existing cluster
    #[command(long_about = JOIN_LONG_ABOUT)]
    Join(JoinArgs),

    /// Show (or rotate) the token other nodes use to join the cluster (run on a manager)
    #[command(name = "join-token", long_about = JOIN_TOKEN_LONG_ABOUT)]
    JoinToken(JoinTokenArgs),

    /// Leave the cluster
    #[command(long_about = LEAVE_LONG_ABOUT)]
    Leave(LeaveArgs),

    /// Manage the nodes of the cluster
    #[command(subcommand, long_about = NODE_LONG_ABOUT)]
    Node(NodeCommand),

    /// Manage overlay networks (from any node)
    #[command(subcommand, long_about = NETWORK_LONG_ABOUT)]
    Network(NetworkCommand),

    /// Manage endpoints: network namespaces attached to overlay networks
    #[command(subcommand, long_about = ENDPOINT_LONG_ABOUT)]
    Endpoint(EndpointCommand),

    /// Manage services: programs run as tasks across the cluster's nodes
    #[command(subcommand, long_about = SERVICE_LONG_ABOUT)]
    Service(ServiceCommand),

    /// Run a command in a new endpoint on a network, then remove the endpoint
    #[command(long_about = RUN_LONG_ABOUT)]
    Run(RunArgs),

    /// Run a command in the network namespace of an endpoint of this host
    #[command(long_about = EXEC_LONG_ABOUT)]
    Exec(ExecArgs),

    /// Show the state of this node and the cluster as this node sees it
    #[command(long_about = STATUS_LONG_ABOUT)]
    Status(StatusArgs),

    /// Show or rotate the pre-shared keys of encrypted networks
    #[command(subcommand, long_about = KEY_LONG_ABOUT)]
    Key(KeyCommand),

    /// Show this node's WireGuard endpoint and its peers
    #[command(subcommand, long_about = TUNNEL_LONG_ABOUT)]
    Tunnel(TunnelCommand),
}

/// The control API's addresses: shared by `init` and `join`.
#[derive(Debug, Args)]
pub struct ControlAddrArgs {
    /// Address other nodes use to reach this node's control API.
    ///
    /// An IP address or an interface name (e.g. eth0; it must have exactly one IPv4 address),
    /// optionally followed by :PORT (default port: the listen port, 2377 unless --listen-addr
    /// gives another). Default: the IP of --listen-addr when that names a specific address,
    /// otherwise the host's only non-loopback IPv4 address; when the host has several, the
    /// command fails and asks for --advertise-addr.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = NonEmptyStringValueParser::new())]
    pub advertise_addr: Option<String>,

    /// Address this node's control API listens on.
    ///
    /// An IP address or an interface name, optionally followed by :PORT (default port 2377).
    /// Default 0.0.0.0:2377 (all addresses, port 2377).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = NonEmptyStringValueParser::new())]
    pub listen_addr: Option<String>,
}

/// Output formats of the listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for humans.
    #[default]
    Table,
    /// JSON on one line, for scripts: an array for the listings, an object for status and
    /// endpoint create.
    Json,
}

/// Output formats of the inspect commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    /// The JSON array on a single line (the default is the same array, indented).
    Json,
}

/// `--format` of the inspect commands: shared by `node`, `network` and `endpoint inspect`.
#[derive(Debug, Args)]
pub struct InspectFormatArg {
    /// Print the JSON array on one line instead of indented.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<InspectFormat>,
}

impl InspectFormatArg {
    /// Whether the JSON array is printed on one line.
    pub fn compact(&self) -> bool {
        self.format.is_some()
    }
}

/// How the daemon's answer to a request is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Render {
    Init,
    Join,
    JoinToken {
        role: Role,
        quiet: bool,
        rotate: bool,
    },
    Leave,
    NodeLs {
        quiet: bool,
        format: ListFormat,
    },
    NodeInspect {
        compact: bool,
    },
    NodePromote,
    NodeDemote,
    NodeRm,
    NodeRotateKey,
    NetworkCreate,
    NetworkLs {
        quiet: bool,
        format: ListFormat,
    },
    NetworkInspect {
        compact: bool,
    },
    NetworkRm,
    EndpointCreate {
        format: ListFormat,
    },
    EndpointLs {
        quiet: bool,
        format: ListFormat,
    },
    EndpointInspect {
        compact: bool,
    },
    EndpointRm,
    /// `endpoint connect` / `disconnect`: the endpoint's interfaces afterwards.
    EndpointInterfaces,
    Status {
        format: ListFormat,
    },
    Keys {
        format: ListFormat,
    },
    Tunnel {
        format: ListFormat,
    },
    ServiceCreate,
    ServiceLs {
        quiet: bool,
        format: ListFormat,
    },
    ServicePs {
        quiet: bool,
        format: ListFormat,
    },
    ServiceInspect {
        compact: bool,
    },
    ServiceScale,
    ServiceUpdate,
    ServiceRm,
}

/// What to send, how long to wait, and how to show the answer.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request: LocalRequest,
    pub timeout: Duration,
    pub render: Render,
    /// A line printed to stderr before the request is sent.
    pub progress: Option<String>,
    /// After the request succeeds, wait until this service runs all its tasks, showing
    /// progress (`service create` without `--detach`).
    pub converge: Option<String>,
}

/// What a parsed command does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send one request and show its answer on stdout.
    Request(Invocation),
    /// `secnet run`: create an endpoint with `create` (an `EndpointCreate`), run `command`
    /// in it, remove it.
    Run {
        create: LocalRequest,
        command: Vec<String>,
    },
    /// `secnet exec`: run `command` in the namespace of `endpoint`.
    Exec {
        endpoint: String,
        command: Vec<String>,
    },
    /// `secnet service logs`: the output of a service's tasks on this node.
    ServiceLogs { service: String, follow: bool },
}

impl Invocation {
    /// A request that prints no progress line and may take `timeout`: most requests differ
    /// only in how long they may take.
    fn within(timeout: Duration, request: LocalRequest, render: Render) -> Invocation {
        Invocation {
            request,
            timeout,
            render,
            progress: None,
            converge: None,
        }
    }

    /// A request that prints no progress line and may take [`SHORT_TIMEOUT`].
    fn short(request: LocalRequest, render: Render) -> Invocation {
        Invocation::within(SHORT_TIMEOUT, request, render)
    }
}

impl Command {
    /// Turns the parsed command into what `secnet` does.
    pub fn into_action(self) -> Action {
        match self {
            Command::Init(a) => Action::Request(a.invocation()),
            Command::Join(a) => Action::Request(a.invocation()),
            Command::JoinToken(a) => Action::Request(a.invocation()),
            Command::Leave(a) => Action::Request(a.invocation()),
            Command::Node(c) => Action::Request(c.invocation()),
            Command::Network(c) => Action::Request(c.invocation()),
            Command::Endpoint(c) => Action::Request(c.invocation()),
            Command::Run(a) => a.into_action(),
            Command::Exec(a) => a.into_action(),
            Command::Status(a) => Action::Request(a.invocation()),
            Command::Key(c) => Action::Request(c.invocation()),
            Command::Tunnel(c) => Action::Request(c.invocation()),
            Command::Service(c) => c.into_action(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::CommandFactory;

    use super::test_support::parse_err;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn socket_default_flag_and_position() {
        // SECNET_SOCKET may be set in the environment running the tests; only check the flag.
        let cli = Cli::try_parse_from(["secnet", "--socket", "/tmp/x.sock", "status"]).unwrap();
        assert_eq!(cli.socket, PathBuf::from("/tmp/x.sock"));
        let cli = Cli::try_parse_from(["secnet", "node", "ls", "--socket", "/tmp/y.sock"]).unwrap();
        assert_eq!(cli.socket, PathBuf::from("/tmp/y.sock"));
    }

    #[test]
    fn unknown_command_and_missing_command_are_usage_errors() {
        parse_err(&["frobnicate"]);
        let e = Cli::try_parse_from(["secnet"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    /// The long help of the command at `path` (empty: `secnet` itself), its whitespace
    /// collapsed so that line wrapping does not matter.
    fn long_help(path: &[&str]) -> String {
        let mut cmd = Cli::command();
        let mut sub = &mut cmd;
        for name in path {
            sub = sub.find_subcommand_mut(name).unwrap();
        }
        sub.render_long_help()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn help_teaches() {
        let help = long_help(&["init"]);
        assert!(help.contains("default port 2377"), "{help}");
        assert!(help.contains("1024 to 49151"), "{help}");
        assert!(help.contains("Examples:"), "{help}");

        let create = long_help(&["endpoint", "create"]);
        for needle in [
            "on THIS host",
            "eth0",
            "default route via the network's gateway",
            "nsenter --net=PATH",
            "secnet exec",
        ] {
            assert!(create.contains(needle), "{needle:?} missing: {create}");
        }
        let run = long_help(&["run"]);
        for needle in ["128+N", "SIGTERM", "after `--`", "removes the endpoint"] {
            assert!(run.contains(needle), "{needle:?} missing: {run}");
        }
        let exec = long_help(&["exec"]);
        assert!(exec.contains("run `secnet exec` there"), "{exec}");
        let connect = long_help(&["endpoint", "connect"]);
        assert!(connect.contains("docker network connect"), "{connect}");
    }

    /// The help says what this version does, not more: the facts below are the daemon's.
    #[test]
    fn help_promises_no_more_than_the_daemon_does() {
        let root = long_help(&[]);
        // Encrypted networks carry traffic, through the tunnels only.
        assert!(root.contains("never in clear"), "{root}");
        for cmd in ["init", "join"] {
            let help = long_help(&[cmd]);
            for needle in [
                "the host's only non-loopback IPv4 address",
                "the command fails and asks for --advertise-addr",
                "default port: the listen port",
                "Default: the IP of the advertise address",
            ] {
                assert!(help.contains(needle), "{cmd}: {needle:?} missing: {help}");
            }
            assert!(!help.contains("default route"), "{cmd}: {help}");
        }
        let init = long_help(&["init"]);
        for needle in [
            "The leader rotates the pre-shared-key ring this often",
            "10s to 8760h",
            "Default 12h",
            "the other managers are REMOVED",
            "workers, networks and endpoints are kept",
        ] {
            assert!(init.contains(needle), "{needle:?} missing: {init}");
        }
        let create = long_help(&["network", "create"]);
        for needle in [
            "Strict mode is always on",
            "never falls back to clear",
            "it has no effect in this version",
        ] {
            assert!(create.contains(needle), "{needle:?} missing: {create}");
        }
        assert!(!create.contains("services"), "{create}");
        assert!(!create.contains("encrypted and authenticated"), "{create}");
        assert!(long_help(&["endpoint", "create"]).contains("through the WireGuard tunnels only"));
        let rotate = long_help(&["node", "rotate-key"]);
        for needle in ["no packet is lost", "Workers can rotate only their own key"] {
            assert!(rotate.contains(needle), "{needle:?} missing: {rotate}");
        }
        let rm = long_help(&["node", "rm"]);
        for needle in [
            "Managers are refused",
            "not down is refused",
            "certificate is refused",
        ] {
            assert!(rm.contains(needle), "{needle:?} missing: {rm}");
        }
        let leave = long_help(&["leave"]);
        assert!(leave.contains("removed from the Raft voters"), "{leave}");
        assert!(long_help(&["node"]).contains("`ls` and `inspect` work on any node"));
        assert!(long_help(&["network"]).contains("works on any node"));
        assert!(long_help(&["join-token"]).contains("fails on a worker"));
    }
}
