//! The benchmark bed behind `secnet-lab bench`.
//!
//! * [`run_datapath`]: a lab of two secnet hosts (plus two pairs of bare namespaces for the
//!   peers) and, in interleaved rounds, iperf3 throughput (1 and 4 streams, both
//!   directions), ping RTT idle and under load, tunnel CPU per Gbit/s and UDP drops for the
//!   raw underlay, an unencrypted and an encrypted secnet network, and kernel VXLAN inside
//!   wireguard-go and inside boringtun-cli. Writes `<date>-datapath.md` and `.json`.
//! * [`run_control`]: labs of N hosts and the time a `network create`, an `endpoint create`
//!   and a `key rotate` take to reach every host. Writes `<date>-control.md` and `.json`.
//!
//! Everything runs inside namespaces the bed creates; nothing touches the root namespace
//! (the peers' UAPI sockets live in `/var/run/wireguard`, named after the lab and removed
//! afterwards). See `benches/README.md` for how to read the results.

mod control;
mod datapath;
mod machine;
mod peers;
mod report;
pub mod stats;

use std::fmt::Display;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use crate::cmd::{run_with_timeout, CmdOutput};
use crate::lab::{Host, Lab};

pub use control::{run_control, ControlOptions};
pub use datapath::{run_datapath, DatapathOptions, PathId};
pub use machine::MachineInfo;

/// Where results go by default: the workspace's `benches/results` (found from this crate's
/// source location), else `./benches/results`.
pub fn default_output_dir() -> PathBuf {
    let benches = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches");
    match benches.canonicalize() {
        Ok(dir) if dir.is_dir() => dir.join("results"),
        _ => PathBuf::from("benches/results"),
    }
}

/// After Ctrl-C: removes every lab namespace starting with `prefix` (killing what runs in
/// them) and the peers' UAPI sockets named after it.
pub fn interrupt_cleanup(prefix: &str) -> anyhow::Result<usize> {
    peers::remove_sockets(&peers::iface_tag(prefix));
    crate::netns::down_all(prefix)
}

/// One line of user output on stdout (a closed stdout is ignored).
pub(crate) fn say(line: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Path of a lab host's network namespace, for `nsenter --net=`.
pub(crate) fn host_ns(host: &Host) -> String {
    format!("/run/netns/{}", host.netns())
}

/// `nsenter --net=NS -- args...` (stays in our mount namespace, so the daemons' namespace
/// bind mounts and `/var/run/wireguard` are the same as ours).
pub(crate) fn ns_command(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={ns}")).arg("--").args(args);
    c
}

/// Runs `args` inside `ns`, killed after `timeout`.
pub(crate) fn ns_run(ns: &str, args: &[&str], timeout: Duration) -> CmdOutput {
    run_with_timeout(&mut ns_command(ns, args), timeout)
}

/// [`ns_run`], returning stdout on success.
pub(crate) fn ns_ok(ns: &str, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
    let out = ns_run(ns, args, timeout);
    if !out.success() {
        bail!(
            "`{}` in {ns} failed with {}",
            crate::cmd::shell_quote(args),
            out.describe()
        );
    }
    Ok(out.stdout)
}

/// A background process killed (and reaped) when dropped.
#[derive(Debug)]
pub(crate) struct Background(pub Child);

impl Background {
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
    /// True while it runs.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`, else 100).
pub(crate) fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// CPU time (user + system, all threads) a process has used so far, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    stats::parse_proc_stat_ticks(&text)
}

/// The UDP counters of `/proc/net/snmp` as seen inside namespace `ns`.
pub(crate) fn udp_counters(ns: &str) -> anyhow::Result<stats::UdpCounters> {
    let text = ns_ok(ns, &["cat", "/proc/net/snmp"], Duration::from_secs(10))?;
    stats::parse_snmp_udp(&text)
}

/// Forms a cluster of the first `hosts` hosts of `lab` (those whose daemon runs): host 0
/// inits (data path on eth1, addresses from `pool`), the next `managers - 1` join as
/// managers, the rest as workers.
pub(crate) fn form_cluster(
    lab: &Lab,
    hosts: usize,
    managers: usize,
    pool: &str,
) -> anyhow::Result<()> {
    lab.form_cluster(hosts, managers, &["--default-addr-pool", pool])
}

/// An endpoint as `endpoint create --format json` reports it.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub ip: String,
    pub mac: String,
    pub netns: String,
}

/// `secnet endpoint create --network NET --name NAME` on `host`.
pub(crate) fn create_endpoint(host: &Host, network: &str, name: &str) -> anyhow::Result<Endpoint> {
    let v = host.cli_json(&[
        "endpoint",
        "create",
        "--network",
        network,
        "--name",
        name,
        "--format",
        "json",
    ])?;
    let field = |k: &str| -> anyhow::Result<String> {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("`endpoint create` printed no {k}: {v}"))
    };
    Ok(Endpoint {
        ip: field("ip")?,
        mac: field("mac")?,
        netns: field("netns")?,
    })
}
