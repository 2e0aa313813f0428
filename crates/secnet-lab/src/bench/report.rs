//! Turns the bed's samples into Markdown tables (for `benches/results/` and stdout) and JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::datapath::{PathId, PathResult, TcpTest};
use super::stats::{median, percentile, utc_date};
use super::MachineInfo;

/// Everything one data-path run produced.
#[derive(Debug, Clone, Serialize)]
pub struct DatapathReport {
    pub machine: MachineInfo,
    pub rounds: usize,
    pub seconds: u32,
    pub smoke: bool,
    pub iperf3: String,
    pub paths: Vec<PathResult>,
}

/// Medians of one path.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PathSummary {
    pub id: String,
    pub name: String,
    pub skipped: Option<String>,
    /// Median Gbit/s per test, in [`TcpTest::ALL`] order.
    pub gbps: Vec<Option<f64>>,
    pub rtt_idle_median_ms: Option<f64>,
    pub rtt_idle_p99_ms: Option<f64>,
    pub rtt_load_median_ms: Option<f64>,
    pub rtt_load_p99_ms: Option<f64>,
    /// Pings without a reply (idle and under load).
    pub ping_lost: u64,
    /// Median over rounds of the tunnel processes' CPU (both ends) during the 1-stream run,
    /// in % of one core.
    pub cpu_pct_1stream: Option<f64>,
    /// Median over rounds of CPU per throughput during the 1-stream run: % of one core per
    /// Gbit/s (= CPU-seconds per 10 Gbit moved).
    pub cpu_pct_per_gbps_1stream: Option<f64>,
    /// The same for the 4-stream run.
    pub cpu_pct_per_gbps_4stream: Option<f64>,
    /// UDP datagrams received, InErrors and RcvbufErrors over all 1-stream (forward) runs,
    /// both hosts.
    pub udp_in_datagrams_1stream: u64,
    pub udp_in_errors_1stream: u64,
    pub udp_rcvbuf_errors_1stream: u64,
    /// The same over every iperf3 run.
    pub udp_in_errors_all: u64,
    pub udp_rcvbuf_errors_all: u64,
    /// iperf3 runs that failed.
    pub failed_runs: usize,
}

fn summarize(p: &PathResult) -> PathSummary {
    let mut s = PathSummary {
        id: p.id.letter().to_string(),
        name: p.id.name().into(),
        skipped: p.skipped.clone(),
        ..PathSummary::default()
    };
    if p.skipped.is_some() {
        s.gbps = vec![None; TcpTest::ALL.len()];
        return s;
    }
    let runs = |t: TcpTest| p.tcp.iter().filter(move |r| r.test == t);
    s.gbps = TcpTest::ALL
        .iter()
        .map(|t| median(&runs(*t).filter_map(|r| r.gbps).collect::<Vec<_>>()))
        .collect();
    let rtt = |kind: &str| {
        let samples: Vec<f64> = p
            .ping
            .iter()
            .filter(|x| x.kind == kind)
            .flat_map(|x| x.rtts_ms.iter().copied())
            .collect();
        (median(&samples), percentile(&samples, 99.0))
    };
    (s.rtt_idle_median_ms, s.rtt_idle_p99_ms) = rtt("idle");
    (s.rtt_load_median_ms, s.rtt_load_p99_ms) = rtt("load");
    s.ping_lost = p
        .ping
        .iter()
        .map(|x| x.transmitted.saturating_sub(x.received))
        .sum();
    let cpu_pct: Vec<f64> = runs(TcpTest::One)
        .filter_map(|r| r.tunnel_cpu_s.map(|c| 100.0 * c / r.wall_s.max(1e-9)))
        .collect();
    s.cpu_pct_1stream = median(&cpu_pct);
    let per_gbps = |t: TcpTest| {
        median(
            &runs(t)
                .filter(|r| r.gbit > 0.0)
                .filter_map(|r| r.tunnel_cpu_s.map(|c| 100.0 * c / r.gbit))
                .collect::<Vec<_>>(),
        )
    };
    s.cpu_pct_per_gbps_1stream = per_gbps(TcpTest::One);
    s.cpu_pct_per_gbps_4stream = per_gbps(TcpTest::Four);
    for r in &p.tcp {
        s.udp_in_errors_all += r.udp.in_errors;
        s.udp_rcvbuf_errors_all += r.udp.rcvbuf_errors;
        if r.test == TcpTest::One {
            s.udp_in_datagrams_1stream += r.udp.in_datagrams;
            s.udp_in_errors_1stream += r.udp.in_errors;
            s.udp_rcvbuf_errors_1stream += r.udp.rcvbuf_errors;
        }
        if r.gbps.is_none() {
            s.failed_runs += 1;
        }
    }
    s
}

/// One target of issue 5 and how this run did.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    /// `met`, `NOT met` or `n/a` (a path was skipped or failed).
    pub status: String,
}

fn check(target: &str, measured: Option<(f64, String)>, ok: impl Fn(f64) -> bool) -> TargetCheck {
    match measured {
        Some((v, text)) => TargetCheck {
            target: target.into(),
            measured: text,
            status: if ok(v) { "met" } else { "NOT met" }.into(),
        },
        None => TargetCheck {
            target: target.into(),
            measured: "-".into(),
            status: "n/a".into(),
        },
    }
}

/// Ratios of the encrypted path against the others, per test.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub test: String,
    pub vs_unencrypted: Option<f64>,
    pub vs_wireguard_go: Option<f64>,
    pub vs_boringtun: Option<f64>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn gbps(v: Option<f64>) -> String {
    match v {
        Some(x) if x < 0.1 => format!("{x:.3}"),
        other => f(other, 2),
    }
}

fn times(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}x")).unwrap_or_else(|| "-".into())
}

/// Renders the Markdown report and its JSON.
fn render(rep: &DatapathReport) -> (String, serde_json::Value) {
    let sums: Vec<PathSummary> = rep.paths.iter().map(summarize).collect();
    let get = |id: PathId| sums.iter().find(|s| s.id == id.letter().to_string());
    let tput = |id: PathId, i: usize| get(id).and_then(|s| s.gbps.get(i).copied().flatten());
    let ratios: Vec<Ratios> = TcpTest::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| Ratios {
            test: t.label().into(),
            vs_unencrypted: ratio(tput(PathId::Encrypted, i), tput(PathId::Plain, i)),
            vs_wireguard_go: ratio(tput(PathId::Encrypted, i), tput(PathId::WireguardGo, i)),
            vs_boringtun: ratio(tput(PathId::Encrypted, i), tput(PathId::Boringtun, i)),
        })
        .collect();
    let one = &ratios[0];
    let enc = get(PathId::Encrypted);
    let plain = get(PathId::Plain);
    let bt = get(PathId::Boringtun);
    let idle_gap = match (
        enc.and_then(|s| s.rtt_idle_median_ms),
        plain.and_then(|s| s.rtt_idle_median_ms),
    ) {
        (Some(e), Some(p)) => Some((e - p, format!("{:+.3} ms ({e:.3} vs {p:.3})", e - p))),
        _ => None,
    };
    let load_p99 = match (
        enc.and_then(|s| s.rtt_load_p99_ms),
        bt.and_then(|s| s.rtt_load_p99_ms),
    ) {
        (Some(e), Some(b)) => Some((e - b, format!("{e:.3} ms vs {b:.3} ms"))),
        _ => None,
    };
    let drops = enc.filter(|s| s.skipped.is_none()).map(|s| {
        let n = s.udp_rcvbuf_errors_1stream + s.udp_in_errors_1stream;
        (
            n as f64,
            format!(
                "{} InErrors, {} RcvbufErrors over {} run(s) of {} s",
                s.udp_in_errors_1stream, s.udp_rcvbuf_errors_1stream, rep.rounds, rep.seconds
            ),
        )
    });
    let targets = vec![
        check(
            "encrypted 1 stream >= 8x VXLAN-in-wireguard-go",
            one.vs_wireguard_go.map(|r| (r, times(Some(r)))),
            |r| r >= 8.0,
        ),
        check(
            "encrypted 1 stream >= 6x VXLAN-in-boringtun-cli",
            one.vs_boringtun.map(|r| (r, times(Some(r)))),
            |r| r >= 6.0,
        ),
        check(
            "encrypted 1 stream >= 40% of unencrypted",
            one.vs_unencrypted
                .map(|r| (r, format!("{:.0}%", 100.0 * r))),
            |r| r >= 0.4,
        ),
        check(
            "idle RTT median within 0.1 ms of unencrypted",
            idle_gap,
            |d| d <= 0.1,
        ),
        check("p99 RTT under load <= boringtun-cli's", load_p99, |d| {
            d <= 0.0
        }),
        check(
            "no UDP datagram dropped during the 1-stream runs",
            drops,
            |n| n == 0.0,
        ),
    ];

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Data-path benchmark{}, {}\n",
        if rep.smoke { " (smoke)" } else { "" },
        utc_date(rep.machine.started_unix)
    );
    let _ = writeln!(
        md,
        "`secnet-lab bench{}`: {} interleaved round(s) (every path once per round, in the order below), iperf3 {} s per run, TCP; medians over the rounds. {}\n",
        if rep.smoke { " --smoke" } else { "" },
        rep.rounds,
        rep.seconds,
        rep.iperf3
    );
    md.push_str(&rep.machine.markdown());
    md.push_str("\n## Paths\n\n| path | what | software / note |\n|---|---|---|\n");
    for p in &rep.paths {
        let note = match (&p.skipped, &p.software) {
            (Some(why), _) => format!("**skipped**: {}", why.replace('\n', " ")),
            (None, Some(sw)) => sw.clone(),
            (None, None) => "kernel only".into(),
        };
        let _ = writeln!(
            md,
            "| ({}) {} | {} | {} |",
            p.id.letter(),
            p.id.name(),
            p.id.description(),
            note
        );
    }
    md.push_str("\n## Throughput (Gbit/s, median)\n\n| path |");
    for t in TcpTest::ALL {
        let _ = write!(md, " {} |", t.label());
    }
    md.push_str(" failed runs |\n|---|---|---|---|---|---|\n");
    for s in &sums {
        let _ = write!(md, "| ({}) {} |", s.id, s.name);
        for g in &s.gbps {
            let _ = write!(md, " {} |", gbps(*g));
        }
        let _ = writeln!(md, " {} |", s.failed_runs);
    }
    md.push_str("\n## Latency (ms, ping -i 0.01; idle, and during the 1-stream run; median and p99 of all rounds' replies)\n\n| path | idle median | idle p99 | load median | load p99 | lost |\n|---|---|---|---|---|---|\n");
    for s in sums.iter().filter(|s| s.skipped.is_none()) {
        let _ = writeln!(
            md,
            "| ({}) {} | {} | {} | {} | {} | {} |",
            s.id,
            s.name,
            f(s.rtt_idle_median_ms, 3),
            f(s.rtt_idle_p99_ms, 3),
            f(s.rtt_load_median_ms, 3),
            f(s.rtt_load_p99_ms, 3),
            s.ping_lost
        );
    }
    md.push_str("\n## Tunnel CPU (user+system of the tunnel processes, both ends: secnetd for (c), the peer daemons for (d)/(e); none for kernel paths)\n\n| path | CPU during 1 stream (% of a core) | % core per Gbit/s, 1 stream | % core per Gbit/s, 4 streams |\n|---|---|---|---|\n");
    for s in sums
        .iter()
        .filter(|s| s.skipped.is_none() && s.cpu_pct_1stream.is_some())
    {
        let _ = writeln!(
            md,
            "| ({}) {} | {} | {} | {} |",
            s.id,
            s.name,
            f(s.cpu_pct_1stream, 0),
            f(s.cpu_pct_per_gbps_1stream, 0),
            f(s.cpu_pct_per_gbps_4stream, 0)
        );
    }
    md.push_str("\n## UDP drops (/proc/net/snmp of both hosts' namespaces, summed over the rounds)\n\n| path | datagrams received, 1 stream | InErrors, 1 stream | RcvbufErrors, 1 stream | InErrors, all runs | RcvbufErrors, all runs |\n|---|---|---|---|---|---|\n");
    for s in sums.iter().filter(|s| s.skipped.is_none()) {
        let _ = writeln!(
            md,
            "| ({}) {} | {} | {} | {} | {} | {} |",
            s.id,
            s.name,
            s.udp_in_datagrams_1stream,
            s.udp_in_errors_1stream,
            s.udp_rcvbuf_errors_1stream,
            s.udp_in_errors_all,
            s.udp_rcvbuf_errors_all
        );
    }
    md.push_str("\n## Ratios: encrypted secnet (c) against the others (ratio of the medians)\n\n| test | vs (b) unencrypted secnet | vs (d) VXLAN in wireguard-go | vs (e) VXLAN in boringtun-cli |\n|---|---|---|---|\n");
    for r in &ratios {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.test,
            r.vs_unencrypted
                .map(|x| format!("{:.0}%", 100.0 * x))
                .unwrap_or_else(|| "-".into()),
            times(r.vs_wireguard_go),
            times(r.vs_boringtun)
        );
    }
    md.push_str("\n## Targets (issue 5)\n\n| target | measured | status |\n|---|---|---|\n");
    for t in &targets {
        let _ = writeln!(md, "| {} | {} | {} |", t.target, t.measured, t.status);
    }
    md.push_str("\n## Per round: 1 stream, Gbit/s\n\n| path |");
    for r in 1..=rep.rounds {
        let _ = write!(md, " round {r} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(rep.rounds));
    md.push('\n');
    for p in rep.paths.iter().filter(|p| p.skipped.is_none()) {
        let _ = write!(md, "| ({}) {} |", p.id.letter(), p.id.name());
        for r in 1..=rep.rounds {
            let g = p
                .tcp
                .iter()
                .find(|x| x.round == r && x.test == TcpTest::One)
                .and_then(|x| x.gbps);
            let _ = write!(md, " {} |", gbps(g));
        }
        md.push('\n');
    }
    let errors: Vec<String> = rep
        .paths
        .iter()
        .flat_map(|p| {
            p.tcp
                .iter()
                .filter_map(move |r| {
                    r.error.as_ref().map(|e| {
                        format!(
                            "({}) round {} {}: {}",
                            p.id.letter(),
                            r.round,
                            r.test.label(),
                            e
                        )
                    })
                })
                .chain(p.ping.iter().filter_map(move |x| {
                    x.error.as_ref().map(|e| {
                        format!(
                            "({}) round {} ping {}: {}",
                            p.id.letter(),
                            x.round,
                            x.kind,
                            e
                        )
                    })
                }))
        })
        .collect();
    if !errors.is_empty() {
        md.push_str("\n## Errors\n\n");
        for e in errors {
            let first = e.lines().take(3).collect::<Vec<_>>().join(" / ");
            let _ = writeln!(md, "- {first}");
        }
    }
    let json = serde_json::json!({
        "kind": "datapath",
        "report": rep,
        "summary": sums,
        "ratios": ratios,
        "targets": targets,
    });
    (md, json)
}

/// Writes `<date>-datapath[-smoke].md` and `.json` into `dir`; returns the Markdown path and
/// text.
pub fn write_datapath(rep: &DatapathReport, dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let (md, json) = render(rep);
    let stem = format!(
        "{}-datapath{}",
        utc_date(rep.machine.started_unix),
        if rep.smoke { "-smoke" } else { "" }
    );
    let path = write_pair(dir, &stem, &md, &json)?;
    Ok((path, md))
}

/// Writes `<stem>.md` and `<stem>.json` into `dir` (created if missing).
pub(crate) fn write_pair(
    dir: &Path,
    stem: &str,
    md: &str,
    json: &serde_json::Value,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let md_path = dir.join(format!("{stem}.md"));
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = dir.join(format!("{stem}.json"));
    // Compact: the data-path JSON holds every ping reply.
    let text = serde_json::to_string(json)?;
    std::fs::write(&json_path, text + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    Ok(md_path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::datapath::{PingRun, TcpRun};
    use super::super::stats::UdpCounters;
    use super::*;

    fn run(round: usize, test: TcpTest, gbps: f64, cpu: Option<f64>) -> TcpRun {
        TcpRun {
            round,
            test,
            gbps: Some(gbps),
            gbit: gbps * 10.0,
            retransmits: 0,
            tunnel_cpu_s: cpu,
            wall_s: 10.0,
            udp: UdpCounters::default(),
            error: None,
        }
    }

    fn path(id: PathId, one: &[f64], cpu: Option<f64>, rtt: f64) -> PathResult {
        let mut tcp = Vec::new();
        for (i, g) in one.iter().enumerate() {
            for t in TcpTest::ALL {
                tcp.push(run(i + 1, t, *g, cpu));
            }
        }
        PathResult {
            id,
            skipped: None,
            software: None,
            tcp,
            ping: vec![PingRun {
                round: 1,
                kind: "idle",
                rtts_ms: vec![rtt; 10],
                transmitted: 10,
                received: 10,
                error: None,
            }],
        }
    }

    #[test]
    fn ratios_and_targets() {
        let machine = MachineInfo::now(Path::new("/x/target/release"));
        let rep = DatapathReport {
            machine,
            rounds: 3,
            seconds: 10,
            smoke: false,
            iperf3: "iperf 3.12".into(),
            paths: vec![
                path(PathId::Raw, &[10.0, 11.0, 9.0], None, 0.02),
                path(PathId::Plain, &[8.0, 7.0, 9.0], None, 0.05),
                path(PathId::Encrypted, &[4.0, 2.0, 3.0], Some(10.0), 0.1),
                path(PathId::WireguardGo, &[0.25, 0.3, 0.2], Some(5.0), 0.5),
                PathResult {
                    id: PathId::Boringtun,
                    skipped: Some("not installed".into()),
                    software: None,
                    tcp: Vec::new(),
                    ping: Vec::new(),
                },
            ],
        };
        let (md, json) = render(&rep);
        // 3 / 8 = 37.5% of unencrypted, 3 / 0.25 = 12x wireguard-go.
        assert!(md.contains("| 1 stream | 38% | 12.00x | - |"), "{md}");
        assert!(md.contains("**skipped**: not installed"), "{md}");
        let targets = json["targets"].as_array().unwrap();
        assert_eq!(targets[0]["status"], "met");
        assert_eq!(targets[1]["status"], "n/a");
        assert_eq!(targets[2]["status"], "NOT met");
        assert_eq!(targets[3]["status"], "met");
        // CPU: 10 CPU-s over 30 Gbit = 33% of a core per Gbit/s.
        assert_eq!(
            json["summary"][2]["cpu_pct_per_gbps_1stream"],
            100.0 * 10.0 / 30.0
        );
        assert!(md.contains("| (c) secnet encrypted | 3.00 | 3.00 | 3.00 | 3.00 | 0 |"));
    }
}
