//! Endpoints on different hosts talk over VXLAN on the data-path interface; the kernel state
//! follows the replicated state and is repaired when changed behind secnet's back.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secnet_e2e::*;
use secnet_lab::traffic::{tcp_client, tcp_expected, tcp_server};
use secnet_lab::{parse_pcap, wait_for, Capture, Ipv4Packet};

const MARKER: &str = "served-over-the-overlay";

fn vxlan_packets(pcap: &[u8]) -> usize {
    parse_pcap(pcap)
        .unwrap()
        .packets
        .iter()
        .filter_map(|p| Ipv4Packet::from_ethernet(&p.data).and_then(|ip| ip.ports()))
        .filter(|(_, dst)| *dst == 4789)
        .count()
}

#[test]
fn endpoints_on_three_hosts_reach_each_other_over_eth1_only() -> anyhow::Result<()> {
    let lab = lab(3)?;
    form(&lab, 1, &["--default-addr-pool", "10.80.0.0/16"])?;
    lab.host(0).cli_ok(&["network", "create", "blue"])?;
    wait_for("blue on every host", CONVERGE, || {
        Ok((0..3)
            .all(|i| network(&lab, i, "blue").ok().flatten().is_some())
            .then_some(()))
    })?;
    let dir = lab.dir().join("captures");
    std::fs::create_dir_all(&dir)?;
    let ctl = Capture::start(
        lab.lab_netns(),
        "ctl0",
        "udp port 4789",
        &dir.join("ctl.pcap"),
    )?;
    let data = Capture::start(
        lab.lab_netns(),
        "data0",
        "udp port 4789",
        &dir.join("data.pcap"),
    )?;

    let eps: Vec<Ep> = (0..3)
        .map(|i| endpoint(&lab, i, "blue", &format!("web{i}")))
        .collect::<anyhow::Result<_>>()?;
    // Every endpoint reaches every other, both ways (the FDB/ARP entries may take a moment
    // to reach the hosts that did not create the endpoint).
    for a in &eps {
        for b in &eps {
            if a.name == b.name {
                continue;
            }
            wait_for(&format!("{} -> {}", a.name, b.name), CONVERGE, || {
                let out = ping(a, &b.ip);
                if out.success() {
                    Ok(Some(()))
                } else {
                    anyhow::bail!("{}{}", out.stdout, out.stderr)
                }
            })?;
        }
    }
    // TCP, both ways: web0 serves web2, then web2 serves web0.
    let mut servers = Vec::new();
    for (server_ep, client_ep) in [(&eps[0], &eps[2]), (&eps[2], &eps[0])] {
        let log = lab.dir().join(format!("tcp-server-{}.log", server_ep.name));
        let server = std::process::Command::new("nsenter")
            .arg(format!("--net={}", server_ep.netns))
            .args([
                "--",
                "python3",
                "-c",
                &tcp_server(&server_ep.ip, 100_000, MARKER),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        servers.push(KillOnDrop(server));
        let fetch = tcp_client(&server_ep.ip, MARKER);
        let what = format!(
            "100 kB over TCP from {} to {}",
            server_ep.name, client_ep.name
        );
        let body = wait_for(&what, CONVERGE, || {
            let out = in_ns(&client_ep.netns, &["python3", "-c", &fetch]);
            if out.success() {
                Ok(Some(out.stdout))
            } else {
                let tail: String = out.stderr.lines().last().unwrap_or_default().to_string();
                let server = std::fs::read_to_string(&log)?;
                anyhow::bail!("{tail}; server: {server}")
            }
        })?;
        assert_eq!(body.trim(), tcp_expected(100_000, MARKER), "{body}");
    }

    let ctl_pcap = ctl.stop()?;
    let data_pcap = data.stop()?;
    assert!(vxlan_packets(&data_pcap) > 0, "VXLAN on the data segment");
    assert_eq!(
        vxlan_packets(&ctl_pcap),
        0,
        "no VXLAN on the control segment"
    );
    // The outer source of VXLAN packets is a data-path address.
    for p in parse_pcap(&data_pcap)?.packets {
        if let Some(ip) = Ipv4Packet::from_ethernet(&p.data) {
            assert!(ip.src.to_string().starts_with("198.51.100."), "{}", ip.src);
        }
    }

    // MTU: the largest DF ping passes, one byte more fails loudly.
    let mtu = lab
        .host(0)
        .cli_json(&["network", "inspect", "blue", "--format", "json"])?[0]["mtu"]
        .as_u64()
        .unwrap();
    assert_eq!(mtu, 1450);
    let size = (mtu - 28).to_string();
    let out = in_ns(
        &eps[0].netns,
        &[
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", &size, &eps[1].ip,
        ],
    );
    assert!(out.success(), "{out:?}");
    let size = (mtu - 27).to_string();
    let out = in_ns(
        &eps[0].netns,
        &[
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", &size, &eps[1].ip,
        ],
    );
    assert!(!out.success());
    assert!(
        format!("{}{}", out.stdout, out.stderr)
            .to_lowercase()
            .contains("message too long"),
        "{out:?}"
    );
    Ok(())
}

#[test]
fn networks_are_isolated_and_removal_is_everywhere() -> anyhow::Result<()> {
    let lab = lab(2)?;
    form(&lab, 1, &[])?;
    lab.host(0).cli_ok(&["network", "create", "red"])?;
    lab.host(0).cli_ok(&["network", "create", "green"])?;
    wait_for("networks on host 1", CONVERGE, || network(&lab, 1, "green"))?;
    let red0 = endpoint(&lab, 0, "red", "red0")?;
    let red1 = endpoint(&lab, 1, "red", "red1")?;
    let green1 = endpoint(&lab, 1, "green", "green1")?;
    wait_for("red0 -> red1", CONVERGE, || {
        Ok(ping(&red0, &red1.ip).success().then_some(()))
    })?;
    assert!(!ping(&red0, &green1.ip).success(), "red reached green");
    assert!(!ping(&green1, &red0.ip).success(), "green reached red");

    // Removing an endpoint removes its FDB and ARP entries on the other host.
    let red_id = network(&lab, 0, "red")?.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ns0 = network_netns(&lab, 0, &red_id);
    // Only secnet's entries: VXLAN forwarding entries (with a `dst`) and permanent
    // neighbours; the bridge may have learned the MAC on its own, which ages out.
    let fdb = || {
        in_ns(&ns0, &["bridge", "fdb", "show", "dev", "vxlan0"])
            .stdout
            .lines()
            .filter(|l| l.contains(" dst "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let neigh = || {
        in_ns(
            &ns0,
            &["ip", "neigh", "show", "dev", "vxlan0", "nud", "permanent"],
        )
        .stdout
    };
    assert!(fdb().contains(&red1.mac), "{}", fdb());
    assert!(neigh().contains(&red1.ip), "{}", neigh());
    lab.host(1).cli_ok(&["endpoint", "rm", "red1"])?;
    wait_for("red1's entries gone on host 0", CONVERGE, || {
        Ok(
            (!fdb().contains(&red1.mac) && !neigh().contains(&format!("{} ", red1.ip)))
                .then_some(()),
        )
    })?;
    assert!(
        !std::path::Path::new(&red1.netns).exists(),
        "red1's namespace is gone"
    );

    // The last local endpoint of a network takes the network's namespace with it.
    lab.host(0).cli_ok(&["endpoint", "rm", "red0"])?;
    assert!(!std::path::Path::new(&ns0).exists(), "{ns0} should be gone");
    // A network with endpoints cannot be removed; without, it can.
    let out = lab.host(0).cli(&["network", "rm", "green"]);
    assert!(!out.success() && out.stderr.contains("green1"), "{out:?}");
    lab.host(1).cli_ok(&["endpoint", "rm", "green1"])?;
    lab.host(0).cli_ok(&["network", "rm", "green"])?;
    Ok(())
}

#[test]
fn kernel_state_is_repaired_and_survives_restarts() -> anyhow::Result<()> {
    let mut lab = lab(2)?;
    form(&lab, 1, &[])?;
    lab.host(0).cli_ok(&["network", "create", "blue"])?;
    wait_for("blue on host 1", CONVERGE, || network(&lab, 1, "blue"))?;
    let a = endpoint(&lab, 0, "blue", "a")?;
    let b = endpoint(&lab, 1, "blue", "b")?;
    wait_for("a -> b", CONVERGE, || {
        Ok(ping(&a, &b.ip).success().then_some(()))
    })?;
    let blue_id = network(&lab, 0, "blue")?.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ns1 = network_netns(&lab, 1, &blue_id);

    // A deleted FDB entry comes back.
    let out = in_ns(
        &ns1,
        &["bridge", "fdb", "del", &a.mac, "dev", "vxlan0", "self"],
    );
    assert!(out.success(), "{out:?}");
    wait_for("the FDB entry repaired", Duration::from_secs(6), || {
        Ok(in_ns(&ns1, &["bridge", "fdb", "show", "dev", "vxlan0"])
            .stdout
            .contains(&a.mac)
            .then_some(()))
    })?;
    // A downed bridge comes back up.
    assert!(in_ns(&ns1, &["ip", "link", "set", "br0", "down"]).success());
    wait_for("br0 up again", Duration::from_secs(6), || {
        Ok(in_ns(&ns1, &["ip", "-o", "link", "show", "br0"])
            .stdout
            .contains(",UP")
            .then_some(()))
    })?;
    wait_for("b -> a after repairs", CONVERGE, || {
        Ok(ping(&b, &a.ip).success().then_some(()))
    })?;

    // A crash and restart keeps connectivity and creates no duplicates; a process inside
    // the endpoint keeps running.
    let links = || {
        in_ns(&ns1, &["ip", "-o", "link", "show"])
            .stdout
            .lines()
            .count()
    };
    let before = links();
    let sleeper = std::process::Command::new("nsenter")
        .arg(format!("--net={}", b.netns))
        .args(["--", "sleep", "600"])
        .spawn()?;
    let mut sleeper = KillOnDrop(sleeper);
    lab.host_mut(1).kill_daemon()?;
    assert!(
        ping(&a, &b.ip).success(),
        "the data path does not need the daemon"
    );
    lab.host_mut(1).start_daemon()?;
    // Let the restarted daemon run a few reconcile passes.
    wait_for("endpoint b listed after restart", CONVERGE, || {
        let v = lab
            .host(1)
            .cli_json(&["endpoint", "ls", "--format", "json"])?;
        Ok(v.as_array().is_some_and(|a| a.len() == 2).then_some(()))
    })?;
    // Wait for a few full reconcile passes of the restarted daemon, then look.
    let passes = || -> anyhow::Result<u64> {
        Ok(
            lab.host(1).cli_json(&["status", "--format", "json"])?["dataplane_passes"]
                .as_u64()
                .unwrap_or(0),
        )
    };
    let start = passes()?;
    wait_for("three reconcile passes after restart", CONVERGE, || {
        Ok((passes()? >= start + 3).then_some(()))
    })?;
    let st = lab.host(1).cli_json(&["status", "--format", "json"])?;
    assert_eq!(st["dataplane_errors"], serde_json::json!([]), "{st}");
    assert_eq!(links(), before, "no duplicate devices after restart");
    assert!(
        sleeper.0.try_wait()?.is_none(),
        "the process in the endpoint survived"
    );
    assert!(ping(&a, &b.ip).success());
    assert!(ping(&b, &a.ip).success());
    Ok(())
}

#[test]
fn endpoint_requests_are_validated() -> anyhow::Result<()> {
    let lab = lab(2)?;
    form(&lab, 1, &[])?;
    let h = lab.host(0);
    h.cli_ok(&["network", "create", "--subnet", "10.90.0.0/24", "blue"])?;
    let e = endpoint(&lab, 0, "blue", "one")?;
    assert_eq!(e.ip, "10.90.0.2", "first address after the gateway");
    let count = || {
        h.cli_json(&["endpoint", "ls", "--format", "json"])
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    let refused = |args: &[&str], needle: &str| {
        let out = h.cli(args);
        assert!(!out.success(), "{args:?} should fail: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {out:?}");
    };
    refused(&["endpoint", "create", "--network", "nosuch"], "nosuch");
    refused(
        &["endpoint", "create", "--network", "blue", "--name", "one"],
        "one",
    );
    refused(
        &[
            "endpoint",
            "create",
            "--network",
            "blue",
            "--ip",
            "10.91.0.5",
        ],
        "10.91.0.5",
    );
    refused(
        &[
            "endpoint",
            "create",
            "--network",
            "blue",
            "--ip",
            "10.90.0.2",
        ],
        "10.90.0.2",
    );
    refused(
        &[
            "endpoint",
            "create",
            "--network",
            "blue",
            "--ip",
            "10.90.0.1",
        ],
        "10.90.0.1",
    );
    refused(&["network", "create", "-o", "mtu=1451", "toobig"], "1451");
    refused(&["network", "rm", "blue"], "one");
    refused(&["endpoint", "rm", "nosuch"], "nosuch");
    assert_eq!(count(), 1, "nothing changed");
    // `exec` on an endpoint of another host says where it is.
    let other = endpoint(&lab, 1, "blue", "two")?;
    let out = lab.host(0).cli(&["exec", &other.name, "--", "true"]);
    assert!(!out.success() && out.stderr.contains("h2"), "{out:?}");

    // `run` passes output and exit code through and removes its endpoint.
    let out = lab.host(0).cli(&[
        "run",
        "--network",
        "blue",
        "--name",
        "job",
        "--",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; exit 3",
    ]);
    assert_eq!(out.status, 3, "{out:?}");
    assert!(out.stdout.contains("10.90.0."), "{out:?}");
    assert!(h
        .cli(&["endpoint", "inspect", "job"])
        .stderr
        .contains("not found"));
    // (`ip`, not /sys: sysfs shows the namespace it was mounted in.)
    let out = lab
        .host(0)
        .cli(&["exec", "one", "--", "ip", "-o", "link", "show", "eth0"]);
    assert!(out.stdout.contains("mtu 1450"), "{out:?}");
    Ok(())
}

#[test]
fn connect_disconnect_and_node_removal() -> anyhow::Result<()> {
    let mut lab = lab(3)?;
    form(&lab, 1, &[])?;
    lab.host(0).cli_ok(&["network", "create", "front"])?;
    lab.host(0).cli_ok(&["network", "create", "back"])?;
    wait_for("networks on host 2", CONVERGE, || network(&lab, 2, "back"))?;
    let web = endpoint(&lab, 0, "front", "web")?;
    let db = endpoint(&lab, 1, "back", "db")?;
    // A worker endpoint on a third host, on the back network.
    let cache = endpoint(&lab, 2, "back", "cache")?;
    assert!(!ping(&web, &db.ip).success(), "front cannot reach back yet");

    // `connect` gives web an eth1 on back; it then reaches db over it.
    let out = lab
        .host(0)
        .cli_ok(&["endpoint", "connect", "back", "web"])?;
    assert!(out.contains("eth1"), "{out}");
    wait_for("web -> db over eth1", CONVERGE, || {
        Ok(ping(&web, &db.ip).success().then_some(()))
    })?;
    let addrs = in_ns(&web.netns, &["ip", "-o", "-4", "addr", "show", "eth1"]).stdout;
    assert!(!addrs.is_empty(), "eth1 has an address");
    // `disconnect` takes eth1 away again.
    lab.host(0)
        .cli_ok(&["endpoint", "disconnect", "back", "web"])?;
    wait_for("eth1 gone", CONVERGE, || {
        Ok((!in_ns(&web.netns, &["ip", "-o", "link"])
            .stdout
            .contains("eth1"))
        .then_some(()))
    })?;
    assert!(!ping(&web, &db.ip).success());

    // Removing a node removes its endpoints everywhere.
    wait_for("db -> cache", CONVERGE, || {
        Ok(ping(&db, &cache.ip).success().then_some(()))
    })?;
    let cache_node = lab.host(2).cli_json(&["status", "--format", "json"])?["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    lab.host_mut(2).stop_daemon()?;
    lab.host(0)
        .cli_ok(&["node", "rm", "--force", &cache_node])?;
    wait_for("cache gone from endpoint ls on host 1", CONVERGE, || {
        let v = lab
            .host(1)
            .cli_json(&["endpoint", "ls", "--format", "json"])?;
        Ok(v.as_array()
            .is_some_and(|a| a.iter().all(|e| e["name"] != "cache"))
            .then_some(()))
    })?;
    let back_id = network(&lab, 1, "back")?.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ns1 = network_netns(&lab, 1, &back_id);
    wait_for("cache's FDB entry gone on host 1", CONVERGE, || {
        let fdb = in_ns(&ns1, &["bridge", "fdb", "show", "dev", "vxlan0"]).stdout;
        Ok((!fdb
            .lines()
            .any(|l| l.contains(&cache.mac) && l.contains(" dst ")))
        .then_some(()))
    })?;
    Ok(())
}

/// Every namespace file on host `i` belongs to an endpoint or network of the state, and every
/// local endpoint of the state has its namespace with an addressed `eth0`.
fn kernel_matches_state(lab: &secnet_lab::Lab, i: usize) -> anyhow::Result<Option<()>> {
    let eps = lab
        .host(i)
        .cli_json(&["endpoint", "ls", "--format", "json"])?;
    let me = lab.host(i).cli_json(&["status", "--format", "json"])?["node_id"].clone();
    let local: Vec<&serde_json::Value> = eps
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"] == me)
        .collect();
    let dir = lab.host(i).dir().join("run/netns");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for f in &files {
        if let Some(name) = f.strip_prefix("ep-") {
            if !local.iter().any(|e| e["name"] == name) {
                return Ok(None); // a leftover not yet removed
            }
        }
    }
    for e in &local {
        let netns = e["netns"].as_str().unwrap();
        let out = in_ns(netns, &["ip", "-o", "-4", "addr", "show", "eth0"]);
        if !out.stdout.contains(e["ip"].as_str().unwrap()) {
            return Ok(None);
        }
    }
    Ok(Some(()))
}

#[test]
fn a_crash_while_creating_endpoints_leaves_nothing_half_made() -> anyhow::Result<()> {
    let mut lab = lab(2)?;
    form(&lab, 1, &[])?;
    lab.host(0).cli_ok(&["network", "create", "blue"])?;
    wait_for("blue on host 1", CONVERGE, || network(&lab, 1, "blue"))?;
    let anchor = endpoint(&lab, 0, "blue", "anchor")?;
    for (round, delay_ms) in [0u64, 15, 40, 80, 150].into_iter().enumerate() {
        // Start a create on host 1 and kill its daemon a moment later.
        let mut create = std::process::Command::new(secnet_lab::bin_dir()?.join("secnet"))
            .arg("--socket")
            .arg(lab.host(1).socket())
            .args([
                "endpoint",
                "create",
                "--network",
                "blue",
                "--name",
                &format!("crash{round}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(delay_ms));
        lab.host_mut(1).kill_daemon()?;
        let _ = create.wait();
        lab.host_mut(1).start_daemon()?;
        wait_for(
            &format!("host 1's kernel to match its state after crash {round}"),
            CONVERGE,
            || kernel_matches_state(&lab, 1),
        )?;
    }
    // Whatever was created is complete and reachable; the rest left no trace.
    let eps = lab
        .host(1)
        .cli_json(&["endpoint", "ls", "--format", "json"])?;
    for e in eps.as_array().unwrap() {
        if e["name"].as_str().unwrap().starts_with("crash") {
            let ep = Ep {
                name: e["name"].as_str().unwrap().into(),
                ip: e["ip"].as_str().unwrap().into(),
                mac: e["mac"].as_str().unwrap().into(),
                netns: e["netns"].as_str().unwrap().into(),
                host: 1,
            };
            wait_for(&format!("{} -> anchor", ep.name), CONVERGE, || {
                Ok(ping(&ep, &anchor.ip).success().then_some(()))
            })?;
        }
    }

    // A node that was down catches up when it returns.
    lab.host_mut(1).stop_daemon()?;
    let late = endpoint(&lab, 0, "blue", "late")?;
    lab.host_mut(1).start_daemon()?;
    let probe = endpoint(&lab, 1, "blue", "probe")?;
    wait_for(
        "the returning node reaches an endpoint made while it was down",
        CONVERGE,
        || Ok(ping(&probe, &late.ip).success().then_some(())),
    )?;
    Ok(())
}
