//! Unit tests: every error path and its message, and concrete allocation scenarios.
#![allow(clippy::unwrap_used)]

use super::*;

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn ipnet(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn cfg(pools: &[&str], mask_length: u8) -> PoolConfig {
    PoolConfig::new(pools.iter().map(|p| net(p)).collect(), mask_length).unwrap()
}

// ---------------------------------------------------------------- PoolConfig

#[test]
fn empty_pools_and_zero_mask_mean_swarm_defaults() {
    let c = PoolConfig::new(vec![], 0).unwrap();
    assert_eq!(c.pools, vec![net(DEFAULT_POOL)]);
    assert_eq!(c.mask_length, DEFAULT_MASK_LENGTH);
    assert_eq!(c, PoolConfig::default());
}

#[test]
fn pool_config_keeps_valid_input_and_order() {
    let c = cfg(&["10.30.0.0/16", "10.20.0.0/16"], 26);
    assert_eq!(c.pools, vec![net("10.30.0.0/16"), net("10.20.0.0/16")]);
    assert_eq!(c.mask_length, 26);
    // Mask equal to the pool prefix and the maximum mask are both accepted.
    cfg(&["10.20.0.0/16"], 16);
    cfg(&["10.20.0.0/16"], MAX_MASK_LENGTH);
    cfg(&["10.20.0.0/29"], 29);
}

#[test]
fn pool_not_canonical_suggests_canonical_form() {
    let err = PoolConfig::new(vec![net("10.20.0.1/16")], 24).unwrap_err();
    assert_eq!(
        err,
        IpamError::NotCanonical {
            given: net("10.20.0.1/16"),
            canonical: net("10.20.0.0/16"),
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("10.20.0.1/16"), "{msg}");
    assert!(msg.contains("did you mean 10.20.0.0/16"), "{msg}");
}

#[test]
fn overlapping_pools_are_rejected() {
    let err = PoolConfig::new(vec![net("10.0.0.0/8"), net("10.20.0.0/16")], 24).unwrap_err();
    assert_eq!(
        err,
        IpamError::OverlappingPools {
            first: net("10.0.0.0/8"),
            second: net("10.20.0.0/16"),
        }
    );
    assert_eq!(
        err.to_string(),
        "address pools 10.0.0.0/8 and 10.20.0.0/16 overlap; accepted: pools that share no addresses"
    );
    // Duplicates overlap too.
    let err = PoolConfig::new(vec![net("10.20.0.0/16"), net("10.20.0.0/16")], 24).unwrap_err();
    assert!(matches!(err, IpamError::OverlappingPools { .. }));
    // Adjacent pools do not.
    cfg(&["10.20.0.0/16", "10.21.0.0/16"], 24);
}

#[test]
fn mask_length_above_29_is_rejected() {
    for mask in [30, 31, 32, 33, 255] {
        let err = PoolConfig::new(vec![net("10.20.0.0/16")], mask).unwrap_err();
        assert_eq!(
            err,
            IpamError::MaskLengthOutOfRange {
                mask_length: mask,
                max: 29
            }
        );
    }
    let err = PoolConfig::new(vec![], 30).unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet size is out of range: /30; accepted: the pool prefix length up to /29"
    );
}

#[test]
fn mask_shorter_than_pool_names_the_pool() {
    let err = PoolConfig::new(vec![net("10.30.0.0/16"), net("10.20.0.0/20")], 18).unwrap_err();
    assert_eq!(
        err,
        IpamError::MaskShorterThanPool {
            mask_length: 18,
            pool: net("10.20.0.0/20"),
            max: 29,
        }
    );
    assert_eq!(
        err.to_string(),
        "subnet size /18 is larger than address pool 10.20.0.0/20; accepted: /20 up to /29"
    );
    // The default mask (/24) against a smaller pool.
    let err = PoolConfig::new(vec![net("10.20.0.0/26")], 0).unwrap_err();
    assert!(matches!(
        err,
        IpamError::MaskShorterThanPool {
            mask_length: 24,
            ..
        }
    ));
}

#[test]
fn pool_smaller_than_29_is_rejected() {
    let err = PoolConfig::new(vec![net("10.20.0.0/30")], 29).unwrap_err();
    assert_eq!(
        err,
        IpamError::PoolTooSmall {
            pool: net("10.20.0.0/30"),
            max: 29
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("10.20.0.0/30"), "{msg}");
    assert!(msg.contains("/29"), "{msg}");
}

#[test]
fn pool_config_round_trips_through_serde() {
    let c = cfg(&["10.20.0.0/16", "192.168.0.0/16"], 26);
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<PoolConfig>(&json).unwrap(), c);
}

// ---------------------------------------------------------------- allocate_subnet

#[test]
fn concrete_first_fit_and_reuse() {
    let c = cfg(&["10.20.0.0/16"], 26);
    let mut in_use = Vec::new();
    for expected in ["10.20.0.0/26", "10.20.0.64/26", "10.20.0.128/26"] {
        let got = allocate_subnet(&c, &in_use, &[]).unwrap();
        assert_eq!(got, net(expected));
        in_use.push(got);
    }
    in_use.retain(|n| *n != net("10.20.0.64/26"));
    assert_eq!(
        allocate_subnet(&c, &in_use, &[]).unwrap(),
        net("10.20.0.64/26")
    );
}

#[test]
fn default_config_gives_swarm_like_subnets() {
    let c = PoolConfig::default();
    assert_eq!(allocate_subnet(&c, &[], &[]).unwrap(), net("10.0.0.0/24"));
    assert_eq!(
        allocate_subnet(&c, &[net("10.0.0.0/24")], &[]).unwrap(),
        net("10.0.1.0/24")
    );
}

#[test]
fn pools_are_searched_in_the_given_order() {
    let c = PoolConfig::new(vec![net("10.30.0.0/28"), net("10.20.0.0/28")], 29).unwrap();
    let a = allocate_subnet(&c, &[], &[]).unwrap();
    assert_eq!(a, net("10.30.0.0/29"));
    let b = allocate_subnet(&c, &[a], &[]).unwrap();
    assert_eq!(b, net("10.30.0.8/29"));
    let d = allocate_subnet(&c, &[a, b], &[]).unwrap();
    assert_eq!(d, net("10.20.0.0/29"));
}

#[test]
fn in_use_larger_and_smaller_than_mask_are_skipped() {
    let c = cfg(&["10.20.0.0/16"], 24);
    // An explicit /20 covers 10.20.0.0 - 10.20.15.255; a /30 blocks 10.20.16.0/24.
    let in_use = [net("10.20.16.4/30"), net("10.20.0.0/20")];
    assert_eq!(
        allocate_subnet(&c, &in_use, &[]).unwrap(),
        net("10.20.17.0/24")
    );
}

#[test]
fn in_use_order_does_not_matter() {
    let c = cfg(&["10.20.0.0/16"], 24);
    let a = [
        net("10.20.0.0/24"),
        net("10.20.2.0/24"),
        net("10.20.1.0/24"),
    ];
    let mut b = a;
    b.reverse();
    assert_eq!(
        allocate_subnet(&c, &a, &[]).unwrap(),
        allocate_subnet(&c, &b, &[]).unwrap()
    );
    assert_eq!(allocate_subnet(&c, &a, &[]).unwrap(), net("10.20.3.0/24"));
}

#[test]
fn underlay_prefixes_are_excluded_and_ipv6_is_ignored() {
    let c = PoolConfig::default();
    // Interface address 10.0.0.5/23 stands for its whole on-link network 10.0.0.0/23.
    let excluded = [ipnet("fd00::1/64"), ipnet("10.0.0.5/23"), ipnet("::/0")];
    assert_eq!(
        allocate_subnet(&c, &[], &excluded).unwrap(),
        net("10.0.2.0/24")
    );
}

#[test]
fn blocker_covering_the_whole_pool_moves_to_next_pool() {
    let c = cfg(&["10.20.0.0/16", "192.168.0.0/16"], 24);
    // A host route 10.0.0.0/8 starts before the first pool and covers it entirely.
    assert_eq!(
        allocate_subnet(&c, &[], &[ipnet("10.0.0.0/8")]).unwrap(),
        net("192.168.0.0/24")
    );
}

#[test]
fn top_of_address_space_does_not_overflow() {
    let c = cfg(&["255.255.255.0/24"], 29);
    let mut in_use = Vec::new();
    for _ in 0..32 {
        in_use.push(allocate_subnet(&c, &in_use, &[]).unwrap());
    }
    assert_eq!(in_use.last().copied(), Some(net("255.255.255.248/29")));
    assert!(matches!(
        allocate_subnet(&c, &in_use, &[]),
        Err(IpamError::Exhausted { .. })
    ));
    // Whole space pool.
    let c = cfg(&["0.0.0.0/0"], 1);
    assert_eq!(
        allocate_subnet(&c, &[net("0.0.0.0/1")], &[]).unwrap(),
        net("128.0.0.0/1")
    );
    assert!(allocate_subnet(&c, &[net("0.0.0.0/1"), net("128.0.0.0/1")], &[]).is_err());
}

#[test]
fn exhausted_message_names_pools_and_mask() {
    let c = cfg(&["10.20.0.0/16"], 26);
    let err = allocate_subnet(&c, &[], &[ipnet("10.20.0.0/16")]).unwrap_err();
    assert_eq!(
        err,
        IpamError::Exhausted {
            pools: vec![net("10.20.0.0/16")],
            mask_length: 26
        }
    );
    assert_eq!(
        err.to_string(),
        "no more subnets available in pools 10.20.0.0/16 with mask /26"
    );
    let c = cfg(&["10.20.0.0/29", "10.30.0.0/29"], 29);
    let err = allocate_subnet(&c, &[net("10.20.0.0/29"), net("10.30.0.0/29")], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no more subnets available in pools 10.20.0.0/29, 10.30.0.0/29 with mask /29"
    );
}

#[test]
fn invalid_hand_built_config_is_reported() {
    let bad = PoolConfig {
        pools: vec![net("10.20.0.0/16")],
        mask_length: 8,
    };
    assert!(matches!(
        allocate_subnet(&bad, &[], &[]),
        Err(IpamError::MaskShorterThanPool { .. })
    ));
    let bad = PoolConfig {
        pools: vec![net("10.20.0.1/16")],
        mask_length: 24,
    };
    assert!(matches!(
        allocate_subnet(&bad, &[], &[]),
        Err(IpamError::NotCanonical { .. })
    ));
    let empty = PoolConfig {
        pools: vec![],
        mask_length: 0,
    };
    assert_eq!(
        allocate_subnet(&empty, &[], &[]).unwrap(),
        net("10.0.0.0/24")
    );
}

#[test]
fn slash8_into_slash29_with_thousands_in_use_is_fast() {
    let c = cfg(&["10.0.0.0/8"], 29);
    // 200k consecutive /29s in use (plus a hole near the end), given in reverse order.
    let n: u32 = 200_000;
    let base = u32::from(addr("10.0.0.0"));
    let mut in_use: Vec<Ipv4Net> = (0..n)
        .filter(|i| *i != n - 3)
        .map(|i| Ipv4Net::new(Ipv4Addr::from(base + i * 8), 29).unwrap())
        .collect();
    in_use.reverse();
    let start = std::time::Instant::now();
    let got = allocate_subnet(&c, &in_use, &[]).unwrap();
    assert_eq!(
        got,
        Ipv4Net::new(Ipv4Addr::from(base + (n - 3) * 8), 29).unwrap()
    );
    // Fill the hole: the next one is right after the block.
    in_use.push(got);
    let got = allocate_subnet(&c, &in_use, &[]).unwrap();
    assert_eq!(got, Ipv4Net::new(Ipv4Addr::from(base + n * 8), 29).unwrap());
    // Generous bound: a candidate-by-candidate scan would be O(n^2) here.
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

// ---------------------------------------------------------------- validate_explicit

#[test]
fn explicit_subnet_with_default_gateway() {
    assert_eq!(
        validate_explicit(net("10.50.0.0/16"), None, &[net("10.20.0.0/16")], &[]).unwrap(),
        (net("10.50.0.0/16"), addr("10.50.0.1"))
    );
    // /30 is the smallest accepted, /1 the largest.
    assert_eq!(
        validate_explicit(net("10.50.0.4/30"), None, &[], &[]).unwrap(),
        (net("10.50.0.4/30"), addr("10.50.0.5"))
    );
    assert!(validate_explicit(net("0.0.0.0/1"), None, &[], &[]).is_ok());
}

#[test]
fn explicit_subnet_with_given_gateway() {
    assert_eq!(
        validate_explicit(net("10.50.0.0/24"), Some(addr("10.50.0.254")), &[], &[]).unwrap(),
        (net("10.50.0.0/24"), addr("10.50.0.254"))
    );
}

#[test]
fn explicit_subnet_not_canonical() {
    let err = validate_explicit(net("10.50.3.7/16"), None, &[], &[]).unwrap_err();
    assert_eq!(
        err,
        IpamError::NotCanonical {
            given: net("10.50.3.7/16"),
            canonical: net("10.50.0.0/16"),
        }
    );
    assert!(err.to_string().contains("did you mean 10.50.0.0/16"));
}

#[test]
fn explicit_subnet_too_small_or_too_large() {
    for s in ["10.50.0.0/31", "10.50.0.1/32"] {
        let err = validate_explicit(net(s), None, &[], &[]).unwrap_err();
        assert_eq!(
            err,
            IpamError::SubnetTooSmall {
                subnet: net(s),
                max: 30
            }
        );
        let msg = err.to_string();
        assert!(msg.contains(s), "{msg}");
        assert!(msg.contains("/1 to /30"), "{msg}");
    }
    let err = validate_explicit(net("0.0.0.0/0"), None, &[], &[]).unwrap_err();
    assert_eq!(
        err,
        IpamError::SubnetTooLarge {
            subnet: net("0.0.0.0/0"),
            max: 30
        }
    );
    assert!(err.to_string().contains("0.0.0.0/0"));
}

#[test]
fn explicit_subnet_overlapping_network_names_it() {
    let in_use = [
        net("10.20.0.0/16"),
        net("10.50.1.0/24"),
        net("10.50.2.0/24"),
    ];
    let err = validate_explicit(net("10.50.0.0/16"), None, &in_use, &[]).unwrap_err();
    assert_eq!(
        err,
        IpamError::OverlapsNetwork {
            subnet: net("10.50.0.0/16"),
            existing: net("10.50.1.0/24"),
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("10.50.0.0/16"), "{msg}");
    assert!(msg.contains("10.50.1.0/24"), "{msg}");
    // Smaller subnet inside an existing one.
    let err = validate_explicit(net("10.20.5.0/24"), None, &in_use, &[]).unwrap_err();
    assert!(
        matches!(err, IpamError::OverlapsNetwork { existing, .. } if existing == net("10.20.0.0/16"))
    );
}

#[test]
fn explicit_subnet_overlapping_underlay_names_it() {
    let excluded = [ipnet("2001:db8::5/64"), ipnet("192.168.1.5/24")];
    let err = validate_explicit(net("192.168.0.0/16"), None, &[], &excluded).unwrap_err();
    assert_eq!(
        err,
        IpamError::OverlapsUnderlay {
            subnet: net("192.168.0.0/16"),
            underlay: net("192.168.1.0/24"),
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("192.168.0.0/16"), "{msg}");
    assert!(msg.contains("underlay network 192.168.1.0/24"), "{msg}");
    // Adjacent to the underlay is fine.
    assert!(validate_explicit(net("192.168.2.0/24"), None, &[], &excluded).is_ok());
}

#[test]
fn explicit_gateway_outside_subnet() {
    let err =
        validate_explicit(net("10.50.0.0/24"), Some(addr("10.51.0.1")), &[], &[]).unwrap_err();
    assert_eq!(
        err,
        IpamError::GatewayOutsideSubnet {
            gateway: addr("10.51.0.1"),
            subnet: net("10.50.0.0/24"),
            first: addr("10.50.0.1"),
            last: addr("10.50.0.254"),
        }
    );
    assert_eq!(
        err.to_string(),
        "gateway 10.51.0.1 is outside subnet 10.50.0.0/24; accepted: a host address from 10.50.0.1 to 10.50.0.254"
    );
}

#[test]
fn explicit_gateway_network_or_broadcast() {
    let err =
        validate_explicit(net("10.50.0.0/24"), Some(addr("10.50.0.0")), &[], &[]).unwrap_err();
    assert!(matches!(
        err,
        IpamError::GatewayReserved {
            kind: ReservedKind::Network,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "gateway 10.50.0.0 is the network address of subnet 10.50.0.0/24; accepted: a host address from 10.50.0.1 to 10.50.0.254"
    );
    let err =
        validate_explicit(net("10.50.0.0/24"), Some(addr("10.50.0.255")), &[], &[]).unwrap_err();
    assert!(matches!(
        err,
        IpamError::GatewayReserved {
            kind: ReservedKind::Broadcast,
            ..
        }
    ));
    assert!(err.to_string().contains("broadcast address"));
}

#[test]
fn default_gateway_is_first_host() {
    assert_eq!(default_gateway(net("10.20.0.0/16")), addr("10.20.0.1"));
    assert_eq!(default_gateway(net("10.20.0.64/26")), addr("10.20.0.65"));
    // Does not wrap around.
    assert_eq!(
        default_gateway(net("255.255.255.255/32")),
        addr("255.255.255.255")
    );
}

// ---------------------------------------------------------------- VNI

#[test]
fn vni_lowest_free() {
    assert_eq!(allocate_vni(&BTreeSet::new()).unwrap(), VNI_MIN);
    let in_use: BTreeSet<u32> = [1, 4095, 4096, 4097, 4099].into_iter().collect();
    assert_eq!(allocate_vni(&in_use).unwrap(), 4098);
    let in_use: BTreeSet<u32> = [4097].into_iter().collect();
    assert_eq!(allocate_vni(&in_use).unwrap(), 4096);
}

#[test]
fn vni_exhausted() {
    let all: BTreeSet<u32> = (VNI_MIN..=VNI_MAX).collect();
    let err = allocate_vni(&all).unwrap_err();
    assert_eq!(
        err,
        IpamError::VniExhausted {
            min: VNI_MIN,
            max: VNI_MAX
        }
    );
    assert_eq!(
        err.to_string(),
        "no more VNIs available: all of 4096 to 16777215 are in use"
    );
    // Freeing the last one makes it available again.
    let mut almost = all;
    almost.remove(&VNI_MAX);
    assert_eq!(allocate_vni(&almost).unwrap(), VNI_MAX);
}

// ---------------------------------------------------------------- addresses

#[test]
fn address_lowest_free_skips_gateway_and_in_use() {
    let subnet = net("10.20.0.0/24");
    let gw = addr("10.20.0.1");
    assert_eq!(
        allocate_address(subnet, gw, &BTreeSet::new()).unwrap(),
        addr("10.20.0.2")
    );
    let in_use: BTreeSet<Ipv4Addr> = [addr("10.20.0.2"), addr("10.20.0.3"), addr("10.99.0.4")]
        .into_iter()
        .collect();
    assert_eq!(
        allocate_address(subnet, gw, &in_use).unwrap(),
        addr("10.20.0.4")
    );
    // Gateway elsewhere in the subnet: .1 is free.
    assert_eq!(
        allocate_address(subnet, addr("10.20.0.254"), &BTreeSet::new()).unwrap(),
        addr("10.20.0.1")
    );
}

#[test]
fn address_exhausted() {
    let subnet = net("10.20.0.0/29");
    let gw = addr("10.20.0.1");
    let in_use: BTreeSet<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 20, 0, i)).collect();
    let err = allocate_address(subnet, gw, &in_use).unwrap_err();
    assert_eq!(err, IpamError::AddressExhausted { subnet });
    assert_eq!(
        err.to_string(),
        "no more addresses available in subnet 10.20.0.0/29"
    );
    // Degenerate subnets have no host addresses and do not overflow.
    for s in [
        "10.20.0.0/31",
        "255.255.255.255/32",
        "0.0.0.0/32",
        "255.255.255.254/31",
    ] {
        let subnet = net(s);
        assert_eq!(
            allocate_address(subnet, default_gateway(subnet), &BTreeSet::new()),
            Err(IpamError::AddressExhausted { subnet })
        );
    }
}

#[test]
fn validate_address_errors() {
    let subnet = net("10.20.0.0/24");
    let gw = addr("10.20.0.1");
    let in_use: BTreeSet<Ipv4Addr> = [addr("10.20.0.7")].into_iter().collect();

    assert_eq!(
        validate_address(subnet, gw, &in_use, addr("10.20.0.8")),
        Ok(())
    );

    let err = validate_address(subnet, gw, &in_use, addr("10.21.0.8")).unwrap_err();
    assert_eq!(
        err,
        IpamError::AddressOutsideSubnet {
            address: addr("10.21.0.8"),
            subnet
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("10.21.0.8") && msg.contains("outside subnet 10.20.0.0/24"),
        "{msg}"
    );

    for (a, kind, word) in [
        ("10.20.0.0", ReservedKind::Network, "network address"),
        ("10.20.0.255", ReservedKind::Broadcast, "broadcast address"),
        ("10.20.0.1", ReservedKind::Gateway, "gateway address"),
    ] {
        let err = validate_address(subnet, gw, &in_use, addr(a)).unwrap_err();
        assert_eq!(
            err,
            IpamError::AddressReserved {
                address: addr(a),
                subnet,
                kind
            }
        );
        let msg = err.to_string();
        assert!(msg.contains(a) && msg.contains(word), "{msg}");
    }

    let err = validate_address(subnet, gw, &in_use, addr("10.20.0.7")).unwrap_err();
    assert_eq!(
        err,
        IpamError::AddressInUse {
            address: addr("10.20.0.7"),
            subnet
        }
    );
    assert_eq!(
        err.to_string(),
        "address 10.20.0.7 is already in use in subnet 10.20.0.0/24; accepted: a free host address of 10.20.0.0/24 other than the gateway"
    );
}

// ---------------------------------------------------------------- parsing

#[test]
fn parse_cidr_ok_and_errors() {
    assert_eq!(
        parse_ipv4_cidr("10.20.0.0/16").unwrap(),
        net("10.20.0.0/16")
    );
    assert_eq!(
        parse_ipv4_cidr(" 10.20.0.0/16\n").unwrap(),
        net("10.20.0.0/16")
    );
    // Host bits are kept: canonicality is checked by the callers with a better message.
    assert_eq!(
        parse_ipv4_cidr("10.20.0.1/16").unwrap(),
        net("10.20.0.1/16")
    );

    let err = parse_ipv4_cidr("10.0.0/8").unwrap_err();
    assert_eq!(
        err,
        IpamError::InvalidCidr {
            input: "10.0.0/8".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "invalid CIDR \"10.0.0/8\": expected an IPv4 prefix like 10.20.0.0/16"
    );
    for bad in [
        "",
        "10.0.0.0",
        "10.0.0.0/33",
        "10.0.0.0/",
        "/8",
        "fd00::/64",
        "256.0.0.0/8",
        "10.0.0.0/8/8",
        "ten/8",
    ] {
        assert!(
            matches!(parse_ipv4_cidr(bad), Err(IpamError::InvalidCidr { .. })),
            "{bad}"
        );
    }
}

#[test]
fn errors_round_trip_through_serde() {
    let errors = [
        IpamError::InvalidCidr { input: "x".into() },
        IpamError::Exhausted {
            pools: vec![net("10.20.0.0/16")],
            mask_length: 26,
        },
        IpamError::AddressReserved {
            address: addr("10.0.0.1"),
            subnet: net("10.0.0.0/24"),
            kind: ReservedKind::Gateway,
        },
        IpamError::VniExhausted {
            min: VNI_MIN,
            max: VNI_MAX,
        },
    ];
    for err in errors {
        let json = serde_json::to_string(&err).unwrap();
        assert_eq!(serde_json::from_str::<IpamError>(&json).unwrap(), err);
    }
}
