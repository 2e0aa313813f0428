//! The command line: clap definitions, value parsers, and the translation of a parsed command
//! into the [`LocalRequest`] sent to the daemon plus how its answer is shown.
//!
//! Every value the CLI can check on its own (CIDRs, ports, durations, `--opt`, `--label`) is
//! checked here by a clap value parser, so a bad value is a usage error (exit code 2) whose
//! message names the value, and nothing is sent to the daemon.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::Ipv4Net;
use secnet_api::{InitRequest, JoinRequest, LocalRequest};
use secnet_model::{NetworkSpec, Role};

/// Where `secnetd` listens unless `--socket` / `SECNET_SOCKET` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/secnet/secnet.sock";

/// How long `init` and `join` may take (certificate issuance, Raft membership change).
pub const LONG_TIMEOUT: Duration = Duration::from_secs(60);
/// How long any other request may take.
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(30);

/// The shortest accepted `--key-rotation-interval`.
pub const MIN_KEY_ROTATION: Duration = Duration::from_secs(10);
/// The longest accepted `--key-rotation-interval` (8760h, one year).
pub const MAX_KEY_ROTATION: Duration = Duration::from_secs(8760 * 3600);

const ROOT_LONG_ABOUT: &str = "\
secnet builds an encrypted overlay network across the nodes of a Linux cluster, the way \
Docker Swarm's overlay networks do, without Docker.

This command talks to the local secnet daemon (secnetd) over its Unix socket; it must \
usually run as root. Start by creating a cluster on one node with `secnet init`, then add \
the other nodes with the `secnet join` command it prints. Create networks with \
`secnet network create`.

Examples:
  secnet init --advertise-addr eth0
  secnet join --token SNTKN-1-... 192.0.2.11:2377
  secnet node ls
  secnet network create -d overlay --opt encrypted --subnet 10.20.0.0/24 backend
  secnet network ls --format json

Exit codes:
  0  success
  1  the daemon refused the request (invalid, not found, conflict, denied)
  2  the command line is wrong (unknown flag, bad value)
  3  the daemon or the cluster is unavailable (daemon not running, no quorum, timeout)
  4  internal error (daemon bug, unexpected answer)";

/// The `secnet` command line.
#[derive(Debug, Parser)]
#[command(
    name = "secnet",
    version,
    about = "Manage a secnet cluster and its encrypted overlay networks",
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

    /// Show (or rotate) the token other nodes use to join the cluster
    #[command(name = "join-token", long_about = JOIN_TOKEN_LONG_ABOUT)]
    JoinToken(JoinTokenArgs),

    /// Leave the cluster
    #[command(long_about = LEAVE_LONG_ABOUT)]
    Leave(LeaveArgs),

    /// Manage the nodes of the cluster (run on a manager)
    #[command(subcommand)]
    Node(NodeCommand),

    /// Manage overlay networks (run on a manager)
    #[command(subcommand)]
    Network(NetworkCommand),

    /// Show the state of this node and the cluster as this node sees it
    #[command(long_about = STATUS_LONG_ABOUT)]
    Status(StatusArgs),
}

const INIT_LONG_ABOUT: &str = "\
Create a new cluster with this node as its first manager.

The node becomes the cluster's certificate authority and Raft leader. On success secnet \
prints the `secnet join` command that adds workers; `secnet join-token manager` prints the \
one for managers.

Examples:
  secnet init
  secnet init --advertise-addr 192.0.2.11 --data-path-addr eth1
  secnet init --default-addr-pool 10.20.0.0/16 --default-addr-pool-mask-length 26
  secnet init --key-rotation-interval 6h";

/// Options of `secnet init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Address other nodes use to reach this node's control API.
    ///
    /// An IP address or an interface name (e.g. eth0), optionally followed by :PORT (default
    /// port 2377). Defaults to the address of the interface holding the default route; needed
    /// when that choice is ambiguous.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = NonEmptyStringValueParser::new())]
    pub advertise_addr: Option<String>,

    /// Address this node's control API listens on.
    ///
    /// An IP address or an interface name, optionally followed by :PORT. Default 0.0.0.0:2377
    /// (all addresses, port 2377).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = NonEmptyStringValueParser::new())]
    pub listen_addr: Option<String>,

    /// Address used for overlay (VXLAN/encrypted) data traffic.
    ///
    /// An IP address or an interface name, without a port. Use it to keep data traffic on
    /// another interface than control traffic. Default: the advertise address.
    #[arg(long, value_name = "ADDR", value_parser = NonEmptyStringValueParser::new())]
    pub data_path_addr: Option<String>,

    /// UDP port of the overlay data path (VXLAN), the same on every node.
    ///
    /// Accepted range 1024 to 49151. Default 4789.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..=49151))]
    pub data_path_port: Option<u16>,

    /// Address pool that network subnets are allocated from (repeatable).
    ///
    /// An IPv4 prefix such as 10.20.0.0/16. Give the flag several times for several pools.
    /// Default 10.0.0.0/8.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub default_addr_pool: Vec<Ipv4Net>,

    /// Prefix length of the subnets allocated from the pools.
    ///
    /// A number from 1 to 29; e.g. 24 gives each network a /24 (254 addresses). Default 24.
    #[arg(long, value_name = "BITS", value_parser = parse_mask_length)]
    pub default_addr_pool_mask_length: Option<u8>,

    /// How often the data-path encryption keys are rotated.
    ///
    /// A duration such as 30m, 12h or 1day 6h; accepted range 10s to 8760h (one year).
    /// Default 12h.
    #[arg(long, value_name = "DURATION", value_parser = parse_key_rotation_interval)]
    pub key_rotation_interval: Option<Duration>,

    /// Restart a cluster from this manager's state after losing quorum.
    ///
    /// Makes this node the only manager of a new cluster that keeps the existing nodes,
    /// networks and keys. Use it only when a majority of managers is permanently lost.
    #[arg(long)]
    pub force_new_cluster: bool,
}

const JOIN_LONG_ABOUT: &str = "\
Join this node to an existing cluster, as a worker or a manager depending on the token.

Get the token and the full command on a manager with `secnet join-token worker` or \
`secnet join-token manager`. The command waits until the node has joined (up to 60s).

Examples:
  secnet join --token SNTKN-1-... 192.0.2.11:2377
  secnet join --token SNTKN-1-... --advertise-addr eth1 manager1.example:2377";

/// Options of `secnet join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The join token, as printed by `secnet join-token`.
    ///
    /// It decides the role this node gets (worker or manager). Can also be given in the
    /// SECNET_JOIN_TOKEN environment variable, which keeps it out of the process list.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SECNET_JOIN_TOKEN",
        hide_env_values = true,
        value_parser = NonEmptyStringValueParser::new()
    )]
    pub token: String,

    /// Address other nodes use to reach this node's control API.
    ///
    /// An IP address or an interface name, optionally followed by :PORT (default port 2377).
    /// Default: the address this node uses to reach the manager.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = NonEmptyStringValueParser::new())]
    pub advertise_addr: Option<String>,

    /// Address this node's control API listens on.
    ///
    /// An IP address or an interface name, optionally followed by :PORT. Default 0.0.0.0:2377.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = NonEmptyStringValueParser::new())]
    pub listen_addr: Option<String>,

    /// Address used for overlay (VXLAN/encrypted) data traffic.
    ///
    /// An IP address or an interface name, without a port. Default: the advertise address.
    #[arg(long, value_name = "ADDR", value_parser = NonEmptyStringValueParser::new())]
    pub data_path_addr: Option<String>,

    /// Control address of a manager of the cluster (HOST:PORT, the port is usually 2377).
    #[arg(value_name = "HOST:PORT", value_parser = NonEmptyStringValueParser::new())]
    pub remote: String,
}

const JOIN_TOKEN_LONG_ABOUT: &str = "\
Show the token, and the full `secnet join` command, that adds a worker or a manager to the \
cluster. Run it on a manager.

Examples:
  secnet join-token worker
  secnet join-token -q manager
  secnet join-token --rotate worker";

/// Which kind of node a join token admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// A node that only runs workloads attached to the overlay networks.
    Worker,
    /// A node that also holds the cluster state (Raft voter) and accepts commands.
    Manager,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Worker => Role::Worker,
            RoleArg::Manager => Role::Manager,
        }
    }
}

/// Options of `secnet join-token`.
#[derive(Debug, Args)]
pub struct JoinTokenArgs {
    /// The role the token admits.
    #[arg(value_enum, value_name = "worker|manager")]
    pub role: RoleArg,

    /// Print only the token, nothing else.
    #[arg(short, long)]
    pub quiet: bool,

    /// Replace the token with a new one; the old token stops working at once.
    ///
    /// Nodes already in the cluster are not affected.
    #[arg(long)]
    pub rotate: bool,
}

const LEAVE_LONG_ABOUT: &str = "\
Make this node leave the cluster: it stops carrying overlay traffic and forgets the cluster \
state and its credentials.

A manager must be demoted first (`secnet node demote`), unless --force is given.

Examples:
  secnet leave
  secnet leave --force";

/// Options of `secnet leave`.
#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Leave even if this node is a manager.
    ///
    /// Leaving as a manager can break the cluster's quorum; for the last manager it destroys
    /// the cluster.
    #[arg(short, long)]
    pub force: bool,
}

/// Output formats of the listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for humans.
    #[default]
    Table,
    /// A JSON array (or object, for status) on one line, for scripts.
    Json,
}

/// Output formats of the inspect commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    /// The JSON array on a single line (the default is the same array, indented).
    Json,
}

/// `secnet node ...`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the nodes of the cluster
    #[command(
        visible_alias = "list",
        long_about = "\
List the nodes of the cluster. The node you are on is marked with `*` after its ID.

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
Show details of one or more nodes (by ID, unique ID prefix or hostname) as a JSON array.

Examples:
  secnet node inspect worker1
  secnet node inspect --format json 3f2a worker2")]
    Inspect(NodeInspectArgs),

    /// Make one or more workers managers
    #[command(long_about = "\
Make one or more workers managers: they become Raft voters and accept commands.

Keep an odd number of managers (3 or 5): a cluster stays writable while a majority of them \
is reachable.

Example:
  secnet node promote worker1 worker2")]
    Promote(NodeTargets),

    /// Make one or more managers workers
    #[command(long_about = "\
Make one or more managers workers. The last manager cannot be demoted.

Example:
  secnet node demote manager3")]
    Demote(NodeTargets),

    /// Remove one or more nodes from the cluster
    #[command(
        visible_alias = "remove",
        long_about = "\
Remove one or more nodes from the cluster and revoke their certificates: they can no longer \
talk to the cluster and their overlay traffic is refused.

A node that is still up should leave first (`secnet leave` on it); --force removes it anyway.

Examples:
  secnet node rm worker3
  secnet node rm --force 3f2a"
    )]
    Rm(NodeRmArgs),
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
    /// Print the JSON array on one line instead of indented.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<InspectFormat>,

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
    /// Remove the nodes even if they are up or are managers.
    #[arg(short, long)]
    pub force: bool,

    /// Nodes to remove: ID, unique ID prefix or hostname.
    #[arg(required = true, value_name = "NODE", value_parser = NonEmptyStringValueParser::new())]
    pub nodes: Vec<String>,
}

/// `secnet network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create an overlay network
    #[command(long_about = NETWORK_CREATE_LONG_ABOUT)]
    Create(NetworkCreateArgs),

    /// List networks
    #[command(
        visible_alias = "list",
        long_about = "\
List the networks of the cluster. The table shortens network IDs to 12 characters; \
--format json gives the full records.

Examples:
  secnet network ls
  secnet network ls -q
  secnet network ls --format json"
    )]
    Ls(NetworkLsArgs),

    /// Show details of one or more networks as JSON
    #[command(long_about = "\
Show details of one or more networks (by name, ID or unique ID prefix) as a JSON array.

Examples:
  secnet network inspect backend
  secnet network inspect --format json backend frontend")]
    Inspect(NetworkInspectArgs),

    /// Remove one or more networks
    #[command(
        visible_alias = "remove",
        long_about = "\
Remove one or more networks (by name, ID or unique ID prefix) from the cluster. Prints the \
name of each network removed.

Example:
  secnet network rm backend frontend"
    )]
    Rm(NetworkRmArgs),
}

const NETWORK_CREATE_LONG_ABOUT: &str = "\
Create a network that spans the nodes of the cluster, and print its ID.

Without --subnet a subnet is allocated from the cluster's address pools (see `secnet init \
--default-addr-pool`). With --opt encrypted, traffic between nodes on the network is \
encrypted and authenticated.

Options (--opt):
  encrypted         encrypt the traffic between nodes (same as encrypted=true)
  encrypted=BOOL    true or false
  mtu=N             MTU of the network's interfaces, 1280 to 9000 (default: derived from the
                    data-path interface, less the encapsulation overhead)

Examples:
  secnet network create backend
  secnet network create -d overlay --opt encrypted --attachable backend
  secnet network create --subnet 10.30.0.0/24 --gateway 10.30.0.254 -o mtu=1400 db
  secnet network create --label team=payments --label env=prod payments";

/// Options of `secnet network create`.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Network driver (default overlay).
    ///
    /// secnetd provides overlay; any other name is passed to the daemon, which refuses the
    /// drivers it does not know.
    #[arg(
        short,
        long,
        value_name = "DRIVER",
        default_value = "overlay",
        value_parser = NonEmptyStringValueParser::new()
    )]
    pub driver: String,

    /// Subnet of the network, an IPv4 prefix such as 10.30.0.0/24.
    ///
    /// Default: allocated from the cluster's address pools.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub subnet: Option<Ipv4Net>,

    /// Gateway address, inside the subnet.
    ///
    /// Default: the first address of the subnet.
    #[arg(long, value_name = "IP")]
    pub gateway: Option<Ipv4Addr>,

    /// Driver option (repeatable): encrypted, encrypted=true|false, mtu=N.
    ///
    /// encrypted: encrypt traffic between nodes. mtu=N: interface MTU, 1280 to 9000.
    #[arg(short, long = "opt", value_name = "KEY[=VALUE]", value_parser = parse_network_opt)]
    pub opts: Vec<NetworkOpt>,

    /// Let standalone workloads (not just services) attach to the network.
    #[arg(long)]
    pub attachable: bool,

    /// Metadata label KEY=VALUE (repeatable). The last value given for a key wins.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    /// Name of the network, unique in the cluster.
    #[arg(value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub name: String,
}

/// Options of `secnet network ls`.
#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    /// Print only the full network IDs, one a line.
    #[arg(short, long, conflicts_with = "format")]
    pub quiet: bool,

    /// Output format: table (aligned columns) or json (a JSON array of networks).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Options of `secnet network inspect`.
#[derive(Debug, Args)]
pub struct NetworkInspectArgs {
    /// Print the JSON array on one line instead of indented.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<InspectFormat>,

    /// Networks to show: name, ID or unique ID prefix.
    #[arg(
        required = true,
        value_name = "NETWORK",
        value_parser = NonEmptyStringValueParser::new()
    )]
    pub networks: Vec<String>,
}

/// Options of `secnet network rm`.
#[derive(Debug, Args)]
pub struct NetworkRmArgs {
    /// Networks to remove: name, ID or unique ID prefix.
    #[arg(
        required = true,
        value_name = "NETWORK",
        value_parser = NonEmptyStringValueParser::new()
    )]
    pub networks: Vec<String>,
}

const STATUS_LONG_ABOUT: &str = "\
Show whether this node is in a cluster, its role, the leader, and counts of managers, nodes \
and networks. Works on workers too, and on a node that is not in a cluster (state inactive).

Examples:
  secnet status
  secnet status --format json";

/// Options of `secnet status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format: table (KEY: VALUE lines) or json (one JSON object).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// A parsed `--opt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkOpt {
    Encrypted(bool),
    Mtu(u32),
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
    NetworkCreate,
    NetworkLs {
        quiet: bool,
        format: ListFormat,
    },
    NetworkInspect {
        compact: bool,
    },
    NetworkRm,
    Status {
        format: ListFormat,
    },
}

/// What to send, how long to wait, and how to show the answer.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request: LocalRequest,
    pub timeout: Duration,
    pub render: Render,
    /// A line printed to stderr before the request is sent.
    pub progress: Option<String>,
}

impl Command {
    /// Turns the parsed command into the request for the daemon.
    pub fn into_invocation(self) -> Invocation {
        let short = |request, render| Invocation {
            request,
            timeout: SHORT_TIMEOUT,
            render,
            progress: None,
        };
        match self {
            Command::Init(a) => Invocation {
                request: LocalRequest::Init(InitRequest {
                    advertise_addr: a.advertise_addr,
                    listen_addr: a.listen_addr,
                    data_path_addr: a.data_path_addr,
                    data_path_port: a.data_path_port,
                    default_addr_pools: a.default_addr_pool,
                    default_addr_pool_mask_length: a.default_addr_pool_mask_length,
                    key_rotation_interval_secs: a.key_rotation_interval.map(|d| d.as_secs()),
                    force_new_cluster: a.force_new_cluster,
                }),
                timeout: LONG_TIMEOUT,
                render: Render::Init,
                progress: None,
            },
            Command::Join(a) => Invocation {
                progress: Some(format!("Joining the cluster at {}...", a.remote)),
                request: LocalRequest::Join(JoinRequest {
                    token: a.token,
                    remote: a.remote,
                    advertise_addr: a.advertise_addr,
                    listen_addr: a.listen_addr,
                    data_path_addr: a.data_path_addr,
                }),
                timeout: LONG_TIMEOUT,
                render: Render::Join,
            },
            Command::JoinToken(a) => short(
                LocalRequest::JoinToken {
                    role: a.role.into(),
                    rotate: a.rotate,
                },
                Render::JoinToken {
                    role: a.role.into(),
                    quiet: a.quiet,
                    rotate: a.rotate,
                },
            ),
            Command::Leave(a) => short(LocalRequest::Leave { force: a.force }, Render::Leave),
            Command::Node(NodeCommand::Ls(a)) => short(
                LocalRequest::NodeLs,
                Render::NodeLs {
                    quiet: a.quiet,
                    format: a.format,
                },
            ),
            Command::Node(NodeCommand::Inspect(a)) => short(
                LocalRequest::NodeInspect { nodes: a.nodes },
                Render::NodeInspect {
                    compact: a.format.is_some(),
                },
            ),
            Command::Node(NodeCommand::Promote(a)) => short(
                LocalRequest::NodePromote { nodes: a.nodes },
                Render::NodePromote,
            ),
            Command::Node(NodeCommand::Demote(a)) => short(
                LocalRequest::NodeDemote { nodes: a.nodes },
                Render::NodeDemote,
            ),
            Command::Node(NodeCommand::Rm(a)) => short(
                LocalRequest::NodeRm {
                    nodes: a.nodes,
                    force: a.force,
                },
                Render::NodeRm,
            ),
            Command::Network(NetworkCommand::Create(a)) => short(
                LocalRequest::NetworkCreate(a.into_spec()),
                Render::NetworkCreate,
            ),
            Command::Network(NetworkCommand::Ls(a)) => short(
                LocalRequest::NetworkLs,
                Render::NetworkLs {
                    quiet: a.quiet,
                    format: a.format,
                },
            ),
            Command::Network(NetworkCommand::Inspect(a)) => short(
                LocalRequest::NetworkInspect {
                    networks: a.networks,
                },
                Render::NetworkInspect {
                    compact: a.format.is_some(),
                },
            ),
            Command::Network(NetworkCommand::Rm(a)) => short(
                LocalRequest::NetworkRm {
                    networks: a.networks,
                },
                Render::NetworkRm,
            ),
            Command::Status(a) => short(LocalRequest::Status, Render::Status { format: a.format }),
        }
    }
}

impl NetworkCreateArgs {
    /// The spec sent to the daemon; later `--opt`s and `--label`s override earlier ones.
    pub fn into_spec(self) -> NetworkSpec {
        let mut encrypted = false;
        let mut mtu = None;
        for opt in self.opts {
            match opt {
                NetworkOpt::Encrypted(e) => encrypted = e,
                NetworkOpt::Mtu(m) => mtu = Some(m),
            }
        }
        NetworkSpec {
            name: self.name,
            driver: self.driver,
            subnet: self.subnet,
            gateway: self.gateway,
            encrypted,
            mtu,
            attachable: self.attachable,
            labels: self.labels.into_iter().collect::<BTreeMap<_, _>>(),
        }
    }
}

/// `--subnet`, `--default-addr-pool`: an IPv4 prefix, parsed as IPAM parses it everywhere.
fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    secnet_ipam::parse_ipv4_cidr(s).map_err(|e| e.to_string())
}

/// `--default-addr-pool-mask-length`.
fn parse_mask_length(s: &str) -> Result<u8, String> {
    let max = secnet_ipam::MAX_MASK_LENGTH;
    match s.trim().parse::<u8>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid mask length {s:?}: expected a number of prefix bits from 1 to {max}"
        )),
    }
}

/// `--key-rotation-interval`: a humantime duration within [`MIN_KEY_ROTATION`,
/// [`MAX_KEY_ROTATION`]].
fn parse_key_rotation_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (examples: 10s, 30m, 12h, 7days)"))?;
    if d < MIN_KEY_ROTATION || d > MAX_KEY_ROTATION {
        return Err(format!(
            "key rotation interval {s:?} is out of range: accepted range is 10s to 8760h (one year)"
        ));
    }
    Ok(d)
}

/// `--opt KEY[=VALUE]`.
fn parse_network_opt(s: &str) -> Result<NetworkOpt, String> {
    let (key, value) = match s.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim())),
        None => (s.trim(), None),
    };
    match key {
        "encrypted" => match value {
            None | Some("true") => Ok(NetworkOpt::Encrypted(true)),
            Some("false") => Ok(NetworkOpt::Encrypted(false)),
            Some(v) => Err(format!(
                "invalid value {v:?} for network option \"encrypted\": expected true or false \
                 (or no value, meaning true)"
            )),
        },
        // Docker's spelling of the same option, accepted for familiarity.
        "mtu" | "com.docker.network.driver.mtu" => {
            let Some(v) = value else {
                return Err(format!(
                    "network option {key:?} needs a value: mtu=N, N from {} to {}",
                    secnet_model::MIN_MTU,
                    secnet_model::MAX_MTU
                ));
            };
            let range = secnet_model::MIN_MTU..=secnet_model::MAX_MTU;
            match v.parse::<u32>() {
                Ok(n) if range.contains(&n) => Ok(NetworkOpt::Mtu(n)),
                Ok(_) => Err(format!(
                    "invalid MTU {v:?}: accepted range is {} to {}",
                    range.start(),
                    range.end()
                )),
                Err(_) => Err(format!(
                    "invalid MTU {v:?}: expected a whole number from {} to {}",
                    range.start(),
                    range.end()
                )),
            }
        }
        other => Err(format!(
            "unknown network option {other:?}: accepted options are encrypted, mtu=N"
        )),
    }
}

/// `--label KEY=VALUE`.
fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        Some(_) => Err(format!("invalid label {s:?}: the key must not be empty")),
        None => Err(format!("invalid label {s:?}: expected KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Invocation {
        let mut argv = vec!["secnet"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.command.into_invocation(),
            Err(e) => panic!("{args:?} should parse: {e}"),
        }
    }

    /// Parses and expects a usage error; returns the rendered message.
    fn parse_err(args: &[&str]) -> String {
        let mut argv = vec!["secnet"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{args:?} should fail, got {:?}", cli.command),
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{e}");
                e.to_string()
            }
        }
    }

    fn json(req: &LocalRequest) -> serde_json::Value {
        serde_json::to_value(req).unwrap()
    }

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
    fn init_defaults() {
        let inv = parse(&["init"]);
        assert_eq!(inv.timeout, LONG_TIMEOUT);
        assert_eq!(inv.render, Render::Init);
        assert!(inv.progress.is_none());
        let LocalRequest::Init(r) = inv.request else {
            panic!("not init")
        };
        assert_eq!(r.advertise_addr, None);
        assert_eq!(r.listen_addr, None);
        assert_eq!(r.data_path_addr, None);
        assert_eq!(r.data_path_port, None);
        assert!(r.default_addr_pools.is_empty());
        assert_eq!(r.default_addr_pool_mask_length, None);
        assert_eq!(r.key_rotation_interval_secs, None);
        assert!(!r.force_new_cluster);
    }

    #[test]
    fn init_all_flags() {
        let inv = parse(&[
            "init",
            "--advertise-addr",
            "192.0.2.11:2377",
            "--listen-addr",
            "0.0.0.0:2377",
            "--data-path-addr",
            "eth1",
            "--data-path-port",
            "7789",
            "--default-addr-pool",
            "10.20.0.0/16",
            "--default-addr-pool",
            "172.30.0.0/16",
            "--default-addr-pool-mask-length",
            "26",
            "--key-rotation-interval",
            "12h",
            "--force-new-cluster",
        ]);
        let LocalRequest::Init(r) = inv.request else {
            panic!("not init")
        };
        assert_eq!(r.advertise_addr.as_deref(), Some("192.0.2.11:2377"));
        assert_eq!(r.listen_addr.as_deref(), Some("0.0.0.0:2377"));
        assert_eq!(r.data_path_addr.as_deref(), Some("eth1"));
        assert_eq!(r.data_path_port, Some(7789));
        assert_eq!(
            r.default_addr_pools,
            vec![
                "10.20.0.0/16".parse::<Ipv4Net>().unwrap(),
                "172.30.0.0/16".parse().unwrap()
            ]
        );
        assert_eq!(r.default_addr_pool_mask_length, Some(26));
        assert_eq!(r.key_rotation_interval_secs, Some(12 * 3600));
        assert!(r.force_new_cluster);
    }

    #[test]
    fn init_interval_bounds() {
        let secs = |s: &str| match parse(&["init", "--key-rotation-interval", s]).request {
            LocalRequest::Init(r) => r.key_rotation_interval_secs,
            _ => None,
        };
        assert_eq!(secs("10s"), Some(10));
        assert_eq!(secs("8760h"), Some(8760 * 3600));
        assert_eq!(secs("1day 6h"), Some(30 * 3600));
        let e = parse_err(&["init", "--key-rotation-interval", "5s"]);
        assert!(e.contains("\"5s\"") && e.contains("10s to 8760h"), "{e}");
        let e = parse_err(&["init", "--key-rotation-interval", "8761h"]);
        assert!(e.contains("8761h"), "{e}");
        let e = parse_err(&["init", "--key-rotation-interval", "soon"]);
        assert!(e.contains("soon"), "{e}");
    }

    #[test]
    fn init_bad_values_name_the_value() {
        let e = parse_err(&["init", "--data-path-port", "80"]);
        assert!(e.contains("80") && e.contains("1024..=49151"), "{e}");
        let e = parse_err(&["init", "--data-path-port", "49152"]);
        assert!(e.contains("49152"), "{e}");
        let e = parse_err(&["init", "--default-addr-pool", "10.0.0.0/33"]);
        assert!(
            e.contains("10.0.0.0/33") && e.contains("invalid CIDR"),
            "{e}"
        );
        let e = parse_err(&["init", "--default-addr-pool", "banana"]);
        assert!(e.contains("banana"), "{e}");
        let e = parse_err(&["init", "--default-addr-pool-mask-length", "abc"]);
        assert!(e.contains("abc") && e.contains("mask length"), "{e}");
        let e = parse_err(&["init", "--default-addr-pool-mask-length", "30"]);
        assert!(e.contains("\"30\""), "{e}");
        let e = parse_err(&["init", "--advertise-addr", ""]);
        assert!(e.contains("--advertise-addr"), "{e}");
    }

    #[test]
    fn join_parses() {
        let inv = parse(&[
            "join",
            "--token",
            "SNTKN-1-abc",
            "--advertise-addr",
            "eth0",
            "--listen-addr",
            "0.0.0.0:2377",
            "--data-path-addr",
            "10.1.0.5",
            "192.0.2.11:2377",
        ]);
        assert_eq!(inv.timeout, LONG_TIMEOUT);
        assert_eq!(
            inv.progress.as_deref(),
            Some("Joining the cluster at 192.0.2.11:2377...")
        );
        let LocalRequest::Join(r) = inv.request else {
            panic!("not join")
        };
        assert_eq!(r.token, "SNTKN-1-abc");
        assert_eq!(r.remote, "192.0.2.11:2377");
        assert_eq!(r.advertise_addr.as_deref(), Some("eth0"));
        assert_eq!(r.listen_addr.as_deref(), Some("0.0.0.0:2377"));
        assert_eq!(r.data_path_addr.as_deref(), Some("10.1.0.5"));
    }

    #[test]
    fn join_needs_remote() {
        let e = parse_err(&["join", "--token", "SNTKN-1-abc"]);
        assert!(e.contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn join_token_parses() {
        let inv = parse(&["join-token", "worker"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::JoinToken {
                role: Role::Worker,
                rotate: false
            })
        );
        assert_eq!(
            inv.render,
            Render::JoinToken {
                role: Role::Worker,
                quiet: false,
                rotate: false
            }
        );
        assert_eq!(inv.timeout, SHORT_TIMEOUT);
        let inv = parse(&["join-token", "-q", "--rotate", "manager"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::JoinToken {
                role: Role::Manager,
                rotate: true
            })
        );
        assert_eq!(
            inv.render,
            Render::JoinToken {
                role: Role::Manager,
                quiet: true,
                rotate: true
            }
        );
        let e = parse_err(&["join-token", "boss"]);
        assert!(e.contains("boss"), "{e}");
    }

    #[test]
    fn leave_parses() {
        assert_eq!(
            json(&parse(&["leave"]).request),
            json(&LocalRequest::Leave { force: false })
        );
        assert_eq!(
            json(&parse(&["leave", "--force"]).request),
            json(&LocalRequest::Leave { force: true })
        );
    }

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

        assert_eq!(
            json(&parse(&["node", "promote", "w1", "w2"]).request),
            json(&LocalRequest::NodePromote {
                nodes: vec!["w1".into(), "w2".into()]
            })
        );
        assert_eq!(
            json(&parse(&["node", "demote", "m3"]).request),
            json(&LocalRequest::NodeDemote {
                nodes: vec!["m3".into()]
            })
        );
        assert_eq!(
            json(&parse(&["node", "rm", "w3"]).request),
            json(&LocalRequest::NodeRm {
                nodes: vec!["w3".into()],
                force: false
            })
        );
        assert_eq!(
            json(&parse(&["node", "rm", "--force", "w3", "w4"]).request),
            json(&LocalRequest::NodeRm {
                nodes: vec!["w3".into(), "w4".into()],
                force: true
            })
        );
        parse_err(&["node", "promote"]);
    }

    fn create_spec(args: &[&str]) -> NetworkSpec {
        let mut argv = vec!["network", "create"];
        argv.extend_from_slice(args);
        match parse(&argv).request {
            LocalRequest::NetworkCreate(spec) => spec,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn network_create_defaults() {
        let spec = create_spec(&["backend"]);
        assert_eq!(
            spec,
            NetworkSpec {
                name: "backend".into(),
                driver: "overlay".into(),
                subnet: None,
                gateway: None,
                encrypted: false,
                mtu: None,
                attachable: false,
                labels: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn network_create_all_flags() {
        let spec = create_spec(&[
            "-d",
            "overlay",
            "--subnet",
            "10.30.0.0/24",
            "--gateway",
            "10.30.0.254",
            "-o",
            "encrypted",
            "--opt",
            "mtu=1400",
            "--attachable",
            "--label",
            "team=payments",
            "--label",
            "env=prod",
            "--label",
            "env=staging",
            "--label",
            "empty=",
            "db",
        ]);
        assert_eq!(spec.name, "db");
        assert_eq!(spec.driver, "overlay");
        assert_eq!(spec.subnet, Some("10.30.0.0/24".parse().unwrap()));
        assert_eq!(spec.gateway, Some(Ipv4Addr::new(10, 30, 0, 254)));
        assert!(spec.encrypted);
        assert_eq!(spec.mtu, Some(1400));
        assert!(spec.attachable);
        let labels: Vec<_> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            vec![("empty", ""), ("env", "staging"), ("team", "payments")]
        );
    }

    #[test]
    fn network_create_encrypted_values_and_other_driver() {
        assert!(create_spec(&["-o", "encrypted=true", "n"]).encrypted);
        assert!(!create_spec(&["-o", "encrypted=false", "n"]).encrypted);
        assert!(!create_spec(&["-o", "encrypted", "-o", "encrypted=false", "n"]).encrypted);
        assert_eq!(
            create_spec(&["-o", "com.docker.network.driver.mtu=9000", "n"]).mtu,
            Some(9000)
        );
        assert_eq!(create_spec(&["--driver", "bridge", "n"]).driver, "bridge");
        let e = parse_err(&["network", "create", "-o", "encrypted=yes", "n"]);
        assert!(e.contains("\"yes\""), "{e}");
    }

    #[test]
    fn network_create_bad_values_name_the_value() {
        let e = parse_err(&["network", "create", "--subnet", "10.1.2.0/40", "n"]);
        assert!(
            e.contains("10.1.2.0/40") && e.contains("invalid CIDR"),
            "{e}"
        );
        let e = parse_err(&["network", "create", "--subnet", "nonsense", "n"]);
        assert!(e.contains("nonsense"), "{e}");
        let e = parse_err(&["network", "create", "--gateway", "10.1.2", "n"]);
        assert!(e.contains("10.1.2"), "{e}");
        let e = parse_err(&["network", "create", "--opt", "mtu=abc", "n"]);
        assert!(e.contains("\"abc\"") && e.contains("1280 to 9000"), "{e}");
        let e = parse_err(&["network", "create", "--opt", "mtu=100", "n"]);
        assert!(e.contains("\"100\"") && e.contains("1280 to 9000"), "{e}");
        let e = parse_err(&["network", "create", "--opt", "mtu=9001", "n"]);
        assert!(e.contains("\"9001\""), "{e}");
        let e = parse_err(&["network", "create", "--opt", "mtu", "n"]);
        assert!(e.contains("needs a value"), "{e}");
        let e = parse_err(&["network", "create", "--opt", "foo", "n"]);
        assert!(
            e.contains("unknown network option \"foo\": accepted options are encrypted, mtu=N"),
            "{e}"
        );
        let e = parse_err(&["network", "create", "--opt", "foo=bar", "n"]);
        assert!(e.contains("unknown network option \"foo\""), "{e}");
        let e = parse_err(&["network", "create", "--label", "noequals", "n"]);
        assert!(e.contains("\"noequals\"") && e.contains("KEY=VALUE"), "{e}");
        let e = parse_err(&["network", "create", "--label", "=v", "n"]);
        assert!(e.contains("\"=v\""), "{e}");
        parse_err(&["network", "create"]);
    }

    #[test]
    fn network_other_commands_parse() {
        let inv = parse(&["network", "ls"]);
        assert_eq!(json(&inv.request), json(&LocalRequest::NetworkLs));
        assert_eq!(
            inv.render,
            Render::NetworkLs {
                quiet: false,
                format: ListFormat::Table
            }
        );
        assert_eq!(
            parse(&["network", "ls", "--format", "json"]).render,
            Render::NetworkLs {
                quiet: false,
                format: ListFormat::Json
            }
        );
        assert_eq!(
            parse(&["network", "ls", "-q"]).render,
            Render::NetworkLs {
                quiet: true,
                format: ListFormat::Table
            }
        );
        let inv = parse(&["network", "inspect", "backend", "frontend"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::NetworkInspect {
                networks: vec!["backend".into(), "frontend".into()]
            })
        );
        assert_eq!(inv.render, Render::NetworkInspect { compact: false });
        assert_eq!(
            parse(&["network", "inspect", "--format", "json", "x"]).render,
            Render::NetworkInspect { compact: true }
        );
        assert_eq!(
            json(&parse(&["network", "rm", "a", "b"]).request),
            json(&LocalRequest::NetworkRm {
                networks: vec!["a".into(), "b".into()]
            })
        );
        parse_err(&["network", "rm"]);
    }

    #[test]
    fn status_parses() {
        let inv = parse(&["status"]);
        assert_eq!(json(&inv.request), json(&LocalRequest::Status));
        assert_eq!(
            inv.render,
            Render::Status {
                format: ListFormat::Table
            }
        );
        assert_eq!(
            parse(&["status", "--format", "json"]).render,
            Render::Status {
                format: ListFormat::Json
            }
        );
    }

    #[test]
    fn unknown_command_and_missing_command_are_usage_errors() {
        parse_err(&["frobnicate"]);
        let e = Cli::try_parse_from(["secnet"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn help_teaches() {
        let help = Cli::command()
            .find_subcommand_mut("init")
            .unwrap()
            .render_long_help()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(help.contains("default port 2377"), "{help}");
        assert!(help.contains("1024 to 49151"), "{help}");
        assert!(help.contains("Examples:"), "{help}");
    }
}
