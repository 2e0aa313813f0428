//! The lab itself: namespaces, links, daemons.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd::{run, run_with_timeout, shell_quote, wait_for, CmdOutput, Fatal};
use crate::netns::{
    delete_netns, ip, ip_batch, ip_bin, netns_exists, sysctl, unique_prefix, MARKER_FILE,
    NAME_PREFIX,
};

/// Interface of every host on the control segment.
pub const CTL_IFACE: &str = "eth0";
/// Interface of every host on the data segment.
pub const DATA_IFACE: &str = "eth1";
/// Bridge of the control segment (in the lab namespace).
pub const CTL_BRIDGE: &str = "ctl0";
/// Bridge of the data segment (in the lab namespace).
pub const DATA_BRIDGE: &str = "data0";
/// Control segment: host `hN` has `192.0.2.(10+N)/24` on `eth0`.
pub const CTL_NET: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 0);
/// Data segment: host `hN` has `198.51.100.(10+N)/24` on `eth1`.
pub const DATA_NET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 0);
/// Prefix length of both segments.
pub const SEGMENT_PREFIX_LEN: u8 = 24;
/// MTU of every lab link.
pub const LINK_MTU: u32 = 1500;
/// Most hosts a lab can have (addresses .11 ..= .250).
pub const MAX_HOSTS: usize = 240;

/// How long [`Host::start_daemon`] / [`Lab::start_all`] wait for the socket.
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`Host::stop_daemon`] waits after SIGTERM before SIGKILL.
pub const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dropping a [`Lab`] waits after SIGTERM before SIGKILL.
pub const DROP_STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one [`Host::cli`] call.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of daemon log included in [`Host::cli_ok`] errors.
pub const LOG_TAIL_LINES: usize = 40;

/// Environment variable: directory holding `secnetd` and `secnet`.
pub const BIN_DIR_ENV: &str = "SECNET_BIN_DIR";
/// Environment variable: `1` keeps a dropped lab's temp dir (logs, state).
pub const KEEP_ENV: &str = "SECNET_LAB_KEEP";

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// Number of hosts (1 ..= [`MAX_HOSTS`]).
    pub hosts: usize,
    /// Name prefix of the lab's namespaces; `None` picks a unique `snlXXXXX`.
    /// A prefix not starting with `snl` gets `snl-` prepended.
    pub name_prefix: Option<String>,
    /// Extra arguments for every `secnetd`.
    pub daemon_args: Vec<String>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            hosts: 3,
            name_prefix: None,
            daemon_args: Vec::new(),
        }
    }
}

impl LabConfig {
    /// `hosts` hosts, unique prefix, no extra daemon arguments.
    pub fn new(hosts: usize) -> Self {
        LabConfig {
            hosts,
            ..LabConfig::default()
        }
    }
}

/// Directory holding the `secnetd` and `secnet` binaries: `$SECNET_BIN_DIR`,
/// else the directory of the running executable if it holds `secnetd`, else
/// its parent (test binaries live in `target/<profile>/deps`).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.join("secnetd").is_file() {
            bail!(
                "{BIN_DIR_ENV}={} does not contain a `secnetd` binary; run `cargo build --bins` or fix {BIN_DIR_ENV}",
                dir.display()
            );
        }
        return Ok(dir);
    }
    let exe = std::env::current_exe().context("cannot find the current executable")?;
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        if dir.join("secnetd").is_file() {
            return Ok(dir.to_path_buf());
        }
        tried.push(dir.display().to_string());
    }
    bail!(
        "cannot find the `secnetd` binary (looked in {}); run `cargo build --bins` first, or point {BIN_DIR_ENV} at the directory holding `secnetd` and `secnet`",
        tried.join(" and ")
    )
}

/// One test host: a network namespace with `eth0` on the control segment and
/// `eth1` on the data segment, plus (optionally) a running `secnetd`.
#[derive(Debug)]
pub struct Host {
    index: usize,
    name: String,
    netns: String,
    ctl_ip: Ipv4Addr,
    data_ip: Ipv4Addr,
    dir: PathBuf,
    state_dir: PathBuf,
    socket: PathBuf,
    log_path: PathBuf,
    daemon_args: Vec<String>,
    bin_dir: Option<PathBuf>,
    child: Option<Child>,
}

impl Host {
    /// Short name: `h1`, `h2`, ...
    pub fn name(&self) -> &str {
        &self.name
    }
    /// 1-based host number (`h3` is 3).
    pub fn number(&self) -> usize {
        self.index
    }
    /// Full network namespace name (`<prefix>-h1`).
    pub fn netns(&self) -> &str {
        &self.netns
    }
    /// Address of `eth0` on the control segment (`192.0.2.(10+N)`).
    pub fn ctl_ip(&self) -> Ipv4Addr {
        self.ctl_ip
    }
    /// Address of `eth1` on the data segment (`198.51.100.(10+N)`).
    pub fn data_ip(&self) -> Ipv4Addr {
        self.data_ip
    }
    /// Name of this host's port on the control bridge, in the lab namespace (`c1`).
    pub fn ctl_port(&self) -> String {
        format!("c{}", self.index)
    }
    /// Name of this host's port on the data bridge, in the lab namespace (`d1`).
    pub fn data_port(&self) -> String {
        format!("d{}", self.index)
    }
    /// Unix socket of this host's `secnetd`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
    /// State directory of this host's `secnetd`.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
    /// Log file of this host's `secnetd` (stdout and stderr, appended).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    /// This host's directory inside the lab dir (holds state dir, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Extra `secnetd` arguments used by [`Host::start_daemon`].
    pub fn daemon_args(&self) -> &[String] {
        &self.daemon_args
    }
    /// Replaces the extra `secnetd` arguments (takes effect on next start).
    pub fn set_daemon_args(&mut self, args: Vec<String>) {
        self.daemon_args = args;
    }
    /// Uses `dir` instead of [`bin_dir()`] to find `secnetd` and `secnet`.
    pub fn set_bin_dir(&mut self, dir: impl Into<PathBuf>) {
        self.bin_dir = Some(dir.into());
    }

    fn resolve_bin_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.bin_dir {
            Some(d) => Ok(d.clone()),
            None => bin_dir(),
        }
    }

    /// Pid of the daemon started by this lab, if it is (still) running.
    pub fn daemon_pid(&mut self) -> Option<u32> {
        self.is_running()
            .then(|| self.child.as_ref().map(Child::id))?
    }

    /// True while the daemon started by this lab is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last `n` lines of the daemon log (or a note if there is none).
    pub fn log_tail(&self, n: usize) -> String {
        match fs::read(&self.log_path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(n)..].join("\n")
            }
            Err(e) => format!("(no daemon log at {}: {e})", self.log_path.display()),
        }
    }

    fn log_tail_section(&self) -> String {
        format!(
            "--- last {LOG_TAIL_LINES} lines of {}'s secnetd log ({}) ---\n{}",
            self.name,
            self.log_path.display(),
            self.log_tail(LOG_TAIL_LINES)
        )
    }

    /// Starts `secnetd` inside this host's namespace without waiting for it.
    fn spawn_daemon(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("secnetd on {} is already running", self.name);
        }
        self.child = None;
        let secnetd = self.resolve_bin_dir()?.join("secnetd");
        if !secnetd.is_file() {
            bail!(
                "{} not found; run `cargo build --bins` first",
                secnetd.display()
            );
        }
        // A socket left by a killed daemon would make us think it is up.
        match fs::remove_file(&self.socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context(format!("removing {}", self.socket.display())),
        }
        fs::create_dir_all(&self.state_dir)
            .with_context(|| format!("creating {}", self.state_dir.display()))?;

        let mut args: Vec<String> = vec![
            secnetd.display().to_string(),
            "--state-dir".into(),
            self.state_dir.display().to_string(),
            "--socket".into(),
            self.socket.display().to_string(),
            "--run-dir".into(),
            self.dir.join("run").display().to_string(),
            "--hostname".into(),
            self.name.clone(),
        ];
        args.extend(self.daemon_args.iter().cloned());

        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        writeln!(
            log,
            "=== secnet-lab: starting in netns {} at unix time {now:.3}: {}",
            self.netns,
            shell_quote(&args)
        )
        .with_context(|| format!("writing {}", self.log_path.display()))?;
        let log_err = log.try_clone().context("duplicating log file handle")?;

        // `nsenter` execs the daemon in place (the child pid is secnetd's) and keeps it in
        // our mount namespace. `ip netns exec` would work too (secnetd then joins the host's
        // mount namespace itself); `tests/e2e/user_hosts.rs` starts daemons that way, with
        // hosts made by plain `ip netns add`, so the lab's way is not the only one tested.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Own process group: a Ctrl-C in the terminal reaches secnet-lab,
            // which then stops the daemons in order.
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning secnetd for {}", self.name))?;
        tracing::debug!(host = %self.name, pid = child.id(), "secnetd spawned");
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the daemon's socket accepts a connection.
    fn wait_daemon_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let name = self.name.clone();
        let socket = self.socket.clone();
        let result = wait_for(
            &format!(
                "secnetd on {name} to accept connections on {}",
                socket.display()
            ),
            timeout,
            || {
                if let Some(child) = &mut self.child {
                    if let Some(st) = child.try_wait()? {
                        return Err(Fatal(format!("secnetd on {name} exited ({st})")).into());
                    }
                } else {
                    return Err(Fatal(format!("secnetd on {name} is not running")).into());
                }
                match UnixStream::connect(&socket) {
                    Ok(_) => Ok(Some(())),
                    Err(e) => Err(anyhow!("connect: {e}")),
                }
            },
        );
        result.map_err(|e| anyhow!("{e:#}\n{}", self.log_tail_section()))
    }

    /// Starts `nsenter --net=/run/netns/NS <bindir>/secnetd --state-dir S --socket P
    /// --hostname NAME [daemon_args]` with stdout and stderr appended to the
    /// log file, and waits (up to 20 s) until the socket accepts a connection.
    pub fn start_daemon(&mut self) -> anyhow::Result<()> {
        self.spawn_daemon()?;
        self.wait_daemon_ready(Instant::now() + DAEMON_START_TIMEOUT)
    }

    /// Sends `signal` to the daemon, waits up to `grace` for it to exit, then
    /// SIGKILLs it. Returns the exit code.
    fn signal_and_reap(&mut self, signal: Signal, grace: Duration) -> anyhow::Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(st) = child.try_wait()? {
            return Ok(Some(crate::cmd::exit_code(st)));
        }
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait()? {
                return Ok(Some(crate::cmd::exit_code(st)));
            }
            thread::sleep(Duration::from_millis(20));
        }
        if signal != Signal::SIGKILL {
            tracing::warn!(host = %self.name, "secnetd ignored {signal}; sending SIGKILL");
            self.append_log_note(&format!("did not exit {grace:?} after {signal}; SIGKILL"));
        }
        let _ = child.kill();
        let st = child
            .wait()
            .with_context(|| format!("waiting for secnetd on {}", self.name))?;
        Ok(Some(crate::cmd::exit_code(st)))
    }

    fn append_log_note(&self, note: &str) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path) {
            let _ = writeln!(f, "=== secnet-lab: {note}");
        }
    }

    /// Stops the daemon: SIGTERM, wait up to 5 s, then SIGKILL. No-op when
    /// it is not running.
    pub fn stop_daemon(&mut self) -> anyhow::Result<()> {
        if let Some(code) = self.signal_and_reap(Signal::SIGTERM, DAEMON_STOP_TIMEOUT)? {
            self.append_log_note(&format!("stopped, exit code {code}"));
        }
        Ok(())
    }

    /// SIGKILLs the daemon at once (crash simulation). No-op when it is not
    /// running. The socket file stays behind, like after a real crash.
    pub fn kill_daemon(&mut self) -> anyhow::Result<()> {
        if self
            .signal_and_reap(Signal::SIGKILL, Duration::from_secs(5))?
            .is_some()
        {
            self.append_log_note("killed with SIGKILL");
        }
        Ok(())
    }

    /// Runs `<bindir>/secnet --socket P args...` (from the root namespace: the
    /// CLI only talks to the unix socket), killed after [`CLI_TIMEOUT`].
    pub fn cli(&self, args: &[&str]) -> CmdOutput {
        self.cli_timeout(args, CLI_TIMEOUT)
    }

    /// [`Host::cli`] with an explicit timeout.
    pub fn cli_timeout(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let secnet = match self.resolve_bin_dir() {
            Ok(d) => d.join("secnet"),
            Err(e) => return CmdOutput::not_started(format!("{e:#}")),
        };
        run_with_timeout(
            Command::new(secnet)
                .arg("--socket")
                .arg(&self.socket)
                .args(args),
            timeout,
        )
    }

    /// [`Host::cli`], returning stdout on success. The error names the host,
    /// the arguments, the exit code, stdout/stderr and the last 40 lines of
    /// the daemon log.
    pub fn cli_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.cli(args);
        if out.success() {
            return Ok(out.stdout);
        }
        Err(anyhow!(
            "`secnet {}` on {} failed with {}\n{}",
            shell_quote(args),
            self.name,
            out.describe(),
            self.log_tail_section()
        ))
    }

    /// [`Host::cli_ok`], parsing stdout as JSON.
    pub fn cli_json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let out = self.cli_ok(args)?;
        serde_json::from_str(&out).with_context(|| {
            format!(
                "`secnet {}` on {} did not print valid JSON:\n{}",
                shell_quote(args),
                self.name,
                out.trim_end()
            )
        })
    }

    fn exec_command(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new(ip_bin());
        c.args(["netns", "exec", &self.netns]).args(cmd);
        c
    }

    /// Runs `ip netns exec NS cmd...` to completion (stdin closed).
    pub fn exec(&self, cmd: &[&str]) -> CmdOutput {
        if cmd.is_empty() {
            return CmdOutput::not_started("empty command");
        }
        run(&mut self.exec_command(cmd))
    }

    /// [`Host::exec`], killed after `timeout`.
    pub fn exec_timeout(&self, cmd: &[&str], timeout: Duration) -> CmdOutput {
        if cmd.is_empty() {
            return CmdOutput::not_started("empty command");
        }
        run_with_timeout(&mut self.exec_command(cmd), timeout)
    }

    /// [`Host::exec`], returning stdout on success and an error with the
    /// command, exit code and output otherwise.
    pub fn exec_ok(&self, cmd: &[&str]) -> anyhow::Result<String> {
        let out = self.exec(cmd);
        if !out.success() {
            bail!(
                "`{}` in {} failed with {}",
                shell_quote(cmd),
                self.netns,
                out.describe()
            );
        }
        Ok(out.stdout)
    }

    /// Starts `cmd` in the background inside the namespace, with stdin
    /// closed and stdout/stderr piped (read them, or a chatty process blocks;
    /// or use [`Host::spawn_logged`]). Whatever is still running in the
    /// namespace is killed when the lab is dropped.
    pub fn spawn(&self, cmd: &[&str]) -> anyhow::Result<Child> {
        if cmd.is_empty() {
            bail!("empty command");
        }
        self.exec_command(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning `{}` in {}", shell_quote(cmd), self.netns))
    }

    /// Like [`Host::spawn`], with stdout and stderr appended to `log`.
    pub fn spawn_logged(&self, cmd: &[&str], log: &Path) -> anyhow::Result<Child> {
        if cmd.is_empty() {
            bail!("empty command");
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        self.exec_command(cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawning `{}` in {}", shell_quote(cmd), self.netns))
    }
}

/// A lab of N hosts; everything it created is removed when it is dropped.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    lab_netns: String,
    hosts: Vec<Host>,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    /// Namespaces created so far, in creation order.
    created: Vec<String>,
    /// Set by [`Lab::persist`] / after teardown: Drop does nothing.
    done: bool,
}

/// Checks a user-chosen lab prefix and returns the prefix the lab will use:
/// lowercase letters, digits, `-` and `_`; `snl-` is prepended when it does
/// not start with `snl`.
pub fn normalize_prefix(p: &str) -> anyhow::Result<String> {
    if p.is_empty()
        || !p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        bail!("bad lab prefix {p:?}: use lowercase letters, digits, '-' and '_'");
    }
    let p = if p.starts_with(NAME_PREFIX) {
        p.to_owned()
    } else {
        format!("{NAME_PREFIX}-{p}")
    };
    if p.len() > 40 {
        bail!("lab prefix {p:?} is too long (max 40 characters)");
    }
    Ok(p)
}

fn host_ip(net: Ipv4Addr, i: usize) -> Ipv4Addr {
    let [a, b, c, _] = net.octets();
    Ipv4Addr::new(a, b, c, (10 + i) as u8)
}

impl Lab {
    /// Builds the lab namespace with its two bridges and `cfg.hosts` host
    /// namespaces wired to them. Does not start daemons. Anything created
    /// before a failure is removed again.
    pub fn new(cfg: LabConfig) -> anyhow::Result<Lab> {
        if cfg.hosts == 0 || cfg.hosts > MAX_HOSTS {
            bail!("a lab needs 1 to {MAX_HOSTS} hosts, not {}", cfg.hosts);
        }
        let prefix = match &cfg.name_prefix {
            Some(p) => normalize_prefix(p)?,
            None => unique_prefix(),
        };
        let lab_netns = format!("{prefix}-lab");
        if netns_exists(&lab_netns) {
            bail!(
                "namespace {lab_netns} already exists: another lab uses prefix {prefix:?} (remove leftovers with `secnet-lab down --prefix {prefix}`)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .context("creating the lab temp dir")?;
        let dir_path = dir.path().to_path_buf();
        fs::write(dir_path.join(MARKER_FILE), format!("{prefix}\n"))
            .context("writing lab marker file")?;

        let mut lab = Lab {
            prefix,
            lab_netns,
            hosts: Vec::new(),
            dir: Some(dir),
            dir_path,
            created: Vec::new(),
            done: false,
        };
        // On error, dropping `lab` removes whatever was created so far.
        lab.build(&cfg)?;
        Ok(lab)
    }

    fn add_netns(&mut self, name: &str) -> anyhow::Result<()> {
        ip(&["netns", "add", name])?;
        self.created.push(name.to_owned());
        Ok(())
    }

    fn build(&mut self, cfg: &LabConfig) -> anyhow::Result<()> {
        let lab_ns = self.lab_netns.clone();
        self.add_netns(&lab_ns)?;
        // No IPv6 on the segments: keeps captures free of ND/MLD noise.
        sysctl(
            &lab_ns,
            &[
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        let mut script = String::from("link set lo up\n");
        for br in [CTL_BRIDGE, DATA_BRIDGE] {
            let _ = writeln!(
                script,
                "link add {br} mtu {LINK_MTU} type bridge stp_state 0"
            );
            let _ = writeln!(script, "link set {br} up");
        }
        ip_batch(Some(&lab_ns), &script)?;

        let mut ports = String::new();
        for i in 1..=cfg.hosts {
            let name = format!("h{i}");
            let netns = format!("{}-{name}", self.prefix);
            let dir = self.dir_path.join(&name);
            let state_dir = dir.join("state");
            fs::create_dir_all(&state_dir)
                .with_context(|| format!("creating {}", state_dir.display()))?;
            fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o700))?;
            let socket = dir.join("secnetd.sock");
            if socket.as_os_str().len() >= 108 {
                bail!(
                    "unix socket path {} is too long; set TMPDIR to a shorter directory",
                    socket.display()
                );
            }
            let host = Host {
                index: i,
                ctl_ip: host_ip(CTL_NET, i),
                data_ip: host_ip(DATA_NET, i),
                log_path: dir.join("secnetd.log"),
                socket,
                state_dir,
                dir,
                daemon_args: cfg.daemon_args.clone(),
                bin_dir: None,
                child: None,
                netns: netns.clone(),
                name,
            };
            self.add_netns(&netns)?;
            let (c, d) = (host.ctl_port(), host.data_port());
            ip_batch(
                Some(&netns),
                &format!(
                    "link set lo up\n\
                     link add {CTL_IFACE} mtu {LINK_MTU} type veth peer name {c} mtu {LINK_MTU} netns {lab_ns}\n\
                     link add {DATA_IFACE} mtu {LINK_MTU} type veth peer name {d} mtu {LINK_MTU} netns {lab_ns}\n"
                ),
            )?;
            sysctl(
                &netns,
                &[
                    &format!("net.ipv6.conf.{CTL_IFACE}.disable_ipv6=1"),
                    &format!("net.ipv6.conf.{DATA_IFACE}.disable_ipv6=1"),
                ],
            )?;
            ip_batch(
                Some(&netns),
                &format!(
                    "addr add {}/{SEGMENT_PREFIX_LEN} dev {CTL_IFACE}\n\
                     addr add {}/{SEGMENT_PREFIX_LEN} dev {DATA_IFACE}\n\
                     link set {CTL_IFACE} up\n\
                     link set {DATA_IFACE} up\n",
                    host.ctl_ip, host.data_ip
                ),
            )?;
            let _ = writeln!(ports, "link set {c} master {CTL_BRIDGE} up");
            let _ = writeln!(ports, "link set {d} master {DATA_BRIDGE} up");
            self.hosts.push(host);
        }
        ip_batch(Some(&lab_ns), &ports)?;
        Ok(())
    }

    /// Host `i`, 0-based (`lab.host(0)` is `h1`). Panics when out of range.
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }
    /// Mutable host `i`, 0-based (to start/stop/kill its daemon).
    pub fn host_mut(&mut self, i: usize) -> &mut Host {
        &mut self.hosts[i]
    }
    /// All hosts, `h1` first.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// All hosts, mutable.
    pub fn hosts_mut(&mut self) -> &mut [Host] {
        &mut self.hosts
    }
    /// The lab's temp dir (one subdir per host with state dir, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }
    /// Name prefix of every namespace of this lab.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The namespace holding the bridges `ctl0` and `data0` and the host
    /// ports `cN`/`dN` (capture there to see the wire).
    pub fn lab_netns(&self) -> &str {
        &self.lab_netns
    }
    /// Every namespace of this lab (lab namespace first).
    pub fn namespaces(&self) -> Vec<String> {
        self.created.clone()
    }
    /// Uses `dir` instead of [`bin_dir()`] for every host.
    pub fn set_bin_dir(&mut self, dir: impl Into<PathBuf>) {
        let dir = dir.into();
        for h in &mut self.hosts {
            h.set_bin_dir(dir.clone());
        }
    }

    /// Starts `secnetd` on every host (all at once) and waits until every
    /// socket accepts a connection (deadline 20 s).
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for h in &mut self.hosts {
            h.spawn_daemon()?;
        }
        let deadline = Instant::now() + DAEMON_START_TIMEOUT;
        for h in &mut self.hosts {
            h.wait_daemon_ready(deadline)?;
        }
        Ok(())
    }

    /// Joins host `i` (control on eth0, data path on eth1) through the manager on host `via`
    /// with `token`, by the real CLI; returns what `secnet join` printed.
    pub fn join(&self, i: usize, via: usize, token: &str) -> anyhow::Result<String> {
        let remote = format!("{}:2377", self.host(via).ctl_ip());
        self.host(i).cli_ok(&[
            "join",
            "--token",
            token,
            "--advertise-addr",
            "eth0",
            "--data-path-addr",
            "eth1",
            &remote,
        ])
    }

    /// Forms a cluster of the first `hosts` hosts through the real CLI: host 0 runs `init`
    /// (control on eth0, data path on eth1, then `init_extra`), hosts `1..managers` join as
    /// managers and the rest as workers; returns once each of them lists `hosts` ready nodes
    /// (10 s plus 1 s per host each).
    pub fn form_cluster(
        &self,
        hosts: usize,
        managers: usize,
        init_extra: &[&str],
    ) -> anyhow::Result<()> {
        let first = self.host(0);
        let mut init = vec![
            "init",
            "--advertise-addr",
            "eth0",
            "--data-path-addr",
            "eth1",
        ];
        init.extend_from_slice(init_extra);
        first.cli_ok(&init)?;
        let token = |role: &str| -> anyhow::Result<String> {
            Ok(first
                .cli_ok(&["join-token", role, "-q"])?
                .trim()
                .to_string())
        };
        let (manager, worker) = (token("manager")?, token("worker")?);
        for i in 1..hosts {
            let token = if i < managers { &manager } else { &worker };
            self.join(i, 0, token)
                .with_context(|| format!("joining host {i}"))?;
        }
        let deadline = Duration::from_secs(10 + hosts as u64);
        for i in 0..hosts {
            let host = self.host(i);
            wait_for(
                &format!("{hosts} ready nodes seen by {}", host.name()),
                deadline,
                || {
                    let v = host.cli_json(&["node", "ls", "--format", "json"])?;
                    let nodes = v
                        .as_array()
                        .ok_or_else(|| anyhow!("`node ls` did not print an array: {v}"))?;
                    let ready = nodes.iter().filter(|n| n["status"] == "ready").count();
                    if ready == hosts {
                        Ok(Some(()))
                    } else {
                        bail!("{ready} of {hosts} ready")
                    }
                },
            )?;
        }
        Ok(())
    }

    /// Stops every daemon (SIGTERM, then SIGKILL after `grace`), in parallel.
    pub fn stop_all(&mut self, grace: Duration) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        thread::scope(|s| {
            let handles: Vec<_> = self
                .hosts
                .iter_mut()
                .filter(|h| h.child.is_some())
                .map(|h| s.spawn(move || h.signal_and_reap(Signal::SIGTERM, grace)))
                .collect();
            for handle in handles {
                match handle.join() {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => errors.push(format!("{e:#}")),
                    Err(_) => errors.push("a stop thread panicked".to_owned()),
                }
            }
        });
        if !errors.is_empty() {
            bail!("stopping daemons: {}", errors.join("; "));
        }
        Ok(())
    }

    /// Tears the lab down now, reporting errors (dropping does the same but
    /// can only print them).
    pub fn teardown(mut self) -> anyhow::Result<()> {
        let errors = self.cleanup();
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("lab {} teardown: {}", self.prefix, errors.join("; "))
        }
    }

    /// Leaves everything in place (namespaces, running daemons, temp dir)
    /// and returns the temp dir. Clean up later with `secnet-lab down
    /// --prefix <prefix>` / [`crate::down_all`].
    pub fn persist(mut self) -> PathBuf {
        self.done = true;
        for h in &mut self.hosts {
            // Dropping a `Child` neither kills nor waits for it.
            h.child = None;
        }
        match self.dir.take() {
            Some(d) => d.keep(),
            None => self.dir_path.clone(),
        }
    }

    fn cleanup(&mut self) -> Vec<String> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let mut errors = Vec::new();
        if let Err(e) = self.stop_all(DROP_STOP_TIMEOUT) {
            errors.push(format!("{e:#}"));
        }
        // Host namespaces first (their veths go with them), lab last.
        for ns in self.created.iter().rev() {
            if let Err(e) = delete_netns(ns) {
                errors.push(format!("{e:#}"));
            }
        }
        // Namespaces the daemons made (bind mounts under their run dirs) and whatever runs
        // in them.
        errors.extend(crate::netns::release_mounts_under(&self.dir_path));
        if let Some(dir) = self.dir.take() {
            if std::env::var(KEEP_ENV).is_ok_and(|v| v == "1") {
                let path = dir.keep();
                let _ = fs::remove_file(path.join(MARKER_FILE));
                eprintln!(
                    "secnet-lab: {KEEP_ENV}=1: keeping lab directory {}",
                    path.display()
                );
            } else if let Err(e) = dir.close() {
                errors.push(format!("removing {}: {e}", self.dir_path.display()));
            }
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for e in self.cleanup() {
            eprintln!("secnet-lab: cleanup of lab {}: {e}", self.prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("snlfoo").ok().as_deref(), Some("snlfoo"));
        assert_eq!(normalize_prefix("e2e").ok().as_deref(), Some("snl-e2e"));
        assert!(normalize_prefix("").is_err());
        assert!(normalize_prefix("a b").is_err());
        assert!(normalize_prefix("UPPER").is_err());
        assert!(normalize_prefix(&"x".repeat(50)).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(host_ip(CTL_NET, 1), Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(host_ip(DATA_NET, 5), Ipv4Addr::new(198, 51, 100, 15));
        assert_eq!(host_ip(CTL_NET, MAX_HOSTS), Ipv4Addr::new(192, 0, 2, 250));
    }

    #[test]
    fn zero_hosts_rejected() {
        assert!(Lab::new(LabConfig::new(0)).is_err());
        assert!(Lab::new(LabConfig::new(MAX_HOSTS + 1)).is_err());
    }
}
