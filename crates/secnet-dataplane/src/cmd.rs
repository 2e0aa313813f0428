//! Running `nft` (through `nsenter` for another namespace): strict mode's
//! only tool. Links, addresses, routes and neighbours go through netlink
//! ([`crate::nl`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Longest a single `nft` process may run.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of a binary that may live in an sbin directory missing from `$PATH`.
fn find_bin(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Which tool a command line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Nft,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Nft => "nft",
        }
    }
}

/// `tool args...`, inside namespace `netns` when given (via `nsenter --net=`).
pub(crate) fn command(netns: Option<&Path>, tool: Tool, args: &[&str]) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new(find_bin("nsenter"));
            let mut opt = std::ffi::OsString::from("--net=");
            opt.push(ns.as_os_str());
            c.arg(opt).arg("--").arg(find_bin(tool.name()));
            c
        }
        None => Command::new(find_bin(tool.name())),
    };
    cmd.args(args);
    cmd
}

/// Exit status (`None`: killed or timed out) and output of a finished command.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(c) => format!("exit code {c}"),
            None => "killed or timed out".to_string(),
        };
        let err = self.stderr.trim();
        if err.is_empty() {
            status
        } else {
            format!("{status}: {err}")
        }
    }
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd` with `input` on stdin, capturing output, killing it after
/// `timeout`.
pub(crate) fn run(mut cmd: Command, input: &str, timeout: Duration) -> std::io::Result<Output> {
    tracing::trace!(?cmd, input, "running");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take();
    let input = input.to_owned();
    let writer = thread::spawn(move || {
        if let Some(mut s) = stdin {
            let _ = s.write_all(input.as_bytes());
        }
    });
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let _ = writer.join();
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsenter_command_line() {
        let c = command(Some(Path::new("/x/ns")), Tool::Nft, &["-f", "-"]);
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[0], "--net=/x/ns");
        assert!(args[2].ends_with("nft"));
        assert_eq!(&args[3..], ["-f", "-"]);
    }
}
