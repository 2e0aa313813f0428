//! The task runner's executor against the real kernel: a process started inside a network
//! namespace the test made (`ip netns add`, removed on drop), its output in the task log,
//! its environment, and its stop; and a restarted runner killing what a crashed one left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use secnet_control::agent::tasks::Process;
use secnet_control::daemon::tasks::TaskRunner;

/// A network namespace made with `ip netns add`, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("sntr-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {name}");
        Netns(name)
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log(runner: &TaskRunner, id: &str) -> String {
    std::fs::read_to_string(runner.log_path(id)).unwrap_or_default()
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_in_its_namespace_with_its_env_logs_and_stops() {
    let ns = Netns::new("run");
    let dir = tempfile::tempdir().unwrap();
    let runner = TaskRunner::new(dir.path());
    let env = BTreeMap::from([("GREETING".to_string(), "hello".to_string())]);
    let script = "readlink /proc/self/ns/net; echo \"$GREETING out\"; echo err >&2; exec sleep 60";
    runner.start("t1", &sh(script), &env, &ns.path());
    assert_eq!(runner.processes().get("t1"), Some(&Process::Running));
    wait_for("the task's output", Duration::from_secs(10), || {
        let l = log(&runner, "t1");
        l.contains("hello out") && l.contains("err")
    });
    // The namespace it runs in is the one made for it, not the test's.
    let inode = std::fs::metadata(ns.path()).unwrap().ino();
    assert!(
        log(&runner, "t1").contains(&format!("net:[{inode}]")),
        "{}",
        log(&runner, "t1")
    );
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(!log(&runner, "t1").contains(own.to_str().unwrap()));
    // The daemon's environment is not the task's.
    assert!(!log(&runner, "t1").contains("CARGO"));

    runner.stop("t1");
    wait_for("the task to stop", Duration::from_secs(5), || {
        matches!(runner.processes().get("t1"), Some(Process::Exited { .. }))
    });
    assert_eq!(
        runner.processes().get("t1"),
        Some(&Process::Exited {
            code: None,
            signal: Some(15)
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_are_observed_and_bad_commands_are_unstartable() {
    let ns = Netns::new("exit");
    let dir = tempfile::tempdir().unwrap();
    let runner = TaskRunner::new(dir.path());
    runner.start("t1", &sh("exit 7"), &BTreeMap::new(), &ns.path());
    runner.start(
        "t2",
        &["/nonexistent/program".to_string()],
        &BTreeMap::new(),
        &ns.path(),
    );
    runner.start(
        "t3",
        &sh("exit 0"),
        &BTreeMap::new(),
        Path::new("/nonexistent/netns"),
    );
    wait_for("all three to end", Duration::from_secs(10), || {
        runner.processes().values().all(|p| *p != Process::Running)
    });
    let p = runner.processes();
    assert_eq!(
        p["t1"],
        Process::Exited {
            code: Some(7),
            signal: None
        }
    );
    assert_eq!(p["t2"], Process::Unstartable);
    assert_eq!(p["t3"], Process::Unstartable, "no namespace, no process");
    // Ended processes are forgotten once their task leaves the state.
    runner.forget(|id| id == "t1");
    assert_eq!(runner.processes().keys().collect::<Vec<_>>(), ["t1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runner_kills_what_a_crashed_one_left() {
    let ns = Netns::new("crash");
    let dir = tempfile::tempdir().unwrap();
    let crashed = TaskRunner::new(dir.path());
    crashed.start(
        "t1",
        &sh("echo $$; exec sleep 60"),
        &BTreeMap::new(),
        &ns.path(),
    );
    wait_for("its pid", Duration::from_secs(10), || {
        !log(&crashed, "t1").is_empty()
    });
    let pid: i32 = log(&crashed, "t1").trim().parse().unwrap();
    let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists();
    assert!(alive(pid));
    // The daemon dies without stopping its tasks: a new one on the same run directory.
    std::mem::forget(crashed);
    let _restarted = TaskRunner::new(dir.path());
    wait_for("the leftover to die", Duration::from_secs(5), || {
        // Killed, then reaped by the first runtime's reaper (or a zombie until then).
        !alive(pid)
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
}
