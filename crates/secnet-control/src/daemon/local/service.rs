//! Service commands: create, ls, ps, inspect, scale, rm. Services are managers' business, as
//! in Swarm: a worker's request is refused by the manager it is forwarded to.

use super::*;

use secnet_api::{ServiceInfo, TaskInfo};
use secnet_model::{ClusterState, Service, ServiceCommand, ServiceMode, ServiceSpec, TaskState};

/// A service as the CLI shows it.
pub(super) fn service_info(state: &ClusterState, s: &Service) -> ServiceInfo {
    let running_tasks: Vec<_> = state
        .tasks_of(&s.id)
        .filter(|t| t.is_live() && t.state == TaskState::Running)
        .collect();
    let running = running_tasks.len() as u32;
    let up_to_date = running_tasks
        .iter()
        .filter(|t| t.service_version == s.tasks_version)
        .count() as u32;
    let desired = match s.spec.mode {
        ServiceMode::Replicated => s.spec.replicas,
        ServiceMode::Global => state.nodes.values().filter(|n| s.admits(n)).count() as u32,
    };
    let networks = s
        .spec
        .networks
        .iter()
        .map(|id| {
            state
                .networks
                .get(id)
                .map(|n| n.name.clone())
                .unwrap_or_else(|| id.clone())
        })
        .collect();
    let restart = &s.spec.restart;
    ServiceInfo {
        id: s.id.clone(),
        name: s.spec.name.clone(),
        mode: s.spec.mode.as_str().into(),
        desired,
        running,
        up_to_date,
        networks,
        command: s.spec.command.clone(),
        env: s.spec.env.clone(),
        constraints: s.spec.constraints.iter().map(|c| c.to_string()).collect(),
        restart_condition: restart.condition.as_str().into(),
        restart_delay_secs: restart.delay_secs,
        restart_max_attempts: restart.max_attempts,
        endpoint_mode: s.spec.endpoint_mode.as_str().into(),
        version: s.version,
        created: super::super::views::rfc3339(s.created_at),
        updated: super::super::views::rfc3339(s.updated_at),
    }
}

/// The tasks of a service, newest of each slot first, as `service ps` shows them.
pub(super) fn task_infos(state: &ClusterState, s: &Service) -> Vec<TaskInfo> {
    let mut tasks: Vec<_> = state.tasks_of(&s.id).collect();
    // By slot (by node in global mode), newest first.
    let key = |t: &secnet_model::Task| {
        let node = if t.slot == 0 { t.node } else { None };
        (t.slot, node, std::cmp::Reverse((t.created_at, t.attempt)))
    };
    tasks.sort_by(|a, b| (key(a), &a.id).cmp(&(key(b), &b.id)));
    tasks
        .into_iter()
        .map(|t| {
            let ep_name = crate::agent::tasks::endpoint_name(&t.id);
            let ep = state.endpoints.get(&ep_name);
            TaskInfo {
                id: t.id.clone(),
                name: secnet_model::task_name(&s.spec.name, t),
                service: s.spec.name.clone(),
                node: t
                    .node
                    .and_then(|n| state.nodes.get(&n))
                    .map(|n| n.hostname.clone())
                    .unwrap_or_default(),
                // An ended task is not wanted any more, whatever made it end.
                desired: if t.state.is_terminal() {
                    TaskState::Shutdown.as_str().into()
                } else {
                    t.desired.as_str().into()
                },
                state: t.state.as_str().into(),
                since: super::super::views::rfc3339(t.state_at),
                message: t.message.clone(),
                exit_code: t.exit_code,
                endpoint: ep.map(|e| e.name.clone()),
                ip: ep.and_then(|e| e.attachments.first()).map(|a| a.ip),
            }
        })
        .collect()
}

/// The service with this name or ID in this node's state.
fn find<'a>(state: &'a ClusterState, name: &str) -> Result<&'a Service, ApiError> {
    Ok(state
        .find_service(name)
        .map_err(secnet_model::ModelError::from)?)
}

/// Writes a `Create` or `Update` and answers with the service as stored.
async fn write_service(m: &Member, cmd: ServiceCommand) -> LocalResult {
    match m.write(Command::Service(cmd)).await? {
        Response::Service(s) => Ok(LocalResponse::Services(vec![service_info(
            &m.view().state,
            &s,
        )])),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

/// Writes `spec` as the new spec of `s`.
async fn write_update(m: &Member, s: &Service, spec: ServiceSpec) -> LocalResult {
    let cmd = ServiceCommand::Update {
        id: s.id.clone(),
        spec,
        updated_at: unix_now(),
    };
    write_service(m, cmd).await
}

pub(super) async fn service_create(m: &Member, spec: ServiceSpec) -> LocalResult {
    // What can be checked here is, so a bad spec fails the same way with or without quorum.
    secnet_model::validate_spec(&spec).map_err(secnet_model::ModelError::from)?;
    let id = secnet_model::ids::network_id_from_bytes(rand::rngs::OsRng.gen());
    let cmd = ServiceCommand::Create {
        id,
        spec,
        created_at: unix_now(),
    };
    write_service(m, cmd).await
}

pub(super) fn service_ls(m: &Member) -> LocalResult {
    let v = m.view();
    let mut out: Vec<_> = v
        .state
        .services
        .values()
        .map(|s| service_info(&v.state, s))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(LocalResponse::Services(out))
}

pub(super) fn service_ps(m: &Member, service: &str) -> LocalResult {
    let v = m.view();
    Ok(LocalResponse::Tasks(task_infos(
        &v.state,
        find(&v.state, service)?,
    )))
}

pub(super) fn service_inspect(m: &Member, services: &[String]) -> LocalResult {
    let v = m.view();
    let out = services
        .iter()
        .map(|n| find(&v.state, n).map(|s| service_info(&v.state, s)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LocalResponse::Services(out))
}

/// `service update`: the change applied to the current spec, written as one `Update`.
pub(super) async fn service_update(
    m: &Member,
    service: &str,
    change: &secnet_model::ServiceChange,
) -> LocalResult {
    let s = find(&m.view().state, service)?.clone();
    if change.replicas.is_some() && s.spec.mode == ServiceMode::Global {
        return Err(ApiError::invalid(format!(
            "service {:?} is global: it runs one task per eligible node and has no replica count",
            s.spec.name
        )));
    }
    let spec = change.applied_to(&s.spec);
    secnet_model::validate_spec(&spec).map_err(secnet_model::ModelError::from)?;
    write_update(m, &s, spec).await
}

pub(super) async fn service_scale(m: &Member, service: &str, replicas: u32) -> LocalResult {
    let s = find(&m.view().state, service)?.clone();
    if s.spec.mode == ServiceMode::Global {
        return Err(ApiError::invalid(format!(
            "service {:?} is global: it runs one task per eligible node and cannot be scaled",
            s.spec.name
        )));
    }
    let spec = ServiceSpec {
        replicas,
        ..s.spec.clone()
    };
    write_update(m, &s, spec).await
}

pub(super) async fn service_rm(m: &Member, services: &[String]) -> LocalResult {
    // Resolve every name first: `rm a b` with a bad `b` removes nothing.
    let found = services
        .iter()
        .map(|n| find(&m.view().state, n).map(|s| (s.id.clone(), s.spec.name.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut removed = Vec::new();
    for (id, name) in found {
        let cmd = Command::Service(ServiceCommand::Remove { id, at: unix_now() });
        m.write(cmd).await?;
        removed.push(name);
    }
    Ok(LocalResponse::ServicesRemoved(removed))
}

/// The most of a log `service logs` shows at first.
const LOG_TAIL: u64 = 64 * 1024;

/// `service logs`: what the service's tasks on this node wrote since the given offsets.
pub(super) fn service_logs(
    m: &Member,
    service: &str,
    since: &std::collections::BTreeMap<String, u64>,
) -> LocalResult {
    use std::io::{Read, Seek, SeekFrom};
    let v = m.view();
    let s = find(&v.state, service)?;
    let mut out = Vec::new();
    for t in v.state.tasks_of(&s.id) {
        let here = t.node == Some(m.id.node_id);
        let mut log = secnet_api::TaskLog {
            task_id: t.id.clone(),
            name: secnet_model::task_name(&s.spec.name, t),
            node: t
                .node
                .and_then(|n| v.state.nodes.get(&n))
                .map(|n| n.hostname.clone())
                .unwrap_or_default(),
            here,
            offset: 0,
            text: String::new(),
        };
        if here {
            let path = m.runner.log_path(&t.id);
            if let Ok(mut f) = std::fs::File::open(&path) {
                let len = f.metadata().map(|md| md.len()).unwrap_or(0);
                // A log rotated since the last read starts again from its beginning.
                let from = match since.get(&t.id) {
                    Some(&o) if o <= len => o,
                    Some(_) => 0,
                    None => len.saturating_sub(LOG_TAIL),
                };
                let mut bytes = Vec::new();
                if f.seek(SeekFrom::Start(from)).is_ok() {
                    let _ = f.take(len - from).read_to_end(&mut bytes);
                }
                log.offset = from + bytes.len() as u64;
                log.text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        out.push(log);
    }
    Ok(LocalResponse::TaskLogs(out))
}
