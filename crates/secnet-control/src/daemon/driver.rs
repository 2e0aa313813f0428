//! The driver of the agent core: gathers this node's facts, asks `agent::decide`, and carries
//! out what it returns, at once when this node's view of the cluster changes and at least
//! every [`TICK`] (for what the view does not show: the endpoint started, the underlay's
//! MTU). One loop for every decision of the node:
//!
//! - the data path goes to the reconciler (`dataplane.rs`), which executes it;
//! - the tunnel's keys and peers go to the WireGuard endpoint (`tunnel.rs` runs the engine);
//! - task processes go to the task runner (`tasks.rs`);
//! - proposals go to the cluster: the leader's duties (the key ring, node liveness) run on
//!   this node while it leads, everything else (key acknowledgements, key registration) is written through
//!   whichever manager leads.

use std::net::IpAddr;
use std::sync::Weak;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use secnet_keys::secret::Secret32;
use secnet_model::{Command, ServiceCommand};

use super::dataplane::{DataPathPlan, RESYNC};
use super::{unix_now, Member, Runtime};
use crate::agent::liveness::Liveness;
use crate::agent::{self, Action, NodeFacts};
use crate::peer::Proposal;

/// The longest the driver waits without a change of the view.
pub const TICK: Duration = Duration::from_millis(250);

/// Secrets and ids from the OS's random source.
struct OsEntropy;

impl agent::Entropy for OsEntropy {
    fn secret(&mut self) -> Secret32 {
        Secret32::random(&mut rand::rngs::OsRng)
    }
    fn id(&mut self) -> String {
        secnet_model::ids::network_id_from_bytes(rand::Rng::gen(&mut rand::rngs::OsRng))
    }
}

/// The underlay's MTU, read again every [`RESYNC`] rather than on every decision.
struct UnderlayMtu {
    value: u32,
    read_at: Option<Instant>,
}

impl UnderlayMtu {
    fn get(&mut self, addr: IpAddr) -> u32 {
        if self.read_at.is_none_or(|t| t.elapsed() >= RESYNC) {
            self.value = super::views::underlay_mtu(addr);
            self.read_at = Some(Instant::now());
        }
        self.value
    }
}

/// Runs until the member stops.
pub(crate) async fn run(member: Weak<Member>) {
    let mut changes = {
        let Some(m) = member.upgrade() else { return };
        m.view_changes()
    };
    let mut mtu = UnderlayMtu {
        value: 1500,
        read_at: None,
    };
    let mut leader_since: Option<Instant> = None;
    loop {
        {
            let Some(m) = member.upgrade() else { return };
            let view = m.view();
            let (leader, liveness) = match &m.rt {
                Runtime::Manager(rt) if rt.is_leader() => {
                    let since = *leader_since.get_or_insert_with(Instant::now);
                    let liveness = Liveness {
                        leading_for: since.elapsed(),
                        heard: rt.heard(),
                    };
                    (true, liveness)
                }
                _ => {
                    leader_since = None;
                    (false, Liveness::default())
                }
            };
            let facts = NodeFacts {
                me: m.id.node_id,
                leader,
                liveness,
                data_path_addr: m.id.data_path_addr,
                underlay_mtu: mtu.get(m.id.data_path_addr),
                public_key: m.tunnel.public_key(),
                tunnel: m.tunnel.facts(),
                tasks: agent::tasks::TaskFacts {
                    processes: m.runner.processes(),
                    endpoints_ready: m.reconciler.status().borrow().ready.clone(),
                },
            };
            let actions = agent::decide(&view.state, &facts, &mut OsEntropy, unix_now());
            perform(&m, view.applied_index, actions).await;
            m.runner.forget(|id| view.state.tasks.contains_key(id));
        }
        // A view that can no longer change (the member is stopping) must not make this spin.
        if let Ok(false) = tokio::time::timeout(TICK, changes.changed()).await {
            tokio::time::sleep(TICK).await;
        }
    }
}

/// Carries out the actions in order. A ring the endpoint refuses holds the peers back: no
/// session without a key of the ring.
async fn perform(m: &Member, applied_index: u64, actions: Vec<Action>) {
    let mut ring_installed = true;
    for action in actions {
        match action {
            Action::ProgramDataPath {
                secured,
                fallback,
                strict,
            } => m.reconciler.program(DataPathPlan {
                applied_index,
                secured,
                fallback,
                strict,
            }),
            Action::SetTunnelKeys { keys, primary } => {
                ring_installed = m.tunnel.install_keys(keys, primary);
            }
            Action::SetTunnelPeers(peers) if ring_installed => m.tunnel.install_peers(peers),
            Action::SetTunnelPeers(_) => {}
            Action::Propose(cmd) => propose(m, cmd).await,
            Action::StartTask {
                id,
                command,
                env,
                endpoint,
            } => m
                .runner
                .start(&id, &command, &env, &m.reconciler.endpoint_netns(&endpoint)),
            Action::StopTask { id } => m.runner.stop(&id),
        }
    }
}

/// Whether a command is one of the leader's duties, run only by the leader itself: a
/// forwarded one could reach a newer leader that decided for itself already.
fn leader_duty(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::SeedKeyRing { .. }
            | Command::BeginKeyRotation { .. }
            | Command::PromoteKey { .. }
            | Command::RetireKeys { .. }
            | Command::SetStatus { .. }
            // The scheduler's; a node's reports of its own tasks go through any manager.
            | Command::Service(
                ServiceCommand::AddTask { .. }
                    | ServiceCommand::Assign { .. }
                    | ServiceCommand::Shutdown { .. }
                    | ServiceCommand::Orphan { .. }
                    | ServiceCommand::Prune { .. }
            )
    )
}

/// Proposes a command. A failure (no leader yet, a write refused because the state moved
/// on) is only logged: the next decision proposes again if it still applies.
async fn propose(m: &Member, cmd: Command) {
    if leader_duty(&cmd) {
        let Runtime::Manager(rt) = &m.rt else { return };
        let what = match &cmd {
            Command::SetStatus { id, status } => format!("node {id} is {}", status.as_str()),
            Command::Service(c) => format!("scheduling: {c:?}"),
            other => agent::keys::describe(other),
        };
        match rt.execute(Proposal::Command(cmd)).await {
            Ok(_) => info!("{what}"),
            Err(e) => warn!(error = %e, "{what} failed"),
        }
        return;
    }
    let what = match &cmd {
        Command::AckKey { epoch, .. } => format!("acknowledging key {epoch}"),
        Command::SetWireguardKey { .. } => "registering the WireGuard key".to_string(),
        other => format!("{other:?}"),
    };
    match m.write(cmd).await {
        Ok(_) => debug!("{what}"),
        Err(e) => debug!(error = %e, "{what}: not accepted yet"),
    }
}
