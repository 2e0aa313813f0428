//! What the caller tells the engine: the local endpoint and the peer set.

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use crate::key::{PublicKey, StaticKey};
use crate::TunnelError;

/// Smallest MTU the TUN device accepts (the IPv4 minimum).
pub const MIN_MTU: u32 = 68;
/// Largest MTU we configure: an inner packet plus WireGuard's 32 bytes must fit one UDP
/// datagram (65,507 bytes over IPv4), with room to spare.
pub const MAX_MTU: u32 = 65_000;
/// Longest interface name Linux accepts (IFNAMSIZ − 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// The local WireGuard endpoint.
#[derive(Debug)]
pub struct TunnelConfig {
    /// UDP address to bind: the data-path address and the WireGuard port (51820 by default).
    pub listen: SocketAddr,
    /// Name of the TUN device to create (at most 15 bytes).
    pub tun_name: String,
    /// This node's tunnel address, configured on the TUN device.
    pub tun_addr: Ipv4Addr,
    /// Prefix length of the tunnel network (the route through the TUN device).
    pub tun_prefix: u8,
    /// MTU of the TUN device: the underlay MTU minus 60 (IPv4) or 80 (IPv6).
    pub mtu: u32,
    /// This node's static private key.
    pub private_key: StaticKey,
}

impl TunnelConfig {
    pub(crate) fn validate(&self) -> Result<(), TunnelError> {
        let bad = |why: String| Err(TunnelError::InvalidConfig(why));
        if self.tun_name.is_empty()
            || self.tun_name.len() > MAX_IFNAME_LEN
            || self
                .tun_name
                .bytes()
                .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace())
        {
            return bad(format!("invalid TUN device name {:?}", self.tun_name));
        }
        if self.tun_prefix > 32 {
            return bad(format!(
                "tunnel prefix /{} is longer than 32",
                self.tun_prefix
            ));
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return bad(format!("MTU {} outside {MIN_MTU}..={MAX_MTU}", self.mtu));
        }
        if self.tun_addr.is_unspecified() {
            return bad("tunnel address 0.0.0.0".into());
        }
        Ok(())
    }
}

/// One remote node. The pre-shared keys are the endpoint's, not the peer's (see
/// [`Tunnel::set_preshared_keys`](crate::Tunnel::set_preshared_keys)).
#[derive(Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's static public key (its identity).
    pub public_key: [u8; 32],
    /// Where the peer's WireGuard socket is (its data-path address and port).
    pub endpoint: SocketAddr,
    /// The peer's tunnel address: its identity in the peer set (a new `public_key` for the
    /// same address is a key rotation, not a new peer), the only inner source address
    /// accepted from it, and the destination that routes packets to it.
    pub tunnel_ip: Ipv4Addr,
    /// Persistent keepalive interval in seconds: a keepalive goes out on the session we send
    /// on this often, whatever else is sent.
    pub keepalive: Option<u16>,
}

impl fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConfig")
            .field("public_key", &PublicKey(self.public_key))
            .field("endpoint", &self.endpoint)
            .field("tunnel_ip", &self.tunnel_ip)
            .field("keepalive", &self.keepalive)
            .finish()
    }
}

/// Checks a whole peer set: distinct keys, distinct tunnel addresses, none of our own keys
/// (`own`: the current one and the one it replaced, while we still answer for it).
pub(crate) fn validate_peers(peers: &[PeerConfig], own: &[PublicKey]) -> Result<(), TunnelError> {
    let mut keys = HashSet::new();
    let mut ips = HashSet::new();
    for peer in peers {
        let key = PublicKey(peer.public_key);
        if own.contains(&key) {
            return Err(TunnelError::InvalidPeers(format!(
                "peer {key} is this node's own key"
            )));
        }
        if !keys.insert(key) {
            return Err(TunnelError::InvalidPeers(format!(
                "peer {key} listed twice"
            )));
        }
        if peer.tunnel_ip.is_unspecified() || !ips.insert(peer.tunnel_ip) {
            return Err(TunnelError::InvalidPeers(format!(
                "tunnel address {} of peer {key} is unspecified or used twice",
                peer.tunnel_ip
            )));
        }
        if peer.keepalive == Some(0) {
            return Err(TunnelError::InvalidPeers(format!(
                "peer {key}: keepalive 0 (use None to disable)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TunnelConfig {
        TunnelConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tun_name: "sntun0".into(),
            tun_addr: Ipv4Addr::new(100, 96, 0, 1),
            tun_prefix: 24,
            mtu: 1420,
            private_key: StaticKey::generate(),
        }
    }

    fn peer(key: u8, ip: u8) -> PeerConfig {
        PeerConfig {
            public_key: [key; 32],
            endpoint: "198.51.100.2:51820".parse().unwrap(),
            tunnel_ip: Ipv4Addr::new(100, 96, 0, ip),
            keepalive: None,
        }
    }

    #[test]
    fn config_validation() {
        assert!(config().validate().is_ok());
        for broken in [
            TunnelConfig {
                tun_name: String::new(),
                ..config()
            },
            TunnelConfig {
                tun_name: "a-very-long-tun-name".into(),
                ..config()
            },
            TunnelConfig {
                tun_name: "a/b".into(),
                ..config()
            },
            TunnelConfig {
                tun_prefix: 33,
                ..config()
            },
            TunnelConfig {
                mtu: 67,
                ..config()
            },
            TunnelConfig {
                mtu: 70_000,
                ..config()
            },
            TunnelConfig {
                tun_addr: Ipv4Addr::UNSPECIFIED,
                ..config()
            },
        ] {
            assert!(broken.validate().is_err(), "{broken:?}");
        }
    }

    #[test]
    fn peer_set_validation() {
        let own = [PublicKey([1; 32]), PublicKey([4; 32])];
        assert!(validate_peers(&[peer(2, 2), peer(3, 3)], &own).is_ok());
        assert!(validate_peers(&[peer(1, 2)], &own).is_err(), "own key");
        assert!(
            validate_peers(&[peer(4, 2)], &own).is_err(),
            "own previous key"
        );
        assert!(
            validate_peers(&[peer(2, 2), peer(2, 3)], &own).is_err(),
            "dup key"
        );
        assert!(
            validate_peers(&[peer(2, 2), peer(3, 2)], &own).is_err(),
            "dup ip"
        );
        let zero_keepalive = PeerConfig {
            keepalive: Some(0),
            ..peer(2, 2)
        };
        assert!(validate_peers(&[zero_keepalive], &own).is_err());
    }

    #[test]
    fn peer_debug_shows_the_key_in_base64() {
        let shown = format!("{:?}", peer(2, 2));
        assert!(shown.contains(&PublicKey([2; 32]).to_string()), "{shown}");
    }
}
