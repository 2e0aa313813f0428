//! Strict mode: nftables rules that keep the VXLAN of encrypted networks inside the
//! WireGuard tunnel.
//!
//! An encrypted network's VXLAN device sends to peers' tunnel addresses, which route into the
//! TUN device, where the tunnel engine seals the frames. Routing alone is not a guarantee:
//! until the TUN device exists, after it is deleted, or if someone adds a more specific route,
//! the kernel would send those VXLAN packets out of the underlay in clear. And the kernel's
//! VXLAN socket listens on every address of the host namespace, so a VXLAN packet with an
//! encrypted VNI sent in clear to the data-path address would be accepted into the encrypted
//! network. Docker Swarm had both holes (CVE-2023-28840/28841/28842): its encrypted overlay
//! relied on an iptables mark that was missing at times and on a rule that could be bypassed.
//!
//! So one nftables table in the host namespace, `inet secnet`, always present while the node
//! has encrypted networks, drops (and counts):
//!
//! * leaving (`postrouting`, the last hook a packet passes): any VXLAN packet (UDP to the
//!   data-path port) whose VNI is an encrypted network's, or whose destination is in the
//!   tunnel network, unless it leaves through the tunnel device;
//! * arriving (`prerouting` at raw priority, before anything else looks at it): any VXLAN
//!   packet whose VNI is an encrypted network's, or whose source is in the tunnel network,
//!   unless it arrives through the tunnel device.
//!
//! Two more rules close what a tunnel alone leaves open, because the tunnel device and its
//! route are in the host namespace:
//!
//! * leaving through the tunnel: VXLAN sent from a local *socket* (any user's process, root
//!   or not) is dropped. The kernel's VXLAN driver sends without an owning socket in the
//!   host namespace (the frames come from other namespaces), so `meta skuid` cannot be
//!   evaluated for its packets and the rule does not match them; every user socket has an
//!   owner and does. Without this, an unprivileged process on a member host could send
//!   UDP to a peer's tunnel address and port 4789 and have its payload accepted, sealed and
//!   all, as VXLAN frames of any encrypted network on that peer;
//! * arriving through the tunnel: VXLAN of an encrypted network is accepted only from the
//!   tunnel addresses of nodes that have endpoints on that network (from the replicated
//!   state). A compromised member can then inject only into networks it takes part in.
//!
//! The VNI is read from the VXLAN header: UDP header (8 bytes), flags (1), reserved (3), then
//! the 24-bit VNI, so bits 96..120 of the transport header (`@th,96,24`).
//!
//! The table is replaced atomically (one `nft -f` transaction: create, delete, create with
//! the new contents), so there is no moment without rules. The reconciler installs it before
//! any encrypted network's devices exist and leaves encrypted networks out of the data path
//! if it cannot ([`ensure_strict`] failing is fatal for them, never a fallback to clear).
//! A fingerprint of the rules sits in the table's comment; a table that is missing or differs
//! (deleted or edited by hand) is put back on the next pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::error::{DataplaneError, Result};
use ipnet::Ipv4Net;

use crate::cmd::{self, Tool, COMMAND_TIMEOUT};
use crate::model::{fnv1a, Layout};

/// The nftables table (family `inet`) that holds the strict-mode rules.
pub const STRICT_TABLE: &str = "secnet";
/// Name of the chain for arriving packets.
pub const STRICT_IN_CHAIN: &str = "strict_in";
/// Name of the chain for leaving packets.
pub const STRICT_OUT_CHAIN: &str = "strict_out";

/// What strict mode protects on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictPolicy {
    /// The VXLAN UDP port (`--data-path-port`).
    pub vxlan_port: u16,
    /// The tunnel's TUN device, the only way in and out for encrypted VXLAN.
    pub tunnel_ifname: String,
    /// The network of tunnel addresses: VXLAN to or from it must use the tunnel device.
    pub tunnel_net: Ipv4Net,
    /// The VNIs of every encrypted network in the cluster.
    pub encrypted_vnis: BTreeSet<u32>,
    /// Per encrypted VNI, the tunnel addresses of the nodes that have endpoints on it: the
    /// only sources its VXLAN is accepted from through the tunnel. A VNI missing here is
    /// accepted from no one.
    pub senders: BTreeMap<u32, BTreeSet<Ipv4Addr>>,
}

/// Packets strict mode dropped, as counted by its rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StrictDrops {
    /// Encrypted-network VXLAN that arrived other than through the tunnel.
    pub inbound: u64,
    /// Encrypted-network VXLAN that would have left other than through the tunnel.
    pub outbound: u64,
}

impl StrictPolicy {
    fn check(&self) -> Result<()> {
        let name_ok = !self.tunnel_ifname.is_empty()
            && self.tunnel_ifname.len() <= 15
            && self
                .tunnel_ifname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return Err(DataplaneError::InvalidPolicy(format!(
                "invalid tunnel device name {:?}",
                self.tunnel_ifname
            )));
        }
        if let Some(vni) = self.encrypted_vnis.iter().find(|v| **v >= 1 << 24) {
            return Err(DataplaneError::InvalidPolicy(format!(
                "VNI {vni} does not fit in 24 bits"
            )));
        }
        Ok(())
    }

    /// The chains' rules, without the table around them.
    fn rules(&self) -> String {
        let port = self.vxlan_port;
        let tun = &self.tunnel_ifname;
        let net = self.tunnel_net;
        let vnis = (!self.encrypted_vnis.is_empty()).then(|| {
            let list: Vec<String> = self.encrypted_vnis.iter().map(u32::to_string).collect();
            format!("{{ {} }}", list.join(", "))
        });
        let mut s = String::new();
        let _ = writeln!(s, "  chain {STRICT_IN_CHAIN} {{");
        let _ = writeln!(
            s,
            "    type filter hook prerouting priority raw; policy accept;"
        );
        if let Some(vnis) = &vnis {
            let _ = writeln!(
                s,
                "    iifname != \"{tun}\" udp dport {port} @th,96,24 {vnis} counter drop comment \"encrypted VNI arriving in clear\""
            );
        }
        let _ = writeln!(
            s,
            "    iifname != \"{tun}\" ip saddr {net} udp dport {port} counter drop comment \"tunnel-addressed VXLAN arriving in clear\""
        );
        for vni in &self.encrypted_vnis {
            let senders = self.senders.get(vni).filter(|s| !s.is_empty());
            match senders {
                Some(senders) => {
                    let list: Vec<String> = senders.iter().map(Ipv4Addr::to_string).collect();
                    let _ = writeln!(
                        s,
                        "    iifname \"{tun}\" udp dport {port} @th,96,24 {vni} ip saddr != {{ {} }} counter drop comment \"VNI {vni} from a node without endpoints on it\"",
                        list.join(", ")
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "    iifname \"{tun}\" udp dport {port} @th,96,24 {vni} counter drop comment \"VNI {vni} from a node without endpoints on it\""
                    );
                }
            }
        }
        let _ = writeln!(s, "  }}");
        let _ = writeln!(s, "  chain {STRICT_OUT_CHAIN} {{");
        let _ = writeln!(
            s,
            "    type filter hook postrouting priority filter; policy accept;"
        );
        if let Some(vnis) = &vnis {
            let _ = writeln!(
                s,
                "    oifname != \"{tun}\" udp dport {port} @th,96,24 {vnis} counter drop comment \"encrypted VNI leaving in clear\""
            );
        }
        let _ = writeln!(
            s,
            "    oifname != \"{tun}\" ip daddr {net} udp dport {port} counter drop comment \"tunnel-addressed VXLAN leaving in clear\""
        );
        let _ = writeln!(
            s,
            "    oifname \"{tun}\" udp dport {port} meta skuid >= 0 counter drop comment \"VXLAN from a local socket into the tunnel\""
        );
        let _ = writeln!(s, "  }}");
        s
    }

    /// Identifies these rules; kept in the table's comment.
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", fnv1a(self.rules().as_bytes()))
    }

    /// The `nft -f` script that replaces the table with these rules in one transaction.
    pub fn script(&self) -> String {
        format!(
            "table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n  comment \"secnet strict mode {fp}\"\n{rules}}}\n",
            t = STRICT_TABLE,
            fp = self.fingerprint(),
            rules = self.rules()
        )
    }
}

fn nft(layout: &Layout, args: &[&str], input: &str) -> Result<cmd::Output> {
    cmd::run(
        cmd::command(layout.host_netns.as_deref(), Tool::Nft, args),
        input,
        COMMAND_TIMEOUT,
    )
    .map_err(DataplaneError::NftUnavailable)
}

/// Whether the host namespace holds exactly this policy's table (by fingerprint).
pub fn strict_installed(layout: &Layout, policy: &StrictPolicy) -> Result<bool> {
    let out = nft(layout, &["list", "table", "inet", STRICT_TABLE], "")?;
    if !out.success() {
        // Absent (nft reports "No such file or directory").
        return Ok(false);
    }
    Ok(out
        .stdout
        .contains(&format!("secnet strict mode {}", policy.fingerprint())))
}

/// Makes the host namespace's strict-mode table equal to `policy`; returns whether it had to
/// be (re)installed. An error means the rules may be missing: the caller must not program
/// encrypted networks.
pub fn ensure_strict(layout: &Layout, policy: &StrictPolicy) -> Result<bool> {
    policy.check()?;
    if strict_installed(layout, policy)? {
        return Ok(false);
    }
    let out = nft(layout, &["-f", "-"], &policy.script())?;
    if !out.success() {
        return Err(DataplaneError::NftFailed {
            context: "installing the strict-mode rules",
            output: out.describe(),
        });
    }
    if !strict_installed(layout, policy)? {
        return Err(DataplaneError::StrictNotInPlace);
    }
    Ok(true)
}

/// Removes the strict-mode table (nothing to do if it is absent).
pub fn remove_strict(layout: &Layout) -> Result<()> {
    let script = format!("table inet {STRICT_TABLE}\ndelete table inet {STRICT_TABLE}\n");
    let out = nft(layout, &["-f", "-"], &script)?;
    if !out.success() {
        return Err(DataplaneError::NftFailed {
            context: "removing the strict-mode rules",
            output: out.describe(),
        });
    }
    Ok(())
}

/// What strict mode has dropped so far (zero when the table is absent).
pub fn strict_drops(layout: &Layout) -> Result<StrictDrops> {
    let out = nft(layout, &["-j", "list", "table", "inet", STRICT_TABLE], "")?;
    if !out.success() {
        return Ok(StrictDrops::default());
    }
    Ok(parse_drops(&out.stdout))
}

/// Sums the rule counters of `nft -j list table` output per chain. Tolerates anything it does
/// not understand (a newer nft's JSON) by counting nothing for it.
fn parse_drops(json: &str) -> StrictDrops {
    let mut drops = StrictDrops::default();
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return drops;
    };
    let items = value
        .get("nftables")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    for item in items {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        let packets: u64 = rule
            .get("expr")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("counter")?.get("packets")?.as_u64())
            .sum();
        match rule.get("chain").and_then(|c| c.as_str()) {
            Some(STRICT_IN_CHAIN) => drops.inbound += packets,
            Some(STRICT_OUT_CHAIN) => drops.outbound += packets,
            _ => {}
        }
    }
    drops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(vnis: &[u32]) -> StrictPolicy {
        StrictPolicy {
            vxlan_port: 4789,
            tunnel_ifname: "sntun0".into(),
            tunnel_net: "100.96.0.0/16".parse().expect("a valid network"),
            encrypted_vnis: vnis.iter().copied().collect(),
            senders: BTreeMap::new(),
        }
    }

    #[test]
    fn a_policy_that_cannot_be_written_is_refused_before_nft_runs() {
        // The layout points at a host namespace file that does not exist: had nft been run,
        // the error would be NftUnavailable or NftFailed, not InvalidPolicy.
        let layout = Layout::new("/nonexistent/secnet-run", Some("/nonexistent/netns".into()));
        let mut bad_name = policy(&[4096]);
        bad_name.tunnel_ifname = "tun with spaces".into();
        let mut bad_vni = policy(&[1 << 24]);
        bad_vni.tunnel_ifname = "sntun0".into();
        for (p, text) in [(bad_name, "\"tun with spaces\""), (bad_vni, "VNI 16777216")] {
            match ensure_strict(&layout, &p) {
                Err(e @ DataplaneError::InvalidPolicy(_)) => {
                    assert!(e.to_string().contains(text), "{e}")
                }
                other => panic!("expected InvalidPolicy, got {other:?}"),
            }
        }
    }

    #[test]
    fn script_replaces_the_table_atomically_and_names_every_vni() {
        let s = policy(&[4096, 4100]).script();
        assert!(s.starts_with("table inet secnet\ndelete table inet secnet\ntable inet secnet {"));
        assert_eq!(s.matches("@th,96,24 { 4096, 4100 }").count(), 2);
        assert_eq!(
            s.matches("ip daddr 100.96.0.0/16 udp dport 4789").count(),
            1
        );
        assert_eq!(
            s.matches("ip saddr 100.96.0.0/16 udp dport 4789").count(),
            1
        );
        assert!(s.contains("iifname != \"sntun0\""));
        assert!(s.contains("oifname != \"sntun0\""));
    }

    #[test]
    fn without_encrypted_networks_the_tunnel_net_is_still_guarded() {
        let s = policy(&[]).script();
        assert!(!s.contains("@th"));
        assert_eq!(s.matches("counter drop").count(), 3);
        assert!(s.contains("oifname \"sntun0\" udp dport 4789 meta skuid >= 0 counter drop"));
    }

    #[test]
    fn encrypted_vxlan_through_the_tunnel_only_from_member_nodes() {
        let mut p = policy(&[4096, 4097]);
        p.senders.insert(
            4096,
            [
                "100.96.0.2".parse().expect("ip"),
                "100.96.0.3".parse().expect("ip"),
            ]
            .into_iter()
            .collect(),
        );
        let s = p.script();
        assert!(
            s.contains("iifname \"sntun0\" udp dport 4789 @th,96,24 4096 ip saddr != { 100.96.0.2, 100.96.0.3 } counter drop"),
            "{s}"
        );
        // No node has endpoints on 4097: nobody may send it.
        assert!(
            s.contains("iifname \"sntun0\" udp dport 4789 @th,96,24 4097 counter drop"),
            "{s}"
        );
        let before = p.fingerprint();
        p.senders
            .get_mut(&4096)
            .expect("4096")
            .remove(&"100.96.0.3".parse().expect("ip"));
        assert_ne!(
            before,
            p.fingerprint(),
            "membership changes reinstall the table"
        );
    }

    #[test]
    fn fingerprint_follows_the_rules() {
        assert_eq!(policy(&[1]).fingerprint(), policy(&[1]).fingerprint());
        assert_ne!(policy(&[1]).fingerprint(), policy(&[2]).fingerprint());
        let mut other_port = policy(&[1]);
        other_port.vxlan_port = 4790;
        assert_ne!(policy(&[1]).fingerprint(), other_port.fingerprint());
    }

    #[test]
    fn bad_names_and_vnis_are_refused() {
        let mut p = policy(&[1]);
        p.tunnel_ifname = "x\"; drop".into();
        assert!(p.check().is_err());
        let p = policy(&[1 << 24]);
        assert!(p.check().is_err());
        assert!(policy(&[(1 << 24) - 1]).check().is_ok());
    }

    #[test]
    fn counters_are_summed_per_chain() {
        let json = r#"{"nftables": [{"metainfo": {}},
          {"rule": {"chain": "strict_in", "expr": [{"counter": {"packets": 3, "bytes": 9}}, {"drop": null}]}},
          {"rule": {"chain": "strict_in", "expr": [{"counter": {"packets": 2, "bytes": 9}}]}},
          {"rule": {"chain": "strict_out", "expr": [{"counter": {"packets": 7, "bytes": 9}}]}},
          {"rule": {"chain": "other", "expr": [{"counter": {"packets": 100}}]}}]}"#;
        assert_eq!(
            parse_drops(json),
            StrictDrops {
                inbound: 5,
                outbound: 7
            }
        );
        assert_eq!(parse_drops("not json"), StrictDrops::default());
    }
}
