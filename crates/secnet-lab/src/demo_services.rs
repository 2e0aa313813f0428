//! The demo's services step: a 2-replica service on the encrypted network, its tasks on two
//! nodes and reachable from `teller`, a task killed and replaced, a node stopped and its
//! task moved to another node.

use std::time::Duration;

use anyhow::{anyhow, bail};
use secnet_lab::{wait_for, Lab};
use serde_json::Value;

use super::{demo_cli, say, say_indented, step};

/// Port of the demo's web service, different for every demo run on the machine, so its
/// processes can be found by their command line even when demos run side by side.
fn port() -> String {
    (18000 + std::process::id() % 1000).to_string()
}

fn tasks(lab: &Lab) -> anyhow::Result<Vec<Value>> {
    let v = lab
        .host(0)
        .cli_json(&["service", "ps", "hello", "--format", "json"])?;
    v.as_array()
        .cloned()
        .ok_or_else(|| anyhow!("`service ps` did not print an array: {v}"))
}

fn running(tasks: &[Value]) -> Vec<&Value> {
    tasks
        .iter()
        .filter(|t| t["desired"] == "running" && t["state"] == "running")
        .collect()
}

/// The pids of the service's processes: `python3 -m http.server PORT`, and not, say, a
/// `secnet` command that names it.
fn pids() -> Vec<i32> {
    let needle = format!("python3 -m http.server {}", port());
    secnet_lab::pids_where(|line| line.starts_with(&needle))
}

pub(super) fn services(lab: &mut Lab) -> anyhow::Result<()> {
    step(
        12,
        "a 2-replica service on the encrypted `frontend`: placed, reached, restarted, moved ...",
    );
    let port = port();
    let args = [
        "service",
        "create",
        "--name",
        "hello",
        "--network",
        "frontend",
        "--replicas",
        "2",
        "--constraint",
        "node.hostname!=h1",
        "--restart-delay",
        "1s",
        "--",
        "python3",
        "-m",
        "http.server",
        &port,
    ];
    say(format!("    h1$ secnet {}", args.join(" ")));
    let out = lab.host(0).cli_timeout(&args, Duration::from_secs(150));
    if !out.success() {
        bail!("service create failed: {out:?}");
    }
    say_indented(out.stderr.trim_end(), "      ");
    say("");
    demo_cli(lab.host(0), &["service", "ps", "hello"], None)?;
    let list = tasks(lab)?;
    let up = running(&list);
    let nodes: std::collections::BTreeSet<&str> = up
        .iter()
        .map(|t| t["node"].as_str().unwrap_or(""))
        .collect();
    if up.len() != 2 || nodes.len() != 2 {
        bail!("expected two running tasks on two nodes: {list:?}");
    }
    say(format!(
        "    two tasks on two nodes: {}",
        nodes.iter().copied().collect::<Vec<_>>().join(", ")
    ));
    // A task on another host than teller's (h5), so the request crosses the overlay.
    let remote = up
        .iter()
        .find(|t| t["node"] != "h5")
        .ok_or_else(|| anyhow!("no task off h5: {list:?}"))?;
    let ip = remote["ip"].as_str().unwrap_or_default().to_string();
    let remote_node = remote["node"].as_str().unwrap_or_default().to_string();
    let fetch = format!("import urllib.request; print(urllib.request.urlopen('http://{ip}:{port}/', timeout=2).status)");
    say(format!(
        "    h5$ secnet exec teller -- python3 -c \"... urlopen('http://{ip}:{port}/') ...\""
    ));
    wait_for("teller reaching a task", Duration::from_secs(10), || {
        let out = lab
            .host(4)
            .cli(&["exec", "teller", "--", "python3", "-c", &fetch]);
        Ok((out.success() && out.stdout.contains("200")).then_some(()))
    })?;
    say(format!(
        "      200 (from teller on h5 to the task on {remote_node}, over the encrypted network)"
    ));

    say("");
    let victim = *pids()
        .first()
        .ok_or_else(|| anyhow!("no task process found"))?;
    say(format!("    kill -9 {victim}   # one task's process dies"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::SIGKILL,
    )?;
    wait_for("a replacement running", Duration::from_secs(30), || {
        let list = tasks(lab)?;
        let failed = list.iter().any(|t| t["state"] == "failed");
        Ok((failed && running(&list).len() == 2).then_some(()))
    })?;
    demo_cli(lab.host(0), &["service", "ps", "hello"], None)?;

    say("");
    let list = tasks(lab)?;
    let moving = running(&list)[0]["node"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let i = (0..lab.hosts().len())
        .find(|i| lab.host(*i).name() == moving)
        .ok_or_else(|| anyhow!("no host {moving}"))?;
    say(format!("    stopping secnetd on {moving} ..."));
    let stopped = std::time::Instant::now();
    lab.host_mut(i).stop_daemon()?;
    wait_for("the task moved", Duration::from_secs(30), || {
        let list = tasks(lab)?;
        let up = running(&list);
        Ok((up.len() == 2 && up.iter().all(|t| t["node"] != moving.as_str())).then_some(()))
    })?;
    say(format!(
        "    rescheduled {:.1} s after {moving} stopped (mostly the 5 s node-down timeout)",
        stopped.elapsed().as_secs_f64()
    ));
    demo_cli(lab.host(0), &["service", "ps", "hello"], None)?;
    say("");
    lab.host_mut(i).start_daemon()?;
    demo_cli(lab.host(0), &["service", "rm", "hello"], None)?;
    wait_for(
        "the service's processes gone",
        Duration::from_secs(30),
        || Ok(pids().is_empty().then_some(())),
    )?;
    say("");
    Ok(())
}
