//! `secnet network ...`: the overlay networks, and the parser of `--opt`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};
use ipnet::Ipv4Net;
use secnet_api::LocalRequest;
use secnet_model::NetworkSpec;

use super::parse::{parse_cidr, parse_label, parse_network_name};
use super::{InspectFormatArg, Invocation, ListFormat, Render};

pub(super) const NETWORK_LONG_ABOUT: &str = "\
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
    #[arg(value_name = "NAME", value_parser = parse_network_name)]
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

/// A parsed `--opt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkOpt {
    Encrypted(bool),
    Mtu(u32),
}

impl NetworkCommand {
    /// The request of each `secnet network` command.
    pub(super) fn invocation(self) -> Invocation {
        match self {
            NetworkCommand::Create(a) => Invocation::short(
                LocalRequest::NetworkCreate(a.into_spec()),
                Render::NetworkCreate,
            ),
            NetworkCommand::Ls(a) => Invocation::short(
                LocalRequest::NetworkLs,
                Render::NetworkLs {
                    quiet: a.quiet,
                    format: a.format,
                },
            ),
            NetworkCommand::Inspect(a) => Invocation::short(
                LocalRequest::NetworkInspect {
                    networks: a.networks,
                },
                Render::NetworkInspect {
                    compact: a.format.compact(),
                },
            ),
            NetworkCommand::Rm(a) => Invocation::short(
                LocalRequest::NetworkRm {
                    networks: a.networks,
                },
                Render::NetworkRm,
            ),
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
            let (min, max) = (secnet_model::MIN_MTU, secnet_model::MAX_MTU);
            match v.parse::<u32>() {
                // The model's check, the one the daemon applies.
                Ok(n) => match secnet_model::validate_mtu(n) {
                    Ok(()) => Ok(NetworkOpt::Mtu(n)),
                    Err(_) => Err(format!(
                        "invalid MTU {v:?}: accepted range is {min} to {max}"
                    )),
                },
                Err(_) => Err(format!(
                    "invalid MTU {v:?}: expected a whole number from {min} to {max}"
                )),
            }
        }
        other => Err(format!(
            "unknown network option {other:?}: accepted options are encrypted, mtu=N"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::cli::test_support::{assert_sends, json, parse, parse_err};

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
}
