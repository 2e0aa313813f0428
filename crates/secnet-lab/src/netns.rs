//! Thin wrappers around `ip netns` and friends.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd::{run, shell_quote, CmdOutput};

/// Every namespace and temp dir a lab creates starts with this, so
/// `secnet-lab down` (and [`down_all`]) can find leftovers.
pub const NAME_PREFIX: &str = "snl";

/// Name of the marker file in every lab's temp dir (lets [`down_all`] remove it).
pub(crate) const MARKER_FILE: &str = ".secnet-lab";

/// Directory where iproute2 keeps named network namespaces.
const NETNS_RUN_DIR: &str = "/run/netns";

/// Path of a binary that may live in an sbin directory missing from `$PATH`.
pub(crate) fn find_bin(name: &'static str, dirs: &[&str]) -> PathBuf {
    dirs.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The `ip` binary (iproute2).
pub(crate) fn ip_bin() -> PathBuf {
    find_bin("ip", &["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
}

/// Runs `ip ARGS` and returns stdout, or an error with the command and stderr.
pub(crate) fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = run(Command::new(ip_bin()).args(args));
    if !out.success() {
        bail!("`ip {}` failed: {}", shell_quote(args), out.describe());
    }
    Ok(out.stdout)
}

/// Feeds `script` to `ip [-n NETNS] -batch -` (stops at the first failing line).
pub(crate) fn ip_batch(netns: Option<&str>, script: &str) -> anyhow::Result<()> {
    let mut cmd = Command::new(ip_bin());
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tracing::debug!(?netns, script, "ip -batch");
    let mut child = cmd.spawn().context("cannot run `ip -batch -`")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .context("writing to `ip -batch -`")?;
    }
    let out = CmdOutput::from_output(child.wait_with_output().context("waiting for `ip`")?);
    if !out.success() {
        bail!(
            "`ip{} -batch -` failed on script:\n{}\n{}",
            netns.map(|n| format!(" -n {n}")).unwrap_or_default(),
            script.trim_end(),
            out.describe()
        );
    }
    Ok(())
}

/// Runs `ip netns exec NETNS sysctl -q -w SETTINGS...`.
pub(crate) fn sysctl(netns: &str, settings: &[&str]) -> anyhow::Result<()> {
    let sysctl = find_bin("sysctl", &["/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
    let out = run(Command::new(ip_bin())
        .args(["netns", "exec", netns])
        .arg(&sysctl)
        .arg("-q")
        .arg("-w")
        .args(settings));
    if !out.success() {
        bail!(
            "`sysctl -w {}` in namespace {netns} failed: {}",
            settings.join(" "),
            out.describe()
        );
    }
    Ok(())
}

/// Names of all named network namespaces (`ip netns list`).
pub fn list_netns() -> anyhow::Result<Vec<String>> {
    let out = ip(&["netns", "list"])?;
    // Lines look like "name (id: 3)" or just "name".
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// True when a named network namespace `name` exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new(NETNS_RUN_DIR).join(name).exists()
}

/// Pids of the processes running inside namespace `name` (`ip netns pids`).
pub fn netns_pids(name: &str) -> anyhow::Result<Vec<i32>> {
    let out = ip(&["netns", "pids", name])?;
    out.split_whitespace()
        .map(|p| {
            p.parse::<i32>()
                .with_context(|| format!("bad pid {p:?} from `ip netns pids {name}`"))
        })
        .collect()
}

/// SIGKILLs every process inside `name` and waits (up to 2 s) until none is
/// left. Returns how many were killed.
pub(crate) fn kill_netns_processes(name: &str) -> anyhow::Result<usize> {
    let me = std::process::id() as i32;
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pids: Vec<i32> = netns_pids(name)?.into_iter().filter(|&p| p != me).collect();
        if pids.is_empty() {
            return Ok(killed);
        }
        if Instant::now() >= deadline {
            bail!("processes {pids:?} in namespace {name} survive SIGKILL");
        }
        for pid in pids {
            if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Kills every process in namespace `name` and deletes the namespace.
pub(crate) fn delete_netns(name: &str) -> anyhow::Result<()> {
    if !netns_exists(name) {
        return Ok(());
    }
    // A process left inside would keep the namespace (and its links) alive.
    let killed = kill_netns_processes(name);
    let deleted = ip(&["netns", "delete", name]);
    match (killed, deleted) {
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e.context(format!("namespace {name} deleted, but"))),
        (Ok(_), Ok(_)) => Ok(()),
    }
}

/// Generates a fresh lab prefix: `snl` + 5 lowercase base-36 characters
/// derived from the pid, a per-process counter, the time and a random seed.
/// The prefix is not in use by any existing namespace.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    loop {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        let mut v = h.finish();
        let mut s = String::from(NAME_PREFIX);
        for _ in 0..5 {
            s.push(char::from(ALPHABET[(v % 36) as usize]));
            v /= 36;
        }
        let taken = list_netns()
            .unwrap_or_default()
            .iter()
            .any(|n| n.starts_with(&s));
        if !taken {
            return s;
        }
    }
}

/// `secnet-lab down`: kills every process inside the namespaces whose name
/// starts with `prefix_filter`, deletes those namespaces, and removes the lab
/// temp dirs (`$TMPDIR/<prefix>-*` holding a lab marker file) that match;
/// directories kept on purpose with `SECNET_LAB_KEEP=1` have no marker and
/// stay. Returns the number of namespaces deleted.
///
/// The filter must start with `snl` (every lab name does), so that this can
/// never delete unrelated namespaces.
pub fn down_all(prefix_filter: &str) -> anyhow::Result<usize> {
    if !prefix_filter.starts_with(NAME_PREFIX) {
        bail!("refusing to clean up with prefix {prefix_filter:?}: lab names always start with {NAME_PREFIX:?}");
    }
    let victims: Vec<String> = list_netns()?
        .into_iter()
        .filter(|n| n.starts_with(prefix_filter))
        .collect();
    // Kill everything first (so no process notices half a lab), then delete.
    let mut errors = Vec::new();
    for ns in &victims {
        if let Err(e) = kill_netns_processes(ns) {
            errors.push(format!("{e:#}"));
        }
    }
    let mut deleted = 0;
    for ns in &victims {
        match ip(&["netns", "delete", ns]) {
            Ok(_) => deleted += 1,
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let path = entry.path();
            if name.to_string_lossy().starts_with(prefix_filter) && path.join(MARKER_FILE).is_file()
            {
                errors.extend(release_mounts_under(&path));
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    errors.push(format!("removing {}: {e}", path.display()));
                }
            }
        }
    }
    if !errors.is_empty() {
        bail!(
            "deleted {deleted} of {} namespaces; errors:\n{}",
            victims.len(),
            errors.join("\n")
        );
    }
    Ok(deleted)
}

/// Mount points under `dir` (from /proc/self/mountinfo), deepest first. The daemons keep the
/// namespaces they make as nsfs bind mounts under their run directory, inside the lab dir.
pub fn mounts_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, String)> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = PathBuf::from(unescape_mountinfo(fields.get(4)?));
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?.to_string();
            mount_point
                .starts_with(dir)
                .then_some((mount_point, fstype))
        })
        .collect();
    out.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    out
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Kills every process living in a network namespace mounted under `dir`, then unmounts
/// everything under `dir`, so the directory can be removed. Returns the errors met.
pub fn release_mounts_under(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mounts = mounts_under(dir);
    let inodes: Vec<u64> = mounts
        .iter()
        .filter(|(_, fs)| fs == "nsfs")
        .filter_map(|(p, _)| std::fs::metadata(p).ok().map(|m| m.ino()))
        .collect();
    if !inodes.is_empty() {
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for entry in procs.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let Ok(link) = std::fs::read_link(entry.path().join("ns/net")) else {
                    continue;
                };
                let link = link.to_string_lossy().into_owned();
                if inodes.iter().any(|ino| link == format!("net:[{ino}]")) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    }
    let mut errors = Vec::new();
    for (path, _) in mounts {
        if let Err(e) = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
            errors.push(format!("unmounting {}: {e}", path.display()));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_well_formed() {
        let a = unique_prefix();
        let b = unique_prefix();
        assert_ne!(a, b);
        for p in [&a, &b] {
            assert_eq!(p.len(), 8, "{p}");
            assert!(p.starts_with("snl"));
            assert!(p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        }
    }

    #[test]
    fn down_all_refuses_foreign_prefixes() {
        assert!(down_all("").is_err());
        assert!(down_all("docker").is_err());
    }
}
