//! Two hosts in network namespaces, joined by a veth pair, each running a real `Tunnel`.
//!
//! Needs root, `/dev/net/tun`, iproute2, `nsenter`, `ping` and `tcpdump`. Nothing is done in
//! the root namespace: the namespaces are files bind-mounted in a temporary directory, and
//! every fixture removes them (and with them the veth pair and the TUN devices) on drop,
//! panics included. Each test builds its own pair, so they run in parallel.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::Netns;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::Rng as _;
use secnet_tunnel::{PresharedKey, StaticKey, Tunnel, TunnelConfig};

const UNDERLAY_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const UNDERLAY_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const TUNNEL_A: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 1);
const TUNNEL_B: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 2);
const PORT: u16 = 51820;
const TUN: &str = "sntun0";

/// Two hosts on 198.51.100.0/24, each with a tunnel (100.96.0.0/24) configured for the other.
struct Hosts {
    // Field order is drop order: the tunnels go before their namespaces.
    ta: Option<Tunnel>,
    tb: Option<Tunnel>,
    a: Netns,
    b: Netns,
    _dir: tempfile::TempDir,
}

struct Setup {
    /// The PSK ring `{epoch 1}` on both (none: no PSK at all).
    psk: Option<[u8; 32]>,
    /// The tunnel address B believes A has.
    a_as_seen_by_b: Ipv4Addr,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            psk: Some(rand::random()),
            a_as_seen_by_b: TUNNEL_A,
        }
    }
}

fn start_tunnel(ns: &Netns, tun_addr: Ipv4Addr, listen: Ipv4Addr, key: StaticKey) -> Tunnel {
    ns.run(move || {
        Tunnel::start(TunnelConfig {
            listen: SocketAddr::from((listen, PORT)),
            tun_name: TUN.into(),
            tun_addr,
            tun_prefix: 24,
            mtu: 1420,
            private_key: key,
        })
    })
    .expect("start tunnel")
}

impl Hosts {
    fn new(setup: Setup) -> Hosts {
        let (dir, a, b) = common::veth_pair(
            "secnet-tunnel-test",
            "these tests create network namespaces and TUN devices",
        );

        let (ka, kb) = (StaticKey::generate(), StaticKey::generate());
        let (pa, pb) = (ka.public(), kb.public());
        let mut hosts = Hosts {
            ta: None,
            tb: None,
            a,
            b,
            _dir: dir,
        };
        hosts.ta = Some(start_tunnel(&hosts.a, TUNNEL_A, UNDERLAY_A, ka));
        hosts.tb = Some(start_tunnel(&hosts.b, TUNNEL_B, UNDERLAY_B, kb));
        if let Some(psk) = setup.psk {
            for tunnel in [hosts.ta(), hosts.tb()] {
                tunnel
                    .set_preshared_keys(vec![PresharedKey::new(1, psk)], 1)
                    .unwrap();
            }
        }
        common::set_only_peer(hosts.ta(), pb, UNDERLAY_B, PORT, TUNNEL_B);
        hosts.set_b_peer(pa, setup.a_as_seen_by_b);
        hosts
    }

    /// B's peer set: A, with `key` and `tunnel_ip`.
    fn set_b_peer(&self, key: secnet_tunnel::PublicKey, tunnel_ip: Ipv4Addr) {
        common::set_only_peer(self.tb(), key, UNDERLAY_A, PORT, tunnel_ip);
    }

    fn ta(&self) -> &Tunnel {
        self.ta.as_ref().unwrap()
    }

    fn tb(&self) -> &Tunnel {
        self.tb.as_ref().unwrap()
    }

    /// Installs the ring `epochs` (key bytes from `keys`) with `primary` on one tunnel.
    fn ring(tunnel: &Tunnel, keys: &[(u64, [u8; 32])], primary: u64) {
        let keys = keys
            .iter()
            .map(|&(epoch, key)| PresharedKey::new(epoch, key))
            .collect();
        tunnel.set_preshared_keys(keys, primary).unwrap();
    }
}

/// `ping -c count -i 0.05` from `ns` to `to`, running in the background.
fn ping_in_background(ns: &Netns, to: Ipv4Addr, count: u32) -> Child {
    ns.cmd("ping")
        .args(["-n", "-c", &count.to_string(), "-i", "0.05", "-W", "2"])
        .arg(to.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// How many echo replies a finished ping got, and its whole output.
fn replies(ping: Child) -> (u32, String) {
    let out = ping.wait_with_output().unwrap();
    let text = describe(&out);
    let received = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("received"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (received, text)
}

fn ok(out: &Output) -> bool {
    out.status.success()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Average RTT in ms from ping's summary line.
fn avg_rtt_ms(out: &Output) -> Option<f64> {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("min/avg/max"))?;
    let values = line.split('=').nth(1)?.trim();
    values.split('/').nth(1)?.trim().parse().ok()
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tcpdump -i IFACE -w FILE` in a namespace, stopped (SIGINT) by [`Capture::finish`] or drop.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(ns: &Netns, iface: &str, file: PathBuf) -> Capture {
        let mut child = ns
            .cmd("tcpdump")
            .args([
                "-i",
                iface,
                "-U",
                "--immediate-mode",
                "-n",
                "-Z",
                "root",
                "-w",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tcpdump");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("listening on") => break,
                Some(Ok(_)) => {}
                _ => panic!("tcpdump did not start"),
            }
        }
        // Keep draining stderr so tcpdump never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Capture { child, file }
    }

    fn finish(mut self) -> Vec<u8> {
        std::thread::sleep(Duration::from_millis(300));
        self.stop();
        std::fs::read(&self.file).unwrap()
    }

    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The frames of a little-endian, microsecond pcap file with Ethernet link type.
fn pcap_frames(pcap: &[u8]) -> Vec<&[u8]> {
    assert!(pcap.len() >= 24, "pcap too short");
    assert_eq!(&pcap[..4], &0xa1b2_c3d4u32.to_le_bytes(), "pcap magic");
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let start = at + 16;
        let end = (start + len).min(pcap.len());
        frames.push(&pcap[start..end]);
        at = start + len;
    }
    frames
}

/// (IP protocol, destination port if UDP) of an Ethernet/IPv4 frame.
fn ipv4_proto_and_udp_port(frame: &[u8]) -> Option<(u8, Option<u16>)> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let proto = ip[9];
    let port = (proto == 17 && ip.len() >= ihl + 4)
        .then(|| u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]));
    Some((proto, port))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn ping_through_the_tunnel_with_stats() {
    let hosts = Hosts::new(Setup::default());
    // The first echo waits for the handshake; measure the RTT after it.
    let out = hosts.a.ping(TUNNEL_B, 1, None);
    assert!(ok(&out), "{}", describe(&out));
    let out = hosts.a.ping(TUNNEL_B, 5, None);
    assert!(ok(&out), "{}", describe(&out));
    let tunnel_rtt = avg_rtt_ms(&out).unwrap();
    let out = hosts.a.ping(UNDERLAY_B, 5, None);
    assert!(ok(&out), "{}", describe(&out));
    let plain_rtt = avg_rtt_ms(&out).unwrap();
    eprintln!("ping RTT avg: through the tunnel {tunnel_rtt} ms, underlay {plain_rtt} ms");

    for tunnel in [hosts.ta(), hosts.tb()] {
        let stats = tunnel.stats();
        assert_eq!(stats.len(), 1);
        let peer = &stats[0];
        assert!(peer.last_handshake.is_some(), "{peer:?}");
        assert!(peer.rx_bytes > 0 && peer.tx_bytes > 0, "{peer:?}");
        assert_eq!(peer.handshake_failures, 0, "{peer:?}");
        assert_eq!(peer.dropped_invalid, 0, "{peer:?}");
        assert!(tunnel.is_running());
    }
    assert_eq!(hosts.ta().stats()[0].tunnel_ip, TUNNEL_B);
    assert_eq!(hosts.tb().stats()[0].public_key, hosts.ta().public_key());
    assert_eq!(hosts.tb().counters().disallowed_source, 0);
    assert_eq!(hosts.ta().tun_name(), TUN);
    assert_eq!(
        hosts.ta().local_addr(),
        SocketAddr::from((UNDERLAY_A, PORT))
    );
}

#[test]
fn payload_never_crosses_the_underlay_in_clear() {
    let hosts = Hosts::new(Setup::default());
    let marker: [u8; 16] = rand::random();
    let pattern = hex(&marker);

    // Through the tunnel: only WireGuard datagrams on the wire, no marker.
    let capture = Capture::start(&hosts.a, "va", hosts._dir.path().join("tunnel.pcap"));
    let out = hosts.a.ping(TUNNEL_B, 3, Some(&pattern));
    let pcap = capture.finish();
    assert!(ok(&out), "{}", describe(&out));
    let frames = pcap_frames(&pcap);
    let to_wireguard = frames
        .iter()
        .filter(|f| ipv4_proto_and_udp_port(f) == Some((17, Some(PORT))))
        .count();
    assert!(
        to_wireguard >= 4,
        "expected a handshake and 3 echo requests to UDP {PORT}, saw {to_wireguard} of {} frames",
        frames.len()
    );
    assert!(
        !frames
            .iter()
            .any(|f| ipv4_proto_and_udp_port(f).is_some_and(|(proto, _)| proto == 1)),
        "ICMP on the underlay"
    );
    assert!(!contains(&pcap, &marker), "marker bytes leaked in clear");

    // The same check on a plain ping over the underlay finds the marker: it can fail.
    let capture = Capture::start(&hosts.a, "va", hosts._dir.path().join("plain.pcap"));
    let out = hosts.a.ping(UNDERLAY_B, 3, Some(&pattern));
    let pcap = capture.finish();
    assert!(ok(&out), "{}", describe(&out));
    assert!(contains(&pcap, &marker), "control: marker visible in clear");
}

#[test]
fn garbage_datagrams_are_counted_and_harmless() {
    let hosts = Hosts::new(Setup::default());
    let out = hosts.a.ping(TUNNEL_B, 1, None);
    assert!(ok(&out), "{}", describe(&out));
    let before = hosts.tb().counters();

    const N: usize = 1000;
    hosts.a.run(|| {
        let socket = UdpSocket::bind((UNDERLAY_A, 0)).unwrap();
        let mut rng = rand::thread_rng();
        for i in 0..N {
            let len = rng.gen_range(0..=300);
            let mut datagram: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            // A few that look like WireGuard by type but are not valid.
            if len >= 4 && i % 10 == 0 {
                datagram[..4].copy_from_slice(&[5, 0, 0, 0]);
            }
            socket.send_to(&datagram, (UNDERLAY_B, PORT)).unwrap();
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let dropped = |c: secnet_tunnel::Counters| c.garbage + c.unknown_peer;
    wait_for("garbage to be counted", Duration::from_secs(10), || {
        dropped(hosts.tb().counters()) - dropped(before) >= N as u64
    });
    let after = hosts.tb().counters();
    assert_eq!(dropped(after) - dropped(before), N as u64, "{after:?}");
    assert!(
        after.garbage - before.garbage >= (N as u64) * 9 / 10,
        "{after:?}"
    );

    let out = hosts.a.ping(TUNNEL_B, 3, None);
    assert!(ok(&out), "tunnel broken by garbage: {}", describe(&out));
    assert_eq!(hosts.tb().stats()[0].handshake_failures, 0);
}

#[test]
fn inner_source_not_owned_by_the_peer_is_dropped() {
    // B believes A's tunnel address is 100.96.0.9; A's kernel sends from 100.96.0.1.
    let hosts = Hosts::new(Setup {
        a_as_seen_by_b: Ipv4Addr::new(100, 96, 0, 9),
        ..Setup::default()
    });
    let out = hosts.a.ping(TUNNEL_B, 3, None);
    assert!(!ok(&out), "ping must fail: {}", describe(&out));
    let counters = hosts.tb().counters();
    assert!(counters.disallowed_source >= 3, "{counters:?}");
    let peer = &hosts.tb().stats()[0];
    assert!(peer.dropped_invalid >= 3, "{peer:?}");
    assert!(
        peer.last_handshake.is_some(),
        "the handshake itself succeeds"
    );
}

#[test]
fn psk_rotation_under_ping_loses_nothing() {
    let first: [u8; 32] = rand::random();
    let hosts = Hosts::new(Setup {
        psk: Some(first),
        ..Setup::default()
    });
    let out = hosts.a.ping(TUNNEL_B, 1, None);
    assert!(ok(&out), "{}", describe(&out));
    let second: [u8; 32] = rand::random();
    let both = [(1, first), (2, second)];

    const COUNT: u32 = 60;
    let ping = ping_in_background(&hosts.a, TUNNEL_B, COUNT);
    let pause = || std::thread::sleep(Duration::from_millis(400));
    pause();
    // Installed for receiving everywhere, then primary on A, then on B, then the old one goes.
    Hosts::ring(hosts.ta(), &both, 1);
    Hosts::ring(hosts.tb(), &both, 1);
    pause();
    Hosts::ring(hosts.ta(), &both, 2);
    pause();
    Hosts::ring(hosts.tb(), &both, 2);
    pause();
    Hosts::ring(hosts.ta(), &both[1..], 2);
    Hosts::ring(hosts.tb(), &both[1..], 2);
    let (received, text) = replies(ping);
    assert_eq!(received, COUNT, "{text}");
    for tunnel in [hosts.ta(), hosts.tb()] {
        let peer = &tunnel.stats()[0];
        assert_eq!(peer.key_epoch, Some(2), "{peer:?}");
        assert_eq!(peer.handshake_failures, 0, "{peer:?}");
        assert_eq!(tunnel.counters().unknown_peer, 0);
    }
}

#[test]
fn static_key_rotation_under_ping_loses_nothing() {
    let hosts = Hosts::new(Setup::default());
    let out = hosts.a.ping(TUNNEL_B, 1, None);
    assert!(ok(&out), "{}", describe(&out));

    const COUNT: u32 = 40;
    let ping = ping_in_background(&hosts.a, TUNNEL_B, COUNT);
    std::thread::sleep(Duration::from_millis(400));
    let new = StaticKey::generate();
    let new_public = new.public();
    hosts.ta().set_static_key(new);
    assert_eq!(hosts.ta().public_key(), new_public);
    std::thread::sleep(Duration::from_millis(400));
    // B learns A's new key (as the daemon would, from the replicated state).
    hosts.set_b_peer(new_public, TUNNEL_A);
    let (received, text) = replies(ping);
    assert_eq!(received, COUNT, "{text}");
    let peer = &hosts.tb().stats()[0];
    assert_eq!(peer.public_key, new_public);
    assert!(peer.last_handshake.is_some(), "{peer:?}");

    // Revocation: B drops A, and A's traffic stops at once.
    hosts.tb().set_peers(vec![]).unwrap();
    let out = hosts.a.ping(TUNNEL_B, 1, None);
    assert!(!ok(&out), "{}", describe(&out));
    assert!(hosts.tb().counters().unknown_peer >= 1);
}

#[test]
fn stop_removes_the_tun_device() {
    let mut hosts = Hosts::new(Setup::default());
    hosts.a.ip(&["link", "show", TUN]);
    hosts.ta.take().unwrap().stop().unwrap();
    let out = hosts
        .a
        .cmd("ip")
        .args(["link", "show", TUN])
        .output()
        .unwrap();
    assert!(!ok(&out), "TUN device still there after stop");
    // Dropping (instead of stop) cleans up too.
    drop(hosts.tb.take());
    let out = hosts
        .b
        .cmd("ip")
        .args(["link", "show", TUN])
        .output()
        .unwrap();
    assert!(!ok(&out), "TUN device still there after drop");
}

/// Sends `megabytes` MiB over one TCP connection from A to `to` on B and checks every byte;
/// returns the rate in Mbit/s.
fn tcp_transfer(hosts: &Hosts, to: Ipv4Addr, megabytes: usize) -> f64 {
    let total = megabytes << 20;
    // A stream with a prime period, so lost, repeated or reordered bytes show; checked with
    // memcmp so that the check does not become the bottleneck.
    const PERIOD: usize = 65_521;
    const CHUNK: usize = 1 << 16;
    let pattern: std::sync::Arc<Vec<u8>> = std::sync::Arc::new(
        (0..PERIOD + CHUNK)
            .map(|i| ((i % PERIOD) * 7 + 3) as u8)
            .collect(),
    );

    let listener = hosts.b.run(move || TcpListener::bind((to, 5201)).unwrap());
    let expected = std::sync::Arc::clone(&pattern);
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; CHUNK];
        let mut received = 0usize;
        let mut intact = true;
        loop {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            let at = received % PERIOD;
            intact &= buf[..n] == expected[at..at + n];
            received += n;
        }
        (received, intact)
    });
    let mut stream = hosts
        .a
        .run(move || {
            TcpStream::connect_timeout(&SocketAddr::from((to, 5201)), Duration::from_secs(10))
        })
        .unwrap();
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        let at = sent % PERIOD;
        let len = CHUNK.min(total - sent);
        stream.write_all(&pattern[at..at + len]).unwrap();
        sent += len;
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (received, intact) = server.join().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(received, total);
    assert!(intact, "data corrupted in transit");
    (total as f64 * 8.0) / elapsed.as_secs_f64() / 1e6
}

fn transfer_megabytes() -> usize {
    std::env::var("SECNET_TUNNEL_TRANSFER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

#[test]
fn tcp_transfer_through_the_tunnel() {
    let hosts = Hosts::new(Setup::default());
    let megabytes = transfer_megabytes();
    let mbit = tcp_transfer(&hosts, TUNNEL_B, megabytes);
    eprintln!("TCP through the tunnel: {megabytes} MiB at {mbit:.0} Mbit/s");
}

const VXLAN_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const VXLAN_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// A VXLAN device on each host between the tunnel addresses (secnet's encrypted overlay):
/// 10.77.0.1 on A, 10.77.0.2 on B.
fn add_vxlan(hosts: &Hosts) {
    for (ns, me, peer) in [
        (&hosts.a, TUNNEL_A, TUNNEL_B),
        (&hosts.b, TUNNEL_B, TUNNEL_A),
    ] {
        ns.ip(&[
            "link",
            "add",
            "vxt",
            "mtu",
            "1370",
            "type",
            "vxlan",
            "id",
            "4200",
            "local",
            &me.to_string(),
            "remote",
            &peer.to_string(),
            "dstport",
            "4789",
            "nolearning",
        ]);
        let addr = if me == TUNNEL_A { VXLAN_A } else { VXLAN_B };
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "vxt"]);
        ns.ip(&["link", "set", "vxt", "up"]);
    }
}

#[test]
fn tcp_transfer_through_vxlan_over_the_tunnel() {
    let hosts = Hosts::new(Setup::default());
    add_vxlan(&hosts);
    // ARP and the handshake first.
    let out = hosts.a.ping(VXLAN_B, 2, None);
    assert!(ok(&out), "{}", describe(&out));
    let megabytes = transfer_megabytes();
    let mbit = tcp_transfer(&hosts, VXLAN_B, megabytes);
    eprintln!("TCP through VXLAN over the tunnel: {megabytes} MiB at {mbit:.0} Mbit/s");
    for tunnel in [hosts.ta(), hosts.tb()] {
        // (`no_route` counts the kernel's IPv6 link-local chatter on the TUN device.)
        let c = tunnel.counters();
        assert_eq!((c.tun_write_errors, c.send_errors), (0, 0), "{c:?}");
    }
}

/// Datagrams from A to B at `to`, plain and with UDP GSO from the application (so the
/// kernel hands the tunnel UDP super-packets, inside VXLAN or not): every one that arrives
/// arrives whole, and nearly all arrive.
fn udp_datagrams(hosts: &Hosts, to: Ipv4Addr) {
    use nix::sys::socket::{setsockopt, sockopt};
    const COUNT: u32 = 3000;
    let receiver = hosts.b.run(move || UdpSocket::bind((to, 7000)).unwrap());
    // Room for everything, so that only the tunnel could lose datagrams.
    setsockopt(&receiver, sockopt::RcvBufForce, &(16 << 20)).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let sender = hosts
        .a
        .run(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap());
    let datagram = |seq: u32, size: usize| -> Vec<u8> {
        let mut d: Vec<u8> = (0..size).map(|i| (i as u32 * 31 + seq) as u8).collect();
        d[..4].copy_from_slice(&seq.to_be_bytes());
        d
    };
    let size_of = |seq: u32| [4usize, 100, 1200, 1300, 777][(seq % 5) as usize];
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut seen = std::collections::HashSet::new();
        while let Ok(n) = receiver.recv(&mut buf) {
            let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
            let expected = if seq >= COUNT {
                datagram(seq, 1200)
            } else {
                datagram(seq, size_of(seq))
            };
            assert_eq!(&buf[..n], &expected[..], "datagram {seq} damaged");
            seen.insert(seq);
        }
        seen.len()
    });
    let dest = SocketAddr::from((to, 7000));
    for seq in 0..COUNT {
        sender.send_to(&datagram(seq, size_of(seq)), dest).unwrap();
        if seq % 64 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // 40 GSO sends of 20 datagrams of 1200 bytes each.
    setsockopt(&sender, sockopt::UdpGsoSegment, &1200).unwrap();
    for burst in 0..40u32 {
        let mut buf = Vec::new();
        for i in 0..20 {
            buf.extend_from_slice(&datagram(COUNT + burst * 20 + i, 1200));
        }
        sender.send_to(&buf, dest).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let received = reader.join().unwrap();
    let total = COUNT as usize + 800;
    eprintln!("UDP to {to}: {received} of {total} datagrams");
    assert!(received * 100 >= total * 98, "{received} of {total}");
}

#[test]
fn udp_datagrams_through_the_tunnel_and_vxlan_over_it() {
    let hosts = Hosts::new(Setup::default());
    add_vxlan(&hosts);
    let out = hosts.a.ping(VXLAN_B, 2, None);
    assert!(ok(&out), "{}", describe(&out));
    udp_datagrams(&hosts, TUNNEL_B);
    udp_datagrams(&hosts, VXLAN_B);
    for tunnel in [hosts.ta(), hosts.tb()] {
        // (`no_route` counts the kernel's IPv6 link-local chatter on the TUN device.)
        let c = tunnel.counters();
        assert_eq!((c.tun_write_errors, c.send_errors), (0, 0), "{c:?}");
    }
}
