//! Services and tasks in the replicated state: what is accepted, what is refused (nothing
//! stored), and how tasks move through their states.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use secnet_model::{
    ClusterState, Command, Constraint, ConstraintKey, ModelError, NodeId, Response, RestartPolicy,
    Role, ServiceCommand, ServiceError, ServiceMode, ServiceSpec, Task, TaskState,
};

fn svc_spec(name: &str, network: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        command: vec!["python3".into(), "-m".into(), "http.server".into()],
        env: [("PORT".to_string(), "80".to_string())].into(),
        networks: vec![network.into()],
        mode: ServiceMode::Replicated,
        replicas: 2,
        constraints: Vec::new(),
        restart: RestartPolicy::default(),
        endpoint_mode: Default::default(),
        update: Default::default(),
    }
}

fn create_cmd(id: &str, spec: ServiceSpec) -> Command {
    Command::Service(ServiceCommand::Create {
        id: id.into(),
        spec,
        created_at: 1_700_000_300,
    })
}

/// A cluster with network "web-net" and service "web" (id svc1).
fn with_service() -> ClusterState {
    let mut s = cluster();
    create_network(&mut s, &net_id(1), spec("web-net"));
    match s
        .apply(create_cmd("svc1", svc_spec("web", "web-net")))
        .unwrap()
    {
        Response::Service(svc) => {
            assert_eq!(svc.version, 1);
            // Stored with the network's id, whatever it was given as.
            assert_eq!(svc.spec.networks, vec![net_id(1)]);
        }
        other => panic!("{other:?}"),
    }
    s
}

fn task(id: &str, slot: u32, node: Option<NodeId>) -> Task {
    Task {
        id: id.into(),
        service_id: "svc1".into(),
        slot,
        node,
        desired: TaskState::Running,
        state: if node.is_some() {
            TaskState::Assigned
        } else {
            TaskState::Pending
        },
        state_at: 1_700_000_400,
        message: String::new(),
        exit_code: None,
        attempt: 1,
        service_version: 1,
        created_at: 1_700_000_400,
    }
}

fn svc(s: &mut ClusterState, c: ServiceCommand) -> Result<Response, ModelError> {
    s.apply(Command::Service(c))
}

fn report(id: &str, node: NodeId, state: TaskState) -> ServiceCommand {
    ServiceCommand::Report {
        id: id.into(),
        node,
        state,
        at: 1_700_000_500,
        exit_code: None,
        message: String::new(),
    }
}

#[test]
fn bad_specs_are_refused_naming_the_value_and_nothing_is_stored() {
    let mut s = with_service();
    let cases: Vec<(ServiceSpec, &str)> = vec![
        (
            svc_spec("bad/name", "web-net"),
            "invalid service name \"bad/name\"",
        ),
        (svc_spec("web", "web-net"), "the name \"web\" is taken"),
        (
            svc_spec("api", "nosuchnet"),
            "network \"nosuchnet\" not found",
        ),
        (
            ServiceSpec {
                command: Vec::new(),
                ..svc_spec("api", "web-net")
            },
            "needs a command",
        ),
        (
            ServiceSpec {
                networks: Vec::new(),
                ..svc_spec("api", "web-net")
            },
            "at least one network",
        ),
        (
            ServiceSpec {
                replicas: 10_001,
                ..svc_spec("api", "web-net")
            },
            "invalid replica count 10001",
        ),
        (
            ServiceSpec {
                env: [("1BAD".to_string(), "x".to_string())].into(),
                ..svc_spec("api", "web-net")
            },
            "invalid environment variable name \"1BAD\"",
        ),
    ];
    for (spec, needle) in cases {
        let err = refused(&mut s, create_cmd("svc2", spec));
        assert!(err.to_string().contains(needle), "{err} / {needle}");
    }
    // A service may not take an endpoint's name, nor an endpoint a service's.
    create_endpoint(&mut s, "e1", 1, "web-net", None);
    let err = refused(&mut s, create_cmd("svc2", svc_spec("e1", "web-net")));
    assert!(matches!(
        err,
        ModelError::Service(ServiceError::NameTaken(_))
    ));
    let err = refused(&mut s, create_endpoint_cmd("web", 1, "web-net", None));
    assert!(matches!(
        err,
        ModelError::Service(ServiceError::NameTaken(_))
    ));
    assert_eq!(s.services.len(), 1);
}

#[test]
fn a_network_in_use_by_a_service_cannot_be_removed() {
    let mut s = with_service();
    let err = refused(
        &mut s,
        Command::RemoveNetwork {
            name_or_id: "web-net".into(),
        },
    );
    assert!(err.to_string().contains("used by service \"web\""), "{err}");
}

#[test]
fn updates_bump_the_version_and_removal_shuts_the_tasks_down() {
    let mut s = with_service();
    let spec = ServiceSpec {
        replicas: 5,
        ..svc_spec("web", "web-net")
    };
    let updated = svc(
        &mut s,
        ServiceCommand::Update {
            id: "svc1".into(),
            spec,
            updated_at: 1_700_000_600,
        },
    )
    .unwrap();
    assert!(matches!(updated, Response::Service(ref v) if v.version == 2 && v.spec.replicas == 5));
    svc(
        &mut s,
        ServiceCommand::AddTask {
            task: task("t1", 1, Some(FIRST)),
        },
    )
    .unwrap();
    svc(
        &mut s,
        ServiceCommand::Remove {
            id: "svc1".into(),
            at: 1_700_000_700,
        },
    )
    .unwrap();
    assert!(s.services.is_empty());
    assert_eq!(s.tasks["t1"].desired, TaskState::Shutdown);
    assert_eq!(
        s.tasks["t1"].state,
        TaskState::Assigned,
        "until its node stops it"
    );
}

#[test]
fn tasks_move_forward_only_and_only_their_node_reports() {
    let mut s = with_service();
    s.apply(Command::AddNode {
        node: node(2, Role::Worker, &[]),
    })
    .unwrap();
    svc(
        &mut s,
        ServiceCommand::AddTask {
            task: task("t1", 1, Some(NodeId(2))),
        },
    )
    .unwrap();
    // Another node cannot report for it.
    let err = refused(
        &mut s,
        Command::Service(report("t1", FIRST, TaskState::Running)),
    );
    assert!(matches!(
        err,
        ModelError::Service(ServiceError::NotTheTasksNode { .. })
    ));
    svc(&mut s, report("t1", NodeId(2), TaskState::Running)).unwrap();
    // Repeating a report is harmless; going back is refused.
    svc(&mut s, report("t1", NodeId(2), TaskState::Running)).unwrap();
    let err = refused(
        &mut s,
        Command::Service(report("t1", NodeId(2), TaskState::Starting)),
    );
    assert!(
        err.to_string()
            .contains("cannot go from running to starting"),
        "{err}"
    );
    svc(&mut s, report("t1", NodeId(2), TaskState::Failed)).unwrap();
    let err = refused(
        &mut s,
        Command::Service(report("t1", NodeId(2), TaskState::Running)),
    );
    assert!(matches!(
        err,
        ModelError::Service(ServiceError::BadTransition { .. })
    ));
    // Ended: it can be pruned; a live task cannot.
    svc(
        &mut s,
        ServiceCommand::AddTask {
            task: task("t2", 1, Some(NodeId(2))),
        },
    )
    .unwrap();
    let err = refused(
        &mut s,
        Command::Service(ServiceCommand::Prune {
            ids: vec!["t1".into(), "t2".into()],
        }),
    );
    assert!(matches!(
        err,
        ModelError::Service(ServiceError::BadTransition { .. })
    ));
    svc(
        &mut s,
        ServiceCommand::Prune {
            ids: vec!["t1".into()],
        },
    )
    .unwrap();
    assert!(!s.tasks.contains_key("t1"));
}

#[test]
fn pending_tasks_are_assigned_and_lost_ones_orphaned() {
    let mut s = with_service();
    svc(
        &mut s,
        ServiceCommand::AddTask {
            task: task("t1", 1, None),
        },
    )
    .unwrap();
    assert_eq!(s.tasks["t1"].state, TaskState::Pending);
    svc(
        &mut s,
        ServiceCommand::Assign {
            id: "t1".into(),
            node: FIRST,
            at: 1_700_000_450,
        },
    )
    .unwrap();
    assert_eq!(
        (s.tasks["t1"].state, s.tasks["t1"].node),
        (TaskState::Assigned, Some(FIRST))
    );
    let err = refused(
        &mut s,
        Command::Service(ServiceCommand::Assign {
            id: "t1".into(),
            node: FIRST,
            at: 1_700_000_460,
        }),
    );
    assert!(matches!(
        err,
        ModelError::Service(ServiceError::BadTransition { .. })
    ));
    svc(
        &mut s,
        ServiceCommand::Orphan {
            id: "t1".into(),
            at: 1_700_000_470,
            reason: "node down".into(),
        },
    )
    .unwrap();
    let t = &s.tasks["t1"];
    assert_eq!(
        (t.state, t.desired, t.message.as_str()),
        (TaskState::Orphaned, TaskState::Shutdown, "node down")
    );
}

#[test]
fn constraints_read_and_write_one_syntax() {
    for text in [
        "node.role==worker",
        "node.hostname!=h1",
        "node.id==00000000000000ab",
    ] {
        let c: Constraint = text.parse().unwrap();
        assert_eq!(c.to_string(), text);
    }
    let c: Constraint = "node.role != manager".parse().unwrap();
    assert_eq!(
        (c.key, c.equal, c.value.as_str()),
        (ConstraintKey::Role, false, "manager")
    );
    for bad in [
        "node.role=worker",
        "node.role==boss",
        "node.zone==a",
        "node.hostname==",
        "x",
    ] {
        let err = bad.parse::<Constraint>().unwrap_err();
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    let worker = node(2, Role::Worker, &[]);
    assert!("node.role==worker"
        .parse::<Constraint>()
        .unwrap()
        .admits(&worker));
    assert!(!"node.role==manager"
        .parse::<Constraint>()
        .unwrap()
        .admits(&worker));
    assert!(!"node.hostname!=host2"
        .parse::<Constraint>()
        .unwrap()
        .admits(&worker));
    assert!("node.hostname!=host1"
        .parse::<Constraint>()
        .unwrap()
        .admits(&worker));
    assert!("node.id==0000000000000002"
        .parse::<Constraint>()
        .unwrap()
        .admits(&worker));
}

#[test]
fn a_change_applies_to_the_spec_and_only_task_changes_bump_the_tasks_version() {
    use secnet_model::ServiceChange;
    let mut s = with_service();
    let before = s.services["svc1"].clone();
    let change = ServiceChange {
        replicas: Some(4),
        ..Default::default()
    };
    let spec = change.applied_to(&before.spec);
    svc(
        &mut s,
        ServiceCommand::Update {
            id: "svc1".into(),
            spec,
            updated_at: 1,
        },
    )
    .unwrap();
    let after = &s.services["svc1"];
    assert_eq!(
        (after.version, after.tasks_version, after.spec.replicas),
        (2, 1, 4)
    );
    let change = ServiceChange {
        env_add: [("MODE".to_string(), "blue".to_string())].into(),
        env_rm: vec!["PORT".into()],
        constraint_add: vec!["node.role==worker".parse().unwrap()],
        update_parallelism: Some(2),
        ..Default::default()
    };
    let spec = change.applied_to(&after.spec);
    assert_eq!(spec.env.len(), 1);
    assert_eq!(spec.env["MODE"], "blue");
    assert_eq!(spec.constraints.len(), 1);
    assert_eq!(spec.update.parallelism, 2);
    svc(
        &mut s,
        ServiceCommand::Update {
            id: "svc1".into(),
            spec,
            updated_at: 2,
        },
    )
    .unwrap();
    assert_eq!(s.services["svc1"].tasks_version, 2);
    let rm = ServiceChange {
        constraint_rm: vec!["node.role==worker".into()],
        ..Default::default()
    };
    assert!(rm
        .applied_to(&s.services["svc1"].spec)
        .constraints
        .is_empty());
}
