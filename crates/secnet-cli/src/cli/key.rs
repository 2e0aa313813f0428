//! `secnet key ...`: the pre-shared-key ring, and the parser of `--key-rotation-interval`.

use std::time::Duration;

use clap::{Args, Subcommand};
use secnet_api::LocalRequest;

use super::{Invocation, ListFormat, Render};

pub(super) const KEY_LONG_ABOUT: &str = "\
Show or rotate the cluster's pre-shared-key ring.

Encrypted networks mix a cluster-wide pre-shared key into every WireGuard handshake between
nodes. The ring holds at most three keys with increasing epochs: at most one `pending`, exactly
one `primary` and older `retiring` ones. A rotation adds a pending key: every node installs it
in its tunnel for receiving and acknowledges it; once every live node has, it becomes primary
and new handshakes use it, while the sessions under the previous key keep carrying traffic
until the new ones are up (so no packet is lost); the leader then keeps the new primary and
the key before it. Keys rotate every --key-rotation-interval (set at init, default 12h), on
`secnet key rotate`, and at once when a node is removed, so a removed node never learns the
next key. The keys themselves are never shown. (Each node's own static key is rotated with
`secnet node rotate-key`.)";

/// `secnet key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys of the ring: epoch, state, when created and promoted, how many nodes hold it
    Ls(KeyLsArgs),
    /// Start a rotation now and wait until the new key is primary (run on a manager)
    Rotate,
}

/// `secnet key ls`
#[derive(Debug, Args)]
pub struct KeyLsArgs {
    /// Output format: table or json (an array of objects).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

impl KeyCommand {
    /// The request of each `secnet key` command.
    pub(super) fn invocation(self) -> Invocation {
        match self {
            KeyCommand::Ls(a) => {
                Invocation::short(LocalRequest::KeyLs, Render::Keys { format: a.format })
            }
            KeyCommand::Rotate => Invocation {
                request: LocalRequest::KeyRotate,
                timeout: Duration::from_secs(45),
                render: Render::Keys {
                    format: ListFormat::Table,
                },
                progress: Some("Rotating the key ring...".into()),
                converge: None,
            },
        }
    }
}

/// `--key-rotation-interval`: a humantime duration, whole seconds (what the request carries),
/// within the model's `MIN_KEY_ROTATION_SECS..=MAX_KEY_ROTATION_SECS`. The range check is the model's
/// `validate_key_rotation_interval`, the one the daemon applies, so both accept the same values.
pub(super) fn parse_key_rotation_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (examples: 10s, 30m, 12h, 7days)"))?;
    secnet_model::validate_key_rotation_interval(d.as_secs()).map_err(|_| {
        format!(
            "key rotation interval {s:?} is out of range: accepted range is 10s to 8760h (one year)"
        )
    })?;
    Ok(Duration::from_secs(d.as_secs()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cli_accepts_exactly_what_the_daemon_accepts() {
        for (text, secs) in [
            ("10s", 10),
            ("12h", 12 * 3600),
            ("8760h", 8760 * 3600),
            ("10s 999ms", 10),
        ] {
            let d = parse_key_rotation_interval(text).unwrap();
            assert_eq!(d, Duration::from_secs(secs), "{text}");
            assert!(secnet_model::validate_key_rotation_interval(d.as_secs()).is_ok());
        }
        for text in ["9s", "9s 999ms", "8761h", "0s"] {
            let err = parse_key_rotation_interval(text).unwrap_err();
            assert!(
                err.contains(&format!("{text:?}")) && err.contains("10s to 8760h"),
                "{err}"
            );
            let secs = humantime::parse_duration(text).unwrap().as_secs();
            assert!(
                secnet_model::validate_key_rotation_interval(secs).is_err(),
                "{text}"
            );
        }
        let err = parse_key_rotation_interval("soon").unwrap_err();
        assert!(err.contains("\"soon\"") && err.contains("12h"), "{err}");
    }
}
