//! Talking rtnetlink to the kernel, one namespace at a time.
//!
//! A netlink socket belongs to the network namespace it was created in. Each
//! pass (one [`crate::observe`] or [`crate::apply`]) runs on one short-lived
//! thread, a [`Worker`], that `setns`es into a namespace file, opens a socket
//! there and sends that namespace's requests over it, then moves on to the
//! next namespace; it ends with the pass. The daemon's own threads (and tokio
//! workers) never change namespace, and no process is spawned.
//!
//! The socket is blocking, with a receive timeout. Requests carry sequence
//! numbers; replies to anything else are skipped. Dumps interrupted by a
//! concurrent change (`NLM_F_DUMP_INTR`) are retried. Kernel errors come back
//! as the errno plus the kernel's extended-ack message when it gives one
//! (`Error: Unknown device type.` and the like, as `ip` prints them).
//!
//! Replies are kept as raw payloads: the readers in [`crate::observe`] parse
//! only the attributes they need, so an attribute a newer kernel added or
//! changed cannot make a whole link (or route, or entry) disappear from an
//! observation.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkMessage, NlasIterator, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP,
    NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::model::Layout;

/// Longest the kernel may take to answer one request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the receive buffer: the kernel sends dump datagrams of at most 32 KiB.
const RECV_BUF: usize = 64 * 1024;
/// How often an interrupted dump is tried again before its result is taken as is.
const DUMP_TRIES: usize = 5;
/// `NLMSGERR_ATTR_MSG`: the extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;

/// A failed request: an I/O error on the socket, a kernel error, or a reply
/// that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NlError {
    /// The kernel refused: errno and the extended-ack message, if any.
    Kernel { errno: i32, message: Option<String> },
    /// The socket failed (or timed out).
    Io(String),
    /// A reply that is not valid netlink.
    Decode(String),
}

impl NlError {
    /// The errno of a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NlError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NlError::Kernel { errno, message } => {
                write!(f, "{}", io::Error::from_raw_os_error(*errno))?;
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            NlError::Io(e) => write!(f, "netlink socket: {e}"),
            NlError::Decode(e) => write!(f, "unreadable netlink reply: {e}"),
        }
    }
}

impl From<io::Error> for NlError {
    fn from(e: io::Error) -> NlError {
        if e.kind() == io::ErrorKind::WouldBlock {
            NlError::Io(format!("no reply within {}s", REPLY_TIMEOUT.as_secs()))
        } else {
            NlError::Io(e.to_string())
        }
    }
}

/// One message of a reply: its type and its payload (the bytes after the
/// netlink header).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub kind: u16,
    pub payload: Vec<u8>,
}

/// Parses the extended-ack message out of the payload of an `NLMSG_ERROR`
/// (after the errno): the echoed request (just its header when capped), then
/// attributes.
fn ext_ack_message(flags: u16, after_errno: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = after_errno.get(..4)?;
        let len = u32::from_ne_bytes([len[0], len[1], len[2], len[3]]) as usize;
        (len + 3) & !3
    };
    let tlvs = after_errno.get(echoed..)?;
    NlasIterator::new(tlvs)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            String::from_utf8_lossy(nla.value())
                .trim_end_matches('\0')
                .trim()
                .to_string()
        })
        .filter(|m| !m.is_empty())
}

/// A netlink route socket in one namespace.
pub(crate) struct Conn {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
    /// Link name -> ifindex, dropped whenever a request changes links.
    indexes: HashMap<String, u32>,
}

impl Conn {
    /// Opens a route socket in the calling thread's namespace.
    pub fn open() -> io::Result<Conn> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Both are best effort: older kernels lack them, replies stay readable.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        setsockopt(
            &socket,
            sockopt::ReceiveTimeout,
            &TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0),
        )
        .map_err(io::Error::from)?;
        Ok(Conn {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
            indexes: HashMap::new(),
        })
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32, NlError> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = NetlinkMessage::from(message);
        msg.header.flags = NLM_F_REQUEST | flags;
        msg.header.sequence_number = self.seq;
        msg.finalize();
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Sends `message` and reads the replies up to its end: the ack (or error)
    /// of a request, the `NLMSG_DONE` of a dump. Returns the data messages and
    /// whether a dump was interrupted.
    fn exchange(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(Vec<Reply>, bool), NlError> {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let seq = self.send(message, flags)?;
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            self.buf.clear();
            let n = self
                .socket
                .recv(&mut self.buf, nix::libc::MSG_TRUNC)
                .map_err(NlError::from)?;
            if n > self.buf.len() {
                return Err(NlError::Decode(format!(
                    "a {n}-byte datagram does not fit the {RECV_BUF}-byte buffer"
                )));
            }
            let mut offset = 0;
            while offset < self.buf.len() {
                let nl = NetlinkBuffer::new_checked(&self.buf[offset..])
                    .map_err(|e| NlError::Decode(e.to_string()))?;
                let len = nl.length() as usize;
                offset += (len + 3) & !3;
                if nl.sequence_number() != seq {
                    continue; // a late reply to an earlier (timed out) request
                }
                if nl.flags() & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match nl.message_type() {
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => return Err(NlError::Decode("overrun".into())),
                    NLMSG_ERROR => {
                        let payload = nl.payload();
                        let code = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .ok_or_else(|| NlError::Decode("short error message".into()))?;
                        return match code {
                            0 => Ok((replies, interrupted)),
                            code => Err(NlError::Kernel {
                                errno: code.abs(),
                                message: ext_ack_message(nl.flags(), &payload[4..]),
                            }),
                        };
                    }
                    NLMSG_DONE if dump => {
                        // A dump that failed half-way ends with a negative errno.
                        let code = nl
                            .payload()
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if code < 0 {
                            let after = nl.payload().get(4..).unwrap_or(&[]);
                            return Err(NlError::Kernel {
                                errno: -code,
                                message: ext_ack_message(nl.flags(), after),
                            });
                        }
                        return Ok((replies, interrupted));
                    }
                    kind => replies.push(Reply {
                        kind,
                        payload: nl.payload().to_vec(),
                    }),
                }
            }
        }
    }

    /// A request that changes something: waits for the kernel's ack.
    pub fn ack(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<(), NlError> {
        if matches!(
            message,
            RouteNetlinkMessage::NewLink(_)
                | RouteNetlinkMessage::SetLink(_)
                | RouteNetlinkMessage::DelLink(_)
        ) {
            self.indexes.clear();
        }
        self.exchange(message, NLM_F_ACK | flags).map(|_| ())
    }

    /// A dump; retried while the kernel reports it interrupted.
    pub fn dump(&mut self, message: RouteNetlinkMessage) -> Result<Vec<Reply>, NlError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let (replies, interrupted) = self.exchange(message.clone(), NLM_F_DUMP)?;
            if !interrupted || tries >= DUMP_TRIES {
                return Ok(replies);
            }
        }
    }

    /// The ifindex of link `name` in this namespace.
    pub fn index(&mut self, name: &str) -> Result<u32, NlError> {
        if let Some(i) = self.indexes.get(name) {
            return Ok(*i);
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let (replies, _) = self.exchange(RouteNetlinkMessage::GetLink(msg), NLM_F_ACK)?;
        let index = replies
            .iter()
            .find_map(|r| {
                netlink_packet_route::link::LinkHeader::parse(&r.payload)
                    .ok()
                    .map(|h| h.index)
            })
            .ok_or_else(|| NlError::Decode(format!("no link message for {name}")))?;
        self.indexes.insert(name.to_string(), index);
        Ok(index)
    }
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    /// The host namespace: [`Layout::host_netns`], or the calling thread's.
    Host,
    /// A namespace file under `<run_dir>/netns/`.
    Ns(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host => write!(f, "the host namespace"),
            Target::Ns(ns) => write!(f, "namespace {ns}"),
        }
    }
}

/// The thread a pass runs on: enters namespaces one after the other, with one
/// socket in each.
pub(crate) struct Worker<'a> {
    layout: &'a Layout,
    /// The namespace the worker started in (the caller's).
    origin: File,
    current: Option<(Target, Conn)>,
    /// Whether the thread is (still, or back) in its original namespace.
    at_origin: bool,
    /// Sockets opened so far.
    pub sockets: usize,
}

impl Worker<'_> {
    fn path(&self, target: &Target) -> Option<PathBuf> {
        match target {
            Target::Host => self.layout.host_netns.clone(),
            Target::Ns(ns) => Some(self.layout.ns_path(ns)),
        }
    }

    /// The socket for `target`, entering its namespace first if the worker is
    /// elsewhere.
    pub fn enter(&mut self, target: &Target) -> Result<&mut Conn, String> {
        let same = matches!(&self.current, Some((t, _)) if t == target);
        if !same {
            self.current = None;
            match self.path(target) {
                Some(path) => {
                    self.at_origin = false;
                    enter_file(&path)
                        .map_err(|e| format!("cannot enter {}: {e}", path.display()))?;
                }
                None if self.at_origin => {}
                None => {
                    setns(&self.origin, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("cannot return to the host namespace: {e}"))?;
                    self.at_origin = true;
                }
            }
            let conn = Conn::open()
                .map_err(|e| format!("cannot open a netlink socket in {target}: {e}"))?;
            self.sockets += 1;
            self.current = Some((target.clone(), conn));
        }
        match &mut self.current {
            Some((_, conn)) => Ok(conn),
            None => Err(format!("no netlink socket in {target}")),
        }
    }

    /// Closes the socket and goes back to the original namespace, so that
    /// the worker keeps no namespace alive (before one is deleted).
    pub fn leave(&mut self) {
        self.current = None;
        if !self.at_origin && setns(&self.origin, CloneFlags::CLONE_NEWNET).is_ok() {
            self.at_origin = true;
        }
    }
}

fn enter_file(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    setns(&f, CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

/// Runs `f` on a fresh worker thread (which may change namespace as it
/// likes; it ends with `f`).
pub(crate) fn with_worker<T: Send>(
    layout: &Layout,
    f: impl FnOnce(&mut Worker<'_>) -> T + Send,
) -> io::Result<T> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("secnet-netlink".into())
            .spawn_scoped(s, move || -> io::Result<T> {
                let origin = File::open("/proc/thread-self/ns/net")?;
                let mut worker = Worker {
                    layout,
                    origin,
                    current: None,
                    at_origin: true,
                    sockets: 0,
                };
                let out = f(&mut worker);
                tracing::trace!(sockets = worker.sockets, "netlink pass done");
                Ok(out)
            })?;
        handle
            .join()
            .map_err(|_| io::Error::other("the netlink worker thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_text() {
        // Capped: the echoed header (16 bytes), then NLMSGERR_ATTR_MSG.
        let mut after = vec![0u8; NLMSG_HDRLEN];
        let text = b"Unknown device type\0";
        let len = (4 + text.len()) as u16;
        after.extend_from_slice(&len.to_ne_bytes());
        after.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        after.extend_from_slice(text);
        while after.len() % 4 != 0 {
            after.push(0);
        }
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &after).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &after), None);
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS, &[1, 2]), None);
    }

    #[test]
    fn kernel_errors_read_like_ip() {
        let e = NlError::Kernel {
            errno: 17,
            message: None,
        };
        assert_eq!(e.to_string(), "File exists (os error 17)");
        let e = NlError::Kernel {
            errno: 22,
            message: Some("Invalid MTU".into()),
        };
        assert!(e.to_string().ends_with("(Invalid MTU)"), "{e}");
        assert_eq!(e.errno(), Some(22));
    }
}
