//! secnet's WireGuard engine: one endpoint per host, carrying the encrypted overlay networks.
//!
//! A [`Tunnel`] owns a TUN device (the node's tunnel address) and a UDP socket on the
//! data-path address. Packets routed into the TUN device are sealed for the peer that owns
//! their destination tunnel address and sent as WireGuard datagrams; datagrams from peers are
//! opened and written to the TUN device. The cryptography is boringtun's `noise::Tunn`;
//! everything around it (sockets, the peer table, which `Tunn` a datagram goes to, which one
//! sends, timers, key rotation, counters) is ours.
//!
//! # Why not boringtun's `device` module
//!
//! It does one `read`/`sendto` per packet with a mutex per peer, has no `IFF_VNET_HDR`,
//! GSO/GRO or batching, and cannot change an existing peer (it panics), while secnet changes
//! peers and pre-shared keys at run time. Owning the loop also lets the peer table, the
//! dispatch and the anti-spoofing check be plain code with unit tests (`engine.rs` drives two
//! engines against each other in memory), and lets the I/O move 64 KiB per system call
//! (next section).
//!
//! # I/O: batches and offloads
//!
//! A userspace tunnel pays per packet, mostly in the kernel: each 1,440-byte packet through
//! the TUN device or the UDP socket is a system call, an skb and a trip through the stack
//! (the first, one-packet-per-syscall loop spent ~85% of its time in the kernel and moved
//! ~1 Gbit/s). So the I/O thread (`io.rs`) moves up to 64 KiB per system call wherever the
//! kernel lets it, and splits and merges packets itself (`offload.rs`, pure and
//! property-tested). The wire format stays standard WireGuard, one datagram per packet.
//!
//! - **TUN → peers.** The TUN device has `IFF_VNET_HDR` with checksum offload, TSO, USO
//!   (6.2+) and GSO over UDP tunnels (6.17+): the kernel hands over TCP/UDP super-packets,
//!   including whole VXLAN bursts of secnet's encrypted networks, which are split into
//!   packets of the TUN MTU (lengths, IDs, sequence numbers, flags, checksums of both
//!   layers fixed), sealed one by one and sent with one UDP GSO `sendmsg` per run of
//!   equal-sized datagrams to a peer (`sendmmsg` for the rest).
//! - **Peers → TUN.** `recvmmsg` on a socket with UDP GRO returns many datagrams per
//!   message. After opening and the inner source check, consecutive packets of one flow are
//!   merged: TCP into a TSO write, UDP into a USO write, VXLAN-carried TCP into a GSO-over-
//!   UDP-tunnel write, so that the kernel's IP, UDP, VXLAN and TCP receive paths run once
//!   per 64 KiB. Only consecutive packets merge: what is written keeps the arrival order.
//! - **Socket buffers** of 8 MiB (`SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` as root).
//!
//! Every piece is probed when the tunnel starts and falls back cleanly, down to plain
//! packets one per system call; `SECNET_TUNNEL_IO` turns pieces off one by one (`no-gso`,
//! `no-gro`, `no-vnet`, `no-tunnel-gso`, `no-uso`, `no-coalesce`, `no-coalesce-udp`,
//! `no-coalesce-tunnel`, or `off`), for comparisons and as an escape hatch. Two ioctls
//! (`io/sys.rs`) are the crate's only `unsafe`: nothing safe wraps the tunnel offload flags.
//!
//! Measured with the bed in `tests/throughput.rs` (two namespaces over a veth pair, iperf3,
//! PSK on, TUN MTU 1440, VXLAN MTU 1390; `cargo test --release -p secnet-tunnel --test
//! throughput -- --ignored --nocapture`), 10 s runs, 3 rounds interleaving the old build
//! and this one, medians, Gbit/s; 2 vCPUs (AMD EPYC), Linux 6.18, shared with other work
//! (load average 3.2–5.9):
//!
//! | path | one packet per syscall | batched + offloads | tunnel CPU, cores per Gbit/s |
//! |---|---|---|---|
//! | veth (underlay) | 13.8 | 14.3 | |
//! | kernel VXLAN over the veth | 11.6 | 12.5 | |
//! | TCP over the tunnel, 1 stream | 0.75 | 4.30 | 1.23 → 0.27 |
//! | TCP over the tunnel, 4 streams | 0.70 | 4.45 | 1.28 → 0.28 |
//! | VXLAN over the tunnel (secnet's encrypted network), 1 stream | 0.63 | 3.56 | 1.40 → 0.31 |
//! | VXLAN over the tunnel, 4 streams | 0.61 | 3.29 | 1.42 → 0.31 |
//!
//! No UDP receive errors in any run. The project's bed (`secnet-lab bench`: secnetd,
//! endpoint namespaces behind a bridge, release build, 3 rounds of 10 s, load average
//! 1.6–6.1) gave for the encrypted network 3.16 Gbit/s with one stream (3.64 reversed, 4.19
//! with four), against 0.46 for the first loop in the same bed earlier that day: 8.3× VXLAN
//! inside wireguard-go (0.38), 7.6× VXLAN inside boringtun-cli (0.42), 36% of the
//! unencrypted network (8.80; 39% reversed), no UDP datagram dropped, p99 RTT under load
//! 10.6 ms (boringtun-cli 18.2 ms). What each piece is worth and what did not pay is in
//! `io.rs`. Where the rest goes (perf, VXLAN over the tunnel): ChaCha20-Poly1305 (ring,
//! AVX2) is ~45% of the tunnel threads, the kernel's TUN and UDP paths (including the
//! receiving TCP stack that runs in the writer's softirq) ~40%, our splitting, merging,
//! checksums and engine ~15%. Both vCPUs are busy throughout (the stream's four threads).
//!
//! # Why the inner source check
//!
//! boringtun authenticates *who* sent a datagram, not what the packet inside claims to be:
//! `decapsulate` returns the inner source address and leaves the policy to the caller. Without
//! the check, any cluster member could inject packets that appear to come from another
//! member's tunnel address, and through it into the encrypted VXLAN networks. Each peer owns
//! exactly one tunnel address ([`PeerConfig::tunnel_ip`]); anything else from it is dropped
//! and counted ([`Counters::disallowed_source`], [`PeerStats::dropped_invalid`]). This is the
//! tunnel half of secnet's strict mode (DESIGN.md, Data path).
//!
//! # Why the rate limiter
//!
//! The UDP port is reachable by anyone on the underlay, and a handshake initiation costs the
//! receiver Diffie-Hellman operations before it knows who sent it (`parse_handshake_anon`
//! decrypts the initiator's static key). A [`RateLimiter`](boringtun::noise::rate_limiter)
//! per static key of ours (MAC1 is keyed by the receiver's public key, and during a static
//! key rotation we answer for two) checks MAC1, so only senders who know our public key get
//! that far, and, past a number of handshakes per second, answers with WireGuard cookies so
//! that only senders that can receive at their claimed address are served. They are reset
//! every second.
//!
//! # Slots: one `Tunn` per key combination
//!
//! boringtun fixes a `Tunn`'s static keys and pre-shared key when it is made: no setter for
//! the PSK or the peer's key, and `set_static_private` drops every session. Replacing the
//! `Tunn` on a key change would drop the session and stall traffic for a handshake (seconds,
//! if the peer has not changed yet). So a peer has a *slot* (a `Tunn`) per (our static key,
//! its static key, PSK epoch), made when first needed, and old slots live beside new ones
//! until nothing uses them. Per peer:
//!
//! - **Sending.** The *preferred* slot is (our current key, the peer's current key, the
//!   primary PSK epoch). If it has a session, it sends. Otherwise the newest slot that has a
//!   session sends (ranked: our current key, the peer's current key, highest epoch, latest
//!   handshake), and the preferred slot is told to handshake (a no-op while one is in
//!   progress). Only when no slot has a session does the preferred slot take the packet,
//!   queue it and handshake, as a lone `Tunn` would. Persistent keepalives
//!   ([`PeerConfig::keepalive`]) are ours, not boringtun's, and take the same path, so
//!   they keep the sending session alive and not every slot's.
//! - **Receiving.** Responses, cookies and data name their slot by the receiver index. An
//!   initiation is for the slot of: our key whose MAC1 it carries, the peer whose static key
//!   it decrypts to (current or old key), and the PSK epoch tagged in its sender index.
//! - **Index layout** ([`dispatch`]): boringtun puts `index << 8 | session` on the wire; our
//!   24-bit `index` is a 20-bit base (one per peer and key pair) and a 4-bit *epoch tag*,
//!   the low bits of the slot's PSK epoch. WireGuard's IKpsk2 mixes the PSK in only at the
//!   response, so the tag is the only way a responder can know which PSK the initiator used;
//!   an initiation whose tag names no epoch in our ring is dropped and counted as a
//!   handshake failure. A ring never holds two epochs with one tag (it holds at most
//!   [`MAX_PRESHARED_KEYS`], and the cluster ring's epochs are consecutive).
//!
//! # PSK rotation without loss
//!
//! The cluster ring ([`Tunnel::set_preshared_keys`]) goes through: `{1 primary}` →
//! `{1 primary, 2}` (installed for receiving on every node) → `{1, 2 primary}` (on each node
//! in turn) → `{2 primary}`. While a node has made 2 primary and its peer has not, the node
//! keeps sending on its epoch-1 session and handshakes on epoch 2; the peer answers with
//! key 2 because the tag says 2 (it has key 2: installed everywhere before any node made it
//! primary), and the node switches once that session is up. The peer keeps sending on
//! epoch 1, which the node still has, until it makes 2 primary too; its epoch-2 slot already
//! has a session then. When epoch 1 leaves a ring, its slots go at once, so nothing may be
//! sent on it any more: the caller must retire a key only after every node has made its
//! successor primary and sent on it. [`PeerStats::key_epoch`] says which epoch a node sends
//! on: once every node reports the primary (or `None`, no session) for every peer, the old
//! key can go.
//!
//! # Static key rotation without loss
//!
//! [`Tunnel::set_static_key`] makes a new key current; the previous one stays with its slots,
//! and keeps answering initiations addressed to it. Peers learn the new public key from the
//! cluster state and get it through [`Tunnel::set_peers`]: peers are identified by tunnel
//! address, so a new key for the same address is a rotation, whose old-key slots stay beside
//! the new. Whichever side moves first, the other's initiations to the new key either
//! succeed (it knows the key) or are refused and retried, while data keeps flowing on the old
//! slots. A side drops the old slots once the new key has carried traffic: a peer's old key
//! once that peer has sent us data under its new key, our previous key once every peer has
//! sent us data under our current one; at the latest after 180 s (WireGuard's
//! REJECT_AFTER_TIME). Both conditions mean the other side sends on the new key already.
//!
//! # Revocation
//!
//! A peer whose tunnel address is not in the set given to [`Tunnel::set_peers`] is dropped at
//! once with all its slots and keys: its datagrams find no slot, its initiations no key.
//!
//! # Threads and network namespaces
//!
//! [`Tunnel::start`] creates the TUN device and the socket in the network namespace of the
//! *calling thread* and spawns the I/O thread from it. A daemon that serves a namespace must
//! call it from a thread that has `setns`'d into that namespace (never from a tokio worker).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
pub mod dispatch;
mod engine;
mod io;
mod key;
mod offload;
mod psk;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use config::{PeerConfig, TunnelConfig, MAX_IFNAME_LEN, MAX_MTU, MIN_MTU};
pub use key::{ParseKeyError, PublicKey, StaticKey};
pub use psk::{PresharedKey, MAX_PRESHARED_KEYS};

use engine::Engine;

/// Why the tunnel could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The tunnel configuration is invalid (name, prefix, MTU or address).
    #[error("invalid tunnel configuration: {0}")]
    InvalidConfig(String),
    /// The peer set is invalid (a duplicate key or tunnel address, or our own key).
    #[error("invalid peer set: {0}")]
    InvalidPeers(String),
    /// The pre-shared key ring is invalid (empty, too large, two epochs with one index tag,
    /// or the primary epoch missing).
    #[error("invalid pre-shared key ring: {0}")]
    InvalidKeyRing(String),
    /// The TUN device could not be created or configured.
    #[error("cannot create TUN device {name}: {source}")]
    Tun {
        /// The requested device name.
        name: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another I/O setup step failed (socket options, the wake-up socket, spawning the thread).
    #[error("tunnel setup: {0}")]
    Io(#[from] std::io::Error),
    /// The I/O thread stopped with an error.
    #[error("tunnel I/O thread failed: {0}")]
    Failed(String),
}

/// Endpoint-wide drop counters (datagrams and packets that no peer accounts for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams that are not WireGuard messages for us: wrong type or length, or a handshake
    /// initiation whose MAC1 or encrypted static key does not check out.
    pub garbage: u64,
    /// Well-formed datagrams for no current peer: an unknown receiver index, or an initiation
    /// from a static key not in the peer set.
    pub unknown_peer: u64,
    /// Inner packets from a peer whose source is not that peer's tunnel address (or IPv6).
    pub disallowed_source: u64,
    /// Handshake initiations answered with a cookie or dropped because we are under load.
    pub rate_limited: u64,
    /// Packets read from the TUN device for no peer's tunnel address (or not IPv4).
    pub no_route: u64,
    /// Datagrams that the UDP socket would not take.
    pub send_errors: u64,
    /// Packets that the TUN device would not take.
    pub tun_write_errors: u64,
}

/// One peer's state, as [`Tunnel::stats`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's static public key.
    pub public_key: PublicKey,
    /// Where we send its datagrams.
    pub endpoint: SocketAddr,
    /// Its tunnel address.
    pub tunnel_ip: Ipv4Addr,
    /// The PSK epoch of the session we send on; `None` without a session.
    pub key_epoch: Option<u64>,
    /// How long ago the handshake of the session we send on completed; `None` without a
    /// session.
    pub last_handshake: Option<Duration>,
    /// Bytes of WireGuard datagrams accepted from it (all message types, all sessions).
    pub rx_bytes: u64,
    /// Bytes of WireGuard datagrams sent to it (all message types, all sessions).
    pub tx_bytes: u64,
    /// Failure events in handshakes with it: each handshake message from it that boringtun
    /// rejected (wrong key or PSK, replayed or stale, bad MAC), and each of our initiations
    /// that went unanswered (superseded by boringtun's retry every 5 s, or the last one
    /// when it gives up after 90 s). One failed attempt can count as both.
    pub handshake_failures: u64,
    /// Data messages from it that failed to open (bad tag, replay, no session) plus inner
    /// packets with a disallowed source.
    pub dropped_invalid: u64,
}

/// State shared between the handle and the I/O thread.
pub(crate) struct Shared {
    engine: Mutex<Engine>,
    stop: AtomicBool,
}

impl Shared {
    pub(crate) fn engine(&self) -> MutexGuard<'_, Engine> {
        // A panic inside boringtun must not take stats and shutdown down with it.
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// A running WireGuard endpoint. Dropping it stops the I/O thread and removes the TUN device.
pub struct Tunnel {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<(), std::io::Error>>>,
    wake: UnixDatagram,
    tun_name: String,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("tun_name", &self.tun_name)
            .field("local_addr", &self.local_addr)
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// Creates the TUN device (no packet information; `tun_addr/tun_prefix`, `mtu`, up) and
    /// binds the UDP socket, then starts the I/O thread. The peer set starts empty.
    ///
    /// Namespaces: the device and the socket are created in the network namespace of the
    /// calling thread, and the I/O thread is spawned from it (so it inherits that namespace).
    /// To run a tunnel inside a namespace, call this from a thread that has `setns`'d into
    /// it; never from an async runtime's worker thread.
    pub fn start(config: TunnelConfig) -> Result<Tunnel, TunnelError> {
        config.validate()?;
        let TunnelConfig {
            listen,
            tun_name,
            tun_addr,
            tun_prefix,
            mtu,
            private_key,
        } = config;
        let options = io::IoOptions::from_env();
        // The socket first: a port in use should fail before a device exists.
        let udp = io::Udp::bind(listen, &options)?;
        let local_addr = udp.local_addr()?;
        let tun = io::Tun::create(&tun_name, tun_addr, tun_prefix, mtu, &options)?;
        let tun_name = tun.name().unwrap_or(tun_name);
        let (wake, wake_rx) = UnixDatagram::pair()?;
        wake.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let public_key = private_key.public();
        let shared = Arc::new(Shared {
            engine: Mutex::new(Engine::new(private_key)),
            stop: AtomicBool::new(false),
        });
        let io = io::Io::new(udp, tun, wake_rx, options);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("secnet-tunnel".into())
            .spawn(move || io.run(&thread_shared))?;
        tracing::info!(tun = %tun_name, %local_addr, public_key = %public_key, "tunnel started");
        Ok(Tunnel {
            shared,
            thread: Some(thread),
            wake,
            tun_name,
            local_addr,
        })
    }

    /// Replaces the peer set (see the crate docs for what changes mean). Peers are identified
    /// by tunnel address: one that is not in `peers` is dropped at once, with all its
    /// sessions; one with a new public key is a key rotation (its sessions under the old key
    /// stay until the new key carries traffic). The whole set is rejected, and the old one
    /// kept, if two peers share a key or a tunnel address, or a peer has one of our keys.
    pub fn set_peers(&self, peers: Vec<PeerConfig>) -> Result<(), TunnelError> {
        self.shared.engine().set_peers(peers)
    }

    /// Installs the pre-shared keys this endpoint may use (the cluster ring) and the one
    /// that is primary for the handshakes it starts. Sessions under keys still in the ring
    /// keep going; those under keys that left it (or whose epoch now names another key) end
    /// at once. Rejected, and nothing changed, if the ring is empty, holds more than
    /// [`MAX_PRESHARED_KEYS`], has two epochs equal in their low 4 bits, or lacks `primary`.
    ///
    /// Until this is first called the endpoint uses no PSK. For a rotation without loss,
    /// install a new key everywhere before any node makes it primary, and drop the old one
    /// only after every node has made its successor primary and sent on it (see the crate
    /// docs).
    pub fn set_preshared_keys(
        &self,
        keys: Vec<PresharedKey>,
        primary: u64,
    ) -> Result<(), TunnelError> {
        self.shared.engine().set_preshared_keys(keys, primary)
    }

    /// Makes `key` this endpoint's static key for new handshakes. Sessions under the key it
    /// replaces keep carrying traffic, and initiations addressed to it are still answered,
    /// until every peer has sent traffic under the new key, or for 180 s at most (see the
    /// crate docs). Peers learn the new public key from their own `set_peers`.
    pub fn set_static_key(&self, key: StaticKey) {
        self.shared.engine().set_static_key(key);
    }

    /// Every peer's state, ordered by tunnel address.
    pub fn stats(&self) -> Vec<PeerStats> {
        self.shared.engine().peer_stats()
    }

    /// The endpoint-wide drop counters.
    pub fn counters(&self) -> Counters {
        self.shared.engine().counters()
    }

    /// This endpoint's current public key (the one new handshakes use).
    pub fn public_key(&self) -> PublicKey {
        self.shared.engine().public_key()
    }

    /// The bound UDP address (useful when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The TUN device's name.
    pub fn tun_name(&self) -> &str {
        &self.tun_name
    }

    /// Whether the I/O thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the I/O thread and removes the TUN device (it goes when its file descriptor
    /// closes, before this returns). Returns the error the thread died of, if it did.
    pub fn stop(mut self) -> Result<(), TunnelError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), TunnelError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.shared.stop.store(true, Ordering::Release);
        // A full wake-up socket already holds a wake-up; nothing else can fail here.
        let _ = self.wake.send(&[1]);
        let result = match thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TunnelError::Failed(e.to_string())),
            Err(_) => Err(TunnelError::Failed("I/O thread panicked".into())),
        };
        tracing::info!(tun = %self.tun_name, "tunnel stopped");
        result
    }
}

#[cfg(test)]
#[test]
fn tunnel_handles_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Tunnel>();
    send_sync::<PeerConfig>();
    send_sync::<StaticKey>();
    send_sync::<PresharedKey>();
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::warn!(%error, tun = %self.tun_name, "tunnel stopped with an error");
        }
    }
}
