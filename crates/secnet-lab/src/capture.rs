//! Packet captures with tcpdump, and a minimal pcap reader for assertions.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::netns::{find_bin, ip_bin};

/// How long [`Capture::start`] waits for tcpdump to say it is listening.
pub const CAPTURE_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause in [`Capture::stop`] before stopping tcpdump, so that packets
/// already on the wire reach the file.
pub const CAPTURE_SETTLE: Duration = Duration::from_millis(250);

/// A running `tcpdump -i IFACE -w FILE -U` inside a namespace. Killed when
/// dropped; [`Capture::stop`] ends it cleanly and returns the pcap bytes.
#[derive(Debug)]
pub struct Capture {
    child: Option<Child>,
    path: PathBuf,
    netns: String,
    iface: String,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing on `iface` in `netns` into `path` (pcap format),
    /// with BPF `filter` (empty: everything). Returns once tcpdump reports
    /// that it is listening, so that no packet sent afterwards is missed.
    pub fn start(netns: &str, iface: &str, filter: &str, path: &Path) -> anyhow::Result<Capture> {
        let tcpdump = find_bin("tcpdump", &["/usr/bin", "/usr/sbin", "/bin", "/sbin"]);
        let mut cmd = Command::new(ip_bin());
        cmd.args(["netns", "exec", netns])
            .arg(&tcpdump)
            .args([
                "-i",
                iface,
                "-n",
                "-U",
                "--immediate-mode",
                "-Z",
                "root",
                "-w",
            ])
            .arg(path);
        if !filter.trim().is_empty() {
            cmd.arg(filter);
        }
        tracing::debug!(?cmd, "starting capture");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting tcpdump on {iface} in {netns}"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let reader = child.stderr.take().map(|pipe| {
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut s) = stderr.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                    let _ = tx.send(line);
                }
            })
        });
        let mut cap = Capture {
            child: Some(child),
            path: path.to_path_buf(),
            netns: netns.to_owned(),
            iface: iface.to_owned(),
            stderr,
            reader,
        };
        let deadline = Instant::now() + CAPTURE_START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => return Ok(cap),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = cap.child.take().map(|mut c| c.wait());
                    bail!(
                        "tcpdump on {iface} in {netns} exited before listening ({status:?}):\n{}",
                        cap.stderr_text()
                    );
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "tcpdump on {iface} in {netns} did not report listening within {CAPTURE_START_TIMEOUT:?}:\n{}",
                        cap.stderr_text()
                    );
                }
            }
        }
    }

    /// The pcap file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What tcpdump printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits [`CAPTURE_SETTLE`], stops tcpdump (SIGINT, SIGKILL after 5 s)
    /// and returns the contents of the pcap file (see [`parse_pcap`]).
    pub fn stop(mut self) -> anyhow::Result<Vec<u8>> {
        thread::sleep(CAPTURE_SETTLE);
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("capture already stopped"))?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                break child.wait()?;
            }
            thread::sleep(Duration::from_millis(10));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let bytes = std::fs::read(&self.path).with_context(|| {
            format!(
                "reading capture {} (tcpdump on {} in {} exited with {status}):\n{}",
                self.path.display(),
                self.iface,
                self.netns,
                self.stderr_text()
            )
        })?;
        tracing::debug!(iface = %self.iface, netns = %self.netns, %status, bytes = bytes.len(), "capture stopped");
        Ok(bytes)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapPacket {
    /// Capture time since the Unix epoch.
    pub ts: Duration,
    /// Length of the frame on the wire (may exceed `data.len()`).
    pub orig_len: u32,
    /// The captured bytes (an Ethernet frame for link type 1).
    pub data: Vec<u8>,
}

/// A parsed pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcap {
    /// Link-layer header type (1 = Ethernet).
    pub linktype: u32,
    pub packets: Vec<PcapPacket>,
}

/// Link type of Ethernet captures.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Parses a classic pcap file (either byte order, µs or ns timestamps).
/// A truncated last record (tcpdump killed mid-write) is ignored.
pub fn parse_pcap(bytes: &[u8]) -> anyhow::Result<Pcap> {
    if bytes.len() < 24 {
        bail!(
            "not a pcap file: {} bytes (tcpdump killed before writing the header?)",
            bytes.len()
        );
    }
    let magic_le = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (little, nanos) = match magic_le {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        m => bail!("not a pcap file (magic {m:#010x})"),
    };
    let u32_at = |off: usize| -> u32 {
        let b = [bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]];
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let linktype = u32_at(20) & 0x0fff_ffff;
    let mut packets = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let sec = u32_at(off);
        let frac = u32_at(off + 4);
        let incl = u32_at(off + 8) as usize;
        let orig_len = u32_at(off + 12);
        let start = off + 16;
        let Some(end) = start.checked_add(incl).filter(|&e| e <= bytes.len()) else {
            break;
        };
        let ts = Duration::from_secs(u64::from(sec))
            + if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
        packets.push(PcapPacket {
            ts,
            orig_len,
            data: bytes[start..end].to_vec(),
        });
        off = end;
    }
    Ok(Pcap { linktype, packets })
}

/// IP protocol numbers.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ESP: u8 = 50;

/// The IPv4 header fields of a captured frame, and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    /// Bytes after the IPv4 header (up to the IP total length).
    pub payload: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Parses an Ethernet frame (optionally 802.1Q-tagged) carrying IPv4.
    pub fn from_ethernet(frame: &'a [u8]) -> Option<Ipv4Packet<'a>> {
        let mut off = 12;
        let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        if ethertype == 0x8100 {
            off += 4;
            ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        }
        if ethertype != 0x0800 {
            return None;
        }
        Self::from_ip(frame.get(off + 2..)?)
    }

    /// Parses a raw IPv4 packet.
    pub fn from_ip(ip: &'a [u8]) -> Option<Ipv4Packet<'a>> {
        let first = *ip.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(first & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
        if ihl < 20 || ip.len() < ihl {
            return None;
        }
        let end = total.clamp(ihl, ip.len());
        Some(Ipv4Packet {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            protocol: ip[9],
            ttl: ip[8],
            payload: &ip[ihl..end],
        })
    }

    /// `(source port, destination port)` of a UDP or TCP packet.
    pub fn ports(&self) -> Option<(u16, u16)> {
        if self.protocol != IPPROTO_UDP && self.protocol != IPPROTO_TCP {
            return None;
        }
        let p = self.payload;
        Some((
            u16::from_be_bytes([*p.first()?, *p.get(1)?]),
            u16::from_be_bytes([*p.get(2)?, *p.get(3)?]),
        ))
    }

    /// True for an ICMP echo request.
    pub fn is_icmp_echo_request(&self) -> bool {
        self.protocol == IPPROTO_ICMP && self.payload.first() == Some(&8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0, 1]);
        f.extend([0x08, 0x00]);
        let total = (20 + payload.len()) as u16;
        f.extend([
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            proto,
            0,
            0,
        ]);
        f.extend(src);
        f.extend(dst);
        f.extend(payload);
        f.extend([0; 4]); // Ethernet padding beyond the IP total length
        f
    }

    fn pcap(le: bool, frames: &[Vec<u8>]) -> Vec<u8> {
        let w = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut b = Vec::new();
        b.extend(w(0xa1b2_c3d4));
        b.extend(if le { [2, 0, 4, 0] } else { [0, 2, 0, 4] });
        b.extend(w(0));
        b.extend(w(0));
        b.extend(w(262_144));
        b.extend(w(1));
        for (i, f) in frames.iter().enumerate() {
            b.extend(w(1_700_000_000 + i as u32));
            b.extend(w(500));
            b.extend(w(f.len() as u32));
            b.extend(w(f.len() as u32));
            b.extend(f);
        }
        b
    }

    #[test]
    fn parses_both_byte_orders() {
        let f1 = frame(
            [192, 0, 2, 11],
            [192, 0, 2, 12],
            IPPROTO_ICMP,
            &[8, 0, 0, 0],
        );
        let f2 = frame(
            [1, 2, 3, 4],
            [5, 6, 7, 8],
            IPPROTO_UDP,
            &[0x12, 0xb5, 0x12, 0xb5],
        );
        for le in [true, false] {
            let p = parse_pcap(&pcap(le, &[f1.clone(), f2.clone()])).expect("parse");
            assert_eq!(p.linktype, LINKTYPE_ETHERNET);
            assert_eq!(p.packets.len(), 2);
            assert_eq!(p.packets[1].ts, Duration::new(1_700_000_001, 500_000));
            let ip = Ipv4Packet::from_ethernet(&p.packets[0].data).expect("ipv4");
            assert_eq!(ip.src, Ipv4Addr::new(192, 0, 2, 11));
            assert_eq!(ip.dst, Ipv4Addr::new(192, 0, 2, 12));
            assert!(ip.is_icmp_echo_request());
            assert_eq!(ip.payload.len(), 4, "padding must be cut off");
            let ip = Ipv4Packet::from_ethernet(&p.packets[1].data).expect("ipv4");
            assert_eq!(ip.ports(), Some((4789, 4789)));
        }
    }

    #[test]
    fn truncated_record_is_ignored_and_garbage_rejected() {
        let f = frame([1, 1, 1, 1], [2, 2, 2, 2], IPPROTO_ICMP, &[0; 8]);
        let mut b = pcap(true, &[f.clone(), f]);
        b.truncate(b.len() - 5);
        assert_eq!(parse_pcap(&b).expect("parse").packets.len(), 1);
        assert!(parse_pcap(b"").is_err());
        assert!(parse_pcap(&[0u8; 40]).is_err());
    }

    #[test]
    fn non_ipv4_frames() {
        let mut arp = vec![0xff; 12];
        arp.extend([0x08, 0x06]);
        arp.extend([0; 28]);
        assert!(Ipv4Packet::from_ethernet(&arp).is_none());
        assert!(Ipv4Packet::from_ethernet(&[0; 5]).is_none());
    }
}
