//! A 3-manager + 2-worker cluster with separate control and data interfaces: membership,
//! replication of networks to every node, and IPAM from the configured pool.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use secnet_e2e::*;
use secnet_lab::wait_for;

#[test]
fn five_nodes_agree_and_networks_replicate() -> anyhow::Result<()> {
    let lab = lab(5)?;
    form(
        &lab,
        3,
        &[
            "--default-addr-pool",
            "10.20.0.0/16",
            "--default-addr-pool-mask-length",
            "26",
        ],
    )?;

    // Every node reports the same membership, with the addresses of the right interfaces.
    let reference = node_ls(&lab, 0)?;
    assert_eq!(reference.len(), 5);
    let summary = |nodes: &[serde_json::Value]| -> BTreeSet<String> {
        nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {} {} {} {}",
                    n["id"], n["hostname"], n["role"], n["advertise_addr"], n["data_path_addr"]
                )
            })
            .collect()
    };
    for i in 1..5 {
        assert_eq!(summary(&node_ls(&lab, i)?), summary(&reference), "host {i}");
    }
    let managers = reference.iter().filter(|n| n["role"] == "manager").count();
    assert_eq!(managers, 3);
    assert_eq!(reference.iter().filter(|n| n["leader"] == true).count(), 1);
    for (i, h) in lab.hosts().iter().enumerate() {
        let me = node_ls(&lab, i)?
            .into_iter()
            .find(|n| n["self"] == true)
            .unwrap();
        assert_eq!(me["advertise_addr"], format!("{}:2377", h.ctl_ip()));
        assert_eq!(me["data_path_addr"], h.data_ip().to_string());
    }

    // A network created on a worker is on every node within 2 s, same subnet and VNI.
    let id = lab
        .host(3)
        .cli_ok(&["network", "create", "-d", "overlay", "alpha"])?;
    let created = Instant::now();
    let first = network(&lab, 3, "alpha")?.expect("visible on the creating node");
    assert_eq!(first["id"], id.trim());
    for i in 0..5 {
        let seen = wait_for(
            &format!("alpha on host {i}"),
            Duration::from_secs(2),
            || network(&lab, i, "alpha"),
        )?;
        assert_eq!(seen["subnet"], first["subnet"], "host {i}");
        assert_eq!(seen["vni"], first["vni"], "host {i}");
    }
    assert!(created.elapsed() < Duration::from_secs(2) + Duration::from_millis(500));

    // Consecutive /26s from the pool; a removed one is reused first.
    lab.host(1).cli_ok(&["network", "create", "beta"])?;
    lab.host(4)
        .cli_ok(&["network", "create", "--opt", "encrypted", "gamma"])?;
    let subnet = |name: &str| -> String {
        network(&lab, 0, name).unwrap().unwrap()["subnet"]
            .as_str()
            .unwrap()
            .to_string()
    };
    wait_for("gamma on host 0", CONVERGE, || network(&lab, 0, "gamma"))?;
    assert_eq!(subnet("alpha"), "10.20.0.0/26");
    assert_eq!(subnet("beta"), "10.20.0.64/26");
    assert_eq!(subnet("gamma"), "10.20.0.128/26");
    let vnis: BTreeSet<_> = network_ls(&lab, 0)?
        .iter()
        .map(|n| n["vni"].as_u64().unwrap())
        .collect();
    assert_eq!(vnis.len(), 3, "VNIs are unique");
    assert_eq!(network(&lab, 0, "gamma")?.unwrap()["encrypted"], true);

    lab.host(2).cli_ok(&["network", "rm", "beta"])?;
    wait_for("beta gone on host 4", CONVERGE, || {
        Ok(network(&lab, 4, "beta")?.is_none().then_some(()))
    })?;
    lab.host(0).cli_ok(&["network", "create", "delta"])?;
    assert_eq!(subnet("delta"), "10.20.0.64/26");

    // Explicit subnet and gateway.
    lab.host(0).cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.30.9.0/24",
        "--gateway",
        "10.30.9.99",
        "legacy",
    ])?;
    let legacy = network(&lab, 0, "legacy")?.unwrap();
    assert_eq!(legacy["subnet"], "10.30.9.0/24");
    assert_eq!(legacy["gateway"], "10.30.9.99");
    Ok(())
}

#[test]
fn promote_demote_and_remove() -> anyhow::Result<()> {
    let mut lab = lab(4)?;
    form(&lab, 2, &[])?;
    let worker_id = node_ls(&lab, 3)?
        .into_iter()
        .find(|n| n["self"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Promotion makes the worker a manager that answers for the cluster.
    lab.host(0).cli_ok(&["node", "promote", &worker_id])?;
    wait_for("host 3 runs as a manager", CONVERGE, || {
        let st = lab.host(3).cli_json(&["status", "--format", "json"])?;
        Ok((st["role"] == "manager" && st["managers_reachable"] == 3).then_some(()))
    })?;
    let token = lab.host(3).cli_ok(&["join-token", "worker", "-q"])?;
    assert!(token.trim().starts_with("SNTKN-1-"));

    // Demotion turns it back into a worker.
    lab.host(0).cli_ok(&["node", "demote", &worker_id])?;
    wait_for("host 3 runs as a worker", CONVERGE, || {
        let st = lab.host(3).cli_json(&["status", "--format", "json"])?;
        Ok((st["role"] == "worker").then_some(()))
    })?;
    let out = lab.host(3).cli(&["join-token", "worker"]);
    assert!(
        !out.success() && out.stderr.contains("not a manager"),
        "{out:?}"
    );

    // A running node cannot be removed without --force; a stopped one can.
    let out = lab.host(0).cli(&["node", "rm", &worker_id]);
    assert!(!out.success() && out.stderr.contains("not down"), "{out:?}");
    lab.host_mut(3).stop_daemon()?;
    wait_for("host 3 down", Duration::from_secs(15), || {
        let n = node_ls(&lab, 0)?;
        Ok(n.iter()
            .any(|n| n["id"] == worker_id.as_str() && n["status"] == "down")
            .then_some(()))
    })?;
    lab.host(0).cli_ok(&["node", "rm", &worker_id])?;
    assert!(
        node_ls(&lab, 1)?
            .iter()
            .all(|n| n["id"] != worker_id.as_str())
            || {
                wait_for("removal replicated", CONVERGE, || {
                    Ok(node_ls(&lab, 1)?
                        .iter()
                        .all(|n| n["id"] != worker_id.as_str())
                        .then_some(()))
                })
                .is_ok()
            }
    );

    // The removed node's certificate is refused: it can neither watch nor write.
    lab.host_mut(3).start_daemon()?;
    let out = lab.host(3).cli(&["network", "create", "from-removed"]);
    assert!(!out.success(), "a removed node must not write: {out:?}");
    assert!(network(&lab, 0, "from-removed")?.is_none());
    wait_for("the removed node's watch is refused", CONVERGE, || {
        Ok(lab
            .host(3)
            .log_tail(200)
            .contains("certificate not recognized")
            .then_some(()))
    })?;
    Ok(())
}

#[test]
fn leave_removes_the_node_and_it_can_join_again() -> anyhow::Result<()> {
    let lab = lab(3)?;
    form(&lab, 2, &[])?;
    let worker_id = |i: usize| -> String {
        let st = lab
            .host(i)
            .cli_json(&["status", "--format", "json"])
            .unwrap();
        st["node_id"].as_str().unwrap_or_default().to_string()
    };
    let old_id = worker_id(2);

    // A worker leaves: it is gone from the cluster and holds no membership.
    lab.host(2).cli_ok(&["leave"])?;
    let st = lab.host(2).cli_json(&["status", "--format", "json"])?;
    assert_eq!(st["state"], "inactive");
    wait_for("the worker gone from node ls", CONVERGE, || {
        Ok(node_ls(&lab, 1)?
            .iter()
            .all(|n| n["id"] != old_id.as_str())
            .then_some(()))
    })?;

    // A manager must be forced to leave.
    let out = lab.host(1).cli(&["leave"]);
    assert!(!out.success() && out.stderr.contains("--force"), "{out:?}");
    lab.host(1).cli_ok(&["leave", "--force"])?;
    let nodes = node_ls(&lab, 0)?;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    // The remaining manager is a quorum of one and takes writes.
    wait_for(
        "a write on the last manager",
        Duration::from_secs(15),
        || {
            Ok(lab
                .host(0)
                .cli(&["network", "create", "solo"])
                .success()
                .then_some(()))
        },
    )?;

    // The worker joins again, as a new node.
    let t = token(&lab, 0, "worker")?;
    join(&lab, 2, 0, &t)?;
    let new_id = worker_id(2);
    assert_ne!(new_id, old_id);
    wait_for("the rejoined worker sees the network", CONVERGE, || {
        network(&lab, 2, "solo")
    })?;
    Ok(())
}

#[test]
fn demoting_the_leader_hands_leadership_over() -> anyhow::Result<()> {
    let lab = lab(3)?;
    form(&lab, 3, &[])?;
    let old = leader(&lab, 0)?.expect("a leader");
    let victim = host_of(&lab, &old)?;
    // Demote the leader from the leader itself.
    lab.host(victim).cli_ok(&["node", "demote", &old])?;
    let other = (0..3).find(|i| *i != victim).unwrap();
    wait_for(
        "a new leader and the old one a worker",
        Duration::from_secs(20),
        || {
            let nodes = node_ls(&lab, other)?;
            let new_leader = nodes.iter().find(|n| n["leader"] == true);
            let demoted = nodes.iter().find(|n| n["id"] == old.as_str());
            Ok(match (new_leader, demoted) {
                (Some(l), Some(d)) if l["id"] != old.as_str() && d["role"] == "worker" => Some(()),
                _ => None,
            })
        },
    )?;
    wait_for(
        "the demoted node runs as a worker",
        Duration::from_secs(20),
        || {
            let st = lab.host(victim).cli_json(&["status", "--format", "json"])?;
            Ok((st["role"] == "worker").then_some(()))
        },
    )?;
    // Two voters remain and take writes, from any node.
    for i in 0..3 {
        let name = format!("after-demotion-{i}");
        wait_for(
            &format!("a write from host {i}"),
            Duration::from_secs(15),
            || {
                Ok(lab
                    .host(i)
                    .cli(&["network", "create", &name])
                    .success()
                    .then_some(()))
            },
        )?;
    }
    let st = lab.host(other).cli_json(&["status", "--format", "json"])?;
    assert_eq!(st["managers"], 2);
    assert_eq!(st["managers_reachable"], 2);
    Ok(())
}
