//! Every way a command can fail, and the one mapping from failure to exit code.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secnet_api::{ApiError, ErrorKind};

/// Exit code: the daemon refused the request (invalid, not found, conflict, denied).
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: the daemon or the cluster cannot be reached or cannot serve now.
pub const EXIT_UNAVAILABLE: u8 = 3;
/// Exit code: a bug or an unexpected answer.
pub const EXIT_INTERNAL: u8 = 4;
/// Exit code of `run` / `exec` when the program (nsenter) exists but cannot be executed, as
/// in shells and nsenter.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// Exit code of `run` / `exec` when the program (nsenter) is not found, as in shells and
/// nsenter.
pub const EXIT_NOT_FOUND: u8 = 127;

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// The daemon answered with an error.
    Api(ApiError),
    /// The socket does not exist, or nobody listens on it.
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    /// The socket exists but this user may not use it.
    PermissionDenied {
        socket: PathBuf,
        source: std::io::Error,
    },
    /// The daemon did not answer in time.
    Timeout { socket: PathBuf, after: Duration },
    /// The connection broke, or was closed, before the answer arrived.
    ConnectionLost { socket: PathBuf, detail: String },
    /// The answer could not be decoded.
    Protocol { socket: PathBuf, detail: String },
    /// The daemon answered with a response of the wrong kind.
    UnexpectedResponse { expected: &'static str, got: String },
    /// Writing the output failed.
    Output(std::io::Error),
    /// `exec` on an endpoint that lives on another node: its namespace is not here.
    RemoteEndpoint {
        endpoint: String,
        node: String,
        node_hostname: String,
    },
    /// The daemon created an endpoint for `run` but gave no namespace path for it.
    NoNamespace {
        endpoint: String,
        node: String,
        node_hostname: String,
    },
    /// A program (nsenter) could not be started.
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    /// A signal made `run` stop waiting for the daemon.
    Interrupted { signal: i32, detail: String },
    /// A local facility (runtime, signal handling, waiting for a child) failed.
    Local {
        what: &'static str,
        source: std::io::Error,
    },
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api(e) => match e.kind {
                ErrorKind::Invalid
                | ErrorKind::NotFound
                | ErrorKind::Conflict
                | ErrorKind::Denied => EXIT_REFUSED,
                ErrorKind::Unavailable => EXIT_UNAVAILABLE,
                ErrorKind::Internal => EXIT_INTERNAL,
            },
            CliError::Connect { .. }
            | CliError::PermissionDenied { .. }
            | CliError::Timeout { .. }
            | CliError::ConnectionLost { .. } => EXIT_UNAVAILABLE,
            CliError::Protocol { .. } | CliError::UnexpectedResponse { .. } => EXIT_INTERNAL,
            CliError::Output(_) => EXIT_INTERNAL,
            CliError::RemoteEndpoint { .. } => EXIT_REFUSED,
            CliError::NoNamespace { .. } | CliError::Local { .. } => EXIT_INTERNAL,
            CliError::Spawn { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                _ => EXIT_CANNOT_EXECUTE,
            },
            CliError::Interrupted { signal, .. } => signal_exit_code(*signal),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Api(e) => f.write_str(&e.message),
            CliError::Connect { socket, source } => write!(
                f,
                "cannot connect to the secnet daemon at {}: {source}. Is secnetd running? \
                 (set --socket or SECNET_SOCKET)",
                socket.display()
            ),
            CliError::PermissionDenied { socket, source } => write!(
                f,
                "cannot connect to the secnet daemon at {}: {source}. The socket is \
                 reserved to root: run secnet as root (e.g. with sudo)",
                socket.display()
            ),
            CliError::Timeout { socket, after } => write!(
                f,
                "the secnet daemon at {} did not answer within {}s; it may be overloaded or \
                 waiting for the cluster (check `secnet status` and the secnetd logs)",
                socket.display(),
                after.as_secs()
            ),
            CliError::ConnectionLost { socket, detail } => write!(
                f,
                "lost the connection to the secnet daemon at {} before it answered: {detail}. \
                 Check that secnetd is still running",
                socket.display()
            ),
            CliError::Protocol { socket, detail } => write!(
                f,
                "could not read the answer of the secnet daemon at {}: {detail}. Are secnet \
                 and secnetd the same version?",
                socket.display()
            ),
            CliError::UnexpectedResponse { expected, got } => write!(
                f,
                "the secnet daemon sent an unexpected answer ({got}) where {expected} was \
                 expected; are secnet and secnetd the same version?"
            ),
            CliError::Output(e) => write!(f, "cannot write the output: {e}"),
            CliError::RemoteEndpoint {
                endpoint,
                node,
                node_hostname,
            } => write!(
                f,
                "endpoint {endpoint} is on node {node_hostname} ({node}): run `secnet exec` on \
                 that host"
            ),
            CliError::NoNamespace {
                endpoint,
                node,
                node_hostname,
            } => write!(
                f,
                "the secnet daemon created endpoint {endpoint} on node {node_hostname} ({node}) \
                 but gave no network namespace for it, so the command was not run; are secnet \
                 and secnetd the same version, and is --socket the daemon of this host?"
            ),
            CliError::Spawn { program, source } => {
                write!(f, "cannot run {program}: {source}")?;
                if *program == "nsenter" {
                    f.write_str(
                        ". nsenter is part of util-linux (Debian and Ubuntu: apt-get install \
                         util-linux); it must be in PATH",
                    )?;
                }
                Ok(())
            }
            CliError::Interrupted { detail, .. } => f.write_str(detail),
            CliError::Local { what, source } => write!(f, "cannot {what}: {source}"),
        }
    }
}

impl std::error::Error for CliError {}

/// The exit code that reports death by signal `signal`: 128+N, as shells do.
pub fn signal_exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal.clamp(0, 127)).unwrap_or(u8::MAX)
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        CliError::Api(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_kinds_map_to_documented_codes() {
        let code = |kind| CliError::Api(ApiError::new(kind, "x")).exit_code();
        assert_eq!(code(ErrorKind::Invalid), 1);
        assert_eq!(code(ErrorKind::NotFound), 1);
        assert_eq!(code(ErrorKind::Conflict), 1);
        assert_eq!(code(ErrorKind::Denied), 1);
        assert_eq!(code(ErrorKind::Unavailable), 3);
        assert_eq!(code(ErrorKind::Internal), 4);
    }

    #[test]
    fn local_failures_map_to_documented_codes() {
        let socket = PathBuf::from("/run/secnet/secnet.sock");
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let connect = CliError::Connect {
            socket: socket.clone(),
            source: io(),
        };
        assert_eq!(connect.exit_code(), 3);
        let msg = connect.to_string();
        assert!(
            msg.starts_with("cannot connect to the secnet daemon at /run/secnet/secnet.sock: ")
                && msg.ends_with("Is secnetd running? (set --socket or SECNET_SOCKET)"),
            "{msg}"
        );
        let denied = CliError::PermissionDenied {
            socket: socket.clone(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(denied.exit_code(), 3);
        assert!(denied.to_string().contains("root"));
        let timeout = CliError::Timeout {
            socket,
            after: Duration::from_secs(30),
        };
        assert_eq!(timeout.exit_code(), 3);
        assert!(timeout.to_string().contains("within 30s"));
        let unexpected = CliError::UnexpectedResponse {
            expected: "a network",
            got: "Left".into(),
        };
        assert_eq!(unexpected.exit_code(), 4);
    }

    #[test]
    fn run_and_exec_failures_map_to_documented_codes() {
        let remote = CliError::RemoteEndpoint {
            endpoint: "web1".into(),
            node: "3f2a9c".into(),
            node_hostname: "worker2".into(),
        };
        assert_eq!(remote.exit_code(), 1);
        assert_eq!(
            remote.to_string(),
            "endpoint web1 is on node worker2 (3f2a9c): run `secnet exec` on that host"
        );
        let no_ns = CliError::NoNamespace {
            endpoint: "web1".into(),
            node: "3f2a9c".into(),
            node_hostname: "worker2".into(),
        };
        assert_eq!(no_ns.exit_code(), 4);
        let missing = CliError::Spawn {
            program: "nsenter",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(missing.exit_code(), 127);
        assert!(missing.to_string().contains("util-linux"), "{missing}");
        let denied = CliError::Spawn {
            program: "nsenter",
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(denied.exit_code(), 126);
        let interrupted = CliError::Interrupted {
            signal: 2,
            detail: "x".into(),
        };
        assert_eq!(interrupted.exit_code(), 130);
        assert_eq!(signal_exit_code(15), 143);
        assert_eq!(signal_exit_code(9), 137);
    }

    #[test]
    fn api_message_is_shown_as_is() {
        let e = CliError::Api(ApiError::new(
            ErrorKind::NotFound,
            "network \"x\" not found",
        ));
        assert_eq!(e.to_string(), "network \"x\" not found");
    }
}
