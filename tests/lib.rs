//! Shared steps of the end-to-end scenarios: forming clusters in a lab and reading their
//! state back through the CLI.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{bail, Context};
use secnet_lab::{Lab, LabConfig};
use serde_json::Value;

/// How long a state change may take to reach every node.
pub const CONVERGE: Duration = Duration::from_secs(10);

/// Builds a lab of `hosts` hosts and starts a daemon on each.
pub fn lab(hosts: usize) -> anyhow::Result<Lab> {
    let mut lab = Lab::new(LabConfig::new(hosts))?;
    lab.start_all()?;
    Ok(lab)
}

/// `init` on host 0 with separate control (eth0) and data (eth1) interfaces.
pub fn init(lab: &Lab, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = vec![
        "init",
        "--advertise-addr",
        "eth0",
        "--data-path-addr",
        "eth1",
    ];
    args.extend_from_slice(extra);
    lab.host(0).cli_ok(&args)
}

/// The join token for `role` ("worker" or "manager"), read on host `on`.
pub fn token(lab: &Lab, on: usize, role: &str) -> anyhow::Result<String> {
    Ok(lab
        .host(on)
        .cli_ok(&["join-token", role, "-q"])?
        .trim()
        .to_string())
}

/// Joins host `i` through the manager on host `via` with `token`.
pub fn join(lab: &Lab, i: usize, via: usize, token: &str) -> anyhow::Result<String> {
    lab.join(i, via, token)
}

/// Forms a cluster of every host of the lab: host 0 inits, hosts 1..managers join as
/// managers, the rest as workers; waits until every node sees every node ready.
pub fn form(lab: &Lab, managers: usize, init_extra: &[&str]) -> anyhow::Result<()> {
    lab.form_cluster(lab.hosts().len(), managers, init_extra)
}

/// `node ls --format json` on host `i`.
pub fn node_ls(lab: &Lab, i: usize) -> anyhow::Result<Vec<Value>> {
    as_array(lab.host(i).cli_json(&["node", "ls", "--format", "json"])?)
}

/// `network ls --format json` on host `i`.
pub fn network_ls(lab: &Lab, i: usize) -> anyhow::Result<Vec<Value>> {
    as_array(
        lab.host(i)
            .cli_json(&["network", "ls", "--format", "json"])?,
    )
}

/// The network named `name` as host `i` sees it, if any.
pub fn network(lab: &Lab, i: usize, name: &str) -> anyhow::Result<Option<Value>> {
    Ok(network_ls(lab, i)?.into_iter().find(|n| n["name"] == name))
}

fn as_array(v: Value) -> anyhow::Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => bail!("expected a JSON array, got {other}"),
    }
}

/// The id of the leader as host `i` sees it.
pub fn leader(lab: &Lab, i: usize) -> anyhow::Result<Option<String>> {
    Ok(node_ls(lab, i)?
        .into_iter()
        .find(|n| n["leader"] == true)
        .map(|n| n["id"].as_str().unwrap_or_default().to_string()))
}

/// The index of the host whose node id is `id`.
pub fn host_of(lab: &Lab, id: &str) -> anyhow::Result<usize> {
    for i in 0..lab.hosts().len() {
        let st = lab.host(i).cli_json(&["status", "--format", "json"]);
        if let Ok(st) = st {
            if st["node_id"] == id {
                return Ok(i);
            }
        }
    }
    bail!("no running host has node id {id}")
}

/// Output of a command run in an endpoint's namespace.
#[derive(Debug)]
pub struct NsOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl NsOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Runs `cmd` inside the network namespace at `netns` (an endpoint's, from
/// `endpoint create --format json`).
pub fn in_ns(netns: &str, cmd: &[&str]) -> NsOutput {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .arg("--")
        .args(cmd)
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) => NsOutput {
            status: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Err(e) => NsOutput {
            status: -1,
            stdout: String::new(),
            stderr: e.to_string(),
        },
    }
}

/// An endpoint as `endpoint create --format json` reports it.
#[derive(Debug, Clone)]
pub struct Ep {
    pub name: String,
    pub ip: String,
    pub mac: String,
    pub netns: String,
    pub host: usize,
}

/// Creates an endpoint on host `i`.
pub fn endpoint(lab: &Lab, i: usize, network: &str, name: &str) -> anyhow::Result<Ep> {
    let v = lab.host(i).cli_json(&[
        "endpoint",
        "create",
        "--network",
        network,
        "--name",
        name,
        "--format",
        "json",
    ])?;
    Ok(Ep {
        name: v["name"].as_str().unwrap_or_default().to_string(),
        ip: v["ip"].as_str().unwrap_or_default().to_string(),
        mac: v["mac"].as_str().unwrap_or_default().to_string(),
        netns: v["netns"]
            .as_str()
            .context("endpoint create reported no netns")?
            .to_string(),
        host: i,
    })
}

/// One ICMP echo from `from` to `ip`, 2 s deadline.
pub fn ping(from: &Ep, ip: &str) -> NsOutput {
    in_ns(&from.netns, &["ping", "-c", "1", "-W", "2", ip])
}

/// The namespace holding a network's bridge and VXLAN device on host `i`.
pub fn network_netns(lab: &Lab, i: usize, network_id: &str) -> String {
    let short: String = network_id.chars().take(12).collect();
    lab.host(i)
        .dir()
        .join("run/netns")
        .join(format!("net-{short}"))
        .display()
        .to_string()
}

/// A child process killed (and reaped) when dropped, also when a test fails.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `secnet_lab::traffic::tcp_server` in endpoint `ep` (answering `size` bytes ending
/// in `marker`), logging to `log`.
pub fn tcp_serve(
    ep: &Ep,
    size: usize,
    marker: &str,
    log: &std::path::Path,
) -> anyhow::Result<KillOnDrop> {
    let server = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ep.netns))
        .args([
            "--",
            "python3",
            "-c",
            &secnet_lab::traffic::tcp_server(&ep.ip, size, marker),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    Ok(KillOnDrop(server))
}

/// Fetches from a [`tcp_serve`] server at `server_ip` in endpoint `from`; the output is
/// `tcp_expected(size, marker)` when everything arrived.
pub fn tcp_fetch(from: &Ep, server_ip: &str, marker: &str) -> NsOutput {
    in_ns(
        &from.netns,
        &[
            "python3",
            "-c",
            &secnet_lab::traffic::tcp_client(server_ip, marker),
        ],
    )
}
