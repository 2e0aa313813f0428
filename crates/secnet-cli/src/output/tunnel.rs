//! What `secnet tunnel ...` shows.

use secnet_api::LocalResponse;

use super::{json_line, table, unexpected};
use crate::cli::{ListFormat, Render};
use crate::error::CliError;

/// The text shown for the answer to a `secnet tunnel` command.
pub(super) fn render(how: &Render, response: LocalResponse) -> Result<String, CliError> {
    match (how, response) {
        (Render::Tunnel { format }, LocalResponse::Tunnel(t)) => match format {
            ListFormat::Json => json_line(&t),
            ListFormat::Table => {
                let dash = || "-".to_string();
                let mut out = format!(
                    "Endpoint: {}  tunnel address {}  key epoch {}  public key {}\n",
                    if t.up {
                        t.listen.clone().unwrap_or_else(dash)
                    } else {
                        "down".into()
                    },
                    t.tunnel_ip.map(|i| i.to_string()).unwrap_or_else(dash),
                    t.key_epoch.map(|e| e.to_string()).unwrap_or_else(dash),
                    t.public_key.clone().unwrap_or_else(dash),
                );
                out.push_str(&format!(
                    "Dropped: {} garbage, {} from unknown keys, {} spoofed sources, {} rate-limited handshakes\n",
                    t.garbage, t.unknown_peer, t.disallowed_source, t.rate_limited
                ));
                out.push_str(&format!(
                    "Strict mode dropped: {} encrypted VXLAN packets arriving, {} leaving outside the tunnel\n\n",
                    t.strict_dropped_in, t.strict_dropped_out
                ));
                out.push_str(&table(
                    &[
                        "NODE",
                        "HOSTNAME",
                        "ENDPOINT",
                        "TUNNEL IP",
                        "KEY EPOCH",
                        "HANDSHAKE",
                        "RX",
                        "TX",
                        "FAILURES",
                        "INVALID",
                    ],
                    &t.peers
                        .iter()
                        .map(|p| {
                            vec![
                                p.node.chars().take(12).collect(),
                                p.hostname.clone(),
                                p.endpoint.clone(),
                                p.tunnel_ip.to_string(),
                                p.key_epoch
                                    .map(|e| e.to_string())
                                    .unwrap_or_else(|| "-".into()),
                                p.last_handshake_secs
                                    .map(|s| format!("{s}s ago"))
                                    .unwrap_or_else(|| "never".into()),
                                p.rx_bytes.to_string(),
                                p.tx_bytes.to_string(),
                                p.handshake_failures.to_string(),
                                p.dropped_invalid.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ));
                Ok(out)
            }
        },
        (how, other) => Err(unexpected(how, &other)),
    }
}
