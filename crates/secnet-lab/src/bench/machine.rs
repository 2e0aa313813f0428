//! The machine description every result file starts with.

use std::path::Path;

use serde::Serialize;

/// What the numbers were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct MachineInfo {
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs this process may run on.
    pub cores: usize,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// `/proc/loadavg` (1, 5, 15 minutes) when the run started.
    pub load_start: String,
    /// `/proc/loadavg` when the run ended.
    pub load_end: String,
    /// `release` or `debug`: the profile of the secnetd/secnet binaries measured.
    pub profile: String,
    /// Where those binaries are.
    pub bin_dir: String,
    /// The source tree's commit (`git rev-parse --short HEAD`), with a note when the tree had
    /// uncommitted changes.
    pub source: String,
    /// Unix time the run started.
    pub started_unix: u64,
    /// Unix time the run ended.
    pub ended_unix: u64,
}

/// The first three fields of /proc/loadavg.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `git rev-parse --short HEAD` of the tree this crate was built from, `+ uncommitted
/// changes` when `git status` lists any; `unknown` without git.
fn source_revision() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{rev} + uncommitted changes"),
            _ => rev,
        },
        None => "unknown".into(),
    }
}

/// The profile a binary directory was built with, from its name (`target/release`).
fn profile_of(bin_dir: &Path) -> String {
    match bin_dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => "release".into(),
        Some("debug") => "debug".into(),
        Some(other) => format!("unknown ({other})"),
        None => "unknown".into(),
    }
}

impl MachineInfo {
    /// Describes this machine now (the end fields are filled by [`MachineInfo::finish`]).
    pub fn now(bin_dir: &Path) -> MachineInfo {
        let load = loadavg();
        let now = super::stats::unix_now();
        MachineInfo {
            cpu_model: cpu_model(),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            load_start: load.clone(),
            load_end: load,
            profile: profile_of(bin_dir),
            bin_dir: bin_dir.display().to_string(),
            source: source_revision(),
            started_unix: now,
            ended_unix: now,
        }
    }

    /// Records the load average and time at the end of the run.
    pub fn finish(&mut self) {
        self.load_end = loadavg();
        self.ended_unix = super::stats::unix_now();
    }

    /// A Markdown bullet list.
    pub fn markdown(&self) -> String {
        format!(
            "- CPU: {} ({} cores available)\n- kernel: {}\n- load average (1/5/15 min): {} at start, {} at end\n- secnet binaries: {} build ({}); source tree when run: {}\n- run: {} to {} ({} s)\n",
            self.cpu_model,
            self.cores,
            self.kernel,
            self.load_start,
            self.load_end,
            self.profile,
            self.bin_dir,
            self.source,
            super::stats::utc_datetime(self.started_unix),
            super::stats::utc_datetime(self.ended_unix),
            self.ended_unix.saturating_sub(self.started_unix)
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn profiles() {
        assert_eq!(profile_of(Path::new("/x/target/release")), "release");
        assert_eq!(profile_of(Path::new("/x/target/debug")), "debug");
        assert_eq!(profile_of(Path::new("/usr/bin")), "unknown (bin)");
    }
}
