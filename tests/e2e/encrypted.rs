//! Encrypted networks: their VXLAN runs between tunnel addresses through the WireGuard
//! tunnel, never in clear on any link, and strict mode keeps it so when the tunnel is blocked
//! or routing is changed behind secnet's back.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secnet_e2e::*;
use secnet_lab::traffic::tcp_expected;
use secnet_lab::{parse_pcap, wait_for, Capture, Ipv4Packet, Lab};
use serde_json::Value;

/// Plenty for a first handshake plus the reconciler's pass.
const TUNNEL_UP: Duration = Duration::from_secs(20);

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// (VXLAN datagrams, WireGuard datagrams) in a capture.
fn udp_counts(pcap: &[u8]) -> (usize, usize) {
    let pcap = parse_pcap(pcap).unwrap();
    let ports: Vec<(u16, u16)> = pcap
        .packets
        .iter()
        .filter_map(|p| Ipv4Packet::from_ethernet(&p.data).and_then(|ip| ip.ports()))
        .collect();
    let vxlan = ports.iter().filter(|(_, d)| *d == 4789).count();
    let wg = ports.iter().filter(|(_, d)| *d == 51820).count();
    (vxlan, wg)
}

/// Bytes of WireGuard datagrams in a capture. Counted in bytes, not frames: the tunnel sends
/// runs of datagrams with UDP GSO, which a capture on a software bridge sees as one frame.
fn wireguard_bytes(pcap: &[u8]) -> usize {
    let pcap = parse_pcap(pcap).unwrap();
    pcap.packets
        .iter()
        .filter_map(|p| Ipv4Packet::from_ethernet(&p.data))
        .filter(|ip| ip.ports().is_some_and(|(_, d)| d == 51820))
        .map(|ip| ip.payload.len())
        .sum()
}

fn tunnel(lab: &Lab, i: usize) -> anyhow::Result<Value> {
    lab.host(i).cli_json(&["tunnel", "ls", "--format", "json"])
}

/// A cluster of `hosts` (one manager) with an encrypted network `vault` and a plain one
/// `plain`, both known everywhere.
fn cluster(hosts: usize) -> anyhow::Result<Lab> {
    cluster_with(hosts, &[])
}

fn cluster_with(hosts: usize, init_extra: &[&str]) -> anyhow::Result<Lab> {
    let lab = lab(hosts)?;
    let mut init = vec!["--default-addr-pool", "10.70.0.0/16"];
    init.extend_from_slice(init_extra);
    form(&lab, 1, &init)?;
    lab.host(0)
        .cli_ok(&["network", "create", "--opt", "encrypted", "vault"])?;
    lab.host(0).cli_ok(&["network", "create", "plain"])?;
    wait_for("both networks on every host", CONVERGE, || {
        Ok((0..hosts)
            .all(|i| network(&lab, i, "plain").ok().flatten().is_some())
            .then_some(()))
    })?;
    wait_for("every tunnel keyed from the ring", CONVERGE, || {
        Ok((0..hosts)
            .all(|i| tunnel(&lab, i).is_ok_and(|t| t["key_epoch"].is_u64()))
            .then_some(()))
    })?;
    Ok(lab)
}

fn wait_ping(from: &Ep, to: &Ep) -> anyhow::Result<()> {
    wait_for(&format!("{} -> {}", from.name, to.name), TUNNEL_UP, || {
        Ok(ping(from, &to.ip).success().then_some(()))
    })
}

#[test]
fn encrypted_traffic_never_crosses_in_clear() -> anyhow::Result<()> {
    let lab = cluster(2)?;
    let a = endpoint(&lab, 0, "vault", "va")?;
    let b = endpoint(&lab, 1, "vault", "vb")?;
    let pa = endpoint(&lab, 0, "plain", "pa")?;
    let pb = endpoint(&lab, 1, "plain", "pb")?;
    wait_ping(&a, &b)?;
    wait_ping(&b, &a)?;
    wait_ping(&pa, &pb)?;

    // The network reports itself encrypted, with WireGuard's overhead off the MTU, and the
    // endpoint got that MTU.
    let vault = network(&lab, 0, "vault")?.unwrap();
    assert_eq!(vault["encrypted"], true, "{vault}");
    let underlay: u64 = 1500;
    let want_mtu = underlay - 50 - 60;
    let link = in_ns(&a.netns, &["ip", "-o", "link", "show", "eth0"]).stdout;
    assert!(link.contains(&format!("mtu {want_mtu}")), "{link}");

    let dir = lab.dir().join("captures");
    std::fs::create_dir_all(&dir)?;
    let marker = "c1a551f1edc1a551f1edc1a551f1ed00";
    let raw_marker: Vec<u8> = (0..marker.len() / 2)
        .map(|i| u8::from_str_radix(&marker[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let tcp_marker = "TOP-SECRET-PAYLOAD-4f1c";

    // Encrypted: ICMP and a TCP stream with the markers, captured on both segments.
    let data = Capture::start(lab.lab_netns(), "data0", "", &dir.join("enc-data.pcap"))?;
    let ctl = Capture::start(lab.lab_netns(), "ctl0", "", &dir.join("enc-ctl.pcap"))?;
    let out = in_ns(
        &a.netns,
        &["ping", "-c", "3", "-i", "0.2", "-p", marker, &b.ip],
    );
    assert!(out.success(), "{out:?}");
    let _server = tcp_serve(&b, 200_000, tcp_marker, &dir.join("enc-server.log"))?;
    let body = wait_for("TCP over the encrypted network", CONVERGE, || {
        let out = tcp_fetch(&a, &b.ip, tcp_marker);
        Ok(out.success().then_some(out.stdout))
    })?;
    assert_eq!(body.trim(), tcp_expected(200_000, tcp_marker));
    let enc_data = data.stop()?;
    let enc_ctl = ctl.stop()?;
    for (name, pcap) in [("data", &enc_data), ("control", &enc_ctl)] {
        assert!(
            !contains(pcap, &raw_marker),
            "ICMP marker in clear on the {name} segment"
        );
        assert!(
            !contains(pcap, tcp_marker.as_bytes()),
            "TCP marker in clear on the {name} segment"
        );
        assert_eq!(
            udp_counts(pcap).0,
            0,
            "VXLAN in clear on the {name} segment"
        );
    }
    let wireguard = wireguard_bytes(&enc_data);
    assert!(
        wireguard > 200_000,
        "the traffic went through WireGuard on the data segment: {wireguard} bytes"
    );
    assert_eq!(
        udp_counts(&enc_ctl).1,
        0,
        "no WireGuard on the control segment"
    );

    // Unencrypted: the same markers are visible (so the checks above can fail).
    let data = Capture::start(lab.lab_netns(), "data0", "", &dir.join("plain-data.pcap"))?;
    let out = in_ns(
        &pa.netns,
        &["ping", "-c", "3", "-i", "0.2", "-p", marker, &pb.ip],
    );
    assert!(out.success(), "{out:?}");
    let _plain_server = tcp_serve(&pb, 20_000, tcp_marker, &dir.join("plain-server.log"))?;
    wait_for("TCP over the plain network", CONVERGE, || {
        Ok(tcp_fetch(&pa, &pb.ip, tcp_marker).success().then_some(()))
    })?;
    let plain = wait_for("the markers in the plain capture", CONVERGE, || {
        let bytes = std::fs::read(data.path()).unwrap_or_default();
        Ok(
            (contains(&bytes, &raw_marker) && contains(&bytes, tcp_marker.as_bytes()))
                .then_some(()),
        )
    });
    data.stop()?;
    plain?;

    // The tunnel accounts for it: a session with the peer, bytes both ways.
    let t = tunnel(&lab, 0)?;
    let peer = &t["peers"][0];
    assert!(peer["last_handshake_secs"].is_u64(), "{t}");
    // Host 0 fetched 200 kB: it received them through the tunnel.
    assert!(peer["rx_bytes"].as_u64().unwrap() > 200_000, "{t}");
    assert!(peer["tx_bytes"].as_u64().unwrap() > 0, "{t}");
    Ok(())
}

/// Five pings from `a` to `b` fail, and a capture of the data link meanwhile holds no VXLAN.
fn pings_fail_and_nothing_leaves_in_clear(
    lab: &Lab,
    a: &Ep,
    b: &Ep,
    name: &str,
) -> anyhow::Result<()> {
    let file = lab.dir().join("captures").join(format!("{name}.pcap"));
    let data = Capture::start(lab.lab_netns(), "data0", "", &file)?;
    let out = in_ns(
        &a.netns,
        &["ping", "-c", "5", "-i", "0.2", "-W", "1", &b.ip],
    );
    let pcap = data.stop()?;
    assert!(!out.success(), "{name}: the ping must fail: {out:?}");
    assert_eq!(
        udp_counts(&pcap).0,
        0,
        "{name}: VXLAN in clear on the data segment"
    );
    Ok(())
}

#[test]
fn strict_mode_keeps_encrypted_vxlan_off_the_links() -> anyhow::Result<()> {
    let lab = cluster(2)?;
    let a = endpoint(&lab, 0, "vault", "sa")?;
    let b = endpoint(&lab, 1, "vault", "sb")?;
    wait_ping(&a, &b)?;
    let tunnel_ip = |i: usize| -> anyhow::Result<String> {
        Ok(tunnel(&lab, i)?["tunnel_ip"].as_str().unwrap().to_string())
    };
    let ta = tunnel_ip(0)?;
    let dir = lab.dir().join("captures");
    std::fs::create_dir_all(&dir)?;

    // 1. Routing changed behind secnet's back: the tunnel network now points at the peer's
    // data-path address on eth1, so the kernel would send the VXLAN there in clear.
    let before = tunnel(&lab, 0)?["strict_dropped_out"].as_u64().unwrap();
    lab.host(0).exec_ok(&[
        "ip",
        "route",
        "replace",
        "100.96.0.0/16",
        "via",
        &lab.host(1).data_ip().to_string(),
        "dev",
        "eth1",
    ])?;
    pings_fail_and_nothing_leaves_in_clear(&lab, &a, &b, "hijack")?;
    let after = tunnel(&lab, 0)?["strict_dropped_out"].as_u64().unwrap();
    assert!(
        after >= before + 5,
        "strict mode counted the drops: {before} -> {after}"
    );
    // Routing restored: traffic flows again.
    lab.host(0).exec_ok(&[
        "ip",
        "route",
        "replace",
        "100.96.0.0/16",
        "dev",
        "sntun0",
        "src",
        &ta,
    ])?;
    wait_ping(&a, &b)?;

    // 2. The peer's tunnel blocked (its WireGuard port filtered): encrypted traffic stops and
    // nothing goes out in clear instead.
    lab.host(1).exec_ok(&[
        "nft",
        "add table inet block; add chain inet block in { type filter hook input priority -10; }; add rule inet block in udp dport 51820 drop",
    ])?;
    pings_fail_and_nothing_leaves_in_clear(&lab, &a, &b, "blocked")?;
    // Unblocked: traffic comes back (through the tunnel).
    lab.host(1)
        .exec_ok(&["nft", "delete", "table", "inet", "block"])?;
    wait_ping(&a, &b)?;
    Ok(())
}

#[test]
fn a_removed_node_cannot_reach_encrypted_endpoints() -> anyhow::Result<()> {
    let lab = cluster(3)?;
    let eps: Vec<Ep> = (0..3)
        .map(|i| endpoint(&lab, i, "vault", &format!("r{i}")))
        .collect::<Result<_, _>>()?;
    for (x, y) in [(2, 0), (2, 1), (0, 1)] {
        wait_ping(&eps[x], &eps[y])?;
    }
    let gone = lab.host(2).cli_json(&["status", "--format", "json"])?["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    let epoch = tunnel(&lab, 0)?["key_epoch"].as_u64().unwrap();

    // Removed while it keeps running with its old configuration.
    lab.host(0).cli_ok(&["node", "rm", "--force", &gone])?;
    for i in 0..2 {
        wait_for(
            &format!("host {i} forgets the removed peer"),
            CONVERGE,
            || {
                let t = tunnel(&lab, i)?;
                Ok((t["peers"].as_array().unwrap().len() == 1).then_some(()))
            },
        )?;
    }
    // The removed host still has its endpoint and still holds both peers and the old key:
    // it is trying, which is what makes the checks below meaningful.
    let still = tunnel(&lab, 2)?;
    assert_eq!(still["peers"].as_array().unwrap().len(), 2, "{still}");
    let addr = in_ns(&eps[2].netns, &["ip", "-o", "-4", "addr", "show", "eth0"]).stdout;
    assert!(addr.contains(&eps[2].ip), "{addr}");
    for target in [&eps[0], &eps[1]] {
        let out = in_ns(
            &eps[2].netns,
            &["ping", "-c", "5", "-i", "0.2", "-W", "1", &target.ip],
        );
        assert!(
            !out.success(),
            "the removed node reached {}: {out:?}",
            target.name
        );
        assert!(
            !ping(target, &eps[2].ip).success(),
            "{} reached the removed node",
            target.name
        );
    }
    // The removal rotated the ring, and the remaining nodes still talk.
    wait_for("a new key after the removal", CONVERGE, || {
        let t = tunnel(&lab, 0)?;
        Ok((t["key_epoch"].as_u64().unwrap_or(0) > epoch).then_some(()))
    })?;
    wait_ping(&eps[0], &eps[1])?;
    wait_ping(&eps[1], &eps[0])?;
    Ok(())
}

/// Sends `SECONDS` seconds' worth of deterministic data (64 KiB chunks, about 1 MB/s) to the
/// first client on IP:8081, then prints the SHA-256 and length of what it sent.
const SLOW_SERVER: &str = r#"
import hashlib, socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("IP", 8081))
s.listen()
c, _ = s.accept()
h = hashlib.sha256()
n = 0
end = time.time() + SECONDS
i = 0
while time.time() < end:
    chunk = hashlib.sha512(str(i).encode()).digest() * 1024
    c.sendall(chunk)
    h.update(chunk)
    n += len(chunk)
    i += 1
    time.sleep(0.05)
c.close()
print(h.hexdigest(), n, flush=True)
"#;

/// Receives everything from IP:8081 and prints its SHA-256 and length.
const SLOW_CLIENT: &str = r#"
import hashlib, socket, time
for attempt in range(50):
    try:
        c = socket.create_connection(("IP", 8081), timeout=30)
        break
    except OSError:
        if attempt == 49:
            raise
        time.sleep(0.1)
h = hashlib.sha256()
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    h.update(b)
    n += len(b)
print(h.hexdigest(), n, flush=True)
"#;

/// A ping flood (`-i 0.01`) and a slow TCP transfer from `from` to `to` while `during`
/// runs; asserts that no ping was lost and the transfer arrived intact.
fn no_loss_while(
    lab: &Lab,
    from: &Ep,
    to: &Ep,
    seconds: u32,
    during: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = lab.dir().join("rotation");
    std::fs::create_dir_all(&dir)?;
    let server_out = dir.join(format!("server-{}.out", to.name));
    let server = std::process::Command::new("nsenter")
        .arg(format!("--net={}", to.netns))
        .args([
            "--",
            "python3",
            "-c",
            &SLOW_SERVER
                .replace("IP", &to.ip)
                .replace("SECONDS", &seconds.to_string()),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&server_out)?)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut server = KillOnDrop(server);
    let client = {
        let netns = from.netns.clone();
        let code = SLOW_CLIENT.replace("IP", &to.ip);
        std::thread::spawn(move || in_ns(&netns, &["python3", "-c", &code]))
    };
    let count = (seconds * 100).to_string();
    let pinger = {
        let netns = from.netns.clone();
        let ip = to.ip.clone();
        let count = count.clone();
        std::thread::spawn(move || {
            in_ns(
                &netns,
                &["ping", "-q", "-i", "0.01", "-c", &count, "-W", "2", &ip],
            )
        })
    };
    let result = during();
    let ping = pinger.join().expect("pinger");
    let received = client.join().expect("client");
    let _ = server.0.wait();
    result?;
    let want = format!("{count} packets transmitted, {count} received");
    assert!(ping.stdout.contains(&want), "pings lost: {}", ping.stdout);
    let sent = std::fs::read_to_string(&server_out)?;
    assert!(received.success(), "{received:?}");
    assert!(!sent.trim().is_empty(), "the server printed nothing");
    assert_eq!(
        received.stdout.trim(),
        sent.trim(),
        "the TCP transfer arrived intact"
    );
    Ok(())
}

fn primary_epoch(lab: &Lab, i: usize) -> anyhow::Result<u64> {
    Ok(tunnel(lab, i)?["key_epoch"].as_u64().unwrap_or(0))
}

#[test]
fn key_rotations_under_traffic_lose_no_packet() -> anyhow::Result<()> {
    let lab = cluster_with(2, &["--key-rotation-interval", "10s"])?;
    let a = endpoint(&lab, 0, "vault", "ka")?;
    let b = endpoint(&lab, 1, "vault", "kb")?;
    wait_ping(&a, &b)?;
    let start = primary_epoch(&lab, 0)?;
    no_loss_while(&lab, &a, &b, 20, || {
        std::thread::sleep(Duration::from_secs(3));
        lab.host(0).cli_ok(&["key", "rotate"])?;
        std::thread::sleep(Duration::from_secs(4));
        lab.host(0).cli_ok(&["key", "rotate"])?;
        // The 10 s schedule fires on its own before the 20 s are over.
        wait_for("a scheduled rotation", Duration::from_secs(15), || {
            let ring = lab.host(0).cli_json(&["key", "ls", "--format", "json"])?;
            Ok((primary_epoch(&lab, 0)? >= start + 3
                && ring.as_array().is_some_and(|r| !r.is_empty()))
            .then_some(()))
        })?;
        Ok(())
    })?;
    // Both nodes send with the newest key.
    let end = primary_epoch(&lab, 0)?;
    assert!(end >= start + 3, "{start} -> {end}");
    for i in 0..2 {
        wait_for("sessions on the primary key", CONVERGE, || {
            let t = tunnel(&lab, i)?;
            let primary = t["key_epoch"].as_u64().unwrap_or(0);
            Ok((t["peers"][0]["key_epoch"].as_u64() == Some(primary)).then_some(()))
        })?;
    }
    Ok(())
}

#[test]
fn node_key_rotations_under_traffic_lose_no_packet() -> anyhow::Result<()> {
    let lab = cluster(2)?;
    let a = endpoint(&lab, 0, "vault", "na")?;
    let b = endpoint(&lab, 1, "vault", "nb")?;
    wait_ping(&a, &b)?;
    let before: Vec<String> = (0..2)
        .map(|i| Ok(tunnel(&lab, i)?["public_key"].as_str().unwrap().to_string()))
        .collect::<anyhow::Result<_>>()?;
    no_loss_while(&lab, &a, &b, 15, || {
        std::thread::sleep(Duration::from_secs(3));
        // The worker's own key, from the worker.
        lab.host(1).cli_ok(&["node", "rotate-key"])?;
        std::thread::sleep(Duration::from_secs(3));
        // The worker's key again, from the manager.
        let worker = lab.host(1).cli_json(&["status", "--format", "json"])?["node_id"]
            .as_str()
            .unwrap()
            .to_string();
        lab.host(0).cli_ok(&["node", "rotate-key", &worker])?;
        std::thread::sleep(Duration::from_secs(3));
        // The manager's own.
        lab.host(0).cli_ok(&["node", "rotate-key"])?;
        Ok(())
    })?;
    for (i, old) in before.iter().enumerate() {
        let now = tunnel(&lab, i)?["public_key"].as_str().unwrap().to_string();
        assert_ne!(&now, old, "host {i} has a new key");
        // The peer knows it.
        let other = tunnel(&lab, 1 - i)?;
        assert_eq!(other["peers"][0]["public_key"], now.as_str(), "{other}");
    }
    // A worker cannot rotate another node's key.
    let manager = lab.host(0).cli_json(&["status", "--format", "json"])?["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = lab.host(1).cli(&["node", "rotate-key", &manager]);
    assert!(!out.success(), "{out:?}");
    Ok(())
}

/// Sends each datagram (hex) to DST:51820 from a fresh UDP socket.
const SEND_DATAGRAMS: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for h in sys.argv[2:]:
    s.sendto(bytes.fromhex(h), (sys.argv[1], 51820))
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn bad_datagrams_on_the_wireguard_port_disturb_no_session() -> anyhow::Result<()> {
    let lab = cluster(2)?;
    let a = endpoint(&lab, 0, "vault", "ga")?;
    let b = endpoint(&lab, 1, "vault", "gb")?;
    wait_ping(&a, &b)?;
    let (src, dst) = (lab.host(0).data_ip(), lab.host(1).data_ip());

    // A real transport datagram from host 0 to host 1, captured on the data link.
    let dir = lab.dir().join("captures");
    std::fs::create_dir_all(&dir)?;
    let cap = Capture::start(
        lab.lab_netns(),
        "data0",
        "udp port 51820",
        &dir.join("wg.pcap"),
    )?;
    assert!(in_ns(&a.netns, &["ping", "-c", "3", "-i", "0.2", &b.ip]).success());
    let pcap = parse_pcap(&cap.stop()?)?;
    let real: Vec<u8> = pcap
        .packets
        .iter()
        .filter_map(|p| Ipv4Packet::from_ethernet(&p.data))
        .filter(|ip| ip.src == src && ip.dst == dst)
        .filter_map(|ip| ip.payload.get(8..).map(<[u8]>::to_vec))
        .find(|udp| udp.len() > 32 && udp[0] == 4)
        .expect("a captured transport datagram");

    let mut datagrams = Vec::new();
    for n in 0..20u8 {
        // Garbage: no WireGuard message type.
        datagrams.push(vec![0xAA ^ n; 1 + usize::from(n) * 9]);
        // Truncated real traffic.
        datagrams.push(real[..20 + usize::from(n % 12)].to_vec());
        // Replayed real traffic.
        datagrams.push(real.clone());
        // Wrongly keyed: the real header and index, a tampered ciphertext.
        let mut forged = real.clone();
        forged[20 + usize::from(n)] ^= 0xFF;
        datagrams.push(forged);
        // A handshake initiation from nobody (its MAC1 cannot be right).
        let mut init = vec![n; 148];
        init[..4].copy_from_slice(&[1, 0, 0, 0]);
        datagrams.push(init);
    }
    let peer_of = |t: &Value| t["peers"][0].clone();
    let before = tunnel(&lab, 1)?;

    // While a ping runs across the encrypted network, host 0's namespace fires them at
    // host 1's WireGuard port (an attacker on the data link, even with a member's address).
    let pinger = {
        let (netns, ip) = (a.netns.clone(), b.ip.clone());
        std::thread::spawn(move || {
            in_ns(
                &netns,
                &["ping", "-q", "-i", "0.02", "-c", "200", "-W", "2", &ip],
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut args = vec![
        "python3".to_string(),
        "-c".into(),
        SEND_DATAGRAMS.into(),
        dst.to_string(),
    ];
    args.extend(datagrams.iter().map(|d| hex(d)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.host(0).exec_ok(&args)?;
    let ping = pinger.join().expect("pinger");
    assert!(
        ping.stdout
            .contains("200 packets transmitted, 200 received"),
        "the session was disturbed: {}",
        ping.stdout
    );

    let after = tunnel(&lab, 1)?;
    let grew = |field: &str, t0: &Value, t1: &Value| {
        t1[field].as_u64().unwrap_or(0) - t0[field].as_u64().unwrap_or(0)
    };
    // 20 garbage, 20 truncated and 20 initiations without a valid MAC1.
    assert!(grew("garbage", &before, &after) >= 60, "{before}\n{after}");
    // 20 replays and 20 forgeries for the peer's session.
    let invalid = grew("dropped_invalid", &peer_of(&before), &peer_of(&after));
    assert!(invalid >= 40, "{before}\n{after}");
    // And the tunnel still works afterwards.
    wait_ping(&a, &b)?;
    Ok(())
}

/// Sends COUNT VXLAN datagrams (VNI, inner Ethernet frame to DST_MAC / DST_IP:9999 carrying
/// MARKER) to TUNNEL_IP:4789 from an ordinary UDP socket, running the shell command BEFORE
/// (if given) before each one.
const INJECT: &str = r#"
import os, socket, struct, sys
tunnel_ip, vni, dst_mac, dst_ip, marker, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
before = sys.argv[7] if len(sys.argv) > 7 else ""
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF
payload = marker.encode()
udp = struct.pack("!HHHH", 40000, 9999, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                 socket.inet_aton("10.70.0.200"), socket.inet_aton(dst_ip))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex("02420a46c800") + b"\x08\x00"
vxlan = struct.pack("!II", 0x08000000, vni << 8)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
refused = 0
for _ in range(count):
    if before:
        os.system(before)
    try:
        s.sendto(vxlan + eth + ip + udp, (tunnel_ip, 4789))
    except PermissionError:
        refused += 1  # a netfilter drop on the way out
print(f"refused {refused} of {count}")
"#;

/// Prints whatever arrives on IP:9999 within SECONDS.
const LISTEN: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
s.settimeout(float(sys.argv[2]))
try:
    while True:
        print(s.recv(2048).decode(errors="replace"), flush=True)
except socket.timeout:
    pass
"#;

#[test]
fn frames_cannot_be_injected_into_encrypted_networks_through_the_tunnel() -> anyhow::Result<()> {
    let lab = cluster(3)?;
    let a = endpoint(&lab, 0, "vault", "ia")?;
    let b = endpoint(&lab, 1, "vault", "ib")?;
    wait_ping(&a, &b)?;
    let vni = network(&lab, 0, "vault")?.unwrap()["vni"]
        .as_u64()
        .unwrap()
        .to_string();
    let tunnel_b = tunnel(&lab, 1)?["tunnel_ip"].as_str().unwrap().to_string();
    // Runs INJECT on host `from` (its command prefixed by `wrap`, with the shell command
    // `before` run before each datagram) while b listens; returns the injector's output and
    // what b heard.
    let inject = |from: usize, wrap: &[&str], before: &str, marker: &str| {
        let listener = {
            let (netns, ip) = (b.netns.clone(), b.ip.clone());
            std::thread::spawn(move || in_ns(&netns, &["python3", "-c", LISTEN, &ip, "3"]).stdout)
        };
        let mac = b.mac.clone();
        let mut cmd: Vec<&str> = wrap.to_vec();
        cmd.extend([
            // The system's interpreter: a per-user one (pyenv under /root) is out of
            // reach of the unprivileged sender.
            "/usr/bin/python3",
            "-c",
            INJECT,
            &tunnel_b,
            &vni,
            &mac,
            &b.ip,
            marker,
            "20",
            before,
        ]);
        let out = lab.host(from).exec_ok(&cmd);
        let heard = listener.join().expect("listener");
        out.map(|out| (out, heard))
    };
    let strict = |i: usize, field: &str| -> anyhow::Result<u64> {
        Ok(tunnel(&lab, i)?[field].as_u64().unwrap())
    };
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    // The reconciler puts the rules back within 2 s: delete them before every datagram.
    let drop_own_rules = "nft delete table inet secnet 2>/dev/null";

    // 1. An unprivileged process on a member host (host 0, which has an endpoint on the
    // network) sends VXLAN for the network to host 1's tunnel address.
    let before = strict(0, "strict_dropped_out")?;
    let (out, heard) = inject(0, &nobody, "", "INJECTED-BY-NOBODY")?;
    assert!(out.contains("refused 20 of 20"), "{out}");
    assert!(
        !heard.contains("INJECTED"),
        "injected frame delivered: {heard}"
    );
    let after = strict(0, "strict_dropped_out")?;
    assert!(
        after >= before + 20,
        "dropped at the sender: {before} -> {after}"
    );

    // 2. A compromised member without endpoints on the network (host 2): root, it removes
    // its own strict-mode rules and injects. The receiver accepts the network's VXLAN only
    // from nodes with endpoints on it.
    let before = strict(1, "strict_dropped_in")?;
    let (_, heard) = inject(2, &[], drop_own_rules, "INJECTED-BY-A-MEMBER")?;
    assert!(
        !heard.contains("INJECTED"),
        "injected frame delivered: {heard}"
    );
    let after = strict(1, "strict_dropped_in")?;
    assert!(
        after >= before + 20,
        "dropped at the receiver: {before} -> {after}"
    );

    // The same frames from a node with an endpoint on the network, sent the way its kernel
    // would (the sender's strict rules removed by its root), are delivered: the checks above
    // can fail.
    let (_, heard) = inject(0, &[], drop_own_rules, "FROM-A-MEMBER-OF-VAULT")?;
    assert!(
        heard.contains("FROM-A-MEMBER-OF-VAULT"),
        "nothing delivered: {heard}"
    );
    wait_ping(&a, &b)?;
    Ok(())
}

#[test]
fn a_node_that_vanishes_mid_rotation_blocks_no_one() -> anyhow::Result<()> {
    let mut lab = cluster(3)?;
    let a = endpoint(&lab, 0, "vault", "va0")?;
    let b = endpoint(&lab, 1, "vault", "vb1")?;
    let c = endpoint(&lab, 2, "vault", "vc2")?;
    wait_ping(&a, &b)?;
    wait_ping(&a, &c)?;
    let start = primary_epoch(&lab, 0)?;
    // Host 2's daemon freezes (its tunnel with it): it can acknowledge nothing.
    let pid = lab
        .host_mut(2)
        .daemon_pid()
        .expect("daemon pid")
        .to_string();
    let _ = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()?;
    let thawed = scopeguard_cont(pid.clone());
    // The others rotate anyway (once the leader sees host 2 down) and keep talking,
    // without loss, through the rotation.
    no_loss_while(&lab, &a, &b, 12, || {
        let out = lab
            .host(0)
            .cli_timeout(&["key", "rotate"], Duration::from_secs(40));
        anyhow::ensure!(out.success(), "key rotate: {out:?}");
        Ok(())
    })?;
    assert!(primary_epoch(&lab, 0)? > start);
    // Back again: it catches up with the ring and its tunnel works with the new key.
    drop(thawed);
    wait_ping(&a, &c)?;
    wait_ping(&c, &b)?;
    Ok(())
}

/// Sends SIGCONT to `pid` when dropped (also when the test fails), so that no frozen
/// daemon outlives it.
fn scopeguard_cont(pid: String) -> impl Drop {
    struct Cont(String);
    impl Drop for Cont {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &self.0])
                .status();
        }
    }
    Cont(pid)
}

#[test]
fn the_wireguard_port_is_the_clusters_choice() -> anyhow::Result<()> {
    let lab = cluster_with(2, &["--wireguard-port", "51999"])?;
    let a = endpoint(&lab, 0, "vault", "pa0")?;
    let b = endpoint(&lab, 1, "vault", "pb1")?;
    wait_ping(&a, &b)?;
    for i in 0..2 {
        let t = tunnel(&lab, i)?;
        assert_eq!(
            t["listen"],
            format!("{}:51999", lab.host(i).data_ip()),
            "{t}"
        );
        assert!(
            t["peers"][0]["endpoint"]
                .as_str()
                .unwrap()
                .ends_with(":51999"),
            "{t}"
        );
    }
    let dir = lab.dir().join("captures");
    std::fs::create_dir_all(&dir)?;
    let cap = Capture::start(lab.lab_netns(), "data0", "udp", &dir.join("port.pcap"))?;
    assert!(in_ns(&a.netns, &["ping", "-c", "3", "-i", "0.2", &b.ip]).success());
    let pcap = parse_pcap(&cap.stop()?)?;
    let ports: Vec<u16> = pcap
        .packets
        .iter()
        .filter_map(|p| Ipv4Packet::from_ethernet(&p.data).and_then(|ip| ip.ports()))
        .map(|(_, dst)| dst)
        .collect();
    assert!(
        ports.iter().filter(|p| **p == 51999).count() >= 6,
        "{ports:?}"
    );
    assert!(
        !ports.contains(&51820) && !ports.contains(&4789),
        "{ports:?}"
    );
    Ok(())
}
