//! `secnetd`: the secnet daemon. Runs in the foreground (systemd unit in `deploy/`), keeps
//! everything it needs under `--state-dir`, and serves the CLI on `--socket`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use tracing::{info, warn};

use secnet_control::daemon::{
    default_run_dir, serve_local, Daemon, DaemonConfig, DEFAULT_STATE_DIR,
};
use secnet_dataplane::mountns::{ensure_visible_on_host, MountNsOutcome};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The secnet daemon.
///
/// One runs on every host of a cluster. Before `secnet init` or `secnet join` it only serves
/// the local socket; afterwards it runs as a manager (a Raft voter with the control API on
/// port 2377) or a worker, and resumes that role after a restart.
///
/// Several daemons can share a machine (one per host namespace, as in a test bed) when each
/// runs in its own network namespace with its own --state-dir and --socket; each then gets
/// its own run directory unless --run-dir says otherwise. A daemon locks its state and run
/// directories and refuses to start, naming the other daemon's pid, if either is in use.
///
/// Start it in a network namespace with `ip netns exec NAME secnetd ...` or `nsenter
/// --net=/run/netns/NAME secnetd ...`: either way it makes its namespace files in the
/// machine's initial mount namespace (joining it if it was started in another, as `ip netns
/// exec` does), so that `secnet exec` and `nsenter --net=PATH` work from anywhere.
#[derive(Parser, Debug)]
#[command(name = "secnetd", version)]
struct Args {
    /// Directory for the node's identity, keys (sealed) and Raft data; created with mode 0700.
    #[arg(long, env = "SECNETD_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Unix socket for the `secnet` CLI; created with mode 0600 (root only). A socket another
    /// daemon still answers on is never taken over.
    #[arg(long, env = "SECNET_SOCKET", default_value = "/run/secnet/secnet.sock")]
    socket: PathBuf,
    /// Directory for the data path's network namespaces (bind mounts, one per network and
    /// endpoint); `secnet exec` and `nsenter --net=PATH` use the files in `<run-dir>/netns/`.
    /// The daemon owns it: it removes there only files with the names it gives (`net-*`,
    /// `ep-*`) and leaves anything else alone. Default: /run/secnet with the default
    /// --state-dir, else /run/secnet/state-<16 hex digits derived from the state directory>
    /// (the daemon logs it at start).
    #[arg(long, env = "SECNETD_RUN_DIR")]
    run_dir: Option<PathBuf>,
    /// Name this node shows in `secnet node ls` (default: the system hostname).
    #[arg(long)]
    hostname: Option<String>,
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn system_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

fn absolute(flag: &str, path: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(path)
        .with_context(|| format!("{flag} {}: cannot make it absolute", path.display()))?;
    Ok(abs.components().collect())
}

/// Refuses run directories whose `netns/` is someone else's by convention.
fn check_run_dir(run_dir: &Path) -> anyhow::Result<()> {
    for shared in ["/run", "/var/run"] {
        if run_dir == Path::new(shared) {
            bail!(
                "--run-dir {}: its netns/ would be {shared}/netns, where `ip netns add` keeps \
                 the machine's named namespaces; give secnetd a directory of its own such as \
                 /run/secnet",
                run_dir.display()
            );
        }
    }
    Ok(())
}

/// The configuration with every path absolute: joining the host's mount namespace resets
/// the working directory, and a relative path would then name another file.
fn config(args: &Args) -> anyhow::Result<DaemonConfig> {
    let state_dir = absolute("--state-dir", &args.state_dir)?;
    let run_dir = match &args.run_dir {
        Some(dir) => absolute("--run-dir", dir)?,
        None => default_run_dir(&state_dir),
    };
    check_run_dir(&run_dir)?;
    Ok(DaemonConfig {
        socket: absolute("--socket", &args.socket)?,
        run_dir,
        hostname: args.hostname.clone().unwrap_or_else(system_hostname),
        state_dir,
    })
}

/// Moves into the host's mount namespace when needed (see `secnet_dataplane::mountns`).
/// Runs before the first thread exists.
fn make_mounts_visible(run_dir: &Path) -> anyhow::Result<()> {
    match ensure_visible_on_host(run_dir) {
        Ok(MountNsOutcome::Initial { reference }) => {
            tracing::debug!(reference, "in the host's mount namespace")
        }
        Ok(MountNsOutcome::Propagates { reference }) => info!(
            run_dir = %run_dir.display(),
            reference,
            "running in a private mount namespace whose mounts under the run directory propagate to the host's"
        ),
        Ok(MountNsOutcome::Joined { from, reference }) => info!(
            from = %from,
            reference,
            "started in a private mount namespace (as `ip netns exec` makes); joined the host's (that of pid {reference}) so that the namespace files under the run directory are visible there"
        ),
        Ok(MountNsOutcome::Unknown) => warn!(
            "cannot see the mount namespace of any other process; if `nsenter --net=PATH` fails on the paths this daemon reports, start it in the host's mount namespace"
        ),
        Err(e) => bail!(
            "secnetd runs in a private mount namespace (as `ip netns exec` makes), where the \
             namespace files it creates under {} would be invisible to the rest of the \
             machine, and it could not join the host's mount namespace: {e}. Start it in the \
             host's mount namespace instead, for example with `nsenter --net=/run/netns/NAME \
             secnetd ...`",
            run_dir.display()
        ),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let cfg = config(&args)?;
    // setns into a mount namespace is refused once a second thread exists: before tokio.
    make_mounts_visible(&cfg.run_dir)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(cfg))
}

async fn run(cfg: DaemonConfig) -> anyhow::Result<()> {
    info!(state_dir = %cfg.state_dir.display(), run_dir = %cfg.run_dir.display(), socket = %cfg.socket.display(), hostname = %cfg.hostname, "secnetd starting");
    let socket = cfg.socket.clone();
    let daemon = Daemon::start(cfg).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = serve_local(daemon.clone(), &socket) => r?,
        _ = tokio::signal::ctrl_c() => info!("interrupted"),
        _ = term.recv() => info!("terminated"),
    }
    daemon.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    info!("secnetd stopped");
    Ok(())
}
