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

fn tunnel(lab: &Lab, i: usize) -> anyhow::Result<Value> {
    lab.host(i).cli_json(&["tunnel", "ls", "--format", "json"])
}

/// A cluster of `hosts` (one manager) with an encrypted network `vault` and a plain one
/// `plain`, both known everywhere.
fn cluster(hosts: usize) -> anyhow::Result<Lab> {
    let lab = lab(hosts)?;
    form(&lab, 1, &["--default-addr-pool", "10.70.0.0/16"])?;
    lab.host(0)
        .cli_ok(&["network", "create", "--opt", "encrypted", "vault"])?;
    lab.host(0).cli_ok(&["network", "create", "plain"])?;
    wait_for("both networks on every host", CONVERGE, || {
        Ok((0..hosts)
            .all(|i| network(&lab, i, "plain").ok().flatten().is_some())
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
    let (_, wireguard) = udp_counts(&enc_data);
    assert!(
        wireguard > 100,
        "the traffic went through WireGuard on the data segment: {wireguard}"
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
    let data = Capture::start(lab.lab_netns(), "data0", "", &dir.join("hijack.pcap"))?;
    let out = in_ns(
        &a.netns,
        &["ping", "-c", "5", "-i", "0.2", "-W", "1", &b.ip],
    );
    let pcap = data.stop()?;
    assert!(!out.success(), "the ping must fail: {out:?}");
    assert_eq!(udp_counts(&pcap).0, 0, "VXLAN in clear on the data segment");
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
    let data = Capture::start(lab.lab_netns(), "data0", "", &dir.join("blocked.pcap"))?;
    let out = in_ns(
        &a.netns,
        &["ping", "-c", "5", "-i", "0.2", "-W", "1", &b.ip],
    );
    let pcap = data.stop()?;
    assert!(!out.success(), "the ping must fail: {out:?}");
    assert_eq!(udp_counts(&pcap).0, 0, "VXLAN in clear on the data segment");
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
