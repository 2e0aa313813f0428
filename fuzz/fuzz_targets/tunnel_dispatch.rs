//! Every datagram anyone can send to the WireGuard port goes through
//! `secnet_tunnel::dispatch::classify` first: it must never panic, must agree with
//! boringtun's own parser on what is a message (so nothing we route is rejected later for
//! its shape, and nothing boringtun would take is dropped), and must follow the
//! type/length table exactly. The index it routes by (`tunn_index`) and the PSK epoch tag
//! it reads (`epoch_tag`) must be exactly the bits the index layout says, and the layout
//! must round-trip.
#![no_main]

use boringtun::noise::{Packet, Tunn};
use libfuzzer_sys::fuzz_target;
use secnet_tunnel::dispatch::{classify, split_tunn_index, tunn_index, Datagram};

fuzz_target!(|data: &[u8]| {
    let ours = classify(data);

    let kind = data
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let expected_kind = match (kind, data.len()) {
        (Some(1), 148) | (Some(2), 92) | (Some(3), 64) => kind,
        (Some(4), n) if n >= 32 => kind,
        _ => None,
    };
    let our_kind = match ours {
        Datagram::HandshakeInit { .. } => Some(1),
        Datagram::HandshakeResponse { .. } => Some(2),
        Datagram::Cookie { .. } => Some(3),
        Datagram::Data { .. } => Some(4),
        Datagram::Garbage => None,
    };
    assert_eq!(our_kind, expected_kind);

    let theirs = Tunn::parse_incoming_packet(data).ok().map(|p| match p {
        Packet::HandshakeInit(_) => (1, None),
        Packet::HandshakeResponse(p) => (2, Some(p.receiver_idx)),
        Packet::PacketCookieReply(p) => (3, Some(p.receiver_idx)),
        Packet::PacketData(p) => (4, Some(p.receiver_idx)),
    });
    let ours_with_receiver = our_kind.map(|k| {
        let receiver = match ours {
            Datagram::HandshakeResponse { receiver }
            | Datagram::Cookie { receiver }
            | Datagram::Data { receiver } => Some(receiver),
            _ => None,
        };
        (k, receiver)
    });
    assert_eq!(ours_with_receiver, theirs);

    if let Some((_, Some(receiver))) = ours_with_receiver {
        assert_eq!(ours.tunn_index(), Some(receiver >> 8));
        assert_eq!(ours.epoch_tag(), Some(((receiver >> 8) & 0xF) as u8));
    } else {
        assert_eq!(ours.tunn_index(), None);
    }
    match ours {
        Datagram::HandshakeInit { sender } => {
            assert_eq!(ours.epoch_tag(), Some(((sender >> 8) & 0xF) as u8));
        }
        Datagram::Garbage => assert_eq!(ours.epoch_tag(), None),
        _ => {}
    }
    if let Some(index) = ours.tunn_index() {
        assert!(index < 1 << 24);
        let (base, tag) = split_tunn_index(index);
        assert_eq!(tunn_index(base, tag), Some(index));
    }
});
