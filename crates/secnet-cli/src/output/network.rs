//! What `secnet network ...` shows.

use secnet_api::{LocalResponse, NetworkInfo};

use super::{json_doc, json_line, lines, table, unexpected};
use crate::cli::{ListFormat, Render};
use crate::error::CliError;

/// The text shown for the answer to a `secnet network` command.
pub(super) fn render(how: &Render, response: LocalResponse) -> Result<String, CliError> {
    match (how, response) {
        (Render::NetworkCreate, LocalResponse::Network(net)) => Ok(format!("{}\n", net.id)),
        (Render::NetworkLs { quiet, format }, LocalResponse::Networks(nets)) => {
            if *quiet {
                Ok(lines(nets.iter().map(|n| n.id.as_str())))
            } else {
                match format {
                    ListFormat::Table => Ok(network_table(&nets)),
                    ListFormat::Json => json_line(&nets),
                }
            }
        }
        (Render::NetworkInspect { compact }, LocalResponse::Networks(nets)) => {
            json_doc(&nets, *compact)
        }
        (Render::NetworkInspect { compact }, LocalResponse::Network(net)) => {
            json_doc(&[net], *compact)
        }
        (Render::NetworkRm, LocalResponse::NetworksRemoved(names)) => {
            Ok(lines(names.iter().map(String::as_str)))
        }
        (how, other) => Err(unexpected(how, &other)),
    }
}

/// Network IDs in the table are shortened to this many characters, as Docker does.
pub const SHORT_ID_LEN: usize = 12;

/// `network ls` as a table.
pub fn network_table(nets: &[NetworkInfo]) -> String {
    let rows: Vec<Vec<String>> = nets
        .iter()
        .map(|n| {
            vec![
                n.id.chars().take(SHORT_ID_LEN).collect(),
                n.name.clone(),
                n.driver.clone(),
                n.scope.clone(),
                n.subnet.to_string(),
                n.vni.to_string(),
                n.encrypted.to_string(),
                n.mtu.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NETWORK ID",
            "NAME",
            "DRIVER",
            "SCOPE",
            "SUBNET",
            "VNI",
            "ENCRYPTED",
            "MTU",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::output::render;
    use crate::output::test_fixtures::network;

    #[test]
    fn network_table_shortens_ids() {
        let nets = vec![
            network("0123456789abcdef0123", "backend"),
            network("short", "a-much-longer-name"),
        ];
        let t = network_table(&nets);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NETWORK ID    NAME                DRIVER   SCOPE  SUBNET       VNI   ENCRYPTED  MTU"
        );
        assert_eq!(
            lines[1],
            "0123456789ab  backend             overlay  swarm  10.0.1.0/24  4097  true       1390"
        );
        assert!(lines[2].starts_with("short         a-much-longer-name  overlay"));
    }

    #[test]
    fn network_json_has_documented_keys_and_full_ids() {
        let nets = vec![network("0123456789abcdef0123", "backend")];
        let json = render(
            &Render::NetworkLs {
                quiet: false,
                format: ListFormat::Json,
            },
            LocalResponse::Networks(nets.clone()),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let obj = v.as_array().unwrap()[0].as_object().unwrap();
        for k in [
            "id",
            "name",
            "driver",
            "scope",
            "subnet",
            "gateway",
            "vni",
            "encrypted",
            "mtu",
            "attachable",
            "labels",
            "created",
        ] {
            assert!(obj.contains_key(k), "missing {k}");
        }
        assert_eq!(obj["id"], "0123456789abcdef0123");
        assert_eq!(obj["subnet"], "10.0.1.0/24");
        let back: Vec<NetworkInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, nets);
        let quiet = render(
            &Render::NetworkLs {
                quiet: true,
                format: ListFormat::Table,
            },
            LocalResponse::Networks(nets),
        )
        .unwrap();
        assert_eq!(quiet, "0123456789abcdef0123\n");
    }
}
