//! `secnetd`: the secnet daemon. Runs in the foreground (systemd unit in `deploy/`), keeps
//! everything it needs under `--state-dir`, and serves the CLI on `--socket`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use tracing::info;

use secnet_control::daemon::{serve_local, Daemon, DaemonConfig};

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
/// Several daemons can share a machine when each has its own network namespace, state
/// directory and socket.
#[derive(Parser, Debug)]
#[command(name = "secnetd", version)]
struct Args {
    /// Directory for the node's identity, keys (sealed) and Raft data; created with mode 0700.
    #[arg(long, env = "SECNETD_STATE_DIR", default_value = "/var/lib/secnet")]
    state_dir: PathBuf,
    /// Unix socket for the `secnet` CLI; created with mode 0600 (root only).
    #[arg(long, env = "SECNET_SOCKET", default_value = "/run/secnet/secnet.sock")]
    socket: PathBuf,
    /// Directory for the data path's network namespaces (bind mounts, one per network and
    /// endpoint); `secnet exec` and `nsenter --net=PATH` use the files in `<run-dir>/netns/`.
    #[arg(long, env = "SECNETD_RUN_DIR", default_value = "/run/secnet")]
    run_dir: PathBuf,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let cfg = DaemonConfig {
        state_dir: args.state_dir.clone(),
        socket: args.socket.clone(),
        run_dir: args.run_dir.clone(),
        hostname: args.hostname.clone().unwrap_or_else(system_hostname),
    };
    info!(state_dir = %cfg.state_dir.display(), socket = %cfg.socket.display(), hostname = %cfg.hostname, "secnetd starting");
    let daemon = Daemon::start(cfg).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = serve_local(daemon.clone(), &args.socket) => r?,
        _ = tokio::signal::ctrl_c() => info!("interrupted"),
        _ = term.recv() => info!("terminated"),
    }
    daemon.shutdown().await;
    let _ = std::fs::remove_file(&args.socket);
    info!("secnetd stopped");
    Ok(())
}
