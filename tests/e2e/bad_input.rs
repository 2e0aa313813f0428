//! Every bad input exits non-zero with a message naming the value, and changes nothing.
#![allow(clippy::unwrap_used)]

use secnet_e2e::*;
use secnet_lab::{CmdOutput, Host};

/// Runs a command that must fail; checks the exit code and that stderr mentions every
/// `needle`.
fn refused(host: &Host, args: &[&str], needles: &[&str]) -> CmdOutput {
    let out = host.cli(args);
    assert!(
        !out.success(),
        "`secnet {}` should fail: {out:?}",
        args.join(" ")
    );
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "`secnet {}`: stderr should mention {n:?}: {out:?}",
            args.join(" ")
        );
    }
    out
}

fn inactive(host: &Host) -> bool {
    host.cli_json(&["status", "--format", "json"]).unwrap()["state"] == "inactive"
}

#[test]
fn init_flags_are_validated_before_anything_happens() -> anyhow::Result<()> {
    let lab = lab(1)?;
    let h = lab.host(0);
    refused(
        h,
        &["init", "--default-addr-pool", "10.20.0/16"],
        &["10.20.0/16"],
    );
    refused(
        h,
        &["init", "--default-addr-pool", "10.20.0.1/16"],
        &["10.20.0.1/16", "10.20.0.0/16"],
    );
    refused(
        h,
        &["init", "--default-addr-pool-mask-length", "30"],
        &["30"],
    );
    refused(
        h,
        &[
            "init",
            "--default-addr-pool",
            "10.20.0.0/16",
            "--default-addr-pool-mask-length",
            "8",
        ],
        &["10.20.0.0/16"],
    );
    refused(h, &["init", "--advertise-addr", "eth7"], &["eth7"]);
    refused(
        h,
        &["init", "--data-path-addr", "192.0.2.11:4789"],
        &["port"],
    );
    refused(h, &["init", "--data-path-port", "80"], &["80"]);
    refused(h, &["init", "--key-rotation-interval", "5s"], &["5s"]);
    refused(h, &["init", "--wireguard-port", "80"], &["80"]);
    refused(
        h,
        &["init", "--wireguard-port", "4789"],
        &["4789", "data-path port"],
    );
    // An interface with two addresses is ambiguous (addresses added inside the test host's
    // own namespace).
    h.exec_ok(&["ip", "addr", "add", "192.0.2.200/24", "dev", "eth0"])?;
    refused(
        h,
        &["init", "--advertise-addr", "eth0"],
        &["eth0", "more than one"],
    );
    h.exec_ok(&["ip", "addr", "del", "192.0.2.200/24", "dev", "eth0"])?;
    // A host route into the tunnel network would compete with the tunnel's.
    h.exec_ok(&["ip", "route", "add", "100.96.5.0/24", "dev", "eth0"])?;
    refused(
        h,
        &["init", "--advertise-addr", "eth0"],
        &["100.96.5.0/24", "eth0", "100.96.0.0/16"],
    );
    h.exec_ok(&["ip", "route", "del", "100.96.5.0/24", "dev", "eth0"])?;
    assert!(inactive(h), "nothing was initialized");

    let first = init(&lab, &[])?;
    assert!(first.contains("secnet join --token SNTKN-1-"), "{first}");
    let before = h.cli_json(&["status", "--format", "json"])?;
    refused(
        h,
        &["init", "--advertise-addr", "eth0"],
        &["already part of a cluster"],
    );
    let after = h.cli_json(&["status", "--format", "json"])?;
    assert_eq!(before["cluster_id"], after["cluster_id"]);
    Ok(())
}

#[test]
fn network_requests_are_validated() -> anyhow::Result<()> {
    let lab = lab(1)?;
    init(&lab, &["--default-addr-pool", "10.40.0.0/16"])?;
    let h = lab.host(0);
    h.cli_ok(&["network", "create", "--subnet", "10.50.0.0/24", "first"])?;
    let count = || network_ls(&lab, 0).unwrap().len();
    assert_eq!(count(), 1);

    refused(
        h,
        &["network", "create", "--subnet", "10.50.0.128/25", "overlap"],
        &["10.50.0.0/24"],
    );
    refused(
        h,
        &[
            "network",
            "create",
            "--subnet",
            "10.60.0.0/24",
            "--gateway",
            "10.61.0.1",
            "gw",
        ],
        &["10.61.0.1"],
    );
    refused(
        h,
        &[
            "network",
            "create",
            "--subnet",
            "10.60.0.0/24",
            "--gateway",
            "10.60.0.255",
            "gw",
        ],
        &["10.60.0.255"],
    );
    refused(
        h,
        &["network", "create", "--subnet", "10.60.0/24", "bad"],
        &["10.60.0/24"],
    );
    refused(
        h,
        &["network", "create", "first"],
        &["first", "already exists"],
    );
    // The control and data segments are the host's own routes: never an overlay subnet.
    refused(
        h,
        &["network", "create", "--subnet", "192.0.2.0/25", "shadow"],
        &["192.0.2.0"],
    );
    refused(
        h,
        &["network", "create", "--subnet", "198.51.100.0/24", "shadow"],
        &["198.51.100.0"],
    );
    refused(h, &["network", "create", "-o", "mtu=100", "tiny"], &["100"]);
    refused(
        h,
        &["network", "create", "-o", "colour=blue", "odd"],
        &["colour"],
    );
    refused(
        h,
        &["network", "create", "-d", "bridge", "wrongdriver"],
        &["bridge", "overlay"],
    );
    refused(h, &["network", "create", "bad/name"], &["bad/name"]);
    refused(h, &["network", "rm", "nosuchnet"], &["nosuchnet"]);
    refused(h, &["network", "inspect", "nosuchnet"], &["nosuchnet"]);
    refused(h, &["node", "inspect", "nosuchnode"], &["nosuchnode"]);
    // `rm` of a good and a bad name removes nothing.
    refused(h, &["network", "rm", "first", "nosuchnet"], &["nosuchnet"]);
    assert_eq!(count(), 1, "state unchanged");
    Ok(())
}

#[test]
fn join_tokens_are_checked() -> anyhow::Result<()> {
    let lab = lab(4)?;
    init(&lab, &[])?;
    let worker = token(&lab, 0, "worker")?;
    let remote = format!("{}:2377", lab.host(0).ctl_ip());
    let join_args = |t: &str| -> Vec<String> {
        ["join", "--token", t, "--advertise-addr", "eth0", &remote]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let run = |i: usize, t: &str| {
        let a = join_args(t);
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        lab.host(i).cli(&a)
    };

    // A token with the right CA digest but a wrong secret.
    let (prefix, _) = worker.rsplit_once('-').unwrap();
    let forged = format!("{prefix}-00112233445566778899aabbccddeeff");
    let out = run(1, &forged);
    assert!(
        !out.success() && out.stderr.contains("invalid join token"),
        "{out:?}"
    );
    // Malformed tokens are refused before anything is sent.
    let out = run(1, "SWMTKN-1-abc-def");
    assert!(!out.success() && out.stderr.contains("SNTKN"), "{out:?}");

    // A rotated token stops working; the new one works.
    lab.host(0).cli_ok(&["join-token", "worker", "--rotate"])?;
    let out = run(1, &worker);
    assert!(
        !out.success() && out.stderr.contains("invalid join token"),
        "{out:?}"
    );
    assert!(inactive(lab.host(1)));
    let fresh = token(&lab, 0, "worker")?;
    assert_ne!(fresh, worker);
    let out = run(1, &fresh);
    assert!(out.success(), "{out:?}");

    // Joining twice is refused.
    let out = run(1, &fresh);
    assert!(
        !out.success() && out.stderr.contains("already part of a cluster"),
        "{out:?}"
    );

    // A token of another cluster: the CA digest does not match this manager.
    let other = lab.host(3).cli_ok(&["init", "--advertise-addr", "eth0"])?;
    assert!(other.contains("SNTKN-1-"));
    let other_token = token(&lab, 3, "worker")?;
    let out = run(2, &other_token);
    assert!(
        !out.success() && out.stderr.contains("does not match"),
        "{out:?}"
    );
    assert!(inactive(lab.host(2)));

    assert_eq!(
        node_ls(&lab, 0)?.len(),
        2,
        "only the good join was admitted"
    );
    // Tokens are a manager's business.
    let out = lab.host(1).cli(&["join-token", "worker"]);
    assert!(
        !out.success() && out.stderr.contains("not a manager"),
        "{out:?}"
    );
    Ok(())
}
