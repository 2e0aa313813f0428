//! The TUN device: created with `IFF_VNET_HDR` and every offload the kernel accepts, so that
//! reads return super-packets (up to 64 KiB) and writes may be super-packets too.

use std::io::{self, IoSlice};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use tun_rs::{DeviceBuilder, SyncDevice};

use super::sys::{self, *};
use super::IoOptions;
use crate::offload::{VnetHdr, VNET_HDR_LEN, VNET_HDR_TUNNEL_LEN};
use crate::TunnelError;

/// What the device was set up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TunFeatures {
    /// Size of the virtio-net header in front of every packet (0: none, plain packets).
    pub(crate) vnet_hdr: usize,
    /// The `TUN_F_*` flags the kernel accepted.
    pub(crate) offloads: u32,
}

pub(crate) struct Tun {
    dev: SyncDevice,
    features: TunFeatures,
}

impl Tun {
    /// Creates the device (layer 3, no packet information), addresses it, brings it up, and
    /// offers the kernel the offloads `options` allow, each probed: GSO over UDP tunnels
    /// (6.17+), then USO (6.2+), then TSO and checksums; without `IFF_VNET_HDR` at all if
    /// even those fail.
    pub(crate) fn create(
        name: &str,
        addr: Ipv4Addr,
        prefix: u8,
        mtu: u32,
        options: &IoOptions,
    ) -> Result<Tun, TunnelError> {
        let tun_error = |source| TunnelError::Tun {
            name: name.to_owned(),
            source,
        };
        let mtu = u16::try_from(mtu)
            .map_err(|_| TunnelError::InvalidConfig(format!("MTU {mtu} does not fit 16 bits")))?;
        let build = |offload: bool| {
            DeviceBuilder::new()
                .name(name)
                .ipv4(addr, prefix, None)
                .mtu(mtu)
                .packet_information(false)
                .offload(offload)
                .enable(true)
                .build_sync()
        };
        let (dev, features) = match options.vnet.then(|| build(true)) {
            Some(Ok(dev)) => {
                let features = negotiate(&dev, options);
                (dev, features)
            }
            other => {
                if let Some(Err(e)) = other {
                    tracing::info!(error = %e, "TUN offloads unavailable, plain packets");
                }
                let dev = build(false).map_err(tun_error)?;
                (
                    dev,
                    TunFeatures {
                        vnet_hdr: 0,
                        offloads: 0,
                    },
                )
            }
        };
        dev.set_nonblocking(true).map_err(tun_error)?;
        tracing::debug!(
            tun = name,
            vnet_hdr = features.vnet_hdr,
            offloads = format_args!("{:#x}", features.offloads),
            "TUN device features"
        );
        Ok(Tun { dev, features })
    }

    pub(crate) fn name(&self) -> io::Result<String> {
        self.dev.name()
    }

    pub(crate) fn features(&self) -> TunFeatures {
        self.features
    }

    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dev.as_fd()
    }

    /// Reads one packet (with its virtio-net header in front, if the device has them).
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.recv(buf)
    }

    /// Writes one packet, with `hdr` in front if the device takes headers.
    pub(crate) fn write(&self, hdr: &VnetHdr, pkt: &[u8]) -> io::Result<()> {
        let size = self.features.vnet_hdr;
        if size == 0 {
            return self.dev.send(pkt).map(drop);
        }
        let mut bytes = [0u8; VNET_HDR_TUNNEL_LEN];
        let bytes = &mut bytes[..size];
        hdr.encode(bytes);
        self.dev
            .send_vectored(&[IoSlice::new(bytes), IoSlice::new(pkt)])
            .map(drop)
    }
}

/// Settles the header size and offloads of a device created with `IFF_VNET_HDR` (tun-rs
/// has offered TSO, checksums and, where the kernel has it, USO).
fn negotiate(dev: &SyncDevice, options: &IoOptions) -> TunFeatures {
    let fd = dev.as_fd();
    let tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    let udp = if options.uso {
        TUN_F_USO4 | TUN_F_USO6
    } else {
        0
    };
    if options.tunnel_gso && sys::set_vnet_hdr_size(fd, VNET_HDR_TUNNEL_LEN).is_ok() {
        let offloads = tcp | udp | TUN_F_UDP_TUNNEL_GSO | TUN_F_UDP_TUNNEL_GSO_CSUM;
        if sys::set_offload(fd, offloads).is_ok() {
            return TunFeatures {
                vnet_hdr: VNET_HDR_TUNNEL_LEN,
                offloads,
            };
        }
        let _ = sys::set_vnet_hdr_size(fd, VNET_HDR_LEN);
    }
    for offloads in [tcp | udp, tcp] {
        if sys::set_offload(fd, offloads).is_ok() {
            return TunFeatures {
                vnet_hdr: VNET_HDR_LEN,
                offloads,
            };
        }
    }
    // tun-rs made the device with TSO already; keep what it set.
    TunFeatures {
        vnet_hdr: VNET_HDR_LEN,
        offloads: tcp,
    }
}
