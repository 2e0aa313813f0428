//! `secnet`: the command-line client of the local secnet daemon.
//!
//! Each command is one request over the daemon's Unix socket (see `secnet_api::local`): the
//! CLI parses and checks the command line, sends one frame, waits for one answer, and shows
//! it. Exit codes: 0 success, 1 refused by the daemon, 2 usage error, 3 daemon or cluster
//! unavailable (including timeouts), 4 internal error.

mod cli;
mod client;
mod error;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::error::{CliError, EXIT_INTERNAL};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let invocation = cli.command.into_invocation();
    if let Some(line) = &invocation.progress {
        eprintln!("{line}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Output(std::io::Error::other(format!("cannot start: {e}"))))?;
    let response = runtime.block_on(client::call(
        &cli.socket,
        &invocation.request,
        invocation.timeout,
    ))?;
    let text = output::render(&invocation.render, response)?;
    output::print(&text)
}

/// Prints the failure to stderr and returns its exit code.
fn report(e: &CliError) -> ExitCode {
    eprintln!("Error: {e}");
    let code = e.exit_code();
    ExitCode::from(if code == 0 { EXIT_INTERNAL } else { code })
}
