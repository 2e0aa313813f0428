//! Bootstrap, nodes, roles, tokens, certificates, secrets hygiene and `Restore`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use secnet_keys::secret::SecretBytes;
use secnet_model::{ClusterState, Command, ModelError, NodeId, NodeStatus, Response, Role};

/// One command of every kind that needs an initialized cluster.
fn every_command_but_bootstrap() -> Vec<Command> {
    vec![
        Command::AddNode {
            node: node(2, Role::Worker, &[]),
        },
        Command::RemoveNode { id: NodeId(2) },
        Command::SetRole {
            id: NodeId(1),
            role: Role::Worker,
        },
        Command::SetStatus {
            id: NodeId(1),
            status: NodeStatus::Down,
        },
        Command::UpdateCertificate {
            id: NodeId(1),
            previous: "fp-1".into(),
            fingerprint: "x".into(),
        },
        Command::RotateToken {
            role: Role::Worker,
            secret: SecretBytes::from_slice(&[1, 2, 3]),
        },
        create_network_cmd(&net_id(1), spec("net")),
        Command::RemoveNetwork {
            name_or_id: "net".into(),
        },
        create_endpoint_cmd("ep", 1, "net", None),
        Command::ConnectEndpoint {
            name: "ep".into(),
            network: "net".into(),
            ip: None,
        },
        Command::DisconnectEndpoint {
            name: "ep".into(),
            network: "net".into(),
        },
        Command::RemoveEndpoint { name: "ep".into() },
    ]
}

#[test]
fn commands_before_bootstrap_are_refused_with_not_initialized() {
    let mut s = ClusterState::default();
    assert!(!s.is_initialized());
    for cmd in every_command_but_bootstrap() {
        let what = format!("{cmd:?}");
        assert_eq!(
            refused(&mut s, cmd),
            ModelError::NotInitialized,
            "{what} before bootstrap"
        );
    }
    assert!(!s.is_initialized());
    assert!(s.nodes.is_empty() && s.networks.is_empty() && s.endpoints.is_empty());
}

#[test]
fn bootstrap_initializes_once() {
    let mut s = ClusterState::default();
    let first = node(1, Role::Manager, &["192.168.1.5/24"]);
    let res = s
        .apply(bootstrap_cmd("10.20.0.0/16", 26, first.clone()))
        .unwrap();
    assert!(matches!(res, Response::Node(ref n) if *n == first));
    assert!(s.is_initialized());
    assert_eq!(s.config, Some(config("10.20.0.0/16", 26)));
    assert_eq!(s.ca_cert_der, vec![0x30, 0x82, 0x01, 0x0a]);
    let sec = s.secrets.as_ref().unwrap();
    assert_eq!(sec.ca_key.expose(), CA_KEY);
    assert_eq!(sec.worker_token.expose(), WORKER_TOKEN);
    assert_eq!(sec.manager_token.expose(), MANAGER_TOKEN);
    assert_eq!(s.nodes.len(), 1);
    assert_eq!(s.nodes[&NodeId(1)], first);
    assert_eq!(s.managers().count(), 1);
    assert!(s.removed_nodes.is_empty());

    // A second bootstrap, even with other settings and another node, changes nothing.
    let err = refused(
        &mut s,
        bootstrap_cmd("10.99.0.0/16", 24, node(7, Role::Manager, &[])),
    );
    assert_eq!(err, ModelError::AlreadyInitialized);
    assert_eq!(s.config, Some(config("10.20.0.0/16", 26)));
    assert!(!s.nodes.contains_key(&NodeId(7)));
}

#[test]
fn add_node_and_node_id_reuse() {
    let mut s = cluster();
    let worker = node(2, Role::Worker, &[]);
    let res = s
        .apply(Command::AddNode {
            node: worker.clone(),
        })
        .unwrap();
    assert!(matches!(res, Response::Node(ref n) if *n == worker));
    assert_eq!(s.nodes[&NodeId(2)], worker);

    // An id in use is refused.
    let err = refused(
        &mut s,
        Command::AddNode {
            node: node(2, Role::Manager, &[]),
        },
    );
    assert_eq!(err, ModelError::NodeIdTaken(NodeId(2)));
    assert_eq!(s.nodes[&NodeId(2)].role, Role::Worker);

    // Removing records the id; it can never be admitted again.
    s.apply(Command::RemoveNode { id: NodeId(2) }).unwrap();
    assert!(!s.nodes.contains_key(&NodeId(2)));
    assert!(s.removed_nodes.contains(&NodeId(2)));
    let err = refused(
        &mut s,
        Command::AddNode {
            node: node(2, Role::Worker, &[]),
        },
    );
    assert_eq!(err, ModelError::NodeIdTaken(NodeId(2)));

    // Removing an unknown (or already removed) node is refused.
    assert_eq!(
        refused(&mut s, Command::RemoveNode { id: NodeId(2) }),
        ModelError::NodeNotFound(NodeId(2).to_string())
    );
    assert_eq!(
        refused(&mut s, Command::RemoveNode { id: NodeId(99) }),
        ModelError::NodeNotFound(NodeId(99).to_string())
    );
}

#[test]
fn remove_node_removes_its_endpoints_only() {
    let mut s = cluster();
    s.apply(Command::AddNode {
        node: node(2, Role::Worker, &[]),
    })
    .unwrap();
    let a = create_network(&mut s, &net_id(1), spec("a"));
    let b = create_network(&mut s, &net_id(2), spec("b"));
    create_endpoint(&mut s, "w1", 2, "a", None);
    create_endpoint(&mut s, "w2", 2, "b", None);
    create_endpoint(&mut s, "m1", 1, "a", None);

    s.apply(Command::RemoveNode { id: NodeId(2) }).unwrap();
    assert_eq!(s.endpoints.keys().collect::<Vec<_>>(), vec!["m1"]);
    assert_eq!(s.endpoints_on(&a.id), vec!["m1".to_string()]);
    assert!(s.endpoints_on(&b.id).is_empty());
    assert!(s.removed_nodes.contains(&NodeId(2)));
    assert!(!s.nodes.contains_key(&NodeId(2)));

    // Network b lost its only endpoint, so it can go; endpoints cannot land on the removed node.
    s.apply(Command::RemoveNetwork {
        name_or_id: "b".into(),
    })
    .unwrap();
    assert_eq!(
        refused(&mut s, create_endpoint_cmd("w3", 2, "a", None)),
        ModelError::NodeNotFound(NodeId(2).to_string())
    );
}

#[test]
fn the_last_manager_can_be_neither_removed_nor_demoted() {
    let mut s = cluster();
    assert_eq!(
        refused(&mut s, Command::RemoveNode { id: FIRST }),
        ModelError::LastManager(FIRST)
    );
    assert_eq!(
        refused(
            &mut s,
            Command::SetRole {
                id: FIRST,
                role: Role::Worker
            }
        ),
        ModelError::LastManager(FIRST)
    );
    // "Promoting" the only manager is a no-op, not an error.
    s.apply(Command::SetRole {
        id: FIRST,
        role: Role::Manager,
    })
    .unwrap();

    // A worker can be removed or demoted freely.
    s.apply(Command::AddNode {
        node: node(2, Role::Worker, &[]),
    })
    .unwrap();
    s.apply(Command::SetRole {
        id: NodeId(2),
        role: Role::Worker,
    })
    .unwrap();

    // With a second manager the first can be demoted; then the second is the last one.
    let res = s
        .apply(Command::SetRole {
            id: NodeId(2),
            role: Role::Manager,
        })
        .unwrap();
    assert!(matches!(res, Response::Node(ref n) if n.role == Role::Manager));
    assert_eq!(s.managers().count(), 2);
    s.apply(Command::SetRole {
        id: FIRST,
        role: Role::Worker,
    })
    .unwrap();
    assert_eq!(s.nodes[&FIRST].role, Role::Worker);
    assert_eq!(
        s.managers().map(|n| n.id).collect::<Vec<_>>(),
        vec![NodeId(2)]
    );
    assert_eq!(
        refused(&mut s, Command::RemoveNode { id: NodeId(2) }),
        ModelError::LastManager(NodeId(2))
    );
    assert_eq!(
        refused(
            &mut s,
            Command::SetRole {
                id: NodeId(2),
                role: Role::Worker
            }
        ),
        ModelError::LastManager(NodeId(2))
    );
    // The demoted first node is a worker now and can be removed.
    s.apply(Command::RemoveNode { id: FIRST }).unwrap();
    assert_eq!(s.nodes.keys().copied().collect::<Vec<_>>(), vec![NodeId(2)]);

    assert_eq!(
        refused(
            &mut s,
            Command::SetRole {
                id: NodeId(42),
                role: Role::Manager
            }
        ),
        ModelError::NodeNotFound(NodeId(42).to_string())
    );
}

#[test]
fn set_status_records_the_status() {
    let mut s = cluster();
    s.apply(Command::SetStatus {
        id: FIRST,
        status: NodeStatus::Down,
    })
    .unwrap();
    assert_eq!(s.nodes[&FIRST].status, NodeStatus::Down);
    s.apply(Command::SetStatus {
        id: FIRST,
        status: NodeStatus::Ready,
    })
    .unwrap();
    assert_eq!(s.nodes[&FIRST].status, NodeStatus::Ready);
    assert_eq!(
        refused(
            &mut s,
            Command::SetStatus {
                id: NodeId(5),
                status: NodeStatus::Down
            }
        ),
        ModelError::NodeNotFound(NodeId(5).to_string())
    );
}

#[test]
fn find_node_by_hostname_id_and_prefix() {
    let mut s = cluster();
    s.apply(Command::AddNode {
        node: node(0x1200, Role::Worker, &[]),
    })
    .unwrap();
    s.apply(Command::AddNode {
        node: node(0x1300, Role::Worker, &[]),
    })
    .unwrap();
    assert_eq!(s.find_node("host1").unwrap().id, FIRST);
    assert_eq!(s.find_node("0000000000000001").unwrap().id, FIRST);
    assert_eq!(s.find_node("00000000000012").unwrap().id, NodeId(0x1200));
    // Upper-case ids are accepted.
    s.apply(Command::AddNode {
        node: node(0xab00, Role::Worker, &[]),
    })
    .unwrap();
    assert_eq!(s.find_node("000000000000AB").unwrap().id, NodeId(0xab00));
    assert_eq!(
        s.find_node("000000000000").unwrap_err(),
        ModelError::AmbiguousNode("000000000000".into())
    );
    assert_eq!(
        s.find_node("nope").unwrap_err(),
        ModelError::NodeNotFound("nope".into())
    );
    assert_eq!(
        s.find_node("").unwrap_err(),
        ModelError::NodeNotFound(String::new())
    );
}

#[test]
fn rotate_token_replaces_only_the_named_secret() {
    let mut s = cluster();
    s.apply(Command::RotateToken {
        role: Role::Worker,
        secret: SecretBytes::from_slice(&[0x11; 16]),
    })
    .unwrap();
    let sec = s.secrets.as_ref().unwrap();
    assert_eq!(sec.worker_token.expose(), &[0x11; 16]);
    assert_eq!(sec.manager_token.expose(), MANAGER_TOKEN);
    assert_eq!(sec.ca_key.expose(), CA_KEY);

    s.apply(Command::RotateToken {
        role: Role::Manager,
        secret: SecretBytes::from_slice(&[0x22; 16]),
    })
    .unwrap();
    let sec = s.secrets.as_ref().unwrap();
    assert_eq!(sec.worker_token.expose(), &[0x11; 16]);
    assert_eq!(sec.manager_token.expose(), &[0x22; 16]);
    assert_eq!(sec.ca_key.expose(), CA_KEY);
}

#[test]
fn rotate_token_on_a_worker_view_is_refused() {
    // A worker's copy has no secrets to rotate; the command is refused, not a panic.
    let mut w = cluster().worker_view();
    assert_eq!(
        refused(
            &mut w,
            Command::RotateToken {
                role: Role::Worker,
                secret: SecretBytes::from_slice(&[1]),
            }
        ),
        ModelError::NotInitialized
    );
}

#[test]
fn worker_view_has_no_secrets_and_everything_else() {
    let mut s = cluster();
    s.apply(Command::AddNode {
        node: node(2, Role::Worker, &[]),
    })
    .unwrap();
    create_network(&mut s, &net_id(1), spec("a"));
    create_endpoint(&mut s, "e", 2, "a", None);
    s.apply(Command::RemoveNode { id: NodeId(2) }).unwrap();

    let w = s.worker_view();
    assert!(w.secrets.is_none());
    assert!(s.secrets.is_some(), "the manager's own state keeps them");
    assert_eq!(w.config, s.config);
    assert_eq!(w.ca_cert_der, s.ca_cert_der);
    assert_eq!(w.nodes, s.nodes);
    assert_eq!(w.networks, s.networks);
    assert_eq!(w.endpoints, s.endpoints);
    assert_eq!(w.removed_nodes, s.removed_nodes);

    let wire = json(&w);
    for secret in [CA_KEY, WORKER_TOKEN, MANAGER_TOKEN] {
        assert!(!wire.contains(&hex(secret)), "worker view leaks {wire}");
    }
    // Sanity: the manager's serialization does carry them, so the check above is meaningful.
    assert!(json(&s).contains(&hex(WORKER_TOKEN)));
}

/// Whether `text` shows `secret` as hex or as a list of decimal or hex bytes.
fn shows(text: &str, secret: &[u8]) -> bool {
    let dec = secret
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let hexlist = secret
        .iter()
        .map(|b| format!("{b:#x}"))
        .collect::<Vec<_>>()
        .join(", ");
    text.to_lowercase().contains(&hex(secret)) || text.contains(&dec) || text.contains(&hexlist)
}

#[test]
fn debug_never_prints_secret_bytes() {
    let mut s = cluster();
    s.apply(Command::RotateToken {
        role: Role::Worker,
        secret: SecretBytes::from_slice(WORKER_TOKEN),
    })
    .unwrap();
    let sec = s.secrets.clone().unwrap();
    for text in [
        format!("{s:?}"),
        format!("{s:#?}"),
        format!("{sec:?}"),
        format!("{sec:#?}"),
        format!(
            "{:?}",
            bootstrap_cmd("10.20.0.0/16", 26, node(1, Role::Manager, &[]))
        ),
        format!(
            "{:?}",
            Command::RotateToken {
                role: Role::Manager,
                secret: SecretBytes::from_slice(MANAGER_TOKEN),
            }
        ),
        format!(
            "{:?}",
            Command::Restore {
                state: Box::new(s.clone())
            }
        ),
    ] {
        for secret in [CA_KEY, WORKER_TOKEN, MANAGER_TOKEN] {
            assert!(!shows(&text, secret), "Debug output leaks a secret: {text}");
        }
    }
    // The self-check of `shows`: a plain Vec's Debug would be caught.
    assert!(shows(&format!("{:?}", WORKER_TOKEN.to_vec()), WORKER_TOKEN));
}

#[test]
fn update_certificate_moves_the_fingerprint() {
    let mut s = cluster();
    s.apply(Command::AddNode {
        node: node(2, Role::Worker, &[]),
    })
    .unwrap();
    assert_eq!(s.node_by_fingerprint("fp-2").unwrap().id, NodeId(2));

    // A renewal based on a stale fingerprint is refused (two managers answering the same
    // renewal must not leave the node with the wrong certificate).
    assert_eq!(
        refused(
            &mut s,
            Command::UpdateCertificate {
                id: NodeId(2),
                previous: "fp-stale".into(),
                fingerprint: "fp-2-other".into(),
            }
        ),
        ModelError::CertificateChanged(NodeId(2))
    );
    s.apply(Command::UpdateCertificate {
        id: NodeId(2),
        previous: "fp-2".into(),
        fingerprint: "fp-2-renewed".into(),
    })
    .unwrap();
    assert_eq!(s.nodes[&NodeId(2)].cert_fingerprint, "fp-2-renewed");
    assert_eq!(s.node_by_fingerprint("fp-2-renewed").unwrap().id, NodeId(2));
    assert!(
        s.node_by_fingerprint("fp-2").is_none(),
        "old certificate revoked"
    );
    assert_eq!(s.node_by_fingerprint("fp-1").unwrap().id, FIRST);

    assert_eq!(
        refused(
            &mut s,
            Command::UpdateCertificate {
                id: NodeId(3),
                previous: String::new(),
                fingerprint: "fp-3".into()
            }
        ),
        ModelError::NodeNotFound(NodeId(3).to_string())
    );

    // A removed node's certificate is no longer recognized.
    s.apply(Command::RemoveNode { id: NodeId(2) }).unwrap();
    assert!(s.node_by_fingerprint("fp-2-renewed").is_none());
}

#[test]
fn restore_replaces_the_whole_state() {
    let mut old = cluster();
    create_network(&mut old, &net_id(1), spec("old-net"));
    create_endpoint(&mut old, "old-ep", 1, "old-net", None);

    let mut new = cluster_with("172.30.0.0/16", 24, node(9, Role::Manager, &[]));
    create_network(&mut new, &net_id(2), spec("new-net"));
    new.apply(Command::AddNode {
        node: node(10, Role::Worker, &[]),
    })
    .unwrap();
    new.apply(Command::RemoveNode { id: NodeId(10) }).unwrap();

    old.apply(Command::Restore {
        state: Box::new(new.clone()),
    })
    .unwrap();
    assert_eq!(json(&old), json(&new));
    assert!(old.endpoints.is_empty());
    assert!(old.find_network("old-net").is_err());
    assert_eq!(
        old.find_network("new-net").unwrap().subnet,
        net4("172.30.0.0/24")
    );

    // Restore also seeds a fresh, uninitialized state.
    let mut fresh = ClusterState::default();
    fresh
        .apply(Command::Restore {
            state: Box::new(new.clone()),
        })
        .unwrap();
    assert!(fresh.is_initialized());
    assert_eq!(json(&fresh), json(&new));
}

#[test]
fn state_json_round_trips_and_accepts_missing_endpoints() {
    let mut s = cluster();
    s.apply(Command::AddNode {
        node: node(u64::MAX, Role::Worker, &["fd00::1/64", "192.168.7.9/24"]),
    })
    .unwrap();
    s.apply(Command::RemoveNode {
        id: NodeId(u64::MAX),
    })
    .unwrap();
    create_network(&mut s, &net_id(1), spec("a"));
    create_endpoint(&mut s, "e", 1, "a", None);

    let text = json(&s);
    let back: ClusterState = serde_json::from_str(&text).unwrap();
    assert_eq!(json(&back), text);
    assert_eq!(back.secrets.unwrap().worker_token.expose(), WORKER_TOKEN);

    // A state written before endpoints existed still loads.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("endpoints");
    let old: ClusterState = serde_json::from_value(v).unwrap();
    assert!(old.endpoints.is_empty());
    assert_eq!(old.networks, s.networks);
}

#[test]
fn commands_and_results_serialize() {
    // Commands cross Raft as JSON; a round trip must not lose the secret or the state.
    let cmd = bootstrap_cmd("10.20.0.0/16", 26, node(1, Role::Manager, &[]));
    let text = serde_json::to_string(&cmd).unwrap();
    let back: Command = serde_json::from_str(&text).unwrap();
    let mut a = ClusterState::default();
    let mut b = ClusterState::default();
    a.apply(cmd).unwrap();
    b.apply(back).unwrap();
    assert_eq!(json(&a), json(&b));

    let err = refused(&mut a, Command::RemoveNode { id: NodeId(8) });
    let text = serde_json::to_string(&err).unwrap();
    assert_eq!(serde_json::from_str::<ModelError>(&text).unwrap(), err);
}

#[test]
fn wireguard_key_rotation_request_is_cleared_by_a_new_key() {
    let mut s = cluster();
    let key_a = "A".repeat(43) + "=";
    let key_b = "B".repeat(43) + "=";
    // No key yet: the request names the node and is refused.
    let err = s
        .apply(Command::RequestWireguardRotation { id: NodeId(1) })
        .unwrap_err();
    assert!(
        matches!(err, ModelError::NoWireguardKey(ref h) if h == "host1"),
        "{err}"
    );
    let err = s
        .apply(Command::RequestWireguardRotation { id: NodeId(9) })
        .unwrap_err();
    assert!(matches!(err, ModelError::NodeNotFound(_)), "{err}");

    s.apply(Command::SetWireguardKey {
        id: NodeId(1),
        public_key: key_a.clone(),
    })
    .unwrap();
    let ip = s.wireguard[&NodeId(1)].tunnel_ip;
    s.apply(Command::RequestWireguardRotation { id: NodeId(1) })
        .unwrap();
    assert!(s.wireguard[&NodeId(1)].rotation_requested);
    // The same key again (a restart re-registering) leaves the request standing.
    s.apply(Command::SetWireguardKey {
        id: NodeId(1),
        public_key: key_a,
    })
    .unwrap();
    assert!(s.wireguard[&NodeId(1)].rotation_requested);
    // A new key fulfils it, and the tunnel address stays.
    s.apply(Command::SetWireguardKey {
        id: NodeId(1),
        public_key: key_b.clone(),
    })
    .unwrap();
    let peer = &s.wireguard[&NodeId(1)];
    assert!(!peer.rotation_requested);
    assert_eq!(peer.public_key, key_b);
    assert_eq!(peer.tunnel_ip, ip);
}

#[test]
fn key_rotation_interval_range_is_ten_seconds_to_a_year() {
    use secnet_model::{
        validate_key_rotation_interval, ModelError, DEFAULT_KEY_ROTATION_SECS,
        MAX_KEY_ROTATION_SECS, MIN_KEY_ROTATION_SECS,
    };
    for ok in [10, 3600, DEFAULT_KEY_ROTATION_SECS, 8760 * 3600] {
        assert!(validate_key_rotation_interval(ok).is_ok(), "{ok}");
    }
    assert_eq!(
        (MIN_KEY_ROTATION_SECS, MAX_KEY_ROTATION_SECS),
        (10, 31_536_000)
    );
    for bad in [0, 9, 8760 * 3600 + 1, u64::MAX] {
        let err = validate_key_rotation_interval(bad).unwrap_err();
        assert!(matches!(err, ModelError::InvalidKeyRotationInterval(v) if v == bad));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{bad}s")) && msg.contains("10s to 8760h"),
            "{msg}"
        );
    }
}
