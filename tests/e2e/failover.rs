//! Losing managers: a leader crash elects another leader and writes go on; every daemon
//! restarted keeps all state; losing quorum refuses writes fast and `--force-new-cluster`
//! recovers.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use secnet_e2e::*;
use secnet_lab::wait_for;

fn snapshot(lab: &secnet_lab::Lab, i: usize) -> anyhow::Result<Vec<String>> {
    let mut v: Vec<String> = network_ls(lab, i)?
        .iter()
        .map(|n| format!("{} {} {} {}", n["id"], n["name"], n["subnet"], n["vni"]))
        .collect();
    v.extend(
        node_ls(lab, i)?
            .iter()
            .map(|n| format!("{} {} {}", n["id"], n["hostname"], n["role"])),
    );
    v.sort();
    Ok(v)
}

#[test]
fn leader_crash_then_full_restart_keeps_everything() -> anyhow::Result<()> {
    let mut lab = lab(4)?;
    form(&lab, 3, &[])?;
    lab.host(3).cli_ok(&["network", "create", "before"])?;

    // Kill the leader: the other two elect a new one and keep taking writes.
    let old_leader = leader(&lab, 0)?.expect("a leader");
    let victim = host_of(&lab, &old_leader)?;
    lab.host_mut(victim).kill_daemon()?;
    let survivor = (0..3).find(|i| *i != victim).unwrap();
    let new_leader = wait_for("a new leader", Duration::from_secs(15), || {
        Ok(leader(&lab, survivor)?.filter(|l| *l != old_leader))
    })?;
    assert_ne!(new_leader, old_leader);
    wait_for("a write after failover", Duration::from_secs(15), || {
        let out = lab.host(survivor).cli(&["network", "create", "after"]);
        Ok(out.success().then_some(()))
    })?;
    // The worker writes too, through whichever manager it reaches.
    wait_for("a write from the worker", Duration::from_secs(15), || {
        Ok(lab
            .host(3)
            .cli(&["network", "create", "from-worker"])
            .success()
            .then_some(()))
    })?;

    // The crashed manager comes back and catches up.
    lab.host_mut(victim).start_daemon()?;
    wait_for("the old leader catches up", CONVERGE, || {
        network(&lab, victim, "from-worker")
    })?;
    let mut reference = wait_for("all hosts agree", CONVERGE, || {
        let r = snapshot(&lab, 0)?;
        for i in 1..4 {
            if snapshot(&lab, i)? != r {
                return Ok(None);
            }
        }
        Ok(Some(r))
    })?;

    // Restart every daemon, gracefully and then by crash: nothing is lost.
    for graceful in [true, false] {
        for i in 0..4 {
            if graceful {
                lab.host_mut(i).stop_daemon()?;
            } else {
                lab.host_mut(i).kill_daemon()?;
            }
        }
        lab.start_all()?;
        for i in 0..4 {
            wait_for(&format!("host {i} has its state back"), CONVERGE, || {
                Ok((snapshot(&lab, i)? == reference).then_some(()))
            })?;
        }
        let name = format!("post-restart-{graceful}");
        wait_for("a write after the restart", Duration::from_secs(20), || {
            Ok(lab
                .host(1)
                .cli(&["network", "create", &name])
                .success()
                .then_some(()))
        })?;
        for i in 0..4 {
            wait_for(&format!("{name} on host {i}"), CONVERGE, || {
                network(&lab, i, &name)
            })?;
        }
        wait_for("all nodes ready again", Duration::from_secs(20), || {
            Ok(node_ls(&lab, 0)?
                .iter()
                .all(|n| n["status"] == "ready")
                .then_some(()))
        })?;
        let grown = snapshot(&lab, 0)?;
        assert_eq!(grown.len(), reference.len() + 1);
        reference = grown;
    }
    Ok(())
}

#[test]
fn quorum_loss_refuses_writes_and_force_new_cluster_recovers() -> anyhow::Result<()> {
    let mut lab = lab(4)?;
    form(&lab, 3, &[])?;
    lab.host(0).cli_ok(&["network", "create", "kept"])?;
    wait_for("kept everywhere", CONVERGE, || network(&lab, 2, "kept"))?;

    // Two of three managers die.
    lab.host_mut(1).kill_daemon()?;
    lab.host_mut(2).kill_daemon()?;

    // Writes fail fast with a message that says why; reads still work.
    wait_for(
        "the survivor notices the lost quorum",
        Duration::from_secs(15),
        || {
            let started = Instant::now();
            let out = lab.host(0).cli(&["network", "create", "refused"]);
            let fast = started.elapsed() < Duration::from_secs(10);
            if out.success() {
                anyhow::bail!("write accepted without quorum: {out:?}");
            }
            Ok((fast && out.status == 3 && out.stderr.contains("quorum")).then_some(()))
        },
    )?;
    assert!(network(&lab, 0, "kept")?.is_some(), "reads still work");
    assert!(network(&lab, 0, "refused")?.is_none());
    let worker_out = lab.host(3).cli(&["network", "create", "refused-too"]);
    assert!(!worker_out.success(), "{worker_out:?}");
    assert!(
        network(&lab, 3, "kept")?.is_some(),
        "the worker still reads"
    );

    // Recovery from the survivor's data.
    lab.host(0).cli_ok(&["init", "--force-new-cluster"])?;
    wait_for("writes after recovery", Duration::from_secs(15), || {
        Ok(lab
            .host(0)
            .cli(&["network", "create", "recovered"])
            .success()
            .then_some(()))
    })?;
    let nodes = node_ls(&lab, 0)?;
    assert_eq!(nodes.iter().filter(|n| n["role"] == "manager").count(), 1);
    assert!(nodes.iter().any(|n| n["role"] == "worker"), "workers stay");
    assert!(network(&lab, 0, "kept")?.is_some());
    // The worker follows the recovered cluster.
    wait_for(
        "the worker sees the recovered cluster",
        Duration::from_secs(20),
        || network(&lab, 3, "recovered"),
    )?;
    Ok(())
}
