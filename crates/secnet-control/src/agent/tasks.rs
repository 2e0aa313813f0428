//! The task runner's decisions, on every node: for each task the scheduler assigned here, an
//! endpoint on the service's networks (the endpoint machinery every endpoint uses), then the
//! process inside it, and reports of what happens to it; for a task no longer wanted, the
//! process stopped and the endpoint removed. A pure function of the state, the processes
//! this node runs and the endpoints its data path has ready.
//!
//! A node never runs a task the cluster does not want running here: a process whose task is
//! ended (orphaned while this node was cut off, say), gone, or assigned elsewhere is
//! stopped.

use std::collections::{BTreeMap, BTreeSet};

use secnet_model::{ClusterState, Command, NodeId, ServiceCommand, Task, TaskState};

use super::Action;

/// A task's process, as this node observes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Running,
    /// It could not be started (no such program, no namespace).
    Unstartable,
    /// Ended: the exit code, or the signal that ended it.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// What the runner observes locally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFacts {
    /// The processes this node started, by task id, until their task leaves the state.
    pub processes: BTreeMap<String, Process>,
    /// Endpoints whose data path is programmed (the reconciler's ready set).
    pub endpoints_ready: BTreeSet<String>,
}

/// The endpoint a task runs in: named after the task alone, so it can be found (and removed)
/// even after its service is gone.
pub fn endpoint_name(task_id: &str) -> String {
    let short: String = task_id.chars().take(24).collect();
    format!("task-{short}")
}

/// What node `me` should do for its tasks now; `fresh_id` makes endpoint ids.
pub fn plan(
    state: &ClusterState,
    me: NodeId,
    facts: &TaskFacts,
    now: u64,
    fresh_id: &mut dyn FnMut() -> String,
) -> Vec<Action> {
    let mut out = Vec::new();
    for task in state.tasks.values().filter(|t| t.node == Some(me)) {
        let process = facts.processes.get(&task.id).copied();
        let ep = endpoint_name(&task.id);
        if task.state.is_terminal() {
            // Ended in the cluster's eyes: nothing of it may keep running here.
            if process == Some(Process::Running) {
                out.push(Action::StopTask {
                    id: task.id.clone(),
                });
            } else if state.endpoints.contains_key(&ep) {
                out.push(Action::Propose(Command::RemoveEndpoint { name: ep }));
            }
            continue;
        }
        if task.desired != TaskState::Running {
            match process {
                Some(Process::Running) => out.push(Action::StopTask {
                    id: task.id.clone(),
                }),
                _ => out.push(report(task, me, TaskState::Shutdown, None, now, "stopped")),
            }
            continue;
        }
        match process {
            Some(Process::Running) => {
                if task.state < TaskState::Running {
                    out.push(report(task, me, TaskState::Running, None, now, ""));
                }
            }
            Some(Process::Exited { code, signal }) => {
                let (state, message) = match (code, signal) {
                    (Some(0), _) => (TaskState::Complete, "exited with code 0".to_string()),
                    (Some(c), _) => (TaskState::Failed, format!("exited with code {c}")),
                    (None, Some(s)) => (TaskState::Failed, format!("killed by signal {s}")),
                    (None, None) => (TaskState::Failed, "ended".to_string()),
                };
                out.push(report(task, me, state, code, now, &message));
            }
            Some(Process::Unstartable) => out.push(report(
                task,
                me,
                TaskState::Rejected,
                None,
                now,
                "the command could not be started on this node",
            )),
            // Started once, and no process now: this node's daemon restarted and its
            // processes went with it. Failed, so the scheduler replaces it: never twice.
            None if task.state >= TaskState::Starting => out.push(report(
                task,
                me,
                TaskState::Failed,
                None,
                now,
                "its process is gone: secnetd restarted on this node",
            )),
            None => prepare_and_start(state, me, facts, task, &ep, now, fresh_id, &mut out),
        }
    }
    // Processes the state does not give this node to run.
    for (id, p) in &facts.processes {
        let ours = state.tasks.get(id).is_some_and(|t| t.node == Some(me));
        if *p == Process::Running && !ours {
            out.push(Action::StopTask { id: id.clone() });
        }
    }
    out
}

/// A wanted task without a process: its endpoint first (created, then connected to every
/// network of the service, then programmed), then the process.
#[allow(clippy::too_many_arguments)]
fn prepare_and_start(
    state: &ClusterState,
    me: NodeId,
    facts: &TaskFacts,
    task: &Task,
    ep: &str,
    now: u64,
    fresh_id: &mut dyn FnMut() -> String,
    out: &mut Vec<Action>,
) {
    let Some(service) = state.services.get(&task.service_id) else {
        return;
    };
    let networks = &service.spec.networks;
    if task.state < TaskState::Preparing {
        out.push(report(task, me, TaskState::Preparing, None, now, ""));
    }
    let Some(endpoint) = state.endpoints.get(ep) else {
        if let Some(first) = networks.first() {
            out.push(Action::Propose(Command::CreateEndpoint {
                id: fresh_id(),
                name: ep.to_string(),
                node: me,
                network: first.clone(),
                ip: None,
                created_at: now,
            }));
        }
        return;
    };
    let attached: BTreeSet<&String> = endpoint.attachments.iter().map(|a| &a.network_id).collect();
    let missing: Vec<&String> = networks.iter().filter(|n| !attached.contains(n)).collect();
    if !missing.is_empty() {
        for network in missing {
            out.push(Action::Propose(Command::ConnectEndpoint {
                name: ep.to_string(),
                network: network.clone(),
                ip: None,
            }));
        }
        return;
    }
    if !facts.endpoints_ready.contains(ep) {
        return;
    }
    if task.state < TaskState::Starting {
        out.push(report(task, me, TaskState::Starting, None, now, ""));
    }
    out.push(Action::StartTask {
        id: task.id.clone(),
        command: service.spec.command.clone(),
        env: service.spec.env.clone(),
        endpoint: ep.to_string(),
    });
}

fn report(
    task: &Task,
    node: NodeId,
    state: TaskState,
    exit_code: Option<i32>,
    at: u64,
    message: &str,
) -> Action {
    Action::Propose(Command::Service(ServiceCommand::Report {
        id: task.id.clone(),
        node,
        state,
        at,
        exit_code,
        message: message.to_string(),
    }))
}
