//! The control-plane bed (`secnet-lab bench --control`): how long a `network create`, an
//! `endpoint create` and a `key rotate` take to reach every host of an N-host cluster, how
//! long a 10-replica service takes to run, and how long its task takes to move off a node
//! that stops.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Serialize;

use super::report::write_pair;
use super::stats::{median, percentile, utc_date};
use super::{create_endpoint, form_cluster, ns_run, say, MachineInfo};
use crate::lab::{bin_dir, Host, Lab, LabConfig};

/// What `secnet-lab bench --control` should do.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// Cluster sizes, one lab each, in this order.
    pub hosts: Vec<usize>,
    /// Network creations, probe endpoints and key rotations per cluster.
    pub repeats: usize,
    /// Directory for the `.md` and `.json` results.
    pub output: PathBuf,
    /// Name prefix; each lab uses `<prefix>n<N>`.
    pub prefix: String,
    /// Mark the results as a smoke run (file name `-control-smoke`).
    pub smoke: bool,
}

/// How long one change may take to reach every host before the bed gives up on it.
const SPREAD_DEADLINE: Duration = Duration::from_secs(60);
/// Threads polling the hosts (more would steal the CPU the daemons need on a small machine).
const POLLERS: usize = 2;

/// What one cluster size gave (milliseconds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ControlResult {
    pub hosts: usize,
    pub managers: usize,
    /// Seconds to init, join everyone and see every node ready.
    pub form_s: f64,
    /// `network create` on h1 until the CLI returned.
    pub network_create_cli_ms: Vec<f64>,
    /// `network create` until every host listed it (`network ls -q`).
    pub network_visible_all_ms: Vec<f64>,
    /// The first endpoint of a network on each host (programs the network's namespace,
    /// bridge and VXLAN device there), until the CLI returned.
    pub first_endpoint_create_ms: Vec<f64>,
    /// After the last of those: until every host's VXLAN FDB held every other host's endpoint.
    pub mesh_programmed_ms: Option<f64>,
    /// Another endpoint on a host that already has the network, until the CLI returned.
    pub endpoint_create_cli_ms: Vec<f64>,
    /// The same endpoint create until its MAC was in the FDB of every other host.
    pub endpoint_programmed_all_ms: Vec<f64>,
    /// `key rotate` until the CLI returned (the new key is primary).
    pub key_rotate_cli_ms: Vec<f64>,
    /// `key rotate` until every host's tunnel was keyed with the new primary epoch.
    pub key_rotation_all_ms: Vec<f64>,
    /// `service create --replicas 10 --detach` until 10 tasks were reported running.
    pub service_running_ms: Option<f64>,
    /// A node with a task stopped, until the service ran 10 tasks again, none on that node
    /// (the leader waits 5 s of silence before it marks a node down).
    pub service_reschedule_ms: Option<f64>,
    /// Median time of one poll of one host (the resolution of the "on all hosts" times).
    pub poll_ms: Option<f64>,
    pub error: Option<String>,
}

/// Polls `check` for every index in `items` with [`POLLERS`] threads, round-robin, until
/// each returned true or the deadline passed. Returns, per item, the milliseconds since
/// `start` at the end of its first successful check (an upper bound), and the check times.
fn poll_all(
    items: &[usize],
    start: Instant,
    check: impl Fn(usize) -> bool + Sync,
) -> (Vec<Option<f64>>, Vec<f64>) {
    let queue: Mutex<VecDeque<usize>> = Mutex::new(items.iter().copied().collect());
    let done: Mutex<Vec<(usize, f64)>> = Mutex::new(Vec::new());
    let costs: Mutex<Vec<f64>> = Mutex::new(Vec::new());
    let deadline = start + SPREAD_DEADLINE;
    std::thread::scope(|s| {
        for _ in 0..POLLERS.min(items.len()) {
            s.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(i) = next else { return };
                let t = Instant::now();
                let ok = check(i);
                let end = Instant::now();
                if let Ok(mut c) = costs.lock() {
                    c.push((end - t).as_secs_f64() * 1e3);
                }
                if ok {
                    if let Ok(mut d) = done.lock() {
                        d.push((i, (end - start).as_secs_f64() * 1e3));
                    }
                } else if end < deadline {
                    if let Ok(mut q) = queue.lock() {
                        q.push_back(i);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
        }
    });
    let done = done.into_inner().unwrap_or_default();
    let times = items
        .iter()
        .map(|i| done.iter().find(|(j, _)| j == i).map(|(_, t)| *t))
        .collect();
    (times, costs.into_inner().unwrap_or_default())
}

/// The largest time if every item got one.
fn all_of(times: &[Option<f64>], what: &str) -> anyhow::Result<f64> {
    let missing = times.iter().filter(|t| t.is_none()).count();
    if missing > 0 {
        bail!(
            "{what}: {missing} of {} hosts never saw it within {SPREAD_DEADLINE:?}",
            times.len()
        );
    }
    Ok(times.iter().flatten().copied().fold(0.0, f64::max))
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The namespace of network `id` on `host` (where its bridge and `vxlan0` live).
fn network_ns(host: &Host, id: &str) -> String {
    let short: String = id.chars().take(12).collect();
    host.dir()
        .join("run/netns")
        .join(format!("net-{short}"))
        .display()
        .to_string()
}

fn fdb_has(ns: &str, macs: &[String]) -> bool {
    let out = ns_run(
        ns,
        &["bridge", "fdb", "show", "dev", "vxlan0"],
        Duration::from_secs(10),
    );
    let text = out.stdout.to_lowercase();
    out.success() && macs.iter().all(|m| text.contains(&m.to_lowercase()))
}

fn tunnel_epoch(host: &Host) -> Option<u64> {
    host.cli_json(&["tunnel", "ls", "--format", "json"])
        .ok()
        .and_then(|t| t["key_epoch"].as_u64())
}

fn primary_epoch(host: &Host) -> anyhow::Result<u64> {
    let keys = host.cli_json(&["key", "ls", "--format", "json"])?;
    keys.as_array()
        .and_then(|ks| {
            ks.iter()
                .find(|k| k["state"] == "primary")
                .and_then(|k| k["epoch"].as_u64())
        })
        .ok_or_else(|| anyhow!("no primary key in `key ls`: {keys}"))
}

fn measure(lab: &mut Lab, n: usize, repeats: usize, r: &mut ControlResult) -> anyhow::Result<()> {
    let all: Vec<usize> = (0..n).collect();
    let mut costs = Vec::new();
    say(format!(
        "  [{n} hosts] starting {n} daemons, forming the cluster ..."
    ));
    let t = Instant::now();
    lab.start_all()?;
    r.managers = n.min(3);
    form_cluster(lab, n, r.managers, "10.80.0.0/16")?;
    let lab: &Lab = lab;
    let (keyed, c) = poll_all(&all, Instant::now(), |i| {
        tunnel_epoch(lab.host(i)).is_some()
    });
    costs.extend(c);
    all_of(&keyed, "the first key ring")?;
    r.form_s = t.elapsed().as_secs_f64();
    say(format!("    cluster of {n} ready in {:.1} s", r.form_s));
    let h1 = lab.host(0);

    let mut first_id = String::new();
    for rep in 1..=repeats {
        let name = format!("ctl{rep}");
        let t0 = Instant::now();
        let id = h1.cli_ok(&["network", "create", &name])?.trim().to_owned();
        r.network_create_cli_ms.push(ms_since(t0));
        let (seen, c) = poll_all(&all, t0, |i| {
            let out = lab.host(i).cli(&["network", "ls", "-q"]);
            out.success() && out.stdout.lines().any(|l| l.trim() == id)
        });
        costs.extend(c);
        r.network_visible_all_ms
            .push(all_of(&seen, &format!("network {name}"))?);
        if rep == 1 {
            first_id = id;
        }
    }
    say(format!(
        "    network create: CLI {:.0} ms, on all hosts {:.0} ms (median of {repeats})",
        median(&r.network_create_cli_ms).unwrap_or(f64::NAN),
        median(&r.network_visible_all_ms).unwrap_or(f64::NAN)
    ));

    let mut macs = Vec::new();
    for (i, host) in lab.hosts().iter().enumerate() {
        let t0 = Instant::now();
        let ep = create_endpoint(host, "ctl1", &format!("e{}", i + 1))?;
        r.first_endpoint_create_ms.push(ms_since(t0));
        macs.push(ep.mac);
    }
    let t0 = Instant::now();
    let (meshed, c) = poll_all(&all, t0, |i| {
        let others: Vec<String> = macs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, m)| m.clone())
            .collect();
        fdb_has(&network_ns(lab.host(i), &first_id), &others)
    });
    costs.extend(c);
    r.mesh_programmed_ms = Some(all_of(&meshed, "the endpoint mesh")?);

    for rep in 1..=repeats {
        let on = rep % n;
        let others: Vec<usize> = (0..n).filter(|i| *i != on).collect();
        let t0 = Instant::now();
        let ep = create_endpoint(lab.host(on), "ctl1", &format!("probe{rep}"))?;
        r.endpoint_create_cli_ms.push(ms_since(t0));
        let mac = [ep.mac];
        let (seen, c) = poll_all(&others, t0, |i| {
            fdb_has(&network_ns(lab.host(i), &first_id), &mac)
        });
        costs.extend(c);
        r.endpoint_programmed_all_ms
            .push(all_of(&seen, &format!("endpoint probe{rep}"))?);
    }
    say(format!(
        "    endpoint create: CLI {:.0} ms, in every other host's FDB {:.0} ms (median)",
        median(&r.endpoint_create_cli_ms).unwrap_or(f64::NAN),
        median(&r.endpoint_programmed_all_ms).unwrap_or(f64::NAN)
    ));

    for _ in 0..repeats {
        let t0 = Instant::now();
        h1.cli_ok(&["key", "rotate"])?;
        r.key_rotate_cli_ms.push(ms_since(t0));
        let epoch = primary_epoch(h1)?;
        let (seen, c) = poll_all(&all, t0, |i| {
            tunnel_epoch(lab.host(i)).is_some_and(|e| e >= epoch)
        });
        costs.extend(c);
        r.key_rotation_all_ms
            .push(all_of(&seen, &format!("key epoch {epoch}"))?);
    }
    say(format!(
        "    key rotate: CLI {:.0} ms, every tunnel on the new key {:.0} ms (median)",
        median(&r.key_rotate_cli_ms).unwrap_or(f64::NAN),
        median(&r.key_rotation_all_ms).unwrap_or(f64::NAN)
    ));
    r.poll_ms = median(&costs);
    Ok(())
}

/// Tasks of the bed's service.
const SERVICE_REPLICAS: u64 = 10;
/// How long the service may take to converge, or to recover from a stopped node.
const SERVICE_DEADLINE: Duration = Duration::from_secs(120);

/// (running tasks, their hostnames) of service `bench` as host 1 sees them.
fn service_tasks(h1: &Host) -> anyhow::Result<(u64, Vec<String>)> {
    let v = h1.cli_json(&["service", "ps", "bench", "--format", "json"])?;
    let running: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["desired"] == "running" && t["state"] == "running")
        .map(|t| t["node"].as_str().unwrap_or("").to_string())
        .collect();
    Ok((running.len() as u64, running))
}

/// Waits (polling host 1) until `done(running, nodes)`; milliseconds since `t0`.
fn wait_service(
    h1: &Host,
    t0: Instant,
    what: &str,
    done: impl Fn(u64, &[String]) -> bool,
) -> anyhow::Result<f64> {
    loop {
        let (n, nodes) = service_tasks(h1)?;
        if done(n, &nodes) {
            return Ok(ms_since(t0));
        }
        if t0.elapsed() > SERVICE_DEADLINE {
            bail!("{what}: not reached within {SERVICE_DEADLINE:?} ({n} running)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The services part: a 10-replica service until it runs, then a node with one of its tasks
/// stopped until the service runs 10 tasks again elsewhere.
fn measure_services(lab: &mut Lab, n: usize, r: &mut ControlResult) -> anyhow::Result<()> {
    let h1 = lab.host(0);
    let replicas = SERVICE_REPLICAS.to_string();
    let t0 = Instant::now();
    h1.cli_ok(&[
        "service",
        "create",
        "--name",
        "bench",
        "--network",
        "ctl1",
        "--replicas",
        &replicas,
        "--restart-delay",
        "0s",
        "--detach",
        "--",
        "sleep",
        "86400",
    ])?;
    let ms = wait_service(h1, t0, "10 running tasks", |n, _| n == SERVICE_REPLICAS)?;
    r.service_running_ms = Some(ms);
    say(format!(
        "    service create --replicas 10: running in {ms:.0} ms"
    ));
    if n < 2 {
        return Ok(());
    }
    // A node with a task, not host 1 (the bed talks to it).
    let (_, nodes) = service_tasks(h1)?;
    let Some(i) = (1..n).find(|i| nodes.iter().any(|h| h == lab.host(*i).name())) else {
        return Ok(());
    };
    let gone = lab.host(i).name().to_string();
    let t0 = Instant::now();
    lab.host_mut(i).stop_daemon()?;
    let h1 = lab.host(0);
    let ms = wait_service(h1, t0, "the tasks rescheduled", |n, nodes| {
        n == SERVICE_REPLICAS && nodes.iter().all(|h| *h != gone)
    })?;
    r.service_reschedule_ms = Some(ms);
    say(format!(
        "    {gone} stopped: 10 tasks running elsewhere after {ms:.0} ms"
    ));
    Ok(())
}

fn cell(v: &[f64]) -> String {
    match (median(v), v.iter().copied().reduce(f64::max)) {
        (Some(m), Some(x)) if v.len() > 1 => format!("{m:.0} (max {x:.0})"),
        (Some(m), _) => format!("{m:.0}"),
        _ => "-".into(),
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.0}")).unwrap_or_else(|| "-".into())
}

fn render(results: &[ControlResult], machine: &MachineInfo, opts: &ControlOptions) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Control-plane benchmark{}, {}\n",
        if opts.smoke { " (smoke)" } else { "" },
        utc_date(machine.started_unix)
    );
    let _ = writeln!(
        md,
        "`secnet-lab bench --control --hosts {}`: one lab per cluster size (managers: min(3, N), the rest workers), {} repetition(s) of each change; times in milliseconds, median (max) over the repetitions. \"On all hosts\" times are upper bounds: {POLLERS} threads poll the hosts round-robin and a host counts at the end of the first check that saw the change (the poll column is the median cost of one check).\n",
        opts.hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        opts.repeats
    );
    md.push_str(&machine.markdown());
    md.push_str("\n| hosts | form cluster (s) | network create: CLI | network create: listed on all hosts | first endpoint per host: CLI | FDB mesh complete after the last | endpoint create: CLI | endpoint in every other host's FDB | key rotate: CLI | every tunnel on the new key | service of 10: running | node stopped: 10 running elsewhere | poll (ms) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        if let Some(e) = &r.error {
            let _ = writeln!(
                md,
                "| {} | failed: {} | | | | | | | | | | | |",
                r.hosts,
                e.lines().next().unwrap_or("").replace('|', "/")
            );
            continue;
        }
        let first = &r.first_endpoint_create_ms;
        let _ = writeln!(
            md,
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.hosts,
            r.form_s,
            cell(&r.network_create_cli_ms),
            cell(&r.network_visible_all_ms),
            match (median(first), percentile(first, 99.0)) {
                (Some(m), Some(p)) => format!("{m:.0} (p99 {p:.0})"),
                _ => "-".into(),
            },
            r.mesh_programmed_ms
                .map(|m| format!("{m:.0}"))
                .unwrap_or_else(|| "-".into()),
            cell(&r.endpoint_create_cli_ms),
            cell(&r.endpoint_programmed_all_ms),
            cell(&r.key_rotate_cli_ms),
            cell(&r.key_rotation_all_ms),
            opt_ms(r.service_running_ms),
            opt_ms(r.service_reschedule_ms),
            r.poll_ms
                .map(|m| format!("{m:.0}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    md.push_str(
        "\n## Targets (issues 5 and 12)\n\n| target | measured | status |\n|---|---|---|\n",
    );
    match results
        .iter()
        .filter(|r| r.error.is_none())
        .max_by_key(|r| r.hosts)
    {
        Some(r) => {
            let net = r.network_visible_all_ms.iter().copied().reduce(f64::max);
            let key = r.key_rotation_all_ms.iter().copied().reduce(f64::max);
            let worst = format!("worst of {}", opts.repeats);
            for (what, v, limit, over) in [
                (
                    "network create on all hosts < 2 s",
                    net,
                    2000.0,
                    worst.as_str(),
                ),
                (
                    "key rotation complete on all hosts < 5 s",
                    key,
                    5000.0,
                    worst.as_str(),
                ),
                (
                    "a stopped node's task rescheduled < 15 s",
                    r.service_reschedule_ms,
                    15000.0,
                    "one run",
                ),
            ] {
                let _ = writeln!(
                    md,
                    "| {what} ({} hosts) | {} | {} |",
                    r.hosts,
                    v.map(|x| format!("{x:.0} ms ({over})"))
                        .unwrap_or_else(|| "-".into()),
                    match v {
                        Some(x) if x < limit => "met",
                        Some(_) => "NOT met",
                        None => "n/a",
                    }
                );
            }
        }
        None => md.push_str("| - | no cluster size was measured | n/a |\n"),
    }
    md
}

/// Runs the control-plane bed: returns the path of the Markdown results.
pub fn run_control(opts: &ControlOptions) -> anyhow::Result<PathBuf> {
    if opts.hosts.is_empty() || opts.hosts.contains(&0) || opts.repeats == 0 {
        bail!("--hosts needs cluster sizes of at least 1, and --repeats at least 1");
    }
    let bins = bin_dir()?;
    let mut machine = MachineInfo::now(&bins);
    say(format!(
        "secnet-lab bench --control: clusters of {:?} hosts, {} repetition(s), {} binaries; load {}",
        opts.hosts, opts.repeats, machine.profile, machine.load_start
    ));
    let mut results = Vec::new();
    for &n in &opts.hosts {
        let mut r = ControlResult {
            hosts: n,
            ..ControlResult::default()
        };
        let outcome = Lab::new(LabConfig {
            hosts: n,
            name_prefix: Some(format!("{}n{n}", opts.prefix)),
            daemon_args: Vec::new(),
        })
        .and_then(|mut lab| {
            let res = measure(&mut lab, n, opts.repeats, &mut r)
                .and_then(|()| measure_services(&mut lab, n, &mut r));
            let down = lab.teardown();
            res.and(down)
        });
        if let Err(e) = outcome {
            say(format!("    {n} hosts failed: {e:#}"));
            r.error = Some(format!("{e:#}"));
        }
        results.push(r);
    }
    machine.finish();
    let md = render(&results, &machine, opts);
    let json = serde_json::json!({
        "kind": "control",
        "machine": machine,
        "repeats": opts.repeats,
        "results": results,
    });
    let stem = format!(
        "{}-control{}",
        utc_date(machine.started_unix),
        if opts.smoke { "-smoke" } else { "" }
    );
    let path = write_pair(&opts.output, &stem, &md, &json)?;
    say("");
    say(md.trim_end());
    say("");
    say(format!("results written to {}", path.display()));
    if results.iter().all(|r| r.error.is_some()) {
        bail!("no cluster size could be measured");
    }
    Ok(path)
}
