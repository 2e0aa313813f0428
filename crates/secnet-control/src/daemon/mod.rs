//! The daemon: one node's membership in a cluster, as a manager (a Raft voter serving the
//! control API) or a worker (watching the state from a manager), plus the local API the CLI
//! uses. `secnetd` is a thin shell around [`Daemon`].

pub mod addrs;
pub mod dataplane;
mod driver;
mod error;
pub mod identity;
mod local;
pub mod lock;
mod manager;
mod server;
pub mod tasks;
pub mod tunnel;
mod views;
mod wait;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, RwLock};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use secnet_api::{ApiError, ErrorKind};
use secnet_keys::seal::Kek;
use secnet_keys::secret::SecretBytes;
use secnet_model::{ClusterState, Command, Node, NodeId, Response, Role};
use secnet_pki::{self as pki, NodeKey};

use crate::agent::membership::{membership_step, MembershipStep};
use crate::peer::{Committed, PeerClient, PeerRef, PeerRequest, PeerResponse, Proposal};
pub use error::StartError;
use identity::{Identity, StatePaths};

pub use local::{ensure_socket_free, serve_local};

/// How long a write may wait for the cluster to commit it before we report lost quorum.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often nodes tell the leader they are alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
pub use crate::agent::liveness::NODE_DOWN_AFTER;

/// Where a daemon keeps its state unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/secnet";
/// The run directory of the daemon with the default state directory.
pub const DEFAULT_RUN_DIR: &str = "/run/secnet";

/// The run directory a daemon uses when none is given: [`DEFAULT_RUN_DIR`] with the default
/// state directory, `<DEFAULT_RUN_DIR>/state-<16 hex digits>` with any other, the digits a
/// stable hash of the state directory's absolute path. Two daemons with different state
/// directories so never share a run directory, and a restarted daemon finds its own again.
pub fn default_run_dir(state_dir: &Path) -> PathBuf {
    let state_dir: PathBuf = std::path::absolute(state_dir)
        .unwrap_or_else(|_| state_dir.to_path_buf())
        .components()
        .collect();
    if state_dir == Path::new(DEFAULT_STATE_DIR) {
        return PathBuf::from(DEFAULT_RUN_DIR);
    }
    let hash = secnet_dataplane::fnv1a(state_dir.as_os_str().as_encoded_bytes());
    Path::new(DEFAULT_RUN_DIR).join(format!("state-{hash:016x}"))
}

/// How a daemon is started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// Where the data path keeps its namespaces (bind mounts).
    pub run_dir: PathBuf,
    pub hostname: String,
}

/// One node's daemon.
pub struct Daemon {
    pub(crate) cfg: DaemonConfig,
    pub(crate) paths: StatePaths,
    pub(crate) kek: Arc<Kek>,
    member: RwLock<Option<Arc<Member>>>,
    /// Serializes init, join, leave and role switches.
    pub(crate) ops: Mutex<()>,
    /// This node's task processes; the daemon's, so a role switch keeps them.
    pub(crate) runner: Arc<tasks::TaskRunner>,
    /// This daemon's exclusive hold on its state and run directories.
    _locks: [lock::DirLock; 2],
}

/// This node's membership while it runs.
pub struct Member {
    pub(crate) id: Identity,
    pub(crate) key: NodeKey,
    pub(crate) client_tls: Arc<rustls::ClientConfig>,
    pub(crate) rt: Runtime,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// Clients to other managers, by address, reused across calls.
    peers: Mutex<HashMap<SocketAddr, Arc<Mutex<PeerClient>>>>,
    /// Keeps this node's kernel data path equal to the state.
    pub(crate) reconciler: dataplane::Reconciler,
    /// This node's WireGuard endpoint, once started.
    pub(crate) tunnel: tunnel::TunnelSlot,
    /// The daemon's task runner.
    pub(crate) runner: Arc<tasks::TaskRunner>,
}

/// The role-specific part of a running member.
pub(crate) enum Runtime {
    Manager(manager::ManagerRt),
    Worker(worker::WorkerRt),
}

/// A consistent read of what this node knows.
#[derive(Debug, Clone)]
pub struct View {
    pub applied_index: u64,
    pub leader: Option<NodeId>,
    pub state: Arc<ClusterState>,
}

impl Daemon {
    /// Opens the state directory and resumes the membership found there.
    pub async fn start(cfg: DaemonConfig) -> Result<Arc<Daemon>, StartError> {
        secnet_keys::seal::ensure_private_dir(&cfg.state_dir)?;
        // Created 0700 when missing; an existing one keeps its mode (it may be a directory
        // the operator made, such as systemd's RuntimeDirectory).
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&cfg.run_dir)
            .map_err(StartError::io(format!(
                "creating the run directory {}",
                cfg.run_dir.display()
            )))?;
        // Before anything reads or writes either directory.
        let locks = [
            lock::lock_dir(&cfg.state_dir, "state directory")?,
            lock::lock_dir(&cfg.run_dir, "run directory")?,
        ];
        // Before the membership starts: a daemon on another state directory may serve it.
        ensure_socket_free(&cfg.socket)?;
        let paths = StatePaths::new(&cfg.state_dir);
        let kek = Arc::new(Kek::load_or_create(&paths.kek())?);
        // After the locks: what it kills was left by a daemon of this run directory.
        let runner = Arc::new(tasks::TaskRunner::new(&cfg.run_dir));
        let daemon = Arc::new(Daemon {
            paths: paths.clone(),
            kek: kek.clone(),
            cfg,
            member: RwLock::new(None),
            ops: Mutex::new(()),
            runner,
            _locks: locks,
        });
        let identity = identity::load(&paths, &kek).map_err(StartError::io(format!(
            "reading this node's identity in {}",
            paths.dir.display()
        )))?;
        match identity {
            Some((id, key)) => {
                info!(node = %id.node_id, role = %id.role, cluster = %id.cluster_id, "resuming membership");
                let member = Member::start(&daemon, id, NodeKey::from_pkcs8(key)?, false).await?;
                *daemon.member.write().await = Some(member);
            }
            None => {
                // Raft data without an identity is what an `init` that crashed half-way
                // leaves behind: the identity is written last, so discard the rest.
                if paths.raft_db().exists() {
                    warn!("discarding Raft data of an unfinished init or join");
                    identity::wipe(&paths).map_err(StartError::io(
                        "discarding the data of an unfinished init or join",
                    ))?;
                }
                info!("not in a cluster yet: waiting for `secnet init` or `secnet join`");
            }
        }
        daemon.spawn_role_watcher();
        Ok(daemon)
    }

    /// The running membership, if any.
    pub async fn member(&self) -> Option<Arc<Member>> {
        self.member.read().await.clone()
    }

    pub(crate) async fn member_or_err(&self) -> Result<Arc<Member>, ApiError> {
        self.member().await.ok_or_else(|| {
            ApiError::new(
                ErrorKind::Invalid,
                "this node is not part of a cluster: run `secnet init` or `secnet join` first",
            )
        })
    }

    pub(crate) async fn set_member(&self, m: Option<Arc<Member>>) {
        let old = std::mem::replace(&mut *self.member.write().await, m);
        if let Some(old) = old {
            old.stop().await;
        }
    }

    /// Stops everything (daemon shutdown): the membership, then the tasks.
    pub async fn shutdown(&self) {
        self.set_member(None).await;
        self.runner.stop_all().await;
    }

    /// Keeps the membership current: switches the runtime when the replicated state gives
    /// this node another role (`node promote` / `node demote`), and renews the certificate
    /// before it expires.
    fn spawn_role_watcher(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Some(daemon) = weak.upgrade() else { return };
                let Some(member) = daemon.member().await else {
                    continue;
                };
                let view = member.view();
                let step = membership_step(
                    &view.state,
                    member.id.node_id,
                    member.role(),
                    member.certificate_due(),
                );
                let (role_changed, role) = match step {
                    None => continue,
                    Some(MembershipStep::SwitchRole(role)) => (true, role),
                    Some(MembershipStep::RenewCertificate) => (false, member.role()),
                };
                let _guard = daemon.ops.lock().await;
                if role_changed {
                    info!(from = %member.role(), to = %role, "role changed in the cluster state: switching");
                } else {
                    info!("renewing this node's certificate");
                }
                // The certificate names the role (a worker's cannot serve as a manager), so
                // get one for the new role first.
                let cert = match member.renew_certificate().await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "cannot get a new certificate yet");
                        continue;
                    }
                };
                let mut id = member.id.clone();
                id.role = role;
                id.cert_der = cert;
                id.bootstrap_managers = peer_refs(&view.state);
                let key = member.key.clone();
                // Persist first: after a crash here the node restarts with the certificate
                // the cluster now expects.
                if let Err(e) = identity::save(&daemon.paths, &daemon.kek, &id, &key.key_pkcs8) {
                    warn!(error = %e, "cannot persist the new certificate");
                    continue;
                }
                daemon.set_member(None).await;
                if role_changed && role == Role::Worker {
                    // A demoted manager's Raft data is stale from now on.
                    let _ = std::fs::remove_file(daemon.paths.raft_db());
                }
                match Member::start(&daemon, id, key, false).await {
                    Ok(m) => daemon.set_member(Some(m)).await,
                    Err(e) => warn!(error = %e, "cannot restart with the new certificate"),
                }
            }
        });
    }
}

/// The managers of a state as peers to dial.
pub(crate) fn peer_refs(state: &ClusterState) -> Vec<PeerRef> {
    state
        .managers()
        .map(|n| PeerRef {
            id: n.id,
            addr: n.advertise_addr,
            fingerprint: n.cert_fingerprint.clone(),
        })
        .collect()
}

impl Member {
    /// Starts the runtime for the identity's role. `bootstrap` is set by `init` on the very
    /// first start of a cluster.
    pub(crate) async fn start(
        daemon: &Arc<Daemon>,
        id: Identity,
        key: NodeKey,
        bootstrap: bool,
    ) -> Result<Arc<Member>, StartError> {
        // Load (or make) the WireGuard key before anything starts, so a failure leaves nothing
        // running.
        let wg_store = tunnel::KeyStore {
            dir: daemon.paths.dir.clone(),
            kek: daemon.kek.clone(),
        };
        let wg_key = wg_store
            .load_or_create()
            .map_err(StartError::io("loading this node's WireGuard key"))?;
        let client_tls = pki::client_config(&id.ca_der, &id.cert_der, &key)?;
        let rt = match id.role {
            Role::Manager => Runtime::Manager(
                manager::ManagerRt::start(daemon, &id, client_tls.clone(), bootstrap).await?,
            ),
            Role::Worker => Runtime::Worker(worker::WorkerRt::new(daemon, &id)),
        };
        let member = Arc::new(Member {
            id,
            key,
            client_tls,
            rt,
            tasks: std::sync::Mutex::new(Vec::new()),
            peers: Mutex::new(HashMap::new()),
            reconciler: dataplane::Reconciler::new(daemon.cfg.run_dir.clone()),
            tunnel: tunnel::TunnelSlot::default(),
            runner: daemon.runner.clone(),
        });
        match &member.rt {
            Runtime::Manager(_) => manager::spawn_tasks(daemon, &member).await?,
            Runtime::Worker(_) => worker::spawn_tasks(daemon, &member),
        }
        member.spawn(heartbeat_loop(Arc::downgrade(&member)));
        member.spawn(dataplane::run(Arc::downgrade(&member)));
        member.spawn(driver::run(Arc::downgrade(&member)));
        member.spawn(tunnel::run(Arc::downgrade(&member), wg_store, wg_key));
        Ok(member)
    }

    pub(crate) fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(handle);
        }
    }

    async fn stop(&self) {
        let tasks: Vec<_> = match self.tasks.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for t in tasks {
            t.abort();
        }
        if let Some(tunnel) = self.tunnel.take() {
            // Dropping the endpoint joins its I/O thread: a blocking wait, kept off the
            // runtime's workers.
            let _ = tokio::task::spawn_blocking(move || drop(tunnel)).await;
        }
        if let Runtime::Manager(m) = &self.rt {
            m.shutdown().await;
        }
    }

    /// The role this node runs as now.
    pub fn role(&self) -> Role {
        match self.rt {
            Runtime::Manager(_) => Role::Manager,
            Runtime::Worker(_) => Role::Worker,
        }
    }

    /// What this node knows now.
    pub fn view(&self) -> View {
        match &self.rt {
            Runtime::Manager(m) => m.view(),
            Runtime::Worker(w) => w.view(),
        }
    }

    /// Managers worth dialing: the leader first, then every other manager known, never
    /// ourselves.
    pub(crate) fn manager_addrs(&self) -> Vec<SocketAddr> {
        let view = self.view();
        let mut out = Vec::new();
        // The managers learned at join time only until the state names the managers: they
        // may have been demoted or removed since.
        let bootstrap = if view.state.managers().next().is_none() {
            self.id.bootstrap_managers.as_slice()
        } else {
            &[]
        };
        if let Some(l) = view
            .leader
            .filter(|l| *l != self.id.node_id)
            .and_then(|l| view.state.nodes.get(&l))
        {
            out.push(l.advertise_addr);
        }
        let known = view
            .state
            .managers()
            .map(|n| (n.id, n.advertise_addr))
            .chain(bootstrap.iter().map(|p| (p.id, p.addr)));
        for (id, addr) in known {
            if id != self.id.node_id && !out.contains(&addr) {
                out.push(addr);
            }
        }
        out
    }

    /// Calls a manager, reusing a connection.
    pub(crate) async fn call(
        &self,
        addr: SocketAddr,
        req: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, crate::peer::PeerError> {
        let client = {
            let mut peers = self.peers.lock().await;
            peers
                .entry(addr)
                .or_insert_with(|| {
                    Arc::new(Mutex::new(PeerClient::new(addr, self.client_tls.clone())))
                })
                .clone()
        };
        // A call already in flight on the pooled connection (a slow write, a forward that
        // comes back to us) must not block this one: use a connection of its own then.
        let pooled = client.try_lock();
        let result = match pooled {
            Ok(mut pooled) => pooled.call(req, timeout).await,
            Err(_) => {
                PeerClient::new(addr, self.client_tls.clone())
                    .call(req, timeout)
                    .await
            }
        };
        result
    }

    /// Carries out a write: on the leader directly, elsewhere by forwarding towards it. A
    /// write that meets an election in progress is retried for a few seconds; a lost quorum
    /// or unreachable managers fail at once.
    pub async fn propose(&self, proposal: Proposal, hops: u8) -> Result<Committed, ApiError> {
        if hops > 0 {
            return self.propose_forwarded(proposal, hops).await;
        }
        // Only the node where the write started retries, and only while a majority of the
        // managers answers (an election is then about to finish); without one it fails at
        // once with the reason.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        loop {
            match self.propose_from_origin(proposal.clone()).await {
                Err(e) if is_leadership_transient(&e) => {
                    let (reachable, managers) = self.managers_reachable().await;
                    if reachable * 2 <= managers {
                        return Err(ApiError::unavailable(format!(
                            "the cluster has lost quorum: {reachable} of {managers} managers are reachable and a majority is needed; writes are refused until a majority is back (or run `secnet init --force-new-cluster` on a surviving manager)"
                        )));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                r => return r,
            }
        }
    }

    /// The node where a write starts: the leader runs it; otherwise it asks the leader it
    /// knows and then every other manager, each of which runs it or passes it to its own
    /// leader once.
    async fn propose_from_origin(&self, proposal: Proposal) -> Result<Committed, ApiError> {
        if let Runtime::Manager(m) = &self.rt {
            if m.is_leader() {
                return m.execute(proposal).await;
            }
        }
        let addrs = self.manager_addrs();
        if addrs.is_empty() {
            return Err(no_leader(NO_LEADER));
        }
        let timeout = forward_timeout(&proposal);
        let req = PeerRequest::Propose { proposal, hops: 1 };
        let mut errors = Vec::new();
        for addr in addrs {
            match self.call(addr, &req, timeout).await {
                Ok(PeerResponse::Proposed(Err(e))) if is_leadership_transient(&e) => {
                    errors.push(format!("{addr}: {}", e.message))
                }
                Ok(PeerResponse::Proposed(r)) => return r,
                Ok(other) => errors.push(format!("{addr}: unexpected answer {other:?}")),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(no_leader(format!("{NO_LEADER} ({})", errors.join("; "))))
    }

    /// A node that received a forwarded write: runs it if it leads, else passes it once to the
    /// leader it knows. It never fans out further, so forwards cannot loop.
    async fn propose_forwarded(&self, proposal: Proposal, hops: u8) -> Result<Committed, ApiError> {
        if let Runtime::Manager(m) = &self.rt {
            if m.is_leader() {
                return m.execute(proposal).await;
            }
        }
        let view = self.view();
        let leader = view
            .leader
            .filter(|l| *l != self.id.node_id)
            .and_then(|l| view.state.nodes.get(&l))
            .map(|n| n.advertise_addr);
        let (Some(addr), true) = (leader, hops < 2) else {
            return Err(no_leader(NO_LEADER));
        };
        let timeout = forward_timeout(&proposal);
        let req = PeerRequest::Propose {
            proposal,
            hops: hops + 1,
        };
        match self.call(addr, &req, timeout).await {
            Ok(PeerResponse::Proposed(r)) => r,
            Ok(other) => Err(ApiError::internal(format!(
                "{addr}: unexpected answer {other:?}"
            ))),
            Err(e) => Err(no_leader(format!("{NO_LEADER} ({e})"))),
        }
    }

    /// How many managers answer now (this node included), and how many there are.
    pub(crate) async fn managers_reachable(&self) -> (usize, usize) {
        let view = self.view();
        let managers: Vec<_> = view.state.managers().cloned().collect();
        let probes = managers.iter().map(|n| {
            let addr = n.advertise_addr;
            let is_me = n.id == self.id.node_id;
            async move {
                is_me
                    || matches!(
                        self.call(addr, &PeerRequest::Ping, Duration::from_secs(1))
                            .await,
                        Ok(PeerResponse::Pong { .. })
                    )
            }
        });
        let reachable = futures::future::join_all(probes)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count();
        (reachable, managers.len())
    }

    /// Proposes a command and returns the model's answer once this node's own copy of the
    /// state includes it (read-your-writes: `network create` then `network ls` on the same
    /// node shows the network).
    pub async fn write(&self, cmd: Command) -> Result<Response, ApiError> {
        let committed = self.propose(Proposal::Command(cmd), 0).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let applied = |v: &View| (v.applied_index >= committed.index).then_some(());
        if self.wait_until(deadline, applied).await.is_err() {
            tracing::warn!(
                index = committed.index,
                "this node's state lags behind a write it made"
            );
        }
        Ok(committed.response)
    }

    /// Whether the certificate should be renewed: past a point between 50% and 80% of its
    /// lifetime (spread by node id so a cluster's nodes do not all renew at once, as Swarm
    /// does).
    pub(crate) fn certificate_due(&self) -> bool {
        match pki::node_identity(&self.id.cert_der) {
            Ok(ident) => crate::agent::membership::renewal_due(
                ident.not_after,
                std::time::SystemTime::now(),
                pki::NODE_CERT_VALIDITY,
                self.id.node_id,
            ),
            Err(_) => false,
        }
    }

    /// Asks a manager for a new certificate for this node's key and current role.
    pub(crate) async fn renew_certificate(&self) -> Result<Vec<u8>, ApiError> {
        let csr = self
            .key
            .csr_der(self.id.node_id.0)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let stays_manager = self.me().is_some_and(|n| n.role == Role::Manager);
        if stays_manager && matches!(self.rt, Runtime::Manager(_)) {
            // A manager holds the CA and may record its own certificate: it renews itself
            // (the only way for a cluster with a single manager).
            return server::renew(self, self.id.node_id, &csr).await;
        }
        let req = PeerRequest::RenewCertificate { csr_der: csr };
        let mut errors = Vec::new();
        for addr in self.manager_addrs() {
            match self
                .call(addr, &req, WRITE_TIMEOUT + Duration::from_secs(3))
                .await
            {
                Ok(PeerResponse::Certificate(r)) => return r,
                Ok(other) => errors.push(format!("{addr}: unexpected answer {other:?}")),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(ApiError::unavailable(format!(
            "no manager could issue a certificate ({})",
            errors.join("; ")
        )))
    }

    /// This node as the state knows it.
    pub fn me(&self) -> Option<Node> {
        self.view().state.nodes.get(&self.id.node_id).cloned()
    }

    /// The node's key as stored.
    pub(crate) fn key_secret(&self) -> &SecretBytes {
        &self.key.key_pkcs8
    }
}

/// Errors that mean "an election is in progress": worth retrying shortly.
/// Whether a write failed only because the cluster is between leaders (typed on the wire,
/// see [`secnet_api::Transient`]): worth trying again at once.
fn is_leadership_transient(e: &ApiError) -> bool {
    e.transient.is_some()
}

fn no_leader(message: impl Into<String>) -> ApiError {
    ApiError::between_leaders(secnet_api::Transient::NoLeader, message)
}

/// Why a write found no leader to run it.
const NO_LEADER: &str = "no manager could reach a leader (an election may be in progress)";

/// How long a forwarded write may take: admitting a voter waits for it to catch up.
fn forward_timeout(p: &Proposal) -> Duration {
    match p {
        Proposal::AddVoter { .. } => Duration::from_secs(40),
        _ => WRITE_TIMEOUT + Duration::from_secs(3),
    }
}

/// Tells the leader every second that this node is alive.
async fn heartbeat_loop(member: std::sync::Weak<Member>) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tick.tick().await;
        let Some(m) = member.upgrade() else { return };
        let node_id = m.id.node_id;
        if let Runtime::Manager(rt) = &m.rt {
            if rt.is_leader() {
                rt.record_heartbeat(node_id, Instant::now());
                continue;
            }
        }
        let view = m.view();
        let target = view
            .leader
            .and_then(|l| view.state.nodes.get(&l))
            .map(|n| n.advertise_addr);
        let Some(addr) = target else { continue };
        if let Err(e) = m
            .call(
                addr,
                &PeerRequest::Heartbeat { node_id },
                Duration::from_secs(2),
            )
            .await
        {
            tracing::debug!(error = %e, "heartbeat to the leader failed");
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_run_dirs_are_distinct_per_state_dir_and_stable() {
        assert_eq!(
            default_run_dir(Path::new("/var/lib/secnet")),
            Path::new("/run/secnet")
        );
        assert_eq!(
            default_run_dir(Path::new("/var/lib/secnet/")),
            Path::new("/run/secnet")
        );
        let a = default_run_dir(Path::new("/srv/h1/state"));
        let b = default_run_dir(Path::new("/srv/h2/state"));
        assert_ne!(a, b);
        // The digits are part of the on-disk contract: a restarted (or upgraded) daemon
        // must find its namespaces again.
        assert_eq!(a, Path::new("/run/secnet/state-3a03e86f47c2dc9d"));
        assert_eq!(default_run_dir(Path::new("/srv//h1/state/")), a);
        // Relative paths mean the same directory as their absolute form.
        let cwd = std::env::current_dir().expect("a working directory");
        assert_eq!(
            default_run_dir(Path::new("rel/state")),
            default_run_dir(&cwd.join("rel/state"))
        );
    }
}
