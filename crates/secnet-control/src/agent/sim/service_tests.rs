//! Services in the harness: the scheduler and the task runner across a simulated cluster,
//! and the property test of the scheduler.

use std::collections::BTreeSet;

use super::super::test_state::*;
use super::core_tests::START;
use super::*;
use secnet_model::{Constraint, RestartCondition, RestartPolicy, ServiceMode, ServiceSpec};

fn service_spec(name: &str, replicas: u32) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        command: vec!["sleep".into(), "infinity".into()],
        env: Default::default(),
        networks: vec!["apps".into()],
        mode: ServiceMode::Replicated,
        replicas,
        constraints: Vec::new(),
        restart: RestartPolicy::default(),
        endpoint_mode: Default::default(),
        update: Default::default(),
    }
}

/// A three-node cluster with network "apps" and `spec` created at START.
fn with_service(spec: ServiceSpec) -> Sim {
    let mut state = cluster();
    create_network(&mut state, "apps", false);
    state
        .apply(Command::Service(ServiceCommand::Create {
            id: format!("svc-{}", spec.name),
            spec,
            created_at: START,
        }))
        .unwrap();
    Sim::new(state, START)
}

fn update(sim: &mut Sim, spec: ServiceSpec) {
    let id = sim.state.find_service(&spec.name).unwrap().id.clone();
    let now = sim.now;
    sim.state
        .apply(Command::Service(ServiceCommand::Update {
            id,
            spec,
            updated_at: now,
        }))
        .unwrap();
}

fn nodes_of(tasks: &[&Task]) -> BTreeSet<NodeId> {
    tasks.iter().filter_map(|t| t.node).collect()
}

#[test]
fn two_replicas_run_on_two_different_nodes() {
    let mut sim = with_service(service_spec("web", 2));
    sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
    let running = sim.running("web");
    assert_eq!(nodes_of(&running).len(), 2, "{running:?}");
    let slots: BTreeSet<u32> = running.iter().map(|t| t.slot).collect();
    assert_eq!(slots, BTreeSet::from([1, 2]));
    // Each runs in its own endpoint on the service's network, on its own node.
    for t in &running {
        let ep = &sim.state.endpoints[&super::super::tasks::endpoint_name(&t.id)];
        assert_eq!(Some(ep.node), t.node);
        assert_eq!(ep.attachments[0].network_id, "id-apps");
    }
    // Converged: the scheduler proposes nothing more.
    let before = sim.log.len();
    for _ in 0..5 {
        sim.step();
    }
    let scheduling = sim.log[before..]
        .iter()
        .filter(|(_, c)| matches!(c, Command::Service(_)))
        .count();
    assert_eq!(scheduling, 0, "{:?}", &sim.log[before..]);
}

#[test]
fn a_failed_task_is_replaced_after_the_delay_and_none_means_never() {
    let mut sim = with_service(service_spec("web", 1));
    sim.run_until("running", 8, |s| s.running("web").len() == 1);
    let first = sim.running("web")[0].id.clone();
    sim.exit_task(&first, 3);
    sim.step(); // its node reports the exit
    let failed = &sim.state.tasks[&first];
    assert_eq!(
        (failed.state, failed.exit_code),
        (TaskState::Failed, Some(3))
    );
    assert_eq!(failed.message, "exited with code 3");
    // The default policy waits 5 s before the replacement.
    for _ in 0..4 {
        sim.step();
    }
    assert!(
        sim.live_tasks("web").is_empty(),
        "replaced before the delay"
    );
    sim.run_until("replaced and running", 8, |s| s.running("web").len() == 1);
    let second = sim.running("web")[0];
    assert_eq!((second.slot, second.attempt), (1, 2));

    let mut spec = service_spec("web", 1);
    spec.restart = RestartPolicy {
        condition: RestartCondition::None,
        delay_secs: 0,
        max_attempts: None,
    };
    update(&mut sim, spec);
    let id = sim.running("web")[0].id.clone();
    sim.exit_task(&id, 1);
    for _ in 0..10 {
        sim.step();
    }
    assert!(sim.live_tasks("web").is_empty());
    assert_eq!(sim.state.tasks[&id].state, TaskState::Failed);
}

#[test]
fn max_attempts_bounds_the_replacements() {
    let mut spec = service_spec("flaky", 1);
    spec.restart = RestartPolicy {
        condition: RestartCondition::OnFailure,
        delay_secs: 0,
        max_attempts: Some(2),
    };
    let mut sim = with_service(spec);
    for round in 0..3 {
        sim.run_until("running", 8, |s| s.running("flaky").len() == 1);
        let id = sim.running("flaky")[0].id.clone();
        assert_eq!(sim.state.tasks[&id].attempt, round + 1);
        sim.exit_task(&id, 1);
        sim.step(); // reported failed
    }
    for _ in 0..10 {
        sim.step();
    }
    assert!(sim.live_tasks("flaky").is_empty(), "a fourth try");
}

#[test]
fn a_down_nodes_task_is_rescheduled_on_another_node() {
    let mut sim = with_service(service_spec("web", 2));
    sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
    // A worker's task (the harness runs no election, so the leader stays up).
    let victim = nodes_of(&sim.running("web"))
        .into_iter()
        .find(|n| *n != MANAGER)
        .unwrap();
    sim.cut_off.insert(victim);
    let steps = sim.run_until("2/2 again without the lost node", 20, |s| {
        let running = s.running("web");
        running.len() == 2 && !nodes_of(&running).contains(&victim)
    });
    // Marked down after 5 s, then a new endpoint and process elsewhere: within the 15 s
    // the issue asks of the real cluster.
    assert!(steps <= 15, "{steps} steps");
    let orphaned: Vec<_> = sim
        .state
        .tasks
        .values()
        .filter(|t| t.state == TaskState::Orphaned)
        .collect();
    assert_eq!(orphaned.len(), 1);
    assert_eq!(orphaned[0].node, Some(victim));
}

#[test]
fn scaling_to_zero_stops_everything_and_back_up_brings_tasks_back() {
    let mut sim = with_service(service_spec("web", 2));
    sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
    update(&mut sim, service_spec("web", 0));
    sim.run_until("all stopped", 5, |s| {
        s.live_tasks("web").is_empty()
            && s.state
                .tasks
                .values()
                .all(|t| t.state == TaskState::Shutdown)
    });
    update(&mut sim, service_spec("web", 3));
    sim.run_until("3/3 running", 5, |s| s.running("web").len() == 3);
    assert_eq!(
        nodes_of(&sim.running("web")).len(),
        3,
        "spread over the three nodes"
    );
}

#[test]
fn global_mode_runs_one_task_per_eligible_node_including_a_new_one() {
    let mut spec = service_spec("agent", 0);
    spec.mode = ServiceMode::Global;
    spec.constraints = vec!["node.role==worker".parse().unwrap()];
    let mut sim = with_service(spec);
    sim.run_until("one per worker", 5, |s| s.running("agent").len() == 2);
    assert_eq!(
        nodes_of(&sim.running("agent")),
        BTreeSet::from([WORKER, OTHER_WORKER])
    );
    sim.add_node(node(NodeId(4), Role::Worker));
    sim.run_until("the new worker too", 5, |s| s.running("agent").len() == 3);
    assert!(nodes_of(&sim.running("agent")).contains(&NodeId(4)));
}

#[test]
fn an_unsatisfiable_constraint_leaves_tasks_pending_with_a_reason() {
    let mut spec = service_spec("web", 2);
    spec.constraints = vec!["node.hostname==nowhere".parse::<Constraint>().unwrap()];
    let mut sim = with_service(spec);
    for _ in 0..10 {
        sim.step();
    }
    let live = sim.live_tasks("web");
    assert_eq!(live.len(), 2);
    for t in &live {
        assert_eq!(t.state, TaskState::Pending);
        assert!(
            t.message.contains("node.hostname==nowhere"),
            "{}",
            t.message
        );
    }
    // Not an error loop: two tasks made once, nothing proposed since.
    let adds = sim
        .log
        .iter()
        .filter(|(_, c)| matches!(c, Command::Service(ServiceCommand::AddTask { .. })))
        .count();
    assert_eq!(adds, 2);
    // A node that satisfies it appears: they are assigned.
    let mut spec = service_spec("web", 2);
    spec.constraints = vec!["node.hostname==host2".parse().unwrap()];
    update(&mut sim, spec);
    sim.run_until("assigned to host2 and running", 10, |s| {
        s.running("web").len() == 2
    });
    assert_eq!(nodes_of(&sim.running("web")), BTreeSet::from([WORKER]));
}

#[test]
fn a_new_leader_resumes_scheduling_where_the_old_one_left_off() {
    let mut sim = with_service(service_spec("web", 3));
    // The old leader made the tasks but could not finish; the state is all there is.
    sim.step();
    let made = sim.live_tasks("web").len();
    assert_eq!(made, 3);
    // Node 2 takes over (the harness switches the flag, as an election would).
    sim.nodes.get_mut(&MANAGER).unwrap().facts.leader = false;
    sim.nodes.get_mut(&WORKER).unwrap().facts.leader = true;
    sim.state
        .apply(Command::SetRole {
            id: WORKER,
            role: Role::Manager,
        })
        .unwrap();
    sim.run_until("3/3 running", 5, |s| s.running("web").len() == 3);
    assert_eq!(sim.live_tasks("web").len(), 3, "no task made twice");
}

#[test]
fn a_node_that_comes_back_stops_the_task_the_cluster_replaced() {
    // On workers only: the harness cannot cut the leader off.
    let mut spec = service_spec("web", 1);
    spec.constraints = vec!["node.role==worker".parse().unwrap()];
    let mut sim = with_service(spec);
    sim.run_until("running", 8, |s| s.running("web").len() == 1);
    let lost = sim.running("web")[0].clone();
    let node = lost.node.unwrap();
    assert_ne!(node, MANAGER);
    sim.cut_off.insert(node);
    sim.run_until("replaced elsewhere", 20, |s| {
        s.running("web").iter().any(|t| t.node != Some(node))
    });
    // While cut off it still runs its copy: it cannot know.
    assert_eq!(
        sim.nodes[&node].facts.tasks.processes.get(&lost.id),
        Some(&Process::Running)
    );
    sim.cut_off.clear();
    let ep = super::super::tasks::endpoint_name(&lost.id);
    sim.run_until("the old copy stopped and its endpoint gone", 5, |s| {
        s.nodes[&node].facts.tasks.processes.get(&lost.id) != Some(&Process::Running)
            && !s.state.endpoints.contains_key(&ep)
    });
    assert_eq!(sim.running("web").len(), 1, "exactly one copy runs");
}

#[test]
fn removing_a_service_stops_its_tasks_and_removes_their_endpoints() {
    let mut sim = with_service(service_spec("web", 2));
    sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
    let now = sim.now;
    sim.state
        .apply(Command::Service(ServiceCommand::Remove {
            id: "svc-web".into(),
            at: now,
        }))
        .unwrap();
    sim.run_until("no process, no endpoint, no task", 10, |s| {
        s.nodes.values().all(|n| {
            n.facts
                .tasks
                .processes
                .values()
                .all(|p| *p != Process::Running)
        }) && s.state.endpoints.is_empty()
            && s.state.tasks.is_empty()
    });
}

#[test]
fn a_restarted_daemon_reports_its_lost_tasks_failed_and_they_come_back_once() {
    let mut sim = with_service(service_spec("web", 2));
    sim.run_until("2/2 running", 8, |s| s.running("web").len() == 2);
    let t = sim.running("web")[0].clone();
    let node = t.node.unwrap();
    // secnetd restarts on that node: its processes are gone (killed, see daemon/tasks.rs).
    sim.nodes
        .get_mut(&node)
        .unwrap()
        .facts
        .tasks
        .processes
        .clear();
    sim.step();
    let lost = &sim.state.tasks[&t.id];
    assert_eq!(lost.state, TaskState::Failed);
    assert!(
        lost.message.contains("secnetd restarted"),
        "{}",
        lost.message
    );
    let processes = |s: &Sim| -> usize {
        s.nodes
            .values()
            .map(|n| {
                n.facts
                    .tasks
                    .processes
                    .values()
                    .filter(|p| **p == Process::Running)
                    .count()
            })
            .sum()
    };
    for _ in 0..12 {
        sim.step();
        assert!(processes(&sim) <= 2, "more processes than replicas");
    }
    assert_eq!(sim.running("web").len(), 2);
    assert_eq!(processes(&sim), 2);
}

#[test]
fn an_update_replaces_the_tasks_one_at_a_time_stop_first_with_the_delay() {
    let mut sim = with_service(service_spec("web", 3));
    sim.run_until("3/3 running", 8, |s| s.running("web").len() == 3);
    let mut spec = service_spec("web", 3);
    spec.env.insert("MODE".into(), "blue".into());
    spec.update = secnet_model::UpdatePolicy {
        parallelism: 1,
        delay_secs: 3,
    };
    update(&mut sim, spec);
    let current = sim.state.find_service("web").unwrap().tasks_version;
    assert_eq!(current, 2, "an env change is a new task template");
    let up_to_date = |s: &Sim| {
        s.running("web")
            .iter()
            .filter(|t| t.service_version == current)
            .count()
    };
    let mut became_current = Vec::new();
    for _ in 0..40 {
        sim.step();
        // Stop first, one at a time: never fewer than two running.
        assert!(sim.running("web").len() >= 2, "{:?}", sim.live_tasks("web"));
        assert!(sim.live_tasks("web").len() <= 3);
        let n = up_to_date(&sim);
        if became_current.last().map(|(k, _)| *k) != Some(n) && n > 0 {
            became_current.push((n, sim.now));
        }
        if n == 3 {
            break;
        }
    }
    assert_eq!(up_to_date(&sim), 3, "{:?}", sim.live_tasks("web"));
    // Each batch waited for the delay after the previous one ran.
    for w in became_current.windows(2) {
        assert!(w[1].1 - w[0].1 >= 3, "{became_current:?}");
    }
    // Scaling alone replaces nothing.
    let mut spec = sim.state.find_service("web").unwrap().spec.clone();
    spec.replicas = 4;
    update(&mut sim, spec);
    assert_eq!(
        sim.state.find_service("web").unwrap().tasks_version,
        current
    );
    sim.run_until("4/4", 8, |s| s.running("web").len() == 4);
    assert_eq!(up_to_date(&sim), 4);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// For random clusters, specs and failures: never more live tasks than desired,
    /// never on an ineligible node (the harness checks every placement), and once the
    /// failures stop, convergence to the desired count.
    #[test]
    fn the_scheduler_never_overshoots_never_misplaces_and_converges(
        workers in 1usize..5,
        replicas in 0u32..6,
        global in proptest::bool::ANY,
        constraint in 0u8..3,
        events in proptest::collection::vec((0u8..4, 0usize..8), 0..30),
    ) {
        let mut spec = service_spec("svc", replicas);
        spec.restart.delay_secs = 1;
        if global {
            spec.mode = ServiceMode::Global;
        }
        spec.constraints = match constraint {
            0 => Vec::new(),
            1 => vec!["node.role==worker".parse().unwrap()],
            _ => vec!["node.hostname!=host2".parse().unwrap()],
        };
        let mut state = cluster();
        // cluster() has two workers; add the rest.
        for i in 2..workers {
            let id = NodeId(10 + i as u64);
            state.apply(Command::AddNode { node: node(id, Role::Worker) }).unwrap();
        }
        create_network(&mut state, "apps", false);
        state.apply(Command::Service(ServiceCommand::Create {
            id: "svc-svc".into(), spec: spec.clone(), created_at: START,
        })).unwrap();
        let mut sim = Sim::new(state, START);
        let workers_ids: Vec<NodeId> = sim.state.nodes.values()
            .filter(|n| n.role == Role::Worker).map(|n| n.id).collect();
        let check = |sim: &Sim| {
            let live = sim.live_tasks("svc");
            if global {
                let per_node = nodes_of(&live);
                proptest::prop_assert_eq!(per_node.len(), live.iter().filter(|t| t.node.is_some()).count());
            } else {
                proptest::prop_assert!(live.len() <= replicas as usize, "{} live > {replicas}", live.len());
                let slots: BTreeSet<u32> = live.iter().map(|t| t.slot).collect();
                proptest::prop_assert_eq!(slots.len(), live.len(), "two live tasks in one slot");
            }
            Ok(())
        };
        for (kind, pick) in events {
            let target = workers_ids[pick % workers_ids.len()];
            match kind {
                0 => { sim.cut_off.insert(target); }
                1 => { sim.cut_off.remove(&target); }
                2 => {
                    let running: Vec<String> = sim.running("svc").iter()
                        .filter(|t| t.node.is_some_and(|n| !sim.cut_off.contains(&n)))
                        .map(|t| t.id.clone()).collect();
                    if let Some(id) = running.get(pick % running.len().max(1)) {
                        sim.exit_task(id, 1);
                    }
                }
                _ => {}
            }
            sim.step();
            check(&sim)?;
        }
        sim.cut_off.clear();
        let service = sim.state.find_service("svc").unwrap().clone();
        let converged = |s: &Sim| {
            let eligible = s.state.nodes.values().filter(|n| service.admits(n)).count();
            let want = if global { eligible } else if eligible == 0 { 0 } else { replicas as usize };
            s.running("svc").len() == want
        };
        for _ in 0..30 {
            if converged(&sim) { break; }
            sim.step();
            check(&sim)?;
        }
        proptest::prop_assert!(converged(&sim), "not converged: {:?}", sim.live_tasks("svc"));
    }
}
