//! Generic value parsers: IPv4 prefixes (`init` and `network create`), mask lengths and labels.

use ipnet::Ipv4Net;

/// `--subnet`, `--default-addr-pool`: an IPv4 prefix, parsed as IPAM parses it everywhere.
pub(super) fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    secnet_ipam::parse_ipv4_cidr(s).map_err(|e| e.to_string())
}

/// `--default-addr-pool-mask-length`.
pub(super) fn parse_mask_length(s: &str) -> Result<u8, String> {
    let max = secnet_ipam::MAX_MASK_LENGTH;
    match s.trim().parse::<u8>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid mask length {s:?}: expected a number of prefix bits from 1 to {max}"
        )),
    }
}

/// `--label KEY=VALUE`.
pub(super) fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        Some(_) => Err(format!("invalid label {s:?}: the key must not be empty")),
        None => Err(format!("invalid label {s:?}: expected KEY=VALUE")),
    }
}
