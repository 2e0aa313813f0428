//! `secnet endpoint ...`, and `secnet run` and `secnet exec`, which run a command in an
//! endpoint.

use std::net::Ipv4Addr;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};
use secnet_api::LocalRequest;

use super::parse::parse_endpoint_name;
use super::{Action, InspectFormatArg, Invocation, ListFormat, Render, ENDPOINT_TIMEOUT};

pub(super) const ENDPOINT_LONG_ABOUT: &str = "\
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
    #[arg(long, value_name = "NAME", value_parser = parse_endpoint_name)]
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

pub(super) const RUN_LONG_ABOUT: &str = "\
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

pub(super) const EXEC_LONG_ABOUT: &str = "\
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

impl EndpointCommand {
    /// The request of each `secnet endpoint` command.
    pub(super) fn invocation(self) -> Invocation {
        match self {
            EndpointCommand::Create(a) => Invocation::within(
                ENDPOINT_TIMEOUT,
                a.endpoint.into_request(),
                Render::EndpointCreate { format: a.format },
            ),
            EndpointCommand::Ls(a) => Invocation::short(
                LocalRequest::EndpointLs { network: a.network },
                Render::EndpointLs {
                    quiet: a.quiet,
                    format: a.format,
                },
            ),
            EndpointCommand::Inspect(a) => Invocation::short(
                LocalRequest::EndpointInspect {
                    endpoints: a.endpoints,
                },
                Render::EndpointInspect {
                    compact: a.format.compact(),
                },
            ),
            EndpointCommand::Rm(a) => Invocation::within(
                ENDPOINT_TIMEOUT,
                LocalRequest::EndpointRm {
                    endpoints: a.endpoints,
                },
                Render::EndpointRm,
            ),
            EndpointCommand::Connect(a) => Invocation::within(
                ENDPOINT_TIMEOUT,
                LocalRequest::EndpointConnect {
                    network: a.network,
                    endpoint: a.endpoint,
                    ip: a.ip,
                },
                Render::EndpointInterfaces,
            ),
            EndpointCommand::Disconnect(a) => Invocation::within(
                ENDPOINT_TIMEOUT,
                LocalRequest::EndpointDisconnect {
                    network: a.network,
                    endpoint: a.endpoint,
                },
                Render::EndpointInterfaces,
            ),
        }
    }
}

impl RunArgs {
    /// `secnet run`: create the endpoint, run the command in it, remove it.
    pub(super) fn into_action(self) -> Action {
        Action::Run {
            create: self.endpoint.into_request(),
            command: self.command,
        }
    }
}

impl ExecArgs {
    /// `secnet exec`: run the command in the endpoint's namespace.
    pub(super) fn into_action(self) -> Action {
        Action::Exec {
            endpoint: self.endpoint,
            command: self.command,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::{assert_sends, json, parse, parse_action, parse_err};

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
}
