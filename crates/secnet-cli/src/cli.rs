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
/// How long the endpoint requests that change this node's kernel objects (create, rm,
/// connect, disconnect) may take: the daemon answers once the namespace and its interfaces
/// exist, or are gone, on this node.
pub const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(30);

/// The shortest accepted `--key-rotation-interval`.
pub const MIN_KEY_ROTATION: Duration = Duration::from_secs(10);
/// The longest accepted `--key-rotation-interval` (8760h, one year).
pub const MAX_KEY_ROTATION: Duration = Duration::from_secs(8760 * 3600);

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

const TUNNEL_LONG_ABOUT: &str = "\
Show this node's WireGuard endpoint: one per host, on the data-path address, UDP port 51820,
with a TUN device (sntun0) holding the node's tunnel address (from 100.96.0.0/16). Every other
node of the cluster is a peer, keyed with its public key (registered by that node; private keys
never leave their node) and the pre-shared keys of the key ring: every key is installed, the
primary one is used for new handshakes.

Encrypted networks send their VXLAN between tunnel addresses, so it is sealed here; strict mode
(nftables) drops any of it that would take another way, and this command shows how much it
dropped.

Per peer: node, endpoint, tunnel address, the epoch of the pre-shared key of the session that
carries our traffic, seconds since the last handshake, bytes received and sent, handshake
failures and packets dropped as invalid (failed authentication, a replay, or a source address
the peer does not own). Endpoint-wide: datagrams dropped as garbage, from unknown keys,
handshakes refused by the rate limiter, and strict-mode drops.";

/// `secnet tunnel ...`
#[derive(Debug, Subcommand)]
pub enum TunnelCommand {
    /// List this node's WireGuard peers with handshake and traffic counters
    Ls(TunnelLsArgs),
}

const KEY_LONG_ABOUT: &str = "\
Show or rotate the cluster's pre-shared-key ring.

Encrypted networks mix a cluster-wide pre-shared key into every WireGuard handshake between
nodes. The ring holds at most three keys with increasing epochs: at most one `pending`, exactly
one `primary` and older `retiring` ones. A rotation adds a pending key: every node installs it
in its tunnel for receiving and acknowledges it; once every live node has, it becomes primary
and new handshakes use it, while the sessions under the previous key keep carrying traffic
until the new ones are up (so no packet is lost); the leader then keeps the new primary and
the key before it. Keys rotate every --key-rotation-interval (set at init, default 12h), on
`secnet key rotate`, and at once when a node is removed, so a removed node never learns the
next key. The keys themselves are never shown. (Each node's own static key is rotated with
`secnet node rotate-key`.)";

/// `secnet key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys of the ring: epoch, state, when created and promoted, how many nodes hold it
    Ls(KeyLsArgs),
    /// Start a rotation now and wait until the new key is primary (run on a manager)
    Rotate,
}

/// `secnet tunnel ls`
#[derive(Debug, Args)]
pub struct TunnelLsArgs {
    /// Output format: table, or json (one object: the endpoint, its counters and `peers`).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// `secnet key ls`
#[derive(Debug, Args)]
pub struct KeyLsArgs {
    /// Output format: table or json (an array of objects).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

const INIT_LONG_ABOUT: &str = "\
Create a new cluster with this node as its first manager.

The node becomes the cluster's certificate authority and Raft leader. On success secnet \
prints the `secnet join` command that adds workers; `secnet join-token manager` prints the \
one for managers. A node that is already in a cluster is refused (see --force-new-cluster \
for recovering one that lost quorum).

Examples:
  secnet init
  secnet init --advertise-addr 192.0.2.11 --data-path-addr eth1
  secnet init --default-addr-pool 10.20.0.0/16 --default-addr-pool-mask-length 26
  secnet init --force-new-cluster";

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

/// Options of `secnet init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub control: ControlAddrArgs,

    /// Address used for overlay data traffic (VXLAN between the nodes).
    ///
    /// An IP address or an interface name, without a port. Use it to keep data traffic on
    /// another interface than control traffic. Default: the IP of the advertise address.
    #[arg(long, value_name = "ADDR", value_parser = NonEmptyStringValueParser::new())]
    pub data_path_addr: Option<String>,

    /// UDP port of the overlay data path (VXLAN), the same on every node.
    ///
    /// Accepted range 1024 to 49151. Default 4789.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..=49151))]
    pub data_path_port: Option<u16>,

    /// UDP port of every node's WireGuard endpoint (encrypted networks), the same on every node.
    ///
    /// Open it between the nodes' data-path addresses. Accepted range 1024 to 65535, not the
    /// data-path port. Default 51820.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..))]
    pub wireguard_port: Option<u16>,

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

    /// Rotation interval of the pre-shared keys of encrypted networks.
    ///
    /// The leader rotates the pre-shared-key ring this often (see `secnet key --help`); keys
    /// also rotate on `secnet key rotate` and when a node is removed. A duration such as 30m,
    /// 12h or 1day 6h; accepted range 10s to 8760h (one year). Default 12h.
    #[arg(long, value_name = "DURATION", value_parser = parse_key_rotation_interval)]
    pub key_rotation_interval: Option<Duration>,

    /// Recover a cluster that lost quorum, from this manager's own state.
    ///
    /// Run it on a surviving manager when a majority of the managers is permanently lost. The
    /// cluster restarts with this node as its only manager, from its own copy of the state:
    /// workers, networks and endpoints are kept, but the other managers are REMOVED from the
    /// cluster; to come back, each must leave (`secnet leave --force` on it) and join again
    /// with a token from `secnet join-token manager`. The other options of `secnet
    /// init` are ignored.
    #[arg(long)]
    pub force_new_cluster: bool,
}

const JOIN_LONG_ABOUT: &str = "\
Join this node to an existing cluster, as a worker or a manager depending on the token.

Get the token and the full command on a manager with `secnet join-token worker` or \
`secnet join-token manager`. The command waits until the node has joined (up to 60s). A \
node that is already in a cluster is refused: run `secnet leave` on it first.

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

    #[command(flatten)]
    pub control: ControlAddrArgs,

    /// Address used for overlay data traffic (VXLAN between the nodes).
    ///
    /// An IP address or an interface name, without a port. Default: the IP of the advertise
    /// address.
    #[arg(long, value_name = "ADDR", value_parser = NonEmptyStringValueParser::new())]
    pub data_path_addr: Option<String>,

    /// Control address of a manager of the cluster (HOST:PORT, the port is usually 2377).
    #[arg(value_name = "HOST:PORT", value_parser = NonEmptyStringValueParser::new())]
    pub remote: String,
}

const JOIN_TOKEN_LONG_ABOUT: &str = "\
Show the token, and the full `secnet join` command, that adds a worker or a manager to the \
cluster. Run it on a manager: it fails on a worker.

Examples:
  secnet join-token worker
  secnet join-token -q manager
  secnet join-token --rotate worker";

/// Which kind of node a join token admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// A node that only runs workloads attached to the overlay networks.
    Worker,
    /// A node that also holds the cluster state (Raft voter) and manages membership, roles and
    /// join tokens.
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
Make this node leave the cluster: it is removed from the cluster (its certificate is \
refused from then on and its endpoints are removed everywhere), its endpoints and overlay \
interfaces are taken out of this host's kernel, so it stops carrying overlay traffic, and \
it forgets the cluster state and its credentials. To come back it must join again.

A manager is refused unless --force is given: demote it first (`secnet node demote`), or \
with --force it is removed from the Raft voters and from the node table, then leaves. The \
command also fails when the cluster cannot be told (no quorum); --force leaves anyway.

Examples:
  secnet leave
  secnet leave --force";

/// Options of `secnet leave`.
#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Leave even if this node is a manager, or if the cluster cannot be told.
    ///
    /// Leaving as a manager reduces the managers' fault tolerance and can cost the cluster its
    /// quorum; when the last manager leaves, the cluster is gone.
    #[arg(short, long)]
    pub force: bool,
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

const NODE_LONG_ABOUT: &str = "\
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

const NETWORK_LONG_ABOUT: &str = "\
Manage the cluster's overlay networks. Every network command works on any node, workers \
included: changes are forwarded to the managers, so they need a reachable manager quorum.";

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

A network that still has endpoints is refused: remove them (`secnet endpoint rm`) or \
detach them (`secnet endpoint disconnect`) first. If one of the networks does not exist, \
none is removed.

Example:
  secnet network rm backend frontend"
    )]
    Rm(NetworkRmArgs),
}

const NETWORK_CREATE_LONG_ABOUT: &str = "\
Create a network that spans the nodes of the cluster, and print its ID.

Without --subnet a subnet is allocated from the cluster's address pools (see `secnet init \
--default-addr-pool`). Between nodes, the traffic of the network's endpoints travels as \
VXLAN over the data path (see `secnet init --data-path-addr` and --data-path-port), \
unencrypted unless the network is encrypted.

--opt encrypted makes the network encrypted: its VXLAN runs between the nodes' tunnel \
addresses, inside WireGuard tunnels (UDP 51820 between the data-path addresses), keyed \
with each node's static key and the cluster's pre-shared key (see `secnet key`, \
`secnet tunnel ls`). Strict mode is always on: nftables rules on every node drop the \
network's VXLAN if it would leave or arrive other than through the tunnel, so if a tunnel \
is down the traffic stops; it never falls back to clear. The MTU allows for the WireGuard \
overhead (60 bytes more over IPv4, 80 over IPv6).

Options (--opt):
  encrypted         mark the network encrypted (same as encrypted=true); see above
  encrypted=BOOL    true or false
  mtu=N             MTU of the network's interfaces, 1280 to 9000 (default: the MTU of the
                    data-path interface, less the VXLAN overhead, and less the WireGuard
                    overhead too on an encrypted network)

Examples:
  secnet network create backend
  secnet network create -d overlay --attachable backend
  secnet network create --subnet 10.30.0.0/24 --gateway 10.30.0.254 -o mtu=1400 db
  secnet network create --label team=payments --label env=prod payments";

/// Options of `secnet network create`.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Network driver (default overlay).
    ///
    /// overlay is the only driver: the daemon refuses any other name.
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

    /// Gateway address, inside the subnet; needs --subnet.
    ///
    /// The endpoints' default route points to it. Default: the first host address of the
    /// subnet (e.g. 10.30.0.1 for 10.30.0.0/24).
    #[arg(long, value_name = "IP")]
    pub gateway: Option<Ipv4Addr>,

    /// Driver option (repeatable): encrypted, encrypted=true|false, mtu=N.
    ///
    /// encrypted: carry the network's traffic between nodes through WireGuard tunnels only.
    /// mtu=N: interface MTU, 1280 to 9000.
    #[arg(short, long = "opt", value_name = "KEY[=VALUE]", value_parser = parse_network_opt)]
    pub opts: Vec<NetworkOpt>,

    /// Mark the network attachable.
    ///
    /// Stored and shown by `secnet network inspect`; it has no effect in this version.
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
    #[command(flatten)]
    pub format: InspectFormatArg,

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

const ENDPOINT_LONG_ABOUT: &str = "\
Manage endpoints. An endpoint is a network namespace on one host of the cluster, with an \
interface (eth0) on an overlay network: processes run inside it reach the other endpoints \
of the network, on any node, at their overlay addresses.

`secnet endpoint create` makes one on the host you run it on; run programs in it with \
`secnet exec` or `nsenter --net=PATH`. `secnet run` creates one, runs a command in it and \
removes it, in one go. The listing and inspect commands show the endpoints of every node.

Every endpoint command works on any node, workers included; a worker can change (rm, \
connect, disconnect) only its own endpoints, a manager any node's. On encrypted networks \
the endpoints' traffic between hosts goes through WireGuard tunnels only (see `secnet \
network create --help`).

Examples:
  secnet endpoint create --network backend --name web1
  secnet exec web1 -- ip addr
  secnet endpoint connect frontend web1
  secnet endpoint ls --network backend
  secnet endpoint rm web1";

/// `secnet endpoint ...`
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Create an endpoint on this host, attached to a network
    #[command(long_about = ENDPOINT_CREATE_LONG_ABOUT)]
    Create(EndpointCreateArgs),

    /// List endpoints
    #[command(
        visible_alias = "list",
        long_about = "\
List the endpoints of the cluster, on every node, or only those attached to --network.

NODE is the hostname of the node the endpoint lives on. IP and MAC are those of its eth0 \
(the interface on the network it was created on). INTERFACES lists all of its interfaces \
as IFNAME:NETWORK.

Examples:
  secnet endpoint ls
  secnet endpoint ls --network backend -q
  secnet endpoint ls --format json"
    )]
    Ls(EndpointLsArgs),

    /// Show details of one or more endpoints as JSON
    #[command(long_about = "\
Show details of one or more endpoints (by name, ID or unique ID prefix) as a JSON array: \
node, addresses, every interface with its network, address, gateway, MAC and MTU, and \
`netns`, the path of the endpoint's network namespace (only for endpoints of this host; \
null for the others).

Examples:
  secnet endpoint inspect web1
  secnet endpoint inspect --format json web1 web2")]
    Inspect(EndpointInspectArgs),

    /// Remove one or more endpoints
    #[command(
        visible_alias = "remove",
        long_about = "\
Remove one or more endpoints (by name, ID or unique ID prefix), and print the name of each \
endpoint removed. On a worker, only endpoints of this node can be removed; a manager can \
remove any node's, and that node removes its namespace. For an endpoint of this host the command returns once its namespace and \
interfaces are gone (it may take up to 30s); processes still running in the namespace lose \
their network.

If one of the endpoints does not exist, none is removed.

Example:
  secnet endpoint rm web1 web2"
    )]
    Rm(EndpointRmArgs),

    /// Attach an endpoint to one more network
    #[command(long_about = "\
Attach endpoint ENDPOINT to network NETWORK (the argument order of `docker network \
connect`): the endpoint gets a new interface (eth1, eth2, ...) with an address from the \
network's subnet, or --ip. Its default route stays on eth0. Prints the endpoint's \
interfaces afterwards.

On a worker, only endpoints of this node can be connected; a manager can connect any \
node's.

Examples:
  secnet endpoint connect frontend web1
  secnet endpoint connect --ip 10.30.0.20 frontend web1")]
    Connect(EndpointConnectArgs),

    /// Detach an endpoint from a network
    #[command(long_about = "\
Detach endpoint ENDPOINT from network NETWORK (the argument order of `docker network \
disconnect`): its interface on that network is removed and the address freed. An \
endpoint keeps at least one network: remove it with `secnet endpoint rm` instead. Prints \
the endpoint's interfaces afterwards. On a worker, only endpoints of this node can be \
disconnected; a manager can disconnect any node's.

Example:
  secnet endpoint disconnect frontend web1")]
    Disconnect(EndpointDisconnectArgs),
}

const ENDPOINT_CREATE_LONG_ABOUT: &str = "\
Create an endpoint on the network given with --network, on THIS host (the one secnet runs \
on), and print its name. Works on any node, workers included. On an encrypted network the \
endpoint's traffic to other hosts goes through the WireGuard tunnels only (strict mode).

The endpoint is a new network namespace holding one interface, eth0, on the network: eth0 \
gets an address from the network's subnet (the lowest free one, or --ip), the network's MTU, \
and a default route via the network's gateway. The command returns once the namespace and \
its interface exist (it may take up to 30s).

Run programs in it with `secnet exec NAME -- COMMAND`, or with `nsenter --net=PATH \
COMMAND`, where PATH is the endpoint's `netns` (shown by `secnet endpoint inspect NAME` and \
by --format json). Attach it to more networks with `secnet endpoint connect`, and remove it \
with `secnet endpoint rm`. `secnet run` creates an endpoint, runs a command in it and \
removes it, in one go.

Examples:
  secnet endpoint create --network backend
  secnet endpoint create --network backend --name web1 --ip 10.20.0.10
  nsenter --net=\"$(secnet endpoint create --network backend --format json | jq -r .netns)\" ip addr";

/// Where a new endpoint goes: shared by `endpoint create` and `run`.
#[derive(Debug, Args)]
pub struct NewEndpointArgs {
    /// Network to put the endpoint's eth0 on: name, ID or unique ID prefix.
    #[arg(long, value_name = "NETWORK", value_parser = NonEmptyStringValueParser::new())]
    pub network: String,

    /// Name of the endpoint, unique in the cluster.
    ///
    /// Default: the network's name followed by a random suffix, e.g. backend-3fa9c2.
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub name: Option<String>,

    /// IPv4 address of eth0, inside the network's subnet and not in use.
    ///
    /// Default: the lowest free address of the subnet.
    #[arg(long, value_name = "IP")]
    pub ip: Option<Ipv4Addr>,
}

impl NewEndpointArgs {
    /// The `EndpointCreate` request for these arguments.
    pub fn into_request(self) -> LocalRequest {
        LocalRequest::EndpointCreate {
            network: self.network,
            name: self.name,
            ip: self.ip,
        }
    }
}

/// Options of `secnet endpoint create`.
#[derive(Debug, Args)]
pub struct EndpointCreateArgs {
    #[command(flatten)]
    pub endpoint: NewEndpointArgs,

    /// Output format: table (the endpoint's name) or json (the endpoint as a JSON object,
    /// with its `netns` path).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Options of `secnet endpoint ls`.
#[derive(Debug, Args)]
pub struct EndpointLsArgs {
    /// Only the endpoints attached to this network: name, ID or unique ID prefix.
    #[arg(long, value_name = "NETWORK", value_parser = NonEmptyStringValueParser::new())]
    pub network: Option<String>,

    /// Print only the endpoint names, one a line.
    #[arg(short, long, conflicts_with = "format")]
    pub quiet: bool,

    /// Output format: table (aligned columns) or json (a JSON array of endpoints).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Options of `secnet endpoint inspect`.
#[derive(Debug, Args)]
pub struct EndpointInspectArgs {
    #[command(flatten)]
    pub format: InspectFormatArg,

    /// Endpoints to show: name, ID or unique ID prefix.
    #[arg(
        required = true,
        value_name = "ENDPOINT",
        value_parser = NonEmptyStringValueParser::new()
    )]
    pub endpoints: Vec<String>,
}

/// Options of `secnet endpoint rm`.
#[derive(Debug, Args)]
pub struct EndpointRmArgs {
    /// Endpoints to remove: name, ID or unique ID prefix.
    #[arg(
        required = true,
        value_name = "ENDPOINT",
        value_parser = NonEmptyStringValueParser::new()
    )]
    pub endpoints: Vec<String>,
}

/// Options of `secnet endpoint connect`.
#[derive(Debug, Args)]
pub struct EndpointConnectArgs {
    /// IPv4 address of the new interface, inside the network's subnet and not in use.
    ///
    /// Default: the lowest free address of the subnet.
    #[arg(long, value_name = "IP")]
    pub ip: Option<Ipv4Addr>,

    /// Network to attach the endpoint to: name, ID or unique ID prefix.
    #[arg(value_name = "NETWORK", value_parser = NonEmptyStringValueParser::new())]
    pub network: String,

    /// Endpoint to attach: name, ID or unique ID prefix.
    #[arg(value_name = "ENDPOINT", value_parser = NonEmptyStringValueParser::new())]
    pub endpoint: String,
}

/// Options of `secnet endpoint disconnect`.
#[derive(Debug, Args)]
pub struct EndpointDisconnectArgs {
    /// Network to detach the endpoint from: name, ID or unique ID prefix.
    #[arg(value_name = "NETWORK", value_parser = NonEmptyStringValueParser::new())]
    pub network: String,

    /// Endpoint to detach: name, ID or unique ID prefix.
    #[arg(value_name = "ENDPOINT", value_parser = NonEmptyStringValueParser::new())]
    pub endpoint: String,
}

const RUN_LONG_ABOUT: &str = "\
Run a command in a new endpoint on a network, like `docker run --rm --network NETWORK`: \
secnet creates an endpoint on this host (a network namespace whose eth0 is on the network, \
see `secnet endpoint create --help`), runs the command in it with `nsenter --net=PATH -- \
COMMAND [ARGS...]`, waits for it to exit, and then removes the endpoint, however the \
command ended.

The command keeps secnet's standard input, output and error, user, mount namespace and \
working directory: only its network is different. secnet itself prints nothing on standard \
output, so the command's output passes through untouched; secnet's own messages go to \
standard error. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to secnet are passed on to the \
command, and secnet keeps waiting for it (a ^C typed at the terminal reaches the command \
directly and is not passed on twice). If the endpoint cannot be created (an unknown \
network, an address already taken), nothing is run.

Put the command after `--`, so that its options are not taken for secnet's.

Exit code: the command's own exit code, or 128+N if signal N killed it; 126 or 127 if \
nsenter or the command cannot be run or found; otherwise the usual codes (see `secnet \
--help`) when the endpoint cannot be created.

Examples:
  secnet run --network backend -- ping -c 3 10.20.0.2
  secnet run --network backend --name probe --ip 10.20.0.50 -- curl -s http://10.20.0.2:8080/
  secnet run --network backend -- sh -c 'ip addr show eth0; ip route'";

/// Options of `secnet run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub endpoint: NewEndpointArgs,

    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

const EXEC_LONG_ABOUT: &str = "\
Run a command in the network namespace of an existing endpoint of this host, like `docker \
exec`: secnet looks the endpoint up and replaces itself with `nsenter --net=PATH -- COMMAND \
[ARGS...]`, PATH being the endpoint's namespace.

The command keeps secnet's standard input, output and error, user, mount namespace and \
working directory: only its network is different. secnet's exit code is the command's (126 \
or 127 if nsenter or the command cannot be run or found).

The endpoint must live on this host: for an endpoint of another node, secnet fails and \
names that node; run `secnet exec` there. Put the command after `--`.

Examples:
  secnet exec web1 -- ip addr show
  secnet exec web1 -- ping -c 3 10.20.0.3
  secnet exec web1 -- sh";

/// Options of `secnet exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The endpoint: name, ID or unique ID prefix.
    #[arg(value_name = "ENDPOINT", value_parser = NonEmptyStringValueParser::new())]
    pub endpoint: String,

    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

const STATUS_LONG_ABOUT: &str = "\
Show whether this node is in a cluster, its role, the leader, the counts of managers (and \
how many answer), nodes and networks, this node's addresses, and whether its data path \
matches the cluster state (or the errors of its last pass). Works on workers too, and on a \
node that is not in a cluster (state inactive).

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
}

impl Command {
    /// Turns the parsed command into what `secnet` does.
    pub fn into_action(self) -> Action {
        // Most requests print no progress line and differ only in how long they may take.
        let within = |timeout| {
            move |request, render| Invocation {
                request,
                timeout,
                render,
                progress: None,
            }
        };
        let short = within(SHORT_TIMEOUT);
        let endpoint = within(ENDPOINT_TIMEOUT);
        Action::Request(match self {
            Command::Run(a) => {
                return Action::Run {
                    create: a.endpoint.into_request(),
                    command: a.command,
                }
            }
            Command::Exec(a) => {
                return Action::Exec {
                    endpoint: a.endpoint,
                    command: a.command,
                }
            }
            Command::Init(a) => Invocation {
                request: LocalRequest::Init(InitRequest {
                    advertise_addr: a.control.advertise_addr,
                    listen_addr: a.control.listen_addr,
                    data_path_addr: a.data_path_addr,
                    data_path_port: a.data_path_port,
                    wireguard_port: a.wireguard_port,
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
                    advertise_addr: a.control.advertise_addr,
                    listen_addr: a.control.listen_addr,
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
                    compact: a.format.compact(),
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
            Command::Node(NodeCommand::RotateKey(a)) => Invocation {
                request: LocalRequest::NodeRotateKey { node: a.node },
                timeout: Duration::from_secs(45),
                render: Render::NodeRotateKey,
                progress: Some("Rotating the WireGuard key...".into()),
            },
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
                    compact: a.format.compact(),
                },
            ),
            Command::Network(NetworkCommand::Rm(a)) => short(
                LocalRequest::NetworkRm {
                    networks: a.networks,
                },
                Render::NetworkRm,
            ),
            Command::Endpoint(EndpointCommand::Create(a)) => endpoint(
                a.endpoint.into_request(),
                Render::EndpointCreate { format: a.format },
            ),
            Command::Endpoint(EndpointCommand::Ls(a)) => short(
                LocalRequest::EndpointLs { network: a.network },
                Render::EndpointLs {
                    quiet: a.quiet,
                    format: a.format,
                },
            ),
            Command::Endpoint(EndpointCommand::Inspect(a)) => short(
                LocalRequest::EndpointInspect {
                    endpoints: a.endpoints,
                },
                Render::EndpointInspect {
                    compact: a.format.compact(),
                },
            ),
            Command::Endpoint(EndpointCommand::Rm(a)) => endpoint(
                LocalRequest::EndpointRm {
                    endpoints: a.endpoints,
                },
                Render::EndpointRm,
            ),
            Command::Endpoint(EndpointCommand::Connect(a)) => endpoint(
                LocalRequest::EndpointConnect {
                    network: a.network,
                    endpoint: a.endpoint,
                    ip: a.ip,
                },
                Render::EndpointInterfaces,
            ),
            Command::Endpoint(EndpointCommand::Disconnect(a)) => endpoint(
                LocalRequest::EndpointDisconnect {
                    network: a.network,
                    endpoint: a.endpoint,
                },
                Render::EndpointInterfaces,
            ),
            Command::Status(a) => short(LocalRequest::Status, Render::Status { format: a.format }),
            Command::Key(KeyCommand::Ls(a)) => {
                short(LocalRequest::KeyLs, Render::Keys { format: a.format })
            }
            Command::Tunnel(TunnelCommand::Ls(a)) => {
                short(LocalRequest::TunnelLs, Render::Tunnel { format: a.format })
            }
            Command::Key(KeyCommand::Rotate) => Invocation {
                request: LocalRequest::KeyRotate,
                timeout: Duration::from_secs(45),
                render: Render::Keys {
                    format: ListFormat::Table,
                },
                progress: Some("Rotating the key ring...".into()),
            },
        })
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

    /// The full command line: `secnet`, then `args`.
    fn argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut argv = vec!["secnet"];
        argv.extend_from_slice(args);
        argv
    }

    fn parse(args: &[&str]) -> Invocation {
        match parse_action(args) {
            Action::Request(inv) => inv,
            other => panic!("{args:?} should be a plain request, got {other:?}"),
        }
    }

    fn parse_action(args: &[&str]) -> Action {
        match Cli::try_parse_from(argv(args)) {
            Ok(cli) => cli.command.into_action(),
            Err(e) => panic!("{args:?} should parse: {e}"),
        }
    }

    /// Parses and expects a usage error; returns the rendered message.
    fn parse_err(args: &[&str]) -> String {
        match Cli::try_parse_from(argv(args)) {
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

    /// Fails unless `args` parse into a request that sends `expected`.
    #[track_caller]
    fn assert_sends(args: &[&str], expected: &LocalRequest) {
        assert_eq!(json(&parse(args).request), json(expected));
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
        assert_sends(&["leave"], &LocalRequest::Leave { force: false });
        assert_sends(&["leave", "--force"], &LocalRequest::Leave { force: true });
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
        assert_sends(
            &["network", "rm", "a", "b"],
            &LocalRequest::NetworkRm {
                networks: vec!["a".into(), "b".into()],
            },
        );
        parse_err(&["network", "rm"]);
    }

    #[test]
    fn endpoint_create_parses() {
        let inv = parse(&["endpoint", "create", "--network", "backend"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::EndpointCreate {
                network: "backend".into(),
                name: None,
                ip: None
            })
        );
        assert_eq!(inv.timeout, ENDPOINT_TIMEOUT);
        assert_eq!(
            inv.render,
            Render::EndpointCreate {
                format: ListFormat::Table
            }
        );
        let inv = parse(&[
            "endpoint",
            "create",
            "--name",
            "web1",
            "--ip",
            "10.20.0.10",
            "--network",
            "backend",
            "--format",
            "json",
        ]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::EndpointCreate {
                network: "backend".into(),
                name: Some("web1".into()),
                ip: Some(Ipv4Addr::new(10, 20, 0, 10))
            })
        );
        assert_eq!(
            inv.render,
            Render::EndpointCreate {
                format: ListFormat::Json
            }
        );
    }

    #[test]
    fn endpoint_create_bad_inputs() {
        let e = parse_err(&["endpoint", "create", "--network", "n", "--ip", "10.0.0"]);
        assert!(e.contains("'10.0.0'") && e.contains("--ip"), "{e}");
        let e = parse_err(&[
            "endpoint",
            "create",
            "--network",
            "n",
            "--ip",
            "10.0.0.0/24",
        ]);
        assert!(e.contains("10.0.0.0/24"), "{e}");
        let e = parse_err(&["endpoint", "create"]);
        assert!(e.contains("--network <NETWORK>"), "{e}");
        let e = parse_err(&["endpoint", "create", "--network", ""]);
        assert!(e.contains("--network"), "{e}");
        let e = parse_err(&["endpoint", "create", "--network", "n", "--name", ""]);
        assert!(e.contains("--name"), "{e}");
        let e = parse_err(&["endpoint", "create", "--network", "n", "--format", "yaml"]);
        assert!(e.contains("yaml"), "{e}");
        // The name is a flag, not a positional as in `network create`.
        parse_err(&["endpoint", "create", "--network", "n", "web1"]);
    }

    #[test]
    fn endpoint_ls_inspect_rm_parse() {
        let inv = parse(&["endpoint", "ls"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::EndpointLs { network: None })
        );
        assert_eq!(
            inv.render,
            Render::EndpointLs {
                quiet: false,
                format: ListFormat::Table
            }
        );
        let inv = parse(&["endpoint", "list", "--network", "backend", "-q"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::EndpointLs {
                network: Some("backend".into())
            })
        );
        assert_eq!(
            inv.render,
            Render::EndpointLs {
                quiet: true,
                format: ListFormat::Table
            }
        );
        assert_eq!(
            parse(&["endpoint", "ls", "--format", "json"]).render,
            Render::EndpointLs {
                quiet: false,
                format: ListFormat::Json
            }
        );
        parse_err(&["endpoint", "ls", "-q", "--format", "json"]);
        let e = parse_err(&["endpoint", "ls", "--network"]);
        assert!(e.contains("--network"), "{e}");

        let inv = parse(&["endpoint", "inspect", "web1", "web2"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::EndpointInspect {
                endpoints: vec!["web1".into(), "web2".into()]
            })
        );
        assert_eq!(inv.render, Render::EndpointInspect { compact: false });
        assert_eq!(
            parse(&["endpoint", "inspect", "--format", "json", "web1"]).render,
            Render::EndpointInspect { compact: true }
        );
        parse_err(&["endpoint", "inspect"]);

        let inv = parse(&["endpoint", "rm", "web1", "web2"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::EndpointRm {
                endpoints: vec!["web1".into(), "web2".into()]
            })
        );
        assert_eq!(inv.render, Render::EndpointRm);
        assert_eq!(inv.timeout, ENDPOINT_TIMEOUT);
        assert_sends(
            &["endpoint", "remove", "x"],
            &LocalRequest::EndpointRm {
                endpoints: vec!["x".into()],
            },
        );
        parse_err(&["endpoint", "rm"]);
    }

    #[test]
    fn endpoint_connect_disconnect_parse() {
        // Docker's order: NETWORK, then the endpoint.
        let inv = parse(&["endpoint", "connect", "frontend", "web1"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::EndpointConnect {
                network: "frontend".into(),
                endpoint: "web1".into(),
                ip: None
            })
        );
        assert_eq!(inv.render, Render::EndpointInterfaces);
        assert_eq!(inv.timeout, ENDPOINT_TIMEOUT);
        let inv = parse(&[
            "endpoint",
            "connect",
            "frontend",
            "web1",
            "--ip",
            "10.30.0.20",
        ]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::EndpointConnect {
                network: "frontend".into(),
                endpoint: "web1".into(),
                ip: Some(Ipv4Addr::new(10, 30, 0, 20))
            })
        );
        let e = parse_err(&["endpoint", "connect", "--ip", "10.0.0", "frontend", "web1"]);
        assert!(e.contains("'10.0.0'"), "{e}");
        let e = parse_err(&["endpoint", "connect", "frontend"]);
        assert!(e.contains("<ENDPOINT>"), "{e}");

        let inv = parse(&["endpoint", "disconnect", "frontend", "web1"]);
        assert_eq!(
            json(&inv.request),
            json(&LocalRequest::EndpointDisconnect {
                network: "frontend".into(),
                endpoint: "web1".into()
            })
        );
        assert_eq!(inv.render, Render::EndpointInterfaces);
        parse_err(&["endpoint", "disconnect", "frontend"]);
        parse_err(&[
            "endpoint",
            "disconnect",
            "frontend",
            "web1",
            "--ip",
            "10.30.0.20",
        ]);
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Parses a `secnet run` command line: the endpoint it creates and the command it runs.
    fn parse_run(args: &[&str]) -> (LocalRequest, Vec<String>) {
        match parse_action(args) {
            Action::Run { create, command } => (create, command),
            other => panic!("{args:?} should be `secnet run`, got {other:?}"),
        }
    }

    #[test]
    fn run_parses() {
        let (create, command) = parse_run(&[
            "run",
            "--network",
            "backend",
            "--",
            "sh",
            "-c",
            "echo hi; exit 7",
        ]);
        assert_eq!(
            json(&create),
            json(&LocalRequest::EndpointCreate {
                network: "backend".into(),
                name: None,
                ip: None
            })
        );
        assert_eq!(command, strings(&["sh", "-c", "echo hi; exit 7"]));
        // Everything after `--` is the command's, flags and `--` included.
        let (create, command) = parse_run(&[
            "run",
            "--name",
            "probe",
            "--ip",
            "10.20.0.50",
            "--network",
            "backend",
            "--",
            "ping",
            "--network",
            "-c",
            "3",
            "--",
            "x",
        ]);
        assert_eq!(
            json(&create),
            json(&LocalRequest::EndpointCreate {
                network: "backend".into(),
                name: Some("probe".into()),
                ip: Some(Ipv4Addr::new(10, 20, 0, 50))
            })
        );
        assert_eq!(
            command,
            strings(&["ping", "--network", "-c", "3", "--", "x"])
        );
    }

    #[test]
    fn run_bad_inputs() {
        // No command at all.
        let e = parse_err(&["run", "--network", "backend"]);
        assert!(e.contains("<COMMAND>"), "{e}");
        let e = parse_err(&["run", "--network", "backend", "--"]);
        assert!(e.contains("<COMMAND>"), "{e}");
        // A command without `--` before it.
        let e = parse_err(&["run", "--network", "backend", "sh", "-c", "true"]);
        assert!(e.contains("'sh'") && e.contains("-- <COMMAND>"), "{e}");
        // No network.
        let e = parse_err(&["run", "--", "sh"]);
        assert!(e.contains("--network <NETWORK>"), "{e}");
        let e = parse_err(&["run", "--network", "backend", "--ip", "10.0.0", "--", "sh"]);
        assert!(e.contains("'10.0.0'") && e.contains("--ip"), "{e}");
        let e = parse_err(&[
            "run",
            "--network",
            "backend",
            "--ip",
            "300.1.1.1",
            "--",
            "sh",
        ]);
        assert!(e.contains("300.1.1.1"), "{e}");
    }

    #[test]
    fn exec_parses() {
        let Action::Exec { endpoint, command } =
            parse_action(&["exec", "web1", "--", "ip", "-br", "addr"])
        else {
            panic!("not exec")
        };
        assert_eq!(endpoint, "web1");
        assert_eq!(command, strings(&["ip", "-br", "addr"]));
    }

    #[test]
    fn exec_bad_inputs() {
        let e = parse_err(&["exec", "web1"]);
        assert!(e.contains("<COMMAND>"), "{e}");
        let e = parse_err(&["exec", "web1", "ip", "addr"]);
        assert!(e.contains("'ip'") && e.contains("-- <COMMAND>"), "{e}");
        let e = parse_err(&["exec", "--", "ip", "addr"]);
        assert!(e.contains("<ENDPOINT>"), "{e}");
        parse_err(&["exec", "", "--", "ip"]);
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
