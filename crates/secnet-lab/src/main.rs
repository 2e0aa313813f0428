//! `secnet-lab`: build a namespace lab by hand (`up`), remove leftovers
//! (`down`), run the README demo (`demo`) or the benchmark bed (`bench`). Needs root and
//! iproute2.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use secnet_lab::{
    bin_dir, down_all, normalize_prefix, parse_pcap, shell_quote, unique_prefix, wait_for, Capture,
    Host, Ipv4Packet, Lab, LabConfig, CTL_BRIDGE, CTL_NET, DATA_BRIDGE, DATA_NET, NAME_PREFIX,
    SEGMENT_PREFIX_LEN,
};
use serde_json::Value;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

#[derive(Parser, Debug)]
#[command(
    name = "secnet-lab",
    version,
    about = "Network-namespace test lab for secnet (needs root; touches nothing in the root namespace)"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build a lab, start one secnetd per host, print how to reach them, and
    /// keep running until Ctrl-C / SIGTERM (then tear everything down).
    Up {
        /// Number of hosts.
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        /// Namespace name prefix (default: a unique `snlXXXXX`).
        #[arg(long)]
        prefix: Option<String>,
        /// Extra argument for every secnetd (repeatable).
        #[arg(long = "daemon-arg", value_name = "ARG", allow_hyphen_values = true)]
        daemon_args: Vec<String>,
        /// Only build the network; start no daemons.
        #[arg(long)]
        no_daemons: bool,
    },
    /// Remove leftover labs: kill every process in namespaces whose name starts
    /// with PREFIX, delete them and their temp dirs.
    Down {
        /// Name prefix of the labs to remove (must start with `snl`).
        #[arg(long, default_value = NAME_PREFIX)]
        prefix: String,
    },
    /// The benchmark bed (benches/README.md): data path (iperf3, ping, tunnel CPU, UDP drops
    /// for the raw underlay, unencrypted and encrypted secnet networks, and VXLAN inside
    /// wireguard-go and boringtun-cli) or, with --control, the control plane.
    Bench(BenchArgs),
    /// The README demo: a 5-host cluster with three overlay networks.
    Demo {
        /// Leave the lab running afterwards (remove it with `secnet-lab down`).
        #[arg(long)]
        keep: bool,
        /// Namespace name prefix (default: a unique `snlXXXXX`).
        #[arg(long)]
        prefix: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Interleaved rounds (default 3; 1 with --smoke).
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per iperf3 run (default 10; 1 with --smoke).
    #[arg(long)]
    seconds: Option<u32>,
    /// A few seconds in all: one round of paths a-c, checking only that traffic flowed and
    /// the table was written (with --control: one 3-host cluster, one repetition).
    #[arg(long)]
    smoke: bool,
    /// Directory for the results (default: the workspace's benches/results).
    #[arg(long, value_name = "DIR")]
    output: Option<std::path::PathBuf>,
    /// Namespace name prefix (default: a unique `snlXXXXX`).
    #[arg(long)]
    prefix: Option<String>,
    /// Skip peers that are not installed instead of installing them (apt-get install
    /// wireguard-go wireguard-tools; cargo install boringtun-cli).
    #[arg(long)]
    no_install: bool,
    /// Measure the control plane instead of the data path.
    #[arg(long)]
    control: bool,
    /// With --control: cluster sizes (default 3,10,25; 3 with --smoke).
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    hosts: Vec<usize>,
    /// With --control: repetitions of each change per cluster size (default 3; 1 with
    /// --smoke).
    #[arg(long)]
    repeats: Option<usize>,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECNET_LAB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = match args.cmd {
        Cmd::Up {
            hosts,
            prefix,
            daemon_args,
            no_daemons,
        } => up(hosts, prefix, daemon_args, no_daemons),
        Cmd::Down { prefix } => down(&prefix),
        Cmd::Demo { keep, prefix } => demo(keep, prefix),
        Cmd::Bench(args) => bench(args),
    };
    halt_if_interrupted();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("secnet-lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Set by the demo's signal thread, which then removes the lab and exits.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// After an interrupt, the signal thread owns the cleanup and the exit code:
/// the main thread (whose commands now fail) must not race it to `exit`.
fn halt_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// Writes one line of user output to stdout (ignoring a closed stdout).
fn say(line: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Writes `text` indented, skipping a trailing newline.
fn say_indented(text: &str, indent: &str) {
    for line in text.trim_end().lines() {
        say(format!("{indent}{line}"));
    }
}

/// Catches SIGINT, SIGTERM and SIGHUP from now on (with handlers, not by
/// blocking them: a blocked mask would be inherited by the daemons).
fn catch_signals() -> anyhow::Result<Signals> {
    Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")
}

/// Waits for the next caught signal and returns its name.
fn next_signal(signals: &mut Signals) -> String {
    let sig = signals.forever().next().unwrap_or(SIGTERM);
    signal_hook::low_level::signal_name(sig)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("signal {sig}"))
}

fn secnet_cli_path() -> String {
    bin_dir()
        .map(|d| d.join("secnet").display().to_string())
        .unwrap_or_else(|_| "secnet".to_owned())
}

fn up(
    hosts: usize,
    prefix: Option<String>,
    daemon_args: Vec<String>,
    no_daemons: bool,
) -> anyhow::Result<()> {
    let mut signals = catch_signals()?;
    say(format!("building {hosts} hosts in network namespaces ..."));
    let mut lab = Lab::new(LabConfig {
        hosts,
        name_prefix: prefix,
        daemon_args,
    })?;
    if !no_daemons {
        say("starting secnetd on every host ...");
        lab.start_all()?;
    }
    print_lab(&lab, !no_daemons);
    say("");
    say(format!(
        "lab {} is up; press Ctrl-C (or send SIGTERM to pid {}) to tear it down",
        lab.prefix(),
        std::process::id()
    ));
    let sig = next_signal(&mut signals);
    say(format!(
        "received {sig}; tearing down lab {} ...",
        lab.prefix()
    ));
    let prefix = lab.prefix().to_owned();
    lab.teardown()?;
    say(format!("cleaned up lab {prefix}"));
    Ok(())
}

fn print_lab(lab: &Lab, daemons: bool) {
    let secnet = secnet_cli_path();
    say(format!(
        "lab {} (files in {})",
        lab.prefix(),
        lab.dir().display()
    ));
    say(format!(
        "  lab namespace {}: bridge {CTL_BRIDGE} = control {CTL_NET}/{SEGMENT_PREFIX_LEN}, bridge {DATA_BRIDGE} = data {DATA_NET}/{SEGMENT_PREFIX_LEN}",
        lab.lab_netns()
    ));
    for h in lab.hosts() {
        say(format!(
            "  {}: netns {}, eth0 {} (port {}), eth1 {} (port {})",
            h.name(),
            h.netns(),
            h.ctl_ip(),
            h.ctl_port(),
            h.data_ip(),
            h.data_port()
        ));
        if daemons {
            say(format!("      socket {}", h.socket().display()));
            say(format!("      log    {}", h.log_path().display()));
            say(format!(
                "      $ {secnet} --socket {} node ls",
                h.socket().display()
            ));
        }
        say(format!(
            "      $ nsenter --net=/run/netns/{} bash",
            h.netns()
        ));
    }
}

fn down(prefix: &str) -> anyhow::Result<()> {
    let n = down_all(prefix)?;
    say(format!(
        "removed {n} network namespace{} with prefix {prefix:?}",
        if n == 1 { "" } else { "s" }
    ));
    Ok(())
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let mut signals = catch_signals()?;
    let prefix = match &args.prefix {
        Some(p) => normalize_prefix(p)?,
        None => unique_prefix(),
    };
    {
        // Ctrl-C / SIGTERM: remove every lab of this run (and the peers' sockets) and exit.
        let prefix = prefix.clone();
        std::thread::spawn(move || {
            let sig = next_signal(&mut signals);
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("\nsecnet-lab: interrupted ({sig}); removing lab {prefix} ...");
            match secnet_lab::bench::interrupt_cleanup(&prefix) {
                Ok(n) => eprintln!("secnet-lab: removed {n} namespaces"),
                Err(e) => eprintln!("secnet-lab: cleanup failed: {e:#}"),
            }
            std::process::exit(130);
        });
    }
    let output = args
        .output
        .unwrap_or_else(secnet_lab::bench::default_output_dir);
    if args.control {
        let hosts = if !args.hosts.is_empty() {
            args.hosts
        } else if args.smoke {
            vec![3]
        } else {
            vec![3, 10, 25]
        };
        let opts = secnet_lab::bench::ControlOptions {
            hosts,
            repeats: args.repeats.unwrap_or(if args.smoke { 1 } else { 3 }),
            output,
            prefix,
            smoke: args.smoke,
        };
        secnet_lab::bench::run_control(&opts)?;
    } else {
        let opts = secnet_lab::bench::DatapathOptions {
            rounds: args.rounds.unwrap_or(if args.smoke { 1 } else { 3 }),
            seconds: args.seconds.unwrap_or(if args.smoke { 1 } else { 10 }),
            smoke: args.smoke,
            output,
            prefix,
            install_peers: !args.no_install,
        };
        secnet_lab::bench::run_datapath(&opts)?;
    }
    Ok(())
}

/// Masks the secret part of a join token: `SWMTKN-1-abc...-s3cr3t` becomes
/// `SWMTKN-1-abc...-s3cr**`; a token without `-` keeps its first 8 chars.
fn mask_token(token: &str) -> String {
    let (head, secret) = match token.rsplit_once('-') {
        Some((h, s)) if !s.is_empty() => (format!("{h}-"), s),
        _ => (String::new(), token),
    };
    let keep = if head.is_empty() { 8 } else { 4 };
    let shown: String = secret.chars().take(keep).collect();
    let hidden = secret.chars().count().saturating_sub(keep);
    format!("{head}{shown}{}", "*".repeat(hidden.max(3)))
}

/// True for words that look like join tokens (`SNTKN-1-<digest>-<secret>`).
fn is_token_like(word: &str) -> bool {
    let mut parts = word.split('-');
    let kind = parts.next().unwrap_or("");
    kind.len() >= 3
        && kind.chars().all(|c| c.is_ascii_uppercase())
        && parts.next() == Some("1")
        && parts.count() >= 2
}

/// Masks every token-like word in CLI output (e.g. the join command that
/// `init` prints).
fn mask_tokens_in(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split(' ')
                .map(|w| {
                    if is_token_like(w) {
                        mask_token(w)
                    } else {
                        w.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const DEMO_HOSTS: usize = 5;
const DEMO_STEPS: usize = 12;

fn step(n: usize, what: impl Display) {
    say(format!("[{n}/{DEMO_STEPS}] {what}"));
}

/// Runs `secnet ARGS` on `host`, echoing the command (with `shown` args in
/// place of secrets) and its output.
fn demo_cli(host: &Host, args: &[&str], shown: Option<&[&str]>) -> anyhow::Result<String> {
    say(format!(
        "    {}$ secnet {}",
        host.name(),
        shell_quote(shown.unwrap_or(args))
    ));
    let out = host.cli_ok(args)?;
    say_indented(&mask_tokens_in(&out), "      ");
    Ok(out)
}

fn demo(keep: bool, prefix: Option<String>) -> anyhow::Result<()> {
    let mut signals = catch_signals()?;
    let prefix = match prefix {
        Some(p) => normalize_prefix(&p)?,
        None => unique_prefix(),
    };
    {
        // Ctrl-C / SIGTERM: remove everything with our prefix and exit.
        let prefix = prefix.clone();
        std::thread::spawn(move || {
            let sig = next_signal(&mut signals);
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("\nsecnet-lab: interrupted ({sig}); removing lab {prefix} ...");
            match down_all(&prefix) {
                Ok(n) => eprintln!("secnet-lab: removed {n} namespaces"),
                Err(e) => eprintln!("secnet-lab: cleanup failed: {e:#}"),
            }
            std::process::exit(130);
        });
    }

    step(
        1,
        format!("building {DEMO_HOSTS} hosts in network namespaces ..."),
    );
    let mut lab = Lab::new(LabConfig {
        hosts: DEMO_HOSTS,
        name_prefix: Some(prefix),
        daemon_args: Vec::new(),
    })?;
    for h in lab.hosts() {
        say(format!(
            "    {}: netns {}, eth0 {} (control), eth1 {} (data)",
            h.name(),
            h.netns(),
            h.ctl_ip(),
            h.data_ip()
        ));
    }
    let result = run_demo(&mut lab);
    halt_if_interrupted();
    if let Err(e) = &result {
        eprintln!("\nsecnet-lab demo FAILED: {e:#}\n");
    }
    if keep {
        let prefix = lab.prefix().to_owned();
        let dir = lab.persist();
        say("");
        say(format!(
            "--keep: lab {prefix} is still running (files, sockets and logs in {})",
            dir.display()
        ));
        say(format!(
            "  talk to it:  {} --socket {}/h1/secnetd.sock node ls",
            secnet_cli_path(),
            dir.display()
        ));
        say(format!("  remove it:   secnet-lab down --prefix {prefix}"));
    } else {
        say(format!(
            "tearing down lab {} (daemons, namespaces, files) ...",
            lab.prefix()
        ));
        let prefix = lab.prefix().to_owned();
        lab.teardown()?;
        let left: Vec<String> = secnet_lab::list_netns()?
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        if !left.is_empty() {
            bail!("namespaces left behind: {left:?}");
        }
        say("cleaned up: no namespaces, daemons or files left behind");
    }
    result.map_err(|_| anyhow!("demo failed (see above)"))
}

fn nodes_of(v: &Value) -> anyhow::Result<&Vec<Value>> {
    v.as_array()
        .ok_or_else(|| anyhow!("`node ls --format json` did not print an array: {v}"))
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn run_demo(lab: &mut Lab) -> anyhow::Result<()> {
    step(2, "starting secnetd on every host ...");
    lab.start_all()?;
    for h in lab.hosts() {
        say(format!("    {}: socket {}", h.name(), h.socket().display()));
    }

    let h1 = lab.host(0);
    let manager_addr = format!("{}:2377", h1.ctl_ip());
    step(3, "h1: initialising the cluster ...");
    demo_cli(
        h1,
        &[
            "init",
            "--advertise-addr",
            "eth0",
            "--data-path-addr",
            "eth1",
            "--default-addr-pool",
            "10.20.0.0/16",
            "--default-addr-pool-mask-length",
            "26",
        ],
        None,
    )?;
    let mut tokens = Vec::new();
    for role in ["manager", "worker"] {
        let args = ["join-token", role, "-q"];
        say(format!("    h1$ secnet {}", args.join(" ")));
        let token = h1.cli_ok(&args)?.trim().to_owned();
        if token.is_empty() || token.contains(char::is_whitespace) {
            bail!("`secnet join-token {role} -q` printed {token:?}, not a token");
        }
        say(format!("      {}", mask_token(&token)));
        tokens.push(token);
    }

    step(
        4,
        format!("joining h2, h3 as managers and h4, h5 as workers via {manager_addr} ..."),
    );
    for (i, token, role) in [
        (1, &tokens[0], "manager"),
        (2, &tokens[0], "manager"),
        (3, &tokens[1], "worker"),
        (4, &tokens[1], "worker"),
    ] {
        let host = lab.host(i);
        let masked = mask_token(token);
        let args = [
            "join",
            "--token",
            token.as_str(),
            "--advertise-addr",
            "eth0",
            "--data-path-addr",
            "eth1",
            manager_addr.as_str(),
        ];
        let mut shown = args;
        shown[2] = &masked;
        demo_cli(host, &args, Some(&shown))?;
        if role == "manager" {
            // One membership change at a time: wait for this manager to be ready.
            let name = host.name().to_owned();
            wait_for(
                &format!("{name} to show up as a ready manager on h1"),
                Duration::from_secs(60),
                || {
                    let v = h1.cli_json(&["node", "ls", "--format", "json"])?;
                    Ok(nodes_of(&v)?
                        .iter()
                        .any(|n| {
                            str_field(n, "hostname") == name
                                && str_field(n, "status") == "ready"
                                && str_field(n, "role") == "manager"
                        })
                        .then_some(()))
                },
            )?;
        }
    }

    step(
        5,
        format!("waiting until h1 sees {DEMO_HOSTS} ready nodes ..."),
    );
    let nodes = wait_for(
        &format!("{DEMO_HOSTS} ready nodes in `secnet node ls` on h1"),
        Duration::from_secs(90),
        || {
            let v = h1.cli_json(&["node", "ls", "--format", "json"])?;
            let nodes = nodes_of(&v)?;
            let ready = nodes
                .iter()
                .filter(|n| str_field(n, "status") == "ready")
                .count();
            if nodes.len() == DEMO_HOSTS && ready == DEMO_HOSTS {
                Ok(Some(nodes.clone()))
            } else {
                bail!("{} nodes, {ready} ready: {v}", nodes.len())
            }
        },
    )?;
    for n in &nodes {
        let leader = n.get("leader").and_then(Value::as_bool).unwrap_or(false);
        say(format!(
            "    {:<4} {:<8} {}{}  control {}  data {}",
            str_field(n, "hostname"),
            str_field(n, "role"),
            str_field(n, "status"),
            if leader { " (leader)" } else { "" },
            str_field(n, "advertise_addr"),
            str_field(n, "data_path_addr"),
        ));
    }
    let roles: Vec<(String, String)> = nodes
        .iter()
        .map(|n| {
            (
                str_field(n, "hostname").to_owned(),
                str_field(n, "role").to_owned(),
            )
        })
        .collect();
    for (host, want) in [
        ("h1", "manager"),
        ("h2", "manager"),
        ("h3", "manager"),
        ("h4", "worker"),
        ("h5", "worker"),
    ] {
        if !roles.iter().any(|(h, r)| h == host && r == want) {
            bail!("expected {host} to be a {want}; node ls shows {roles:?}");
        }
    }

    step(6, "creating three overlay networks ...");
    demo_cli(
        lab.host(3),
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--opt",
            "encrypted",
            "frontend",
        ],
        None,
    )?;
    demo_cli(
        lab.host(1),
        &["network", "create", "-d", "overlay", "backend"],
        None,
    )?;
    demo_cli(
        h1,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.30.9.0/24",
            "--gateway",
            "10.30.9.99",
            "legacy",
        ],
        None,
    )?;

    step(7, "waiting until every host lists the 3 networks ...");
    let want: BTreeSet<&str> = ["backend", "frontend", "legacy"].into();
    let mut networks = Vec::new();
    for h in lab.hosts() {
        networks = wait_for(
            &format!("{} to list networks {want:?}", h.name()),
            Duration::from_secs(60),
            || {
                let v = h.cli_json(&["network", "ls", "--format", "json"])?;
                let nets = v.as_array().ok_or_else(|| {
                    anyhow!("`network ls --format json` did not print an array: {v}")
                })?;
                let names: BTreeSet<&str> = nets.iter().map(|n| str_field(n, "name")).collect();
                if names == want && nets.len() == want.len() {
                    Ok(Some(nets.clone()))
                } else {
                    bail!("networks {names:?}")
                }
            },
        )?;
        say(format!("    {}: {} networks", h.name(), networks.len()));
    }
    check_networks(&networks)?;

    let h5 = lab.host(4);
    say("");
    demo_cli(h5, &["node", "ls"], None)?;
    say("");
    demo_cli(h5, &["network", "ls"], None)?;
    say("");

    traffic(lab)?;
    demo_services::services(lab)?;
    Ok(())
}

/// What the demo's server sends last.
const DEMO_MARKER: &str = "hello from api over the overlay";

/// Kills a background process when dropped.
struct Background(std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// VXLAN packets (UDP to port 4789) in a capture.
fn vxlan_count(pcap: &[u8]) -> anyhow::Result<usize> {
    Ok(parse_pcap(pcap)?
        .packets
        .iter()
        .filter_map(|p| Ipv4Packet::from_ethernet(&p.data).and_then(|ip| ip.ports()))
        .filter(|(_, dst)| *dst == 4789)
        .count())
}

/// Endpoints on two hosts talk over the overlay, and the captures show which link carried it.
fn traffic(lab: &Lab) -> anyhow::Result<()> {
    step(
        8,
        "endpoints on h2 (a manager) and h5 (a worker) talk over `backend` ...",
    );
    let capdir = lab.dir().join("captures");
    std::fs::create_dir_all(&capdir)?;
    let data = Capture::start(
        lab.lab_netns(),
        DATA_BRIDGE,
        "udp port 4789",
        &capdir.join("data.pcap"),
    )?;
    let ctl = Capture::start(
        lab.lab_netns(),
        CTL_BRIDGE,
        "udp port 4789",
        &capdir.join("ctl.pcap"),
    )?;
    let (h2, h5) = (lab.host(1), lab.host(4));
    demo_cli(
        h2,
        &[
            "endpoint",
            "create",
            "--network",
            "backend",
            "--name",
            "api",
        ],
        None,
    )?;
    demo_cli(
        h5,
        &[
            "endpoint",
            "create",
            "--network",
            "backend",
            "--name",
            "web",
        ],
        None,
    )?;
    let api = h2.cli_json(&["endpoint", "inspect", "api", "--format", "json"])?;
    let api_ip = api
        .get(0)
        .map(|e| str_field(e, "ip").to_owned())
        .ok_or_else(|| anyhow!("`endpoint inspect api` printed no endpoint: {api}"))?;
    say("");
    demo_cli(h5, &["endpoint", "ls"], None)?;
    say("");
    wait_for("web to reach api", Duration::from_secs(20), || {
        let out = h5.cli(&["exec", "web", "--", "ping", "-c", "1", "-W", "1", &api_ip]);
        Ok(out.success().then_some(()))
    })?;
    demo_cli(
        h5,
        &["exec", "web", "--", "ping", "-c", "3", "-i", "0.2", &api_ip],
        None,
    )?;
    let server_code = secnet_lab::traffic::tcp_server(&api_ip, 20000, DEMO_MARKER);
    say(format!(
        "    h2$ secnet exec api -- python3 -c '<a tiny TCP server on {api_ip}:8080>' &"
    ));
    let mut server = std::process::Command::new(bin_dir()?.join("secnet"));
    server
        .arg("--socket")
        .arg(h2.socket())
        .args(["exec", "api", "--", "python3", "-c", &server_code])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _server = Background(server.spawn().context("starting the server in api")?);
    let client_code = secnet_lab::traffic::tcp_client(&api_ip, DEMO_MARKER);
    say(format!(
        "    h5$ secnet exec web -- python3 -c '<fetch http://{api_ip}:8080/>'"
    ));
    let page = h5.cli_ok(&["exec", "web", "--", "python3", "-c", &client_code])?;
    say_indented(page.trim(), "      ");
    if page.trim() != secnet_lab::traffic::tcp_expected(20000, DEMO_MARKER) {
        bail!("the page did not arrive: {page}");
    }

    step(9, "where the packets went ...");
    let data_pkts = vxlan_count(&data.stop()?)?;
    let ctl_pkts = vxlan_count(&ctl.stop()?)?;
    say(format!(
        "    data segment ({DATA_NET}/24, the hosts' eth1): {data_pkts} VXLAN packets"
    ));
    say(format!(
        "    control segment ({CTL_NET}/24, the hosts' eth0): {ctl_pkts} VXLAN packets"
    ));
    if data_pkts == 0 || ctl_pkts != 0 {
        bail!(
            "VXLAN should cross only the data segment: {data_pkts} on data, {ctl_pkts} on control"
        );
    }
    say("");
    encrypted(lab)?;
    Ok(())
}

/// Bytes of the ASCII string `s` as the hex pattern `ping -p` takes (at most 16 bytes).
fn ping_pattern(s: &str) -> String {
    s.bytes().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A marker over the encrypted `frontend` and the plain `backend`, captured on the data link:
/// invisible in the first, visible in the second.
fn encrypted(lab: &Lab) -> anyhow::Result<()> {
    step(
        10,
        "a marker over the encrypted `frontend` and over the plain `backend`, captured on the data link ...",
    );
    let (h2, h5) = (lab.host(1), lab.host(4));
    demo_cli(
        h2,
        &[
            "endpoint",
            "create",
            "--network",
            "frontend",
            "--name",
            "vault",
        ],
        None,
    )?;
    demo_cli(
        h5,
        &[
            "endpoint",
            "create",
            "--network",
            "frontend",
            "--name",
            "teller",
        ],
        None,
    )?;
    let ip_of = |host: &Host, name: &str| -> anyhow::Result<String> {
        let v = host.cli_json(&["endpoint", "inspect", name, "--format", "json"])?;
        v.get(0)
            .map(|e| str_field(e, "ip").to_owned())
            .ok_or_else(|| anyhow!("`endpoint inspect {name}` printed no endpoint: {v}"))
    };
    let vault_ip = ip_of(h2, "vault")?;
    let api_ip = ip_of(h2, "api")?;
    wait_for("teller to reach vault", Duration::from_secs(30), || {
        let out = h5.cli(&[
            "exec", "teller", "--", "ping", "-c", "1", "-W", "1", &vault_ip,
        ]);
        Ok(out.success().then_some(()))
    })?;
    let marker = "SECRET-MARKER-42";
    let pattern = ping_pattern(marker);
    let capdir = lab.dir().join("captures");
    let mut seen = Vec::new();
    for (network, from, to) in [
        ("frontend", "teller", &vault_ip),
        ("backend", "web", &api_ip),
    ] {
        let file = capdir.join(format!("marker-{network}.pcap"));
        let cap = Capture::start(lab.lab_netns(), DATA_BRIDGE, "", &file)?;
        demo_cli(
            h5,
            &[
                "exec", from, "--", "ping", "-c", "3", "-i", "0.2", "-p", &pattern, to,
            ],
            None,
        )?;
        let bytes = cap.stop()?;
        let found = bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
        let (vxlan, wireguard) = udp_ports(&bytes)?;
        say(format!(
            "    capture of the data link while pinging over {network}: {vxlan} VXLAN, {wireguard} WireGuard datagrams; marker {:?} {}",
            marker,
            if found { "VISIBLE" } else { "not found" }
        ));
        seen.push(found);
    }
    if seen != [false, true] {
        bail!("the marker should be invisible over frontend and visible over backend: {seen:?}");
    }
    say("");
    demo_cli(h5, &["tunnel", "ls"], None)?;
    say("");
    rotation_under_traffic(lab, &vault_ip)
}

/// `secnet key rotate` while teller pings vault every 10 ms over `frontend`: no reply lost.
fn rotation_under_traffic(lab: &Lab, vault_ip: &str) -> anyhow::Result<()> {
    step(
        11,
        "a key rotation while teller pings vault every 10 ms over `frontend` ...",
    );
    let (h1, h5) = (lab.host(0), lab.host(4));
    let count = "500";
    say(format!(
        "    h5$ secnet exec teller -- ping -q -i 0.01 -c {count} {vault_ip} &"
    ));
    let mut pinger = std::process::Command::new(bin_dir()?.join("secnet"));
    pinger
        .arg("--socket")
        .arg(h5.socket())
        .args([
            "exec", "teller", "--", "ping", "-q", "-i", "0.01", "-c", count, "-W", "2", vault_ip,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let pinger = pinger.spawn().context("starting the ping in teller")?;
    std::thread::sleep(Duration::from_secs(1));
    demo_cli(h1, &["key", "rotate"], None)?;
    let out = pinger.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default()
        .to_string();
    say(format!("    ping: {summary}"));
    if !summary.contains(&format!("{count} packets transmitted, {count} received")) {
        bail!("the rotation lost packets: {text}");
    }
    say("");
    demo_cli(h5, &["tunnel", "ls"], None)?;
    say("");
    Ok(())
}

/// (VXLAN, WireGuard) datagrams in a capture.
fn udp_ports(pcap: &[u8]) -> anyhow::Result<(usize, usize)> {
    let ports: Vec<(u16, u16)> = parse_pcap(pcap)?
        .packets
        .iter()
        .filter_map(|p| Ipv4Packet::from_ethernet(&p.data).and_then(|ip| ip.ports()))
        .collect();
    Ok((
        ports.iter().filter(|(_, d)| *d == 4789).count(),
        ports.iter().filter(|(_, d)| *d == 51820).count(),
    ))
}

/// Checks the properties the demo asked for.
fn check_networks(networks: &[Value]) -> anyhow::Result<()> {
    let get = |name: &str| {
        networks
            .iter()
            .find(|n| str_field(n, "name") == name)
            .ok_or_else(|| anyhow!("network {name} missing"))
    };
    let in_pool = |n: &Value| {
        let s = str_field(n, "subnet");
        s.starts_with("10.20.") && s.ends_with("/26")
    };
    let frontend = get("frontend")?;
    let backend = get("backend")?;
    let legacy = get("legacy")?;
    for n in [frontend, backend, legacy] {
        if str_field(n, "driver") != "overlay" {
            bail!("network is not an overlay: {n}");
        }
    }
    if frontend.get("encrypted").and_then(Value::as_bool) != Some(true) {
        bail!("frontend should be encrypted: {frontend}");
    }
    if backend.get("encrypted").and_then(Value::as_bool) == Some(true) {
        bail!("backend should not be encrypted: {backend}");
    }
    if !in_pool(frontend) || !in_pool(backend) {
        bail!(
            "frontend/backend subnets should be /26 blocks of 10.20.0.0/16: {frontend} {backend}"
        );
    }
    if str_field(legacy, "subnet") != "10.30.9.0/24"
        || !str_field(legacy, "gateway").starts_with("10.30.9.99")
    {
        bail!("legacy should have subnet 10.30.9.0/24 and gateway 10.30.9.99: {legacy}");
    }
    say(format!(
        "    frontend {} (encrypted), backend {}, legacy {} gateway {}",
        str_field(frontend, "subnet"),
        str_field(backend, "subnet"),
        str_field(legacy, "subnet"),
        str_field(legacy, "gateway")
    ));
    Ok(())
}

mod demo_services;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_masking() {
        assert_eq!(
            mask_token("SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"),
            "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awx*********************"
        );
        assert_eq!(mask_token("abcdefghijkl"), "abcdefgh****");
        assert_eq!(mask_token("ab"), "ab***");
        assert_eq!(mask_token("x-"), "x-***");
        assert!(!mask_token("A-B-secretsecret").contains("secretsecret"));
    }

    #[test]
    fn tokens_in_output_are_masked() {
        let out = "To add a worker, run:\n\n    secnet join --token SNTKN-1-abcdef0123-s3cr3tS3CR3Ts3cr3t 192.0.2.11:2377\n";
        let masked = mask_tokens_in(out);
        assert!(!masked.contains("S3CR3T"), "{masked}");
        assert!(
            masked.contains("    secnet join --token SNTKN-1-abcdef0123-s3cr*"),
            "{masked}"
        );
        assert!(masked.contains(" 192.0.2.11:2377"), "{masked}");
        assert!(!is_token_like("10.20.0.0/16"));
        assert!(!is_token_like("--advertise-addr"));
        assert!(!is_token_like("a02a2b4c51adb90083de883a"));
    }

    #[test]
    fn cli_parses() {
        let a = Args::try_parse_from([
            "secnet-lab",
            "up",
            "--hosts",
            "4",
            "--daemon-arg",
            "--log-level=debug",
        ])
        .expect("parse");
        match a.cmd {
            Cmd::Up {
                hosts, daemon_args, ..
            } => {
                assert_eq!(hosts, 4);
                assert_eq!(daemon_args, ["--log-level=debug"]);
            }
            other => panic!("{other:?}"),
        }
        let a = Args::try_parse_from(["secnet-lab", "down"]).expect("parse");
        assert!(matches!(a.cmd, Cmd::Down { ref prefix } if prefix == "snl"));
        let a = Args::try_parse_from(["secnet-lab", "demo", "--keep"]).expect("parse");
        assert!(matches!(a.cmd, Cmd::Demo { keep: true, .. }));
    }
}
