//! The small vocabulary every secnet crate shares, with no dependencies beyond serde: a
//! node's [`Role`] and the well-known ports. It exists so that the pure crates (the model,
//! the CLI) can name these without linking the PKI (rustls, rcgen) that happens to use them
//! too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// TCP port of the control API (Raft and the node RPCs) on managers: Swarm's.
pub const DEFAULT_CONTROL_PORT: u16 = 2377;
/// UDP port of VXLAN between data-path addresses (`--data-path-port`): IANA's, Swarm's.
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;
/// UDP port of every node's WireGuard endpoint (`--wireguard-port`): WireGuard's usual.
pub const DEFAULT_WIREGUARD_PORT: u16 = 51820;

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the replicated control plane and signs certificates.
    Manager,
    /// Runs workloads only.
    Worker,
}

impl Role {
    /// `"manager"` or `"worker"` (also the certificate's OU).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "manager" => Ok(Role::Manager),
            "worker" => Ok(Role::Worker),
            other => Err(format!(
                "unknown role {other:?}: expected \"manager\" or \"worker\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn roles_round_trip_through_text_and_json() {
        for r in [Role::Manager, Role::Worker] {
            assert_eq!(r.to_string().parse::<Role>(), Ok(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{r}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), r);
        }
        let err = "Manager".parse::<Role>().unwrap_err();
        assert!(
            err.contains("\"Manager\"") && err.contains("\"worker\""),
            "{err}"
        );
    }

    #[test]
    fn ports_are_swarms_and_wireguards() {
        assert_eq!(
            (
                DEFAULT_CONTROL_PORT,
                DEFAULT_DATA_PATH_PORT,
                DEFAULT_WIREGUARD_PORT
            ),
            (2377, 4789, 51820)
        );
    }
}
