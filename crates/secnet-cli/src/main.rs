//! `secnet`: the command-line client of the local secnet daemon.
//!
//! Each command is one request over the daemon's Unix socket (see `secnet_api::local`): the
//! CLI parses and checks the command line, sends one frame, waits for one answer, and shows
//! it. Exit codes: 0 success, 1 refused by the daemon, 2 usage error, 3 daemon or cluster
//! unavailable (including timeouts), 4 internal error.
//!
//! `run` and `exec` are the exceptions: they run a command in an endpoint's network namespace
//! (see [`launch`]) and exit with its exit code.

mod cli;
mod client;
mod converge;
mod error;
mod launch;
mod logs;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Action, Cli};
use crate::error::{CliError, EXIT_INTERNAL};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => report(&e),
    }
}

/// Runs the command; returns the exit code of a command that did not fail.
fn run(cli: Cli) -> Result<u8, CliError> {
    let invocation = match cli.command.into_action() {
        Action::Request(invocation) => invocation,
        Action::Run { create, command } => return launch::run(&cli.socket, &create, &command),
        Action::Exec { endpoint, command } => {
            return launch::exec(&cli.socket, &endpoint, &command)
        }
        Action::ServiceLogs { service, follow } => {
            let runtime = client::runtime()?;
            runtime.block_on(logs::logs(&cli.socket, &service, follow))?;
            return Ok(0);
        }
    };
    if let Some(line) = &invocation.progress {
        eprintln!("{line}");
    }
    let runtime = client::runtime()?;
    let response = runtime.block_on(client::call(
        &cli.socket,
        &invocation.request,
        invocation.timeout,
    ))?;
    let text = output::render(&invocation.render, response)?;
    output::print(&text)?;
    if let Some(service) = &invocation.converge {
        runtime.block_on(converge::converge(&cli.socket, service))?;
    }
    Ok(0)
}

/// Prints the failure to stderr and returns its exit code.
fn report(e: &CliError) -> ExitCode {
    eprintln!("Error: {e}");
    let code = e.exit_code();
    ExitCode::from(if code == 0 { EXIT_INTERNAL } else { code })
}
