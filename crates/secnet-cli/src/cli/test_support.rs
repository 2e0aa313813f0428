//! Helpers of the command-line unit tests: parse a `secnet` command line as `main` does.

#![allow(clippy::unwrap_used)]

use clap::Parser;
use secnet_api::LocalRequest;

use super::{Action, Cli, Invocation};

/// The full command line: `secnet`, then `args`.
fn argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["secnet"];
    argv.extend_from_slice(args);
    argv
}

pub(super) fn parse(args: &[&str]) -> Invocation {
    match parse_action(args) {
        Action::Request(inv) => inv,
        other => panic!("{args:?} should be a plain request, got {other:?}"),
    }
}

pub(super) fn parse_action(args: &[&str]) -> Action {
    match Cli::try_parse_from(argv(args)) {
        Ok(cli) => cli.command.into_action(),
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

/// Parses and expects a usage error; returns the rendered message.
pub(super) fn parse_err(args: &[&str]) -> String {
    match Cli::try_parse_from(argv(args)) {
        Ok(cli) => panic!("{args:?} should fail, got {:?}", cli.command),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            e.to_string()
        }
    }
}

pub(super) fn json(req: &LocalRequest) -> serde_json::Value {
    serde_json::to_value(req).unwrap()
}

/// Fails unless `args` parse into a request that sends `expected`.
#[track_caller]
pub(super) fn assert_sends(args: &[&str], expected: &LocalRequest) {
    assert_eq!(json(&parse(args).request), json(expected));
}
