//! Throughput bed for the tunnel's I/O: two namespaces joined by a veth pair, a `Tunnel` in
//! each (PSK on, as secnet runs them), iperf3 over four paths, interleaved rounds, medians.
//!
//! ```text
//! cargo test --release -p secnet-tunnel --test throughput -- --ignored --nocapture
//! ```
//!
//! Paths, all between namespace `a` (client) and `b` (server):
//!
//! | path | what | MTU |
//! |---|---|---|
//! | `veth` | the underlay itself, 198.51.100.0/24 | 1500 |
//! | `vxlan` | kernel VXLAN over the veth (secnet's unencrypted overlay) | 1450 |
//! | `tunnel` | TCP straight over the tunnel addresses, 100.96.0.0/24 | 1440 |
//! | `vxlan-tunnel` | kernel VXLAN between the tunnel addresses (secnet's encrypted overlay) | 1390 |
//!
//! Environment (all optional):
//!
//! - `SECNET_BENCH_SECS` (default 10): seconds per iperf3 run (one more is omitted at start).
//! - `SECNET_BENCH_ROUNDS` (default 3): interleaved rounds; medians are reported.
//! - `SECNET_BENCH_PATHS` (default all): comma-separated subset of the paths above.
//! - `SECNET_BENCH_STREAMS` (default `1,4`): parallel TCP streams per run.
//! - `SECNET_BENCH_REVERSE` (default off): `1` to also measure b → a.
//! - `SECNET_BENCH_PINGS` (default 200): pings for the idle round-trip time.
//! - `SECNET_BENCH_VARIANTS` (default one, the default I/O): `;`-separated values of
//!   `SECNET_TUNNEL_IO` to compare (see the crate docs), e.g. `;off` compares the default
//!   with every I/O feature off. The tunnels are restarted with each variant for each run.
//!
//! Before the runs of each path (and variant) it pings the server (200 times, 10 ms apart) for
//! the idle round-trip time (median and p99). For each run it records Gbit/s (received), the CPU time both tunnels used (the test
//! process runs nothing else) as a share of one core, and the UDP receive errors
//! (`RcvbufErrors` + `InErrors` from `/proc/net/snmp`) in the receiving namespace. Each run
//! is also printed as one `RESULT` line, for scripts that interleave several builds.
//!
//! Needs root, iperf3 (`apt-get install -y iperf3`), iproute2 and nsenter. Nothing is
//! configured in the root namespace.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Netns;
use secnet_tunnel::{PresharedKey, StaticKey, Tunnel, TunnelConfig};

const UNDERLAY_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const UNDERLAY_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const TUNNEL_A: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 1);
const TUNNEL_B: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 2);
const PORT: u16 = 51820;
const TUN: &str = "sntun0";
/// The daemon's TUN MTU over a 1500-byte IPv4 underlay (1500 − 60).
const TUN_MTU: u32 = 1440;
const IPERF_PORT: u16 = 5201;

struct Path {
    name: &'static str,
    server: Ipv4Addr,
    tunnel: bool,
}

const PATHS: [Path; 4] = [
    Path {
        name: "veth",
        server: UNDERLAY_B,
        tunnel: false,
    },
    Path {
        name: "vxlan",
        server: Ipv4Addr::new(10, 78, 0, 2),
        tunnel: false,
    },
    Path {
        name: "tunnel",
        server: TUNNEL_B,
        tunnel: true,
    },
    Path {
        name: "vxlan-tunnel",
        server: Ipv4Addr::new(10, 77, 0, 2),
        tunnel: true,
    },
];

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

struct Bed {
    tunnels: Option<(Tunnel, Tunnel)>,
    a: Netns,
    b: Netns,
    server: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        let (dir, a, b) = common::veth_pair(
            "secnet-tunnel-bench",
            "the bed creates network namespaces and TUN devices",
        );
        for (ns, me, peer) in [(&a, 1, 2), (&b, 2, 1)] {
            // Unencrypted overlay: VXLAN between the underlay addresses.
            ns.ip(&[
                "link",
                "add",
                "vxr",
                "mtu",
                "1450",
                "type",
                "vxlan",
                "id",
                "4100",
                "local",
                &format!("198.51.100.{me}"),
                "remote",
                &format!("198.51.100.{peer}"),
                "dstport",
                "4789",
                "nolearning",
            ]);
            ns.ip(&["addr", "add", &format!("10.78.0.{me}/24"), "dev", "vxr"]);
            ns.ip(&["link", "set", "vxr", "up"]);
        }
        let mut bed = Bed {
            tunnels: None,
            a,
            b,
            server: None,
            _dir: dir,
        };
        bed.start_tunnels("");
        for (ns, me, peer) in [(&bed.a, 1, 2), (&bed.b, 2, 1)] {
            // Encrypted overlay: VXLAN between the tunnel addresses, as secnet programs it.
            ns.ip(&[
                "link",
                "add",
                "vxt",
                "mtu",
                &(TUN_MTU - 50).to_string(),
                "type",
                "vxlan",
                "id",
                "4200",
                "local",
                &format!("100.96.0.{me}"),
                "remote",
                &format!("100.96.0.{peer}"),
                "dstport",
                "4789",
                "nolearning",
            ]);
            ns.ip(&["addr", "add", &format!("10.77.0.{me}/24"), "dev", "vxt"]);
            ns.ip(&["link", "set", "vxt", "up"]);
        }
        bed.server = Some(
            bed.b
                .cmd("iperf3")
                .args(["-s", "-p", &IPERF_PORT.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run iperf3 (apt-get install -y iperf3)"),
        );
        bed
    }

    /// (Re)starts both tunnels with `SECNET_TUNNEL_IO=io`, keys them and waits for a session.
    fn start_tunnels(&mut self, io: &str) {
        // Stop the old pair first: the new one takes the same device names and port.
        self.tunnels = None;
        std::env::set_var("SECNET_TUNNEL_IO", io);
        let (ka, kb) = (StaticKey::generate(), StaticKey::generate());
        let (pa, pb) = (ka.public(), kb.public());
        let start = |ns: &Netns, tun_addr: Ipv4Addr, listen: Ipv4Addr, key: StaticKey| {
            ns.run(move || {
                Tunnel::start(TunnelConfig {
                    listen: SocketAddr::from((listen, PORT)),
                    tun_name: TUN.into(),
                    tun_addr,
                    tun_prefix: 24,
                    mtu: TUN_MTU,
                    private_key: key,
                })
            })
            .expect("start tunnel")
        };
        let ta = start(&self.a, TUNNEL_A, UNDERLAY_A, ka);
        let tb = start(&self.b, TUNNEL_B, UNDERLAY_B, kb);
        let psk: [u8; 32] = rand::random();
        for (tunnel, key, endpoint, ip) in [
            (&ta, pb, UNDERLAY_B, TUNNEL_B),
            (&tb, pa, UNDERLAY_A, TUNNEL_A),
        ] {
            tunnel
                .set_preshared_keys(vec![PresharedKey::new(1, psk)], 1)
                .unwrap();
            common::set_only_peer(tunnel, key, endpoint, PORT, ip);
        }
        // A TUN device that is re-created loses the VXLAN device's route: nothing to do, the
        // VXLAN device routes by its remote address each time. Wait for a session.
        let out = self.a.ping(TUNNEL_B, 3, None);
        assert!(out.status.success(), "no session through the tunnel");
        self.tunnels = Some((ta, tb));
    }

    /// Idle round-trip time over `path`: `SECNET_BENCH_PINGS` pings 10 ms apart, (median,
    /// p99) in ms. Not closer: below 10 ms iputils' ping busy-waits between echoes and
    /// takes a whole vCPU from the tunnels it measures.
    fn rtt(&self, path: &Path) -> (f64, f64) {
        let out = self
            .a
            .cmd("ping")
            .args([
                "-n",
                "-c",
                &std::env::var("SECNET_BENCH_PINGS").unwrap_or_else(|_| "200".into()),
                "-i",
                "0.01",
                "-W",
                "1",
            ])
            .arg(path.server.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut times: Vec<f64> = text
            .lines()
            .filter_map(|l| {
                l.split("time=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        if times.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        let p99 = times[((times.len() * 99) / 100).min(times.len() - 1)];
        (median(times), p99)
    }

    /// One iperf3 run; `None` if it failed (printed).
    fn run(&self, path: &Path, streams: u32, reverse: bool, secs: u32) -> Option<Run> {
        let (receiver, sender) = if reverse {
            (&self.a, &self.b)
        } else {
            (&self.b, &self.a)
        };
        let before = udp_counters(receiver);
        let before_tx = udp_counters(sender);
        let cpu_before = process_cpu();
        let load = loadavg();
        let started = Instant::now();
        let mut cmd = self.a.cmd("iperf3");
        cmd.args([
            "-c",
            &path.server.to_string(),
            "-p",
            &IPERF_PORT.to_string(),
            "-t",
            &secs.to_string(),
            "-O",
            "1",
            "-P",
            &streams.to_string(),
            "-J",
        ]);
        if reverse {
            cmd.arg("-R");
        }
        let out = cmd.output().unwrap();
        let elapsed = started.elapsed();
        let cpu = process_cpu() - cpu_before;
        let after = udp_counters(receiver);
        let after_tx = udp_counters(sender);
        let json: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(json) => json,
            Err(e) => {
                println!(
                    "iperf3 to {} failed ({e}): {}",
                    path.server,
                    String::from_utf8_lossy(&out.stderr)
                );
                return None;
            }
        };
        let Some(bps) = json["end"]["sum_received"]["bits_per_second"].as_f64() else {
            println!("iperf3 to {}: {}", path.server, json["error"]);
            return None;
        };
        let retransmits = json["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
        Some(Run {
            gbits: bps / 1e9,
            cpu: cpu.as_secs_f64() / elapsed.as_secs_f64(),
            udp_rx_errors: after.rx_errors.saturating_sub(before.rx_errors),
            udp_tx_errors: after_tx.tx_errors.saturating_sub(before_tx.tx_errors),
            retransmits,
            load,
        })
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        self.tunnels = None;
    }
}

struct Run {
    gbits: f64,
    /// CPU time of both tunnels, in cores.
    cpu: f64,
    udp_rx_errors: u64,
    udp_tx_errors: u64,
    retransmits: u64,
    load: f64,
}

#[derive(Default)]
struct UdpCounters {
    rx_errors: u64,
    tx_errors: u64,
}

/// UDP error counters of a namespace (`/proc/net/snmp`, read from inside it).
fn udp_counters(ns: &Netns) -> UdpCounters {
    let out = ns.cmd("cat").arg("/proc/net/snmp").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return UdpCounters::default();
    };
    let fields: BTreeMap<&str, u64> = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter_map(|(n, v)| Some((n, v.parse().ok()?)))
        .collect();
    let get = |name: &str| fields.get(name).copied().unwrap_or(0);
    UdpCounters {
        rx_errors: get("InErrors") + get("RcvbufErrors"),
        tx_errors: get("SndbufErrors"),
    }
}

/// CPU time (user + system) of this process: the tunnels' threads.
fn process_cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} vCPUs ({model}), Linux {}", kernel.trim())
}

#[test]
#[ignore = "benchmark: minutes long, needs root and iperf3"]
fn throughput() {
    let secs: u32 = env_or("SECNET_BENCH_SECS", "10").parse().unwrap();
    let rounds: u32 = env_or("SECNET_BENCH_ROUNDS", "3").parse().unwrap();
    let wanted = env_or("SECNET_BENCH_PATHS", "veth,vxlan,tunnel,vxlan-tunnel");
    let paths: Vec<&Path> = PATHS
        .iter()
        .filter(|p| wanted.split(',').any(|w| w == p.name))
        .collect();
    let streams: Vec<u32> = env_or("SECNET_BENCH_STREAMS", "1,4")
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let reverse = env_or("SECNET_BENCH_REVERSE", "0") == "1";
    let variants: Vec<String> = env_or("SECNET_BENCH_VARIANTS", "")
        .split(';')
        .map(str::to_owned)
        .collect();
    let directions: &[bool] = if reverse { &[false, true] } else { &[false] };

    let mut bed = Bed::new();
    let mut current_variant = String::new();
    println!(
        "machine: {}; load average at start {:.2}",
        machine(),
        loadavg()
    );
    // (path, variant, streams, reverse) -> runs
    let mut results: BTreeMap<(usize, usize, u32, bool), Vec<Run>> = BTreeMap::new();
    // (path, variant) -> idle ping RTTs (median, p99) in ms
    let mut rtts: BTreeMap<(usize, usize), Vec<(f64, f64)>> = BTreeMap::new();
    for round in 0..rounds {
        for (pi, path) in paths.iter().enumerate() {
            for (vi, variant) in variants.iter().enumerate() {
                if !path.tunnel && vi > 0 {
                    continue;
                }
                if path.tunnel && *variant != current_variant {
                    bed.start_tunnels(variant);
                    current_variant.clone_from(variant);
                }
                let (rtt_median, rtt_p99) = bed.rtt(path);
                println!(
                    "RTT round={round} path={} io={variant:?} median_ms={rtt_median:.3} p99_ms={rtt_p99:.3}",
                    path.name
                );
                rtts.entry((pi, vi))
                    .or_default()
                    .push((rtt_median, rtt_p99));
                for &n in &streams {
                    for &rev in directions {
                        let Some(run) = bed.run(path, n, rev, secs) else {
                            continue;
                        };
                        println!(
                            "RESULT round={round} path={} io={variant:?} streams={n} reverse={rev} gbits={:.3} cpu={:.2} udp_rx_errors={} udp_tx_errors={} retransmits={} load={:.2}",
                            path.name, run.gbits, run.cpu, run.udp_rx_errors, run.udp_tx_errors, run.retransmits, run.load
                        );
                        results.entry((pi, vi, n, rev)).or_default().push(run);
                    }
                }
            }
        }
    }
    let reference = |name: &str, n: u32, rev: bool| {
        let pi = paths.iter().position(|p| p.name == name)?;
        let runs = results.get(&(pi, 0, n, rev))?;
        Some(median(runs.iter().map(|r| r.gbits).collect()))
    };
    println!();
    println!(
        "{} rounds of {secs} s, medians; {}; load average at end {:.2}",
        rounds,
        machine(),
        loadavg()
    );
    println!();
    println!("| path | SECNET_TUNNEL_IO | streams | dir | Gbit/s | of veth | of vxlan | tunnel CPU (cores) | UDP rx errors | UDP tx errors | TCP retransmits |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for ((pi, vi, n, rev), runs) in &results {
        let gbits = median(runs.iter().map(|r| r.gbits).collect());
        let ratio = |name| {
            reference(name, *n, *rev)
                .map(|v| format!("{:.0}%", 100.0 * gbits / v))
                .unwrap_or_default()
        };
        println!(
            "| {} | {} | {n} | {} | {gbits:.2} | {} | {} | {:.2} | {} | {} | {} |",
            paths[*pi].name,
            if paths[*pi].tunnel {
                format!("`{}`", variants[*vi])
            } else {
                "-".into()
            },
            if *rev { "b→a" } else { "a→b" },
            ratio("veth"),
            ratio("vxlan"),
            median(runs.iter().map(|r| r.cpu).collect()),
            runs.iter().map(|r| r.udp_rx_errors).max().unwrap_or(0),
            runs.iter().map(|r| r.udp_tx_errors).max().unwrap_or(0),
            median(runs.iter().map(|r| r.retransmits as f64).collect()),
        );
    }
    println!();
    println!("| path | SECNET_TUNNEL_IO | idle RTT median (ms) | idle RTT p99 (ms) |");
    println!("|---|---|---|---|");
    for ((pi, vi), values) in &rtts {
        println!(
            "| {} | {} | {:.3} | {:.3} |",
            paths[*pi].name,
            if paths[*pi].tunnel {
                format!("`{}`", variants[*vi])
            } else {
                "-".into()
            },
            median(values.iter().map(|v| v.0).collect()),
            median(values.iter().map(|v| v.1).collect()),
        );
    }
}
