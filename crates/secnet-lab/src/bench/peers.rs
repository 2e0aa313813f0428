//! The peers secnet is measured against: kernel VXLAN inside a userspace WireGuard tunnel
//! made by wireguard-go (Debian's package) or boringtun-cli (crates.io), configured with
//! `wg` through their UAPI sockets, in two bare lab hosts on the same data segment.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::{host_ns, ns_command, ns_ok, Background};
use crate::cmd::{run_with_timeout, wait_for, Fatal};
use crate::lab::Host;

/// The boringtun-cli version the bed installs and expects.
pub(crate) const BORINGTUN_VERSION: &str = "0.7.1";
/// Environment variable: where the bed installs boringtun-cli (`<dir>/bin/boringtun-cli`).
pub(crate) const TOOLS_ENV: &str = "SECNET_BENCH_TOOLS";
/// Where userspace WireGuard implementations put their UAPI sockets.
const UAPI_DIR: &str = "/var/run/wireguard";
/// MTU of the peers' WireGuard interfaces: the underlay's 1500 less 60 for WireGuard over
/// IPv4, as secnet's tunnel budgets it, so that every encrypted path carries the same inner
/// MTU (1390 after VXLAN's 50).
const WG_MTU: u32 = 1440;
/// MTU of the peers' VXLAN devices.
const VXLAN_MTU: u32 = WG_MTU - 50;
/// How long a peer may take to come up and carry a ping.
const PEER_UP: Duration = Duration::from_secs(20);

/// Which userspace WireGuard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerKind {
    WireguardGo,
    Boringtun,
}

impl PeerKind {
    fn letter(self) -> char {
        match self {
            PeerKind::WireguardGo => 'g',
            PeerKind::Boringtun => 'b',
        }
    }
    fn binary(self) -> &'static str {
        match self {
            PeerKind::WireguardGo => "wireguard-go",
            PeerKind::Boringtun => "boringtun-cli",
        }
    }
}

/// A short tag from a lab prefix for interface (and so UAPI socket) names: the UAPI
/// directory is shared by every namespace, so two benches must not pick the same names.
pub(crate) fn iface_tag(prefix: &str) -> String {
    let alnum: Vec<char> = prefix.chars().filter(char::is_ascii_alphanumeric).collect();
    alnum[alnum.len().saturating_sub(7)..].iter().collect()
}

/// `w<tag><g|b><side>`: at most 10 characters (interface names stop at 15).
fn iface_name(tag: &str, kind: PeerKind, side: usize) -> String {
    format!("w{tag}{}{side}", kind.letter())
}

/// Removes the UAPI sockets of interfaces named with `tag` (left by killed daemons).
pub(crate) fn remove_sockets(tag: &str) {
    let Ok(entries) = std::fs::read_dir(UAPI_DIR) else {
        return;
    };
    let start = format!("w{tag}");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&start) && name.ends_with(".sock") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The binaries one peer needs.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub daemon: PathBuf,
    pub wg: PathBuf,
    /// What `--version` says.
    pub version: String,
}

/// Directory the bed installs boringtun-cli into: `$SECNET_BENCH_TOOLS`, else the
/// workspace's `target/bench-tools`.
pub(crate) fn tools_dir() -> PathBuf {
    match std::env::var_os(TOOLS_ENV).filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-tools"),
    }
}

/// `name` on `$PATH` or in one of `extra` directories.
fn which(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn cargo_bin() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let mut extra: Vec<PathBuf> = home.into_iter().map(|h| h.join("bin")).collect();
    extra.push(PathBuf::from("/root/.cargo/bin"));
    which("cargo", &extra)
}

fn version_of(bin: &Path) -> String {
    let out = run_with_timeout(Command::new(bin).arg("--version"), Duration::from_secs(10));
    out.stdout
        .lines()
        .chain(out.stderr.lines())
        .find(|l| !l.trim().is_empty())
        .unwrap_or("unknown version")
        .trim()
        .to_owned()
}

/// Runs an installer, reporting what happened.
fn install(what: &str, cmd: &mut Command, timeout: Duration) -> Result<(), String> {
    super::say(format!("    installing {what} (this can take minutes) ..."));
    let out = run_with_timeout(cmd.env("DEBIAN_FRONTEND", "noninteractive"), timeout);
    if out.success() {
        Ok(())
    } else {
        let tail: Vec<&str> = out.stderr.lines().rev().take(5).collect();
        Err(format!(
            "installing {what} failed (exit {}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ))
    }
}

fn apt_install(pkgs: &[&str]) -> Result<(), String> {
    let Some(apt) = which("apt-get", &[]) else {
        return Err(format!(
            "{} missing and no apt-get to install it",
            pkgs.join(", ")
        ));
    };
    let what = format!("{} (apt-get)", pkgs.join(" "));
    let mut cmd = Command::new(&apt);
    cmd.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(pkgs);
    if install(&what, &mut cmd, Duration::from_secs(600)).is_ok() {
        return Ok(());
    }
    // An old package list: update once and try again.
    let _ = run_with_timeout(
        Command::new(&apt).args(["update", "-qq"]),
        Duration::from_secs(600),
    );
    let mut cmd = Command::new(&apt);
    cmd.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(pkgs);
    install(&what, &mut cmd, Duration::from_secs(600))
}

/// Finds (and where missing and `install` is set, installs) what a peer needs. The error
/// is the note the results table shows.
pub(crate) fn find_tools(kind: PeerKind, install_missing: bool) -> Result<Tools, String> {
    let tools = tools_dir().join("bin");
    let extra = [tools.clone()];
    let missing_debs: Vec<&str> = match kind {
        PeerKind::WireguardGo => [("wireguard-go", "wireguard-go"), ("wg", "wireguard-tools")]
            .iter()
            .filter(|(bin, _)| which(bin, &[]).is_none())
            .map(|(_, pkg)| *pkg)
            .collect(),
        PeerKind::Boringtun => [("wg", "wireguard-tools")]
            .iter()
            .filter(|(bin, _)| which(bin, &[]).is_none())
            .map(|(_, pkg)| *pkg)
            .collect(),
    };
    if !missing_debs.is_empty() {
        if !install_missing {
            return Err(format!(
                "not installed ({}; --no-install given)",
                missing_debs.join(", ")
            ));
        }
        apt_install(&missing_debs)?;
    }
    let wg = which("wg", &[]).ok_or("`wg` (wireguard-tools) not found after installing")?;
    let daemon = match which(kind.binary(), &extra) {
        Some(d) => d,
        None if kind == PeerKind::Boringtun && install_missing => {
            let cargo = cargo_bin().ok_or("boringtun-cli missing and no cargo to install it")?;
            install(
                &format!("boringtun-cli {BORINGTUN_VERSION} (cargo install)"),
                Command::new(cargo)
                    .args(["install", "--locked", "boringtun-cli", "--version"])
                    .arg(BORINGTUN_VERSION)
                    .arg("--root")
                    .arg(tools_dir()),
                Duration::from_secs(1800),
            )?;
            which(kind.binary(), &extra).ok_or("boringtun-cli not found after installing")?
        }
        None => {
            return Err(format!(
                "{} not installed{}",
                kind.binary(),
                if install_missing {
                    ""
                } else {
                    " (--no-install given)"
                }
            ))
        }
    };
    let version = version_of(&daemon);
    Ok(Tools {
        daemon,
        wg,
        version,
    })
}

/// Two peer daemons, each in its own lab host, with a WireGuard interface, a tunnel address
/// (100.64.0.1 and .2) and a kernel VXLAN device `vx0` (10.99.0.1 and .2) between the tunnel
/// addresses. Dropping it kills the daemons and removes their sockets.
#[derive(Debug)]
pub(crate) struct PeerPair {
    procs: Vec<Background>,
    ifnames: Vec<String>,
    /// Address of `vx0` on side 0 (client) and side 1 (server).
    pub vx_ips: [String; 2],
}

impl PeerPair {
    /// Pids of the two daemons.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(Background::pid).collect()
    }
}

impl Drop for PeerPair {
    fn drop(&mut self) {
        self.procs.clear();
        for name in &self.ifnames {
            let _ = std::fs::remove_file(Path::new(UAPI_DIR).join(format!("{name}.sock")));
        }
    }
}

fn wg_keypair(wg: &Path) -> anyhow::Result<(String, String)> {
    let out = run_with_timeout(Command::new(wg).arg("genkey"), Duration::from_secs(10));
    if !out.success() {
        bail!("`wg genkey` failed: {}", out.describe());
    }
    let private = out.stdout.trim().to_owned();
    let mut child = Command::new(wg)
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running `wg pubkey`")?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{private}").context("writing to `wg pubkey`")?;
    }
    let out = child
        .wait_with_output()
        .context("waiting for `wg pubkey`")?;
    if !out.status.success() {
        bail!("`wg pubkey` failed");
    }
    Ok((
        private,
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    ))
}

fn log_tail(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|t| {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(10)..].join("\n")
        })
        .unwrap_or_default()
}

/// Starts `kind` on `hosts[0]` and `hosts[1]` and builds the VXLAN-in-WireGuard path between
/// them; returns once a ping crosses it. Logs and key files go to `dir`.
pub(crate) fn start_pair(
    kind: PeerKind,
    tools: &Tools,
    hosts: [&Host; 2],
    dir: &Path,
    tag: &str,
) -> anyhow::Result<PeerPair> {
    let mut pair = PeerPair {
        procs: Vec::new(),
        ifnames: Vec::new(),
        vx_ips: ["10.99.0.1".into(), "10.99.0.2".into()],
    };
    for (side, host) in hosts.iter().enumerate() {
        let ifname = iface_name(tag, kind, side);
        let socket = Path::new(UAPI_DIR).join(format!("{ifname}.sock"));
        let _ = std::fs::remove_file(&socket);
        let log = dir.join(format!("{}-{side}.log", kind.binary()));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let daemon = tools.daemon.display().to_string();
        let log_arg = log.display().to_string();
        let args: Vec<&str> = match kind {
            PeerKind::WireguardGo => vec![&daemon, "-f", &ifname],
            PeerKind::Boringtun => vec![
                &daemon,
                "-f",
                "--disable-drop-privileges",
                "-l",
                &log_arg,
                &ifname,
            ],
        };
        let child = ns_command(&host_ns(host), &args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {daemon} on {}", host.name()))?;
        pair.procs.push(Background(child));
        pair.ifnames.push(ifname.clone());
        let proc = pair.procs.last_mut().ok_or_else(|| anyhow!("no process"))?;
        wait_for(
            &format!(
                "{} on {} to open {}",
                kind.binary(),
                host.name(),
                socket.display()
            ),
            PEER_UP,
            || {
                if !proc.running() {
                    return Err(
                        Fatal(format!("{} exited: {}", kind.binary(), log_tail(&log))).into(),
                    );
                }
                Ok(socket.exists().then_some(()))
            },
        )?;
    }
    let keys = [wg_keypair(&tools.wg)?, wg_keypair(&tools.wg)?];
    let tunnel_ips = ["100.64.0.1", "100.64.0.2"];
    for (side, host) in hosts.iter().enumerate() {
        let other = 1 - side;
        let ns = host_ns(host);
        let ifname = &pair.ifnames[side];
        let key_file = dir.join(format!("{}-{side}.key", kind.binary()));
        std::fs::write(&key_file, format!("{}\n", keys[side].0))?;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
        let wg = tools.wg.display().to_string();
        let key_arg = key_file.display().to_string();
        let allowed = format!("{}/32", tunnel_ips[other]);
        let endpoint = format!("{}:51820", hosts[other].data_ip());
        let t = Duration::from_secs(20);
        ns_ok(
            &ns,
            &[
                &wg,
                "set",
                ifname,
                "private-key",
                &key_arg,
                "listen-port",
                "51820",
                "peer",
                &keys[other].1,
                "allowed-ips",
                &allowed,
                "endpoint",
                &endpoint,
            ],
            t,
        )?;
        let mtu = WG_MTU.to_string();
        let vx_mtu = VXLAN_MTU.to_string();
        let own = format!("{}/24", tunnel_ips[side]);
        let vx_own = format!("{}/24", pair.vx_ips[side]);
        for cmd in [
            vec!["ip", "addr", "add", &own, "dev", ifname],
            vec!["ip", "link", "set", ifname, "mtu", &mtu, "up"],
            vec![
                "ip",
                "link",
                "add",
                "vx0",
                "mtu",
                &vx_mtu,
                "type",
                "vxlan",
                "id",
                "42",
                "local",
                tunnel_ips[side],
                "remote",
                tunnel_ips[other],
                "dstport",
                "4789",
            ],
            vec!["ip", "addr", "add", &vx_own, "dev", "vx0"],
            vec!["ip", "link", "set", "vx0", "up"],
        ] {
            ns_ok(&ns, &cmd, t)?;
        }
    }
    let ns0 = host_ns(hosts[0]);
    let target = pair.vx_ips[1].clone();
    wait_for(
        &format!("a ping over VXLAN inside {}", kind.binary()),
        PEER_UP,
        || {
            let out = super::ns_run(
                &ns0,
                &["ping", "-n", "-c", "1", "-W", "1", &target],
                Duration::from_secs(5),
            );
            Ok(out.success().then_some(()))
        },
    )?;
    Ok(pair)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_differ() {
        let tag = iface_tag("snl-a-very-long-prefix-ab12cd3");
        assert_eq!(tag, "efixab12cd3".chars().skip(4).collect::<String>());
        for kind in [PeerKind::WireguardGo, PeerKind::Boringtun] {
            for side in 0..2 {
                assert!(iface_name(&tag, kind, side).len() <= 15);
            }
        }
        assert_ne!(
            iface_name(&tag, PeerKind::WireguardGo, 0),
            iface_name(&tag, PeerKind::Boringtun, 0)
        );
        assert_eq!(iface_tag("snlab"), "snlab");
    }
}
