//! Classifying a UDP datagram before any cryptography touches it.
//!
//! Pure: bytes in, a [`Datagram`] out; no keys, no state, no allocation. It decides which
//! peer's `Tunn` (if any) a datagram goes to, so it runs on every byte an attacker can send
//! to the data-path port. It is property-tested and fuzzed (`fuzz/fuzz_targets/tunnel_dispatch.rs`)
//! to never panic, and it accepts exactly what boringtun's own parser
//! (`Tunn::parse_incoming_packet`) accepts, so nothing we route is rejected later for its shape
//! and nothing boringtun would take is dropped here:
//!
//! | type | message | length |
//! |---|---|---|
//! | 1 | handshake initiation | exactly 148 |
//! | 2 | handshake response | exactly 92 |
//! | 3 | cookie reply | exactly 64 |
//! | 4 | transport data | 32 or more (16-byte header + 16-byte tag; 32 is a keepalive) |
//!
//! The type is the first four bytes as a little-endian `u32`, so the three "reserved" bytes
//! must be zero. Data messages need no 16-byte alignment: the WireGuard paper pads the
//! plaintext to a multiple of 16, but boringtun 0.7.1 does not pad what it sends (see the TODO
//! in its `session.rs`), and the padding may stop at the MTU anyway, so requiring alignment
//! would drop valid traffic.
//!
//! # Indices
//!
//! Sender and receiver indices are the value boringtun put in the packet: the `Tunn`'s
//! 24-bit index shifted left 8 bits, the low 8 bits counting that `Tunn`'s sessions
//! (boringtun 0.7.1, `Tunn::new` passes `index << 8` to its handshake, whose `inc_index`
//! only ever changes the low byte). We split our 24-bit `Tunn` index once more:
//!
//! ```text
//!  31                     12 11    8 7        0
//! +-------------------------+-------+----------+
//! |   base (20 bits)        |  tag  | session  |   wire index
//! +-------------------------+-------+----------+
//!  `------- Tunn index (24 bits) ---'
//! ```
//!
//! The base names one peer and one pair of static keys (ours, theirs); the tag is the low
//! 4 bits of the PSK epoch that `Tunn` uses ([`epoch_tag`]). A data message, response or
//! cookie names its `Tunn` exactly ([`Datagram::tunn_index`]). An *initiation* carries only
//! the initiator's sender index, but that index carries the initiator's tag
//! ([`Datagram::epoch_tag`]): the responder needs it because WireGuard mixes the PSK in only
//! at the response (IKpsk2), so nothing else in the initiation says which PSK the initiator
//! will expect. The tag is not authenticated (nor is the sender index in WireGuard): a wrong
//! tag only makes the responder use a PSK the initiator does not have, and that handshake
//! fails. A captured initiation re-tagged for another epoch is new to that epoch's `Tunn`
//! (boringtun's replay check, the TAI64N timestamp, is per `Tunn`), so it costs the responder
//! one handshake and a response, as a replay to a freshly made `Tunn` does; it cannot
//! complete the handshake without the initiator's ephemeral key.
//!
//! Four bits suffice because a ring holds at most a handful of keys whose epochs are
//! consecutive (the cluster ring: at most three), so no two of them share a tag; the tunnel
//! rejects a ring in which two do.

/// Message type 1: handshake initiation.
pub const HANDSHAKE_INIT: u32 = 1;
/// Message type 2: handshake response.
pub const HANDSHAKE_RESPONSE: u32 = 2;
/// Message type 3: cookie reply.
pub const COOKIE_REPLY: u32 = 3;
/// Message type 4: transport data.
pub const DATA: u32 = 4;

/// Exact length of a handshake initiation.
pub const HANDSHAKE_INIT_LEN: usize = 148;
/// Exact length of a handshake response.
pub const HANDSHAKE_RESPONSE_LEN: usize = 92;
/// Exact length of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 64;
/// Smallest transport data message (a keepalive: header and tag, no payload).
pub const DATA_MIN_LEN: usize = 32;

/// What a datagram claims to be, judged by type and length only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram {
    /// A handshake initiation: the sender is found by decrypting its static key
    /// (`parse_handshake_anon`), after the MAC and rate-limit checks.
    HandshakeInit {
        /// The initiator's index (where our response goes).
        sender: u32,
    },
    /// A handshake response to one of our initiations.
    HandshakeResponse {
        /// Our index, as we sent it in the initiation.
        receiver: u32,
    },
    /// A cookie reply to one of our handshake messages (the peer is under load).
    Cookie {
        /// Our index, as we sent it in the handshake message.
        receiver: u32,
    },
    /// Transport data (or a keepalive) for one of our sessions.
    Data {
        /// Our index for the session.
        receiver: u32,
    },
    /// Anything else: an unknown type, non-zero reserved bytes, or a wrong length.
    Garbage,
}

/// Bits of a `Tunn` index that carry the PSK epoch tag.
pub const EPOCH_TAG_BITS: u32 = 4;
/// Bits of a `Tunn` index that carry the base (peer and key pair).
pub const INDEX_BASE_BITS: u32 = 24 - EPOCH_TAG_BITS;
/// One more than the largest base.
pub const INDEX_BASES: u32 = 1 << INDEX_BASE_BITS;
const TAG_MASK: u32 = (1 << EPOCH_TAG_BITS) - 1;

/// The tag of a PSK epoch: its low 4 bits.
pub fn epoch_tag(epoch: u64) -> u8 {
    (epoch & u64::from(TAG_MASK)) as u8
}

/// The 24-bit `Tunn` index for `base` and `tag`; `None` if either is out of range.
pub fn tunn_index(base: u32, tag: u8) -> Option<u32> {
    (base < INDEX_BASES && u32::from(tag) <= TAG_MASK)
        .then(|| base << EPOCH_TAG_BITS | u32::from(tag))
}

/// The (base, tag) of a `Tunn` index (bits above the 24th are ignored).
pub fn split_tunn_index(index: u32) -> (u32, u8) {
    (
        (index >> EPOCH_TAG_BITS) & (INDEX_BASES - 1),
        (index & TAG_MASK) as u8,
    )
}

impl Datagram {
    /// Which of our `Tunn`s the datagram names (`receiver >> 8`, 24 bits); `None` for
    /// initiations (they name no receiver) and garbage.
    pub fn tunn_index(&self) -> Option<u32> {
        match *self {
            Datagram::HandshakeResponse { receiver }
            | Datagram::Cookie { receiver }
            | Datagram::Data { receiver } => Some(receiver >> 8),
            Datagram::HandshakeInit { .. } | Datagram::Garbage => None,
        }
    }

    /// The PSK epoch tag the datagram's index carries: for an initiation the initiator's
    /// (which PSK it used), otherwise ours (which of our `Tunn`s it names). `None` for
    /// garbage.
    pub fn epoch_tag(&self) -> Option<u8> {
        match *self {
            Datagram::HandshakeInit { sender: index }
            | Datagram::HandshakeResponse { receiver: index }
            | Datagram::Cookie { receiver: index }
            | Datagram::Data { receiver: index } => Some(split_tunn_index(index >> 8).1),
            Datagram::Garbage => None,
        }
    }
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(field))
}

/// Classifies one datagram. Never panics, for any input.
pub fn classify(datagram: &[u8]) -> Datagram {
    let Some(kind) = le_u32(datagram, 0) else {
        return Datagram::Garbage;
    };
    let len = datagram.len();
    let field = |at| le_u32(datagram, at);
    let classified = match (kind, len) {
        (HANDSHAKE_INIT, HANDSHAKE_INIT_LEN) => {
            field(4).map(|sender| Datagram::HandshakeInit { sender })
        }
        (HANDSHAKE_RESPONSE, HANDSHAKE_RESPONSE_LEN) => {
            field(8).map(|receiver| Datagram::HandshakeResponse { receiver })
        }
        (COOKIE_REPLY, COOKIE_REPLY_LEN) => field(4).map(|receiver| Datagram::Cookie { receiver }),
        (DATA, DATA_MIN_LEN..) => field(4).map(|receiver| Datagram::Data { receiver }),
        _ => None,
    };
    classified.unwrap_or(Datagram::Garbage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use boringtun::noise::{Packet, Tunn};
    use proptest::prelude::*;

    fn message(kind: u32, len: usize, index_at: usize, index: u32) -> Vec<u8> {
        let mut m = vec![0xAB; len];
        m[..4].copy_from_slice(&kind.to_le_bytes());
        m[index_at..index_at + 4].copy_from_slice(&index.to_le_bytes());
        m
    }

    #[test]
    fn each_message_kind() {
        assert_eq!(
            classify(&message(1, 148, 4, 7)),
            Datagram::HandshakeInit { sender: 7 }
        );
        assert_eq!(
            classify(&message(2, 92, 8, 0x1234_5601)),
            Datagram::HandshakeResponse {
                receiver: 0x1234_5601
            }
        );
        assert_eq!(
            classify(&message(3, 64, 4, 0x100)),
            Datagram::Cookie { receiver: 0x100 }
        );
        assert_eq!(
            classify(&message(4, 32, 4, 0xFFFF_FFFF)),
            Datagram::Data {
                receiver: 0xFFFF_FFFF
            }
        );
        // Unpadded data (boringtun does not pad) is still data.
        assert_eq!(
            classify(&message(4, 32 + 21, 4, 9)),
            Datagram::Data { receiver: 9 }
        );
    }

    #[test]
    fn wrong_lengths_and_types_are_garbage() {
        for (kind, len) in [
            (1, 147),
            (1, 149),
            (2, 91),
            (2, 93),
            (3, 63),
            (3, 65),
            (4, 31),
        ] {
            assert_eq!(classify(&message(kind, len, 4, 0)), Datagram::Garbage);
        }
        for kind in [0, 5, 0xFF, 0x0100_0001, 0x0000_0104] {
            assert_eq!(classify(&message(kind, 148, 4, 0)), Datagram::Garbage);
        }
        assert_eq!(classify(&[]), Datagram::Garbage);
        assert_eq!(classify(&[4, 0, 0]), Datagram::Garbage);
    }

    #[test]
    fn tunn_index_drops_the_session_byte() {
        assert_eq!(
            Datagram::Data {
                receiver: 0x00AB_CD17
            }
            .tunn_index(),
            Some(0xABCD)
        );
        assert_eq!(Datagram::HandshakeInit { sender: 5 }.tunn_index(), None);
        assert_eq!(Datagram::Garbage.tunn_index(), None);
    }

    #[test]
    fn epoch_tags_from_both_kinds_of_index() {
        let index = tunn_index(0xF_FFFF, 0xA).unwrap();
        assert_eq!(index, 0xFF_FFFA);
        assert_eq!(
            Datagram::HandshakeInit {
                sender: index << 8 | 0x33
            }
            .epoch_tag(),
            Some(0xA)
        );
        assert_eq!(
            Datagram::Cookie {
                receiver: index << 8
            }
            .epoch_tag(),
            Some(0xA)
        );
        assert_eq!(Datagram::Garbage.epoch_tag(), None);
        assert_eq!(epoch_tag(0x1_0000_0013), 3);
        assert_eq!(tunn_index(INDEX_BASES, 0), None);
        assert_eq!(tunn_index(1, 16), None);
    }

    /// The datagrams a real boringtun produces classify as what they are.
    #[test]
    fn real_handshake_messages() {
        use boringtun::noise::TunnResult;
        use boringtun::x25519::{PublicKey, StaticSecret};
        let a = StaticSecret::from([1u8; 32]);
        let b = StaticSecret::from([2u8; 32]);
        let index_a = tunn_index(0x4, 0x2).unwrap();
        let index_b = tunn_index(0xF_FFFF, 0xF).unwrap();
        let mut ta = Tunn::new(a.clone(), PublicKey::from(&b), None, None, index_a, None);
        let mut tb = Tunn::new(b, PublicKey::from(&a), None, None, index_b, None);
        let mut buf = vec![0u8; 2048];
        let TunnResult::WriteToNetwork(init) = ta.format_handshake_initiation(&mut buf, false)
        else {
            panic!("no initiation");
        };
        let init = init.to_vec();
        assert!(matches!(classify(&init), Datagram::HandshakeInit { .. }));
        assert_eq!(classify(&init).epoch_tag(), Some(0x2), "A's tag");
        let TunnResult::WriteToNetwork(resp) = tb.decapsulate(None, &init, &mut buf) else {
            panic!("no response");
        };
        let resp = resp.to_vec();
        assert_eq!(
            classify(&resp).tunn_index(),
            Some(index_a),
            "response names A's index"
        );
        let TunnResult::WriteToNetwork(keepalive) = ta.decapsulate(None, &resp, &mut buf) else {
            panic!("no keepalive");
        };
        let keepalive = keepalive.to_vec();
        assert_eq!(classify(&keepalive).tunn_index(), Some(index_b));
        assert_eq!(classify(&keepalive).epoch_tag(), Some(0xF));
        assert!(matches!(classify(&keepalive), Datagram::Data { .. }));
    }

    fn boringtun_kind(bytes: &[u8]) -> Option<(u32, Option<u32>)> {
        Some(match Tunn::parse_incoming_packet(bytes).ok()? {
            Packet::HandshakeInit(_) => (HANDSHAKE_INIT, None),
            Packet::HandshakeResponse(p) => (HANDSHAKE_RESPONSE, Some(p.receiver_idx)),
            Packet::PacketCookieReply(p) => (COOKIE_REPLY, Some(p.receiver_idx)),
            Packet::PacketData(p) => (DATA, Some(p.receiver_idx)),
        })
    }

    fn ours(d: Datagram) -> Option<(u32, Option<u32>)> {
        Some(match d {
            Datagram::HandshakeInit { .. } => (HANDSHAKE_INIT, None),
            Datagram::HandshakeResponse { receiver } => (HANDSHAKE_RESPONSE, Some(receiver)),
            Datagram::Cookie { receiver } => (COOKIE_REPLY, Some(receiver)),
            Datagram::Data { receiver } => (DATA, Some(receiver)),
            Datagram::Garbage => return None,
        })
    }

    /// Datagrams that look like WireGuard messages: a plausible type, a length near the
    /// interesting ones, random contents.
    fn near_messages() -> impl Strategy<Value = Vec<u8>> {
        let kind = prop_oneof![0u32..6, any::<u32>()];
        let len = prop_oneof![
            Just(148usize),
            Just(92),
            Just(64),
            Just(32),
            0usize..200,
            140usize..160,
            28usize..40,
        ];
        (kind, len, any::<u64>()).prop_map(|(kind, len, seed)| {
            let mut v: Vec<u8> = (0..len)
                .map(|i| (seed.rotate_left(i as u32 % 64) as u8) ^ (i as u8))
                .collect();
            if len >= 4 {
                v[..4].copy_from_slice(&kind.to_le_bytes());
            }
            v
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let d = classify(&bytes);
            let _ = (d.tunn_index(), d.epoch_tag());
        }

        #[test]
        fn index_encoding_round_trips(base in 0..INDEX_BASES, tag in 0u8..16, session: u8) {
            let index = tunn_index(base, tag).unwrap();
            prop_assert!(index < 1 << 24);
            prop_assert_eq!(split_tunn_index(index), (base, tag));
            // What boringtun puts on the wire, and what we read back from it.
            let wire = index << 8 | u32::from(session);
            prop_assert_eq!(Datagram::Data { receiver: wire }.tunn_index(), Some(index));
            prop_assert_eq!(Datagram::HandshakeInit { sender: wire }.epoch_tag(), Some(tag));
            prop_assert_eq!(Datagram::Data { receiver: wire }.epoch_tag(), Some(tag));
        }

        #[test]
        fn every_epoch_has_a_tag_below_16(epoch: u64, base in 0..INDEX_BASES) {
            let tag = epoch_tag(epoch);
            prop_assert!(tag < 16);
            prop_assert_eq!(epoch_tag(epoch.wrapping_add(16)), tag);
            prop_assert!(tunn_index(base, tag).is_some());
        }

        #[test]
        fn out_of_range_parts_are_refused(base in INDEX_BASES.., tag in 16u8..) {
            prop_assert_eq!(tunn_index(base, 0), None);
            prop_assert_eq!(tunn_index(0, tag), None);
        }

        #[test]
        fn agrees_with_boringtun_parser(bytes in near_messages()) {
            prop_assert_eq!(ours(classify(&bytes)), boringtun_kind(&bytes));
        }

        #[test]
        fn classification_follows_type_and_length(bytes in near_messages()) {
            let kind = (bytes.len() >= 4).then(|| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
            let expected = match (kind, bytes.len()) {
                (Some(1), 148) | (Some(2), 92) | (Some(3), 64) => kind,
                (Some(4), n) if n >= 32 => kind,
                _ => None,
            };
            prop_assert_eq!(ours(classify(&bytes)).map(|(k, _)| k), expected);
        }
    }
}
