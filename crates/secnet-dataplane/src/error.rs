//! The data path's error type. Every fallible public function of this crate returns
//! [`DataplaneError`]; its text says what was being done and why it failed, and its variants
//! let a caller tell the cases apart it decides on (nft missing, a policy it built wrongly)
//! without reading the text.

use std::io;

/// Why reading or changing a host's data path failed.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// A file, directory or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `reading /run/secnet/netns`.
        context: String,
        #[source]
        source: io::Error,
    },
    /// A netlink request failed: the kernel refused it, the socket failed, or the reply was
    /// unreadable. `errno` is the kernel's answer when it refused.
    #[error("{context}: {message}")]
    Netlink {
        /// What was being done, e.g. `observing namespace /run/secnet/netns/net-…`.
        context: String,
        /// The failure itself.
        message: String,
        /// The kernel's errno, when the kernel refused.
        errno: Option<i32>,
    },
    /// `nft` could not be run at all (not installed, or it did not finish in time).
    #[error("cannot run nft (is the nftables package installed?): {0}")]
    NftUnavailable(#[source] io::Error),
    /// `nft` ran and refused; `output` is what it printed.
    #[error("{context}: {output}")]
    NftFailed {
        /// What was being done, e.g. `installing the strict-mode rules`.
        context: &'static str,
        /// nft's exit status and messages.
        output: String,
    },
    /// The strict-mode policy cannot be written as rules (a bad tunnel device name, a VNI
    /// that does not fit in 24 bits): a bug in the caller, never the host's fault.
    #[error("{0}")]
    InvalidPolicy(String),
    /// The strict-mode table is not there right after it was installed.
    #[error("the strict-mode rules are not in place after installing them")]
    StrictNotInPlace,
}

impl DataplaneError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> DataplaneError {
        DataplaneError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = DataplaneError> = std::result::Result<T, E>;
