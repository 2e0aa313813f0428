//! Running external commands: captured output, timeouts, polling.

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::bail;

/// Exit status and captured output of a finished command.
///
/// `status` is the exit code; a process killed by signal `n` reports `128 + n`,
/// a command that timed out reports [`CmdOutput::TIMED_OUT`] and one that could
/// not be started at all reports [`CmdOutput::NOT_STARTED`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// Status of a command killed because it ran past its timeout.
    pub const TIMED_OUT: i32 = 124;
    /// Status of a command that could not be started (binary missing, ...).
    pub const NOT_STARTED: i32 = 127;

    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// A `CmdOutput` describing a command that could not be run at all.
    pub fn not_started(why: impl std::fmt::Display) -> CmdOutput {
        CmdOutput {
            status: Self::NOT_STARTED,
            stdout: String::new(),
            stderr: why.to_string(),
        }
    }

    pub(crate) fn from_output(out: std::process::Output) -> CmdOutput {
        CmdOutput {
            status: exit_code(out.status),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Human-readable report: status, then stdout and stderr when non-empty.
    pub fn describe(&self) -> String {
        let mut s = format!("exit code {}", self.status);
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let text = text.trim_end();
            if !text.is_empty() {
                let _ = write!(s, "\n--- {name} ---\n{text}");
            }
        }
        s
    }
}

/// Exit code of a finished process (`128 + signal` when killed by a signal).
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    match status.code() {
        Some(c) => c,
        None => 128 + status.signal().unwrap_or(0),
    }
}

/// Runs `cmd` to completion with stdin closed and captures its output.
pub(crate) fn run(cmd: &mut Command) -> CmdOutput {
    tracing::debug!(?cmd, "running");
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) => CmdOutput::from_output(out),
        Err(e) => CmdOutput::not_started(format!(
            "cannot run {:?}: {e}",
            cmd.get_program().to_string_lossy()
        )),
    }
}

/// Runs `cmd` with stdin closed; kills it (SIGKILL) if it is still running
/// after `timeout`, in which case the status is [`CmdOutput::TIMED_OUT`].
pub(crate) fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    tracing::debug!(?cmd, ?timeout, "running");
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return CmdOutput::not_started(format!("cannot run {program:?}: {e}")),
    };
    let out_reader = child.stdout.take().map(|mut r| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    });
    let err_reader = child.stderr.take().map(|mut r| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    });
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(25));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return CmdOutput::not_started(format!("waiting for {program:?} failed: {e}"));
            }
        }
    };
    let text = |h: Option<thread::JoinHandle<Vec<u8>>>, finished: bool| -> String {
        match h {
            // A timed-out command may have left a grandchild holding the pipe:
            // only collect its output when the reader is already done.
            Some(h) if finished || h.is_finished() => h
                .join()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    match status {
        Some(st) => CmdOutput {
            status: exit_code(st),
            stdout: text(out_reader, true),
            stderr: text(err_reader, true),
        },
        None => {
            thread::sleep(Duration::from_millis(20));
            let mut stderr = text(err_reader, false);
            let _ = write!(
                stderr,
                "{}secnet-lab: {program} killed after timeout of {timeout:?}",
                if stderr.is_empty() || stderr.ends_with('\n') {
                    ""
                } else {
                    "\n"
                }
            );
            CmdOutput {
                status: CmdOutput::TIMED_OUT,
                stdout: text(out_reader, false),
                stderr,
            }
        }
    }
}

/// An error that makes [`wait_for`] give up at once instead of polling on
/// (e.g. "the daemon exited").
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// Polls `f` every 50 ms until it returns `Ok(Some(value))` or `timeout` passes.
///
/// `Ok(None)` means "not yet"; `Err(e)` also means "not yet" and `e` is kept
/// as the last observation for the timeout error (return `Err` with a useful
/// message, e.g. "3 of 5 nodes ready"). An error that is (or wraps) a
/// [`Fatal`] stops the wait immediately. `f` is always called at least once.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let last = match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not ready yet".to_owned(),
            Err(e) => {
                if e.downcast_ref::<Fatal>().is_some() {
                    return Err(e.context(format!("gave up waiting for {what}")));
                }
                format!("{e:#}")
            }
        };
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "timed out after {:.1}s ({attempts} attempts) waiting for {what}; last observation: {}",
                (now - start).as_secs_f64(),
                last
            );
        }
        thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// Like [`wait_for`] for a boolean condition: polls until `f` returns `Ok(true)`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    wait_for(what, timeout, || Ok(f()?.then_some(())))
}

/// Quotes a command line for display (single quotes where needed).
pub fn shell_quote<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
            {
                a.to_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Pids of this machine's processes whose command line (arguments joined by spaces) satisfies
/// `matches`. Every lab host shares the machine's pid space, so a test finds a service's task
/// processes this way.
pub fn pids_where(matches: impl Fn(&str) -> bool) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| matches(&String::from_utf8_lossy(&c).replace('\0', " ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_returns_value() {
        let mut n = 0;
        let v = wait_for("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            Ok((n >= 3).then_some(n))
        })
        .expect("wait");
        assert_eq!(v, 3);
    }

    #[test]
    fn wait_for_timeout_names_what_and_last_observation() {
        let err = wait_for::<()>("the moon", Duration::from_millis(120), || {
            anyhow::bail!("still {} km away", 384_400)
        })
        .expect_err("must time out");
        let msg = format!("{err:#}");
        assert!(msg.contains("the moon"), "{msg}");
        assert!(msg.contains("still 384400 km away"), "{msg}");
    }

    #[test]
    fn wait_for_fatal_stops_at_once() {
        let mut calls = 0;
        let start = Instant::now();
        let err = wait_for::<()>("x", Duration::from_secs(10), || {
            calls += 1;
            Err(Fatal("daemon exited".into()).into())
        })
        .expect_err("fatal");
        assert_eq!(calls, 1);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(format!("{err:#}").contains("daemon exited"));
    }

    #[test]
    fn wait_until_bool() {
        let mut n = 0;
        wait_until("n", Duration::from_secs(5), || {
            n += 1;
            Ok(n == 2)
        })
        .expect("wait");
        assert_eq!(n, 2);
    }

    #[test]
    fn run_with_timeout_kills() {
        let start = Instant::now();
        let out = run_with_timeout(Command::new("sleep").arg("30"), Duration::from_millis(200));
        assert_eq!(out.status, CmdOutput::TIMED_OUT);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(out.stderr.contains("timeout"), "{}", out.stderr);
    }

    #[test]
    fn run_captures_output_and_status() {
        let out = run_with_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 7"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.status, 7);
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.success());
        let out = run(Command::new("sh").args(["-c", "kill -9 $$"]));
        assert_eq!(out.status, 128 + 9);
        let out = run(&mut Command::new("/nonexistent/binary"));
        assert_eq!(out.status, CmdOutput::NOT_STARTED);
    }

    #[test]
    fn quoting() {
        assert_eq!(
            shell_quote(&["secnet", "--opt", "a b", "it's", ""]),
            r#"secnet --opt 'a b' 'it'\''s' ''"#
        );
    }
}
