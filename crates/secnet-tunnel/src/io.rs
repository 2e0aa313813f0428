//! The I/O thread: one `poll` over the UDP socket, the TUN device and a wake-up socket.
//!
//! Each wake-up drains a budget of datagrams (read [`RECV_BATCH`](udp::RECV_BATCH) messages
//! at a time with `recvmmsg`, each message a UDP GRO batch) and of TUN packets through the
//! engine (under its lock, released while sleeping), then runs the timers and resets the
//! handshake rate limiter when due (every [`TICK`]). Whatever the engine sends is queued and
//! leaves in batches: sealed datagrams with UDP GSO, opened packets merged into
//! super-packets for the TUN device. One thread for both directions keeps the `Tunn`s
//! single-owner and the ordering per peer trivial.
//!
//! # What each piece is worth
//!
//! The bed in `tests/throughput.rs` with `SECNET_BENCH_VARIANTS` (the tunnels restarted
//! with each `SECNET_TUNNEL_IO` value in turn), one TCP stream, 6 s runs, 2 rounds, medians
//! in Gbit/s; 2 vCPUs, Linux 6.18, load average 0.6–2.9 from other work:
//!
//! | `SECNET_TUNNEL_IO` | TCP over the tunnel | VXLAN over the tunnel |
//! |---|---|---|
//! | (all on) | 3.56 | 4.13 |
//! | `no-coalesce-tunnel` (VXLAN merged as USO instead) | 3.81 | 2.42 |
//! | `no-coalesce` (every packet written alone) | 1.43 | 0.72 |
//! | `no-tunnel-gso` (the kernel splits VXLAN bursts; TUN queue drops) | 3.98 | 1.65 |
//! | `no-gro` (one datagram per `recvmmsg` slot) | 2.62 | 1.95 |
//! | `no-gso` (`sendmmsg`, one datagram per message) | 1.45 | 1.13 |
//! | `no-vnet` (plain TUN packets; UDP GSO/GRO still on) | 1.36 | 0.84 |
//! | `off` (one packet per syscall, `recvmmsg`) | 0.89 | 0.59 |
//!
//! (The TCP column varies ±15% between runs of the same variant; the tunnel-only options
//! do not touch that path.) Without the tunnel GSO read, the kernel segments the VXLAN
//! device's bursts before the TUN queue (500 packets) and overflows it: 40,000 TCP
//! retransmissions in 6 s. Merging VXLAN-carried TCP into tunnel GSO writes needs a trick:
//! see `offload::TUNNEL_PAD`.
//!
//! # What did not pay
//!
//! - **Two threads per tunnel** (one per direction, sharing the engine): 3.06 → 3.42 Gbit/s
//!   for VXLAN over the tunnel under heavy load from other work (load average 4–7), but
//!   0.27 → 0.32 cores per Gbit/s: the apparent gain is a larger share of a contended CPU,
//!   not less work, and both vCPUs are already busy with the stream's four threads (iperf3
//!   client and server, two tunnel threads; `/proc/stat` shows no idle time during a run).
//!   Not kept.
//! - **Multiple TUN queues** (`IFF_MULTI_QUEUE`): they only spread flows over more threads,
//!   which the point above rules out on 2 vCPUs; not built.
//! - `recvmmsg` alone, before the offloads, changed nothing measurable (the first loop
//!   already had it): batching system calls saves entries, not per-packet kernel work.
//! - **Spinning before sleeping** (after handling anything, `poll` without a timeout for a
//!   while before blocking), to save the wake-ups that idle round trips pay for. Same bed,
//!   idle RTT over VXLAN in the tunnel, 300 pings 10 ms apart, 3 rounds (ms, median per
//!   round): no spin 0.282 / 0.414 / 0.311, 50 µs 0.358 / 0.370 / 0.365, 200 µs 0.442 /
//!   0.435 / 0.441, 1 ms 2.22 / 2.19 / 2.23. On two vCPUs the spinning threads take the CPU
//!   that the ping and the kernel's softirqs need. Not kept.
//! - **Where the idle round trip goes.** A ping through the tunnel wakes a tunnel thread
//!   three times (the sending end for the request, the far end for it, the sending end for
//!   the reply; the far end's thread is still awake when the reply comes), and `perf sched
//!   latency` puts the average wake-up delay of the tunnel threads at 77 µs on this machine
//!   (the ping's own: 66 µs); a kernel-only path wakes nothing but the ping. Placement does
//!   not help (threads pinned to different vCPUs: 0.50 ms; both on one: 0.27; free: 0.28–
//!   0.32), nor do offloads or batching (`SECNET_TUNNEL_IO=off`: 0.33 / 0.29 / 0.32 ms).
//!   (The bed pinged 5 ms apart once: below 10 ms iputils' ping busy-waits and takes a
//!   vCPU from what it measures.)

mod sys;
mod tun;
mod udp;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::engine::{Engine, Transmit};
use crate::offload::{self, CoalesceOptions, Coalescer, VnetHdr, MAX_IP_PACKET};
use crate::Shared;

pub(crate) use tun::Tun;
pub(crate) use udp::Udp;

/// How often the peers' timers run.
const TICK: Duration = Duration::from_millis(100);
/// Datagrams handled per wake-up before looking at the TUN device.
const UDP_BUDGET: usize = 1024;
/// TUN reads per wake-up before looking at the socket (each read up to 64 KiB).
const TUN_BUDGET: usize = 32;
/// Read buffer for the TUN device: a 64 KiB packet and its header, with room to spare so
/// that a read that fills it can be recognised as truncated.
const TUN_READ_BUF: usize = 2 * MAX_IP_PACKET;

/// Which batching and offloads the tunnel uses. All on by default, each still probed; the
/// environment variable `SECNET_TUNNEL_IO` turns them off for comparisons and as an escape
/// hatch: a comma-separated list of `no-gso` (UDP GSO), `no-gro` (UDP GRO), `no-vnet` (TUN
/// offloads at all), `no-tunnel-gso` (GSO over UDP tunnels on the TUN device), `no-uso`
/// (UDP segmentation offload on the TUN device, both ways), `no-coalesce` (merging what is written to
/// the TUN device), `no-coalesce-udp` (merging UDP datagrams into USO packets),
/// `no-coalesce-tunnel` (merging VXLAN packets into tunnel GSO packets), or `off` for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IoOptions {
    pub(crate) udp_gso: bool,
    pub(crate) udp_gro: bool,
    pub(crate) vnet: bool,
    pub(crate) tunnel_gso: bool,
    pub(crate) uso: bool,
    pub(crate) coalesce_tcp: bool,
    pub(crate) coalesce_udp: bool,
    pub(crate) coalesce_tunnel: bool,
}

impl Default for IoOptions {
    fn default() -> Self {
        Self {
            udp_gso: true,
            udp_gro: true,
            vnet: true,
            tunnel_gso: true,
            uso: true,
            coalesce_tcp: true,
            coalesce_udp: true,
            coalesce_tunnel: true,
        }
    }
}

impl IoOptions {
    /// The options `SECNET_TUNNEL_IO` asks for (see the type's docs); unknown words are
    /// logged and ignored.
    pub(crate) fn from_env() -> Self {
        Self::parse(&std::env::var("SECNET_TUNNEL_IO").unwrap_or_default())
    }

    pub(crate) fn parse(spec: &str) -> Self {
        let mut o = Self::default();
        for word in spec.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "no-gso" => o.udp_gso = false,
                "no-gro" => o.udp_gro = false,
                "no-vnet" => o.vnet = false,
                "no-tunnel-gso" => o.tunnel_gso = false,
                "no-uso" => o.uso = false,
                "no-coalesce" => {
                    o.coalesce_tcp = false;
                    o.coalesce_udp = false;
                    o.coalesce_tunnel = false;
                }
                "no-coalesce-udp" => o.coalesce_udp = false,
                "no-coalesce-tunnel" => o.coalesce_tunnel = false,
                "off" => {
                    o = Self {
                        udp_gso: false,
                        udp_gro: false,
                        vnet: false,
                        tunnel_gso: false,
                        uso: false,
                        coalesce_tcp: false,
                        coalesce_udp: false,
                        coalesce_tunnel: false,
                    }
                }
                other => tracing::warn!(word = other, "unknown SECNET_TUNNEL_IO option"),
            }
        }
        o
    }
}

/// The descriptors the I/O thread owns; dropping it closes them (and so removes the device).
pub(crate) struct Io {
    udp: Udp,
    tun: Tun,
    wake: UnixDatagram,
    options: IoOptions,
}

/// What the engine's output goes through between flushes.
struct Outbox {
    datagrams: udp::SendQueue,
    /// Merges what goes to the TUN device, if it takes virtio-net headers.
    coalescer: Option<Coalescer>,
    tun_write_errors: u64,
    /// The kernel refused a tunnel GSO write: merge no more of them.
    tunnel_refused: bool,
}

impl Io {
    pub(crate) fn new(udp: Udp, tun: Tun, wake: UnixDatagram, options: IoOptions) -> Self {
        Self {
            udp,
            tun,
            wake,
            options,
        }
    }

    /// The loop; returns when asked to stop, or on an error poll cannot recover from.
    pub(crate) fn run(self, shared: &Shared) -> io::Result<()> {
        let features = self.tun.features();
        tracing::info!(
            udp_gso = self.udp.gso(),
            udp_gro = self.udp.gro(),
            tun_vnet_hdr = features.vnet_hdr,
            tun_offloads = format_args!("{:#x}", features.offloads),
            "tunnel I/O"
        );
        let mut tun_buf = vec![0u8; TUN_READ_BUF];
        let mut segment_buf = Vec::new();
        let mut wake_buf = [0u8; 64];
        let mut batch = udp::RecvBatch::new();
        let coalesce = CoalesceOptions {
            tcp: self.options.coalesce_tcp,
            // The kernel takes USO writes where it offers USO reads (Linux 6.2+).
            udp: self.options.coalesce_udp && features.offloads & sys::TUN_F_USO4 != 0,
            udp_tunnel: self.options.coalesce_tunnel
                && features.vnet_hdr == offload::VNET_HDR_TUNNEL_LEN,
        };
        let mut outbox = Outbox {
            datagrams: udp::SendQueue::new(),
            coalescer: (features.vnet_hdr > 0 && (coalesce.tcp || coalesce.udp))
                .then(|| Coalescer::new(coalesce)),
            tun_write_errors: 0,
            tunnel_refused: false,
        };
        let mut next_tick = Instant::now() + TICK;
        while !shared.stopping() {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let wait_ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            let (udp_ready, tun_ready, wake_ready) = {
                let readable = PollFlags::POLLIN;
                let mut fds = [
                    PollFd::new(self.udp.as_fd(), readable),
                    PollFd::new(self.tun.as_fd(), readable),
                    PollFd::new(std::os::fd::AsFd::as_fd(&self.wake), readable),
                ];
                match poll(&mut fds, PollTimeout::from(wait_ms)) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                let ready = |fd: &PollFd| {
                    fd.revents()
                        .is_some_and(|r| !r.is_empty() && !r.contains(PollFlags::POLLNVAL))
                };
                (ready(&fds[0]), ready(&fds[1]), ready(&fds[2]))
            };
            if wake_ready {
                while self.wake.recv(&mut wake_buf).is_ok() {}
                if shared.stopping() {
                    break;
                }
            }
            let mut engine = shared.engine();
            if udp_ready {
                self.drain_network(&mut engine, &mut batch, &mut outbox);
            }
            if tun_ready {
                self.drain_tun(&mut engine, &mut tun_buf, &mut segment_buf, &mut outbox);
            }
            let now = Instant::now();
            if now >= next_tick {
                engine.tick(&mut self.sender(&mut outbox));
                // Cheap, and boringtun only resets once a second has passed since the last
                // reset, so calling it every tick gives a reset every 1.0–1.1 s.
                engine.reset_rate_limiter();
                next_tick = now + TICK;
            }
            self.flush(&mut engine, &mut outbox);
        }
        Ok(())
    }

    fn sender<'a>(&'a self, outbox: &'a mut Outbox) -> Sender<'a> {
        Sender {
            udp: &self.udp,
            tun: &self.tun,
            outbox,
        }
    }

    /// Sends the queued datagrams, writes the packet being merged, and books the failures.
    fn flush(&self, engine: &mut Engine, outbox: &mut Outbox) {
        let tun = &self.tun;
        let errors = &mut outbox.tun_write_errors;
        let refused = &mut outbox.tunnel_refused;
        if let Some(coalescer) = outbox.coalescer.as_mut() {
            coalescer.flush(&mut |hdr: &VnetHdr, pkt: &[u8]| {
                write_tun(tun, hdr, pkt, errors, refused);
            });
            if std::mem::take(refused) {
                coalescer.disable_udp_tunnel();
            }
        }
        if !outbox.datagrams.is_empty() {
            outbox.datagrams.flush(&self.udp);
        }
        for (to, bytes) in outbox.datagrams.take_failures() {
            engine.note_unsent(to, bytes);
        }
        engine.note_tun_write_errors(std::mem::take(&mut outbox.tun_write_errors));
    }

    /// Datagrams from the socket, up to [`UDP_BUDGET`].
    fn drain_network(&self, engine: &mut Engine, batch: &mut udp::RecvBatch, outbox: &mut Outbox) {
        let mut handled = 0;
        while handled < UDP_BUDGET {
            match batch.recv(&self.udp) {
                Ok(0) => break,
                Ok(n) => {
                    let mut tx = self.sender(outbox);
                    for (data, from) in batch.datagrams() {
                        engine.handle_datagram(from, data, &mut tx);
                    }
                    // Out before the next batch: the receiving application gets going.
                    self.flush(engine, outbox);
                    handled += n;
                    if batch.messages() < udp::RECV_BATCH {
                        // The socket is drained: spare the call that would say so.
                        break;
                    }
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    // ICMP errors queued on the socket and the like: not fatal.
                    tracing::debug!(error = %e, "UDP receive error");
                    break;
                }
            }
        }
    }

    /// Packets from the TUN device, up to [`TUN_BUDGET`] reads; super-packets are split.
    fn drain_tun(
        &self,
        engine: &mut Engine,
        buf: &mut [u8],
        segment_buf: &mut Vec<u8>,
        outbox: &mut Outbox,
    ) {
        let hdr_len = self.tun.features().vnet_hdr;
        for _ in 0..TUN_BUDGET {
            let n = match self.tun.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "TUN read error");
                    break;
                }
            };
            if n == buf.len() {
                // Larger than any IP packet: truncated, and nothing to route.
                engine.note_no_route();
                continue;
            }
            let mut tx = self.sender(outbox);
            if hdr_len == 0 {
                engine.handle_tun_packet(&buf[..n], &mut tx);
                continue;
            }
            let Some(hdr) = VnetHdr::parse(&buf[..n], hdr_len) else {
                engine.note_no_route();
                continue;
            };
            let pkt = &mut buf[hdr_len..n];
            let split = offload::segment(&hdr, pkt, segment_buf, |segment| {
                engine.handle_tun_packet(segment, &mut tx);
            });
            if let Err(error) = split {
                tracing::debug!(?error, ?hdr, len = n - hdr_len, "TUN packet not split");
                engine.note_no_route();
            }
        }
    }
}

/// Writes one packet to the TUN device, counting failures. A merged VXLAN packet that the
/// kernel refuses (EINVAL: no GSO over UDP tunnels for writes after all) is split again and
/// written piece by piece, and `refused` is set so that no more are merged.
fn write_tun(tun: &Tun, hdr: &VnetHdr, pkt: &[u8], errors: &mut u64, refused: &mut bool) {
    let Err(e) = tun.write(hdr, pkt) else {
        return;
    };
    let tunnel = hdr.gso_type & (offload::GSO_UDP_TUNNEL_IPV4 | offload::GSO_UDP_TUNNEL_IPV6);
    if tunnel != 0 && e.raw_os_error() == Some(nix::libc::EINVAL) {
        tracing::info!("the kernel refuses GSO over UDP tunnels on TUN writes; writing VXLAN packets one by one");
        *refused = true;
        let mut copy = pkt.to_vec();
        let mut scratch = Vec::new();
        let split = offload::segment(hdr, &mut copy, &mut scratch, |piece| {
            if tun.write(&VnetHdr::default(), piece).is_err() {
                *errors += 1;
            }
        });
        if split.is_err() {
            *errors += 1;
        }
        return;
    }
    tracing::trace!(error = %e, ?hdr, len = pkt.len(), "TUN write failed");
    *errors += 1;
}

/// [`Transmit`] into the outbox.
struct Sender<'a> {
    udp: &'a Udp,
    tun: &'a Tun,
    outbox: &'a mut Outbox,
}

impl Transmit for Sender<'_> {
    fn send_datagram(&mut self, datagram: &[u8], to: SocketAddr) -> bool {
        // Failures show up at the flush (`Engine::note_unsent`).
        self.outbox.datagrams.push(self.udp, datagram, to);
        true
    }

    fn write_tun(&mut self, packet: &[u8]) -> bool {
        let tun = self.tun;
        let errors = &mut self.outbox.tun_write_errors;
        let refused = &mut self.outbox.tunnel_refused;
        match self.outbox.coalescer.as_mut() {
            Some(c) => {
                c.push(packet, &mut |hdr: &VnetHdr, pkt: &[u8]| {
                    write_tun(tun, hdr, pkt, errors, refused);
                });
                if std::mem::take(refused) {
                    c.disable_udp_tunnel();
                }
            }
            None => write_tun(tun, &VnetHdr::default(), packet, errors, refused),
        }
        // Failures show up at the flush (`Engine::note_tun_write_errors`).
        true
    }
}

#[cfg(test)]
#[test]
fn io_options_parse() {
    assert_eq!(IoOptions::parse(""), IoOptions::default());
    let o = IoOptions::parse(" no-gso , no-coalesce-tunnel,bogus");
    assert!(!o.udp_gso && !o.coalesce_tunnel);
    assert!(o.udp_gro && o.vnet && o.coalesce_tcp && o.coalesce_udp);
    let off = IoOptions::parse("off");
    assert!(!(off.udp_gso || off.udp_gro || off.vnet || off.tunnel_gso || off.uso));
    assert!(!(off.coalesce_tcp || off.coalesce_udp || off.coalesce_tunnel));
}
