//! Every node runs a WireGuard endpoint on its data-path address; the nodes are each
//! other's peers, keyed with the registered public keys and the ring's primary key.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secnet_e2e::*;
use secnet_lab::{wait_for, Capture};
use serde_json::Value;

fn tunnel(lab: &secnet_lab::Lab, i: usize) -> anyhow::Result<Value> {
    lab.host(i).cli_json(&["tunnel", "ls", "--format", "json"])
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn nodes_are_wireguard_peers_and_nothing_crosses_in_clear() -> anyhow::Result<()> {
    let mut lab = lab(3)?;
    form(&lab, 1, &[])?;
    // Every endpoint comes up with a tunnel address and the two others as peers.
    let mut infos = Vec::new();
    for i in 0..3 {
        infos.push(wait_for(
            &format!("the tunnel of host {i}"),
            CONVERGE,
            || {
                let t = tunnel(&lab, i)?;
                let ok = t["up"] == true && t["peers"].as_array().is_some_and(|p| p.len() == 2);
                Ok(ok.then_some(t))
            },
        )?);
    }
    // Each node's peers carry the public keys the other nodes registered for themselves.
    for (i, t) in infos.iter().enumerate() {
        for p in t["peers"].as_array().unwrap() {
            let other = infos
                .iter()
                .find(|o| o["tunnel_ip"] == p["tunnel_ip"])
                .unwrap_or_else(|| panic!("host {i}: peer {p} is no node"));
            assert_eq!(other["public_key"], p["public_key"]);
        }
        assert_eq!(t["listen"], format!("{}:51820", lab.host(i).data_ip()));
    }

    // Traffic between the hosts' tunnel addresses is sealed on the data segment.
    let dir = lab.dir().join("captures");
    std::fs::create_dir_all(&dir)?;
    let marker = "5ec0e7c0ffee5ec0e7c0ffee5ec0e7c0";
    let to = infos[1]["tunnel_ip"].as_str().unwrap().to_string();
    let cap = Capture::start(lab.lab_netns(), "data0", "", &dir.join("tunnel.pcap"))?;
    wait_for("a ping through the tunnel", CONVERGE, || {
        let out = lab
            .host(0)
            .exec(&["ping", "-c", "2", "-W", "2", "-p", marker, &to]);
        Ok(out.success().then_some(()))
    })?;
    let bytes = cap.stop()?;
    let pcap = secnet_lab::parse_pcap(&bytes)?;
    let wireguard = pcap
        .packets
        .iter()
        .filter_map(|p| secnet_lab::Ipv4Packet::from_ethernet(&p.data).and_then(|ip| ip.ports()))
        .filter(|(_, dst)| *dst == 51820)
        .count();
    assert!(
        wireguard >= 2,
        "WireGuard datagrams on the data segment: {wireguard}"
    );
    let raw_marker = hex_bytes(marker);
    assert!(
        !contains(&bytes, &raw_marker),
        "the ping payload crossed in clear"
    );
    // The same capture sees the marker of a plain ping (so the check above can fail).
    let plain = Capture::start(lab.lab_netns(), "data0", "icmp", &dir.join("plain.pcap"))?;
    let out = lab.host(0).exec(&[
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "-p",
        marker,
        &lab.host(1).data_ip().to_string(),
    ]);
    assert!(out.success(), "{out:?}");
    wait_for(
        "the plain ping in the capture",
        Duration::from_secs(5),
        || {
            let b = std::fs::read(plain.path()).unwrap_or_default();
            Ok(contains(&b, &raw_marker).then_some(()))
        },
    )?;
    plain.stop()?;
    let t0 = tunnel(&lab, 0)?;
    let peer = t0["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["tunnel_ip"] == to.as_str())
        .unwrap()
        .clone();
    assert!(peer["last_handshake_secs"].as_u64().is_some(), "{peer}");
    assert!(peer["rx_bytes"].as_u64().unwrap() > 0 && peer["tx_bytes"].as_u64().unwrap() > 0);

    // A key rotation re-keys the peers; the tunnel keeps working.
    let epoch = t0["key_epoch"].as_u64().unwrap();
    lab.host(0).cli_ok(&["key", "rotate"])?;
    wait_for("the peers keyed with the new epoch", CONVERGE, || {
        let t = tunnel(&lab, 0)?;
        Ok((t["key_epoch"].as_u64().unwrap_or(0) > epoch).then_some(()))
    })?;
    wait_for(
        "a ping through the tunnel after the rotation",
        CONVERGE,
        || {
            Ok(lab
                .host(0)
                .exec(&["ping", "-c", "1", "-W", "2", &to])
                .success()
                .then_some(()))
        },
    )?;

    // A removed node stops being a peer everywhere.
    let gone = lab.host(2).cli_json(&["status", "--format", "json"])?["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    lab.host_mut(2).stop_daemon()?;
    lab.host(0).cli_ok(&["node", "rm", "--force", &gone])?;
    for i in 0..2 {
        wait_for(
            &format!("host {i} drops the removed peer"),
            CONVERGE,
            || {
                let t = tunnel(&lab, i)?;
                Ok(t["peers"]
                    .as_array()
                    .is_some_and(|p| p.len() == 1)
                    .then_some(()))
            },
        )?;
    }
    Ok(())
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
