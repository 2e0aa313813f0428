//! The README's main job: `secnet-lab demo` with the real binaries, start to finish.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn secnet_lab() -> Command {
    Command::new(secnet_lab::bin_dir().unwrap().join("secnet-lab"))
}

fn our_namespaces(prefix: &str) -> Vec<String> {
    secnet_lab::list_netns()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn demo_runs_every_step_and_cleans_up() {
    let prefix = secnet_lab::unique_prefix();
    let out = secnet_lab()
        .args(["demo", "--prefix", &prefix])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    for n in 1..=12 {
        assert!(
            text.contains(&format!("[{n}/12]")),
            "step {n} missing:\n{text}"
        );
    }
    // Join tokens are masked.
    let secret_like = text
        .split_whitespace()
        .filter(|w| w.starts_with("SNTKN-1-"))
        .all(|w| w.contains("…") || w.contains("***") || w.len() < 60);
    assert!(secret_like, "an unmasked token was printed:\n{text}");
    // The page crossed the overlay, on the data segment only.
    assert!(text.contains("hello from api over the overlay"), "{text}");
    assert!(text.contains("the hosts' eth0): 0 VXLAN packets"), "{text}");
    // The marker is invisible over the encrypted network, visible over the plain one.
    assert!(
        text.contains("pinging over frontend: 0 VXLAN")
            && text.contains("\"SECRET-MARKER-42\" not found"),
        "{text}"
    );
    assert!(text.contains("\"SECRET-MARKER-42\" VISIBLE"), "{text}");
    // The rotation under traffic lost nothing.
    assert!(
        text.contains("ping: 500 packets transmitted, 500 received"),
        "{text}"
    );
    // The service: two tasks on two nodes, reached over the encrypted network, replaced
    // after a kill, moved off a stopped node.
    assert!(
        text.contains("overall progress: 2 out of 2 tasks"),
        "{text}"
    );
    assert!(text.contains("two tasks on two nodes"), "{text}");
    assert!(
        text.contains("200 (from teller on h5 to the task on"),
        "{text}"
    );
    assert!(text.contains("rescheduled"), "{text}");
    assert!(text.contains("cleaned up"), "{text}");
    assert!(our_namespaces(&prefix).is_empty());
}

#[test]
fn demo_keep_then_down_removes_everything() {
    let prefix = secnet_lab::unique_prefix();
    let out = secnet_lab()
        .args(["demo", "--keep", "--prefix", &prefix])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("secnet-lab down --prefix {prefix}")),
        "{text}"
    );
    assert_eq!(
        our_namespaces(&prefix).len(),
        6,
        "5 hosts and the lab namespace"
    );
    let out = secnet_lab()
        .args(["down", "--prefix", &prefix])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("removed 6 network namespaces"), "{text}");
    assert!(our_namespaces(&prefix).is_empty());
}
