//! Network namespaces as files, without `ip netns`.
//!
//! A namespace lives as long as something refers to it: a process inside, an
//! open file descriptor, or a bind mount of its `nsfs` file. We keep each one
//! alive with a bind mount onto a file under the daemon's run directory
//! (never a global `/run/netns` name, so two daemons on one machine — as in
//! the lab — never collide). The bind mounts must be made in the host's mount
//! namespace to be usable by others: see [`crate::mountns`]. Creating one needs no fork: a short-lived thread
//! unshares its network namespace (allowed for a single thread of a
//! multi-threaded process, unlike `fork()` tricks that copy a whole tokio
//! runtime), bind-mounts `/proc/thread-self/ns/net` onto the file and ends.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

/// Creates a new network namespace and bind-mounts it on `path` (which must
/// not exist; its directory must). `lo` is left down.
pub fn create_netns_file(path: &Path) -> io::Result<()> {
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("secnet-netns".into())
        .spawn(move || -> io::Result<()> {
            // Only this thread changes namespace; it ends right after.
            unshare(CloneFlags::CLONE_NEWNET)?;
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(&path)?;
            if let Err(e) = mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ) {
                let _ = fs::remove_file(&path);
                return Err(e.into());
            }
            Ok(())
        })?
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// Unmounts (lazily, all stacked mounts) and removes a namespace file. The
/// namespace itself goes once nothing else refers to it. A missing file is
/// not an error.
pub fn delete_netns_file(path: &Path) -> io::Result<()> {
    for _ in 0..16 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL) => break, // not (or no longer) a mount point
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes an entry of the namespace directory that has one of our names but
/// is not a namespace (what a crash between creating the file and mounting on
/// it leaves): files (after unmounting whatever may be mounted there) and
/// empty directories. Non-empty directories are left alone (error). Entries
/// with other names never get here (`Observed::foreign`).
pub fn remove_stale_entry(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        let _ = umount2(path, MntFlags::MNT_DETACH);
        fs::remove_dir(path)
    } else {
        delete_netns_file(path)
    }
}

/// True when `path` is a (mounted) network namespace file: a regular file
/// on `nsfs` (only those are opened — a FIFO would block) that a throw-away
/// thread can `setns` into as a network namespace (other namespace types are
/// refused).
pub fn is_netns_file(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let on_nsfs = statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC);
    if !on_nsfs {
        return false;
    }
    let Ok(f) = fs::File::open(path) else {
        return false;
    };
    std::thread::Builder::new()
        .name("secnet-netns-probe".into())
        .spawn(move || setns(&f, CloneFlags::CLONE_NEWNET).is_ok())
        .ok()
        .and_then(|t| t.join().ok())
        .unwrap_or(false)
}
