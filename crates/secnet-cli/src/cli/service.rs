//! `secnet service ...`: replicated or global services of tasks on overlay networks, like
//! `docker service`.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand, ValueEnum};
use secnet_api::LocalRequest;
use secnet_model::{
    Constraint, EndpointMode, RestartCondition, RestartPolicy, ServiceMode, ServiceSpec,
};

use super::{InspectFormatArg, Invocation, ListFormat, Render, SHORT_TIMEOUT};

pub(super) const SERVICE_LONG_ABOUT: &str = "\
Manage services: programs the cluster keeps running as tasks on its nodes, each task in its \
own endpoint on the service's overlay networks. The leader places the tasks (spread over \
the ready nodes that meet the constraints), restarts them per the restart policy, and moves \
the tasks of a node that goes down to other nodes. Services are managed on a manager; `ls`, \
`ps` and `inspect` work on any node.";

const SERVICE_CREATE_LONG_ABOUT: &str = "\
Create a service: the command after `--` runs as --replicas tasks (or one per eligible node \
with --mode global), each in its own endpoint (named task-<id>) on the --network networks. \
The command runs with the service's --env only (and a standard PATH), its output kept in \
the node's run directory. Waits until every task runs, showing progress, unless --detach.

Constraints select the nodes: node.role==worker, node.hostname!=h1, node.id==ID (all must \
hold). A task that no node can take waits as pending, with the reason in `service ps`.

Examples:
  secnet service create --name web --network apps --replicas 2 -- python3 -m http.server 80
  secnet service create --name agent --network apps --mode global \\
      --constraint node.role==worker -- /usr/local/bin/agent
  secnet service create --name job --network apps --restart-condition on-failure \\
      --restart-max-attempts 3 --detach -- ./run-job.sh";

const SERVICE_UPDATE_LONG_ABOUT: &str = "\
Change a service. A change of how its tasks run (command, environment, constraints, restart \
policy) replaces the tasks as a rolling update: --update-parallelism at a time (default 1; 0: \
all at once), each old task stopped before its replacement starts, the next batch \
--update-delay after the previous one runs. A change of --replicas alone only adds or stops \
tasks. Waits until every task runs from the new spec, showing progress, unless --detach.

Examples:
  secnet service update web --env-add MODE=blue
  secnet service update web --replicas 5
  secnet service update web --constraint-add node.role==worker --update-parallelism 2 \\
      --update-delay 10s
  secnet service update web -- python3 -m http.server 8080";

/// `secnet service ...`
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service (run on a manager)
    #[command(long_about = SERVICE_CREATE_LONG_ABOUT)]
    Create(ServiceCreateArgs),

    /// List services
    #[command(
        visible_alias = "list",
        long_about = "\
List the services: ID, name, mode, running/desired tasks and networks.

Examples:
  secnet service ls
  secnet service ls --format json"
    )]
    Ls(ServiceLsArgs),

    /// List the tasks of a service
    #[command(long_about = "\
List the tasks of a service, current and recent ones (the last 5 ended tasks of each slot \
are kept): name, node, desired and current state with its time, IP and why a task failed \
or waits.

Example:
  secnet service ps web")]
    Ps(ServicePsArgs),

    /// Show details of one or more services as JSON
    Inspect(ServiceInspectArgs),

    /// Show the output of a service's tasks on this node
    #[command(long_about = "\
Show what the service's tasks on this node wrote to stdout and stderr (the last 64 KiB of \
each, then, with --follow, what they write from then on), each line prefixed with the \
task's name and node: web.1@h2 | ... A task keeps its output on its node \
(<run-dir>/tasks/<task>.log, rotated at 1 MiB); the tasks on other nodes are named on \
stderr with where to look.

Examples:
  secnet service logs web
  secnet service logs --follow web")]
    Logs(ServiceLogsArgs),

    /// Change a service: its tasks are replaced, a few at a time (run on a manager)
    #[command(long_about = SERVICE_UPDATE_LONG_ABOUT)]
    Update(ServiceUpdateArgs),

    /// Change the replica count of a service (run on a manager)
    #[command(long_about = "\
Change how many tasks a replicated service runs: SERVICE=N. Tasks above the new count stop; \
new ones are placed like at create.

Example:
  secnet service scale web=5")]
    Scale(ServiceScaleArgs),

    /// Remove one or more services (run on a manager)
    #[command(
        visible_alias = "remove",
        long_about = "\
Remove services: their tasks stop (SIGTERM, then SIGKILL after 10 s) and their endpoints \
are removed. If one of the services does not exist, none is removed.

Example:
  secnet service rm web"
    )]
    Rm(ServiceRmArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Replicated,
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartArg {
    Any,
    OnFailure,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndpointModeArg {
    Vip,
    Dnsrr,
}

/// `secnet service create`
#[derive(Debug, Args)]
pub struct ServiceCreateArgs {
    /// Name of the service, unique among services and endpoints.
    #[arg(long, value_name = "NAME", value_parser = parse_service_name)]
    pub name: String,
    /// Network for the tasks' endpoints: name, ID or unique ID prefix (repeatable; the
    /// first is eth0).
    #[arg(long, value_name = "NETWORK", required = true, value_parser = NonEmptyStringValueParser::new())]
    pub network: Vec<String>,
    /// Number of tasks (replicated mode).
    #[arg(long, value_name = "N", default_value_t = 1, allow_negative_numbers = true, value_parser = parse_replicas)]
    pub replicas: u32,
    /// replicated: --replicas tasks; global: one task on every eligible node.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ModeArg::Replicated)]
    pub mode: ModeArg,
    /// Placement constraint (repeatable): node.role==worker, node.hostname!=h1, node.id==ID.
    #[arg(long, value_name = "EXPR", value_parser = parse_constraint)]
    pub constraint: Vec<Constraint>,
    /// When an ended task is replaced.
    #[arg(long, value_enum, value_name = "CONDITION", default_value_t = RestartArg::Any)]
    pub restart_condition: RestartArg,
    /// Wait between a task's end and its replacement (e.g. 5s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_delay)]
    pub restart_delay: Duration,
    /// Most replacements per task slot (default: no limit).
    #[arg(long, value_name = "N")]
    pub restart_max_attempts: Option<u32>,
    /// Environment variable of the tasks (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = super::parse::parse_label)]
    pub env: Vec<(String, String)>,
    /// How other tasks will reach the service (service discovery, a later version).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = EndpointModeArg::Vip)]
    pub endpoint_mode: EndpointModeArg,
    /// Tasks replaced at once by `service update` (0: all at once).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub update_parallelism: u32,
    /// Pause between update batches (e.g. 0s, 10s).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_delay)]
    pub update_delay: Duration,
    /// Return once the service is created, without waiting for its tasks.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `secnet service update`
#[derive(Debug, Args)]
pub struct ServiceUpdateArgs {
    /// The service: name or ID.
    #[arg(value_name = "SERVICE", value_parser = NonEmptyStringValueParser::new())]
    pub service: String,
    /// New number of tasks (replicated mode).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_replicas)]
    pub replicas: Option<u32>,
    /// Add or change an environment variable (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = super::parse::parse_label)]
    pub env_add: Vec<(String, String)>,
    /// Remove an environment variable (repeatable).
    #[arg(long, value_name = "KEY")]
    pub env_rm: Vec<String>,
    /// Add a placement constraint (repeatable).
    #[arg(long, value_name = "EXPR", value_parser = parse_constraint)]
    pub constraint_add: Vec<Constraint>,
    /// Remove a placement constraint, as written at create (repeatable).
    #[arg(long, value_name = "EXPR", value_parser = parse_constraint)]
    pub constraint_rm: Vec<Constraint>,
    /// When an ended task is replaced.
    #[arg(long, value_enum, value_name = "CONDITION")]
    pub restart_condition: Option<RestartArg>,
    /// Wait between a task's end and its replacement.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay)]
    pub restart_delay: Option<Duration>,
    /// Most replacements per task slot.
    #[arg(long, value_name = "N")]
    pub restart_max_attempts: Option<u32>,
    /// Tasks replaced at once (0: all at once).
    #[arg(long, value_name = "N")]
    pub update_parallelism: Option<u32>,
    /// Pause between update batches.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay)]
    pub update_delay: Option<Duration>,
    /// Return once the change is recorded, without waiting for the tasks.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// A new program and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn restart_condition(a: RestartArg) -> RestartCondition {
    match a {
        RestartArg::Any => RestartCondition::Any,
        RestartArg::OnFailure => RestartCondition::OnFailure,
        RestartArg::None => RestartCondition::None,
    }
}

impl ServiceUpdateArgs {
    /// The change the command asks for.
    pub fn change(&self) -> secnet_model::ServiceChange {
        secnet_model::ServiceChange {
            replicas: self.replicas,
            command: (!self.command.is_empty()).then(|| self.command.clone()),
            env_add: self.env_add.iter().cloned().collect(),
            env_rm: self.env_rm.clone(),
            constraint_add: self.constraint_add.clone(),
            constraint_rm: self.constraint_rm.iter().map(|c| c.to_string()).collect(),
            restart_condition: self.restart_condition.map(restart_condition),
            restart_delay_secs: self.restart_delay.map(|d| d.as_secs()),
            restart_max_attempts: self.restart_max_attempts,
            update_parallelism: self.update_parallelism,
            update_delay_secs: self.update_delay.map(|d| d.as_secs()),
        }
    }
}

/// `secnet service ls`
#[derive(Debug, Args)]
pub struct ServiceLsArgs {
    /// Only the IDs.
    #[arg(long, short)]
    pub quiet: bool,
    /// Output format: table or json (an array of objects).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// `secnet service ps`
#[derive(Debug, Args)]
pub struct ServicePsArgs {
    /// The service: name or ID.
    #[arg(value_name = "SERVICE", value_parser = NonEmptyStringValueParser::new())]
    pub service: String,
    /// Only the task IDs.
    #[arg(long, short)]
    pub quiet: bool,
    /// Output format: table or json (an array of objects).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// `secnet service inspect`
#[derive(Debug, Args)]
pub struct ServiceInspectArgs {
    /// Services: names or IDs.
    #[arg(value_name = "SERVICE", required = true, value_parser = NonEmptyStringValueParser::new())]
    pub services: Vec<String>,
    #[command(flatten)]
    pub format: InspectFormatArg,
}

/// `secnet service scale`
#[derive(Debug, Args)]
pub struct ServiceScaleArgs {
    /// The service (name or ID) and its new replica count.
    #[arg(value_name = "SERVICE=N", value_parser = parse_scale)]
    pub scale: (String, u32),
}

/// `secnet service logs`
#[derive(Debug, Args)]
pub struct ServiceLogsArgs {
    /// The service: name or ID.
    #[arg(value_name = "SERVICE", value_parser = NonEmptyStringValueParser::new())]
    pub service: String,
    /// Keep showing what the tasks write, until interrupted.
    #[arg(long, short)]
    pub follow: bool,
}

/// `secnet service rm`
#[derive(Debug, Args)]
pub struct ServiceRmArgs {
    /// Services: names or IDs.
    #[arg(value_name = "SERVICE", required = true, value_parser = NonEmptyStringValueParser::new())]
    pub services: Vec<String>,
}

impl ServiceCreateArgs {
    /// The spec the command asks for.
    pub fn spec(&self) -> ServiceSpec {
        ServiceSpec {
            name: self.name.clone(),
            command: self.command.clone(),
            env: self.env.iter().cloned().collect::<BTreeMap<_, _>>(),
            networks: self.network.clone(),
            mode: match self.mode {
                ModeArg::Replicated => ServiceMode::Replicated,
                ModeArg::Global => ServiceMode::Global,
            },
            replicas: self.replicas,
            constraints: self.constraint.clone(),
            restart: RestartPolicy {
                condition: restart_condition(self.restart_condition),
                delay_secs: self.restart_delay.as_secs(),
                max_attempts: self.restart_max_attempts,
            },
            endpoint_mode: match self.endpoint_mode {
                EndpointModeArg::Vip => EndpointMode::Vip,
                EndpointModeArg::Dnsrr => EndpointMode::Dnsrr,
            },
            update: secnet_model::UpdatePolicy {
                parallelism: self.update_parallelism,
                delay_secs: self.update_delay.as_secs(),
            },
        }
    }
}

impl ServiceCommand {
    /// What each `secnet service` command does.
    pub(super) fn into_action(self) -> super::Action {
        match self {
            ServiceCommand::Logs(a) => super::Action::ServiceLogs {
                service: a.service,
                follow: a.follow,
            },
            other => super::Action::Request(other.invocation()),
        }
    }

    /// The request of each `secnet service` command but `logs`.
    fn invocation(self) -> Invocation {
        match self {
            ServiceCommand::Logs(_) => unreachable!("`service logs` is not one request"),
            ServiceCommand::Create(a) => Invocation {
                request: LocalRequest::ServiceCreate(a.spec()),
                timeout: SHORT_TIMEOUT,
                render: Render::ServiceCreate,
                progress: None,
                converge: (!a.detach).then(|| a.name.clone()),
            },
            ServiceCommand::Ls(a) => Invocation::short(
                LocalRequest::ServiceLs,
                Render::ServiceLs {
                    quiet: a.quiet,
                    format: a.format,
                },
            ),
            ServiceCommand::Ps(a) => Invocation::short(
                LocalRequest::ServicePs { service: a.service },
                Render::ServicePs {
                    quiet: a.quiet,
                    format: a.format,
                },
            ),
            ServiceCommand::Inspect(a) => Invocation::short(
                LocalRequest::ServiceInspect {
                    services: a.services,
                },
                Render::ServiceInspect {
                    compact: a.format.compact(),
                },
            ),
            ServiceCommand::Update(a) => Invocation {
                request: LocalRequest::ServiceUpdate {
                    service: a.service.clone(),
                    change: a.change(),
                },
                timeout: SHORT_TIMEOUT,
                render: Render::ServiceUpdate,
                progress: None,
                converge: (!a.detach).then(|| a.service.clone()),
            },
            ServiceCommand::Scale(a) => {
                let (service, replicas) = a.scale;
                Invocation::short(
                    LocalRequest::ServiceScale { service, replicas },
                    Render::ServiceScale,
                )
            }
            ServiceCommand::Rm(a) => Invocation::short(
                LocalRequest::ServiceRm {
                    services: a.services,
                },
                Render::ServiceRm,
            ),
        }
    }
}

fn parse_service_name(s: &str) -> Result<String, String> {
    secnet_model::validate_service_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_replicas(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n <= secnet_model::MAX_REPLICAS => Ok(n),
        _ => Err(format!(
            "invalid replica count {s:?}: expected a whole number from 0 to {}",
            secnet_model::MAX_REPLICAS
        )),
    }
}

fn parse_constraint(s: &str) -> Result<Constraint, String> {
    s.parse::<Constraint>().map_err(|e| e.to_string())
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (examples: 0s, 5s, 1m)"))
}

fn parse_scale(s: &str) -> Result<(String, u32), String> {
    let (name, n) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid scale {s:?}: expected SERVICE=N, e.g. web=5"))?;
    if name.trim().is_empty() {
        return Err(format!("invalid scale {s:?}: the service name is empty"));
    }
    Ok((name.trim().to_string(), parse_replicas(n)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cli::test_support::parse_err;
    use crate::cli::{Action, Cli};
    use clap::Parser;

    fn create(args: &[&str]) -> Invocation {
        let mut argv = vec!["secnet", "service", "create"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command.into_action() {
            Action::Request(i) => i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_builds_the_spec_and_waits_unless_detached() {
        let i = create(&[
            "--name",
            "web",
            "--network",
            "apps",
            "--network",
            "db",
            "--replicas",
            "2",
            "--constraint",
            "node.role==worker",
            "--env",
            "PORT=80",
            "--restart-delay",
            "1s",
            "--",
            "python3",
            "-m",
            "http.server",
            "80",
        ]);
        let LocalRequest::ServiceCreate(spec) = &i.request else {
            panic!("{:?}", i.request)
        };
        assert_eq!(spec.command, ["python3", "-m", "http.server", "80"]);
        assert_eq!(spec.networks, ["apps", "db"]);
        assert_eq!((spec.replicas, spec.restart.delay_secs), (2, 1));
        assert_eq!(spec.env["PORT"], "80");
        assert_eq!(spec.constraints[0].to_string(), "node.role==worker");
        assert_eq!(i.converge.as_deref(), Some("web"));
        let detached = create(&["--name", "w", "--network", "n", "-d", "--", "true"]);
        assert_eq!(detached.converge, None);
    }

    #[test]
    fn bad_input_is_refused_before_the_daemon_is_asked() {
        for (args, needle) in [
            (
                vec![
                    "--name",
                    "web",
                    "--network",
                    "n",
                    "--replicas",
                    "-1",
                    "--",
                    "x",
                ],
                "replica",
            ),
            (
                vec![
                    "--name",
                    "web",
                    "--network",
                    "n",
                    "--constraint",
                    "node.zone==a",
                    "--",
                    "x",
                ],
                "node.zone==a",
            ),
            (
                vec!["--name", "bad/name", "--network", "n", "--", "x"],
                "bad/name",
            ),
            (vec!["--name", "web", "--network", "n"], "COMMAND"),
            (vec!["--name", "web", "--", "x"], "--network"),
        ] {
            let mut argv = vec!["service", "create"];
            argv.extend(args);
            let err = parse_err(&argv);
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let err = parse_err(&["service", "scale", "web"]);
        assert!(err.contains("SERVICE=N"), "{err}");
    }
}
