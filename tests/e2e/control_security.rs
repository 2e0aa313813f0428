//! Control traffic is encrypted and stays on the control segment.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secnet_e2e::*;
use secnet_lab::{wait_for, Capture};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn control_traffic_is_tls_and_only_on_eth0() -> anyhow::Result<()> {
    let lab = lab(3)?;
    let dir = tempfile_dir(&lab);
    let ctl = Capture::start(
        lab.lab_netns(),
        "ctl0",
        "tcp port 2377",
        &dir.join("ctl.pcap"),
    )?;
    let data = Capture::start(
        lab.lab_netns(),
        "data0",
        "tcp port 2377",
        &dir.join("data.pcap"),
    )?;
    form(&lab, 2, &[])?;
    let marker = format!("marker-{:08x}", std::process::id() ^ 0x5eca_11ed);
    lab.host(2).cli_ok(&["network", "create", &marker])?;
    for i in 0..3 {
        wait_for(&format!("{marker} on host {i}"), CONVERGE, || {
            network(&lab, i, &marker)
        })?;
    }
    let ctl_bytes = ctl.stop()?;
    let data_bytes = data.stop()?;

    let pcap = secnet_lab::parse_pcap(&ctl_bytes)?;
    assert!(
        pcap.packets.len() > 20,
        "the capture saw the control traffic ({} packets)",
        pcap.packets.len()
    );
    assert!(
        !contains(&ctl_bytes, marker.as_bytes()),
        "the network name crossed the control segment in clear"
    );
    let data_pcap = secnet_lab::parse_pcap(&data_bytes)?;
    assert_eq!(
        data_pcap.packets.len(),
        0,
        "control traffic on the data segment"
    );

    // The same capture and search do find a name sent in clear, so the check above can fail.
    let probe = Capture::start(
        lab.lab_netns(),
        "ctl0",
        "tcp port 2377",
        &dir.join("probe.pcap"),
    )?;
    let cmd = format!("echo {marker} > /dev/tcp/{}/2377", lab.host(0).ctl_ip());
    let _ = lab.host(1).exec(&["bash", "-c", &cmd]);
    wait_for("the probe in the capture", Duration::from_secs(5), || {
        let bytes = std::fs::read(probe.path()).unwrap_or_default();
        Ok(contains(&bytes, marker.as_bytes()).then_some(()))
    })?;
    probe.stop()?;
    Ok(())
}

fn tempfile_dir(lab: &secnet_lab::Lab) -> std::path::PathBuf {
    let d = lab.dir().join("captures");
    std::fs::create_dir_all(&d).unwrap();
    d
}
