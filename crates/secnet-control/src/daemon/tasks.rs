//! The task runner's executor: starts a task's process inside its endpoint's network
//! namespace (in its own process group, stdout and stderr into a bounded log under the run
//! directory), watches it exit, and stops it (SIGTERM to the group, SIGKILL after
//! [`STOP_GRACE`]). What to run, and when, is decided by `agent::tasks`; this file only
//! does it.
//!
//! The runner belongs to the daemon, not to a membership, so a role switch keeps the tasks
//! running. Tasks do not outlive the daemon: `Daemon::shutdown` stops them, and a daemon
//! that starts kills whatever a crashed predecessor left (the process groups recorded in
//! `<run-dir>/tasks/*.pid`, checked against their start time so a reused pid is never
//! hit). The node then reports those tasks failed and the scheduler replaces them, so a
//! task never runs twice.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tracing::{debug, info, warn};

use crate::agent::tasks::Process;

/// How long a task has to exit after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// The size at which a task's log is rotated; one rotated copy (`.log.1`) is kept.
pub const LOG_LIMIT: u64 = 1 << 20;
/// `PATH` of a task's process (its environment is the service's, not the daemon's).
const TASK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Entry {
    process: Process,
    /// The process group, once spawned.
    pgid: Option<i32>,
    /// A stop asked for before the process was spawned.
    stop_asked: bool,
}

/// The processes of this node's tasks.
pub struct TaskRunner {
    dir: PathBuf,
    procs: Arc<Mutex<BTreeMap<String, Entry>>>,
}

impl TaskRunner {
    /// The runner of a daemon whose run directory is `run_dir`; kills what a previous daemon
    /// left running.
    pub fn new(run_dir: &Path) -> TaskRunner {
        let dir = run_dir.join("tasks");
        kill_leftovers(&dir);
        TaskRunner {
            dir,
            procs: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Where task `id`'s log is.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    /// The processes, for the agent's facts.
    pub fn processes(&self) -> BTreeMap<String, Process> {
        self.procs
            .lock()
            .map(|p| p.iter().map(|(id, e)| (id.clone(), e.process)).collect())
            .unwrap_or_default()
    }

    /// Forgets the processes that ended and whose task is no longer in the state.
    pub fn forget(&self, known: impl Fn(&str) -> bool) {
        if let Ok(mut p) = self.procs.lock() {
            p.retain(|id, e| known(id) || e.process == Process::Running);
        }
    }

    /// Starts task `id`: `command` with `env`, inside the network namespace at `netns`.
    /// Returns at once; the process counts as running from now on (so it is never started
    /// twice), and as unstartable if it cannot be spawned.
    pub fn start(
        &self,
        id: &str,
        command: &[String],
        env: &BTreeMap<String, String>,
        netns: &Path,
    ) {
        let Ok(mut procs) = self.procs.lock() else {
            return;
        };
        if procs.get(id).is_some_and(|e| e.process == Process::Running) {
            return;
        }
        procs.insert(
            id.to_string(),
            Entry {
                process: Process::Running,
                pgid: None,
                stop_asked: false,
            },
        );
        drop(procs);
        let job = Job {
            id: id.to_string(),
            command: command.to_vec(),
            env: env.clone(),
            netns: netns.to_path_buf(),
            dir: self.dir.clone(),
            procs: self.procs.clone(),
        };
        tokio::spawn(job.run());
    }

    /// Stops task `id`: SIGTERM to its process group, SIGKILL after [`STOP_GRACE`].
    pub fn stop(&self, id: &str) {
        let pgid = {
            let Ok(mut procs) = self.procs.lock() else {
                return;
            };
            let Some(e) = procs.get_mut(id) else { return };
            if e.process != Process::Running {
                return;
            }
            e.stop_asked = true;
            e.pgid
        };
        if let Some(pgid) = pgid {
            terminate(pgid, id.to_string(), self.procs.clone());
        }
    }

    /// Stops every task and waits (at most the grace period, then kills) until all ended.
    pub async fn stop_all(&self) {
        let ids: Vec<String> = self.processes().into_keys().collect();
        for id in &ids {
            self.stop(id);
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE + Duration::from_secs(1);
        while self.processes().values().any(|p| *p == Process::Running)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Job {
    id: String,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    netns: PathBuf,
    dir: PathBuf,
    procs: Arc<Mutex<BTreeMap<String, Entry>>>,
}

impl Job {
    async fn run(self) {
        let spawned = self.spawn().await;
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                warn!(task = %self.id, error = %e, "cannot start the task");
                self.set(Process::Unstartable);
                return;
            }
        };
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        if let Some(pgid) = pgid {
            self.record_pid(pgid);
        }
        let stop_asked = self
            .procs
            .lock()
            .ok()
            .and_then(|mut p| {
                let e = p.get_mut(&self.id)?;
                e.pgid = pgid;
                Some(e.stop_asked)
            })
            .unwrap_or(false);
        if let (true, Some(pgid)) = (stop_asked, pgid) {
            terminate(pgid, self.id.clone(), self.procs.clone());
        }
        info!(task = %self.id, pid = ?pgid, "task started");
        let log = self.dir.join(format!("{}.log", self.id));
        let out = child.stdout.take();
        let err = child.stderr.take();
        let copy_out = tokio::spawn(copy_to_log(out, log.clone()));
        let copy_err = tokio::spawn(copy_to_log(err, log));
        let status = child.wait().await;
        let _ = copy_out.await;
        let _ = copy_err.await;
        let process = match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                Process::Exited {
                    code: s.code(),
                    signal: s.signal(),
                }
            }
            Err(e) => {
                warn!(task = %self.id, error = %e, "cannot wait for the task");
                Process::Exited {
                    code: None,
                    signal: None,
                }
            }
        };
        info!(task = %self.id, ?process, "task ended");
        let _ = std::fs::remove_file(self.dir.join(format!("{}.pid", self.id)));
        self.set(process);
    }

    fn set(&self, process: Process) {
        if let Ok(mut p) = self.procs.lock() {
            if let Some(e) = p.get_mut(&self.id) {
                e.process = process;
            }
        }
    }

    /// Spawns the process from a thread that joined the endpoint's network namespace (a
    /// child inherits the namespace of the thread that forks it).
    async fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        if self.command.is_empty() {
            return Err(std::io::Error::other("empty command"));
        }
        std::fs::create_dir_all(&self.dir)?;
        let handle = tokio::runtime::Handle::current();
        let (command, env, netns) = (self.command.clone(), self.env.clone(), self.netns.clone());
        let (done, spawned) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("secnet-task-spawn".into())
            .spawn(move || {
                let result = (|| {
                    let ns = File::open(&netns)?;
                    setns(&ns, CloneFlags::CLONE_NEWNET)?;
                    let _runtime = handle.enter();
                    tokio::process::Command::new(&command[0])
                        .args(&command[1..])
                        .env_clear()
                        .env("PATH", TASK_PATH)
                        .envs(&env)
                        .current_dir("/")
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .process_group(0)
                        .spawn()
                })();
                let _ = done.send(result);
            })?;
        spawned
            .await
            .map_err(|_| std::io::Error::other("the spawning thread died"))?
    }

    /// Records the process group with its start time, so that a daemon started after a crash
    /// of this one kills it, and only it.
    fn record_pid(&self, pgid: i32) {
        let Some(start) = start_time(pgid) else {
            return;
        };
        let path = self.dir.join(format!("{}.pid", self.id));
        if let Err(e) = std::fs::write(&path, format!("{pgid} {start}\n")) {
            warn!(task = %self.id, error = %e, "cannot record the task's process group");
        }
    }
}

/// SIGTERM to the group now, SIGKILL after the grace period if it still runs.
fn terminate(pgid: i32, id: String, procs: Arc<Mutex<BTreeMap<String, Entry>>>) {
    debug!(task = %id, pgid, "stopping the task");
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    tokio::spawn(async move {
        tokio::time::sleep(STOP_GRACE).await;
        let running = procs
            .lock()
            .map(|p| p.get(&id).is_some_and(|e| e.process == Process::Running))
            .unwrap_or(false);
        if running {
            warn!(task = %id, "the task did not stop on SIGTERM: killing it");
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    });
}

/// Appends what `from` produces to the log at `path`, rotating it at [`LOG_LIMIT`].
async fn copy_to_log(from: Option<impl tokio::io::AsyncRead + Unpin>, path: PathBuf) {
    let Some(mut from) = from else { return };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Err(e) = append_bounded(&path, &buf[..n]) {
            debug!(log = %path.display(), error = %e, "cannot write the task log");
        }
    }
}

/// Appends `bytes` to the log, moving it to `.1` first when it has reached the limit.
pub fn append_bounded(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= LOG_LIMIT) {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        std::fs::rename(path, rotated)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The start time (clock ticks since boot, field 22 of `/proc/PID/stat`) of a process.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Kills the process groups a previous daemon recorded, when they are still the same
/// processes (same start time), and removes the records.
fn kill_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "pid") {
            continue;
        }
        let record = std::fs::read_to_string(&path).unwrap_or_default();
        let mut fields = record.split_whitespace();
        let (Some(Ok(pgid)), Some(Ok(start))) = (
            fields.next().map(str::parse::<i32>),
            fields.next().map(str::parse::<u64>),
        ) else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        if start_time(pgid) == Some(start) {
            warn!(pgid, record = %path.display(), "killing a task left running by a previous secnetd");
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(&path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn logs_rotate_at_the_limit_and_keep_one_old_copy() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        let chunk = vec![b'x'; (LOG_LIMIT / 2) as usize];
        for _ in 0..5 {
            append_bounded(&log, &chunk).unwrap();
        }
        let len = std::fs::metadata(&log).unwrap().len();
        let old = std::fs::metadata(dir.path().join("t.log.1")).unwrap().len();
        assert!(len <= LOG_LIMIT && old <= LOG_LIMIT, "{len} {old}");
        assert_eq!(
            len + old,
            3 * LOG_LIMIT / 2,
            "at most two files of the limit"
        );
    }

    #[test]
    fn start_times_are_read_past_odd_command_names() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(-1), None);
    }
}
