//! Property tests for secnet-ipam, against the public API only.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use secnet_ipam::*;

/// Whether two prefixes share an address (independent re-implementation for the oracle).
fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn overlaps_any(candidate: &Ipv4Net, in_use: &[Ipv4Net], excluded: &[IpNet]) -> bool {
    in_use.iter().any(|n| overlaps(candidate, n))
        || excluded.iter().any(|e| match e {
            IpNet::V4(v4) => overlaps(candidate, &v4.trunc()),
            IpNet::V6(_) => false,
        })
}

/// Naive first-fit reference: every candidate of every pool, in order.
fn naive_allocate(cfg: &PoolConfig, in_use: &[Ipv4Net], excluded: &[IpNet]) -> Option<Ipv4Net> {
    for pool in &cfg.pools {
        for candidate in pool.subnets(cfg.mask_length).unwrap() {
            if !overlaps_any(&candidate, in_use, excluded) {
                return Some(candidate);
            }
        }
    }
    None
}

/// A canonical IPv4 prefix with a prefix length in `lengths`.
fn prefix(lengths: std::ops::RangeInclusive<u8>) -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), lengths)
        .prop_map(|(a, len)| Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc())
}

/// Pools and blockers live in 8 slots of 4096 addresses from this base, so they meet often.
const BASE: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 0);
const SLOTS: u32 = 8;
const SLOT_SIZE: u32 = 4096;

/// A small valid pool configuration: 1-3 disjoint pools of /20../28, each at the start of a
/// slot, with a mask up to 4 bits longer than the smallest pool.
fn small_config() -> impl Strategy<Value = PoolConfig> {
    (prop::collection::vec((0..SLOTS, 20u8..=28), 1..=3), 0u8..=4).prop_filter_map(
        "pools must be disjoint",
        |(pools, extra)| {
            let pools: Vec<Ipv4Net> = pools
                .into_iter()
                .map(|(slot, len)| {
                    Ipv4Net::new(Ipv4Addr::from(u32::from(BASE) + slot * SLOT_SIZE), len)
                        .unwrap()
                        .trunc()
                })
                .collect();
            let longest = pools.iter().map(Ipv4Net::prefix_len).max().unwrap();
            let mask = (longest + extra).min(MAX_MASK_LENGTH);
            PoolConfig::new(pools, mask).ok()
        },
    )
}

/// Random blockers in the slots (any size, host bits possibly set), mostly near the start of a
/// slot where the pools' first candidates are.
fn blocker() -> impl Strategy<Value = Ipv4Net> {
    let near_pool_start = (0..SLOTS, 0u32..512, 21u8..=32)
        .prop_map(|(slot, offset, len)| (slot * SLOT_SIZE + offset, len));
    let anywhere = (0..SLOTS * SLOT_SIZE, 18u8..=32);
    prop_oneof![3 => near_pool_start, 1 => anywhere].prop_map(|(offset, len)| {
        Ipv4Net::new(Ipv4Addr::from(u32::from(BASE) + offset), len).unwrap()
    })
}

fn excluded_entry() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        3 => blocker().prop_map(IpNet::V4),
        1 => (any::<u128>(), 0u8..=128)
            .prop_map(|(a, len)| IpNet::V6(Ipv6Net::new(a.into(), len).unwrap())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Repeated allocation never hands out overlapping subnets, stays in the pools, has the
    /// configured size, and avoids the underlay.
    #[test]
    fn no_double_allocation(
        cfg in small_config(),
        excluded in prop::collection::vec(excluded_entry(), 0..6),
        rounds in 1usize..40,
    ) {
        let mut allocated: Vec<Ipv4Net> = Vec::new();
        for _ in 0..rounds {
            match allocate_subnet(&cfg, &allocated, &excluded) {
                Ok(subnet) => {
                    prop_assert_eq!(subnet.prefix_len(), cfg.mask_length);
                    prop_assert_eq!(subnet, subnet.trunc());
                    prop_assert!(cfg.pools.iter().any(|p| p.contains(&subnet)));
                    prop_assert!(!overlaps_any(&subnet, &allocated, &excluded));
                    allocated.push(subnet);
                }
                Err(err) => {
                    prop_assert_eq!(
                        err,
                        IpamError::Exhausted { pools: cfg.pools.clone(), mask_length: cfg.mask_length }
                    );
                    prop_assert!(naive_allocate(&cfg, &allocated, &excluded).is_none());
                    break;
                }
            }
        }
    }

    /// The fast first-fit equals a naive scan of every candidate in order.
    #[test]
    fn first_fit_matches_naive(
        cfg in small_config(),
        in_use in prop::collection::vec(blocker().prop_map(|n| n.trunc()), 0..12),
        excluded in prop::collection::vec(excluded_entry(), 0..6),
    ) {
        let fast = allocate_subnet(&cfg, &in_use, &excluded).ok();
        prop_assert_eq!(fast, naive_allocate(&cfg, &in_use, &excluded));
    }

    /// Freed subnets are reused: after removing one, the next allocation is the lowest free
    /// one, which is exactly the removed one when it is the lowest free.
    #[test]
    fn freed_subnet_is_reused(
        cfg in small_config(),
        excluded in prop::collection::vec(excluded_entry(), 0..4),
        k in 1usize..20,
        pick in any::<prop::sample::Index>(),
    ) {
        let mut allocated = Vec::new();
        for _ in 0..k {
            match allocate_subnet(&cfg, &allocated, &excluded) {
                Ok(s) => allocated.push(s),
                Err(_) => break,
            }
        }
        prop_assume!(!allocated.is_empty());
        let removed = allocated.remove(pick.index(allocated.len()));
        let next = allocate_subnet(&cfg, &allocated, &excluded).unwrap();
        prop_assert_eq!(Some(next), naive_allocate(&cfg, &allocated, &excluded));
        // Everything was allocated first-fit, so nothing before `removed` is free.
        prop_assert_eq!(next, removed);
    }

    /// Result does not depend on the order of `in_use` or `excluded` (determinism).
    #[test]
    fn allocation_is_order_independent(
        cfg in small_config(),
        mut in_use in prop::collection::vec(blocker().prop_map(|n| n.trunc()), 0..12),
        mut excluded in prop::collection::vec(excluded_entry(), 0..6),
    ) {
        let a = allocate_subnet(&cfg, &in_use, &excluded);
        in_use.reverse();
        excluded.reverse();
        prop_assert_eq!(a, allocate_subnet(&cfg, &in_use, &excluded));
    }

    /// Explicit subnets are accepted exactly when they are canonical, /1../30, and overlap no
    /// existing network and no underlay prefix.
    #[test]
    fn explicit_overlap_exclusion(
        subnet in prop_oneof![3 => blocker().prop_map(|n| n.trunc()), 1 => blocker()],
        in_use in prop::collection::vec(blocker().prop_map(|n| n.trunc()), 0..8),
        excluded in prop::collection::vec(excluded_entry(), 0..6),
    ) {
        let result = validate_explicit(subnet, None, &in_use, &excluded);
        let canonical = subnet == subnet.trunc();
        let size_ok = (1..=30).contains(&subnet.prefix_len());
        let free = !overlaps_any(&subnet, &in_use, &excluded);
        match result {
            Ok((s, gw)) => {
                prop_assert!(canonical && size_ok && free);
                prop_assert_eq!(s, subnet);
                prop_assert_eq!(gw, default_gateway(subnet));
                prop_assert!(subnet.contains(&gw));
                prop_assert!(gw != subnet.network() && gw != subnet.broadcast());
            }
            Err(IpamError::NotCanonical { canonical: c, .. }) => {
                prop_assert!(!canonical);
                prop_assert_eq!(c, subnet.trunc());
            }
            Err(IpamError::SubnetTooSmall { .. }) => prop_assert!(canonical && !size_ok),
            Err(IpamError::OverlapsNetwork { existing, .. }) => {
                prop_assert!(canonical && size_ok);
                prop_assert!(in_use.contains(&existing) && overlaps(&subnet, &existing));
            }
            Err(IpamError::OverlapsUnderlay { underlay, .. }) => {
                prop_assert!(canonical && size_ok);
                prop_assert!(!in_use.iter().any(|n| overlaps(&subnet, n)));
                prop_assert!(overlaps(&subnet, &underlay));
                prop_assert!(excluded.contains(&IpNet::V4(underlay))
                    || excluded.iter().any(|e| matches!(e, IpNet::V4(v) if v.trunc() == underlay)));
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    /// An explicit gateway is accepted exactly when it is a host address of the subnet.
    #[test]
    fn explicit_gateway(subnet in prefix(1..=30), offset in any::<u32>(), outside in any::<u32>()) {
        let size = 1u64 << (32 - subnet.prefix_len());
        let inside = Ipv4Addr::from(u32::from(subnet.network()) + (u64::from(offset) % size) as u32);
        let result = validate_explicit(subnet, Some(inside), &[], &[]);
        if inside == subnet.network() || inside == subnet.broadcast() {
            let is_reserved = matches!(result, Err(IpamError::GatewayReserved { .. }));
            prop_assert!(is_reserved);
        } else {
            prop_assert_eq!(result, Ok((subnet, inside)));
        }
        let outside = Ipv4Addr::from(outside);
        if !subnet.contains(&outside) {
            let is_outside = matches!(
                validate_explicit(subnet, Some(outside), &[], &[]),
                Err(IpamError::GatewayOutsideSubnet { .. })
            );
            prop_assert!(is_outside);
        }
    }

    /// Random mask lengths against random pools: accepted exactly when pool prefix <= mask <= 29
    /// (0 meaning 24), and the result always allocates a subnet of that size.
    #[test]
    fn mask_validation(pool in prefix(0..=32), mask in 0u8..=40) {
        let effective = if mask == 0 { DEFAULT_MASK_LENGTH } else { mask };
        let result = PoolConfig::new(vec![pool], mask);
        if pool.prefix_len() > MAX_MASK_LENGTH {
            prop_assert_eq!(result, Err(IpamError::PoolTooSmall { pool, max: MAX_MASK_LENGTH }));
        } else if effective > MAX_MASK_LENGTH {
            prop_assert_eq!(
                result,
                Err(IpamError::MaskLengthOutOfRange { mask_length: effective, max: MAX_MASK_LENGTH })
            );
        } else if effective < pool.prefix_len() {
            prop_assert_eq!(
                result,
                Err(IpamError::MaskShorterThanPool { mask_length: effective, pool, max: MAX_MASK_LENGTH })
            );
        } else {
            let cfg = result.unwrap();
            prop_assert_eq!(cfg.mask_length, effective);
            let subnet = allocate_subnet(&cfg, &[], &[]).unwrap();
            prop_assert_eq!(subnet, Ipv4Net::new(pool.network(), effective).unwrap());
        }
    }

    /// Non-canonical pools are rejected with the canonical form suggested.
    #[test]
    fn non_canonical_pool(pool in (any::<u32>(), 1u8..=29).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap())) {
        let result = PoolConfig::new(vec![pool], 29);
        if pool == pool.trunc() {
            prop_assert!(result.is_ok());
        } else {
            prop_assert_eq!(result, Err(IpamError::NotCanonical { given: pool, canonical: pool.trunc() }));
        }
    }

    /// The VNI is the lowest free one in range.
    #[test]
    fn vni_lowest_free(in_use in prop::collection::btree_set(
        prop_oneof![0u32..4200, VNI_MIN..VNI_MIN + 200, VNI_MAX - 10..=u32::MAX], 0..300,
    )) {
        let vni = allocate_vni(&in_use).unwrap();
        prop_assert!((VNI_MIN..=VNI_MAX).contains(&vni));
        prop_assert!(!in_use.contains(&vni));
        prop_assert!((VNI_MIN..vni).all(|v| in_use.contains(&v)));
    }

    /// Dense VNI allocation: allocate k, free one, the freed one comes back.
    #[test]
    fn vni_reuse(k in 1usize..100, pick in any::<prop::sample::Index>()) {
        let mut in_use = BTreeSet::new();
        for _ in 0..k {
            let v = allocate_vni(&in_use).unwrap();
            prop_assert!(in_use.insert(v));
        }
        let removed = *in_use.iter().nth(pick.index(k)).unwrap();
        in_use.remove(&removed);
        prop_assert_eq!(allocate_vni(&in_use).unwrap(), removed);
    }

    /// Endpoint addresses: lowest free host address, never network/broadcast/gateway, and
    /// validate_address agrees.
    #[test]
    fn address_lowest_free_never_reserved(
        subnet in prefix(24..=30),
        gw_offset in any::<u32>(),
        in_use in prop::collection::btree_set(any::<u8>(), 0..64),
    ) {
        let size = 1u32 << (32 - subnet.prefix_len());
        let network = u32::from(subnet.network());
        let gateway = Ipv4Addr::from(network + 1 + gw_offset % (size - 2));
        let in_use: BTreeSet<Ipv4Addr> =
            in_use.into_iter().map(|o| Ipv4Addr::from(network + u32::from(o) % size)).collect();
        let hosts = || (network + 1..network + size - 1).map(Ipv4Addr::from);
        let free = |a: &Ipv4Addr| *a != gateway && !in_use.contains(a);
        match allocate_address(subnet, gateway, &in_use) {
            Ok(a) => {
                prop_assert_eq!(Some(a), hosts().find(free));
                prop_assert!(a != subnet.network() && a != subnet.broadcast() && a != gateway);
                prop_assert_eq!(validate_address(subnet, gateway, &in_use, a), Ok(()));
            }
            Err(e) => {
                prop_assert_eq!(e, IpamError::AddressExhausted { subnet });
                prop_assert!(!hosts().any(|a| free(&a)));
            }
        }
        for a in [subnet.network(), subnet.broadcast(), gateway] {
            let is_reserved = matches!(
                validate_address(subnet, gateway, &in_use, a),
                Err(IpamError::AddressReserved { .. })
            );
            prop_assert!(is_reserved);
        }
        for a in &in_use {
            if *a != subnet.network() && *a != subnet.broadcast() && *a != gateway {
                prop_assert_eq!(
                    validate_address(subnet, gateway, &in_use, *a),
                    Err(IpamError::AddressInUse { address: *a, subnet })
                );
            }
        }
    }

    /// Parsing never panics, and whatever parses is a prefix that prints back equivalently.
    #[test]
    fn parse_never_panics(s in any::<String>()) {
        match parse_ipv4_cidr(&s) {
            Ok(net) => prop_assert_eq!(parse_ipv4_cidr(&net.to_string()), Ok(net)),
            Err(e) => {
                prop_assert_eq!(e.clone(), IpamError::InvalidCidr { input: s.clone() });
                let _ = e.to_string();
            }
        }
    }

    /// Parsing CIDR-looking strings never panics either (arbitrary strings rarely get close).
    #[test]
    fn parse_cidr_like_never_panics(s in "[0-9./ :a-f]{0,24}") {
        let _ = parse_ipv4_cidr(&s);
    }
}
