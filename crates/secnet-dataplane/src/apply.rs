//! The executor: carries out [`Op`]s through rtnetlink.
//!
//! Every op becomes netlink requests ([`Req`]) in one namespace (the host
//! namespace or one under `<run_dir>/netns/`) and/or a native step (creating
//! or removing a namespace file). The whole pass runs on one worker thread
//! ([`crate::nl`]) that enters a namespace and opens a socket there whenever
//! the next request is for another namespace than the last one; the planner
//! orders ops so that a pass opens about one socket per namespace. No process
//! is spawned.
//!
//! Each request is acknowledged by the kernel before the next is sent. A
//! failed request is reported against its op (`` `request`: kernel error ``,
//! the request written the way `ip`/`bridge` would take it) and the others
//! still run. The requests are those `ip` and `bridge` send for the same
//! command lines (same flags and attributes), so the kernel state they make
//! is the same.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use crate::model::*;
use crate::netns::{create_netns_file, delete_netns_file, remove_stale_entry};
use crate::nl::{self, Target};

mod requests;

use requests::{exec, Req};

#[derive(Debug, Clone)]
enum Native {
    CreateNs(String),
    DeleteNs(String),
    RemoveStale(String),
}

#[derive(Debug, Clone)]
enum Piece {
    Req {
        target: Target,
        req: Req,
        /// Failures are expected and not reported (deleting links of a
        /// namespace that is going away anyway).
        tolerate: bool,
    },
    Native(Native),
}

#[derive(Debug)]
struct Line {
    op: usize,
    req: Req,
    tolerate: bool,
}

#[derive(Debug)]
enum Step {
    /// Requests for one namespace, sent over one socket.
    Session {
        target: Target,
        lines: Vec<Line>,
    },
    Native {
        op: usize,
        action: Native,
    },
}

fn req(ns: &str, req: Req) -> Piece {
    Piece::Req {
        target: Target::Ns(ns.to_string()),
        req,
        tolerate: false,
    }
}

fn set_addrs(ns: &str, dev: &str, del: &[Ipv4Net], add: &[Ipv4Net], out: &mut Vec<Piece>) {
    for a in del {
        out.push(req(
            ns,
            Req::AddrDel {
                dev: dev.to_string(),
                net: *a,
            },
        ));
    }
    for a in add {
        out.push(req(
            ns,
            Req::AddrReplace {
                dev: dev.to_string(),
                net: *a,
            },
        ));
    }
}

fn set_link(ns: &str, name: &str, mtu: Option<u32>, alias: &Option<String>, out: &mut Vec<Piece>) {
    if let Some(m) = mtu {
        out.push(req(
            ns,
            Req::SetMtu {
                name: name.to_string(),
                mtu: m,
            },
        ));
    }
    if let Some(a) = alias {
        out.push(req(
            ns,
            Req::SetAlias {
                name: name.to_string(),
                alias: a.clone(),
            },
        ));
    }
}

fn set_master(ns: &str, name: &str, master: &Option<String>, out: &mut Vec<Piece>) {
    if let Some(m) = master {
        out.push(req(
            ns,
            Req::SetMaster {
                name: name.to_string(),
                master: m.clone(),
            },
        ));
    }
}

fn set_up(ns: &str, name: &str, up: bool, out: &mut Vec<Piece>) {
    if up {
        out.push(req(
            ns,
            Req::SetUp {
                name: name.to_string(),
            },
        ));
    }
}

/// The requests and native steps of one op.
fn pieces(layout: &Layout, op: &Op) -> Vec<Piece> {
    let mut out = Vec::new();
    match op {
        Op::DeleteStaleFile { name } => out.push(Piece::Native(Native::RemoveStale(name.clone()))),
        Op::DeleteHostLink { name } => out.push(Piece::Req {
            target: Target::Host,
            req: Req::LinkDel { name: name.clone() },
            tolerate: false,
        }),
        Op::DeleteNetworkNs { ns, links } | Op::DeleteEndpointNs { ns, links } => {
            for l in links {
                out.push(Piece::Req {
                    target: Target::Ns(ns.clone()),
                    req: Req::LinkDel { name: l.clone() },
                    tolerate: true,
                });
            }
            out.push(Piece::Native(Native::DeleteNs(ns.clone())));
        }
        Op::DeleteVxlan { ns } => out.push(req(
            ns,
            Req::LinkDel {
                name: VXLAN.to_string(),
            },
        )),
        Op::DeleteInterface { ns, name } => out.push(req(ns, Req::LinkDel { name: name.clone() })),
        Op::DelFdb { ns, mac } => out.push(req(ns, Req::FdbDel { mac: *mac })),
        Op::DelNeigh { ns, ip } => out.push(req(ns, Req::NeighDel { ip: *ip })),
        Op::CreateNetworkNs { ns } | Op::CreateEndpointNs { ns } => {
            out.push(Piece::Native(Native::CreateNs(ns.clone())))
        }
        Op::SetLoopbackUp { ns } => set_up(ns, LOOPBACK, true, &mut out),
        Op::CreateVxlan {
            ns,
            vni,
            local,
            port,
            mtu,
        } => {
            let tmp = layout.temp_vxlan_name(*vni);
            for r in [
                Req::AddVxlan {
                    name: tmp.clone(),
                    mtu: *mtu,
                    vni: *vni,
                    local: *local,
                    port: *port,
                },
                Req::MoveLink {
                    name: tmp.clone(),
                    ns: layout.ns_path(ns),
                    new_name: VXLAN.to_string(),
                },
            ] {
                out.push(Piece::Req {
                    target: Target::Host,
                    req: r,
                    tolerate: false,
                });
            }
        }
        Op::CreateBridge { ns, mtu } => out.push(req(
            ns,
            Req::AddBridge {
                name: BRIDGE.to_string(),
                mtu: *mtu,
            },
        )),
        Op::SetBridge {
            ns,
            mtu,
            del_addrs,
            add_addrs,
            set_up: up,
        } => {
            set_link(ns, BRIDGE, *mtu, &None, &mut out);
            set_addrs(ns, BRIDGE, del_addrs, add_addrs, &mut out);
            set_up(ns, BRIDGE, *up, &mut out);
        }
        Op::SetVxlan {
            ns,
            mtu,
            master,
            set_up: up,
        } => {
            set_link(ns, VXLAN, *mtu, &None, &mut out);
            set_master(ns, VXLAN, master, &mut out);
            set_up(ns, VXLAN, *up, &mut out);
        }
        Op::CreateInterface {
            ns,
            veth,
            endpoint_ns,
            ifname,
            mac,
            mtu,
            peer_mtu,
        } => out.push(req(
            ns,
            Req::AddVeth {
                name: veth.clone(),
                mtu: *mtu,
                peer: ifname.clone(),
                peer_mac: *mac,
                peer_mtu: *peer_mtu,
                peer_ns: layout.ns_path(endpoint_ns),
            },
        )),
        Op::SetVeth {
            ns,
            veth,
            mtu,
            master,
            alias,
            set_up: up,
            ..
        } => {
            set_link(ns, veth, *mtu, alias, &mut out);
            set_master(ns, veth, master, &mut out);
            set_up(ns, veth, *up, &mut out);
        }
        Op::ConfigureInterface {
            ns,
            ifname,
            mac,
            mtu,
            alias,
            del_addrs,
            add_addrs,
            set_up: up,
        } => {
            if let Some(m) = mac {
                out.push(req(
                    ns,
                    Req::SetAddress {
                        name: ifname.clone(),
                        mac: *m,
                    },
                ));
            }
            set_link(ns, ifname, *mtu, alias, &mut out);
            set_addrs(ns, ifname, del_addrs, add_addrs, &mut out);
            set_up(ns, ifname, *up, &mut out);
        }
        Op::DelDefaultRoute { ns, via, dev } => out.push(req(
            ns,
            Req::RouteDel {
                via: *via,
                dev: dev.clone(),
            },
        )),
        Op::SetDefaultRoute { ns, via, dev } => out.push(req(
            ns,
            Req::RouteReplace {
                via: *via,
                dev: dev.clone(),
            },
        )),
        Op::AddNeigh { ns, ip, mac } => out.push(req(ns, Req::NeighReplace { ip: *ip, mac: *mac })),
        Op::AddFdb { ns, mac, dst } => out.push(req(
            ns,
            Req::FdbReplace {
                mac: *mac,
                dst: *dst,
            },
        )),
    }
    out
}

/// Groups the ops' pieces into steps: consecutive requests for the same
/// namespace share a session (one socket).
fn steps(layout: &Layout, ops: &[Op]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        for piece in pieces(layout, op) {
            match piece {
                Piece::Native(action) => steps.push(Step::Native { op: i, action }),
                Piece::Req {
                    target,
                    req,
                    tolerate,
                } => {
                    let line = Line {
                        op: i,
                        req,
                        tolerate,
                    };
                    match steps.last_mut() {
                        Some(Step::Session { target: t, lines }) if *t == target => {
                            lines.push(line)
                        }
                        _ => steps.push(Step::Session {
                            target,
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

/// Runs the steps on the worker; returns `(op index, message)` per failure.
fn run_steps(layout: &Layout, w: &mut nl::Worker<'_>, steps: &[Step]) -> Vec<(usize, String)> {
    let mut failed = Vec::new();
    for step in steps {
        match step {
            Step::Native { op, action } => {
                if matches!(action, Native::DeleteNs(_) | Native::RemoveStale(_)) {
                    // Keep no socket (or thread) in a namespace being removed.
                    w.leave();
                }
                if let Err(e) = run_native(layout, action) {
                    failed.push((*op, e));
                }
            }
            Step::Session { target, lines } => {
                tracing::debug!(%target, requests = lines.len(), "netlink session");
                let conn = match w.enter(target) {
                    Ok(c) => c,
                    Err(e) => {
                        failed.extend(
                            lines
                                .iter()
                                .filter(|l| !l.tolerate)
                                .map(|l| (l.op, format!("`{}`: {e}", l.req))),
                        );
                        continue;
                    }
                };
                for l in lines {
                    match exec(conn, &l.req) {
                        Ok(()) => {}
                        Err(e) if l.tolerate => {
                            tracing::debug!(request = %l.req, error = %e, "tolerated failure")
                        }
                        Err(e) => failed.push((l.op, format!("`{}`: {e}", l.req))),
                    }
                }
            }
        }
    }
    failed
}

/// Carries out `ops` in order on the host described by `layout`. A failed op
/// does not stop the others; each failure is in the report.
pub fn apply(layout: &Layout, ops: &[Op]) -> ApplyReport {
    let steps = steps(layout, ops);
    let failed = match nl::with_worker(layout, |w| run_steps(layout, w, &steps)) {
        Ok(f) => f,
        Err(e) => (0..ops.len())
            .map(|i| (i, format!("cannot run the netlink worker: {e}")))
            .collect(),
    };
    let mut errors: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (op, msg) in failed {
        errors.entry(op).or_default().push(msg);
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
        // Nothing is spawned any more: requests go over netlink sockets.
        processes: 0,
    }
}

/// Observes, plans and applies once. Returns the ops and the report.
pub fn reconcile(layout: &Layout, desired: &Desired) -> crate::Result<(Vec<Op>, ApplyReport)> {
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
    fn one_session_per_namespace_run() {
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
                mac: Mac([2, 0, 0, 0, 0, 2]),
            },
            Op::AddFdb {
                ns: ns.clone(),
                mac: Mac([2, 0, 0, 0, 0, 2]),
                dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            },
            Op::AddFdb {
                ns: ns.clone(),
                mac: Mac([2, 0, 0, 0, 0, 3]),
                dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 3)),
            },
        ];
        let steps = steps(&layout(), &ops);
        let shape: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Native { .. } => "native".to_string(),
                Step::Session { target, lines } => format!("{target:?}/{}", lines.len()),
            })
            .collect();
        // The ip and bridge lines of one namespace now share a socket.
        assert_eq!(shape, ["native", "Host/2", "Ns(\"net-a\")/7"]);
        let Step::Session { lines, .. } = &steps[1] else {
            panic!("not a session");
        };
        let first = lines[0].req.to_string();
        assert!(first.contains("local 198.51.100.1"), "{first}");
        assert!(first.contains("nolearning proxy"), "{first}");
        assert!(lines[1]
            .req
            .to_string()
            .ends_with("/run/x/netns/net-a name vxlan0"));
        let Step::Session { lines, .. } = &steps[2] else {
            panic!("not a session");
        };
        assert_eq!(
            lines[6].req.to_string(),
            "fdb replace 02:00:00:00:00:03 dev vxlan0 dst 198.51.100.3 self permanent"
        );
    }

    #[test]
    fn deleting_a_namespace_tolerates_its_links() {
        let ops = vec![Op::DeleteEndpointNs {
            ns: "ep-a".into(),
            links: vec!["eth0".into(), "eth1".into()],
        }];
        let steps = steps(&layout(), &ops);
        assert_eq!(steps.len(), 2);
        let Step::Session { lines, .. } = &steps[0] else {
            panic!("not a session");
        };
        assert!(lines.iter().all(|l| l.tolerate));
        assert!(matches!(
            steps[1],
            Step::Native {
                action: Native::DeleteNs(_),
                ..
            }
        ));
    }
}
