//! Daemons started the way a user starts them, not the way `secnet-lab` does: hosts made
//! with plain `ip netns add`, `secnetd` started in them with `ip netns exec` (which gives it a
//! private mount namespace) and the default or an explicit run directory (issue 10).
//!
//! Checks that the namespace files the daemons report are usable from the machine, that
//! a kill -9 of the leader and a full stop and start of every daemon leave every host
//! namespace in place, bring every daemon back with its state, and keep endpoints on
//! different hosts reaching each other; and that a second daemon on a directory or socket
//! in use is refused, naming the holder.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use secnet_lab::wait_for;
use serde_json::Value;

const START: Duration = Duration::from_secs(20);
const CONVERGE: Duration = Duration::from_secs(30);

/// `snu` + 5 characters unique to this process and call (not `secnet-lab`'s `snl`, so
/// no lab tooling ever sweeps these namespaces).
fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let v = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(N.fetch_add(1, Ordering::Relaxed).wrapping_mul(104_729))
        .wrapping_add(nanos / 1000);
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = String::from("snu");
    let mut x = v;
    for _ in 0..5 {
        s.push(char::from(alphabet[(x % 36) as usize]));
        x /= 36;
    }
    s
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = run(Command::new("ip").args(args));
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// True when `path` is a network namespace file this process can enter.
fn enterable(path: &str) -> bool {
    run(Command::new("nsenter")
        .arg(format!("--net={path}"))
        .arg("true"))
    .status
    .success()
}

/// True when `/run/netns/<ns>` (what `ip netns add` made) can still be entered.
fn netns_usable(ns: &str) -> bool {
    enterable(&format!("/run/netns/{ns}"))
}

fn bin(name: &str) -> PathBuf {
    secnet_lab::bin_dir().unwrap().join(name)
}

/// One host as a user makes it: `ip netns add`, `eth0` on the control switch, `eth1` on the
/// data switch.
struct Host {
    ns: String,
    name: String,
    state_dir: PathBuf,
    socket: PathBuf,
    /// `None`: the daemon's default.
    run_dir_flag: Option<PathBuf>,
    log: PathBuf,
    daemon: Option<Child>,
}

/// Hosts, their switch and their daemons; everything is removed on drop, also when a test
/// fails half-way.
struct Machine {
    prefix: String,
    dir: tempfile::TempDir,
    hosts: Vec<Host>,
    /// Run directories the daemons reported, cleaned up on drop.
    run_dirs: Vec<PathBuf>,
}

impl Machine {
    fn new(hosts: usize, explicit_run_dirs: bool) -> anyhow::Result<Machine> {
        let prefix = unique_prefix();
        let dir = tempfile::Builder::new()
            .prefix("secnet-user-hosts")
            .tempdir()?;
        let mut m = Machine {
            prefix: prefix.clone(),
            dir,
            hosts: Vec::new(),
            run_dirs: Vec::new(),
        };
        let sw = format!("{prefix}sw");
        ip(&["netns", "add", &sw])?;
        for br in ["swc", "swd"] {
            ip(&["-n", &sw, "link", "add", br, "type", "bridge"])?;
            ip(&["-n", &sw, "link", "set", br, "up"])?;
        }
        for i in 1..=hosts {
            let ns = format!("{prefix}h{i}");
            ip(&["netns", "add", &ns])?;
            let base = m.dir.path().to_path_buf();
            m.hosts.push(Host {
                ns: ns.clone(),
                name: format!("h{i}"),
                state_dir: base.join(format!("state{i}")),
                socket: base.join(format!("h{i}.sock")),
                run_dir_flag: explicit_run_dirs.then(|| base.join(format!("run{i}"))),
                log: base.join(format!("h{i}.log")),
                daemon: None,
            });
            // Made in the switch namespace and moved: nothing touches the root namespace.
            for (sw_end, host_end, br, net) in [
                ("c", "eth0", "swc", "192.0.2"),
                ("d", "eth1", "swd", "198.51.100"),
            ] {
                let port = format!("{sw_end}{i}");
                ip(&[
                    "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", host_end,
                    "netns", &ns,
                ])?;
                ip(&["-n", &sw, "link", "set", &port, "master", br, "up"])?;
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{net}.{}/24", 10 + i),
                    "dev",
                    host_end,
                ])?;
                ip(&["-n", &ns, "link", "set", host_end, "up"])?;
            }
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(m)
    }

    fn ctl_ip(i: usize) -> String {
        format!("192.0.2.{}", 11 + i)
    }

    /// `ip netns exec NS secnetd ...`, as `secnetd --help` says, and waits for its socket.
    fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let h = &mut self.hosts[i];
        let log = File::options().create(true).append(true).open(&h.log)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &h.ns])
            .arg(bin("secnetd"))
            .arg("--state-dir")
            .arg(&h.state_dir)
            .arg("--socket")
            .arg(&h.socket)
            .args(["--hostname", &h.name]);
        if let Some(r) = &h.run_dir_flag {
            cmd.arg("--run-dir").arg(r);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        h.daemon = Some(child);
        let deadline = Instant::now() + START;
        loop {
            let h = &mut self.hosts[i];
            if let Some(st) = h.daemon.as_mut().unwrap().try_wait()? {
                let name = h.name.clone();
                bail!("secnetd on {name} exited ({st}):\n{}", self.log_tail(i));
            }
            if UnixStream::connect(&h.socket).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "secnetd on {} did not listen:\n{}",
                    self.hosts[i].name,
                    self.log_tail(i)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let run_dir = self.status(i)?["run_dir"]
            .as_str()
            .context("status without run_dir")?
            .to_string();
        if !self.run_dirs.iter().any(|d| d == Path::new(&run_dir)) {
            self.run_dirs.push(PathBuf::from(run_dir));
        }
        Ok(())
    }

    /// Sends `signal` to the daemon of host `i` and reaps it.
    fn stop(&mut self, i: usize, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let Some(mut child) = self.hosts[i].daemon.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        nix::sys::signal::kill(pid, signal)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("secnetd on {} ignored {signal}", self.hosts[i].name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.hosts[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The CLI as a user runs it, from the machine's root namespace.
    fn cli(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        let out = run(Command::new(bin("secnet"))
            .arg("--socket")
            .arg(&self.hosts[i].socket)
            .args(args));
        if !out.status.success() {
            bail!(
                "secnet {} on {}: {}",
                args.join(" "),
                self.hosts[i].name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    fn json(&self, i: usize, args: &[&str]) -> anyhow::Result<Value> {
        Ok(serde_json::from_str(&self.cli(i, args)?)?)
    }

    fn status(&self, i: usize) -> anyhow::Result<Value> {
        self.json(i, &["status", "--format", "json"])
    }

    fn form(&self, managers: usize) -> anyhow::Result<()> {
        let addrs = ["--advertise-addr", "eth0", "--data-path-addr", "eth1"];
        let mut init = vec!["init"];
        init.extend(addrs);
        self.cli(0, &init)?;
        let manager = self.cli(0, &["join-token", "manager", "-q"])?;
        let worker = self.cli(0, &["join-token", "worker", "-q"])?;
        let remote = format!("{}:2377", Self::ctl_ip(0));
        for i in 1..self.hosts.len() {
            let token = if i < managers { &manager } else { &worker };
            let mut join = vec!["join", "--token", token.trim()];
            join.extend(addrs);
            join.push(&remote);
            self.cli(i, &join)?;
        }
        Ok(())
    }

    /// Host namespaces that cannot be entered any more.
    fn lost_host_namespaces(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| h.ns.clone())
            .chain([format!("{}sw", self.prefix)])
            .filter(|ns| !netns_usable(ns))
            .collect()
    }

    fn endpoint(&self, i: usize, network: &str, name: &str) -> anyhow::Result<(String, String)> {
        let v = self.json(
            i,
            &[
                "endpoint",
                "create",
                "--network",
                network,
                "--name",
                name,
                "--format",
                "json",
            ],
        )?;
        Ok((
            v["netns"].as_str().context("no netns")?.to_string(),
            v["ip"].as_str().context("no ip")?.to_string(),
        ))
    }

    fn leader_host(&self) -> anyhow::Result<usize> {
        wait_for("a leader", CONVERGE, || {
            for i in 0..self.hosts.len() {
                let Ok(nodes) = self.json(i, &["node", "ls", "--format", "json"]) else {
                    continue;
                };
                let Some(id) = nodes.as_array().into_iter().flatten().find_map(|n| {
                    (n["leader"] == true).then(|| n["id"].as_str().unwrap_or_default().to_string())
                }) else {
                    continue;
                };
                for j in 0..self.hosts.len() {
                    if self.status(j).is_ok_and(|s| s["node_id"] == id.as_str()) {
                        return Ok(Some(j));
                    }
                }
            }
            Ok(None)
        })
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            if let Some(mut c) = h.daemon.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // The daemons' namespace files (bind mounts in this mount namespace) first.
        let mut dirs: Vec<PathBuf> = self.run_dirs.clone();
        dirs.push(self.dir.path().to_path_buf());
        for dir in &dirs {
            for e in secnet_lab::release_mounts_under(dir) {
                eprintln!("cleanup: {e}");
            }
        }
        // Default run directories (`/run/secnet/state-<hash>`) are this test's alone; never
        // remove anything else outside the temporary directory.
        for d in &self.run_dirs {
            let derived = d
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("state-"));
            if derived && !d.starts_with(self.dir.path()) {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        for h in &self.hosts {
            let _ = run(Command::new("ip").args(["netns", "delete", &h.ns]));
        }
        let _ = run(Command::new("ip").args(["netns", "delete", &format!("{}sw", self.prefix)]));
    }
}

fn ping(netns: &str, ip: &str) -> bool {
    run(Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["ping", "-c", "1", "-W", "1", ip]))
    .status
    .success()
}

fn wait_ping(what: &str, netns: &str, ip: &str) -> anyhow::Result<()> {
    wait_for(what, CONVERGE, || Ok(ping(netns, ip).then_some(())))
}

/// The sequence of issue 10, with the run directories chosen by `explicit`.
fn kill_and_restart_keeps_hosts_and_endpoints(explicit: bool) -> anyhow::Result<()> {
    let mut m = Machine::new(4, explicit)?;
    for i in 0..4 {
        m.start(i)?;
    }
    // Four daemons on one machine: four run directories.
    assert_eq!(m.run_dirs.len(), 4, "{:?}", m.run_dirs);
    m.form(3)?;
    m.cli(0, &["network", "create", "plain"])?;
    m.cli(0, &["network", "create", "--opt", "encrypted", "sealed"])?;
    let (e1, _) = m.endpoint(0, "plain", "e1")?;
    let (_, e4_ip) = m.endpoint(3, "plain", "e4")?;
    let (s1, _) = m.endpoint(0, "sealed", "s1")?;
    let (_, s4_ip) = m.endpoint(3, "sealed", "s4")?;
    // The reported paths work from the machine although the daemons were started with
    // `ip netns exec`.
    wait_ping("e1 -> e4 over the plain network", &e1, &e4_ip)?;
    wait_ping("s1 -> s4 over the encrypted network", &s1, &s4_ip)?;
    let exec = m.cli(
        0,
        &["exec", "e1", "--", "ping", "-c", "1", "-W", "2", &e4_ip],
    );
    assert!(
        exec.is_ok(),
        "secnet exec from the root namespace: {exec:?}"
    );

    let leader = m.leader_host()?;
    m.stop(leader, nix::sys::signal::Signal::SIGKILL)?;
    assert_eq!(
        m.lost_host_namespaces(),
        Vec::<String>::new(),
        "after kill -9"
    );
    m.start(leader)?;
    assert_eq!(
        m.lost_host_namespaces(),
        Vec::<String>::new(),
        "after the restart"
    );

    for i in 0..4 {
        m.stop(i, nix::sys::signal::Signal::SIGTERM)?;
    }
    assert_eq!(
        m.lost_host_namespaces(),
        Vec::<String>::new(),
        "after SIGTERM"
    );
    // The endpoint namespaces outlive the daemons (the restart adopts them).
    for path in [&e1, &s1] {
        assert!(
            enterable(path),
            "{path} is no longer a namespace with the daemons stopped"
        );
    }
    for i in 0..4 {
        m.start(i)?;
    }
    assert_eq!(
        m.lost_host_namespaces(),
        Vec::<String>::new(),
        "after the full restart"
    );
    for i in 0..4 {
        wait_for(
            &format!("both networks on {}", m.hosts[i].name),
            CONVERGE,
            || {
                let nets = m.json(i, &["network", "ls", "--format", "json"])?;
                let names: Vec<&str> = nets
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n["name"].as_str())
                    .collect();
                Ok((names.contains(&"plain") && names.contains(&"sealed")).then_some(()))
            },
        )?;
    }
    let nodes = m.json(0, &["node", "ls", "--format", "json"])?;
    assert_eq!(nodes.as_array().map(Vec::len), Some(4), "{nodes}");
    wait_ping("e1 -> e4 after the full restart", &e1, &e4_ip)?;
    wait_ping("s1 -> s4 after the full restart", &s1, &s4_ip)?;
    Ok(())
}

#[test]
fn ip_netns_hosts_with_default_run_dirs_survive_kill_and_restart() -> anyhow::Result<()> {
    kill_and_restart_keeps_hosts_and_endpoints(false)
}

#[test]
fn ip_netns_hosts_with_explicit_run_dirs_survive_kill_and_restart() -> anyhow::Result<()> {
    kill_and_restart_keeps_hosts_and_endpoints(true)
}

/// Starts `secnetd` in `ns` with `args` and returns its exit status and stderr, killing it
/// if it is still running after `within` (then it was not refused).
fn refused(ns: &str, args: &[&Path], within: Duration) -> (bool, String) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(bin("secnetd"));
    for (flag, value) in ["--state-dir", "--socket", "--run-dir"].iter().zip(args) {
        cmd.arg(flag).arg(value);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            return (false, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        !out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_daemon_on_a_directory_or_socket_in_use_is_refused() -> anyhow::Result<()> {
    let mut m = Machine::new(2, true)?;
    m.start(0)?;
    let first = &m.hosts[0];
    let pid = first.daemon.as_ref().unwrap().id();
    let (state, socket, run) = (
        first.state_dir.clone(),
        first.socket.clone(),
        first.run_dir_flag.clone().unwrap(),
    );
    let other = m.dir.path().to_path_buf();
    let ns = m.hosts[1].ns.clone();
    let within = Duration::from_secs(10);

    let (no, err) = refused(
        &ns,
        &[&state, &other.join("b.sock"), &other.join("runb")],
        within,
    );
    assert!(no, "same state dir accepted: {err}");
    assert!(err.contains(&state.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");

    let (no, err) = refused(
        &ns,
        &[&other.join("sc"), &other.join("c.sock"), &run],
        within,
    );
    assert!(no, "same run dir accepted: {err}");
    assert!(err.contains(&run.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");

    let (no, err) = refused(
        &ns,
        &[&other.join("sd"), &socket, &other.join("rund")],
        within,
    );
    assert!(no, "same socket accepted: {err}");
    assert!(err.contains(&socket.display().to_string()), "{err}");

    let (no, err) = refused(
        &ns,
        &[&other.join("se"), &other.join("e.sock"), Path::new("/run")],
        within,
    );
    assert!(no, "--run-dir /run accepted: {err}");
    assert!(err.contains("ip netns add"), "{err}");

    // The first daemon still owns everything and answers on its socket.
    let st = m.status(0)?;
    assert_eq!(st["hostname"], "h1", "{st}");
    assert_eq!(st["run_dir"], run.display().to_string().as_str(), "{st}");
    let lock = std::fs::read_to_string(state.join("secnetd.lock"))?;
    assert_eq!(lock.trim(), pid.to_string());
    Ok(())
}
