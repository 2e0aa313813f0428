//! One daemon per directory: an exclusive `flock` on `<dir>/secnetd.lock`, held for the
//! daemon's lifetime, for its state directory and for its run directory.
//!
//! Two daemons on one state directory would run two Raft nodes on one log; two on one run
//! directory would each take the other's namespace files for their own and delete them.
//! The lock file holds the holder's pid so that the refusal can name it. `flock` locks go
//! with the open file, so a daemon killed with SIGKILL releases them at once, and a stale
//! pid in the file never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Name of the lock file in each locked directory.
pub const LOCK_FILE: &str = "secnetd.lock";

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another secnetd{} holds {what} {dir}: give this daemon its own --state-dir, \
         --run-dir and --socket, or stop the other one first",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Held {
        what: &'static str,
        dir: PathBuf,
        holder: Option<u32>,
    },
    #[error("cannot lock {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A held directory lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: Flock<File>,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the lock of `dir` (which must exist) without waiting; `what` names the directory
/// in errors ("state directory", "run directory").
pub fn lock_dir(dir: &Path, what: &'static str) -> Result<DirLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let io = |source: std::io::Error| LockError::Io {
        what,
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(f) => f,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                what,
                dir: dir.to_path_buf(),
                holder: text.trim().parse().ok(),
            });
        }
        Err((_, e)) => return Err(io(e.into())),
    };
    // Only the holder writes, so readers see either the old pid or ours.
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(DirLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holders_pid_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path(), "state directory").unwrap();
        let pid = std::fs::read_to_string(first.path()).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        // A second open file description conflicts even within one process.
        let err = lock_dir(dir.path(), "state directory").unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, LockError::Held { holder: Some(p), .. } if p == std::process::id()),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        let again = lock_dir(dir.path(), "state directory").unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
    }

    #[test]
    fn a_stale_pid_in_an_unlocked_file_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "999999999\n").unwrap();
        let lock = lock_dir(dir.path(), "run directory").unwrap();
        let pid = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(pid, format!("{}\n", std::process::id()));
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let msg = lock_dir(&missing, "run directory").unwrap_err().to_string();
        assert!(msg.contains("nope/secnetd.lock"), "{msg}");
    }
}
