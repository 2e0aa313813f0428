//! Test fixtures shared by the integration tests: network namespaces kept by bind mounts.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// The full path of a tool that may live in an sbin directory missing from `$PATH`.
pub fn find_bin(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Two namespaces `a` and `b` in a fresh temporary directory (prefix `prefix`), joined by
/// a veth pair `va` (in a) / `vb` (in b) with 198.51.100.1/24 and .2/24, up. Needs root;
/// `why` says what for when it is missing. Keep the directory as long as the namespaces.
pub fn veth_pair(prefix: &str, why: &str) -> (tempfile::TempDir, Netns, Netns) {
    assert!(nix::unistd::geteuid().is_root(), "{why}: run as root");
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let a = Netns::new(dir.path(), "a");
    let b = Netns::new(dir.path(), "b");
    let b_path = b.path.display().to_string();
    a.ip(&[
        "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b_path,
    ]);
    for (ns, dev, me) in [(&a, "va", 1), (&b, "vb", 2)] {
        ns.ip(&["addr", "add", &format!("198.51.100.{me}/24"), "dev", dev]);
        ns.ip(&["link", "set", dev, "up"]);
    }
    (dir, a, b)
}

/// A network namespace kept alive by a bind mount on a file.
pub struct Netns {
    pub path: PathBuf,
}

impl Netns {
    pub fn new(dir: &Path, name: &str) -> Netns {
        let path = dir.join(name);
        File::create(&path).unwrap();
        let ns = Netns { path };
        let target = ns.path.clone();
        // A throwaway thread gets the new namespace; the bind mount outlives it.
        std::thread::spawn(move || -> nix::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .join()
        .unwrap()
        .expect("create network namespace");
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(find_bin("nsenter"));
        cmd.arg(format!("--net={}", self.path.display()))
            .arg(find_bin(program));
        cmd
    }

    pub fn ip(&self, args: &[&str]) -> Output {
        let out = self.cmd("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `f` on a thread that has joined this namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = File::open(&self.path).unwrap();
        std::thread::spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .unwrap()
    }

    pub fn ping(&self, to: Ipv4Addr, count: u32, pattern: Option<&str>) -> Output {
        let mut cmd = self.cmd("ping");
        cmd.args(["-n", "-c", &count.to_string(), "-W", "2", "-i", "0.2"]);
        if let Some(pattern) = pattern {
            cmd.args(["-s", "120", "-p", pattern]);
        }
        cmd.arg(to.to_string()).output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Makes the node with `key`, reached at `underlay:port` and owning `tunnel_ip`, the
/// tunnel's only peer (no persistent keepalive).
pub fn set_only_peer(
    tunnel: &secnet_tunnel::Tunnel,
    key: secnet_tunnel::PublicKey,
    underlay: Ipv4Addr,
    port: u16,
    tunnel_ip: Ipv4Addr,
) {
    tunnel
        .set_peers(vec![secnet_tunnel::PeerConfig {
            public_key: key.0,
            endpoint: SocketAddr::from((underlay, port)),
            tunnel_ip,
            keepalive: None,
        }])
        .unwrap();
}
