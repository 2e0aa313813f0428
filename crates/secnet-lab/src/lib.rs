//! `secnet-lab`: a throw-away multi-host test network built from Linux
//! network namespaces, for secnet's tests, benchmarks and README demo.
//!
//! A [`Lab`] of N hosts consists of
//!
//! * a lab namespace `<prefix>-lab` holding two bridges: `ctl0`, the control
//!   segment (`192.0.2.0/24`), and `data0`, the data segment
//!   (`198.51.100.0/24`);
//! * per host `hN` a namespace `<prefix>-hN` with `lo` up, `eth0` =
//!   `192.0.2.(10+N)/24` (peer `cN` on `ctl0`) and `eth1` =
//!   `198.51.100.(10+N)/24` (peer `dN` on `data0`), MTU 1500, no IPv6 on the
//!   segments;
//! * a temp dir with per-host subdirectories (state dir, daemon socket, log).
//!
//! [`Lab::start_all`] / [`Host::start_daemon`] run one `secnetd` per host
//! inside its namespace; [`Host::cli`] runs the `secnet` CLI against a
//! host's socket. Dropping the lab (also while unwinding from a panic) stops
//! the daemons, kills whatever else runs in its namespaces, deletes them and
//! removes the temp dir (kept with `SECNET_LAB_KEEP=1`). Nothing is ever
//! configured in the root network namespace. Every name starts with `snl`,
//! so [`down_all`] (`secnet-lab down`) can remove leftovers of labs whose
//! process died without cleaning up.
//!
//! [`Capture`] records packets with tcpdump (e.g. on a bridge port in the
//! lab namespace) and [`parse_pcap`] / [`Ipv4Packet`] help asserting on them.
//!
//! Everything needs root and iproute2; captures need tcpdump. [`bench`] is the benchmark
//! bed behind `secnet-lab bench` (iperf3 and ping; the peers it compares with are
//! installed on demand).
//!
//! ```no_run
//! use secnet_lab::{Lab, LabConfig};
//! # fn main() -> anyhow::Result<()> {
//! let mut lab = Lab::new(LabConfig::new(2))?;
//! let h2 = lab.host(1).ctl_ip().to_string();
//! assert!(lab.host(0).exec(&["ping", "-c1", "-W2", &h2]).success());
//! lab.start_all()?;
//! let nodes = lab.host(0).cli_json(&["node", "ls", "--format", "json"])?;
//! # let _ = nodes; Ok(()) }
//! ```

pub mod bench;
mod capture;
mod cmd;
mod lab;
mod netns;

pub mod traffic;

pub use capture::{
    parse_pcap, Capture, Ipv4Packet, Pcap, PcapPacket, CAPTURE_SETTLE, CAPTURE_START_TIMEOUT,
    IPPROTO_ESP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, LINKTYPE_ETHERNET,
};
pub use cmd::{pids_where, shell_quote, wait_for, wait_until, CmdOutput, Fatal};
pub use lab::{
    bin_dir, normalize_prefix, Host, Lab, LabConfig, BIN_DIR_ENV, CLI_TIMEOUT, CTL_BRIDGE,
    CTL_IFACE, CTL_NET, DAEMON_START_TIMEOUT, DAEMON_STOP_TIMEOUT, DATA_BRIDGE, DATA_IFACE,
    DATA_NET, DROP_STOP_TIMEOUT, KEEP_ENV, LINK_MTU, LOG_TAIL_LINES, MAX_HOSTS, SEGMENT_PREFIX_LEN,
};
pub use netns::{
    down_all, list_netns, netns_exists, netns_pids, release_mounts_under, unique_prefix,
    NAME_PREFIX,
};
