//! Services and their tasks, as the cluster agrees on them: the spec a user asks for
//! ([`ServiceSpec`]), the tasks the leader's scheduler makes of it ([`Task`]), and the
//! commands that change them ([`ServiceCommand`], applied by `ClusterState::apply`). Task
//! states follow Swarm's. Like the rest of the model this is pure: ids and times come inside
//! the commands.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::NodeId;
use crate::objects::{Node, Role};

/// Most replicas a replicated service may ask for.
pub const MAX_REPLICAS: u32 = 10_000;
/// Terminated tasks kept per slot (or per node, in global mode) for `service ps`: Swarm's
/// default task history.
pub const TASK_HISTORY: usize = 5;

/// Why a service command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ServiceError {
    #[error("invalid service name {0:?}: use 1-64 characters, starting with a letter or digit, followed by letters, digits, '_', '.' or '-'")]
    InvalidName(String),
    #[error("the name {0:?} is taken by a service or an endpoint; choose another name")]
    NameTaken(String),
    #[error("service {0:?} not found; `secnet service ls` lists the services")]
    NotFound(String),
    #[error("service id {0} is already taken")]
    IdTaken(String),
    #[error("a service needs a command: give it after `--`, e.g. `-- python3 -m http.server 80`")]
    EmptyCommand,
    #[error("a service needs at least one network (--network)")]
    NoNetwork,
    #[error("invalid replica count {0}: accepted range is 0 to 10000")]
    InvalidReplicas(u32),
    #[error("invalid environment variable name {0:?}: use letters, digits and '_', not starting with a digit")]
    InvalidEnv(String),
    #[error("invalid constraint {0:?}: expected node.role==manager|worker, node.hostname==NAME or node.id==ID, with == or !=")]
    InvalidConstraint(String),
    #[error("task {0} not found")]
    TaskNotFound(String),
    #[error("node {node:?} may not run tasks of service {service:?}: it is not ready or does not meet the constraints")]
    NodeIneligible { node: String, service: String },
    #[error("task id {0} is already taken")]
    TaskIdTaken(String),
    #[error("task {task} runs on node {owner}, not on node {caller}")]
    NotTheTasksNode {
        task: String,
        owner: String,
        caller: NodeId,
    },
    #[error("task {task} cannot go from {from} to {to}")]
    BadTransition {
        task: String,
        from: TaskState,
        to: TaskState,
    },
    #[error(
        "network {network:?} is used by service {service:?}; remove or update the service first"
    )]
    NetworkInUse { network: String, service: String },
}

/// How many tasks a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    /// `replicas` tasks, spread over the eligible nodes.
    Replicated,
    /// One task on every eligible node.
    Global,
}

impl ServiceMode {
    /// `replicated` or `global`, as the JSON has it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceMode::Replicated => "replicated",
            ServiceMode::Global => "global",
        }
    }
}

/// How other tasks reach a service (used by service discovery, the next issue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// One virtual IP, load-balanced over the tasks.
    #[default]
    Vip,
    /// DNS round robin over the tasks' addresses.
    Dnsrr,
}

impl EndpointMode {
    /// `vip` or `dnsrr`, as the JSON has it.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointMode::Vip => "vip",
            EndpointMode::Dnsrr => "dnsrr",
        }
    }
}

/// When a task that ended is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    /// Whatever the exit.
    #[default]
    Any,
    /// Only after a failure (non-zero exit, a signal, or a task that could not start).
    OnFailure,
    /// Never (a task lost with its node is still rescheduled).
    None,
}

impl RestartCondition {
    /// `any`, `on-failure` or `none`, as the JSON and the CLI have it.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartCondition::Any => "any",
            RestartCondition::OnFailure => "on-failure",
            RestartCondition::None => "none",
        }
    }
}

/// Swarm's restart policy: condition, delay, and how many tries at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub condition: RestartCondition,
    /// Seconds between a task's end and its replacement.
    pub delay_secs: u64,
    /// Most replacements per slot (or node) of tasks that ended by themselves; `None`: no
    /// limit. A task lost with its node is replaced regardless.
    pub max_attempts: Option<u32>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            condition: RestartCondition::Any,
            delay_secs: 5,
            max_attempts: None,
        }
    }
}

/// What a constraint looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConstraintKey {
    Role,
    Hostname,
    Id,
}

/// How `service update` replaces the tasks: how many at a time, and the pause after each
/// batch runs. Swarm's defaults: one at a time, no pause; stop the old task first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatePolicy {
    /// Tasks replaced at once; 0: all at once.
    pub parallelism: u32,
    /// Seconds between a batch running and the next one starting.
    pub delay_secs: u64,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        UpdatePolicy {
            parallelism: 1,
            delay_secs: 0,
        }
    }
}

/// A placement constraint: `node.role==worker`, `node.hostname!=h1`, `node.id==...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub key: ConstraintKey,
    /// `==` when true, `!=` when false.
    pub equal: bool,
    pub value: String,
}

impl Constraint {
    /// Whether `node` satisfies it.
    pub fn admits(&self, node: &Node) -> bool {
        let actual = match self.key {
            ConstraintKey::Role => node.role.as_str().to_string(),
            ConstraintKey::Hostname => node.hostname.clone(),
            ConstraintKey::Id => node.id.to_string(),
        };
        (actual == self.value) == self.equal
    }
}

impl FromStr for Constraint {
    type Err = ServiceError;
    fn from_str(s: &str) -> Result<Self, ServiceError> {
        let bad = || ServiceError::InvalidConstraint(s.to_string());
        let (field, equal, value) = if let Some((f, v)) = s.split_once("==") {
            (f, true, v)
        } else if let Some((f, v)) = s.split_once("!=") {
            (f, false, v)
        } else {
            return Err(bad());
        };
        let key = match field.trim() {
            "node.role" => ConstraintKey::Role,
            "node.hostname" => ConstraintKey::Hostname,
            "node.id" => ConstraintKey::Id,
            _ => return Err(bad()),
        };
        let value = value.trim();
        let value_ok = !value.is_empty()
            && !value.contains(['=', '!'])
            && match key {
                ConstraintKey::Role => value.parse::<Role>().is_ok(),
                _ => true,
            };
        if !value_ok {
            return Err(bad());
        }
        Ok(Constraint {
            key,
            equal,
            value: value.to_string(),
        })
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match self.key {
            ConstraintKey::Role => "node.role",
            ConstraintKey::Hostname => "node.hostname",
            ConstraintKey::Id => "node.id",
        };
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "{key}{op}{}", self.value)
    }
}

/// What a user asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Unique among services and endpoints (tasks' endpoints are named after it).
    pub name: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Networks by name or id as given; ids once stored.
    pub networks: Vec<String>,
    pub mode: ServiceMode,
    /// Desired tasks in replicated mode (ignored in global mode).
    pub replicas: u32,
    pub constraints: Vec<Constraint>,
    pub restart: RestartPolicy,
    pub endpoint_mode: EndpointMode,
    #[serde(default)]
    pub update: UpdatePolicy,
}

impl ServiceSpec {
    /// Whether `other` runs its tasks differently: anything but the replica count and the
    /// update policy. A change of it makes `service update` replace the tasks.
    pub fn same_tasks(&self, other: &ServiceSpec) -> bool {
        let strip = |s: &ServiceSpec| ServiceSpec {
            replicas: 0,
            update: UpdatePolicy::default(),
            ..s.clone()
        };
        strip(self) == strip(other)
    }
}

/// A stored service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub spec: ServiceSpec,
    /// Increases with every update.
    pub version: u64,
    /// Increases with every update that changes how tasks run ([`ServiceSpec::same_tasks`]);
    /// tasks remember the one they were made from, and older ones are replaced.
    #[serde(default)]
    pub tasks_version: u64,
    pub created_at: u64,
    pub updated_at: u64,
}

impl Service {
    /// Whether `node` may run this service's tasks: ready, and admitted by every constraint.
    pub fn admits(&self, node: &Node) -> bool {
        node.status == crate::objects::NodeStatus::Ready
            && self.spec.constraints.iter().all(|c| c.admits(node))
    }
}

/// A task's state, in Swarm's order: a task moves forward only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    New,
    /// Waiting for a node (none eligible yet).
    Pending,
    /// Given to a node, not started yet.
    Assigned,
    /// The node prepares its endpoint.
    Preparing,
    Starting,
    Running,
    /// Ended with exit code 0.
    Complete,
    /// Ended otherwise.
    Failed,
    /// Stopped because it was no longer wanted.
    Shutdown,
    /// The node could not run it.
    Rejected,
    /// Lost with its node (down or removed).
    Orphaned,
}

impl TaskState {
    /// Whether the task has ended (it never runs again; a new task replaces it).
    pub fn is_terminal(self) -> bool {
        self >= TaskState::Complete
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Preparing => "preparing",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Failed => "failed",
            TaskState::Shutdown => "shutdown",
            TaskState::Rejected => "rejected",
            TaskState::Orphaned => "orphaned",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of a service's program on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub service_id: String,
    /// 1, 2, ... in replicated mode (the task is `NAME.SLOT`); 0 in global mode, where the
    /// node names it.
    pub slot: u32,
    /// `None` while pending.
    pub node: Option<NodeId>,
    /// `Running` or `Shutdown`: what the scheduler wants.
    pub desired: TaskState,
    /// What the node last reported (or the scheduler decided, for pending and orphaned).
    pub state: TaskState,
    /// Unix seconds of the last state change.
    pub state_at: u64,
    /// Why it is in its state ("no suitable node: ...", "exited with code 1").
    pub message: String,
    pub exit_code: Option<i32>,
    /// 1 for the first task of a slot, then one more per replacement.
    pub attempt: u32,
    /// The service's `tasks_version` it was made from.
    pub service_version: u64,
    pub created_at: u64,
}

impl Task {
    /// Whether it counts towards the service's desired tasks: wanted and not ended.
    pub fn is_live(&self) -> bool {
        self.desired == TaskState::Running && !self.state.is_terminal()
    }
}

/// A change to services and tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceCommand {
    /// `service create`: the spec is validated and its networks resolved to ids.
    Create {
        id: String,
        spec: ServiceSpec,
        created_at: u64,
    },
    /// `service update` / `scale`: a new spec, one version more.
    Update {
        id: String,
        spec: ServiceSpec,
        updated_at: u64,
    },
    /// `service rm`: the service goes; its tasks are told to shut down.
    Remove { id: String, at: u64 },
    /// The scheduler: a new task, assigned to a node or pending.
    AddTask { task: Task },
    /// The scheduler: a pending task gets a node.
    Assign { id: String, node: NodeId, at: u64 },
    /// The scheduler: the task is no longer wanted.
    Shutdown { id: String, at: u64 },
    /// The scheduler: the task was lost with its node.
    Orphan { id: String, at: u64, reason: String },
    /// The node running the task: what it observed.
    Report {
        id: String,
        node: NodeId,
        state: TaskState,
        at: u64,
        exit_code: Option<i32>,
        message: String,
    },
    /// The scheduler: ended tasks beyond the history, or of removed services.
    Prune { ids: Vec<String> },
}

/// Service names follow the network naming rule (tasks' endpoints and, later, DNS names
/// come from them).
pub fn validate_service_name(name: &str) -> Result<(), ServiceError> {
    crate::state::validate_network_name(name).map_err(|_| ServiceError::InvalidName(name.into()))
}

/// Checks a spec apart from the cluster (names, command, env, counts).
pub fn validate_spec(spec: &ServiceSpec) -> Result<(), ServiceError> {
    validate_service_name(&spec.name)?;
    if spec.command.is_empty() || spec.command[0].trim().is_empty() {
        return Err(ServiceError::EmptyCommand);
    }
    if spec.networks.is_empty() {
        return Err(ServiceError::NoNetwork);
    }
    if spec.replicas > MAX_REPLICAS {
        return Err(ServiceError::InvalidReplicas(spec.replicas));
    }
    for key in spec.env.keys() {
        let mut chars = key.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(ServiceError::InvalidEnv(key.clone()));
        }
    }
    Ok(())
}

/// The name `service ps` shows: `web.1`, or `web.<node>` in global mode.
pub fn task_name(service: &str, task: &Task) -> String {
    match (task.slot, task.node) {
        (0, Some(node)) => format!("{service}.{node}"),
        (slot, _) => format!("{service}.{slot}"),
    }
}

impl crate::state::ClusterState {
    /// The service with this name or id.
    pub fn find_service(&self, name_or_id: &str) -> Result<&Service, ServiceError> {
        self.services
            .get(name_or_id)
            .or_else(|| self.services.values().find(|s| s.spec.name == name_or_id))
            .ok_or_else(|| ServiceError::NotFound(name_or_id.to_string()))
    }

    /// The tasks of a service, oldest first.
    pub fn tasks_of<'a>(&'a self, service_id: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
        let mut tasks: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| t.service_id == service_id)
            .collect();
        tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        tasks.into_iter()
    }

    /// A spec checked against the cluster, its networks resolved to ids.
    fn resolved(&self, spec: ServiceSpec, id: &str) -> Result<ServiceSpec, crate::ModelError> {
        validate_spec(&spec)?;
        let taken_by_service = self
            .services
            .values()
            .any(|s| s.spec.name == spec.name && s.id != id);
        if taken_by_service || self.endpoints.contains_key(&spec.name) {
            return Err(ServiceError::NameTaken(spec.name.clone()).into());
        }
        let mut networks = Vec::new();
        for n in &spec.networks {
            let id = self.find_network(n)?.id.clone();
            if !networks.contains(&id) {
                networks.push(id);
            }
        }
        Ok(ServiceSpec { networks, ..spec })
    }

    /// A task of `service_id` may go to `node` only if the node exists, is ready and meets
    /// the service's constraints: checked here, authoritatively, whatever the scheduler saw.
    fn check_admits(&self, service_id: &str, node: NodeId) -> Result<(), crate::ModelError> {
        let service = self
            .services
            .get(service_id)
            .ok_or_else(|| ServiceError::NotFound(service_id.to_string()))?;
        let n = self
            .nodes
            .get(&node)
            .ok_or_else(|| crate::ModelError::NodeNotFound(node.to_string()))?;
        if !service.admits(n) {
            return Err(ServiceError::NodeIneligible {
                node: n.hostname.clone(),
                service: service.spec.name.clone(),
            }
            .into());
        }
        Ok(())
    }

    fn task_mut(&mut self, id: &str) -> Result<&mut Task, ServiceError> {
        self.tasks
            .get_mut(id)
            .ok_or_else(|| ServiceError::TaskNotFound(id.to_string()))
    }

    pub(crate) fn apply_service(
        &mut self,
        cmd: ServiceCommand,
    ) -> Result<crate::Response, crate::ModelError> {
        use crate::Response;
        match cmd {
            ServiceCommand::Create {
                id,
                spec,
                created_at,
            } => {
                if self.services.contains_key(&id) {
                    return Err(ServiceError::IdTaken(id).into());
                }
                let spec = self.resolved(spec, &id)?;
                let service = Service {
                    id: id.clone(),
                    spec,
                    version: 1,
                    tasks_version: 1,
                    created_at,
                    updated_at: created_at,
                };
                self.services.insert(id, service.clone());
                Ok(Response::Service(service))
            }
            ServiceCommand::Update {
                id,
                spec,
                updated_at,
            } => {
                if !self.services.contains_key(&id) {
                    return Err(ServiceError::NotFound(id).into());
                }
                let spec = self.resolved(spec, &id)?;
                let service = self
                    .services
                    .get_mut(&id)
                    .ok_or_else(|| ServiceError::NotFound(id.clone()))?;
                if !service.spec.same_tasks(&spec) {
                    service.tasks_version += 1;
                }
                service.spec = spec;
                service.version += 1;
                service.updated_at = updated_at;
                Ok(Response::Service(service.clone()))
            }
            ServiceCommand::Remove { id, at } => {
                if self.services.remove(&id).is_none() {
                    return Err(ServiceError::NotFound(id).into());
                }
                for t in self.tasks.values_mut().filter(|t| t.service_id == id) {
                    if t.desired != TaskState::Shutdown {
                        t.desired = TaskState::Shutdown;
                        t.state_at = at;
                    }
                }
                Ok(Response::Done)
            }
            ServiceCommand::AddTask { task } => {
                if self.tasks.contains_key(&task.id) {
                    return Err(ServiceError::TaskIdTaken(task.id).into());
                }
                if !self.services.contains_key(&task.service_id) {
                    return Err(ServiceError::NotFound(task.service_id).into());
                }
                if let Some(node) = task.node {
                    self.check_admits(&task.service_id, node)?;
                }
                self.tasks.insert(task.id.clone(), task);
                Ok(Response::Done)
            }
            ServiceCommand::Assign { id, node, at } => {
                let service_id = self.task_mut(&id)?.service_id.clone();
                self.check_admits(&service_id, node)?;
                let t = self.task_mut(&id)?;
                if t.state != TaskState::Pending {
                    return Err(bad_transition(t, TaskState::Assigned).into());
                }
                t.node = Some(node);
                t.state = TaskState::Assigned;
                t.state_at = at;
                t.message = String::new();
                Ok(Response::Done)
            }
            ServiceCommand::Shutdown { id, at } => {
                let t = self.task_mut(&id)?;
                if t.desired != TaskState::Shutdown {
                    t.desired = TaskState::Shutdown;
                    t.state_at = at;
                }
                // A task no node has started ends here.
                if matches!(t.state, TaskState::New | TaskState::Pending) {
                    t.state = TaskState::Shutdown;
                }
                Ok(Response::Done)
            }
            ServiceCommand::Orphan { id, at, reason } => {
                let t = self.task_mut(&id)?;
                if t.state.is_terminal() {
                    return Err(bad_transition(t, TaskState::Orphaned).into());
                }
                t.state = TaskState::Orphaned;
                t.desired = TaskState::Shutdown;
                t.state_at = at;
                t.message = reason;
                Ok(Response::Done)
            }
            ServiceCommand::Report {
                id,
                node,
                state,
                at,
                exit_code,
                message,
            } => {
                let t = self.task_mut(&id)?;
                if t.node != Some(node) {
                    return Err(ServiceError::NotTheTasksNode {
                        task: id,
                        owner: t.node.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                        caller: node,
                    }
                    .into());
                }
                // Forward only; an ended task stays ended.
                if state < t.state || t.state.is_terminal() || state <= TaskState::Pending {
                    if state == t.state {
                        return Ok(Response::Done);
                    }
                    return Err(bad_transition(t, state).into());
                }
                t.state = state;
                t.state_at = at;
                t.exit_code = exit_code;
                t.message = message;
                Ok(Response::Done)
            }
            ServiceCommand::Prune { ids } => {
                for id in &ids {
                    if self.tasks.get(id).is_some_and(|t| !t.state.is_terminal()) {
                        let t = self.task_mut(id)?;
                        return Err(bad_transition(t, TaskState::Shutdown).into());
                    }
                }
                for id in ids {
                    self.tasks.remove(&id);
                }
                Ok(Response::Done)
            }
        }
    }
}

fn bad_transition(t: &Task, to: TaskState) -> ServiceError {
    ServiceError::BadTransition {
        task: t.id.clone(),
        from: t.state,
        to,
    }
}

/// What `service update` changes; everything left out stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceChange {
    pub replicas: Option<u32>,
    /// A new command (`-- CMD...` on `service update`).
    pub command: Option<Vec<String>>,
    pub env_add: BTreeMap<String, String>,
    pub env_rm: Vec<String>,
    pub constraint_add: Vec<Constraint>,
    /// Constraints to drop, in their text form (`node.role==worker`).
    pub constraint_rm: Vec<String>,
    pub restart_condition: Option<RestartCondition>,
    pub restart_delay_secs: Option<u64>,
    pub restart_max_attempts: Option<u32>,
    pub update_parallelism: Option<u32>,
    pub update_delay_secs: Option<u64>,
}

impl ServiceChange {
    /// The spec after the change.
    pub fn applied_to(&self, spec: &ServiceSpec) -> ServiceSpec {
        let mut s = spec.clone();
        if let Some(n) = self.replicas {
            s.replicas = n;
        }
        if let Some(c) = &self.command {
            s.command = c.clone();
        }
        for k in &self.env_rm {
            s.env.remove(k);
        }
        s.env.extend(self.env_add.clone());
        s.constraints
            .retain(|c| !self.constraint_rm.contains(&c.to_string()));
        for c in &self.constraint_add {
            if !s.constraints.contains(c) {
                s.constraints.push(c.clone());
            }
        }
        if let Some(c) = self.restart_condition {
            s.restart.condition = c;
        }
        if let Some(d) = self.restart_delay_secs {
            s.restart.delay_secs = d;
        }
        if let Some(m) = self.restart_max_attempts {
            s.restart.max_attempts = Some(m);
        }
        if let Some(p) = self.update_parallelism {
            s.update.parallelism = p;
        }
        if let Some(d) = self.update_delay_secs {
            s.update.delay_secs = d;
        }
        s
    }
}
