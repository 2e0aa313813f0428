//! The UDP socket: large buffers, `recvmmsg` with UDP GRO (many datagrams of one sender in
//! one buffer, split by the segment size the kernel reports), and a send queue flushed with
//! UDP GSO (runs of equal-sized datagrams to one peer in one `sendmsg`) or `sendmmsg`.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    getsockopt, recvmmsg, sendmmsg, sendmsg, setsockopt, sockopt, ControlMessage,
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage,
};

use super::IoOptions;
use crate::TunnelError;

/// Socket buffer size we ask for (the FORCE variants bypass `net.core.[rw]mem_max` as root).
pub(crate) const SOCKET_BUFFER: usize = 8 << 20;
/// Messages per `recvmmsg` call (each up to 64 KiB with GRO).
pub(crate) const RECV_BATCH: usize = 16;
/// Receive buffer per message: the largest datagram, or a GRO batch of them.
const RECV_BUF: usize = 65_536;
/// How long a send waits for room in a full socket buffer before the datagram is dropped.
const SEND_WAIT_MS: u8 = 5;
/// Most datagrams in one GSO send (the kernel's `UDP_MAX_SEGMENTS` was 64 until 6.9).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send (one IPv4 datagram's worth of UDP payload, with margin).
const GSO_MAX_BYTES: usize = 65_000;
/// Bytes of datagrams queued before the queue flushes itself.
const SEND_QUEUE_BYTES: usize = 256 << 10;
const NO_CMSGS: [ControlMessage<'static>; 0] = [];
/// Messages per `sendmmsg` call when GSO is off.
const SENDMMSG_BATCH: usize = 64;

/// The bound socket and what it can do.
pub(crate) struct Udp {
    socket: UdpSocket,
    /// Whether GSO sends work (turned off for good if the kernel refuses one with EIO).
    gso: std::cell::Cell<bool>,
    gro: bool,
}

impl Udp {
    /// Binds the socket, enlarges its buffers and probes GSO and GRO (off where `options`
    /// say so or the kernel lacks them).
    pub(crate) fn bind(listen: SocketAddr, options: &IoOptions) -> Result<Udp, TunnelError> {
        let socket = UdpSocket::bind(listen).map_err(|source| TunnelError::Bind {
            addr: listen,
            source,
        })?;
        if setsockopt(&socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
            setsockopt(&socket, sockopt::RcvBuf, &SOCKET_BUFFER).map_err(io::Error::from)?;
        }
        if setsockopt(&socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
            setsockopt(&socket, sockopt::SndBuf, &SOCKET_BUFFER).map_err(io::Error::from)?;
        }
        socket.set_nonblocking(true)?;
        // A socket-wide segment size of 0 changes nothing; setting it proves the kernel has
        // UDP_SEGMENT. The size goes with each send instead.
        let gso = options.udp_gso && setsockopt(&socket, sockopt::UdpGsoSegment, &0).is_ok();
        let gro = options.udp_gro && setsockopt(&socket, sockopt::UdpGroSegment, &true).is_ok();
        tracing::debug!(
            %listen,
            gso,
            gro,
            rcvbuf = getsockopt(&socket, sockopt::RcvBuf).unwrap_or(0),
            sndbuf = getsockopt(&socket, sockopt::SndBuf).unwrap_or(0),
            "UDP socket features"
        );
        Ok(Udp {
            socket,
            gso: std::cell::Cell::new(gso),
            gro,
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }

    pub(crate) fn gso(&self) -> bool {
        self.gso.get()
    }

    pub(crate) fn gro(&self) -> bool {
        self.gro
    }

    /// Waits up to [`SEND_WAIT_MS`] for room in the send buffer.
    fn wait_writable(&self) {
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLOUT)];
        let _ = poll(&mut fds, PollTimeout::from(SEND_WAIT_MS));
    }

    /// One `sendmsg`: `data` as one datagram, or as datagrams of `segment` bytes (GSO).
    fn send_one(&self, data: &[u8], to: &SockaddrStorage, segment: Option<u16>) -> nix::Result<()> {
        let iov = [IoSlice::new(data)];
        let fd = self.socket.as_raw_fd();
        let result = match segment.as_ref() {
            Some(size) => sendmsg(
                fd,
                &iov,
                &[ControlMessage::UdpGsoSegments(size)],
                MsgFlags::empty(),
                Some(to),
            ),
            None => sendmsg(fd, &iov, &[], MsgFlags::empty(), Some(to)),
        };
        result.map(drop)
    }
}

/// Buffers for one `recvmmsg` call and what it returned.
pub(crate) struct RecvBatch {
    buffers: Vec<Vec<u8>>,
    /// Per message: bytes, sender, GRO segment size (the datagram size; the last may be
    /// shorter).
    received: Vec<(usize, Option<SocketAddr>, usize)>,
}

impl RecvBatch {
    pub(crate) fn new() -> Self {
        Self {
            buffers: (0..RECV_BATCH).map(|_| vec![0u8; RECV_BUF]).collect(),
            received: Vec::with_capacity(RECV_BATCH),
        }
    }

    /// Receives up to [`RECV_BATCH`] messages without blocking; `EAGAIN` when none wait.
    /// Returns how many datagrams they hold.
    pub(crate) fn recv(&mut self, udp: &Udp) -> nix::Result<usize> {
        self.received.clear();
        // Fresh headers each call: the kernel shrinks each header's address length to the
        // last sender's, and nix does not restore it.
        let cmsg = udp.gro.then(|| nix::cmsg_space!(i32));
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(RECV_BATCH, cmsg);
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let results = recvmmsg(
            udp.socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let mut datagrams = 0;
        for message in results {
            let from = message.address.as_ref().and_then(to_socket_addr);
            let mut segment = message.bytes;
            if let Ok(cmsgs) = message.cmsgs() {
                for cmsg in cmsgs {
                    if let ControlMessageOwned::UdpGroSegments(size) = cmsg {
                        segment = usize::try_from(size).unwrap_or(0);
                    }
                }
            }
            let segment = if segment == 0 { message.bytes } else { segment };
            datagrams += message.bytes.div_ceil(segment.max(1)).max(1);
            self.received.push((message.bytes, from, segment));
        }
        Ok(datagrams)
    }

    /// How many messages the last [`RecvBatch::recv`] returned.
    pub(crate) fn messages(&self) -> usize {
        self.received.len()
    }

    /// The datagrams of the last [`RecvBatch::recv`] whose sender is known, GRO batches
    /// split.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.received
            .iter()
            .zip(&self.buffers)
            .filter_map(|(&(len, from, segment), buf)| Some((buf.get(..len)?, from?, segment)))
            .flat_map(|(data, from, segment)| {
                // An empty datagram is still one (chunks would yield none).
                let pieces: Box<dyn Iterator<Item = &[u8]>> = if data.is_empty() {
                    Box::new(std::iter::once(data))
                } else {
                    Box::new(data.chunks(segment.max(1)))
                };
                pieces.map(move |d| (d, from))
            })
    }
}

fn to_socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// Datagrams waiting to be sent, in order.
pub(crate) struct SendQueue {
    buf: Vec<u8>,
    /// (start in `buf`, length, destination)
    items: Vec<(usize, usize, SocketAddr)>,
    /// Datagrams that could not be sent since the last [`SendQueue::take_failures`].
    failed: Vec<(SocketAddr, usize)>,
}

impl SendQueue {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::with_capacity(SEND_QUEUE_BYTES + RECV_BUF),
            items: Vec::with_capacity(512),
            failed: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues one datagram; sends everything queued first if the queue is full.
    pub(crate) fn push(&mut self, udp: &Udp, datagram: &[u8], to: SocketAddr) {
        if self.buf.len() + datagram.len() > SEND_QUEUE_BYTES {
            self.flush(udp);
        }
        self.items.push((self.buf.len(), datagram.len(), to));
        self.buf.extend_from_slice(datagram);
    }

    /// The datagrams that failed to go out (destination, bytes), to be counted.
    pub(crate) fn take_failures(&mut self) -> Vec<(SocketAddr, usize)> {
        std::mem::take(&mut self.failed)
    }

    /// Where the GSO run starting at item `i` ends: datagrams to one destination, all of
    /// one size but a shorter last one, within the kernel's limits.
    fn run_end(&self, i: usize) -> usize {
        let (_, size, to) = self.items[i];
        let mut end = i + 1;
        let mut total = size;
        while end < self.items.len() && end - i < GSO_MAX_SEGMENTS {
            let (_, next, next_to) = self.items[end];
            if next_to != to || next > size || total + next > GSO_MAX_BYTES {
                break;
            }
            total += next;
            end += 1;
            if next < size {
                break;
            }
        }
        end
    }

    /// Sends everything queued, in order: each GSO run (see [`SendQueue::run_end`]) with one
    /// `sendmsg`, the datagrams between runs with `sendmmsg`.
    pub(crate) fn flush(&mut self, udp: &Udp) {
        let n = self.items.len();
        let mut i = 0;
        while i < n {
            let end = if udp.gso() { self.run_end(i) } else { i + 1 };
            if end - i > 1 {
                let (start, size, to) = self.items[i];
                let (last, last_len, _) = self.items[end - 1];
                let data = &self.buf[start..last + last_len];
                let segment = u16::try_from(size).unwrap_or(u16::MAX);
                match send_retrying(udp, data, &SockaddrStorage::from(to), Some(segment)) {
                    Ok(()) => {}
                    Err(Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT) => {
                        // The device (or kernel) cannot segment: no more GSO; this run goes
                        // out one datagram at a time.
                        tracing::info!(%to, "UDP GSO send refused, sending without GSO from now");
                        udp.gso.set(false);
                        self.send_plain(udp, i, end);
                    }
                    Err(e) => {
                        tracing::trace!(error = %e, %to, "UDP GSO send failed");
                        self.failed
                            .extend(self.items[i..end].iter().map(|&(_, len, to)| (to, len)));
                    }
                }
                i = end;
                continue;
            }
            // Datagrams that start no run, up to the next run: one sendmmsg.
            let mut stop = i + 1;
            while stop < n && (!udp.gso() || self.run_end(stop) == stop + 1) {
                stop += 1;
            }
            self.send_plain(udp, i, stop);
            i = stop;
        }
        self.buf.clear();
        self.items.clear();
    }

    /// Sends items `from..to` one datagram each, `sendmmsg` in batches.
    fn send_plain(&mut self, udp: &Udp, from: usize, to: usize) {
        let mut next = from;
        let mut waited = false;
        while next < to {
            let batch = &self.items[next..to.min(next + SENDMMSG_BATCH)];
            let slices: Vec<[IoSlice<'_>; 1]> = batch
                .iter()
                .map(|&(start, len, _)| [IoSlice::new(&self.buf[start..start + len])])
                .collect();
            let addrs: Vec<Option<SockaddrStorage>> = batch
                .iter()
                .map(|&(_, _, to)| Some(SockaddrStorage::from(to)))
                .collect();
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch.len(), None);
            let sent = sendmmsg(
                udp.socket.as_raw_fd(),
                &mut headers,
                &slices,
                &addrs,
                NO_CMSGS,
                MsgFlags::empty(),
            )
            .map(|r| r.count());
            match sent {
                Ok(n) if n > 0 => {
                    next += n;
                    waited = false;
                }
                Ok(_) | Err(Errno::EAGAIN) if !waited => {
                    udp.wait_writable();
                    waited = true;
                }
                Err(Errno::EINTR) => {}
                other => {
                    // The first datagram of the batch fails (or keeps not fitting): count
                    // it and go on with the rest.
                    if let Err(e) = other {
                        tracing::trace!(error = %e, "UDP send failed");
                    }
                    let (_, len, to) = self.items[next];
                    self.failed.push((to, len));
                    next += 1;
                    waited = false;
                }
            }
        }
    }
}

/// One send, waiting once for room if the buffer is full.
fn send_retrying(
    udp: &Udp,
    data: &[u8],
    to: &SockaddrStorage,
    segment: Option<u16>,
) -> nix::Result<()> {
    loop {
        match udp.send_one(data, to, segment) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                udp.wait_writable();
                return loop {
                    match udp.send_one(data, to, segment) {
                        Err(Errno::EINTR) => continue,
                        other => break other,
                    }
                };
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind() -> Udp {
        Udp::bind("127.0.0.1:0".parse().unwrap(), &IoOptions::default()).unwrap()
    }

    #[test]
    fn buffers_are_as_large_as_asked() {
        let udp = bind();
        // Linux reports twice what was set; without CAP_NET_ADMIN the FORCE variants fail
        // and net.core.[rw]mem_max caps the request.
        let rcv = getsockopt(&udp.socket, sockopt::RcvBuf).unwrap();
        let snd = getsockopt(&udp.socket, sockopt::SndBuf).unwrap();
        if nix::unistd::geteuid().is_root() {
            assert!(rcv >= SOCKET_BUFFER && snd >= SOCKET_BUFFER, "{rcv} {snd}");
        }
        assert!(rcv > 0 && snd > 0);
    }

    /// Runs of equal datagrams go out as GSO sends and come back (GRO or not) as the same
    /// datagrams, in order; so do odd sizes and other destinations between them.
    #[test]
    fn queued_datagrams_arrive_whole_and_in_order() {
        let (a, b, c) = (bind(), bind(), bind());
        let (to_b, to_c) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        let mut sent_b = Vec::new();
        let mut sent_c = Vec::new();
        let mut queue = SendQueue::new();
        for i in 0..200u32 {
            let len = match i % 50 {
                49 => 200,               // a short one ends a run
                7 | 8 => 1 + i as usize, // odd ones between runs
                _ => 1472,
            };
            let d: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
            let to = if i % 37 == 0 { to_c } else { to_b };
            queue.push(&a, &d, to);
            if to == to_b { &mut sent_b } else { &mut sent_c }.push(d);
        }
        queue.flush(&a);
        assert!(queue.take_failures().is_empty());
        for (udp, sent) in [(&b, sent_b), (&c, sent_c)] {
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut messages = 0;
            let mut batch = RecvBatch::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while got.len() < sent.len() && std::time::Instant::now() < deadline {
                match batch.recv(udp) {
                    Ok(_) => {
                        messages += batch.received.len();
                        got.extend(batch.datagrams().map(|(d, _)| d.to_vec()));
                    }
                    Err(Errno::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(5)),
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(got, sent);
            if sent.len() > 100 && a.gso() && b.gro() {
                // GSO sent runs as one, GRO kept them together.
                assert!(messages * 4 < got.len(), "{messages} messages");
            }
        }
    }
}
