//! The scheduler, a leader's duty: turns services into tasks on nodes. A pure function of
//! the state and the time; new task ids come from the caller. Everything it knows is in the
//! replicated state, so a new leader resumes where the old one left off.
//!
//! - **Placement**: over the `Ready` nodes that satisfy every constraint, the node with the
//!   fewest live tasks of this service, then the fewest live tasks overall, then the lowest
//!   id. No eligible node: the task waits `pending`, with the reason, and is assigned as soon
//!   as one is.
//! - **Replicated**: one live task per slot `1..=replicas`; slots above go (scale down).
//! - **Global**: one live task per eligible node; a node that is no longer eligible loses its
//!   task, a new one gets one.
//! - **Restarts**: a slot whose task ended gets a new one per the restart policy (condition,
//!   delay after the end, at most `max_attempts` replacements of failures).
//! - **Lost nodes**: the live tasks of a node that is down or removed are orphaned and
//!   replaced elsewhere, whatever the restart condition.
//! - **History**: per slot (or node) the newest [`TASK_HISTORY`] ended tasks are kept; ended
//!   tasks of removed services go.

use std::collections::{BTreeMap, BTreeSet};

use secnet_model::{
    ClusterState, Command, Node, NodeId, NodeStatus, RestartCondition, Service, ServiceCommand,
    ServiceMode, Task, TaskState, TASK_HISTORY,
};

/// The commands the leader should propose now; `fresh_id` makes the id of a new task.
pub fn plan(state: &ClusterState, now: u64, fresh_id: &mut dyn FnMut() -> String) -> Vec<Command> {
    let mut out = Vec::new();
    // Live tasks per node, all services: the second placement criterion. Updated as this
    // plan places tasks, so one plan spreads like several would.
    let mut load: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut lost = BTreeSet::new();
    for t in state.tasks.values().filter(|t| t.is_live()) {
        match t.node {
            Some(n) if node_lost(state, n) => {
                lost.insert(t.id.clone());
                let name = state.nodes.get(&n).map(|n| n.hostname.clone());
                out.push(ServiceCommand::Orphan {
                    id: t.id.clone(),
                    at: now,
                    reason: match name {
                        Some(host) => format!("node {host} is down"),
                        None => format!("node {n} left the cluster"),
                    },
                });
            }
            Some(n) => *load.entry(n).or_default() += 1,
            None => {}
        }
    }
    for service in state.services.values() {
        let tasks: Vec<&Task> = state.tasks_of(&service.id).collect();
        let eligible: Vec<&Node> = state.nodes.values().filter(|n| service.admits(n)).collect();
        let mut ctx = Ctx {
            service,
            eligible: &eligible,
            lost: &lost,
            load: &mut load,
            now,
            out: &mut out,
        };
        match service.spec.mode {
            ServiceMode::Replicated => ctx.replicated(&tasks, fresh_id),
            ServiceMode::Global => ctx.global(&tasks, fresh_id),
        }
        ctx.rolling_update(&tasks);
    }
    // Live tasks of removed services go; their ended tasks are pruned below.
    for t in state.tasks.values() {
        if t.is_live() && !state.services.contains_key(&t.service_id) && !lost.contains(&t.id) {
            out.push(ServiceCommand::Shutdown {
                id: t.id.clone(),
                at: now,
            });
        }
    }
    let prune = prunable(state);
    if !prune.is_empty() {
        out.push(ServiceCommand::Prune { ids: prune });
    }
    out.into_iter().map(Command::Service).collect()
}

/// A node whose tasks are lost: down, or no longer in the cluster.
fn node_lost(state: &ClusterState, node: NodeId) -> bool {
    state
        .nodes
        .get(&node)
        .is_none_or(|n| n.status == NodeStatus::Down)
}

struct Ctx<'a> {
    service: &'a Service,
    eligible: &'a [&'a Node],
    /// Live tasks orphaned by this plan: no longer live.
    lost: &'a BTreeSet<String>,
    load: &'a mut BTreeMap<NodeId, usize>,
    now: u64,
    out: &'a mut Vec<ServiceCommand>,
}

impl Ctx<'_> {
    /// Wanted, not ended, and not lost with its node in this very plan.
    fn is_live(&self, t: &Task) -> bool {
        t.is_live() && !self.lost.contains(&t.id)
    }

    fn replicated(&mut self, tasks: &[&Task], fresh_id: &mut dyn FnMut() -> String) {
        let replicas = self.service.spec.replicas;
        let mut per_service = self.service_load(tasks);
        for slot in 1..=replicas {
            let of_slot: Vec<&Task> = tasks.iter().copied().filter(|t| t.slot == slot).collect();
            if let Some(live) = of_slot.iter().find(|t| self.is_live(t)) {
                if live.state == TaskState::Pending {
                    self.assign(live, &mut per_service);
                }
                continue;
            }
            if let Some(attempt) = self.replacement(&of_slot) {
                self.add(slot, None, attempt, &mut per_service, fresh_id);
            }
        }
        let surplus: Vec<&Task> = tasks
            .iter()
            .copied()
            .filter(|t| self.is_live(t) && t.slot > replicas)
            .collect();
        for t in surplus {
            self.shutdown(t);
        }
    }

    fn global(&mut self, tasks: &[&Task], fresh_id: &mut dyn FnMut() -> String) {
        let mut per_service = self.service_load(tasks);
        let eligible: BTreeSet<NodeId> = self.eligible.iter().map(|n| n.id).collect();
        for node in &eligible {
            let of_node: Vec<&Task> = tasks
                .iter()
                .copied()
                .filter(|t| t.node == Some(*node))
                .collect();
            if of_node.iter().any(|t| self.is_live(t)) {
                continue;
            }
            if let Some(attempt) = self.replacement(&of_node) {
                self.add(0, Some(*node), attempt, &mut per_service, fresh_id);
            }
        }
        let misplaced: Vec<&Task> = tasks
            .iter()
            .copied()
            .filter(|t| self.is_live(t) && t.node.is_none_or(|n| !eligible.contains(&n)))
            .collect();
        for t in misplaced {
            self.shutdown(t);
        }
    }

    /// Live tasks of this service per node.
    fn service_load(&self, tasks: &[&Task]) -> BTreeMap<NodeId, usize> {
        let mut m = BTreeMap::new();
        for n in tasks
            .iter()
            .filter(|t| self.is_live(t))
            .filter_map(|t| t.node)
        {
            *m.entry(n).or_default() += 1;
        }
        m
    }

    /// Whether an empty slot gets a task now, and its attempt number: the first task, a task
    /// lost with its node (always replaced), or an ended one the restart policy replaces
    /// once its delay has passed.
    fn replacement(&self, history: &[&Task]) -> Option<u32> {
        let Some(last) = history.iter().max_by_key(|t| (t.created_at, t.attempt)) else {
            return Some(1);
        };
        let next = last.attempt + 1;
        if self.lost.contains(&last.id) || last.state == TaskState::Orphaned {
            return Some(next);
        }
        // Stopped by us (an update, or a scale-down then up): replaced once it has stopped
        // (stop first, as Swarm does by default).
        if last.desired == TaskState::Shutdown && !last.state.is_terminal() {
            return None;
        }
        // Shut down by us (a scale-down, then up again): replaced at once.
        if last.state == TaskState::Shutdown {
            return Some(next);
        }
        let policy = &self.service.spec.restart;
        let failed = matches!(last.state, TaskState::Failed | TaskState::Rejected);
        let wanted = match policy.condition {
            RestartCondition::Any => true,
            RestartCondition::OnFailure => failed,
            RestartCondition::None => false,
        };
        // `last.attempt - 1` replacements were made in this slot so far.
        let within_attempts = policy.max_attempts.is_none_or(|max| last.attempt <= max);
        let delay_over = self.now >= last.state_at.saturating_add(policy.delay_secs);
        (wanted && within_attempts && delay_over).then_some(next)
    }

    /// The node for a new task of this service, if one is eligible.
    fn pick(&self, per_service: &BTreeMap<NodeId, usize>) -> Option<NodeId> {
        self.eligible.iter().map(|n| n.id).min_by_key(|id| {
            (
                per_service.get(id).copied().unwrap_or(0),
                self.load.get(id).copied().unwrap_or(0),
                *id,
            )
        })
    }

    fn add(
        &mut self,
        slot: u32,
        node: Option<NodeId>,
        attempt: u32,
        per_service: &mut BTreeMap<NodeId, usize>,
        fresh_id: &mut dyn FnMut() -> String,
    ) {
        let node = node.or_else(|| self.pick(per_service));
        let (state, message) = match node {
            Some(n) => {
                *per_service.entry(n).or_default() += 1;
                *self.load.entry(n).or_default() += 1;
                (TaskState::Assigned, String::new())
            }
            None => (TaskState::Pending, self.no_node_reason()),
        };
        self.out.push(ServiceCommand::AddTask {
            task: Task {
                id: fresh_id(),
                service_id: self.service.id.clone(),
                slot,
                node,
                desired: TaskState::Running,
                state,
                state_at: self.now,
                message,
                exit_code: None,
                attempt,
                service_version: self.service.tasks_version,
                created_at: self.now,
            },
        });
    }

    fn assign(&mut self, task: &Task, per_service: &mut BTreeMap<NodeId, usize>) {
        if let Some(n) = self.pick(per_service) {
            *per_service.entry(n).or_default() += 1;
            *self.load.entry(n).or_default() += 1;
            self.out.push(ServiceCommand::Assign {
                id: task.id.clone(),
                node: n,
                at: self.now,
            });
        }
    }

    /// `service update`: tasks made from an older `tasks_version` are replaced, at most
    /// `parallelism` at a time (stop first; the slot is refilled once the old task stopped),
    /// the next batch only `delay_secs` after the newest replacement runs.
    fn rolling_update(&mut self, tasks: &[&Task]) {
        let current = self.service.tasks_version;
        let stale: Vec<&Task> = tasks
            .iter()
            .copied()
            .filter(|t| self.is_live(t) && t.service_version < current)
            .collect();
        if stale.is_empty() {
            return;
        }
        // Old tasks that serve nothing yet (pending, not started) go at once.
        let (unstarted, mut serving): (Vec<&Task>, Vec<&Task>) = stale
            .into_iter()
            .partition(|t| t.state < TaskState::Starting);
        for t in unstarted {
            self.shutdown(t);
        }
        // In flight: places without a live task (an old one stopping, or stopped and not yet
        // replaced) and new tasks not running yet.
        let live: Vec<&Task> = tasks.iter().copied().filter(|t| self.is_live(t)).collect();
        let missing = match self.service.spec.mode {
            ServiceMode::Replicated => (1..=self.service.spec.replicas)
                .filter(|slot| !live.iter().any(|t| t.slot == *slot))
                .count(),
            ServiceMode::Global => self
                .eligible
                .iter()
                .filter(|n| !live.iter().any(|t| t.node == Some(n.id)))
                .count(),
        };
        let starting = live
            .iter()
            .filter(|t| t.service_version == current && t.state < TaskState::Running)
            .count();
        let parallelism = match self.service.spec.update.parallelism {
            0 => usize::MAX,
            n => n as usize,
        };
        let budget = parallelism.saturating_sub(missing + starting);
        let last_batch = tasks
            .iter()
            .filter(|t| t.service_version == current && t.state == TaskState::Running)
            .map(|t| t.state_at)
            .max();
        let delay = self.service.spec.update.delay_secs;
        if last_batch.is_some_and(|at| self.now < at.saturating_add(delay)) {
            return;
        }
        serving.sort_by_key(|t| (t.slot, t.node));
        for t in serving.into_iter().take(budget) {
            self.shutdown(t);
        }
    }

    fn shutdown(&mut self, task: &Task) {
        self.out.push(ServiceCommand::Shutdown {
            id: task.id.clone(),
            at: self.now,
        });
    }

    fn no_node_reason(&self) -> String {
        let constraints: Vec<String> = self
            .service
            .spec
            .constraints
            .iter()
            .map(|c| c.to_string())
            .collect();
        if constraints.is_empty() {
            "no suitable node: no node is ready".to_string()
        } else {
            format!(
                "no suitable node: no ready node satisfies {}",
                constraints.join(", ")
            )
        }
    }
}

/// Ended tasks to forget: of removed services, and beyond the history of each slot (or node).
fn prunable(state: &ClusterState) -> Vec<String> {
    let mut groups: BTreeMap<(String, u32, Option<NodeId>), Vec<&Task>> = BTreeMap::new();
    let mut out = Vec::new();
    for t in state.tasks.values().filter(|t| t.state.is_terminal()) {
        if !state.services.contains_key(&t.service_id) {
            out.push(t.id.clone());
            continue;
        }
        let node = if t.slot == 0 { t.node } else { None };
        groups
            .entry((t.service_id.clone(), t.slot, node))
            .or_default()
            .push(t);
    }
    for mut ended in groups.into_values() {
        ended.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.attempt)));
        out.extend(ended.iter().skip(TASK_HISTORY).map(|t| t.id.clone()));
    }
    out
}
