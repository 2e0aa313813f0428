//! Pure helpers of the benchmark bed: statistics, and parsers for what iperf3, ping and
//! `/proc` print. No I/O here, so all of it is unit-tested.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

/// Median of `values` (mean of the two middle ones for an even count); `None` when empty.
/// NaNs are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The `p`-th percentile (0 < p <= 100) by the nearest-rank method; `None` when empty.
/// NaNs are ignored.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// What one iperf3 client run reported (`iperf3 -J`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IperfResult {
    /// Goodput at the receiver, bits per second.
    pub bits_per_second: f64,
    /// Bytes the receiver got.
    pub bytes: f64,
    /// Seconds the test ran.
    pub seconds: f64,
    /// TCP retransmissions of the sender (0 where iperf3 does not say).
    pub retransmits: u64,
}

/// Parses `iperf3 -J` output of a TCP client run (forward or `-R`, any `-P`).
pub fn parse_iperf_json(text: &str) -> anyhow::Result<IperfResult> {
    let v: Value = serde_json::from_str(text).context("iperf3 did not print JSON")?;
    if let Some(err) = v.get("error").and_then(Value::as_str) {
        bail!("iperf3: {err}");
    }
    let end = v
        .get("end")
        .ok_or_else(|| anyhow!("iperf3 JSON has no `end`"))?;
    let recv = end
        .get("sum_received")
        .ok_or_else(|| anyhow!("iperf3 JSON has no `end.sum_received`"))?;
    let num = |o: &Value, k: &str| o.get(k).and_then(Value::as_f64);
    let bits_per_second =
        num(recv, "bits_per_second").ok_or_else(|| anyhow!("no bits_per_second"))?;
    Ok(IperfResult {
        bits_per_second,
        bytes: num(recv, "bytes").unwrap_or(0.0),
        seconds: num(recv, "seconds").unwrap_or(0.0),
        retransmits: end
            .get("sum_sent")
            .and_then(|s| s.get("retransmits"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// What one `ping -n` run printed: the round-trip times of the replies and the totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PingResult {
    /// RTT of every reply, milliseconds, in arrival order.
    pub rtts_ms: Vec<f64>,
    /// Echo requests sent (from the summary line; 0 when missing).
    pub transmitted: u64,
    /// Replies received (from the summary line; 0 when missing).
    pub received: u64,
}

/// Parses the output of `ping -n` (iputils): one `time=X ms` per reply and the
/// `N packets transmitted, M received` summary.
pub fn parse_ping(text: &str) -> PingResult {
    let mut out = PingResult::default();
    for line in text.lines() {
        if let Some(pos) = line.find("time=") {
            let rest = &line[pos + 5..];
            let num: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            if let Ok(ms) = num.parse::<f64>() {
                out.rtts_ms.push(ms);
            }
        } else if line.contains("packets transmitted") {
            let mut words = line.split_whitespace();
            out.transmitted = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            out.received = line
                .split(',')
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|w| w.parse().ok())
                .unwrap_or(0);
        }
    }
    out
}

/// utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`.
pub fn parse_proc_stat_ticks(text: &str) -> anyhow::Result<u64> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("no `)` in /proc/<pid>/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime field 15.
    let get = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("/proc/<pid>/stat too short"))?
            .parse::<u64>()
            .context("bad number in /proc/<pid>/stat")
    };
    Ok(get(11)? + get(12)?)
}

/// The UDP counters of `/proc/net/snmp` the bed watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UdpCounters {
    pub in_datagrams: u64,
    pub in_errors: u64,
    pub rcvbuf_errors: u64,
}

impl UdpCounters {
    /// `self - earlier`, saturating (a counter never goes back).
    pub fn since(&self, earlier: &UdpCounters) -> UdpCounters {
        UdpCounters {
            in_datagrams: self.in_datagrams.saturating_sub(earlier.in_datagrams),
            in_errors: self.in_errors.saturating_sub(earlier.in_errors),
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(earlier.rcvbuf_errors),
        }
    }

    /// Field-wise sum.
    pub fn plus(&self, other: &UdpCounters) -> UdpCounters {
        UdpCounters {
            in_datagrams: self.in_datagrams + other.in_datagrams,
            in_errors: self.in_errors + other.in_errors,
            rcvbuf_errors: self.rcvbuf_errors + other.rcvbuf_errors,
        }
    }
}

/// Parses the `Udp:` header and value lines of `/proc/net/snmp`.
pub fn parse_snmp_udp(text: &str) -> anyhow::Result<UdpCounters> {
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        bail!("no Udp lines in /proc/net/snmp");
    };
    let pairs: Vec<(&str, u64)> = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .map(|(n, v)| (n, v.parse::<u64>().unwrap_or(0)))
        .collect();
    let get = |name: &str| -> anyhow::Result<u64> {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| anyhow!("/proc/net/snmp has no Udp {name}"))
    };
    Ok(UdpCounters {
        in_datagrams: get("InDatagrams")?,
        in_errors: get("InErrors")?,
        rcvbuf_errors: get("RcvbufErrors")?,
    })
}

/// Civil date (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's
/// algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub fn utc_date(unix: u64) -> String {
    let (y, m, d) = civil_from_days((unix / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time.
pub fn utc_datetime(unix: u64) -> String {
    let s = unix % 86_400;
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        utc_date(unix),
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }

    proptest! {
        #[test]
        fn percentile_is_an_element_and_monotonic(
            v in proptest::collection::vec(0.0f64..1e6, 1..200),
            p in 1.0f64..100.0,
        ) {
            let x = percentile(&v, p).unwrap();
            prop_assert!(v.contains(&x));
            prop_assert!(percentile(&v, 100.0).unwrap() >= x);
            let m = median(&v).unwrap();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(lo <= m && m <= hi);
        }

        #[test]
        fn civil_dates_round_trip(days in 0i64..200_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            let (y2, m2, d2) = civil_from_days(days + 1);
            prop_assert!((y2, m2, d2) > (y, m, d));
        }
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_datetime(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn iperf_json() {
        let text = r#"{"start":{},"intervals":[],"end":{
            "sum_sent":{"seconds":10.0,"bytes":1250000000,"bits_per_second":1.0e9,"retransmits":7},
            "sum_received":{"seconds":10.01,"bytes":1240000000,"bits_per_second":9.9e8}}}"#;
        let r = parse_iperf_json(text).unwrap();
        assert_eq!(r.bits_per_second, 9.9e8);
        assert_eq!(r.retransmits, 7);
        assert_eq!(r.bytes, 1.24e9);
        let err =
            parse_iperf_json(r#"{"start":{},"end":{},"error":"unable to connect"}"#).unwrap_err();
        assert!(format!("{err}").contains("unable to connect"));
        assert!(parse_iperf_json("not json").is_err());
    }

    #[test]
    fn ping_output() {
        let text = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\
            64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.045 ms\n\
            64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=1.50 ms\n\
            64 bytes from 10.0.0.2: icmp_seq=4 ttl=64 time=12 ms\n\
            \n--- 10.0.0.2 ping statistics ---\n\
            4 packets transmitted, 3 received, 25% packet loss, time 31ms\n\
            rtt min/avg/max/mdev = 0.045/4.5/12.0/5.1 ms\n";
        let p = parse_ping(text);
        assert_eq!(p.rtts_ms, vec![0.045, 1.5, 12.0]);
        assert_eq!((p.transmitted, p.received), (4, 3));
    }

    #[test]
    fn proc_stat() {
        let text =
            "1234 (secnet d) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 125 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_proc_stat_ticks(text).unwrap(), 375);
        assert!(parse_proc_stat_ticks("garbage").is_err());
    }

    #[test]
    fn snmp() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
            Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
            Udp: 440197 0 44956 53019 44950 0 0 0 0\n\
            UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
            UdpLite: 0 0 0 0 0 0 0 0 0\n";
        let c = parse_snmp_udp(text).unwrap();
        assert_eq!(
            c,
            UdpCounters {
                in_datagrams: 440_197,
                in_errors: 44_956,
                rcvbuf_errors: 44_950
            }
        );
        let later = UdpCounters {
            in_datagrams: 440_200,
            in_errors: 44_960,
            rcvbuf_errors: 44_950,
        };
        assert_eq!(later.since(&c).in_errors, 4);
        assert_eq!(c.since(&later).in_errors, 0);
        assert!(parse_snmp_udp("Ip: a\nIp: 1\n").is_err());
    }
}
