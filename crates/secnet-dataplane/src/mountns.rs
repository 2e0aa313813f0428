//! Making the namespace files the daemon bind-mounts visible on the host.
//!
//! The data path keeps each network namespace alive with a bind mount under the run
//! directory, and users open those files (`nsenter --net=PATH`, `secnet exec`) from the
//! host. A bind mount exists in the mount namespace it was made in and in those its mount
//! propagates to. `ip netns exec` starts its command in a fresh mount namespace whose mounts
//! are *slaves* of the host's (they receive the host's mounts but never send theirs): a
//! daemon started there would make namespace files that are empty files to everyone else.
//!
//! So, at start and while still single-threaded, the daemon checks where it is
//! ([`decide`], pure) and, if its mounts would stay private, moves into the host's mount
//! namespace, the one of pid 1 or, where that is hidden, of its oldest visible ancestor
//! ([`pick_reference`], [`ensure_visible_on_host`]). Only the mount namespace
//! changes: the network namespace (the host's interfaces) stays the one it was started in.
//! A daemon whose run directory sits on a mount that propagates to pid 1's namespace (a
//! shared peer, as with systemd's `MountFlags=shared`) stays where it is.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

/// One line of `/proc/<pid>/mountinfo`, the fields that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The directory of the filesystem mounted here (`/` unless a bind mount of a subtree).
    pub root: String,
    pub mount_point: PathBuf,
    /// Peer group the mount shares its mounts with (`shared:N`), if any.
    pub shared: Option<u64>,
}

/// Parses `/proc/<pid>/mountinfo` text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:2 - ext3 /dev/root rw
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 {
        return None;
    }
    let shared = fields[6..sep]
        .iter()
        .find_map(|f| f.strip_prefix("shared:"))
        .and_then(|n| n.parse().ok());
    Some(MountEntry {
        root: unescape(fields[3]),
        mount_point: PathBuf::from(unescape(fields[4])),
        shared,
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space, ...) in a mountinfo path.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount that holds `path`: the one with the longest mount point above it, the last
/// listed when several are stacked on one point (the top one).
pub fn mount_of<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
        .map(|(_, m)| m)
}

/// Where the daemon's mounts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountNsPlan {
    /// Already in the initial mount namespace.
    Initial,
    /// In another mount namespace, but the run directory's mount is a shared peer of the
    /// same mount in the initial one: bind mounts under it appear there too.
    Propagates,
    /// Mounts made here would stay here: join the initial mount namespace.
    Join,
}

/// Decides from the two namespaces' ids (`mnt:[N]` links) and mount tables whether mounts
/// made under `dir` by this process reach the initial mount namespace. Pure.
pub fn decide(own_id: &str, initial_id: &str, own: &str, initial: &str, dir: &Path) -> MountNsPlan {
    if own_id == initial_id {
        return MountNsPlan::Initial;
    }
    let own = parse_mountinfo(own);
    let initial = parse_mountinfo(initial);
    let Some(mine) = mount_of(&own, dir) else {
        return MountNsPlan::Join;
    };
    let Some(group) = mine.shared else {
        return MountNsPlan::Join;
    };
    let peer_there = mount_of(&initial, dir).is_some_and(|m| {
        m.shared == Some(group) && m.mount_point == mine.mount_point && m.root == mine.root
    });
    if peer_there {
        MountNsPlan::Propagates
    } else {
        MountNsPlan::Join
    }
}

/// What [`ensure_visible_on_host`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountNsOutcome {
    /// Already in the host's mount namespace (that of `reference`).
    Initial { reference: u32 },
    /// In another mount namespace whose mounts under the run directory propagate there.
    Propagates { reference: u32 },
    /// Moved from the mount namespace `from` into that of process `reference`.
    Joined { from: String, reference: u32 },
    /// No process outside this one shows its mount namespace (an unusual pid namespace, or
    /// missing permissions): nothing was checked or changed.
    Unknown,
}

/// The host's mount namespace is pid 1's. Where that cannot be read (reading another
/// process's namespace links needs the ptrace read check: a pid 1 with capabilities this
/// process lacks hides them), the oldest ancestor that can be read stands in for it: the
/// shell or service manager the daemon was started from, above any `ip netns exec`.
/// `chain` is this process's ancestry from pid 1 down to its parent, each with its
/// mount-namespace link when readable. Pure.
pub fn pick_reference(chain: &[(u32, Option<String>)]) -> Option<(u32, &str)> {
    chain
        .iter()
        .find_map(|(pid, id)| id.as_deref().map(|id| (*pid, id)))
}

/// Makes bind mounts under `dir` visible in the host's mount namespace ([`pick_reference`]),
/// joining it when needed ([`decide`]). Must run before the process starts a second thread
/// (`setns` into a mount namespace is refused to a multi-threaded process). Restores the
/// working directory by path afterwards, as joining resets it to the new namespace's root;
/// `dir` and any other path the caller keeps should be absolute.
pub fn ensure_visible_on_host(dir: &Path) -> io::Result<MountNsOutcome> {
    let own_id = ns_id(std::process::id())?;
    let chain: Vec<(u32, Option<String>)> = ancestry()
        .into_iter()
        .map(|pid| (pid, ns_id(pid).ok()))
        .collect();
    let Some((reference, ref_id)) = pick_reference(&chain) else {
        return Ok(MountNsOutcome::Unknown);
    };
    let (own, theirs) = if own_id == ref_id {
        (String::new(), String::new())
    } else {
        (
            fs::read_to_string("/proc/self/mountinfo")?,
            fs::read_to_string(format!("/proc/{reference}/mountinfo"))?,
        )
    };
    match decide(&own_id, ref_id, &own, &theirs, dir) {
        MountNsPlan::Initial => Ok(MountNsOutcome::Initial { reference }),
        MountNsPlan::Propagates => Ok(MountNsOutcome::Propagates { reference }),
        MountNsPlan::Join => {
            let cwd = std::env::current_dir().ok();
            let target = fs::File::open(format!("/proc/{reference}/ns/mnt"))?;
            setns(&target, CloneFlags::CLONE_NEWNS).map_err(|e| {
                io::Error::other(format!(
                    "setns into the mount namespace of pid {reference} ({ref_id}): {e}"
                ))
            })?;
            if let Some(cwd) = cwd {
                // Best effort: the old directory may not exist in the host's view.
                let _ = std::env::set_current_dir(cwd);
            }
            Ok(MountNsOutcome::Joined {
                from: own_id,
                reference,
            })
        }
    }
}

fn ns_id(pid: u32) -> io::Result<String> {
    Ok(fs::read_link(format!("/proc/{pid}/ns/mnt"))?
        .to_string_lossy()
        .into_owned())
}

/// This process's ancestors, from the oldest (normally pid 1) to its parent.
fn ancestry() -> Vec<u32> {
    let mut chain = Vec::new();
    let mut pid = std::process::id();
    while let Some(parent) = parent_of(pid).filter(|p| *p != 0 && !chain.contains(p)) {
        chain.push(parent);
        pid = parent;
    }
    chain.reverse();
    chain
}

/// The ppid field of `/proc/<pid>/stat` (after the command name, which may hold anything).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    // Shapes taken from a host (/ shared), from `ip netns exec` (every mount a slave) and
    // from a private `unshare -m` (no propagation at all).
    const HOST: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
40 25 0:23 /netns /run/netns rw,nosuid,nodev shared:12 - tmpfs tmpfs rw,mode=755
";
    const IP_NETNS_EXEC: &str = "\
300 299 8:1 / / rw,relatime master:1 - ext4 /dev/sda1 rw
301 300 0:23 / /run rw,nosuid,nodev master:5 - tmpfs tmpfs rw,mode=755
302 301 0:23 /netns /run/netns rw,nosuid,nodev master:12 - tmpfs tmpfs rw,mode=755
303 300 0:60 / /sys rw,relatime - sysfs sysfs rw
";
    const SHARED_SERVICE: &str = "\
400 399 8:1 / / ro,relatime shared:1 - ext4 /dev/sda1 rw
401 400 0:23 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
";

    #[test]
    fn same_namespace_needs_nothing() {
        let d = decide("mnt:[1]", "mnt:[1]", HOST, HOST, Path::new("/run/secnet"));
        assert_eq!(d, MountNsPlan::Initial);
    }

    #[test]
    fn ip_netns_exec_slaves_must_join() {
        let d = decide(
            "mnt:[2]",
            "mnt:[1]",
            IP_NETNS_EXEC,
            HOST,
            Path::new("/run/secnet"),
        );
        assert_eq!(d, MountNsPlan::Join);
    }

    #[test]
    fn a_shared_peer_of_the_hosts_mount_propagates() {
        let d = decide(
            "mnt:[3]",
            "mnt:[1]",
            SHARED_SERVICE,
            HOST,
            Path::new("/run/secnet"),
        );
        assert_eq!(d, MountNsPlan::Propagates);
        // ... but not when the peer group differs from the host's mount of that path.
        let other = SHARED_SERVICE.replace("shared:5", "shared:77");
        let d = decide("mnt:[3]", "mnt:[1]", &other, HOST, Path::new("/run/secnet"));
        assert_eq!(d, MountNsPlan::Join);
    }

    #[test]
    fn the_longest_and_topmost_mount_holds_a_path() {
        let mounts = parse_mountinfo(HOST);
        let m = mount_of(&mounts, Path::new("/run/netns/h1")).unwrap();
        assert_eq!(m.mount_point, Path::new("/run/netns"));
        assert_eq!(m.shared, Some(12));
        // `/run/netnsx` is not under `/run/netns`: components, not string prefixes.
        let m = mount_of(&mounts, Path::new("/run/netnsx")).unwrap();
        assert_eq!(m.mount_point, Path::new("/run"));
        let stacked = format!("{HOST}41 25 0:99 / /run rw - tmpfs tmpfs rw\n");
        let mounts = parse_mountinfo(&stacked);
        let m = mount_of(&mounts, Path::new("/run/secnet")).unwrap();
        assert_eq!(m.shared, None);
    }

    #[test]
    fn the_oldest_readable_ancestor_stands_in_for_pid_1() {
        let id = |s: &str| Some(s.to_string());
        let chain = [(1, id("mnt:[1]")), (50, id("mnt:[1]")), (60, id("mnt:[9]"))];
        assert_eq!(pick_reference(&chain), Some((1, "mnt:[1]")));
        let hidden_init = [(1, None), (50, id("mnt:[1]")), (60, id("mnt:[9]"))];
        assert_eq!(pick_reference(&hidden_init), Some((50, "mnt:[1]")));
        assert_eq!(pick_reference(&[(1, None)]), None);
        assert_eq!(pick_reference(&[]), None);
    }

    #[test]
    fn ppid_is_read_after_the_command_name() {
        assert_eq!(parse_ppid("42 (a) b) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parse_ppid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parse_ppid("garbage"), None);
        assert!(!ancestry().is_empty(), "this test has a parent");
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let line = "50 22 0:40 / /mnt/with\\040space rw shared:9 - tmpfs tmpfs rw\n";
        let m = parse_mountinfo(line);
        assert_eq!(m[0].mount_point, Path::new("/mnt/with space"));
        assert_eq!(m[0].shared, Some(9));
        assert_eq!(unescape("a\\134b\\9"), "a\\b\\9");
    }

    #[test]
    fn this_process_reads_its_own_mountinfo() {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounts = parse_mountinfo(&text);
        assert_eq!(mounts.len(), text.lines().count(), "{text}");
        assert!(mount_of(&mounts, Path::new("/")).is_some());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC*") {
            let _ = parse_mountinfo(&text);
            let _ = parse_ppid(&text);
        }

        #[test]
        fn parsing_arbitrary_lines_of_fields_never_panics(
            fields in proptest::collection::vec("[0-9a-z:/\\\\-]{0,8}", 0..14)
        ) {
            let _ = parse_mountinfo(&fields.join(" "));
            let _ = decide("a", "b", &fields.join(" "), HOST, Path::new("/run"));
        }
    }
}
