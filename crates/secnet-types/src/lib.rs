//! The small vocabulary every secnet crate shares, with no dependencies beyond serde: a
//! node's [`Role`], the well-known ports and the Ethernet address type [`Mac`]. It exists so that the pure crates (the model,
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

/// An Ethernet address, shown and parsed as `02:42:0a:14:00:02` (six bytes of two hex digits
/// each, either case). One type for the model, which assigns endpoints' addresses, and the data
/// path, which programs them, so both read and write the same text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The MAC an address gets: locally administered `02:42` (as Docker does) followed by the
    /// IPv4 address, so it is unique wherever the address is.
    pub fn for_ip(ip: std::net::Ipv4Addr) -> Mac {
        let o = ip.octets();
        Mac([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }

    /// The six bytes, in wire order.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Whether frames to this address go to one interface: the group bit (the lowest bit of
    /// the first byte) is clear and it is not all zeros.
    pub fn is_unicast(self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }
}

impl From<[u8; 6]> for Mac {
    fn from(b: [u8; 6]) -> Mac {
        Mac(b)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid MAC address {s:?}: expected six hex bytes like 02:42:0a:00:00:02");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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

    #[test]
    fn macs_read_and_write_one_text_form() {
        let mac = Mac::for_ip(std::net::Ipv4Addr::new(10, 20, 255, 254));
        assert_eq!(mac, Mac([0x02, 0x42, 10, 20, 255, 254]));
        assert_eq!(mac.to_string(), "02:42:0a:14:ff:fe");
        assert_eq!("02:42:0A:14:FF:FE".parse::<Mac>(), Ok(mac));
        assert_eq!(format!("{mac:?}"), "Mac(02:42:0a:14:ff:fe)");
        assert_eq!(
            serde_json::to_string(&mac).unwrap(),
            "\"02:42:0a:14:ff:fe\""
        );
        for bad in [
            "",
            "02:42:0a:14:ff",
            "02:42:0a:14:ff:fe:00",
            "2:42:0a:14:ff:fe",
            "02:42:0a:14:ff:+f",
            "02-42-0a-14-ff-fe",
            "02:42:0a:14:ff:fe:",
            "0g:42:0a:14:ff:fe",
        ] {
            let err = bad.parse::<Mac>().unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn unicast_is_the_group_bit_clear_and_not_zero() {
        assert!(Mac([0x02, 0x42, 10, 0, 0, 2]).is_unicast());
        assert!(!Mac([0x01, 0x00, 0x5e, 0, 0, 1]).is_unicast());
        assert!(!Mac([0xff; 6]).is_unicast());
        assert!(!Mac([0; 6]).is_unicast());
    }

    proptest::proptest! {
        #[test]
        fn every_mac_round_trips_through_text(bytes: [u8; 6]) {
            let mac = Mac(bytes);
            proptest::prop_assert_eq!(mac.to_string().parse::<Mac>(), Ok(mac));
            proptest::prop_assert_eq!(mac.to_string().to_uppercase().parse::<Mac>(), Ok(mac));
        }

        #[test]
        fn parsing_never_panics_and_accepts_only_the_canonical_length(s in "\\PC{0,24}") {
            if let Ok(mac) = s.parse::<Mac>() {
                proptest::prop_assert_eq!(mac.to_string(), s.to_lowercase());
            }
        }
    }
}
