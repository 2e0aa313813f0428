//! The data-path bed: builds the paths, runs the interleaved rounds, hands the samples to
//! the report.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::Serialize;

use super::peers::{self, PeerKind, PeerPair};
use super::report::{self, DatapathReport};
use super::stats::{parse_iperf_json, parse_ping, UdpCounters};
use super::{
    clk_tck, cpu_ticks, create_endpoint, form_cluster, host_ns, ns_command, ns_run, say,
    udp_counters, Background, MachineInfo,
};
use crate::cmd::{run_with_timeout, wait_for};
use crate::lab::{bin_dir, Lab, LabConfig};

/// What `secnet-lab bench` (data path) should do.
#[derive(Debug, Clone)]
pub struct DatapathOptions {
    /// Interleaved rounds.
    pub rounds: usize,
    /// Seconds per iperf3 run.
    pub seconds: u32,
    /// Smoke mode: one short round of paths a–c, asserting only that traffic flowed.
    pub smoke: bool,
    /// Directory for the `.md` and `.json` results.
    pub output: PathBuf,
    /// Lab name prefix (unique per run; Ctrl-C cleanup removes everything with it).
    pub prefix: String,
    /// Install missing peers (apt-get, cargo install) instead of skipping them.
    pub install_peers: bool,
}

/// The paths the bed compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PathId {
    /// (a) iperf3 between the hosts' eth1 addresses.
    Raw,
    /// (b) endpoints on an unencrypted secnet network.
    Plain,
    /// (c) endpoints on an encrypted secnet network.
    Encrypted,
    /// (d) kernel VXLAN inside wireguard-go.
    WireguardGo,
    /// (e) kernel VXLAN inside boringtun-cli.
    Boringtun,
}

impl PathId {
    /// All paths, in table order.
    pub const ALL: [PathId; 5] = [
        PathId::Raw,
        PathId::Plain,
        PathId::Encrypted,
        PathId::WireguardGo,
        PathId::Boringtun,
    ];

    /// `a` to `e`.
    pub fn letter(self) -> char {
        match self {
            PathId::Raw => 'a',
            PathId::Plain => 'b',
            PathId::Encrypted => 'c',
            PathId::WireguardGo => 'd',
            PathId::Boringtun => 'e',
        }
    }

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            PathId::Raw => "raw underlay",
            PathId::Plain => "secnet unencrypted",
            PathId::Encrypted => "secnet encrypted",
            PathId::WireguardGo => "VXLAN in wireguard-go",
            PathId::Boringtun => "VXLAN in boringtun-cli",
        }
    }

    /// What the path is, for the table of paths.
    pub fn description(self) -> &'static str {
        match self {
            PathId::Raw => "h1 eth1 -> h2 eth1 (veth - lab bridge - veth), MTU 1500",
            PathId::Plain => {
                "endpoint on h1 -> endpoint on h2 over an unencrypted secnet network (kernel VXLAN between the data-path addresses), MTU 1450"
            }
            PathId::Encrypted => {
                "endpoint on h1 -> endpoint on h2 over an encrypted secnet network (kernel VXLAN between tunnel addresses, sealed by secnetd's WireGuard engine), MTU 1390"
            }
            PathId::WireguardGo => {
                "h3 -> h4: kernel VXLAN between the addresses of a wireguard-go interface (MTU 1440), MTU 1390"
            }
            PathId::Boringtun => {
                "h5 -> h6: kernel VXLAN between the addresses of a boringtun-cli interface (MTU 1440, default 4 threads), MTU 1390"
            }
        }
    }
}

/// The iperf3 runs of every path and round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TcpTest {
    /// 1 stream, client to server.
    One,
    /// 1 stream, server to client (`-R`).
    OneRev,
    /// 4 streams (`-P 4`).
    Four,
    /// 4 streams, reverse.
    FourRev,
}

impl TcpTest {
    pub(crate) const ALL: [TcpTest; 4] = [
        TcpTest::One,
        TcpTest::OneRev,
        TcpTest::Four,
        TcpTest::FourRev,
    ];

    /// Column title.
    pub(crate) fn label(self) -> &'static str {
        match self {
            TcpTest::One => "1 stream",
            TcpTest::OneRev => "1 stream -R",
            TcpTest::Four => "4 streams",
            TcpTest::FourRev => "4 streams -R",
        }
    }

    fn streams(self) -> usize {
        match self {
            TcpTest::One | TcpTest::OneRev => 1,
            TcpTest::Four | TcpTest::FourRev => 4,
        }
    }

    fn reverse(self) -> bool {
        matches!(self, TcpTest::OneRev | TcpTest::FourRev)
    }
}

/// One iperf3 run.
#[derive(Debug, Clone, Serialize)]
pub struct TcpRun {
    pub round: usize,
    pub test: TcpTest,
    /// Receiver goodput, Gbit/s (`None` when the run failed).
    pub gbps: Option<f64>,
    /// Gigabits received.
    pub gbit: f64,
    pub retransmits: u64,
    /// CPU seconds the tunnel processes (both ends) used during the run (`None` for kernel
    /// paths).
    pub tunnel_cpu_s: Option<f64>,
    /// Wall-clock seconds from before to after the run.
    pub wall_s: f64,
    /// UDP counter increase in both hosts' underlay namespaces during the run.
    pub udp: UdpCounters,
    pub error: Option<String>,
}

/// One ping series.
#[derive(Debug, Clone, Serialize)]
pub struct PingRun {
    pub round: usize,
    /// `idle` or `load` (during the 1-stream run).
    pub kind: &'static str,
    pub rtts_ms: Vec<f64>,
    pub transmitted: u64,
    pub received: u64,
    pub error: Option<String>,
}

/// Everything measured on one path.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    pub id: PathId,
    /// Why the path was not measured, if it was not.
    pub skipped: Option<String>,
    /// Version of the peer's software, for peers.
    pub software: Option<String>,
    pub tcp: Vec<TcpRun>,
    pub ping: Vec<PingRun>,
}

impl PathResult {
    fn skipped(id: PathId, why: impl Into<String>) -> PathResult {
        PathResult {
            id,
            skipped: Some(why.into()),
            software: None,
            tcp: Vec::new(),
            ping: Vec::new(),
        }
    }
}

/// The iperf3 port (each namespace has its own port space).
const IPERF_PORT: &str = "5201";
/// How long a secnet network may take to carry the first ping.
const PATH_UP: Duration = Duration::from_secs(30);

/// One side of a path: a namespace and the address iperf3/ping use there.
#[derive(Debug, Clone)]
struct Side {
    ns: String,
    ip: String,
}

/// A measurable path.
struct LivePath {
    id: PathId,
    client: Side,
    server: Side,
    /// The hosts' namespaces whose UDP counters are read.
    underlay: [String; 2],
    /// Tunnel processes whose CPU is read (none for kernel paths).
    tunnel_pids: Vec<u32>,
    server_proc: Option<Background>,
    _peers: Option<PeerPair>,
    software: Option<String>,
}

impl LivePath {
    fn start_server(&mut self, log: &Path) -> anyhow::Result<()> {
        self.server_proc = None;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = ns_command(
            &self.server.ns,
            &["iperf3", "-s", "-B", &self.server.ip, "-p", IPERF_PORT],
        )
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("starting iperf3 -s (is iperf3 installed? deploy/install-deps.sh)")?;
        let mut proc = Background(child);
        let ns = self.server.ns.clone();
        wait_for(
            &format!("iperf3 server of path {}", self.id.letter()),
            Duration::from_secs(10),
            || {
                if !proc.running() {
                    return Err(crate::cmd::Fatal("iperf3 -s exited".into()).into());
                }
                let filter = format!("sport = :{IPERF_PORT}");
                let out = ns_run(&ns, &["ss", "-Hltn", &filter], Duration::from_secs(5));
                Ok((out.success() && !out.stdout.trim().is_empty()).then_some(()))
            },
        )?;
        self.server_proc = Some(proc);
        Ok(())
    }

    fn cpu_ticks(&self) -> anyhow::Result<Option<u64>> {
        if self.tunnel_pids.is_empty() {
            return Ok(None);
        }
        let mut sum = 0;
        for pid in &self.tunnel_pids {
            sum += cpu_ticks(*pid)?;
        }
        Ok(Some(sum))
    }

    fn udp(&self) -> anyhow::Result<UdpCounters> {
        let a = udp_counters(&self.underlay[0])?;
        let b = udp_counters(&self.underlay[1])?;
        Ok(a.plus(&b))
    }

    fn ping(&self, count: u32, round: usize, kind: &'static str) -> PingRun {
        let count_arg = count.to_string();
        let timeout = Duration::from_secs(u64::from(count) / 100 + 15);
        let out = ns_run(
            &self.client.ns,
            &[
                "ping",
                "-n",
                "-i",
                "0.01",
                "-W",
                "1",
                "-c",
                &count_arg,
                &self.server.ip,
            ],
            timeout,
        );
        let p = parse_ping(&out.stdout);
        let error = (p.rtts_ms.is_empty()).then(|| format!("ping: {}", out.describe()));
        PingRun {
            round,
            kind,
            rtts_ms: p.rtts_ms,
            transmitted: p.transmitted,
            received: p.received,
            error,
        }
    }

    /// Waits until the client namespace has `n` established connections to the server port.
    fn wait_established(&self, n: usize) -> anyhow::Result<()> {
        let filter = format!("( dport = :{IPERF_PORT} )");
        wait_for("iperf3 connections", Duration::from_secs(5), || {
            let out = ns_run(
                &self.client.ns,
                &["ss", "-Htn", "state", "established", &filter],
                Duration::from_secs(5),
            );
            Ok((out.stdout.lines().count() >= n).then_some(()))
        })
    }

    /// One iperf3 run; with `load_ping`, pings during it (after the streams are up).
    fn tcp(
        &mut self,
        test: TcpTest,
        seconds: u32,
        round: usize,
        load_ping: Option<u32>,
        tck: f64,
        log: &Path,
    ) -> (TcpRun, Option<PingRun>) {
        let mut run = TcpRun {
            round,
            test,
            gbps: None,
            gbit: 0.0,
            retransmits: 0,
            tunnel_cpu_s: None,
            wall_s: 0.0,
            udp: UdpCounters::default(),
            error: None,
        };
        let before = (self.cpu_ticks(), self.udp());
        let start = Instant::now();
        let secs = seconds.to_string();
        let streams = test.streams().to_string();
        let mut args = vec![
            "iperf3",
            "-c",
            &self.server.ip,
            "-p",
            IPERF_PORT,
            "-t",
            &secs,
            "-P",
            &streams,
            "-J",
        ];
        if test.reverse() {
            args.push("-R");
        }
        let timeout = Duration::from_secs(u64::from(seconds) + 30);
        let mut cmd = ns_command(&self.client.ns, &args);
        let (out, ping) = std::thread::scope(|s| {
            let iperf = s.spawn(move || run_with_timeout(&mut cmd, timeout));
            let ping = load_ping.map(|count| match self.wait_established(test.streams() + 1) {
                Ok(()) => self.ping(count, round, "load"),
                Err(e) => PingRun {
                    round,
                    kind: "load",
                    rtts_ms: Vec::new(),
                    transmitted: 0,
                    received: 0,
                    error: Some(format!("{e:#}")),
                },
            });
            let out = iperf
                .join()
                .unwrap_or_else(|_| crate::cmd::CmdOutput::not_started("iperf3 thread panicked"));
            (out, ping)
        });
        run.wall_s = start.elapsed().as_secs_f64();
        let after = (self.cpu_ticks(), self.udp());
        match parse_iperf_json(&out.stdout) {
            Ok(r) if out.success() => {
                run.gbps = Some(r.bits_per_second / 1e9);
                run.gbit = r.bytes * 8.0 / 1e9;
                run.retransmits = r.retransmits;
            }
            Ok(_) => run.error = Some(format!("iperf3: {}", out.describe())),
            Err(e) => run.error = Some(format!("{e:#}; {}", out.describe())),
        }
        match before {
            (Ok(Some(b)), _) => match &after.0 {
                Ok(Some(a)) => run.tunnel_cpu_s = Some(a.saturating_sub(b) as f64 / tck),
                Ok(None) => {}
                Err(e) => run.error = Some(format!("tunnel process gone: {e:#}")),
            },
            (Err(e), _) => run.error = Some(format!("tunnel process gone: {e:#}")),
            _ => {}
        }
        if let (Ok(b), Ok(a)) = (&before.1, &after.1) {
            run.udp = a.since(b);
        }
        if run.error.is_some() {
            // A failed client can leave iperf3 3.x's server wedged: start a fresh one.
            if let Err(e) = self.start_server(log) {
                run.error = run
                    .error
                    .map(|m| format!("{m}; restarting the server: {e:#}"));
            }
        }
        (run, ping)
    }
}

/// Runs the data-path bed: returns the path of the Markdown results.
pub fn run_datapath(opts: &DatapathOptions) -> anyhow::Result<PathBuf> {
    if opts.rounds == 0 || opts.seconds == 0 {
        bail!("--rounds and --seconds must be at least 1");
    }
    let bins = bin_dir()?;
    let mut machine = MachineInfo::now(&bins);
    let tck = clk_tck();
    say(format!(
        "secnet-lab bench{}: {} round(s) x {} s per iperf3 run, lab {}",
        if opts.smoke { " --smoke" } else { "" },
        opts.rounds,
        opts.seconds,
        opts.prefix
    ));
    say(format!(
        "machine: {} ({} cores), kernel {}, load {}; {} binaries in {}",
        machine.cpu_model,
        machine.cores,
        machine.kernel,
        machine.load_start,
        machine.profile,
        bins.display()
    ));
    let hosts = if opts.smoke { 2 } else { 6 };
    let mut lab = Lab::new(LabConfig {
        hosts,
        name_prefix: Some(opts.prefix.clone()),
        daemon_args: Vec::new(),
    })?;
    let result = bench_in(&mut lab, opts, tck);
    let teardown = lab.teardown();
    let (paths, iperf_version) = result?;
    teardown?;
    machine.finish();
    let rep = DatapathReport {
        machine,
        rounds: opts.rounds,
        seconds: opts.seconds,
        smoke: opts.smoke,
        iperf3: iperf_version,
        paths,
    };
    let (md_path, markdown) = report::write_datapath(&rep, &opts.output)?;
    say("");
    say(markdown.trim_end());
    say("");
    say(format!("results written to {}", md_path.display()));
    if opts.smoke {
        smoke_check(&rep, &md_path)?;
        say("smoke: traffic flowed on every path and the table was written");
    }
    Ok(md_path)
}

/// The smoke mode's assertions: every measured path moved data, and the file exists.
fn smoke_check(rep: &DatapathReport, md: &Path) -> anyhow::Result<()> {
    for p in rep.paths.iter().filter(|p| p.skipped.is_none()) {
        if p.tcp.is_empty() {
            bail!("smoke: path {} has no iperf3 run", p.id.letter());
        }
        for r in &p.tcp {
            if r.gbps.is_none_or(|g| g <= 0.0) {
                bail!(
                    "smoke: no traffic on path {} ({}), {}: {}",
                    p.id.letter(),
                    p.id.name(),
                    r.test.label(),
                    r.error.as_deref().unwrap_or("0 bit/s")
                );
            }
        }
    }
    let text = std::fs::read_to_string(md).with_context(|| format!("reading {}", md.display()))?;
    if !text.contains("| path |") {
        bail!("smoke: {} has no table", md.display());
    }
    Ok(())
}

fn iperf_version() -> String {
    let out = run_with_timeout(
        std::process::Command::new("iperf3").arg("--version"),
        Duration::from_secs(10),
    );
    out.stdout
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| "iperf3 (version unknown)".into())
}

fn bench_in(
    lab: &mut Lab,
    opts: &DatapathOptions,
    tck: f64,
) -> anyhow::Result<(Vec<PathResult>, String)> {
    let iperf = iperf_version();
    if iperf.contains("unknown") {
        bail!("iperf3 is not installed: run deploy/install-deps.sh");
    }
    let logs = lab.dir().join("bench");
    std::fs::create_dir_all(&logs)?;
    let mut live = Vec::new();
    let mut results = Vec::new();

    say(
        "[setup] two secnet hosts: cluster, an unencrypted and an encrypted network, endpoints ...",
    );
    let t = Instant::now();
    lab.host_mut(0).start_daemon()?;
    lab.host_mut(1).start_daemon()?;
    let pids = [
        lab.host_mut(0)
            .daemon_pid()
            .ok_or_else(|| anyhow!("secnetd on h1 is not running"))?,
        lab.host_mut(1)
            .daemon_pid()
            .ok_or_else(|| anyhow!("secnetd on h2 is not running"))?,
    ];
    form_cluster(lab, 2, 1, "10.70.0.0/16")?;
    let (h1, h2) = (lab.host(0), lab.host(1));
    h1.cli_ok(&["network", "create", "benchplain"])?;
    h1.cli_ok(&["network", "create", "--opt", "encrypted", "benchenc"])?;
    wait_for("both networks and a keyed tunnel on h2", PATH_UP, || {
        let nets = h2.cli_json(&["network", "ls", "--format", "json"])?;
        let n = nets.as_array().map(Vec::len).unwrap_or(0);
        let keyed = [h1, h2].iter().all(|h| {
            h.cli_json(&["tunnel", "ls", "--format", "json"])
                .is_ok_and(|t| t["key_epoch"].is_u64())
        });
        Ok((n >= 2 && keyed).then_some(()))
    })?;
    let underlay = [host_ns(h1), host_ns(h2)];
    live.push(LivePath {
        id: PathId::Raw,
        client: Side {
            ns: host_ns(h1),
            ip: h1.data_ip().to_string(),
        },
        server: Side {
            ns: host_ns(h2),
            ip: h2.data_ip().to_string(),
        },
        underlay: underlay.clone(),
        tunnel_pids: Vec::new(),
        server_proc: None,
        _peers: None,
        software: None,
    });
    for (id, net, a, b) in [
        (PathId::Plain, "benchplain", "pa", "pb"),
        (PathId::Encrypted, "benchenc", "ea", "eb"),
    ] {
        let ea = create_endpoint(h1, net, a)?;
        let eb = create_endpoint(h2, net, b)?;
        wait_for(&format!("{a} to reach {b} over {net}"), PATH_UP, || {
            let out = ns_run(
                &ea.netns,
                &["ping", "-n", "-c", "1", "-W", "1", &eb.ip],
                Duration::from_secs(5),
            );
            Ok(out.success().then_some(()))
        })?;
        live.push(LivePath {
            id,
            client: Side {
                ns: ea.netns.clone(),
                ip: ea.ip.clone(),
            },
            server: Side {
                ns: eb.netns.clone(),
                ip: eb.ip.clone(),
            },
            underlay: underlay.clone(),
            tunnel_pids: if id == PathId::Encrypted {
                pids.to_vec()
            } else {
                Vec::new()
            },
            server_proc: None,
            _peers: None,
            software: Some("secnetd (this tree)".into()),
        });
    }
    say(format!("    ready in {:.1} s", t.elapsed().as_secs_f64()));

    if opts.smoke {
        for id in [PathId::WireguardGo, PathId::Boringtun] {
            results.push(PathResult::skipped(id, "skipped in --smoke mode"));
        }
    } else {
        let tag = peers::iface_tag(&opts.prefix);
        for (id, kind, first) in [
            (PathId::WireguardGo, PeerKind::WireguardGo, 2),
            (PathId::Boringtun, PeerKind::Boringtun, 4),
        ] {
            say(format!("[setup] {} ...", id.name()));
            let tools = match peers::find_tools(kind, opts.install_peers) {
                Ok(t) => t,
                Err(why) => {
                    say(format!("    skipped: {why}"));
                    results.push(PathResult::skipped(id, why));
                    continue;
                }
            };
            let (a, b) = (lab.host(first), lab.host(first + 1));
            match peers::start_pair(kind, &tools, [a, b], &logs, &tag) {
                Ok(pair) => {
                    say(format!("    {} up", tools.version));
                    live.push(LivePath {
                        id,
                        client: Side {
                            ns: host_ns(a),
                            ip: pair.vx_ips[0].clone(),
                        },
                        server: Side {
                            ns: host_ns(b),
                            ip: pair.vx_ips[1].clone(),
                        },
                        underlay: [host_ns(a), host_ns(b)],
                        tunnel_pids: pair.pids(),
                        server_proc: None,
                        _peers: Some(pair),
                        software: Some(tools.version.clone()),
                    });
                }
                Err(e) => {
                    let why = format!("could not run {}: {e:#}", tools.version);
                    say(format!("    skipped: {why}"));
                    results.push(PathResult::skipped(id, why));
                }
            }
        }
    }

    for p in &mut live {
        let log = logs.join(format!("iperf3-server-{}.log", p.id.letter()));
        p.start_server(&log)?;
    }
    let mut measured: Vec<PathResult> = live
        .iter()
        .map(|p| PathResult {
            id: p.id,
            skipped: None,
            software: p.software.clone(),
            tcp: Vec::new(),
            ping: Vec::new(),
        })
        .collect();
    let idle_count = if opts.smoke { 50 } else { 300 };
    let load_count = opts.seconds.saturating_mul(100).saturating_sub(50).max(30);
    for round in 1..=opts.rounds {
        for (p, res) in live.iter_mut().zip(measured.iter_mut()) {
            let t = Instant::now();
            let log = logs.join(format!("iperf3-server-{}.log", p.id.letter()));
            res.ping.push(p.ping(idle_count, round, "idle"));
            let mut line = Vec::new();
            for test in TcpTest::ALL {
                let load = (test == TcpTest::One).then_some(load_count);
                let (run, ping) = p.tcp(test, opts.seconds, round, load, tck, &log);
                line.push(match (run.gbps, &run.error) {
                    (Some(g), _) => format!("{g:.2}"),
                    (None, _) => "failed".into(),
                });
                res.tcp.push(run);
                res.ping.extend(ping);
            }
            say(format!(
                "[round {round}/{}] ({}) {:<24} Gbit/s {} ({:.0} s)",
                opts.rounds,
                p.id.letter(),
                p.id.name(),
                line.join(" / "),
                t.elapsed().as_secs_f64()
            ));
        }
    }
    drop(live);
    results.extend(measured);
    results.sort_by_key(|r| PathId::ALL.iter().position(|x| *x == r.id));
    Ok((results, iperf))
}
