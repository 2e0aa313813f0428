//! Generic value parsers: IPv4 prefixes (`init` and `network create`), mask lengths, labels,
//! and the names of new networks and endpoints (by the model's rule, the one the daemon applies).

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

/// The name of a new network: the model's rule, so a bad name exits 2 here with the
/// daemon's own message, without contacting it.
pub(super) fn parse_network_name(s: &str) -> Result<String, String> {
    secnet_model::validate_network_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

/// The name of a new endpoint (`--name`): the model's rule.
pub(super) fn parse_endpoint_name(s: &str) -> Result<String, String> {
    secnet_model::validate_endpoint_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::cli::test_support::parse_err;

    #[test]
    fn bad_names_of_new_objects_exit_2_with_the_models_message() {
        let err = parse_err(&["network", "create", "bad/name"]);
        let model = secnet_model::validate_network_name("bad/name").unwrap_err();
        assert!(err.contains(&model.to_string()), "{err}");
        let err = parse_err(&["endpoint", "create", "--network", "n", "--name=_under"]);
        assert!(err.contains("invalid endpoint name \"_under\""), "{err}");
        let err = parse_err(&["network", "create", &"x".repeat(65)]);
        assert!(err.contains("1-64 characters"), "{err}");
    }
}
