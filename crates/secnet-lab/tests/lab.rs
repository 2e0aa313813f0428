//! Integration tests of the namespace lab. They need root and iproute2
//! (and ping and tcpdump). Every lab has a unique prefix, so they run in
//! parallel and may be re-run.

use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secnet_lab::{
    down_all, list_netns, netns_exists, parse_pcap, unique_prefix, wait_for, wait_until, Capture,
    CmdOutput, Host, Ipv4Packet, Lab, LabConfig,
};

/// Waits (up to a minute) for `ping` to be installed.
fn need_ping() {
    wait_until("ping to be installed", Duration::from_secs(60), || {
        Ok(Command::new("sh")
            .args(["-c", "command -v ping"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false))
    })
    .expect("ping (iputils-ping) is needed");
}

fn ping(from: &Host, to: Ipv4Addr, count: u32) -> CmdOutput {
    from.exec(&[
        "ping",
        "-n",
        "-c",
        &count.to_string(),
        "-W",
        "2",
        &to.to_string(),
    ])
}

fn lab(hosts: usize) -> Lab {
    Lab::new(LabConfig::new(hosts)).expect("building lab")
}

fn assert_gone(namespaces: &[String], dir: &Path) {
    let existing = list_netns().expect("ip netns list");
    for ns in namespaces {
        assert!(!existing.contains(ns), "namespace {ns} left behind");
        assert!(!netns_exists(ns), "namespace {ns} left behind");
    }
    assert!(!dir.exists(), "lab dir {} left behind", dir.display());
}

fn root_ns_addresses() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-o", "addr"])
            .output()
            .expect("ip addr")
            .stdout,
    )
    .into_owned()
}

#[test]
fn two_hosts_ping_each_other_and_everything_is_removed_on_drop() {
    need_ping();
    let lab = lab(2);
    let namespaces = lab.namespaces();
    let dir = lab.dir().to_path_buf();
    let prefix = lab.prefix().to_owned();
    assert!(prefix.starts_with("snl"), "{prefix}");
    assert_eq!(
        namespaces,
        [
            format!("{prefix}-lab"),
            format!("{prefix}-h1"),
            format!("{prefix}-h2")
        ]
    );
    assert_eq!(lab.lab_netns(), format!("{prefix}-lab"));
    let existing = list_netns().expect("ip netns list");
    for ns in &namespaces {
        assert!(existing.contains(ns), "{ns} missing from {existing:?}");
    }
    assert!(dir.is_dir());

    let (h1, h2) = (lab.host(0), lab.host(1));
    assert_eq!(h1.name(), "h1");
    assert_eq!(h2.name(), "h2");
    assert_eq!(h1.netns(), format!("{prefix}-h1"));
    assert_eq!(h1.ctl_ip(), Ipv4Addr::new(192, 0, 2, 11));
    assert_eq!(h2.ctl_ip(), Ipv4Addr::new(192, 0, 2, 12));
    assert_eq!(h1.data_ip(), Ipv4Addr::new(198, 51, 100, 11));
    assert_eq!(h2.data_ip(), Ipv4Addr::new(198, 51, 100, 12));
    assert!(h1.socket().starts_with(&dir));
    assert!(h1.state_dir().is_dir());
    assert_ne!(h1.socket(), h2.socket());

    // Addresses, state and MTU as designed.
    let addrs = h2
        .exec_ok(&["ip", "-o", "-4", "addr", "show"])
        .expect("ip addr");
    assert!(addrs.contains("eth0    inet 192.0.2.12/24"), "{addrs}");
    assert!(addrs.contains("eth1    inet 198.51.100.12/24"), "{addrs}");
    assert!(addrs.contains("lo    inet 127.0.0.1/8"), "{addrs}");
    for iface in ["eth0", "eth1"] {
        let link = h1
            .exec_ok(&["ip", "-o", "link", "show", iface])
            .expect("ip link");
        assert!(link.contains("mtu 1500"), "{link}");
        assert!(link.contains("state UP"), "{link}");
    }
    // Bridge membership in the lab namespace.
    let lab_ns = lab.lab_netns();
    let members = |br: &str| {
        let out = Command::new("ip")
            .args(["-n", lab_ns, "-o", "link", "show", "master", br])
            .output()
            .expect("ip link");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut names: Vec<String> = text
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(members("ctl0"), ["c1", "c2"]);
    assert_eq!(members("data0"), ["d1", "d2"]);

    // Nothing was configured in the root namespace.
    let root = root_ns_addresses();
    assert!(!root.contains("192.0.2.1"), "{root}");
    assert!(!root.contains("198.51.100.1"), "{root}");

    let out = ping(h1, h2.ctl_ip(), 1);
    assert!(out.success(), "ping h1 -> h2 eth0: {}", out.describe());
    let out = ping(h1, h2.data_ip(), 1);
    assert!(out.success(), "ping h1 -> h2 eth1: {}", out.describe());
    let out = ping(h2, h1.ctl_ip(), 1);
    assert!(out.success(), "ping h2 -> h1 eth0: {}", out.describe());

    drop(lab);
    assert_gone(&namespaces, &dir);
}

#[test]
fn control_and_data_segments_are_separate_l2_domains() {
    need_ping();
    let lab = lab(2);
    let (h1, h2) = (lab.host(0), lab.host(1));
    // Without this, Linux (weak host model) answers ARP for any local
    // address on any interface, which would hide a merged segment.
    h2.exec_ok(&["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1"])
        .expect("sysctl");
    // Force traffic for h2's data address out of h1's control interface.
    let route = format!("{}/32", h2.data_ip());
    h1.exec_ok(&["ip", "route", "add", &route, "dev", "eth0"])
        .expect("route");
    let out = ping(h1, h2.data_ip(), 2);
    assert!(
        !out.success(),
        "h2's data address must not be reachable over the control segment: {}",
        out.describe()
    );
    // ... while it is reachable over the data segment.
    h1.exec_ok(&["ip", "route", "del", &route, "dev", "eth0"])
        .expect("route del");
    let out = ping(h1, h2.data_ip(), 1);
    assert!(out.success(), "ping over data segment: {}", out.describe());
    // And without the data link there is no path at all.
    h1.exec_ok(&["ip", "link", "set", "eth1", "down"])
        .expect("link down");
    let out = ping(h1, h2.data_ip(), 1);
    assert!(!out.success(), "{}", out.describe());
}

fn icmp_between(pcap: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> (usize, usize) {
    let pcap = parse_pcap(pcap).expect("pcap");
    assert_eq!(pcap.linktype, secnet_lab::LINKTYPE_ETHERNET);
    let mut requests = 0;
    let mut replies = 0;
    for p in &pcap.packets {
        if let Some(ip) = Ipv4Packet::from_ethernet(&p.data) {
            if ip.is_icmp_echo_request() && ip.src == src && ip.dst == dst {
                requests += 1;
            }
            if ip.protocol == secnet_lab::IPPROTO_ICMP
                && ip.payload.first() == Some(&0)
                && ip.src == dst
                && ip.dst == src
            {
                replies += 1;
            }
        }
    }
    (requests, replies)
}

#[test]
fn capture_sees_control_traffic_on_control_port_only() {
    need_ping();
    let lab = lab(2);
    let (h1, h2) = (lab.host(0), lab.host(1));
    let tmp = tempfile::tempdir().expect("tempdir");
    assert_eq!(h2.ctl_port(), "c2");
    assert_eq!(h2.data_port(), "d2");

    let c2 = Capture::start(
        lab.lab_netns(),
        "c2",
        "icmp or arp",
        &tmp.path().join("c2.pcap"),
    )
    .expect("capture c2");
    let d2 = Capture::start(
        lab.lab_netns(),
        "d2",
        "icmp or arp",
        &tmp.path().join("d2.pcap"),
    )
    .expect("capture d2");
    let out = ping(h1, h2.ctl_ip(), 3);
    assert!(out.success(), "{}", out.describe());
    let c2 = c2.stop().expect("stop c2");
    let d2 = d2.stop().expect("stop d2");

    let (req, rep) = icmp_between(&c2, h1.ctl_ip(), h2.ctl_ip());
    assert_eq!((req, rep), (3, 3), "c2 capture");
    let d2 = parse_pcap(&d2).expect("pcap");
    // Not even the ARP broadcast leaks onto the data segment.
    assert!(d2.packets.is_empty(), "d2 saw {} packets", d2.packets.len());

    // The d2 capture works: data traffic does show up there (and not on c2).
    let d2 = Capture::start(lab.lab_netns(), "d2", "icmp", &tmp.path().join("d2b.pcap"))
        .expect("capture d2");
    let c2 = Capture::start(lab.lab_netns(), "c2", "icmp", &tmp.path().join("c2b.pcap"))
        .expect("capture c2");
    let out = ping(h1, h2.data_ip(), 2);
    assert!(out.success(), "{}", out.describe());
    let d2 = d2.stop().expect("stop d2");
    let c2 = c2.stop().expect("stop c2");
    assert_eq!(icmp_between(&d2, h1.data_ip(), h2.data_ip()), (2, 2));
    assert!(parse_pcap(&c2).expect("pcap").packets.is_empty());

    // A capture on a missing interface fails promptly with tcpdump's message.
    let err = Capture::start(lab.lab_netns(), "nope0", "", &tmp.path().join("x.pcap"))
        .expect_err("no such interface");
    assert!(format!("{err:#}").contains("nope0"), "{err:#}");
}

#[test]
fn lab_dropped_while_unwinding_is_removed() {
    type Seen = Option<(Vec<String>, PathBuf)>;
    let seen: Mutex<Seen> = Mutex::new(None);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let lab = lab(2);
        let sleeper = lab.host(0).spawn(&["sleep", "600"]).expect("spawn");
        for ns in lab.namespaces() {
            assert!(netns_exists(&ns));
        }
        *seen.lock().expect("lock") = Some((lab.namespaces(), lab.dir().to_path_buf()));
        let _keep = sleeper;
        panic!("test panic while a lab is alive");
    }));
    assert!(result.is_err());
    let (namespaces, dir) = seen.lock().expect("lock").take().expect("lab was built");
    assert_eq!(namespaces.len(), 3);
    assert_gone(&namespaces, &dir);
}

#[test]
fn down_all_removes_a_forgotten_lab() {
    let lab = lab(2);
    let prefix = lab.prefix().to_owned();
    let namespaces = lab.namespaces();
    let dir = lab.dir().to_path_buf();
    let mut sleeper = lab.host(1).spawn(&["sleep", "600"]).expect("spawn");
    // `ip netns exec` enters the namespace a moment after it starts: wait until it is in,
    // or down_all could miss it.
    let host_ns = lab.host(1).netns().to_owned();
    let pid = sleeper.id() as i32;
    secnet_lab::wait_until(
        "the sleeper inside its namespace",
        Duration::from_secs(10),
        || Ok(secnet_lab::netns_pids(&host_ns)?.contains(&pid)),
    )
    .expect("sleeper in namespace");
    std::mem::forget(lab);
    for ns in &namespaces {
        assert!(netns_exists(ns));
    }
    assert!(sleeper.try_wait().expect("try_wait").is_none());

    let n = down_all(&prefix).expect("down_all");
    assert_eq!(n, 3);
    assert_gone(&namespaces, &dir);
    // The process inside was killed.
    let status = sleeper.wait().expect("wait");
    assert!(!status.success());
    // Nothing left to do the second time.
    assert_eq!(down_all(&prefix).expect("down_all"), 0);
}

#[test]
fn custom_prefixes_are_checked_and_never_clash() {
    let p = format!("{}-custom", unique_prefix());
    let lab = Lab::new(LabConfig {
        hosts: 1,
        name_prefix: Some(p.clone()),
        daemon_args: vec![],
    })
    .expect("lab");
    assert_eq!(lab.prefix(), p);
    assert_eq!(lab.host(0).netns(), format!("{p}-h1"));
    // A second lab with the same prefix fails and leaves the first alone.
    let err = Lab::new(LabConfig {
        hosts: 1,
        name_prefix: Some(p.clone()),
        daemon_args: vec![],
    })
    .expect_err("prefix in use");
    assert!(format!("{err:#}").contains("already exists"), "{err:#}");
    for ns in lab.namespaces() {
        assert!(netns_exists(&ns), "{ns} was removed by the failed lab");
    }
    drop(lab);

    // Foreign prefixes get `snl-` so that `secnet-lab down` finds them.
    let q = format!("e2e{}", &unique_prefix()[3..]);
    let lab = Lab::new(LabConfig {
        hosts: 1,
        name_prefix: Some(q.clone()),
        daemon_args: vec![],
    })
    .expect("lab");
    assert_eq!(lab.prefix(), format!("snl-{q}"));
    assert!(Lab::new(LabConfig {
        hosts: 1,
        name_prefix: Some("Bad Name".into()),
        daemon_args: vec![],
    })
    .is_err());
}

// ---- daemon management, against fake `secnetd` / `secnet` scripts ----

const FAKE_SECNETD: &str = r#"#!/usr/bin/python3
import json, os, signal, socket, sys, time
args = sys.argv[1:]
sock_path = args[args.index("--socket") + 1]
print("fake secnetd argv=" + json.dumps(args), flush=True)
print("fake secnetd netns=" + os.readlink("/proc/self/ns/net"), flush=True)
if "--exit-at-once" in args:
    print("fake secnetd: bad configuration, exiting", flush=True)
    sys.exit(3)
def term(signum, frame):
    print("fake secnetd: got SIGTERM", flush=True)
    sys.exit(0)
if "--ignore-term" in args:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, term)
time.sleep(0.3)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sock_path)
s.listen(16)
print("fake secnetd listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"#;

const FAKE_SECNET: &str = r#"#!/usr/bin/python3
import json, socket, sys
args = sys.argv[1:]
assert args[0] == "--socket"
path, rest = args[1], args[2:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(path)
except OSError as e:
    print(f"cannot connect to {path}: {e}", file=sys.stderr)
    sys.exit(2)
if rest[:1] == ["fail"]:
    print("boom: " + " ".join(rest), file=sys.stderr)
    sys.exit(3)
print(json.dumps({"socket": path, "args": rest}))
"#;

fn fake_bin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in [("secnetd", FAKE_SECNETD), ("secnet", FAKE_SECNET)] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

fn netns_inode(ns: &str) -> u64 {
    std::fs::metadata(Path::new("/run/netns").join(ns))
        .expect("netns file")
        .ino()
}

#[test]
fn daemons_start_in_their_namespace_and_cli_reaches_them() {
    let bins = fake_bin_dir();
    let mut lab = Lab::new(LabConfig {
        hosts: 2,
        name_prefix: None,
        daemon_args: vec!["--extra".into(), "x y".into()],
    })
    .expect("lab");
    lab.set_bin_dir(bins.path());
    lab.start_all().expect("start_all");

    for h in lab.hosts_mut() {
        assert!(h.is_running());
        let log = std::fs::read_to_string(h.log_path()).expect("log");
        assert!(log.contains("fake secnetd listening"), "{log}");
        let argv_line = log
            .lines()
            .find_map(|l| l.strip_prefix("fake secnetd argv="))
            .expect("argv line");
        let argv: Vec<String> = serde_json::from_str(argv_line).expect("argv json");
        let want: Vec<String> = [
            "--state-dir",
            &h.state_dir().display().to_string(),
            "--socket",
            &h.socket().display().to_string(),
            "--run-dir",
            &h.dir().join("run").display().to_string(),
            "--hostname",
            h.name(),
            "--extra",
            "x y",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(argv, want);
        let ns_line = log
            .lines()
            .find_map(|l| l.strip_prefix("fake secnetd netns="))
            .expect("netns line");
        assert_eq!(ns_line, format!("net:[{}]", netns_inode(h.netns())));
    }

    let h1 = lab.host(0);
    let v = h1
        .cli_json(&["node", "ls", "--format", "json"])
        .expect("cli_json");
    assert_eq!(
        v["args"],
        serde_json::json!(["node", "ls", "--format", "json"])
    );
    assert_eq!(v["socket"], h1.socket().display().to_string());

    let err = h1
        .cli_ok(&["fail", "--flag", "two words"])
        .expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("fail --flag 'two words'"), "{msg}");
    assert!(msg.contains("exit code 3"), "{msg}");
    assert!(msg.contains("boom: fail --flag two words"), "{msg}");
    assert!(
        msg.contains("fake secnetd listening"),
        "log tail missing: {msg}"
    );
    assert!(msg.contains("h1"), "{msg}");

    // Crash, CLI fails, restart with the same state dir, CLI works again.
    let h2 = lab.host_mut(1);
    let pid = h2.daemon_pid().expect("pid");
    h2.kill_daemon().expect("kill");
    assert!(!h2.is_running());
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(h2.socket().exists(), "a crash leaves the socket behind");
    let out = h2.cli(&["node", "ls"]);
    assert_eq!(out.status, 2, "{}", out.describe());
    h2.start_daemon().expect("restart");
    assert!(h2.cli(&["node", "ls"]).success());
    assert!(h2.start_daemon().is_err(), "already running");

    // Clean stop: SIGTERM reaches the daemon.
    h2.stop_daemon().expect("stop");
    assert!(!h2.is_running());
    let log = std::fs::read_to_string(h2.log_path()).expect("log");
    assert!(log.contains("fake secnetd: got SIGTERM"), "{log}");
    h2.stop_daemon()
        .expect("stopping a stopped daemon is a no-op");

    let namespaces = lab.namespaces();
    let dir = lab.dir().to_path_buf();
    lab.teardown().expect("teardown");
    assert_gone(&namespaces, &dir);
}

#[test]
fn a_daemon_that_dies_at_startup_fails_fast_with_its_log() {
    let bins = fake_bin_dir();
    let mut lab = Lab::new(LabConfig {
        hosts: 1,
        name_prefix: None,
        daemon_args: vec!["--exit-at-once".into()],
    })
    .expect("lab");
    lab.set_bin_dir(bins.path());
    let start = Instant::now();
    let err = lab.start_all().expect_err("daemon exits");
    assert!(start.elapsed() < Duration::from_secs(10));
    let msg = format!("{err:#}");
    assert!(msg.contains("exited"), "{msg}");
    assert!(msg.contains("bad configuration"), "{msg}");

    // A missing binary is reported as such.
    let empty = tempfile::tempdir().expect("tempdir");
    lab.set_bin_dir(empty.path());
    let err = lab.host_mut(0).start_daemon().expect_err("no binary");
    assert!(format!("{err:#}").contains("cargo build --bins"), "{err:#}");
    assert_eq!(lab.host(0).cli(&["x"]).status, CmdOutput::NOT_STARTED);
}

#[test]
fn dropping_a_lab_sigkills_daemons_that_ignore_sigterm() {
    let bins = fake_bin_dir();
    let mut lab = Lab::new(LabConfig {
        hosts: 2,
        name_prefix: None,
        daemon_args: vec!["--ignore-term".into()],
    })
    .expect("lab");
    lab.set_bin_dir(bins.path());
    lab.start_all().expect("start");
    let pids: Vec<u32> = lab
        .hosts_mut()
        .iter_mut()
        .map(|h| h.daemon_pid().expect("pid"))
        .collect();
    let namespaces = lab.namespaces();
    let dir = lab.dir().to_path_buf();
    let start = Instant::now();
    drop(lab);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "SIGTERM grace skipped: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "teardown took {took:?}");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "daemon {pid} survived"
        );
    }
    assert_gone(&namespaces, &dir);
}

// ---- the demo, against a fake cluster ----

/// A `secnet` that keeps a fake cluster in a JSON file next to the hosts'
/// directories (the socket is `<labdir>/hN/secnetd.sock`). `FAKE_FAIL=<cmd>`
/// makes that subcommand fail; `FAKE_HANG=<cmd>` makes it hang.
const FAKE_CLUSTER_SECNET: &str = r#"#!/usr/bin/python3
import fcntl, json, os, socket, sys, time
args = sys.argv[1:]
assert args[0] == "--socket"
sock, cmd = args[1], args[2:]
host = os.path.basename(os.path.dirname(sock))
n = int(host[1:])
state_path = os.path.join(os.path.dirname(os.path.dirname(sock)), "fake-cluster.json")
def die(msg, code):
    print(msg, file=sys.stderr)
    sys.exit(code)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sock)
except OSError as e:
    die(f"cannot connect to {sock}: {e}", 2)
if os.environ.get("FAKE_FAIL") == cmd[0]:
    die(f"Error: {cmd[0]} exploded", 1)
if os.environ.get("FAKE_HANG") == cmd[0]:
    open(os.path.join(os.path.dirname(state_path), "hang.pid"), "w").write(str(os.getpid()))
    time.sleep(3600)
lock = open(state_path + ".lock", "w")
fcntl.flock(lock, fcntl.LOCK_EX)
st = {"nodes": [], "networks": []}
if os.path.exists(state_path):
    st = json.load(open(state_path))
def save():
    json.dump(st, open(state_path, "w"))
def node(role, leader):
    return {"id": f"id{n}", "hostname": host, "role": role, "status": "ready", "leader": leader,
            "advertise_addr": f"192.0.2.{10+n}:2377", "data_path_addr": f"198.51.100.{10+n}"}
def opt(name, default=None):
    return cmd[cmd.index(name) + 1] if name in cmd else default
if cmd[0] == "init":
    st["nodes"].append(node("manager", True)); save()
    print("Cluster initialized: current node is now a manager.\n\nTo add a worker, run:\n\n    secnet join --token SWMTKN-1-0123456789abcdef-workersecretworker 192.0.2.11:2377\n")
elif cmd[0] == "join-token":
    print(f"SWMTKN-1-0123456789abcdef-{cmd[1]}secret{cmd[1]}")
elif cmd[0] == "join":
    assert cmd[-1] == "192.0.2.11:2377", cmd
    role = "manager" if "managersecret" in opt("--token") else "worker"
    st["nodes"].append(node(role, False)); save(); print(f"This node joined the cluster as a {role}.")
elif cmd[:2] == ["node", "ls"]:
    if opt("--format") == "json":
        print(json.dumps(st["nodes"]))
    else:
        print("ID   HOSTNAME STATUS ROLE")
        for x in st["nodes"]:
            print(x["id"], x["hostname"], x["status"], x["role"])
elif cmd[:2] == ["network", "create"]:
    i = len(st["networks"])
    net = {"id": f"net{i}", "name": cmd[-1], "driver": opt("-d"), "subnet": opt("--subnet", f"10.20.0.{64*i}/26"),
           "gateway": opt("--gateway", f"10.20.0.{64*i+1}"), "vni": 4096 + i,
           "encrypted": opt("--opt") == "encrypted", "mtu": 1450}
    st["networks"].append(net); save(); print(net["id"])
elif cmd[:2] == ["network", "ls"]:
    if opt("--format") == "json":
        print(json.dumps(st["networks"]))
    else:
        print("NETWORK ID  NAME  DRIVER  SUBNET")
        for x in st["networks"]:
            print(x["id"], x["name"], x["driver"], x["subnet"])
else:
    die(f"unknown command {cmd}", 64)
"#;

fn fake_cluster_bin_dir() -> tempfile::TempDir {
    let dir = fake_bin_dir();
    let p = dir.path().join("secnet");
    std::fs::write(&p, FAKE_CLUSTER_SECNET).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn run_demo(bins: &Path, prefix: &str, env: &[(&str, &str)]) -> CmdOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secnet-lab"));
    cmd.args(["demo", "--prefix", prefix])
        .env("SECNET_BIN_DIR", bins)
        .env_remove("SECNET_LAB_KEEP");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run secnet-lab demo");
    CmdOutput {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_no_namespaces_with(prefix: &str) {
    let left: Vec<String> = list_netns()
        .expect("ip netns list")
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let tmp_left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .collect();
    assert!(tmp_left.is_empty(), "temp dirs left behind: {tmp_left:?}");
}

#[test]
fn demo_failure_reports_command_and_log_and_cleans_up() {
    let bins = fake_cluster_bin_dir();
    let prefix = unique_prefix();
    let out = run_demo(bins.path(), &prefix, &[("FAKE_FAIL", "network")]);
    assert!(!out.success(), "{}", out.describe());
    let err = &out.stderr;
    assert!(
        err.contains("`secnet network create -d overlay --opt encrypted frontend` on h4 failed"),
        "{err}"
    );
    assert!(err.contains("Error: network exploded"), "{err}");
    assert!(
        err.contains("fake secnetd listening"),
        "daemon log tail missing: {err}"
    );
    assert!(
        out.stdout.contains("[6/12]") && !out.stdout.contains("[7/12]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("cleaned up"), "{}", out.stdout);
    assert_no_namespaces_with(&prefix);
}

fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie has released everything; only its parent can reap it.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

#[test]
fn demo_interrupted_like_ctrl_c_cleans_up() {
    let bins = fake_cluster_bin_dir();
    let prefix = unique_prefix();
    let mut child = Command::new(env!("CARGO_BIN_EXE_secnet-lab"))
        .args(["demo", "--prefix", &prefix])
        .env("SECNET_BIN_DIR", bins.path())
        .env("FAKE_HANG", "join")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn demo");
    // Wait until the demo hangs in `join` (h1 is initialised by then).
    let hung_cli: i32 = wait_for("the demo to hang in join", Duration::from_secs(60), || {
        for e in std::fs::read_dir(std::env::temp_dir())?.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("hang.pid")) {
                    return Ok(Some(pid.trim().parse()?));
                }
            }
        }
        Ok(None)
    })
    .expect("demo progress");
    assert!(netns_exists(&format!("{prefix}-h1")));
    // What a terminal does on Ctrl-C, with SIGTERM: signal the whole group.
    let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
    nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert_no_namespaces_with(&prefix);
    // The CLI running at the time got the signal too (it was not blocked).
    wait_until("the hung CLI to die", Duration::from_secs(5), || {
        Ok(process_gone(hung_cli))
    })
    .expect("the hung secnet CLI survived the signal");
}

#[test]
fn up_runs_until_sigterm_and_stops_daemons_with_sigterm() {
    use std::io::{BufRead, BufReader};
    let bins = fake_bin_dir();
    let prefix = unique_prefix();
    let mut child = Command::new(env!("CARGO_BIN_EXE_secnet-lab"))
        .args(["up", "--hosts", "2", "--prefix", &prefix])
        .env("SECNET_BIN_DIR", bins.path())
        .env("SECNET_LAB_KEEP", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn up");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut text = String::new();
    for line in lines.by_ref() {
        let line = line.expect("read");
        text.push_str(&line);
        text.push('\n');
        if line.contains("is up") {
            break;
        }
    }
    assert!(text.contains(&format!("lab {prefix} is up")), "{text}");
    assert!(text.contains(&format!("{prefix}-h2")), "{text}");
    assert!(
        text.contains("192.0.2.12") && text.contains("198.51.100.12"),
        "{text}"
    );
    assert!(text.contains("h2/secnetd.sock node ls"), "{text}");
    let dir: PathBuf = text
        .lines()
        .find_map(|l| l.split("(files in ").nth(1))
        .map(|d| PathBuf::from(d.trim_end_matches(')')))
        .expect("lab dir in output");
    assert!(netns_exists(&format!("{prefix}-h1")));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?} {rest:?}");
    assert!(rest.iter().any(|l| l.contains("cleaned up")), "{rest:?}");
    let left: Vec<String> = list_netns()
        .expect("list")
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // SECNET_LAB_KEEP=1 kept the logs: the daemons were stopped by SIGTERM
    // (a signal mask inherited from secnet-lab would have forced SIGKILL).
    for h in ["h1", "h2"] {
        let log = std::fs::read_to_string(dir.join(h).join("secnetd.log")).expect("log kept");
        assert!(log.contains("fake secnetd: got SIGTERM"), "{h}: {log}");
    }
    std::fs::remove_dir_all(&dir).expect("remove kept dir");
}
