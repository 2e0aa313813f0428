//! The replicated pre-shared-key ring: seeded by the leader, rotated on demand, on schedule
//! and when a node is removed, promoted only once every live node holds the new key.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secnet_e2e::*;
use secnet_lab::wait_for;
use serde_json::Value;

fn keys(lab: &secnet_lab::Lab, i: usize) -> anyhow::Result<Vec<Value>> {
    Ok(lab
        .host(i)
        .cli_json(&["key", "ls", "--format", "json"])?
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn primary_epoch(keys: &[Value]) -> Option<u64> {
    keys.iter()
        .find(|k| k["state"] == "primary")
        .and_then(|k| k["epoch"].as_u64())
}

#[test]
fn rotation_on_demand_on_schedule_and_on_removal() -> anyhow::Result<()> {
    let mut lab = lab(4)?;
    form(&lab, 2, &["--key-rotation-interval", "10s"])?;
    // The leader seeds the ring; every node (workers too) holds it.
    for i in 0..4 {
        wait_for(&format!("the key ring on host {i}"), CONVERGE, || {
            Ok(primary_epoch(&keys(&lab, i)?))
        })?;
    }

    // A manual rotation returns once the new key is primary, installed on every node.
    let before = primary_epoch(&keys(&lab, 0)?).unwrap();
    let out = lab.host(1).cli_ok(&["key", "rotate"])?;
    assert!(out.contains("primary"), "{out}");
    let after = keys(&lab, 1)?;
    let new = primary_epoch(&after).unwrap();
    assert!(new > before, "{after:?}");
    let primary = after.iter().find(|k| k["epoch"] == new).unwrap();
    assert_eq!(primary["installed_on"], 4);
    assert!(after.len() <= 3, "at most three keys: {after:?}");
    assert!(
        after.iter().any(|k| k["state"] == "retiring"),
        "the old key retires: {after:?}"
    );
    // The keys themselves are never shown.
    let text = lab.host(0).cli_ok(&["key", "ls", "--format", "json"])?;
    assert!(!text.contains("secret"), "{text}");
    // Only managers rotate.
    let out = lab.host(3).cli(&["key", "rotate"]);
    assert!(
        !out.success() && out.stderr.contains("not a manager"),
        "{out:?}"
    );

    // On schedule: a 10 s interval brings a new primary without anyone asking.
    let scheduled = wait_for("a scheduled rotation", Duration::from_secs(25), || {
        Ok(primary_epoch(&keys(&lab, 0)?).filter(|e| *e > new))
    })?;

    // A removed node never receives a key made after its removal.
    let worker = lab.host(3).cli_json(&["status", "--format", "json"])?["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    lab.host_mut(3).stop_daemon()?;
    lab.host(0).cli_ok(&["node", "rm", "--force", &worker])?;
    let after_removal = wait_for("a rotation caused by the removal", CONVERGE, || {
        Ok(primary_epoch(&keys(&lab, 0)?).filter(|e| *e > scheduled))
    })?;
    lab.host_mut(3).start_daemon()?;
    // Give the removed node's daemon time to try its watch and be refused.
    wait_for("the removed node's watch refused", CONVERGE, || {
        Ok(lab
            .host(3)
            .log_tail(100)
            .contains("certificate not recognized")
            .then_some(()))
    })?;
    let seen = keys(&lab, 3)?;
    let max_seen = seen
        .iter()
        .filter_map(|k| k["epoch"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        max_seen < after_removal,
        "removed node saw epoch {max_seen} >= {after_removal}"
    );
    Ok(())
}

#[test]
fn key_rotate_without_quorum_fails_clearly() -> anyhow::Result<()> {
    let mut lab = lab(3)?;
    form(&lab, 3, &[])?;
    wait_for("the key ring", CONVERGE, || {
        Ok(primary_epoch(&keys(&lab, 0)?))
    })?;
    lab.host_mut(1).kill_daemon()?;
    lab.host_mut(2).kill_daemon()?;
    let out = lab.host(0).cli(&["key", "rotate"]);
    assert!(!out.success(), "{out:?}");
    assert_eq!(out.status, 3, "{out:?}");
    assert!(out.stderr.contains("quorum"), "{out:?}");
    Ok(())
}
