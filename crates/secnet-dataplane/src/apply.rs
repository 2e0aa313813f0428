//! The executor: carries out [`Op`]s.
//!
//! Every op becomes command lines for `ip` or `bridge` in one namespace (the
//! host namespace or one under `<run_dir>/netns/`) and/or a native step
//! (creating or removing a namespace file). Consecutive lines for the same
//! tool and namespace go to one `ip -force -batch -` / `bridge -force -batch -`
//! process run through `nsenter --net=<file>`; the planner orders ops so that
//! a whole pass needs about one process per namespace. `-force` keeps a
//! batch going past a failing line; its `Command failed -:N` messages are
//! mapped back to the op that produced line N, so each failed op is reported
//! and the others still run.

use crate::cmd::{self, Tool, COMMAND_TIMEOUT};
use crate::model::*;
use crate::netns::{create_netns_file, delete_netns_file, remove_stale_entry};
use std::collections::BTreeMap;

/// Where a command line runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Host,
    Ns(String),
}

#[derive(Debug, Clone)]
enum Native {
    CreateNs(String),
    DeleteNs(String),
    RemoveStale(String),
}

#[derive(Debug, Clone)]
enum Piece {
    Line {
        target: Target,
        tool: Tool,
        text: String,
        /// Failures are expected and not reported (deleting links of a
        /// namespace that is going away anyway).
        tolerate: bool,
    },
    Native(Native),
}

struct Line {
    op: usize,
    text: String,
    tolerate: bool,
}

enum Step {
    Batch {
        target: Target,
        tool: Tool,
        lines: Vec<Line>,
    },
    Native {
        op: usize,
        action: Native,
    },
}

fn ip(ns: &str, text: String) -> Piece {
    Piece::Line {
        target: Target::Ns(ns.to_string()),
        tool: Tool::Ip,
        text,
        tolerate: false,
    }
}

fn set_addrs(
    ns: &str,
    dev: &str,
    del: &[ipnet::Ipv4Net],
    add: &[ipnet::Ipv4Net],
    out: &mut Vec<Piece>,
) {
    for a in del {
        out.push(ip(ns, format!("addr del {a} dev {dev}")));
    }
    for a in add {
        out.push(ip(ns, format!("addr replace {a} dev {dev}")));
    }
}

/// The command lines and native steps of one op.
fn pieces(layout: &Layout, op: &Op) -> Vec<Piece> {
    let mut out = Vec::new();
    match op {
        Op::DeleteStaleFile { name } => out.push(Piece::Native(Native::RemoveStale(name.clone()))),
        Op::DeleteHostLink { name } => out.push(Piece::Line {
            target: Target::Host,
            tool: Tool::Ip,
            text: format!("link del {name}"),
            tolerate: false,
        }),
        Op::DeleteNetworkNs { ns, links } | Op::DeleteEndpointNs { ns, links } => {
            for l in links {
                out.push(Piece::Line {
                    target: Target::Ns(ns.clone()),
                    tool: Tool::Ip,
                    text: format!("link del {l}"),
                    tolerate: true,
                });
            }
            out.push(Piece::Native(Native::DeleteNs(ns.clone())));
        }
        Op::DeleteVxlan { ns } => out.push(ip(ns, format!("link del {VXLAN}"))),
        Op::DeleteInterface { ns, name } => out.push(ip(ns, format!("link del {name}"))),
        Op::DelFdb { ns, mac } => out.push(Piece::Line {
            target: Target::Ns(ns.clone()),
            tool: Tool::Bridge,
            text: format!("fdb del {} dev {VXLAN} self", fmt_mac(mac)),
            tolerate: false,
        }),
        Op::DelNeigh { ns, ip: addr } => out.push(ip(ns, format!("neigh del {addr} dev {VXLAN}"))),
        Op::CreateNetworkNs { ns } | Op::CreateEndpointNs { ns } => {
            out.push(Piece::Native(Native::CreateNs(ns.clone())))
        }
        Op::SetLoopbackUp { ns } => out.push(ip(ns, format!("link set {LOOPBACK} up"))),
        Op::CreateVxlan {
            ns,
            vni,
            local,
            port,
            mtu,
        } => {
            let tmp = layout.temp_vxlan_name(*vni);
            let path = layout.ns_path(ns);
            for text in [
                format!(
                    "link add {tmp} mtu {mtu} type vxlan id {vni} local {local} dstport {port} nolearning proxy"
                ),
                format!("link set {tmp} netns {} name {VXLAN}", path.display()),
            ] {
                out.push(Piece::Line {
                    target: Target::Host,
                    tool: Tool::Ip,
                    text,
                    tolerate: false,
                });
            }
        }
        Op::CreateBridge { ns, mtu } => {
            out.push(ip(ns, format!("link add {BRIDGE} mtu {mtu} type bridge")))
        }
        Op::SetBridge {
            ns,
            mtu,
            del_addrs,
            add_addrs,
            set_up,
        } => {
            if let Some(m) = mtu {
                out.push(ip(ns, format!("link set {BRIDGE} mtu {m}")));
            }
            set_addrs(ns, BRIDGE, del_addrs, add_addrs, &mut out);
            if *set_up {
                out.push(ip(ns, format!("link set {BRIDGE} up")));
            }
        }
        Op::SetVxlan {
            ns,
            mtu,
            master,
            set_up,
        } => {
            if let Some(m) = mtu {
                out.push(ip(ns, format!("link set {VXLAN} mtu {m}")));
            }
            if let Some(m) = master {
                out.push(ip(ns, format!("link set {VXLAN} master {m}")));
            }
            if *set_up {
                out.push(ip(ns, format!("link set {VXLAN} up")));
            }
        }
        Op::CreateInterface {
            ns,
            veth,
            endpoint_ns,
            ifname,
            mac,
            mtu,
            peer_mtu,
        } => out.push(ip(
            ns,
            format!(
                "link add {veth} mtu {mtu} type veth peer name {ifname} address {} mtu {peer_mtu} netns {}",
                fmt_mac(mac),
                layout.ns_path(endpoint_ns).display()
            ),
        )),
        Op::SetVeth {
            ns,
            veth,
            mtu,
            master,
            alias,
            set_up,
            ..
        } => {
            if let Some(m) = mtu {
                out.push(ip(ns, format!("link set {veth} mtu {m}")));
            }
            if let Some(a) = alias {
                out.push(ip(ns, format!("link set {veth} alias {a}")));
            }
            if let Some(m) = master {
                out.push(ip(ns, format!("link set {veth} master {m}")));
            }
            if *set_up {
                out.push(ip(ns, format!("link set {veth} up")));
            }
        }
        Op::ConfigureInterface {
            ns,
            ifname,
            mac,
            mtu,
            alias,
            del_addrs,
            add_addrs,
            set_up,
        } => {
            if let Some(m) = mac {
                out.push(ip(ns, format!("link set {ifname} address {}", fmt_mac(m))));
            }
            if let Some(m) = mtu {
                out.push(ip(ns, format!("link set {ifname} mtu {m}")));
            }
            if let Some(a) = alias {
                out.push(ip(ns, format!("link set {ifname} alias {a}")));
            }
            set_addrs(ns, ifname, del_addrs, add_addrs, &mut out);
            if *set_up {
                out.push(ip(ns, format!("link set {ifname} up")));
            }
        }
        Op::DelDefaultRoute { ns, via, dev } => out.push(ip(
            ns,
            match via {
                Some(v) => format!("route del default via {v} dev {dev}"),
                None => format!("route del default dev {dev}"),
            },
        )),
        Op::SetDefaultRoute { ns, via, dev } => {
            out.push(ip(ns, format!("route replace default via {via} dev {dev}")))
        }
        Op::AddNeigh { ns, ip: addr, mac } => out.push(ip(
            ns,
            format!(
                "neigh replace {addr} lladdr {} dev {VXLAN} nud permanent",
                fmt_mac(mac)
            ),
        )),
        Op::AddFdb { ns, mac, dst } => out.push(Piece::Line {
            target: Target::Ns(ns.clone()),
            tool: Tool::Bridge,
            text: format!(
                "fdb replace {} dev {VXLAN} dst {dst} self permanent",
                fmt_mac(mac)
            ),
            tolerate: false,
        }),
    }
    out
}

/// Groups the ops' pieces into steps: consecutive lines for the same
/// namespace and tool share a batch.
fn steps(layout: &Layout, ops: &[Op]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        for piece in pieces(layout, op) {
            match piece {
                Piece::Native(action) => steps.push(Step::Native { op: i, action }),
                Piece::Line {
                    target,
                    tool,
                    text,
                    tolerate,
                } => {
                    let line = Line {
                        op: i,
                        text,
                        tolerate,
                    };
                    match steps.last_mut() {
                        Some(Step::Batch {
                            target: t,
                            tool: tl,
                            lines,
                        }) if *t == target && *tl == tool => lines.push(line),
                        _ => steps.push(Step::Batch {
                            target,
                            tool,
                            lines: vec![line],
                        }),
                    }
                }
            }
        }
    }
    steps
}

fn run_native(layout: &Layout, action: &Native) -> Result<(), String> {
    match action {
        Native::CreateNs(ns) => {
            let dir = layout.netns_dir();
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let path = layout.ns_path(ns);
            create_netns_file(&path).map_err(|e| format!("creating {}: {e}", path.display()))
        }
        Native::DeleteNs(ns) => {
            let path = layout.ns_path(ns);
            delete_netns_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))
        }
        Native::RemoveStale(name) => {
            let path = layout.ns_path(name);
            remove_stale_entry(&path).map_err(|e| format!("removing {}: {e}", path.display()))
        }
    }
}

/// Runs one batch; returns `(op index, message)` for each failed line.
fn run_batch(layout: &Layout, target: &Target, tool: Tool, lines: &[Line]) -> Vec<(usize, String)> {
    let path = match target {
        Target::Host => layout.host_netns.clone(),
        Target::Ns(ns) => Some(layout.ns_path(ns)),
    };
    let mut script = String::new();
    for l in lines {
        script.push_str(&l.text);
        script.push('\n');
    }
    tracing::debug!(?target, ?tool, %script, "batch");
    let out = match cmd::run(
        cmd::command(path.as_deref(), tool, &["-force", "-batch", "-"]),
        &script,
        COMMAND_TIMEOUT,
    ) {
        Ok(o) => o,
        Err(e) => {
            return lines
                .iter()
                .filter(|l| !l.tolerate)
                .map(|l| (l.op, format!("cannot run {tool:?} batch: {e}")))
                .collect()
        }
    };
    let mut failed = Vec::new();
    let parsed = cmd::batch_failures(&out.stderr);
    for (n, msg) in &parsed {
        let Some(line) = n.checked_sub(1).and_then(|i| lines.get(i)) else {
            continue;
        };
        if line.tolerate {
            tracing::debug!(line = %line.text, %msg, "tolerated failure");
        } else {
            failed.push((line.op, format!("`{}`: {msg}", line.text)));
        }
    }
    if !out.success() && parsed.is_empty() {
        // The batch did not run at all (nsenter failed, timeout, ...).
        let why = out.describe();
        failed.extend(
            lines
                .iter()
                .filter(|l| !l.tolerate)
                .map(|l| (l.op, format!("`{}`: {why}", l.text))),
        );
    }
    failed
}

/// Carries out `ops` in order on the host described by `layout`. A failed op
/// does not stop the others; each failure is in the report.
pub fn apply(layout: &Layout, ops: &[Op]) -> ApplyReport {
    let mut errors: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut processes = 0;
    for step in steps(layout, ops) {
        match step {
            Step::Native { op, action } => {
                if let Err(e) = run_native(layout, &action) {
                    errors.entry(op).or_default().push(e);
                }
            }
            Step::Batch {
                target,
                tool,
                lines,
            } => {
                processes += 1;
                for (op, msg) in run_batch(layout, &target, tool, &lines) {
                    errors.entry(op).or_default().push(msg);
                }
            }
        }
    }
    let errors: Vec<OpError> = errors
        .into_iter()
        .filter_map(|(index, msgs)| {
            let op = ops.get(index)?.clone();
            Some(OpError {
                index,
                op,
                message: msgs.join("; "),
            })
        })
        .collect();
    for e in &errors {
        tracing::debug!(error = %e, "data path op failed");
    }
    ApplyReport {
        applied: ops.len() - errors.len(),
        errors,
        processes,
    }
}

/// Observes, plans and applies once. Returns the ops and the report.
pub fn reconcile(layout: &Layout, desired: &Desired) -> anyhow::Result<(Vec<Op>, ApplyReport)> {
    let observed = crate::observe(layout)?;
    let ops = crate::plan(desired, &observed);
    let report = apply(layout, &ops);
    Ok((ops, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn layout() -> Layout {
        Layout::new("/run/x", Some("/tmp/host".into()))
    }

    #[test]
    fn batches_consecutive_lines() {
        let ns = "net-a".to_string();
        let ops = vec![
            Op::CreateNetworkNs { ns: ns.clone() },
            Op::CreateVxlan {
                ns: ns.clone(),
                vni: 42,
                local: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
                port: 4789,
                mtu: 1450,
            },
            Op::SetLoopbackUp { ns: ns.clone() },
            Op::CreateBridge {
                ns: ns.clone(),
                mtu: 1450,
            },
            Op::SetVxlan {
                ns: ns.clone(),
                mtu: None,
                master: Some(BRIDGE.into()),
                set_up: true,
            },
            Op::AddNeigh {
                ns: ns.clone(),
                ip: Ipv4Addr::new(10, 0, 0, 2),
                mac: [2, 0, 0, 0, 0, 2],
            },
            Op::AddFdb {
                ns: ns.clone(),
                mac: [2, 0, 0, 0, 0, 2],
                dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            },
            Op::AddFdb {
                ns: ns.clone(),
                mac: [2, 0, 0, 0, 0, 3],
                dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 3)),
            },
        ];
        let steps = steps(&layout(), &ops);
        let shape: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Native { .. } => "native".to_string(),
                Step::Batch {
                    target,
                    tool,
                    lines,
                } => format!("{target:?}/{tool:?}/{}", lines.len()),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "native",
                "Host/Ip/2",
                "Ns(\"net-a\")/Ip/5",
                "Ns(\"net-a\")/Bridge/2"
            ]
        );
        let Step::Batch { lines, .. } = &steps[1] else {
            panic!("not a batch");
        };
        assert!(lines[0].text.contains("local 198.51.100.1"));
        assert!(lines[0].text.contains("nolearning proxy"));
        assert!(lines[1].text.ends_with("/run/x/netns/net-a name vxlan0"));
    }
}
