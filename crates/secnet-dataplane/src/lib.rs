//! `secnet-dataplane`: turns the desired data path of one host into kernel
//! state, and keeps it there.
//!
//! Two parts, kept apart so that the hard part can be tested without a
//! kernel:
//!
//! * the **planner** ([`plan`]) is pure: `plan(&Desired, &Observed) -> Vec<Op>`.
//!   [`simulate`] models what ops do to an observation; property tests check
//!   that a plan converges in one step (`plan(d, simulate(o, plan(d, o)))` is
//!   empty) for random desired and observed states, that every op's
//!   preconditions hold when it runs ([`simulate_checked`]), and that the
//!   desired state's rendering ([`render`]) needs no ops;
//! * the **executor** ([`observe`], [`apply`]) reads and writes the kernel
//!   through rtnetlink (the `netlink-packet-route` messages over a
//!   `netlink-sys` socket): one short-lived worker thread per pass enters
//!   each namespace it touches and opens one socket there, so a pass spawns
//!   no process and opens about one socket per namespace; each op's requests
//!   are acknowledged one by one and a failed op is reported with the
//!   kernel's error while the others still run. Strict mode's nftables rules
//!   ([`ensure_strict`]) are the one thing still written by a tool (`nft`).
//!
//! # Layout on a host
//!
//! ```text
//! host namespace            (data-path address; VXLAN UDP sockets live here)
//! <run_dir>/netns/net-<id12> network namespace
//!     br0      bridge, MTU = network MTU, gateway/prefix, up
//!     vxlan0   VXLAN id <vni> local <data-path IP> dstport <port> nolearning proxy, on br0
//!     ve<hash> one per local endpoint interface, on br0
//!     FDB on vxlan0:   <remote MAC> dst <remote VTEP> self permanent
//!     neigh on vxlan0: <remote IP> lladdr <remote MAC> nud permanent
//! <run_dir>/netns/ep-<name>  endpoint namespace
//!     eth0...  peer of a ve<hash>, endpoint MAC/IP/MTU, default route via the gateway
//! ```
//!
//! # Why it is built this way
//!
//! * **Namespaces are files under the run directory**, bind mounts of
//!   `/proc/thread-self/ns/net` made by a short-lived thread that unshared
//!   ([`netns`]), never global `ip netns` names: two daemons on one machine
//!   (the test lab) cannot collide, and everything a daemon owns is found by
//!   listing one directory, so whatever is there and not desired (left over
//!   after a crash or a removal) is deleted.
//! * **Netlink, from a thread of its own.** A netlink socket speaks for the
//!   namespace it was opened in, so each pass runs on a short-lived worker
//!   thread that `setns`es into one namespace file after the other and opens
//!   a socket in each; the daemon's threads (tokio workers included) never
//!   change namespace. The requests are the ones `ip`/`bridge` send for the
//!   same command lines, and observations derive every field the way their
//!   JSON output did (a kernel test compares the two), so replacing the
//!   tools changed no plan. Replies are parsed attribute by attribute, only
//!   the attributes we read: an attribute a newer kernel adds or changes
//!   cannot make a link vanish from an observation (which would turn into
//!   spurious creates), while a malformed one we need fails the pass loudly.
//!   Compared with one `ip`/`bridge` process per namespace and tool, a pass
//!   costs a few syscalls per namespace instead of a fork and exec.
//! * **The VXLAN device is created in the host namespace and then moved** into
//!   the network namespace. A VXLAN device's UDP socket is opened in the
//!   namespace where the device was created (its link namespace), and stays
//!   there when the device moves: the socket must be where the data-path
//!   address and the underlay routes are, while the device must sit on the
//!   network's bridge, isolated from other networks.
//! * **`local` is always set.** Docker Swarm creates its VXLAN devices without
//!   a `local` address (moby #53004) and with the socket on 0.0.0.0 (moby
//!   #47389), so on multi-homed hosts the kernel picks the outer source
//!   address and replies come from the wrong one. With `local`, the outer
//!   source is the data-path address.
//! * **Learning is off; the FDB and ARP entries are static and permanent**,
//!   programmed from the replicated endpoint table. Where every endpoint
//!   lives is known, so there is nothing to learn from (spoofable) traffic and
//!   no broadcast/multicast needs to be flooded across hosts. Permanent
//!   entries never age out and are never replaced by the kernel; entries the
//!   kernel makes by itself (non-permanent) are ignored.
//! * **`proxy` on the VXLAN device** answers ARP requests from local
//!   endpoints out of the static neighbour table of `vxlan0`, on the local
//!   host: an ARP broadcast never has to cross the underlay.
//! * **Endpoint namespaces of desired endpoints are never recreated**, only
//!   the interfaces inside are fixed: processes (a container) live there.
//! * **Idempotent plans.** Each pass observes and plans from scratch; when
//!   the kernel matches, the plan is empty and a pass costs only the
//!   observation's netlink dumps. Someone deleting an FDB entry or downing
//!   `br0` by hand is repaired with exactly the op that fixes it.
//!
//! # Example
//!
//! ```no_run
//! use secnet_dataplane::{apply, observe, plan, Desired, Layout};
//! # fn main() -> Result<(), secnet_dataplane::DataplaneError> {
//! let layout = Layout::new("/run/secnet", None);
//! let desired = Desired::default(); // from the replicated state
//! let ops = plan(&desired, &observe(&layout)?);
//! let report = apply(&layout, &ops);
//! for e in report.errors() {
//!     eprintln!("{e}");
//! }
//! # Ok(()) }
//! ```

mod apply;
mod cmd;
mod error;
mod model;
pub mod mountns;
pub mod netns;
mod nl;
mod observe;
mod plan;
mod sim;
mod strict;

pub use apply::{apply, reconcile};
pub use error::{DataplaneError, Result};
pub use model::{
    endpoint_netns_path, endpoint_ns_name, fnv1a, is_own_ns_name, network_netns_path,
    network_ns_name, veth_name, ApplyReport, DefaultRoute, Desired, DesiredEndpoint,
    DesiredInterface, DesiredNetwork, FdbEntry, Layout, LinkKind, Mac, NeighEntry, Observed,
    ObservedLink, ObservedNs, Op, OpError, RemoteEndpoint, VethPeer, VxlanParams, BRIDGE,
    ENDPOINT_NS_PREFIX, LOOPBACK, NETNS_DIR, NETWORK_ID_CHARS, NETWORK_NS_PREFIX, VXLAN,
};
pub use observe::{link_mtu, observe};
pub use plan::{plan, render};
pub use sim::{simulate, simulate_checked};
pub use strict::{
    ensure_strict, remove_strict, strict_drops, strict_installed, StrictDrops, StrictPolicy,
    STRICT_IN_CHAIN, STRICT_OUT_CHAIN, STRICT_TABLE,
};
