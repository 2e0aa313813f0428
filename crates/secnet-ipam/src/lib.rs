//! IP address management (IPAM) for secnet overlay networks: pure logic, no I/O.
//!
//! # Model
//!
//! secnet hands out three kinds of numbers when a network or an endpoint is created:
//!
//! * an IPv4 **subnet** for each overlay network, either chosen automatically from the configured
//!   address pools ([`allocate_subnet`]) or given explicitly by the user ([`validate_explicit`]);
//! * a VXLAN **VNI** for each overlay network ([`allocate_vni`]);
//! * an IPv4 **address** for each endpoint inside a network's subnet ([`allocate_address`],
//!   [`validate_address`]).
//!
//! Every function here is **stateless**: it takes the complete set of what is currently allocated
//! (e.g. the subnets of all existing networks) and computes an answer from it. There is no
//! allocator object to keep in sync with the cluster store. Freeing is therefore implicit: once
//! the caller removes a network from its table, its subnet and VNI simply stop appearing in the
//! `in_use` arguments and become available again.
//!
//! The functions are called while applying a command in the Raft state machine, so every replica
//! must compute exactly the same answer from the same inputs. They are fully **deterministic**:
//! no randomness, no clock, no hash-map iteration order. Allocation is always *first fit*: the
//! lowest free value, scanning pools in the order the user configured them. First fit also makes
//! the result easy to predict and to test (a freed subnet is reused as soon as it is the lowest
//! free one), and it packs allocations densely, which keeps the rest of the pool in large
//! contiguous blocks.
//!
//! Subnets are also kept clear of the nodes' **underlay** networks (the addresses and routes of
//! the hosts' real interfaces, passed as `excluded`). Docker Swarm did not do this and handed out
//! overlay subnets that collided with host routes, making the host (or its peers) unreachable
//! once the overlay's routes were installed (moby #50011, moby #48069). Overlapping an underlay
//! prefix is never useful for an overlay, so it is treated like overlapping another network.
//!
//! Errors ([`IpamError`]) are shown to users directly as CLI errors, so each message names the
//! offending value and says what would be accepted. The error type is serializable because it
//! crosses the Raft state machine boundary.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

/// The address pool used when the user configures none. Same default as Docker Swarm.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";

/// The prefix length of automatically allocated subnets when the user configures none (or 0).
/// Same default as Docker Swarm: a /24 gives 253 endpoint addresses per network.
pub const DEFAULT_MASK_LENGTH: u8 = 24;

/// The longest accepted prefix length (smallest subnet) for automatic allocation.
///
/// A /29 has 8 addresses: the network address and the broadcast address are unusable, one more
/// goes to the gateway, which leaves 5 for endpoints. A /30 would leave a single endpoint
/// address, which is not a useful overlay network, and /31 and /32 have no room at all once the
/// network, broadcast and gateway addresses are reserved.
pub const MAX_MASK_LENGTH: u8 = 29;

/// The lowest VNI handed out. VNIs below 4096 are left free so that they can never be confused
/// with (or collide with) 802.1Q VLAN IDs, which only go up to 4095; Docker Swarm does the same.
pub const VNI_MIN: u32 = 4096;

/// The highest VNI: VXLAN VNIs are 24-bit numbers.
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// The longest prefix length accepted for an explicit `--subnet`. A /30 still has two host
/// addresses (gateway + one endpoint); /31 and /32 have no room once network, broadcast and
/// gateway are reserved.
pub const MAX_EXPLICIT_PREFIX_LENGTH: u8 = 30;

/// Why an address inside a subnet cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservedKind {
    /// The first address of the subnet (all host bits zero).
    Network,
    /// The last address of the subnet (all host bits one).
    Broadcast,
    /// The subnet's gateway address.
    Gateway,
}

impl fmt::Display for ReservedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReservedKind::Network => "network address",
            ReservedKind::Broadcast => "broadcast address",
            ReservedKind::Gateway => "gateway address",
        })
    }
}

/// Errors from IPAM validation and allocation. The messages are shown to users as-is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IpamError {
    /// A CIDR string given by the user could not be parsed as an IPv4 prefix.
    #[error("invalid CIDR {input:?}: expected an IPv4 prefix like 10.20.0.0/16")]
    InvalidCidr {
        /// The text as the user gave it.
        input: String,
    },
    /// A prefix has host bits set (e.g. 10.20.0.1/16 instead of 10.20.0.0/16).
    #[error("{given} is not a valid network prefix: its host bits must be zero; did you mean {canonical}?")]
    NotCanonical {
        /// The prefix as given.
        given: Ipv4Net,
        /// The same prefix with the host bits cleared.
        canonical: Ipv4Net,
    },
    /// The subnet size for automatic allocation is longer than [`MAX_MASK_LENGTH`].
    #[error("subnet size is out of range: /{mask_length}; accepted: the pool prefix length up to /{max}")]
    MaskLengthOutOfRange {
        /// The requested prefix length.
        mask_length: u8,
        /// The longest accepted prefix length ([`MAX_MASK_LENGTH`]).
        max: u8,
    },
    /// The subnet size for automatic allocation is larger than one of the pools.
    #[error("subnet size /{mask_length} is larger than address pool {pool}; accepted: /{} up to /{max}", .pool.prefix_len())]
    MaskShorterThanPool {
        /// The requested prefix length.
        mask_length: u8,
        /// The pool that cannot hold a subnet of that size.
        pool: Ipv4Net,
        /// The longest accepted prefix length ([`MAX_MASK_LENGTH`]).
        max: u8,
    },
    /// An address pool is too small to hold even one subnet of the smallest accepted size.
    #[error("address pool {pool} is too small; accepted: pools with a prefix length up to /{max}")]
    PoolTooSmall {
        /// The pool that is too small.
        pool: Ipv4Net,
        /// The longest accepted pool prefix length ([`MAX_MASK_LENGTH`]).
        max: u8,
    },
    /// Two configured address pools share addresses.
    #[error("address pools {first} and {second} overlap; accepted: pools that share no addresses")]
    OverlappingPools {
        /// The pool given first.
        first: Ipv4Net,
        /// The pool given later that overlaps it.
        second: Ipv4Net,
    },
    /// Every subnet of the requested size in the pools is in use or overlaps an underlay network.
    #[error("no more subnets available in pools {} with mask /{mask_length}", join(.pools))]
    Exhausted {
        /// The pools that were searched, in order.
        pools: Vec<Ipv4Net>,
        /// The prefix length that was requested.
        mask_length: u8,
    },
    /// An explicit subnet is too small (/31 or /32) to hold a gateway and endpoints.
    #[error("subnet {subnet} is too small: it has no room for a gateway and endpoints; accepted: prefix lengths /1 to /{max}")]
    SubnetTooSmall {
        /// The subnet as given.
        subnet: Ipv4Net,
        /// The longest accepted prefix length ([`MAX_EXPLICIT_PREFIX_LENGTH`]).
        max: u8,
    },
    /// An explicit subnet is the whole IPv4 address space (/0).
    #[error("subnet {subnet} is too large: it covers every IPv4 address; accepted: prefix lengths /1 to /{max}")]
    SubnetTooLarge {
        /// The subnet as given.
        subnet: Ipv4Net,
        /// The longest accepted prefix length ([`MAX_EXPLICIT_PREFIX_LENGTH`]).
        max: u8,
    },
    /// An explicit subnet overlaps the subnet of an existing network.
    #[error("subnet {subnet} overlaps subnet {existing} of an existing network; accepted: a subnet that shares no addresses with existing networks")]
    OverlapsNetwork {
        /// The requested subnet.
        subnet: Ipv4Net,
        /// The existing network's subnet it overlaps.
        existing: Ipv4Net,
    },
    /// An explicit subnet overlaps a network or route of a node's underlay interfaces.
    #[error("subnet {subnet} overlaps underlay network {underlay} used by a node's host interfaces; accepted: a subnet that shares no addresses with the hosts' networks")]
    OverlapsUnderlay {
        /// The requested subnet.
        subnet: Ipv4Net,
        /// The underlay prefix it overlaps (host bits cleared).
        underlay: Ipv4Net,
    },
    /// The requested gateway is not inside the subnet.
    #[error("gateway {gateway} is outside subnet {subnet}; accepted: a host address from {first} to {last}")]
    GatewayOutsideSubnet {
        /// The requested gateway.
        gateway: Ipv4Addr,
        /// The subnet.
        subnet: Ipv4Net,
        /// The first usable host address of the subnet.
        first: Ipv4Addr,
        /// The last usable host address of the subnet.
        last: Ipv4Addr,
    },
    /// The requested gateway is the network or broadcast address of the subnet.
    #[error("gateway {gateway} is the {kind} of subnet {subnet}; accepted: a host address from {first} to {last}")]
    GatewayReserved {
        /// The requested gateway.
        gateway: Ipv4Addr,
        /// The subnet.
        subnet: Ipv4Net,
        /// Which reserved address it is.
        kind: ReservedKind,
        /// The first usable host address of the subnet.
        first: Ipv4Addr,
        /// The last usable host address of the subnet.
        last: Ipv4Addr,
    },
    /// The requested endpoint address is not inside the network's subnet.
    #[error("address {address} is outside subnet {subnet}; accepted: a free host address of {subnet} other than the gateway")]
    AddressOutsideSubnet {
        /// The requested address.
        address: Ipv4Addr,
        /// The network's subnet.
        subnet: Ipv4Net,
    },
    /// The requested endpoint address is the network, broadcast or gateway address.
    #[error("address {address} is the {kind} of subnet {subnet}; accepted: a free host address of {subnet} other than the gateway")]
    AddressReserved {
        /// The requested address.
        address: Ipv4Addr,
        /// The network's subnet.
        subnet: Ipv4Net,
        /// Which reserved address it is.
        kind: ReservedKind,
    },
    /// The requested endpoint address is already used by another endpoint.
    #[error("address {address} is already in use in subnet {subnet}; accepted: a free host address of {subnet} other than the gateway")]
    AddressInUse {
        /// The requested address.
        address: Ipv4Addr,
        /// The network's subnet.
        subnet: Ipv4Net,
    },
    /// Every host address of the subnet is reserved or in use.
    #[error("no more addresses available in subnet {subnet}")]
    AddressExhausted {
        /// The network's subnet.
        subnet: Ipv4Net,
    },
    /// Every VNI in the accepted range is in use.
    #[error("no more VNIs available: all of {min} to {max} are in use")]
    VniExhausted {
        /// The lowest VNI handed out ([`VNI_MIN`]).
        min: u32,
        /// The highest VNI handed out ([`VNI_MAX`]).
        max: u32,
    },
}

/// Formats pools as a comma-separated list for error messages.
fn join(pools: &[Ipv4Net]) -> String {
    pools
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The address pools and subnet size used for automatic subnet allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// The pools, in the order they are searched. Canonical and pairwise disjoint.
    pub pools: Vec<Ipv4Net>,
    /// The prefix length of allocated subnets, between every pool's prefix length and
    /// [`MAX_MASK_LENGTH`].
    pub mask_length: u8,
}

impl Default for PoolConfig {
    /// Docker Swarm's default: /24 subnets out of 10.0.0.0/8.
    fn default() -> Self {
        PoolConfig {
            pools: vec![default_pool()],
            mask_length: DEFAULT_MASK_LENGTH,
        }
    }
}

/// [`DEFAULT_POOL`] as a prefix.
fn default_pool() -> Ipv4Net {
    // A literal that always parses; the fallback only exists to avoid an unwrap.
    DEFAULT_POOL
        .parse()
        .unwrap_or(Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8))
}

impl PoolConfig {
    /// Validates user input and returns the effective configuration.
    ///
    /// * no pools means the default pool [`DEFAULT_POOL`];
    /// * each pool must be canonical (host bits zero), so that what the user wrote is exactly the
    ///   range that gets used; `10.20.0.1/16` is rejected with a suggestion of `10.20.0.0/16`;
    /// * pools must not overlap each other, otherwise the same subnet could be reachable through
    ///   two pools and the search order would be ambiguous;
    /// * `mask_length` 0 means [`DEFAULT_MASK_LENGTH`] (like Swarm); longer than
    ///   [`MAX_MASK_LENGTH`] is rejected, and so is one shorter than a pool's prefix length
    ///   (the subnet would not fit in that pool).
    pub fn new(pools: Vec<Ipv4Net>, mask_length: u8) -> Result<Self, IpamError> {
        let pools = if pools.is_empty() {
            vec![default_pool()]
        } else {
            pools
        };
        let mask_length = if mask_length == 0 {
            DEFAULT_MASK_LENGTH
        } else {
            mask_length
        };
        for pool in &pools {
            check_canonical(*pool)?;
        }
        for (i, first) in pools.iter().enumerate() {
            for second in &pools[i + 1..] {
                if overlaps(*first, *second) {
                    return Err(IpamError::OverlappingPools {
                        first: *first,
                        second: *second,
                    });
                }
            }
        }
        for pool in &pools {
            if pool.prefix_len() > MAX_MASK_LENGTH {
                return Err(IpamError::PoolTooSmall {
                    pool: *pool,
                    max: MAX_MASK_LENGTH,
                });
            }
        }
        if mask_length > MAX_MASK_LENGTH {
            return Err(IpamError::MaskLengthOutOfRange {
                mask_length,
                max: MAX_MASK_LENGTH,
            });
        }
        for pool in &pools {
            if mask_length < pool.prefix_len() {
                return Err(IpamError::MaskShorterThanPool {
                    mask_length,
                    pool: *pool,
                    max: MAX_MASK_LENGTH,
                });
            }
        }
        Ok(PoolConfig { pools, mask_length })
    }
}

/// Returns an error suggesting the canonical form if `net` has host bits set.
fn check_canonical(net: Ipv4Net) -> Result<(), IpamError> {
    let canonical = net.trunc();
    if canonical == net {
        Ok(())
    } else {
        Err(IpamError::NotCanonical {
            given: net,
            canonical,
        })
    }
}

/// Whether two IPv4 prefixes share at least one address. Prefixes are either nested or
/// disjoint, so comparing the address ranges is enough (host bits are ignored).
fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    let (a_start, a_end) = range(a);
    let (b_start, b_end) = range(b);
    a_start <= b_end && b_start <= a_end
}

/// The inclusive address range of a prefix as integers (host bits ignored).
fn range(net: Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

/// The IPv4 underlay prefixes among `excluded`, host bits cleared. An interface address such as
/// 192.168.1.5/24 stands for its whole on-link network 192.168.1.0/24. IPv6 prefixes can never
/// overlap an IPv4 subnet and are dropped.
fn ipv4_excluded(excluded: &[IpNet]) -> impl Iterator<Item = Ipv4Net> + '_ {
    excluded.iter().filter_map(|net| match net {
        IpNet::V4(v4) => Some(v4.trunc()),
        IpNet::V6(_) => None,
    })
}

/// Allocates a subnet for a new network: first fit, i.e. the lowest free subnet of size
/// `/mask_length` in the first pool (in the configured order) that has one.
///
/// A candidate is free when it overlaps none of `in_use` (the subnets of existing networks,
/// whether allocated from a pool or given explicitly) and none of `excluded` (the addresses and
/// routes of the nodes' underlay interfaces; IPv6 entries never overlap). Excluding underlay
/// prefixes avoids the Swarm bug where an overlay subnet collided with a host route
/// (moby #50011, moby #48069).
///
/// `cfg` is re-validated (it may have been deserialized or built by hand), so an invalid one is
/// reported with the same error as [`PoolConfig::new`].
///
/// Runs in O(n log n) for n = `in_use.len() + excluded.len()`, independent of the number of
/// candidates: a /8 split into /29s has two million of them, so instead of testing each, the
/// blocking ranges are sorted by start and the candidate jumps past each one it hits.
pub fn allocate_subnet(
    cfg: &PoolConfig,
    in_use: &[Ipv4Net],
    excluded: &[IpNet],
) -> Result<Ipv4Net, IpamError> {
    let cfg = PoolConfig::new(cfg.pools.clone(), cfg.mask_length)?;
    let mask_length = cfg.mask_length;
    // Work in u64 so that "end + 1" and alignment never overflow at 255.255.255.255.
    let size: u64 = 1 << (32 - u32::from(mask_length));

    let mut blocked: Vec<(u64, u64)> = in_use
        .iter()
        .copied()
        .chain(ipv4_excluded(excluded))
        .map(|net| {
            let (start, end) = range(net);
            (u64::from(start), u64::from(end))
        })
        .collect();
    // Sorting makes the result independent of the order of `in_use` and `excluded`.
    blocked.sort_unstable();

    for pool in &cfg.pools {
        let (pool_start, pool_end) = range(*pool);
        let (pool_start, pool_end) = (u64::from(pool_start), u64::from(pool_end));
        // The pool is canonical and no longer than the mask, so its start is size-aligned.
        let mut candidate = pool_start;
        // Only ranges that can intersect the pool matter; `blocked` is sorted by start.
        let first = blocked.partition_point(|&(start, _)| start < pool_start);
        // A range starting before the pool may still reach into it (e.g. a /7 around a /8).
        let reaching_in = blocked[..first]
            .iter()
            .map(|&(_, end)| end)
            .filter(|&end| end >= pool_start)
            .max();
        if let Some(end) = reaching_in {
            candidate = align_up(end + 1, size);
        }
        for &(start, end) in &blocked[first..] {
            if candidate + size - 1 > pool_end {
                break;
            }
            if end < candidate {
                // Entirely below the candidate (nested in something already skipped).
                continue;
            }
            if start > candidate + size - 1 {
                // Sorted by start: this and every later range begin after the candidate.
                break;
            }
            // Overlaps: the next candidate is the first aligned block after this range.
            candidate = align_up(end + 1, size);
        }
        if candidate + size - 1 <= pool_end {
            // candidate <= pool_end <= u32::MAX, so the conversion cannot fail.
            let address = Ipv4Addr::from(u32::try_from(candidate).unwrap_or(u32::MAX));
            return Ok(Ipv4Net::new_assert(address, mask_length));
        }
    }
    Err(IpamError::Exhausted {
        pools: cfg.pools,
        mask_length,
    })
}

/// Rounds `value` up to a multiple of `size` (a power of two).
fn align_up(value: u64, size: u64) -> u64 {
    value.div_ceil(size) * size
}

/// Validates an explicit `--subnet` (and optional `--gateway`) for a new network and returns the
/// subnet and its gateway.
///
/// * the subnet must be canonical (host bits zero); the error suggests the canonical form;
/// * its prefix length must be /1 to /30: /31 and /32 have no room for a gateway and an endpoint
///   once the network and broadcast addresses are reserved, and /0 would cover every address,
///   including every host's own;
/// * it must not overlap any existing network's subnet (`in_use`; the error names the first one
///   in the order given) nor any underlay prefix (`excluded`; see [`allocate_subnet`] for why);
/// * the gateway defaults to the first usable address ([`default_gateway`]); if given it must
///   be inside the subnet and be neither its network nor its broadcast address.
pub fn validate_explicit(
    subnet: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    in_use: &[Ipv4Net],
    excluded: &[IpNet],
) -> Result<(Ipv4Net, Ipv4Addr), IpamError> {
    check_canonical(subnet)?;
    if subnet.prefix_len() > MAX_EXPLICIT_PREFIX_LENGTH {
        return Err(IpamError::SubnetTooSmall {
            subnet,
            max: MAX_EXPLICIT_PREFIX_LENGTH,
        });
    }
    if subnet.prefix_len() == 0 {
        return Err(IpamError::SubnetTooLarge {
            subnet,
            max: MAX_EXPLICIT_PREFIX_LENGTH,
        });
    }
    if let Some(existing) = in_use.iter().find(|net| overlaps(subnet, **net)) {
        return Err(IpamError::OverlapsNetwork {
            subnet,
            existing: *existing,
        });
    }
    if let Some(underlay) = ipv4_excluded(excluded).find(|net| overlaps(subnet, *net)) {
        return Err(IpamError::OverlapsUnderlay { subnet, underlay });
    }
    let (first, last) = host_range(subnet);
    let gateway = match gateway {
        None => default_gateway(subnet),
        Some(gateway) => {
            if !subnet.contains(&gateway) {
                return Err(IpamError::GatewayOutsideSubnet {
                    gateway,
                    subnet,
                    first,
                    last,
                });
            }
            let kind = if gateway == subnet.network() {
                Some(ReservedKind::Network)
            } else if gateway == subnet.broadcast() {
                Some(ReservedKind::Broadcast)
            } else {
                None
            };
            if let Some(kind) = kind {
                return Err(IpamError::GatewayReserved {
                    gateway,
                    subnet,
                    kind,
                    first,
                    last,
                });
            }
            gateway
        }
    };
    Ok((subnet, gateway))
}

/// The default gateway of a subnet: its first usable address (network + 1), as in Docker.
///
/// Only meaningful for subnets of /30 or shorter; for 255.255.255.255/32 it saturates instead of
/// wrapping around.
pub fn default_gateway(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).saturating_add(1))
}

/// The first and last usable host addresses (network + 1, broadcast - 1), for error messages.
/// Only meaningful for /30 or shorter.
fn host_range(subnet: Ipv4Net) -> (Ipv4Addr, Ipv4Addr) {
    let (start, end) = range(subnet);
    (
        Ipv4Addr::from(start.saturating_add(1)),
        Ipv4Addr::from(end.saturating_sub(1)),
    )
}

/// Allocates a VNI for a new network: the lowest VNI in [`VNI_MIN`]..=[`VNI_MAX`] that is not in
/// `in_use`. Values outside that range in `in_use` are ignored.
///
/// Runs in O(n) over the in-use VNIs in range, since it stops at the first gap.
pub fn allocate_vni(in_use: &BTreeSet<u32>) -> Result<u32, IpamError> {
    let mut candidate = VNI_MIN;
    for &vni in in_use.range(VNI_MIN..=VNI_MAX) {
        if vni != candidate {
            // BTreeSet iterates in ascending order, so `candidate` is a gap.
            break;
        }
        if candidate == VNI_MAX {
            return Err(IpamError::VniExhausted {
                min: VNI_MIN,
                max: VNI_MAX,
            });
        }
        candidate += 1;
    }
    Ok(candidate)
}

/// Allocates an endpoint address: the lowest host address of `subnet` that is not the network
/// address, the broadcast address, `gateway`, nor in `in_use`. Addresses of `in_use` outside the
/// subnet are ignored.
///
/// Runs in O(n log n) over the in-use addresses, since it stops at the first gap.
pub fn allocate_address(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    in_use: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    let (network, broadcast) = range(subnet);
    // u64 so that the host range of a /31 or /32 is simply empty instead of overflowing.
    let (first, last) = (u64::from(network) + 1, u64::from(broadcast));
    let gateway = u64::from(u32::from(gateway));
    let mut candidate = first;
    // `last` itself is the broadcast address, hence the strict comparison.
    while candidate < last {
        // candidate < last <= u32::MAX, so the conversion cannot fail.
        let address = Ipv4Addr::from(u32::try_from(candidate).unwrap_or(u32::MAX));
        if candidate != gateway && !in_use.contains(&address) {
            return Ok(address);
        }
        candidate += 1;
    }
    Err(IpamError::AddressExhausted { subnet })
}

/// Validates an address requested for an endpoint: it must be inside `subnet`, be neither the
/// network, the broadcast nor the `gateway` address, and not be in `in_use`.
pub fn validate_address(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    in_use: &BTreeSet<Ipv4Addr>,
    address: Ipv4Addr,
) -> Result<(), IpamError> {
    if !subnet.contains(&address) {
        return Err(IpamError::AddressOutsideSubnet { address, subnet });
    }
    let kind = if address == subnet.network() {
        Some(ReservedKind::Network)
    } else if address == subnet.broadcast() {
        Some(ReservedKind::Broadcast)
    } else if address == gateway {
        Some(ReservedKind::Gateway)
    } else {
        None
    };
    if let Some(kind) = kind {
        return Err(IpamError::AddressReserved {
            address,
            subnet,
            kind,
        });
    }
    if in_use.contains(&address) {
        return Err(IpamError::AddressInUse { address, subnet });
    }
    Ok(())
}

/// Parses CIDR text given by a user (e.g. `--subnet 10.20.0.0/16`) into an IPv4 prefix.
/// Surrounding whitespace is ignored. Host bits are *not* checked here (see [`PoolConfig::new`]
/// and [`validate_explicit`], which explain the canonical form).
pub fn parse_ipv4_cidr(s: &str) -> Result<Ipv4Net, IpamError> {
    s.trim().parse().map_err(|_| IpamError::InvalidCidr {
        input: s.to_string(),
    })
}

#[cfg(test)]
mod tests;
