//! The peer protocol's authorization decisions, for every kind of caller and command.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use secnet_keys::ring::RotationReason;
use secnet_keys::Secret32;
use secnet_model::{Command, NodeId, Role};

use super::super::test_state::*;
use super::{identify, worker_may_propose, DenyReason};
use crate::peer::{PeerRef, Proposal};

fn cmd(c: Command) -> Proposal {
    Proposal::Command(c)
}

/// One command of each variant, `node` being the node it concerns.
fn commands_about(node: NodeId, endpoint: &str) -> Vec<(&'static str, Proposal)> {
    vec![
        (
            "AddNode",
            cmd(Command::AddNode {
                node: super::super::test_state::node(NodeId(9), Role::Worker),
            }),
        ),
        ("RemoveNode", cmd(Command::RemoveNode { id: node })),
        (
            "SetRole",
            cmd(Command::SetRole {
                id: node,
                role: Role::Manager,
            }),
        ),
        (
            "SetStatus",
            cmd(Command::SetStatus {
                id: node,
                status: secnet_model::NodeStatus::Down,
            }),
        ),
        (
            "UpdateCertificate",
            cmd(Command::UpdateCertificate {
                id: node,
                previous: "a".into(),
                fingerprint: "b".into(),
            }),
        ),
        (
            "RotateToken",
            cmd(Command::RotateToken {
                role: Role::Worker,
                secret: secnet_keys::SecretBytes::from_slice(&[0; 8]),
            }),
        ),
        (
            "CreateEndpoint",
            cmd(Command::CreateEndpoint {
                id: "x".into(),
                name: "new".into(),
                node,
                network: "plain".into(),
                ip: None,
                created_at: 0,
            }),
        ),
        (
            "ConnectEndpoint",
            cmd(Command::ConnectEndpoint {
                name: endpoint.into(),
                network: "plain".into(),
                ip: None,
            }),
        ),
        (
            "DisconnectEndpoint",
            cmd(Command::DisconnectEndpoint {
                name: endpoint.into(),
                network: "plain".into(),
            }),
        ),
        (
            "RemoveEndpoint",
            cmd(Command::RemoveEndpoint {
                name: endpoint.into(),
            }),
        ),
        (
            "SetWireguardKey",
            cmd(Command::SetWireguardKey {
                id: node,
                public_key: "k".into(),
            }),
        ),
        (
            "RequestWireguardRotation",
            cmd(Command::RequestWireguardRotation { id: node }),
        ),
        (
            "SeedKeyRing",
            cmd(Command::SeedKeyRing {
                secret: Secret32::new([0; 32]),
                now: 0,
            }),
        ),
        (
            "BeginKeyRotation",
            cmd(Command::BeginKeyRotation {
                secret: Secret32::new([0; 32]),
                now: 0,
                reason: RotationReason::Scheduled,
            }),
        ),
        ("AckKey", cmd(Command::AckKey { node, epoch: 1 })),
        (
            "PromoteKey",
            cmd(Command::PromoteKey {
                live: BTreeSet::new(),
                now: 0,
            }),
        ),
        ("RetireKeys", cmd(Command::RetireKeys { keep: 2 })),
        (
            "Restore",
            cmd(Command::Restore {
                state: Box::default(),
            }),
        ),
        (
            "AddVoter",
            Proposal::AddVoter {
                id: node,
                addr: "192.0.2.9:4243".parse().unwrap(),
            },
        ),
        ("RemoveVoter", Proposal::RemoveVoter { id: node }),
    ]
}

/// What a worker may propose about itself and its own endpoints.
const OWN: &[&str] = &[
    "RemoveNode",
    "CreateEndpoint",
    "ConnectEndpoint",
    "DisconnectEndpoint",
    "RemoveEndpoint",
    "SetWireguardKey",
    "RequestWireguardRotation",
    "AckKey",
];

fn state() -> secnet_model::ClusterState {
    let mut s = cluster();
    create_network(&mut s, "plain", false);
    create_endpoint(&mut s, "mine", WORKER, "plain");
    create_endpoint(&mut s, "theirs", OTHER_WORKER, "plain");
    s
}

#[test]
fn a_worker_may_propose_only_about_itself_and_its_endpoints() {
    let s = state();
    for (name, p) in commands_about(WORKER, "mine") {
        let allowed = OWN.contains(&name);
        assert_eq!(worker_may_propose(&s, WORKER, &p), allowed, "own {name}");
    }
    for (name, p) in commands_about(OTHER_WORKER, "theirs") {
        assert!(!worker_may_propose(&s, WORKER, &p), "other node's {name}");
    }
    // An endpoint that does not exist is nobody's own.
    for (name, p) in commands_about(WORKER, "missing") {
        if name.ends_with("Endpoint") && name != "CreateEndpoint" {
            assert!(
                !worker_may_propose(&s, WORKER, &p),
                "missing endpoint {name}"
            );
        }
    }
}

#[test]
fn any_worker_may_create_and_remove_networks() {
    let s = state();
    let create = cmd(Command::CreateNetwork {
        id: "n".into(),
        spec: secnet_model::NetworkSpec {
            name: "n".into(),
            driver: "overlay".into(),
            subnet: None,
            gateway: None,
            encrypted: true,
            mtu: None,
            attachable: true,
            labels: Default::default(),
        },
        created_at: 0,
    });
    let remove = cmd(Command::RemoveNetwork {
        name_or_id: "plain".into(),
    });
    for w in [WORKER, OTHER_WORKER] {
        assert!(worker_may_propose(&s, w, &create));
        assert!(worker_may_propose(&s, w, &remove));
    }
}

fn bootstrap() -> Vec<PeerRef> {
    vec![PeerRef {
        id: NodeId(7),
        addr: "192.0.2.7:4243".parse().unwrap(),
        fingerprint: "fp-boot".into(),
    }]
}

#[test]
fn members_are_identified_by_their_certificate_fingerprint() {
    let s = state();
    let never = |_: NodeId| false;
    assert_eq!(
        identify(&s, &[], "fp-1", false, never),
        Ok((MANAGER, Role::Manager))
    );
    assert_eq!(
        identify(&s, &[], "fp-1", true, never),
        Ok((MANAGER, Role::Manager))
    );
    assert_eq!(
        identify(&s, &[], "fp-2", false, never),
        Ok((WORKER, Role::Worker))
    );
    // Raft traffic from a worker is refused, unless it is still a Raft member (demotion).
    assert_eq!(
        identify(&s, &[], "fp-2", true, never),
        Err(DenyReason::NotAManager(WORKER))
    );
    assert_eq!(
        identify(&s, &[], "fp-2", true, |id| id == WORKER),
        Ok((WORKER, Role::Worker))
    );
}

#[test]
fn unknown_and_removed_certificates_are_refused() {
    let mut s = state();
    let refused = Err(DenyReason::UnknownCertificate);
    assert_eq!(identify(&s, &bootstrap(), "fp-9", false, |_| true), refused);
    apply(&mut s, Command::RemoveNode { id: OTHER_WORKER });
    assert_eq!(identify(&s, &[], "fp-3", false, |_| true), refused);
    // Once the state is initialized the bootstrap list no longer counts.
    assert_eq!(
        identify(&s, &bootstrap(), "fp-boot", false, |_| true),
        refused
    );
}

#[test]
fn before_the_state_arrives_the_bootstrap_managers_are_trusted() {
    let empty = secnet_model::ClusterState::default();
    assert_eq!(
        identify(&empty, &bootstrap(), "fp-boot", true, |_| false),
        Ok((NodeId(7), Role::Manager))
    );
    assert!(identify(&empty, &bootstrap(), "fp-2", false, |_| false).is_err());
}

#[test]
fn a_worker_reports_only_its_own_tasks_and_schedules_nothing() {
    use secnet_model::{RestartPolicy, ServiceCommand, ServiceMode, ServiceSpec, Task, TaskState};
    let mut s = state();
    create_network(&mut s, "apps", false);
    let spec = ServiceSpec {
        name: "web".into(),
        command: vec!["true".into()],
        env: Default::default(),
        networks: vec!["apps".into()],
        mode: ServiceMode::Replicated,
        replicas: 2,
        constraints: Vec::new(),
        restart: RestartPolicy::default(),
        endpoint_mode: Default::default(),
        update: Default::default(),
    };
    apply(
        &mut s,
        Command::Service(ServiceCommand::Create {
            id: "svc".into(),
            spec: spec.clone(),
            created_at: 1,
        }),
    );
    let task = |id: &str, node: NodeId| Task {
        id: id.into(),
        service_id: "svc".into(),
        slot: 1,
        node: Some(node),
        desired: TaskState::Running,
        state: TaskState::Assigned,
        state_at: 1,
        message: String::new(),
        exit_code: None,
        attempt: 1,
        service_version: 1,
        created_at: 1,
    };
    for (id, node) in [("mine", WORKER), ("theirs", OTHER_WORKER)] {
        apply(
            &mut s,
            Command::Service(ServiceCommand::AddTask {
                task: task(id, node),
            }),
        );
    }
    let report = |id: &str, node: NodeId| {
        cmd(Command::Service(ServiceCommand::Report {
            id: id.into(),
            node,
            state: TaskState::Running,
            at: 2,
            exit_code: None,
            message: String::new(),
        }))
    };
    assert!(worker_may_propose(&s, WORKER, &report("mine", WORKER)));
    assert!(
        !worker_may_propose(&s, WORKER, &report("theirs", WORKER)),
        "claims another's task"
    );
    assert!(
        !worker_may_propose(&s, WORKER, &report("theirs", OTHER_WORKER)),
        "speaks for another node"
    );
    assert!(
        !worker_may_propose(&s, WORKER, &report("ghost", WORKER)),
        "a task that does not exist"
    );
    let scheduling = [
        ServiceCommand::Create {
            id: "svc2".into(),
            spec,
            created_at: 2,
        },
        ServiceCommand::AddTask {
            task: task("new", WORKER),
        },
        ServiceCommand::Assign {
            id: "mine".into(),
            node: WORKER,
            at: 2,
        },
        ServiceCommand::Shutdown {
            id: "theirs".into(),
            at: 2,
        },
        ServiceCommand::Orphan {
            id: "theirs".into(),
            at: 2,
            reason: String::new(),
        },
        ServiceCommand::Remove {
            id: "svc".into(),
            at: 2,
        },
        ServiceCommand::Prune { ids: Vec::new() },
    ];
    for c in scheduling {
        let p = cmd(Command::Service(c.clone()));
        assert!(!worker_may_propose(&s, WORKER, &p), "{c:?}");
    }
}
