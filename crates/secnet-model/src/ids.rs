//! Identifiers of cluster objects.
//!
//! Node ids are 64-bit because openraft's `NodeId` must be a small `Copy` integer; they are
//! drawn at random by the manager that admits a node, so a wiped node that joins again gets a
//! new id (openraft panics when a wiped voter returns with an old id).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A node's cluster-wide identity; shown as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "invalid node id {s:?}: expected up to 16 hexadecimal digits"
            ));
        }
        u64::from_str_radix(s, 16)
            .map(NodeId)
            .map_err(|e| format!("invalid node id {s:?}: {e}"))
    }
}

/// Formats 12 random bytes as a network id (24 lowercase hex digits).
pub fn network_id_from_bytes(bytes: [u8; 12]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn node_id_round_trips() {
        let id = NodeId(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!("00abcdef01234567".parse::<NodeId>().unwrap(), id);
        assert!("xyz".parse::<NodeId>().is_err());
        assert!("".parse::<NodeId>().is_err());
        assert!("00000000000000001".parse::<NodeId>().is_err());
    }
}
