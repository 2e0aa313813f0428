//! The cluster-level verbs: `init`, `join`, `join-token`, `leave` and `status`.

use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, ValueEnum};
use ipnet::Ipv4Net;
use secnet_api::{InitRequest, JoinRequest, LocalRequest};
use secnet_model::Role;

use super::key::parse_key_rotation_interval;
use super::parse::{parse_cidr, parse_mask_length};
use super::{ControlAddrArgs, Invocation, ListFormat, Render, LONG_TIMEOUT};

pub(super) const INIT_LONG_ABOUT: &str = "\
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

pub(super) const JOIN_LONG_ABOUT: &str = "\
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

pub(super) const JOIN_TOKEN_LONG_ABOUT: &str = "\
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

pub(super) const LEAVE_LONG_ABOUT: &str = "\
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

pub(super) const STATUS_LONG_ABOUT: &str = "\
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

impl InitArgs {
    /// The `Init` request.
    pub(super) fn invocation(self) -> Invocation {
        Invocation {
            request: LocalRequest::Init(InitRequest {
                advertise_addr: self.control.advertise_addr,
                listen_addr: self.control.listen_addr,
                data_path_addr: self.data_path_addr,
                data_path_port: self.data_path_port,
                wireguard_port: self.wireguard_port,
                default_addr_pools: self.default_addr_pool,
                default_addr_pool_mask_length: self.default_addr_pool_mask_length,
                key_rotation_interval_secs: self.key_rotation_interval.map(|d| d.as_secs()),
                force_new_cluster: self.force_new_cluster,
            }),
            timeout: LONG_TIMEOUT,
            render: Render::Init,
            progress: None,
            converge: None,
        }
    }
}

impl JoinArgs {
    /// The `Join` request.
    pub(super) fn invocation(self) -> Invocation {
        Invocation {
            progress: Some(format!("Joining the cluster at {}...", self.remote)),
            converge: None,
            request: LocalRequest::Join(JoinRequest {
                token: self.token,
                remote: self.remote,
                advertise_addr: self.control.advertise_addr,
                listen_addr: self.control.listen_addr,
                data_path_addr: self.data_path_addr,
            }),
            timeout: LONG_TIMEOUT,
            render: Render::Join,
        }
    }
}

impl JoinTokenArgs {
    /// The `JoinToken` request.
    pub(super) fn invocation(self) -> Invocation {
        Invocation::short(
            LocalRequest::JoinToken {
                role: self.role.into(),
                rotate: self.rotate,
            },
            Render::JoinToken {
                role: self.role.into(),
                quiet: self.quiet,
                rotate: self.rotate,
            },
        )
    }
}

impl LeaveArgs {
    /// The `Leave` request.
    pub(super) fn invocation(self) -> Invocation {
        Invocation::short(LocalRequest::Leave { force: self.force }, Render::Leave)
    }
}

impl StatusArgs {
    /// The `Status` request.
    pub(super) fn invocation(self) -> Invocation {
        Invocation::short(
            LocalRequest::Status,
            Render::Status {
                format: self.format,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::cli::test_support::{assert_sends, json, parse, parse_err};
    use crate::cli::SHORT_TIMEOUT;

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
}
