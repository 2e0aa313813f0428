//! Why the daemon, or a membership, could not start: the error of `Daemon::start`,
//! `serve_local` and `Member::start`. `secnetd` prints it and exits; the local API puts its
//! text in the answer to `init` or `join`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use secnet_keys::seal::SealError;
use secnet_pki::PkiError;

use super::lock::LockError;
use crate::raft::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file, directory or socket operation failed; `context` says which.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Another daemon holds the state or run directory.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// Another daemon answers on the local API socket.
    #[error(
        "another secnetd is serving {}: give this daemon its own --socket, or stop the other one first",
        .0.display()
    )]
    SocketInUse(PathBuf),
    /// The key-encryption key, or something sealed under it, is unusable.
    #[error(transparent)]
    Sealed(#[from] SealError),
    /// This node's key or certificate is unusable.
    #[error("this node's key or certificate: {0}")]
    Pki(#[from] PkiError),
    /// The Raft store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Raft engine refused its configuration or failed to start.
    #[error("the Raft engine: {0}")]
    Raft(String),
    /// The control port cannot be bound.
    #[error("cannot listen on {addr} (--listen-addr): {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

impl StartError {
    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
        let context = context.into();
        move |source| StartError::Io { context, source }
    }
}
