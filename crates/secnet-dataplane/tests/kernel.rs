//! Real-kernel tests (need root; skipped otherwise).
//!
//! Each test builds its own little world in a temp dir: two "host"
//! namespaces (files, never global names, nothing in the root namespace)
//! joined by a veth pair `uplink` (198.51.100.1/24 and .2/24), a run dir per
//! host, and a one-network desired state on each (VNI 4200, 10.77.0.0/24,
//! MTU 1450) with one endpoint each (10.77.0.10 on A, .11 on B) whose
//! remotes point at each other. The [`World`] guard kills every process left
//! in its namespaces and unmounts/removes every namespace file it or the
//! code under test made, also when a test panics.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use secnet_dataplane::netns::{create_netns_file, delete_netns_file, is_netns_file};
use secnet_dataplane::*;

#[path = "support/iproute2.rs"]
mod iproute2;

const VNI: u32 = 4200;
const NET_ID: &str = "n4200k3rn3lt3st0000000000";
const MTU: u32 = 1450;
const PORT: u16 = 4789;
const DEADLINE: Duration = Duration::from_secs(15);

const IP_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const EP_IP_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
const EP_IP_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 11);
const MAC_A: Mac = Mac([0x02, 0x42, 0x0a, 0x4d, 0x00, 0x0a]);
const MAC_B: Mac = Mac([0x02, 0x42, 0x0a, 0x4d, 0x00, 0x0b]);

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

fn ns_cmd(ns: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    let mut opt = std::ffi::OsString::from("--net=");
    opt.push(ns.as_os_str());
    c.arg(opt).arg("--").args(args);
    c
}

fn run(ns: &Path, args: &[&str]) -> Output {
    match ns_cmd(ns, args).stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {args:?}: {e}"),
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn must(ns: &Path, args: &[&str]) -> String {
    let o = run(ns, args);
    assert!(
        o.status.success(),
        "{args:?} in {}: {}",
        ns.display(),
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ping(ns: &Path, target: Ipv4Addr, extra: &[&str]) -> Output {
    let t = target.to_string();
    let mut args = vec!["ping", "-n", "-c1", "-W2"];
    args.extend_from_slice(extra);
    args.push(&t);
    run(ns, &args)
}

/// Polls `f` until it is true or `DEADLINE` passes.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if f() {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[track_caller]
fn wait_ping(ns: &Path, target: Ipv4Addr) {
    wait_until(&format!("ping {target}"), || {
        ping(ns, target, &[]).status.success()
    });
}

/// Deletes, behind the reconciler's back, host `a`'s FDB entry for B's endpoint.
fn delete_fdb_of_b(a: &Host) {
    let mac = "02:42:0a:4d:00:0b";
    must(
        &a.net_ns(),
        &["bridge", "fdb", "del", mac, "dev", "vxlan0", "self"],
    );
}

// ---------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------

struct Host {
    ns: PathBuf,
    layout: Layout,
    underlay: Ipv4Addr,
    desired: Desired,
}

impl Host {
    fn ep_ns(&self) -> PathBuf {
        let name = self
            .desired
            .endpoints
            .keys()
            .next()
            .cloned()
            .unwrap_or_default();
        endpoint_netns_path(&self.layout, &name)
    }

    fn net_ns(&self) -> PathBuf {
        network_netns_path(&self.layout, NET_ID)
    }

    fn observe(&self) -> Observed {
        match observe(&self.layout) {
            Ok(o) => o,
            Err(e) => panic!("observe: {e:#}"),
        }
    }

    fn plan(&self) -> Vec<Op> {
        plan(&self.desired, &self.observe())
    }

    /// Applies `ops`, asserting they all succeed.
    #[track_caller]
    fn apply(&self, ops: &[Op]) -> ApplyReport {
        let report = apply(&self.layout, ops);
        let errors: Vec<String> = report.errors().map(ToString::to_string).collect();
        assert!(
            errors.is_empty(),
            "apply failed: {errors:#?}\nops: {ops:#?}"
        );
        report
    }

    /// One pass, then checks that a second pass would do nothing.
    #[track_caller]
    fn converge(&self) -> Vec<Op> {
        let ops = self.plan();
        self.apply(&ops);
        let again = self.plan();
        assert!(
            again.is_empty(),
            "not idempotent: {again:#?}\nafter: {ops:#?}"
        );
        ops
    }
}

struct World {
    dir: tempfile::TempDir,
    hosts: Vec<Host>,
    children: Vec<Child>,
}

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    for tool in ["ip", "bridge", "nsenter", "ping", "tcpdump"] {
        let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file());
        if !found {
            return Some(format!("needs {tool}"));
        }
    }
    None
}

macro_rules! world {
    () => {
        match World::new() {
            Some(w) => w,
            None => return,
        }
    };
}

fn desired_for(
    ep: &str,
    my_ip: Ipv4Addr,
    my_mac: Mac,
    local: Ipv4Addr,
    remote: (Ipv4Addr, Mac, Ipv4Addr),
) -> Desired {
    let mut d = Desired::default();
    d.networks.insert(
        NET_ID.into(),
        DesiredNetwork {
            id: NET_ID.into(),
            vni: VNI,
            subnet: Ipv4Net::new(Ipv4Addr::new(10, 77, 0, 0), 24).unwrap_or_default(),
            gateway: Ipv4Addr::new(10, 77, 0, 1),
            mtu: MTU,
            local_vtep: IpAddr::V4(local),
            port: PORT,
            remotes: vec![RemoteEndpoint {
                ip: remote.0,
                mac: remote.1,
                vtep: IpAddr::V4(remote.2),
            }],
        },
    );
    d.endpoints.insert(
        ep.into(),
        DesiredEndpoint {
            name: ep.into(),
            interfaces: vec![DesiredInterface {
                ifname: "eth0".into(),
                network_id: NET_ID.into(),
                ip: my_ip,
                prefix_len: 24,
                mac: my_mac,
                mtu: MTU,
                gateway: Ipv4Addr::new(10, 77, 0, 1),
                default_route: true,
            }],
        },
    );
    d
}

impl World {
    /// Two hosts joined by `uplink`; `None` (test skipped) without root.
    fn new() -> Option<World> {
        if let Some(why) = skip_reason() {
            eprintln!("skipping kernel test: {why}");
            return None;
        }
        let dir = match tempfile::Builder::new().prefix("secnet-dp-").tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let mut w = World {
            hosts: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for (name, underlay, ep, my, other, remote_vtep) in [
            (
                "host-a",
                IP_A,
                "epa",
                (EP_IP_A, MAC_A),
                (EP_IP_B, MAC_B),
                IP_B,
            ),
            (
                "host-b",
                IP_B,
                "epb",
                (EP_IP_B, MAC_B),
                (EP_IP_A, MAC_A),
                IP_A,
            ),
        ] {
            let ns = w.dir.path().join(name);
            if let Err(e) = create_netns_file(&ns) {
                eprintln!("skipping kernel test: cannot create a namespace: {e}");
                return None;
            }
            must(&ns, &["ip", "link", "set", "lo", "up"]);
            w.hosts.push(Host {
                layout: Layout::new(w.dir.path().join(format!("{name}-run")), Some(ns.clone())),
                ns,
                underlay,
                desired: desired_for(ep, my.0, my.1, underlay, (other.0, other.1, remote_vtep)),
            });
        }
        let (a, b) = (&w.hosts[0], &w.hosts[1]);
        let b_path = b.ns.to_string_lossy().into_owned();
        must(
            &a.ns,
            &[
                "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "uplink", "netns",
                &b_path,
            ],
        );
        for h in &w.hosts {
            must(
                &h.ns,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{}/24", h.underlay),
                    "dev",
                    "uplink",
                ],
            );
            must(&h.ns, &["ip", "link", "set", "uplink", "up"]);
        }
        Some(w)
    }

    fn a(&self) -> &Host {
        &self.hosts[0]
    }

    fn b(&self) -> &Host {
        &self.hosts[1]
    }

    /// Every namespace file this world (or the code under test) made.
    fn namespace_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in &self.hosts {
            if let Ok(rd) = std::fs::read_dir(h.layout.netns_dir()) {
                out.extend(rd.flatten().map(|e| e.path()));
            }
        }
        out.extend(self.hosts.iter().map(|h| h.ns.clone()));
        out
    }
}

/// SIGKILLs every process whose network namespace is one of `files`.
fn kill_processes_in(files: &[PathBuf]) {
    let ids: Vec<(u64, u64)> = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let me = std::process::id();
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(m) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        if ids.contains(&(m.dev(), m.ino())) {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let files = self.namespace_files();
        kill_processes_in(&files);
        // Run directories first (their VXLANs hold sockets in the hosts).
        for f in &files {
            if let Err(e) = delete_netns_file(f) {
                eprintln!("cleanup: {}: {e}", f.display());
            }
        }
    }
}

fn addr_from_pcap_line(line: &str) -> Option<(String, String)> {
    // "12:00:00.000000 IP 198.51.100.1.45678 > 198.51.100.2.4789: VXLAN, ..."
    let mut it = line.split_whitespace();
    it.find(|w| *w == "IP")?;
    let src = it.next()?.to_string();
    it.next()?; // ">"
    let dst = it.next()?.trim_end_matches(':').to_string();
    Some((src, dst))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn two_hosts_ping_idempotence_and_repair() {
    let w = world!();
    let (a, b) = (w.a(), w.b());
    let ops_a = a.converge();
    assert!(!ops_a.is_empty());
    b.converge();
    wait_ping(&a.ep_ns(), EP_IP_B);
    wait_ping(&b.ep_ns(), EP_IP_A);
    // The endpoint interface is what was asked for.
    let eth0 = must(&a.ep_ns(), &["ip", "-j", "addr", "show", "eth0"]);
    assert!(eth0.contains("\"02:42:0a:4d:00:0a\""), "{eth0}");
    assert!(eth0.contains("\"mtu\":1450"), "{eth0}");
    let route = must(&a.ep_ns(), &["ip", "route", "show", "default"]);
    assert!(route.contains("via 10.77.0.1 dev eth0"), "{route}");
    // Observing again: nothing to do, and observation is stable.
    assert!(a.plan().is_empty());
    assert_eq!(a.observe(), a.observe());

    // An FDB entry deleted behind our back: exactly that entry comes back.
    delete_fdb_of_b(a);
    assert!(!ping(&a.ep_ns(), EP_IP_B, &["-W1"]).status.success());
    let ops = a.plan();
    assert_eq!(
        ops,
        vec![Op::AddFdb {
            ns: network_ns_name(NET_ID),
            mac: MAC_B,
            dst: IpAddr::V4(IP_B),
        }]
    );
    let report = a.apply(&ops);
    assert_eq!(report.processes, 0);
    wait_ping(&a.ep_ns(), EP_IP_B);

    // br0 set down by hand: set up again in place.
    must(&a.net_ns(), &["ip", "link", "set", "br0", "down"]);
    let ops = a.plan();
    assert_eq!(
        ops,
        vec![Op::SetBridge {
            ns: network_ns_name(NET_ID),
            mtu: None,
            del_addrs: vec![],
            add_addrs: vec![],
            set_up: true,
        }]
    );
    a.apply(&ops);
    assert!(a.plan().is_empty());
    wait_ping(&a.ep_ns(), EP_IP_B);

    // A neighbour entry and the endpoint's address lost: both restored.
    must(
        &a.net_ns(),
        &["ip", "neigh", "del", "10.77.0.11", "dev", "vxlan0"],
    );
    must(&a.ep_ns(), &["ip", "addr", "flush", "dev", "eth0"]);
    let ops = a.plan();
    assert!(
        ops.iter().any(|op| matches!(op, Op::AddNeigh { .. })),
        "{ops:#?}"
    );
    assert!(
        ops.iter()
            .any(|op| matches!(op, Op::SetDefaultRoute { .. })),
        "{ops:#?}"
    );
    a.apply(&ops);
    assert!(a.plan().is_empty());
    wait_ping(&a.ep_ns(), EP_IP_B);
}

#[test]
fn vxlan_uses_the_data_path_address_and_mtu_holds() {
    let mut w = world!();
    w.a().converge();
    w.b().converge();
    let (a_ep, a_ns) = (w.a().ep_ns(), w.a().ns.clone());
    wait_ping(&a_ep, EP_IP_B);

    // The VXLAN device: local address and port as asked, learning off, proxy on.
    let vx = must(&w.a().net_ns(), &["ip", "-d", "link", "show", "vxlan0"]);
    assert!(vx.contains("vxlan id 4200 local 198.51.100.1"), "{vx}");
    assert!(vx.contains("dstport 4789"), "{vx}");
    assert!(vx.contains("nolearning") && vx.contains("proxy"), "{vx}");
    assert!(vx.contains("master br0"), "{vx}");

    // Capture the underlay while pinging.
    let mut child = match ns_cmd(
        &a_ns,
        &["tcpdump", "-n", "-l", "-i", "uplink", "udp", "port", "4789"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("tcpdump: {e}"),
    };
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    for (is_out, pipe) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        if let Some(pipe) = pipe {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send((is_out, line)).is_err() {
                        break;
                    }
                }
            });
        }
    }
    w.children.push(child);
    let start = Instant::now();
    let mut stdout_lines = Vec::new();
    let mut listening = false;
    while !listening {
        assert!(start.elapsed() < DEADLINE, "tcpdump did not start");
        if let Ok((is_out, line)) = rx.recv_timeout(Duration::from_millis(100)) {
            if is_out {
                stdout_lines.push(line);
            } else if line.contains("listening on") {
                listening = true;
            }
        }
    }
    let mut seen: Option<String> = None;
    wait_until("a VXLAN packet on the uplink", || {
        let _ = ping(&a_ep, EP_IP_B, &["-W1"]);
        while let Ok((is_out, line)) = rx.try_recv() {
            if is_out {
                stdout_lines.push(line);
            }
        }
        seen = stdout_lines
            .iter()
            .find(|l| l.contains("VXLAN") && l.contains("> 198.51.100.2.4789"))
            .cloned();
        seen.is_some()
    });
    let line = seen.unwrap_or_default();
    assert!(line.contains("vni 4200"), "{line}");
    let (src, _) = addr_from_pcap_line(&line).unwrap_or_default();
    assert!(
        src.starts_with("198.51.100.1."),
        "outer source {src}: {line}"
    );
    // Every VXLAN packet leaving A has the data-path address as source.
    for l in stdout_lines.iter().filter(|l| l.contains("VXLAN")) {
        if let Some((src, dst)) = addr_from_pcap_line(l) {
            assert!(
                src.starts_with("198.51.100.1.") || dst.starts_with("198.51.100.1."),
                "{l}"
            );
        }
    }

    // Path MTU: the largest unfragmentable ping fits, one byte more does not.
    let max = (MTU - 28).to_string();
    let over = (MTU - 27).to_string();
    wait_until("a DF ping of MTU-28 bytes", || {
        ping(&a_ep, EP_IP_B, &["-M", "do", "-s", &max])
            .status
            .success()
    });
    let o = ping(&a_ep, EP_IP_B, &["-M", "do", "-s", &over]);
    assert!(!o.status.success());
    assert!(
        text(&o).to_lowercase().contains("message too long"),
        "{}",
        text(&o)
    );
}

#[test]
fn last_endpoint_gone_removes_its_namespaces() {
    let w = world!();
    let a = w.a();
    a.converge();
    assert!(a.ep_ns().exists() && a.net_ns().exists());
    let gone = Host {
        ns: a.ns.clone(),
        layout: a.layout.clone(),
        underlay: a.underlay,
        desired: Desired::default(),
    };
    let ops = gone.converge();
    assert!(
        ops.iter()
            .any(|op| matches!(op, Op::DeleteEndpointNs { .. })),
        "{ops:#?}"
    );
    assert!(
        ops.iter()
            .any(|op| matches!(op, Op::DeleteNetworkNs { .. })),
        "{ops:#?}"
    );
    assert!(!a.ep_ns().exists() && !a.net_ns().exists());
    let left: Vec<_> = std::fs::read_dir(a.layout.netns_dir())
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(gone.observe(), Observed::default());
    // No VXLAN device is left behind in the host namespace either.
    let vx = must(&a.ns, &["ip", "-j", "link", "show", "type", "vxlan"]);
    assert!(vx.trim() == "[]" || vx.trim().is_empty(), "{vx}");
    // And it comes back.
    a.converge();
    assert!(a.ep_ns().exists() && a.net_ns().exists());
}

#[test]
fn leftovers_are_removed_and_foreign_entries_left_alone() {
    let w = world!();
    let a = w.a();
    let dir = a.layout.netns_dir();
    let mkdirs = std::fs::create_dir_all(dir.join("emptydir"));
    assert!(mkdirs.is_ok());
    for (name, content) in [
        ("junk", "hello"),
        ("net-000000000000", ""),
        ("ep-crashed", ""),
    ] {
        assert!(std::fs::write(dir.join(name), content).is_ok());
    }
    let fifo = nix::unistd::mkfifo(
        &dir.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    );
    assert!(fifo.is_ok());
    // A name that is not UTF-8: ignored, not a panic.
    let odd = dir.join(OsStr::from_bytes(b"odd-\xff"));
    assert!(std::fs::write(&odd, "").is_ok());
    // A namespace nobody wants any more, with a process inside.
    assert!(create_netns_file(&dir.join("ep-ghost")).is_ok());
    // A namespace someone else mounted here under a name we never give (an `ip netns
    // add` user's host, another tool's): never ours to delete.
    let foreign_ns = dir.join("h1");
    assert!(create_netns_file(&foreign_ns).is_ok());
    // A temporary VXLAN left in the host namespace by a crash.
    let tmp = a.layout.temp_vxlan_name(4242);
    must(
        &a.ns,
        &[
            "ip",
            "link",
            "add",
            &tmp,
            "type",
            "vxlan",
            "id",
            "4242",
            "local",
            "198.51.100.1",
            "dstport",
            "4789",
        ],
    );

    let o = a.observe();
    let stale: Vec<&str> = o.stale_files.iter().map(String::as_str).collect();
    assert_eq!(stale, ["ep-crashed", "net-000000000000"]);
    let foreign: Vec<&str> = o.foreign.iter().map(String::as_str).collect();
    assert_eq!(foreign, ["emptydir", "fifo", "h1", "junk"]);
    assert!(o.namespaces.contains_key("ep-ghost"));
    assert!(!o.namespaces.contains_key("h1"));
    assert!(o.host_temp_links.contains(&tmp));

    a.converge();
    let o = a.observe();
    assert!(o.stale_files.is_empty() && o.host_temp_links.is_empty());
    let names: Vec<&str> = o.namespaces.keys().map(String::as_str).collect();
    assert_eq!(names, ["ep-epa", network_ns_name(NET_ID).as_str()]);
    assert!(odd.exists());
    // Everything foreign is still there, the namespace still mounted and enterable.
    for name in ["emptydir", "fifo", "junk"] {
        assert!(
            std::fs::symlink_metadata(dir.join(name)).is_ok(),
            "{name} removed"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("junk")).ok().as_deref(),
        Some("hello")
    );
    assert!(is_netns_file(&foreign_ns), "h1 was unmounted");
    assert_eq!(a.observe().foreign.len(), 4);
}

/// Cumulative usage of this process's reaped children (`/proc/self/stat`:
/// cminflt, cmajflt, cutime, cstime). Any process spawned and waited for
/// adds to it (an exec'd program always takes page faults).
fn reaped_children_usage() -> [u64; 4] {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // rest[0] is field 3 (state); cminflt is field 11, cstime field 17.
    let at = |field: usize| f.get(field - 3).copied().unwrap_or(0);
    [at(11), at(13), at(16), at(17)]
}

/// Children of this process still alive (or not yet reaped).
fn live_children() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let c = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(c.split_whitespace().map(str::to_owned));
        }
    }
    out
}

/// Observing and applying spawn no process at all (no `ip`, `bridge` or
/// `nsenter`): checked by the kernel's count of this process's children.
/// That count is per process and the other tests spawn `ip` all the time,
/// so the test runs itself again, alone, in a fresh process.
#[test]
fn passes_spawn_no_processes() {
    const CHILD: &str = "SECNET_DP_NO_SPAWN_CHILD";
    if std::env::var_os(CHILD).is_none() {
        if let Some(why) = skip_reason() {
            eprintln!("skipping kernel test: {why}");
            return;
        }
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => panic!("current_exe: {e}"),
        };
        let out = match Command::new(exe)
            .args([
                "--exact",
                "passes_spawn_no_processes",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) => o,
            Err(e) => panic!("re-running the test binary: {e}"),
        };
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert!(t.contains("1 passed"), "the check did not run: {t}");
        return;
    }
    let w = world!();
    let (a, b) = (w.a(), w.b());
    let before = reaped_children_usage();
    // A first pass on an empty host, then a pass with nothing to do.
    let ops = a.plan();
    let report = a.apply(&ops);
    assert_eq!(report.applied, ops.len());
    assert_eq!(report.processes, 0);
    let again = a.plan();
    assert!(again.is_empty(), "{again:#?}\n{:#?}", a.observe());
    b.converge();
    let after = reaped_children_usage();
    assert_eq!(before, after, "observe/apply spawned processes");
    assert!(live_children().is_empty(), "{:?}", live_children());
    // The check sees a process when there is one.
    let spawned = Command::new("true").status();
    assert!(spawned.is_ok_and(|s| s.success()));
    assert_ne!(
        reaped_children_usage(),
        after,
        "a spawned process went unseen"
    );
}

/// What `observe` reads over netlink is what `ip -j` / `bridge -j` print for
/// the same namespaces (the way it read them before): the planner compares
/// every field, so each must be derived the same way. The namespaces carry
/// more than the planner makes: extra links, an alias, FDB rows with several
/// destinations and a non-permanent one, neighbours in other states, routes
/// in another table and without a gateway, IPv6 addresses.
#[test]
fn observation_matches_iproute2() {
    let w = world!();
    let (a, b) = (w.a(), w.b());
    a.converge();
    b.converge();
    let net = a.net_ns();
    let ep = a.ep_ns();
    for cmd in [
        "bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 198.51.100.7 self permanent",
        "bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 198.51.100.8 self permanent",
        "bridge fdb add 02:42:0a:4d:00:0c dev vxlan0 dst 198.51.100.3 self dynamic",
        "ip neigh add 10.77.0.12 lladdr 02:42:0a:4d:00:0c dev vxlan0 nud reachable",
        "ip neigh add 10.77.0.13 lladdr 02:42:0a:4d:00:0d dev vxlan0 nud noarp",
        "ip neigh add 10.77.0.14 lladdr 02:42:0a:4d:00:0e dev br0 nud permanent",
        "ip link add xbr mtu 1300 type bridge",
        "ip link set xbr alias x-ray",
        "ip addr add 10.99.0.1/16 dev xbr",
        "ip -6 addr add fd00::1/64 dev br0",
        "ip link add xva type veth peer name xvb",
        "ip link set xva master xbr",
        "ip link set xva up",
        "ip route add default dev br0 table 100",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        must(&net, &args);
    }
    for cmd in [
        "ip route add default dev eth0 metric 50",
        "ip route add unreachable default metric 60",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        must(&ep, &args);
    }
    // VXLANs in the host namespace: one of ours, left over; one not ours.
    let tmp = a.layout.temp_vxlan_name(4242);
    for (name, vni) in [(tmp.as_str(), "4242"), ("othervx", "4243")] {
        must(
            &a.ns,
            &[
                "ip",
                "link",
                "add",
                name,
                "type",
                "vxlan",
                "id",
                vni,
                "local",
                "198.51.100.1",
                "dstport",
                "4789",
            ],
        );
    }

    let observed = a.observe();
    assert_eq!(observed.namespaces.len(), 2);
    for (name, ns) in &observed.namespaces {
        let want = iproute2::namespace(&a.layout.ns_path(name));
        assert_eq!(iproute2::without_peers(ns.clone()), want, "{name}");
    }
    let fdb = &observed.namespaces[&network_ns_name(NET_ID)].fdb;
    assert_eq!(fdb[&Mac([0u8; 6])].dsts.len(), 2, "{fdb:?}");
    assert!(
        !fdb[&Mac([2, 0x42, 0x0a, 0x4d, 0, 0x0c])].permanent,
        "{fdb:?}"
    );
    let neigh = &observed.namespaces[&network_ns_name(NET_ID)].neigh;
    assert!(!neigh[&Ipv4Addr::new(10, 77, 0, 12)].permanent, "{neigh:?}");
    assert!(
        !neigh.contains_key(&Ipv4Addr::new(10, 77, 0, 13)),
        "{neigh:?}"
    );
    // Peers are resolved (ip leaves them to us): the planner needs them.
    let eth0 = &observed.namespaces[&endpoint_ns_name("epa")].links["eth0"];
    assert!(
        matches!(&eth0.kind, LinkKind::Veth { peer: Some(p) } if p.ns == network_ns_name(NET_ID)),
        "{eth0:?}"
    );
    let host: BTreeSet<String> = iproute2::vxlan_names(&a.ns)
        .into_iter()
        .filter(|n| a.layout.is_temp_link(n))
        .collect();
    assert_eq!(observed.host_temp_links, host);
    assert_eq!(host.len(), 1);

    // The devices and entries made over netlink are the ones `ip` makes for
    // the same command lines: compare our VXLAN with one `ip` creates.
    must(
        &a.ns,
        &[
            "ip",
            "link",
            "add",
            "refvx",
            "mtu",
            "1450",
            "type",
            "vxlan",
            "id",
            "4244",
            "local",
            "198.51.100.1",
            "dstport",
            "4789",
            "nolearning",
            "proxy",
        ],
    );
    let info = |ns: &Path, dev: &str| -> serde_json::Value {
        let out = must(ns, &["ip", "-j", "-d", "link", "show", dev]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let mut d = v[0]["linkinfo"]["info_data"].clone();
        if let Some(m) = d.as_object_mut() {
            m.remove("id");
        }
        d
    };
    assert_eq!(info(&net, VXLAN), info(&a.ns, "refvx"));
    let route = must(
        &ep,
        &[
            "ip",
            "-j",
            "-d",
            "route",
            "show",
            "default",
            "via",
            "10.77.0.1",
        ],
    );
    let route: serde_json::Value = serde_json::from_str(&route).unwrap_or_default();
    assert_eq!(route[0]["protocol"], "boot", "{route}");
    assert_eq!(route[0]["scope"], "global", "{route}");
    let fdb = must(&net, &["bridge", "-j", "-d", "fdb", "show", "dev", VXLAN]);
    assert!(fdb.contains("\"dst\":\"198.51.100.2\""), "{fdb}");
}

/// A failed op is reported against its index with the request and the
/// kernel's error (and its extended-ack text), and the ops after it still
/// run; failures that are expected (links of a namespace being deleted) are
/// not reported.
#[test]
fn failed_ops_are_reported_and_the_rest_still_runs() {
    let w = world!();
    let a = w.a();
    a.converge();
    let net = network_ns_name(NET_ID);
    let ep = endpoint_ns_name("epa");
    assert!(create_netns_file(&a.layout.ns_path("ep-ghost")).is_ok());
    let mac = Mac([2, 0x42, 0x0a, 0x4d, 0, 0x63]);
    let ops = vec![
        Op::CreateBridge {
            ns: net.clone(),
            mtu: MTU,
        },
        Op::AddFdb {
            ns: ep.clone(),
            mac,
            dst: IpAddr::V4(IP_B),
        },
        Op::SetLoopbackUp {
            ns: "net-missing".into(),
        },
        Op::ConfigureInterface {
            ns: ep.clone(),
            ifname: "eth0".into(),
            mac: None,
            mtu: Some(70000),
            alias: None,
            del_addrs: vec![],
            add_addrs: vec![],
            set_up: false,
        },
        Op::DeleteEndpointNs {
            ns: "ep-ghost".into(),
            links: vec!["nothere".into()],
        },
        Op::AddNeigh {
            ns: net.clone(),
            ip: Ipv4Addr::new(10, 77, 0, 99),
            mac,
        },
    ];
    let report = apply(&a.layout, &ops);
    let failed: Vec<(usize, &str)> = report
        .errors()
        .map(|e| (e.index, e.message.as_str()))
        .collect();
    assert_eq!(
        failed.iter().map(|f| f.0).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "{failed:#?}"
    );
    assert_eq!(report.applied, 2);
    let msg = |i: usize| failed[i].1;
    assert!(
        msg(0).contains("`link add br0 mtu 1450 type bridge`") && msg(0).contains("File exists"),
        "{}",
        msg(0)
    );
    assert!(
        msg(1).contains("fdb replace 02:42:0a:4d:00:63 dev vxlan0")
            && msg(1).contains("cannot find device vxlan0"),
        "{}",
        msg(1)
    );
    assert!(
        msg(2).contains("net-missing") && msg(2).contains("No such file"),
        "{}",
        msg(2)
    );
    // The kernel's own words come along (extended ack).
    assert!(
        msg(3).contains("`link set eth0 mtu 70000`") && msg(3).contains("Invalid argument ("),
        "{}",
        msg(3)
    );
    // The op display names the object too.
    let shown = report.errors().map(ToString::to_string).collect::<Vec<_>>();
    assert!(
        shown[0].starts_with(&format!("[{net}] create br0")),
        "{shown:?}"
    );
    // The ops after the failures ran.
    assert!(!a.layout.ns_path("ep-ghost").exists());
    let o = a.observe();
    assert_eq!(
        o.namespaces[&net].neigh.get(&Ipv4Addr::new(10, 77, 0, 99)),
        Some(&NeighEntry {
            mac: Some(mac),
            permanent: true
        })
    );
}

fn strict_policy(vnis: &[u32]) -> StrictPolicy {
    StrictPolicy {
        vxlan_port: PORT,
        tunnel_ifname: "sntun0".into(),
        tunnel_net: "100.96.0.0/16".parse().expect("net"),
        encrypted_vnis: vnis.iter().copied().collect(),
        senders: Default::default(),
    }
}

/// Strict mode drops VXLAN of an encrypted VNI on any interface but the tunnel, both
/// leaving (A's rules) and arriving (B's rules), counts it, and leaves other VNIs alone.
#[test]
fn strict_mode_drops_encrypted_vnis_outside_the_tunnel() {
    let w = world!();
    let (a, b) = (w.a(), w.b());
    a.converge();
    b.converge();
    wait_ping(&a.ep_ns(), EP_IP_B);

    // Other VNIs only: this network's traffic still flows (so the checks below can fail).
    assert!(ensure_strict(&a.layout, &strict_policy(&[4201])).expect("install"));
    assert!(!ensure_strict(&a.layout, &strict_policy(&[4201])).expect("again"));
    assert!(ping(&a.ep_ns(), EP_IP_B, &["-W1"]).status.success());

    // Leaving A: dropped and counted on A.
    assert!(ensure_strict(&a.layout, &strict_policy(&[VNI, 4201])).expect("replace"));
    let before = strict_drops(&a.layout).expect("drops");
    assert!(!ping(&a.ep_ns(), EP_IP_B, &["-W1", "-c2", "-i0.2"])
        .status
        .success());
    let after = strict_drops(&a.layout).expect("drops");
    assert!(
        after.outbound >= before.outbound + 2,
        "{before:?} -> {after:?}"
    );

    // Arriving at B: A lets it out, B drops and counts it.
    remove_strict(&a.layout).expect("remove");
    assert!(!strict_installed(&a.layout, &strict_policy(&[VNI])).expect("check"));
    ensure_strict(&b.layout, &strict_policy(&[VNI])).expect("install on B");
    assert!(!ping(&a.ep_ns(), EP_IP_B, &["-W1", "-c2", "-i0.2"])
        .status
        .success());
    let on_b = strict_drops(&b.layout).expect("drops");
    assert!(on_b.inbound >= 2, "{on_b:?}");

    // Deleted by hand: no longer installed, and ensure_strict puts it back.
    must(&b.ns, &["nft", "delete", "table", "inet", STRICT_TABLE]);
    assert!(!strict_installed(&b.layout, &strict_policy(&[VNI])).expect("check"));
    wait_ping(&a.ep_ns(), EP_IP_B);
    assert!(ensure_strict(&b.layout, &strict_policy(&[VNI])).expect("repair"));
    assert!(!ping(&a.ep_ns(), EP_IP_B, &["-W1"]).status.success());
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Not a check: prints how long passes take (`cargo test -p secnet-dataplane --test kernel
/// -- --ignored pass_timing --nocapture`). A first pass on an empty host (observe + apply of
/// the whole plan), a steady-state observation (the cost of every resync), and a repair pass
/// (observe + apply of one FDB entry).
#[test]
#[ignore]
fn pass_timing() {
    let rounds = 5;
    let (mut first, mut steady, mut repair) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let w = world!();
        let a = w.a();
        let t = Instant::now();
        let ops = a.plan();
        a.apply(&ops);
        first.push(t.elapsed());
        for _ in 0..5 {
            let t = Instant::now();
            assert!(a.plan().is_empty());
            steady.push(t.elapsed());
        }
        delete_fdb_of_b(a);
        let t = Instant::now();
        let ops = a.plan();
        a.apply(&ops);
        repair.push(t.elapsed());
        assert_eq!(ops.len(), 1);
    }
    eprintln!(
        "pass timing (median of {rounds}): first pass {:?}, steady observe+plan {:?}, repair pass {:?}",
        median(first),
        median(steady),
        median(repair)
    );
}
