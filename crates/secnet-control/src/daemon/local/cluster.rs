//! The cluster's lifecycle: init, force-new-cluster, join, join-token, leave and status.

use super::*;
use crate::peer::PeerError;

pub(super) async fn init(daemon: &Arc<Daemon>, r: InitRequest) -> LocalResult {
    let _guard = daemon.ops.lock().await;
    if r.force_new_cluster {
        return force_new_cluster(daemon).await;
    }
    if daemon.member().await.is_some() {
        return Err(ApiError::invalid(
            "this node is already part of a cluster: use `secnet leave --force` first, or `secnet init --force-new-cluster` to recover a cluster that lost quorum",
        ));
    }
    let pools = secnet_ipam::PoolConfig::new(
        r.default_addr_pools.clone(),
        r.default_addr_pool_mask_length.unwrap_or(0),
    )
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let data_path_port = r.data_path_port.unwrap_or(DEFAULT_DATA_PATH_PORT);
    if !(1024..=49151).contains(&data_path_port) {
        return Err(ApiError::invalid(format!(
            "--data-path-port {data_path_port}: accepted range is 1024 to 49151"
        )));
    }
    let wireguard_port = r
        .wireguard_port
        .unwrap_or(secnet_model::DEFAULT_WIREGUARD_PORT);
    if wireguard_port < 1024 || wireguard_port == data_path_port {
        return Err(ApiError::invalid(format!(
            "--wireguard-port {wireguard_port}: accepted range is 1024 to 65535, and it must differ from the data-path port ({data_path_port})"
        )));
    }
    let rotation = r
        .key_rotation_interval_secs
        .unwrap_or(DEFAULT_KEY_ROTATION_SECS);
    secnet_model::validate_key_rotation_interval(rotation)
        .map_err(|e| ApiError::invalid(format!("--key-rotation-interval: {e}")))?;
    let addrs = addrs::resolve_all(
        r.advertise_addr.as_deref(),
        r.listen_addr.as_deref(),
        r.data_path_addr.as_deref(),
    )?;
    refuse_tunnel_network_conflict()?;

    let mut rng = rand::rngs::OsRng;
    let cluster_id = secnet_model::ids::network_id_from_bytes(rng.gen());
    let node_id = NodeId(rng.gen::<u64>().max(1));
    let ca = ClusterCa::generate(&cluster_id).map_err(internal)?;
    let key = NodeKey::generate().map_err(internal)?;
    let csr = key.csr_der(node_id.0).map_err(internal)?;
    let cert_der = ca
        .sign_node(
            &csr,
            node_id.0,
            Role::Manager,
            &cluster_id,
            NODE_CERT_VALIDITY,
            std::time::SystemTime::now(),
        )
        .map_err(internal)?;
    let id = Identity {
        node_id,
        cluster_id: cluster_id.clone(),
        hostname: daemon.cfg.hostname.clone(),
        listen_addr: addrs.listen,
        advertise_addr: addrs.advertise,
        data_path_addr: addrs.data_path,
        ca_der: ca.cert_der.clone(),
        cert_der: cert_der.clone(),
        bootstrap_managers: Vec::new(),
        role: Role::Manager,
    };
    let secrets = ClusterSecrets {
        ca_key: ca.key_pkcs8.clone(),
        worker_token: random_secret(),
        manager_token: random_secret(),
    };
    let worker_token = token_string(&ca.cert_der, &secrets.worker_token);
    let now = unix_now();
    let node = Node {
        id: node_id,
        hostname: daemon.cfg.hostname.clone(),
        role: Role::Manager,
        status: NodeStatus::Ready,
        advertise_addr: addrs.advertise,
        data_path_addr: addrs.data_path,
        cert_fingerprint: pki::cert_fingerprint(&cert_der),
        underlay: addrs::underlay_prefixes(),
        joined_at: now,
    };
    let cmd = Command::Bootstrap {
        config: ClusterConfig {
            cluster_id: cluster_id.clone(),
            pools,
            data_path_port,
            wireguard_port,
            key_rotation_interval_secs: rotation,
            created_at: now,
        },
        ca_cert_der: ca.cert_der.clone(),
        secrets,
        node,
    };

    let member = Member::start(daemon, id.clone(), key, true)
        .await
        .map_err(|e| ApiError::invalid(format!("cannot start the manager: {e:#}")))?;
    let result = async {
        wait_leader(&member, Duration::from_secs(10)).await?;
        member.write(cmd).await
    }
    .await;
    if let Err(e) = result {
        member.stop().await;
        let _ = identity::wipe(&daemon.paths);
        return Err(e);
    }
    // The identity is written last: a crash before this line leaves a node that is not in a
    // cluster, and its partial Raft data is discarded at the next start.
    identity::save(&daemon.paths, &daemon.kek, &id, member.key_secret()).map_err(internal)?;
    daemon.set_member(Some(member)).await;
    info!(node = %node_id, cluster = %cluster_id, "cluster initialized");
    Ok(LocalResponse::Initialized {
        node_id: node_id.to_string(),
        cluster_id,
        join_command: format!("secnet join --token {worker_token} {}", addrs.advertise),
    })
}

pub(super) async fn wait_leader(member: &Member, timeout: Duration) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let is_leader = |_: &View| match &member.rt {
        super::super::Runtime::Manager(rt) => rt.is_leader().then_some(()),
        super::super::Runtime::Worker(_) => None,
    };
    member.wait_until(deadline, is_leader).await.map_err(|_| {
        ApiError::unavailable("this manager did not become leader of its new cluster in time")
    })
}

/// `init --force-new-cluster`: a manager that lost its quorum restarts the cluster alone from
/// its own copy of the state. The other managers are removed (their logs diverged; they join
/// again); workers stay.
pub(super) async fn force_new_cluster(daemon: &Arc<Daemon>) -> LocalResult {
    let member = daemon.member().await.ok_or_else(|| {
        ApiError::invalid("--force-new-cluster needs a node that was a manager of a cluster")
    })?;
    if member.role() != Role::Manager {
        return Err(ApiError::invalid(
            "--force-new-cluster must run on a manager: this node is a worker",
        ));
    }
    let mut state = (*member.view().state).clone();
    if !state.is_initialized() {
        return Err(ApiError::invalid(
            "this manager holds no cluster state to recover from",
        ));
    }
    let me = member.id.node_id;
    let others: Vec<NodeId> = state
        .managers()
        .map(|n| n.id)
        .filter(|id| *id != me)
        .collect();
    for id in &others {
        state.nodes.remove(id);
        state.removed_nodes.insert(*id);
    }
    let id = member.id.clone();
    let key = member.key.clone();
    daemon.set_member(None).await;
    std::fs::remove_file(daemon.paths.raft_db()).map_err(internal)?;
    let member = Member::start(daemon, id.clone(), key, true)
        .await
        .map_err(|e| ApiError::internal(format!("cannot restart the manager: {e:#}")))?;
    wait_leader(&member, Duration::from_secs(10)).await?;
    member
        .write(Command::Restore {
            state: Box::new(state),
        })
        .await?;
    daemon.set_member(Some(member.clone())).await;
    warn!(
        removed = others.len(),
        "started a new cluster from this manager's state"
    );
    let worker = member
        .view()
        .state
        .secrets
        .as_ref()
        .map(|s| token_string(&id.ca_der, &s.worker_token))
        .unwrap_or_default();
    Ok(LocalResponse::Initialized {
        node_id: me.to_string(),
        cluster_id: id.cluster_id,
        join_command: format!("secnet join --token {worker} {}", id.advertise_addr),
    })
}

pub(super) async fn join(daemon: &Arc<Daemon>, r: JoinRequest) -> LocalResult {
    let _guard = daemon.ops.lock().await;
    if daemon.member().await.is_some() {
        return Err(ApiError::invalid(
            "this node is already part of a cluster: run `secnet leave` first to join another",
        ));
    }
    let token: JoinToken = r
        .token
        .parse()
        .map_err(|e: secnet_keys::token::TokenError| ApiError::invalid(e.to_string()))?;
    let remote = tokio::net::lookup_host(&r.remote)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "invalid manager address {:?}: expected HOST:PORT, e.g. 192.0.2.10:2377",
                r.remote
            ))
        })?;
    let addrs = addrs::resolve_all(
        r.advertise_addr.as_deref(),
        r.listen_addr.as_deref(),
        r.data_path_addr.as_deref(),
    )?;
    refuse_tunnel_network_conflict()?;
    let key = NodeKey::generate().map_err(internal)?;
    let csr = key.csr_der(0).map_err(internal)?;
    let (tls, capture) = pki::join_client_config(token.ca_digest).map_err(internal)?;
    let mut conn = connect_tls(remote, tls).await.map_err(|e| match e {
        PeerError::CaDigestMismatch { .. } => ApiError::new(
            ErrorKind::Denied,
            format!(
                "{e}: the token belongs to another cluster, or something impersonates the manager"
            ),
        ),
        e => ApiError::unavailable(e.to_string()),
    })?;
    let req = PeerRequest::Join(JoinPeerRequest {
        secret: token.secret.clone(),
        csr_der: csr,
        hostname: daemon.cfg.hostname.clone(),
        advertise_addr: addrs.advertise,
        data_path_addr: addrs.data_path,
        underlay: addrs::underlay_prefixes(),
    });
    wire::write_msg(&mut conn, &req)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let resp = tokio::time::timeout(Duration::from_secs(30), wire::read_msg(&mut conn))
        .await
        .map_err(|_| {
            ApiError::unavailable(format!(
                "the manager at {remote} did not answer within 30 s"
            ))
        })?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let resp = match resp {
        Some(PeerResponse::Join(r)) => r?,
        Some(PeerResponse::Denied(reason)) => return Err(ApiError::new(ErrorKind::Denied, reason)),
        other => {
            return Err(ApiError::internal(format!(
                "unexpected answer to join: {other:?}"
            )))
        }
    };
    let ca_der = capture
        .take()
        .ok_or_else(|| ApiError::internal("the TLS handshake did not pin the cluster CA"))?;
    if ca_der != resp.ca_der {
        return Err(ApiError::new(
            ErrorKind::Denied,
            "the manager sent a CA certificate different from the one its TLS chain proved",
        ));
    }
    let id = Identity {
        node_id: resp.node_id,
        cluster_id: resp.cluster_id.clone(),
        hostname: daemon.cfg.hostname.clone(),
        listen_addr: addrs.listen,
        advertise_addr: addrs.advertise,
        data_path_addr: addrs.data_path,
        ca_der,
        cert_der: resp.cert_der,
        bootstrap_managers: resp.managers,
        role: resp.role,
    };
    identity::save(&daemon.paths, &daemon.kek, &id, &key.key_pkcs8).map_err(internal)?;
    let member = Member::start(daemon, id.clone(), key, false)
        .await
        .map_err(|e| ApiError::internal(format!("joined, but cannot start: {e:#}")))?;
    daemon.set_member(Some(member.clone())).await;
    if resp.role == Role::Manager {
        // The new manager becomes a voter once it caught up with the log.
        let p = Proposal::AddVoter {
            id: id.node_id,
            addr: id.advertise_addr,
        };
        member.propose(p, 0).await?;
    }
    info!(node = %id.node_id, role = %resp.role, "joined the cluster");
    Ok(LocalResponse::Joined {
        node_id: id.node_id.to_string(),
        role: resp.role.as_str().to_string(),
        cluster_id: resp.cluster_id,
    })
}

pub(super) async fn join_token(m: &Member, role: Role, rotate: bool) -> LocalResult {
    if m.role() != Role::Manager {
        return Err(ApiError::invalid(
            "this node is not a manager: join tokens are only available on managers",
        ));
    }
    let secret = if rotate {
        let secret = random_secret();
        m.write(Command::RotateToken {
            role,
            secret: secret.clone(),
        })
        .await?;
        secret
    } else {
        let view = m.view();
        let s = view.state.secrets.as_ref().ok_or_else(|| {
            ApiError::unavailable("this manager has not caught up with the cluster state yet")
        })?;
        match role {
            Role::Worker => s.worker_token.clone(),
            Role::Manager => s.manager_token.clone(),
        }
    };
    let token = token_string(&m.id.ca_der, &secret);
    let addr = m
        .me()
        .map(|n| n.advertise_addr)
        .unwrap_or(m.id.advertise_addr);
    Ok(LocalResponse::JoinToken {
        command: format!("secnet join --token {token} {addr}"),
        token,
    })
}

pub(super) async fn leave(daemon: &Arc<Daemon>, force: bool) -> LocalResult {
    let _guard = daemon.ops.lock().await;
    let m = daemon.member_or_err().await?;
    let me = m.id.node_id;
    if m.role() == Role::Manager && !force {
        return Err(ApiError::invalid(
            "this node is a manager: leaving reduces the managers' fault tolerance. Demote it first with `secnet node demote`, or use `secnet leave --force` to leave anyway",
        ));
    }
    let others = m.view().state.managers().filter(|n| n.id != me).count();
    if others > 0 {
        if m.role() == Role::Manager {
            if let Err(e) = m.propose(Proposal::RemoveVoter { id: me }, 0).await {
                warn!(error = %e, "cannot leave the Raft voters cleanly");
            }
        }
        // Removing ourselves revokes our certificate everywhere.
        match m.write(Command::RemoveNode { id: me }).await {
            Ok(_) => {}
            Err(e) if force => {
                warn!(error = %e, "cannot remove this node from the cluster; leaving anyway")
            }
            Err(e) => {
                return Err(ApiError::unavailable(format!(
                "cannot tell the cluster that this node leaves ({}); use --force to leave anyway",
                e.message
            )))
            }
        }
    }
    let layout = m.reconciler.layout.clone();
    drop(m);
    daemon.set_member(None).await;
    // Its tasks end with its membership (before their endpoints go).
    daemon.runner.stop_all().await;
    // Take this node's endpoints and networks out of the kernel.
    let cleanup = tokio::task::spawn_blocking(move || {
        let mut result =
            super::super::dataplane::reconcile_once(&layout, &secnet_dataplane::Desired::default());
        // No encrypted network is left on this node: its strict-mode rules go too.
        if let Err(e) = secnet_dataplane::remove_strict(&layout) {
            result.1.push(format!("{e:#}"));
        }
        result
    })
    .await
    .map_err(internal)?;
    for e in cleanup.1 {
        warn!(error = %e, "leaving: data path cleanup");
    }
    identity::wipe(&daemon.paths).map_err(internal)?;
    info!("left the cluster");
    Ok(LocalResponse::Left)
}

/// A host with its own addresses or routes in the tunnel network cannot carry encrypted
/// networks: its route would compete with the TUN device's. Refused at `init` and `join`,
/// before anything is made.
pub(super) fn refuse_tunnel_network_conflict() -> Result<(), ApiError> {
    let host = addrs::host_prefixes_by_device();
    match addrs::tunnel_network_conflict(&host, secnet_model::TUNNEL_SUBNET, super::super::tunnel::TUN_NAME) {
        None => Ok(()),
        Some((dev, net)) => Err(ApiError::invalid(format!(
            "this host has {net} on {dev}, which overlaps secnet's tunnel network {} (the nodes' WireGuard tunnel addresses); remove or move that address or route first, the tunnel network cannot be changed in this version",
            secnet_model::TUNNEL_SUBNET
        ))),
    }
}

pub(super) async fn status(daemon: &Arc<Daemon>) -> LocalResult {
    let Some(m) = daemon.member().await else {
        return Ok(LocalResponse::Status(StatusInfo {
            state: "inactive".into(),
            node_id: None,
            hostname: daemon.cfg.hostname.clone(),
            role: None,
            cluster_id: None,
            leader_id: None,
            leader_addr: None,
            managers: 0,
            managers_reachable: 0,
            nodes: 0,
            networks: 0,
            advertise_addr: None,
            data_path_addr: None,
            applied_index: 0,
            dataplane_passes: 0,
            dataplane_errors: Vec::new(),
            run_dir: daemon.cfg.run_dir.display().to_string(),
        }));
    };
    let v = m.view();
    let (managers_reachable, managers) = m.managers_reachable().await;
    let leader = v.leader.and_then(|l| v.state.nodes.get(&l));
    Ok(LocalResponse::Status(StatusInfo {
        state: "active".into(),
        node_id: Some(m.id.node_id.to_string()),
        hostname: m.id.hostname.clone(),
        role: Some(m.role().as_str().to_string()),
        cluster_id: Some(m.id.cluster_id.clone()),
        leader_id: leader.map(|n| n.id.to_string()),
        leader_addr: leader.map(|n| n.advertise_addr.to_string()),
        managers,
        managers_reachable,
        nodes: v.state.nodes.len(),
        networks: v.state.networks.len(),
        advertise_addr: Some(m.id.advertise_addr.to_string()),
        data_path_addr: Some(m.id.data_path_addr.to_string()),
        applied_index: v.applied_index,
        dataplane_passes: m.reconciler.status().borrow().pass,
        dataplane_errors: m.reconciler.status().borrow().errors.clone(),
        run_dir: daemon.cfg.run_dir.display().to_string(),
    }))
}
