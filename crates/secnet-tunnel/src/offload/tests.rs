//! Segmentation and coalescing, checked against an independent checksum: split (GSO) then
//! merge (GRO) then split again gives back the very same packets, byte for byte.

use super::*;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// An independent checksum: 16-bit words one at a time, folded as we go.

fn reference_sum(parts: &[&[u8]]) -> u32 {
    let bytes: Vec<u8> = parts.concat();
    let mut acc: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = (u32::from(pair[0]) << 8) | u32::from(*pair.get(1).unwrap_or(&0));
        acc += word;
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

fn ipv4_header_ok(ip: &[u8]) -> bool {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    reference_sum(&[&ip[..ihl]]) == 0xffff
}

/// Whether the transport checksum of `pkt[l4..]` under the IP header at `nh` is right.
fn l4_ok(pkt: &[u8], nh: usize, l4: usize, proto: u8) -> bool {
    let ip = &pkt[nh..];
    let len = pkt.len() - l4;
    let pseudo: Vec<u8> = if ip[0] >> 4 == 6 {
        [
            &ip[8..40],
            &(len as u32).to_be_bytes()[..],
            &[0, 0, 0, proto][..],
        ]
        .concat()
    } else {
        [
            &ip[12..20],
            &[0, proto][..],
            &(len as u16).to_be_bytes()[..],
        ]
        .concat()
    };
    reference_sum(&[&pseudo, &pkt[l4..]]) == 0xffff
}

// ---------------------------------------------------------------------------------------
// Packet builders.

const A4: [u8; 4] = [10, 77, 0, 1];
const B4: [u8; 4] = [10, 77, 0, 2];
const A6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

#[derive(Debug, Clone)]
struct Ip {
    v6: bool,
    id: u16,
    df: bool,
    ttl: u8,
    tos: u8,
}

impl Ip {
    fn v4(id: u16) -> Ip {
        Ip {
            v6: false,
            id,
            df: true,
            ttl: 64,
            tos: 0,
        }
    }
}

/// An IP packet around `body`, with a correct header checksum.
fn ip_packet(ip: &Ip, src: &[u8], dst: &[u8], proto: u8, body: &[u8]) -> Vec<u8> {
    if ip.v6 {
        let mut p = vec![0x60 | (ip.tos >> 4), ip.tos << 4, 0, 0];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend_from_slice(&[proto, ip.ttl]);
        p.extend_from_slice(src);
        p.extend_from_slice(dst);
        p.extend_from_slice(body);
        p
    } else {
        let mut p = vec![0x45, ip.tos];
        p.extend_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        p.extend_from_slice(&ip.id.to_be_bytes());
        p.extend_from_slice(&[if ip.df { 0x40 } else { 0 }, 0, ip.ttl, proto, 0, 0]);
        p.extend_from_slice(src);
        p.extend_from_slice(dst);
        p.extend_from_slice(body);
        ipv4_header_checksum(&mut p);
        p
    }
}

#[derive(Debug, Clone)]
struct Tcp {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: Vec<u8>,
}

impl Tcp {
    fn header(&self) -> Vec<u8> {
        let len = 20 + self.options.len();
        let mut h = Vec::with_capacity(len);
        h.extend_from_slice(&self.sport.to_be_bytes());
        h.extend_from_slice(&self.dport.to_be_bytes());
        h.extend_from_slice(&self.seq.to_be_bytes());
        h.extend_from_slice(&self.ack.to_be_bytes());
        h.push(((len / 4) as u8) << 4);
        h.push(self.flags);
        h.extend_from_slice(&self.window.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0]);
        h.extend_from_slice(&self.options);
        h
    }
}

fn tcp(seq: u32, flags: u8, options: Vec<u8>) -> Tcp {
    Tcp {
        sport: 40000,
        dport: 5201,
        seq,
        ack: 0x1234_5678,
        flags,
        window: 502,
        options,
    }
}

fn addrs(v6: bool) -> (&'static [u8], &'static [u8]) {
    if v6 {
        (&A6, &B6)
    } else {
        (&A4, &B4)
    }
}

/// A complete TCP packet with correct checksums.
fn tcp_packet(ip: &Ip, t: &Tcp, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = addrs(ip.v6);
    let body = [t.header(), payload.to_vec()].concat();
    let mut p = ip_packet(ip, src, dst, PROTO_TCP, &body);
    let l4 = if ip.v6 { 40 } else { 20 };
    l4_checksum(&mut p, 0, l4, PROTO_TCP);
    p
}

/// A complete UDP packet with correct checksums.
fn udp_packet(ip: &Ip, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = addrs(ip.v6);
    let mut body = Vec::new();
    body.extend_from_slice(&sport.to_be_bytes());
    body.extend_from_slice(&dport.to_be_bytes());
    body.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(payload);
    let mut p = ip_packet(ip, src, dst, PROTO_UDP, &body);
    let l4 = if ip.v6 { 40 } else { 20 };
    l4_checksum(&mut p, 0, l4, PROTO_UDP);
    p
}

/// What the kernel hands the TUN device for a TSO/USO packet: one header, the whole payload,
/// the transport checksum left as the pseudo-header sum.
fn super_packet(pkt: Vec<u8>, proto: u8, mss: u16) -> (VnetHdr, Vec<u8>) {
    let v6 = pkt[0] >> 4 == 6;
    let l4 = if v6 { 40 } else { 20 };
    let (th, csum_offset) = if proto == PROTO_TCP {
        (usize::from(pkt[l4 + 12] >> 4) * 4, 16)
    } else {
        (8, 6)
    };
    let mut pkt = pkt;
    let len = pkt.len() - l4;
    let (src, dst) = addresses(&pkt);
    let partial = fold(pseudo_sum(src, dst, proto, len));
    put16(&mut pkt, l4 + csum_offset, partial);
    let gso_type = match (proto, v6) {
        (PROTO_TCP, false) => GSO_TCPV4,
        (PROTO_TCP, true) => GSO_TCPV6,
        _ => GSO_UDP_L4,
    };
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type,
        hdr_len: (l4 + th) as u16,
        gso_size: mss,
        csum_start: l4 as u16,
        csum_offset: csum_offset as u16,
        outer_th: 0,
        inner_nh: 0,
    };
    (hdr, pkt)
}

/// An outer IPv4/UDP/VXLAN/Ethernet wrapper around `inner` (outer checksum left 0).
fn vxlan_wrap(inner: &[u8], outer_id: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&51234u16.to_be_bytes());
    body.extend_from_slice(&4789u16.to_be_bytes());
    body.extend_from_slice(&((8 + 8 + 14 + inner.len()) as u16).to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&[0x08, 0, 0, 0, 0, 0x10, 0x68, 0]); // VXLAN, VNI 4200
    body.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]); // Ethernet
    body.extend_from_slice(inner);
    let mut outer = Ip::v4(outer_id);
    outer.df = false;
    ip_packet(&outer, &[100, 96, 0, 1], &[100, 96, 0, 2], PROTO_UDP, &body)
}

const VXLAN_INNER_NH: usize = 20 + 8 + 8 + 14;

fn split(hdr: &VnetHdr, pkt: &[u8]) -> Result<Vec<Vec<u8>>, SegmentError> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let mut pkt = pkt.to_vec();
    segment(hdr, &mut pkt, &mut scratch, |s| out.push(s.to_vec()))?;
    Ok(out)
}

fn coalesce(pkts: &[Vec<u8>], options: CoalesceOptions) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut c = Coalescer::new(options);
    let mut out = Vec::new();
    let mut write = |h: &VnetHdr, p: &[u8]| out.push((*h, p.to_vec()));
    for p in pkts {
        c.push(p, &mut write);
    }
    c.flush(&mut write);
    out
}

fn resplit(units: &[(VnetHdr, Vec<u8>)]) -> Vec<Vec<u8>> {
    units
        .iter()
        .flat_map(|(h, p)| split(h, p).expect("a merged packet splits again"))
        .collect()
}

const BOTH: CoalesceOptions = CoalesceOptions {
    tcp: true,
    udp: true,
    udp_tunnel: false,
};

const ALL: CoalesceOptions = CoalesceOptions {
    tcp: true,
    udp: true,
    udp_tunnel: true,
};

/// A packet as the receiving stack sees it after the VXLAN device: outer IPv4 options
/// dropped (lengths and header checksum fixed), outer UDP checksum cleared.
fn normalize(p: &[u8]) -> Vec<u8> {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let mut n = [&p[..20], &p[ihl..]].concat();
    n[0] = 0x45;
    let len = n.len() as u16;
    put16(&mut n, 2, len);
    ipv4_header_checksum(&mut n);
    if n[9] == PROTO_UDP {
        put16(&mut n, 26, 0);
    }
    n
}

fn payload_of(pkt: &[u8], l4: usize, proto: u8) -> &[u8] {
    let th = if proto == PROTO_TCP {
        usize::from(pkt[l4 + 12] >> 4) * 4
    } else {
        8
    };
    &pkt[l4 + th..]
}

// ---------------------------------------------------------------------------------------
// Examples.

#[test]
fn header_round_trips_in_both_layouts() {
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM | F_UDP_TUNNEL_CSUM,
        gso_type: GSO_UDP_TUNNEL_IPV4 | GSO_TCPV4,
        hdr_len: 102,
        gso_size: 1338,
        csum_start: 70,
        csum_offset: 16,
        outer_th: 20,
        inner_nh: 50,
    };
    let mut buf = [0xaa; VNET_HDR_TUNNEL_LEN];
    hdr.encode(&mut buf);
    assert_eq!(VnetHdr::parse(&buf, VNET_HDR_TUNNEL_LEN), Some(hdr));
    let mut short = [0xaa; VNET_HDR_LEN];
    hdr.encode(&mut short);
    let plain = VnetHdr {
        outer_th: 0,
        inner_nh: 0,
        ..hdr
    };
    assert_eq!(VnetHdr::parse(&short, VNET_HDR_LEN), Some(plain));
    assert_eq!(VnetHdr::parse(&short[..9], VNET_HDR_LEN), None);
}

#[test]
fn checksum_matches_the_reference_on_odd_lengths() {
    for len in 0..40 {
        let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        assert_eq!(
            u32::from(fold(sum(&data, 0))),
            reference_sum(&[&data]),
            "{len}"
        );
    }
}

#[test]
fn tso_split_fixes_every_header() {
    let payload: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let options = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]; // NOP NOP timestamps
    let t = tcp(0xffff_f000, TCP_ACK | TCP_PSH | TCP_CWR, options);
    let (hdr, pkt) = super_packet(tcp_packet(&Ip::v4(0xfffe), &t, &payload), PROTO_TCP, 1448);
    let segs = split(&hdr, &pkt).unwrap();
    assert_eq!(segs.len(), 3);
    let mut joined = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        assert!(ipv4_header_ok(s));
        assert!(l4_ok(s, 0, 20, PROTO_TCP), "segment {i}");
        assert_eq!(usize::from(get16(s, 2)), s.len());
        assert_eq!(get16(s, 4), 0xfffeu16.wrapping_add(i as u16));
        assert_eq!(get32(s, 24), 0xffff_f000u32.wrapping_add(1448 * i as u32));
        let flags = s[33];
        assert_eq!(flags & TCP_PSH != 0, i == 2, "PSH only on the last");
        assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR only on the first");
        assert_eq!(&s[40..52], &t.options[..], "options kept");
        joined.extend_from_slice(payload_of(s, 20, PROTO_TCP));
    }
    assert_eq!(segs[2].len(), 20 + 32 + 4000 - 2 * 1448, "last one short");
    assert_eq!(joined, payload);
}

#[test]
fn fin_stays_on_the_last_segment_and_is_written_alone() {
    let payload = vec![7u8; 3000];
    let t = tcp(1, TCP_ACK | TCP_FIN, vec![]);
    let (hdr, pkt) = super_packet(tcp_packet(&Ip::v4(1), &t, &payload), PROTO_TCP, 1000);
    let segs = split(&hdr, &pkt).unwrap();
    let fins: Vec<bool> = segs.iter().map(|s| s[33] & TCP_FIN != 0).collect();
    assert_eq!(fins, [false, false, true]);
    let units = coalesce(&segs, BOTH);
    assert_eq!(units.len(), 2, "two merged, the FIN alone");
    assert_eq!(units[0].0.gso_type, GSO_TCPV4);
    assert_eq!(units[1].0, VnetHdr::default());
    assert_eq!(resplit(&units), segs);
}

#[test]
fn gso_none_with_partial_checksum_is_finished() {
    let full = udp_packet(&Ip::v4(9), 1000, 2000, b"hello, tunnel");
    let (mut hdr, pkt) = super_packet(full.clone(), PROTO_UDP, 0);
    hdr.gso_type = GSO_NONE;
    hdr.gso_size = 0;
    assert_eq!(split(&hdr, &pkt).unwrap(), vec![full]);
}

#[test]
fn ipv6_tso_split_and_merge() {
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let ip = Ip {
        v6: true,
        id: 0,
        df: false,
        ttl: 61,
        tos: 0x28,
    };
    let t = tcp(5, TCP_ACK, vec![]);
    let (hdr, pkt) = super_packet(tcp_packet(&ip, &t, &payload), PROTO_TCP, 1220);
    let segs = split(&hdr, &pkt).unwrap();
    assert_eq!(segs.len(), 9);
    for s in &segs {
        assert_eq!(usize::from(get16(s, 4)) + 40, s.len());
        assert!(l4_ok(s, 0, 40, PROTO_TCP));
    }
    let units = coalesce(&segs, BOTH);
    assert_eq!(units.len(), 1);
    assert_eq!(units[0].0.gso_type, GSO_TCPV6);
    assert_eq!(units[0].0.gso_size, 1220);
    assert_eq!(resplit(&units), segs);
}

#[test]
fn uso_split_and_merge() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 3) as u8).collect();
    let (hdr, pkt) = super_packet(
        udp_packet(&Ip::v4(77), 5353, 4789, &payload),
        PROTO_UDP,
        1200,
    );
    let segs = split(&hdr, &pkt).unwrap();
    assert_eq!(segs.len(), 5);
    for (i, s) in segs.iter().enumerate() {
        assert!(ipv4_header_ok(s));
        assert!(l4_ok(s, 0, 20, PROTO_UDP));
        assert_eq!(usize::from(get16(s, 24)), s.len() - 20);
        assert_eq!(get16(s, 4), 77 + i as u16);
    }
    assert_eq!(segs[4].len(), 28 + 200);
    let units = coalesce(&segs, BOTH);
    assert_eq!(units.len(), 1);
    assert_eq!(units[0].0.gso_type, GSO_UDP_L4);
    assert_eq!(resplit(&units), segs);
    // Without UDP coalescing each datagram is written as it came.
    let units = coalesce(
        &segs,
        CoalesceOptions {
            tcp: true,
            udp: false,
            udp_tunnel: false,
        },
    );
    assert_eq!(units.len(), 5);
    assert!(units.iter().all(|(h, _)| *h == VnetHdr::default()));
}

/// A VXLAN super-packet as Linux 6.17+ hands it over with `TUN_F_UDP_TUNNEL_GSO`.
fn vxlan_super(payload: &[u8], mss: u16, outer_csum: bool) -> (VnetHdr, Vec<u8>) {
    let t = tcp(
        1000,
        TCP_ACK | TCP_PSH,
        vec![1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8],
    );
    let inner = tcp_packet(&Ip::v4(400), &t, payload);
    let mut pkt = vxlan_wrap(&inner, 60_000);
    let inner_l4 = VXLAN_INNER_NH + 20;
    let l4_len = pkt.len() - inner_l4;
    let partial = fold(pseudo_sum(&A4, &B4, PROTO_TCP, l4_len));
    put16(&mut pkt, inner_l4 + 16, partial);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM | if outer_csum { F_UDP_TUNNEL_CSUM } else { 0 },
        gso_type: GSO_UDP_TUNNEL_IPV4 | GSO_TCPV4,
        hdr_len: (inner_l4 + 32) as u16,
        gso_size: mss,
        csum_start: inner_l4 as u16,
        csum_offset: 16,
        outer_th: 20,
        inner_nh: VXLAN_INNER_NH as u16,
    };
    (hdr, pkt)
}

#[test]
fn udp_tunnel_split_fixes_both_layers() {
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i ^ (i >> 8)) as u8).collect();
    for outer_csum in [true, false] {
        let (hdr, pkt) = vxlan_super(&payload, 1338, outer_csum);
        let segs = split(&hdr, &pkt).unwrap();
        assert_eq!(segs.len(), 15);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let inner = &s[VXLAN_INNER_NH..];
            assert!(ipv4_header_ok(s), "outer IPv4 header");
            assert!(ipv4_header_ok(inner), "inner IPv4 header");
            assert_eq!(usize::from(get16(s, 2)), s.len());
            assert_eq!(get16(s, 4), 60_000u16.wrapping_add(i as u16));
            assert_eq!(usize::from(get16(s, 24)), s.len() - 20, "outer UDP length");
            if outer_csum {
                assert!(l4_ok(s, 0, 20, PROTO_UDP), "outer UDP checksum");
            } else {
                assert_eq!(get16(s, 26), 0, "no outer UDP checksum");
            }
            assert_eq!(usize::from(get16(inner, 2)), inner.len());
            assert_eq!(get16(inner, 4), 400 + i as u16);
            assert!(l4_ok(s, VXLAN_INNER_NH, VXLAN_INNER_NH + 20, PROTO_TCP));
            assert_eq!(inner[33] & TCP_PSH != 0, i == 14);
            assert_eq!(
                &s[28..VXLAN_INNER_NH],
                &pkt[28..VXLAN_INNER_NH],
                "VXLAN, Ethernet"
            );
            joined.extend_from_slice(payload_of(s, VXLAN_INNER_NH + 20, PROTO_TCP));
        }
        assert_eq!(joined, payload);
        // The receiver merges the VXLAN datagrams into one USO packet.
        let units = coalesce(&segs, BOTH);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].0.gso_type, GSO_UDP_L4);
        let again = resplit(&units);
        if outer_csum {
            assert_eq!(again, segs);
        } else {
            // Splitting fills in outer checksums that the sender left out; nothing else moves.
            for (a, b) in again.iter().zip(&segs) {
                assert!(l4_ok(a, 0, 20, PROTO_UDP));
                assert_eq!(a[..26], b[..26]);
                assert_eq!(a[28..], b[28..]);
            }
        }
    }
}

#[test]
fn vxlan_segments_merge_into_one_tunnel_gso_packet() {
    let payload: Vec<u8> = (0..50_000u32).map(|i| (i * 13) as u8).collect();
    for outer_csum in [true, false] {
        let (hdr, pkt) = vxlan_super(&payload, 1338, outer_csum);
        let segs = split(&hdr, &pkt).unwrap();
        assert_eq!(segs.len(), 38);
        let units = coalesce(&segs, ALL);
        assert_eq!(units.len(), 1);
        let (h, merged) = &units[0];
        assert_eq!(h.gso_type, GSO_UDP_TUNNEL_IPV4 | GSO_TCPV4);
        assert_eq!(h.flags, F_NEEDS_CSUM);
        assert_eq!(h.gso_size, 1338);
        // What Linux checks (virtio_net_hdr_tnl_to_skb), assuming an Ethernet header.
        assert!(usize::from(h.outer_th) >= 14 + 20);
        assert!(h.inner_nh >= h.outer_th + 8);
        assert!(h.csum_start >= h.inner_nh + 20);
        assert_eq!(usize::from(h.inner_nh), VXLAN_INNER_NH + TUNNEL_PAD);
        assert!(ipv4_header_ok(merged));
        assert_eq!(&merged[20..36], &[IPOPT_NOP; 16]);
        assert_eq!(usize::from(get16(merged, 2)), merged.len());
        assert_eq!(usize::from(get16(merged, 36 + 4)), merged.len() - 36);
        let inner = &merged[usize::from(h.inner_nh)..];
        assert!(ipv4_header_ok(inner));
        assert_eq!(usize::from(get16(inner, 2)), inner.len());
        assert_eq!(inner[33] & TCP_PSH, TCP_PSH, "PSH of the last segment");
        let again: Vec<Vec<u8>> = resplit(&units).iter().map(|p| normalize(p)).collect();
        let segs: Vec<Vec<u8>> = segs.iter().map(|p| normalize(p)).collect();
        assert_eq!(again, segs);
    }
}

#[test]
fn what_must_not_merge_does_not() {
    let seg = |seq: u32, id: u16, flags: u8, len: usize| {
        tcp_packet(&Ip::v4(id), &tcp(seq, flags, vec![]), &vec![1u8; len])
    };
    // A gap in the sequence numbers.
    let units = coalesce(&[seg(0, 1, TCP_ACK, 100), seg(200, 2, TCP_ACK, 100)], BOTH);
    assert_eq!(units.len(), 2);
    // A longer segment after a shorter one (the short one must be last).
    let units = coalesce(&[seg(0, 1, TCP_ACK, 100), seg(100, 2, TCP_ACK, 200)], BOTH);
    assert_eq!(units.len(), 2);
    // Nothing after a short one.
    let units = coalesce(
        &[
            seg(0, 1, TCP_ACK, 100),
            seg(100, 2, TCP_ACK, 50),
            seg(150, 3, TCP_ACK, 50),
        ],
        BOTH,
    );
    assert_eq!(units.len(), 2);
    // SYN, RST, URG never merge.
    for flags in [TCP_ACK | 0x02, TCP_ACK | 0x04, TCP_ACK | 0x20] {
        let units = coalesce(&[seg(0, 1, flags, 100), seg(100, 2, flags, 100)], BOTH);
        assert!(units.iter().all(|(h, _)| *h == VnetHdr::default()));
    }
    // Non-consecutive IPv4 identifications.
    let units = coalesce(&[seg(0, 1, TCP_ACK, 100), seg(100, 5, TCP_ACK, 100)], BOTH);
    assert_eq!(units.len(), 2);
    // Another window.
    let mut other = tcp(100, TCP_ACK, vec![]);
    other.window = 1;
    let units = coalesce(
        &[
            seg(0, 1, TCP_ACK, 100),
            tcp_packet(&Ip::v4(2), &other, &[1; 100]),
        ],
        BOTH,
    );
    assert_eq!(units.len(), 2);
    // An IPv4 fragment.
    let mut frag = udp_packet(&Ip::v4(3), 1, 2, &[0; 100]);
    frag[6] |= 0x20;
    ipv4_header_checksum(&mut frag);
    let units = coalesce(&[frag.clone(), frag], BOTH);
    assert!(units.iter().all(|(h, _)| *h == VnetHdr::default()));
    // At most MAX_COALESCED_SEGMENTS per packet.
    let many: Vec<Vec<u8>> = (0..100u32)
        .map(|i| seg(i * 10, i as u16, TCP_ACK, 10))
        .collect();
    let units = coalesce(&many, BOTH);
    assert_eq!(units.len(), 2);
    assert_eq!(resplit(&units), many);
}

#[test]
fn malformed_super_packets_are_refused() {
    let (hdr, pkt) = super_packet(
        tcp_packet(&Ip::v4(1), &tcp(0, TCP_ACK, vec![]), &[0; 3000]),
        PROTO_TCP,
        1000,
    );
    let bad = [
        VnetHdr {
            csum_start: 60_000,
            ..hdr
        },
        VnetHdr {
            csum_start: 24,
            ..hdr
        },
        VnetHdr { gso_size: 0, ..hdr },
        VnetHdr {
            gso_type: GSO_TCPV6,
            ..hdr
        },
        VnetHdr {
            gso_type: GSO_UDP_TUNNEL_IPV4 | GSO_TCPV4,
            ..hdr
        },
    ];
    for h in bad {
        assert_eq!(split(&h, &pkt), Err(SegmentError::Malformed), "{h:?}");
    }
    let ufo = VnetHdr { gso_type: 3, ..hdr };
    assert_eq!(split(&ufo, &pkt), Err(SegmentError::Unsupported));
    let none = VnetHdr {
        gso_type: GSO_NONE,
        csum_start: 3030,
        csum_offset: 16,
        ..hdr
    };
    assert_eq!(split(&none, &pkt), Err(SegmentError::Malformed));
}

// ---------------------------------------------------------------------------------------
// Properties.

fn arb_options() -> impl Strategy<Value = Vec<u8>> {
    (0usize..=10).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The vectorised sum agrees with the word-by-word reference for any bytes, any length
    /// (odd ones included) and any running sum it continues.
    #[test]
    fn sum_matches_the_reference(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        initial in 0u64..(1 << 40),
    ) {
        prop_assert_eq!(
            fold(sum(&data, initial)),
            fold(u64::from(reference_sum(&[&data])) + initial)
        );
    }

    /// TSO/USO split, merge, split: the same packets; every checksum right on the way.
    #[test]
    fn split_merge_split_is_identity(
        v6 in any::<bool>(),
        udp in any::<bool>(),
        mss in 1u16..2000,
        len in 0usize..30_000,
        seq in any::<u32>(),
        id in any::<u16>(),
        last_flags in prop_oneof![Just(0u8), Just(TCP_PSH), Just(TCP_FIN), Just(TCP_CWR)],
        options in arb_options(),
        seed in any::<u8>(),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        let ip = Ip { v6, ..Ip::v4(id) };
        let l4 = if v6 { 40 } else { 20 };
        let (proto, full) = if udp {
            (PROTO_UDP, udp_packet(&ip, 4242, 4789, &payload))
        } else {
            (PROTO_TCP, tcp_packet(&ip, &tcp(seq, TCP_ACK | last_flags, options.clone()), &payload))
        };
        let (hdr, pkt) = super_packet(full, proto, mss);
        let segs = split(&hdr, &pkt).unwrap();
        prop_assert_eq!(segs.len(), len.div_ceil(usize::from(mss)).max(1));
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            if !v6 {
                prop_assert!(ipv4_header_ok(s));
                prop_assert_eq!(get16(s, 4), id.wrapping_add(i as u16));
            }
            prop_assert!(l4_ok(s, 0, l4, proto));
            let p = payload_of(s, l4, proto);
            prop_assert!(p.len() <= usize::from(mss));
            if proto == PROTO_TCP {
                let last = i + 1 == segs.len();
                prop_assert_eq!(get32(s, l4 + 4), seq.wrapping_add(joined.len() as u32));
                prop_assert_eq!(s[l4 + 13] & (TCP_PSH | TCP_FIN), if last { last_flags & (TCP_PSH | TCP_FIN) } else { 0 });
                prop_assert_eq!(s[l4 + 13] & TCP_CWR, if i == 0 { last_flags & TCP_CWR } else { 0 });
                prop_assert_eq!(&s[l4 + 20..l4 + 20 + options.len()], &options[..]);
            }
            joined.extend_from_slice(p);
        }
        prop_assert_eq!(&joined, &payload);
        let units = coalesce(&segs, BOTH);
        for (h, p) in &units {
            prop_assert!(p.len() <= MAX_IP_PACKET);
            if h.gso_type != GSO_NONE {
                prop_assert_eq!(h.gso_size, mss);
            }
        }
        prop_assert_eq!(resplit(&units), segs);
    }

    /// GSO over a UDP tunnel (VXLAN around TCP): both layers right in every piece, and the
    /// receiver's USO merge splits back to the same datagrams.
    #[test]
    fn udp_tunnel_split_then_merge(len in 0usize..40_000, mss in 500u16..1400, csum in any::<bool>()) {
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let (hdr, pkt) = vxlan_super(&payload, mss, csum);
        let segs = split(&hdr, &pkt).unwrap();
        let mut joined = Vec::new();
        for s in &segs {
            prop_assert!(ipv4_header_ok(s));
            prop_assert!(ipv4_header_ok(&s[VXLAN_INNER_NH..]));
            prop_assert!(l4_ok(s, VXLAN_INNER_NH, VXLAN_INNER_NH + 20, PROTO_TCP));
            if csum {
                prop_assert!(l4_ok(s, 0, 20, PROTO_UDP));
            }
            joined.extend_from_slice(payload_of(s, VXLAN_INNER_NH + 20, PROTO_TCP));
        }
        prop_assert_eq!(&joined, &payload);
        if csum {
            prop_assert_eq!(resplit(&coalesce(&segs, BOTH)), segs);
        }
    }

    /// Any mixture of packets from two flows, interleaved, with gaps and odd sizes: what is
    /// written splits back into exactly the packets that went in, in the same order.
    #[test]
    fn merging_never_reorders_or_changes_packets(
        steps in proptest::collection::vec((any::<bool>(), 1usize..1500, 0u8..8), 1..80),
        udp in any::<bool>(),
    ) {
        let mut seqs = [1000u32, 9000u32];
        let mut ids = [1u16, 500u16];
        let mut pkts = Vec::new();
        for (flow, len, twist) in steps {
            let f = usize::from(flow);
            let payload = vec![twist; len];
            let ip = Ip::v4(ids[f]);
            let pkt = if udp {
                udp_packet(&ip, 1000 + f as u16, 4789, &payload)
            } else {
                let flags = if twist == 7 { TCP_ACK | TCP_PSH } else { TCP_ACK };
                let mut t = tcp(seqs[f], flags, vec![]);
                t.sport += f as u16;
                tcp_packet(&ip, &t, &payload)
            };
            // Sometimes a gap in the sequence or identification.
            if twist != 3 {
                seqs[f] = seqs[f].wrapping_add(len as u32);
            }
            ids[f] = ids[f].wrapping_add(if twist == 5 { 2 } else { 1 });
            pkts.push(pkt);
        }
        prop_assert_eq!(resplit(&coalesce(&pkts, BOTH)), pkts);
    }

    /// The same with VXLAN around two TCP flows, merged into tunnel GSO packets.
    #[test]
    fn merging_vxlan_never_reorders_or_changes_packets(
        steps in proptest::collection::vec((any::<bool>(), 1usize..1400, 0u8..8), 1..80),
    ) {
        let mut seqs = [1000u32, 9000u32];
        let mut ids = [1u16, 500u16];
        let mut outer_id = 7u16;
        let mut pkts = Vec::new();
        for (flow, len, twist) in steps {
            let f = usize::from(flow);
            let flags = if twist == 7 { TCP_ACK | TCP_PSH } else { TCP_ACK };
            let mut t = tcp(seqs[f], flags, vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
            t.sport += f as u16;
            let inner = tcp_packet(&Ip::v4(ids[f]), &t, &vec![twist; len]);
            pkts.push(normalize(&vxlan_wrap(&inner, outer_id)));
            if twist != 3 {
                seqs[f] = seqs[f].wrapping_add(len as u32);
            }
            ids[f] = ids[f].wrapping_add(1);
            outer_id = outer_id.wrapping_add(if twist == 5 { 2 } else { 1 });
        }
        let again: Vec<Vec<u8>> = resplit(&coalesce(&pkts, ALL)).iter().map(|p| normalize(p)).collect();
        prop_assert_eq!(again, pkts);
    }

    /// Everything at once, as a receiver sees it: VXLAN around two TCP flows, plain TCP
    /// segments and bare ACKs, UDP datagrams, ICMP; whatever merges, what is written splits
    /// back into the same packets in the same order, and nothing panics (debug builds check
    /// every subtraction).
    #[test]
    fn mixed_traffic_merges_without_reordering(
        steps in proptest::collection::vec((0u8..6, 1usize..1400, 0u8..4), 1..120),
    ) {
        let mut seqs = [1000u32, 9000, 50_000];
        let mut ids = [1u16, 500, 900, 1300];
        let mut outer_id = 7u16;
        let mut pkts = Vec::new();
        for (kind, len, twist) in steps {
            let payload = vec![twist; len];
            let pkt = match kind {
                0 | 1 => {
                    let f = usize::from(kind);
                    let mut t = tcp(seqs[f], TCP_ACK, vec![]);
                    t.sport += f as u16;
                    let inner = tcp_packet(&Ip::v4(ids[f]), &t, &payload);
                    seqs[f] = seqs[f].wrapping_add(len as u32);
                    ids[f] = ids[f].wrapping_add(1);
                    outer_id = outer_id.wrapping_add(1);
                    vxlan_wrap(&inner, outer_id)
                }
                2 => {
                    let p = tcp_packet(&Ip::v4(ids[2]), &tcp(seqs[2], TCP_ACK, vec![]), &payload);
                    seqs[2] = seqs[2].wrapping_add(len as u32);
                    ids[2] = ids[2].wrapping_add(1);
                    p
                }
                3 => {
                    // A bare ACK: 40 bytes, nothing to merge.
                    ids[2] = ids[2].wrapping_add(1);
                    tcp_packet(&Ip::v4(ids[2]), &tcp(seqs[2], TCP_ACK, vec![]), &[])
                }
                4 => {
                    ids[3] = ids[3].wrapping_add(1);
                    udp_packet(&Ip::v4(ids[3]), 5353, 5353, &payload[..len.min(200)])
                }
                _ => ip_packet(&Ip::v4(9), &A4, &B4, 1, &[8, 0, 0, 0, 0, 1, 0, twist]),
            };
            pkts.push(normalize(&pkt));
        }
        let again: Vec<Vec<u8>> = resplit(&coalesce(&pkts, ALL)).iter().map(|p| normalize(p)).collect();
        prop_assert_eq!(again, pkts);
    }

    /// Arbitrary bytes under an arbitrary header never panic.
    #[test]
    fn garbage_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        flags in any::<u8>(),
        gso_type in any::<u8>(),
        gso_size in any::<u16>(),
        csum_start in 0u16..320,
        csum_offset in 0u16..40,
        outer_th in 0u16..100,
        inner_nh in 0u16..200,
    ) {
        let hdr = VnetHdr { flags, gso_type, hdr_len: 0, gso_size, csum_start, csum_offset, outer_th, inner_nh };
        let _ = split(&hdr, &bytes);
        let _ = coalesce(&[bytes.clone(), bytes], ALL);
    }
}
