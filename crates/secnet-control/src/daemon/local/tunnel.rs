//! The encrypted path's status on this node.

use super::*;

pub(super) fn tunnel_info(
    m: &Member,
    drops: secnet_dataplane::StrictDrops,
) -> secnet_api::TunnelInfo {
    let state = m.view().state;
    let mine = state.wireguard.get(&m.id.node_id);
    let key_epoch = state.key_ring.as_ref().map(|r| r.primary().epoch);
    let Some(t) = m.tunnel.get() else {
        return secnet_api::TunnelInfo {
            up: false,
            public_key: mine.map(|w| w.public_key.clone()),
            tunnel_ip: mine.map(|w| w.tunnel_ip),
            listen: None,
            key_epoch,
            peers: Vec::new(),
            garbage: 0,
            unknown_peer: 0,
            disallowed_source: 0,
            rate_limited: 0,
            strict_dropped_in: drops.inbound,
            strict_dropped_out: drops.outbound,
        };
    };
    let peers = t
        .stats()
        .into_iter()
        .map(|p| {
            let key = p.public_key.to_string();
            let node = state
                .wireguard
                .iter()
                .find(|(_, w)| w.public_key == key)
                .map(|(id, _)| *id);
            secnet_api::TunnelPeerInfo {
                node: node.map(|n| n.to_string()).unwrap_or_default(),
                hostname: node
                    .and_then(|n| state.nodes.get(&n))
                    .map(|n| n.hostname.clone())
                    .unwrap_or_default(),
                public_key: key,
                endpoint: p.endpoint.to_string(),
                tunnel_ip: p.tunnel_ip,
                last_handshake_secs: p.last_handshake.map(|d| d.as_secs()),
                key_epoch: p.key_epoch,
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
                handshake_failures: p.handshake_failures,
                dropped_invalid: p.dropped_invalid,
            }
        })
        .collect();
    let c = t.counters();
    secnet_api::TunnelInfo {
        up: t.is_running(),
        public_key: Some(t.public_key().to_string()),
        tunnel_ip: mine.map(|w| w.tunnel_ip),
        listen: Some(t.local_addr().to_string()),
        key_epoch,
        peers,
        garbage: c.garbage,
        unknown_peer: c.unknown_peer,
        disallowed_source: c.disallowed_source,
        rate_limited: c.rate_limited,
        strict_dropped_in: drops.inbound,
        strict_dropped_out: drops.outbound,
    }
}
