//! The two TUN ioctls that neither tun-rs nor nix wraps safely: `TUNSETOFFLOAD` with flags
//! newer than tun-rs knows (GSO over UDP tunnels, Linux 6.17+) and `TUNSETVNETHDRSZ` (the
//! larger virtio-net header those need). The only `unsafe` in the crate.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc::{c_int, c_uint};

/// `TUN_F_*` offload flags (include/uapi/linux/if_tun.h).
pub(crate) const TUN_F_CSUM: u32 = 0x01;
pub(crate) const TUN_F_TSO4: u32 = 0x02;
pub(crate) const TUN_F_TSO6: u32 = 0x04;
pub(crate) const TUN_F_USO4: u32 = 0x20;
pub(crate) const TUN_F_USO6: u32 = 0x40;
pub(crate) const TUN_F_UDP_TUNNEL_GSO: u32 = 0x080;
pub(crate) const TUN_F_UDP_TUNNEL_GSO_CSUM: u32 = 0x100;

// TUNSETOFFLOAD = _IOW('T', 208, unsigned int), argument passed by value.
nix::ioctl_write_int_bad!(
    tun_set_offload,
    nix::request_code_write!(b'T', 208, std::mem::size_of::<c_uint>())
);
// TUNSETVNETHDRSZ = _IOW('T', 216, int), argument passed by pointer.
nix::ioctl_write_ptr_bad!(
    tun_set_vnet_hdr_size,
    nix::request_code_write!(b'T', 216, std::mem::size_of::<c_int>()),
    c_int
);

/// Tells the kernel which offloads the reader of `tun` handles. Fails (EINVAL) if the
/// kernel does not know one of the flags; then nothing changed.
pub(crate) fn set_offload(tun: BorrowedFd<'_>, flags: u32) -> io::Result<()> {
    let flags = c_int::try_from(flags).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the descriptor is open for the duration of the call (it is borrowed), and
    // TUNSETOFFLOAD takes its argument by value: no memory is passed.
    unsafe { tun_set_offload(tun.as_raw_fd(), flags) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Sets the size of the virtio-net header in front of every packet read or written.
pub(crate) fn set_vnet_hdr_size(tun: BorrowedFd<'_>, size: usize) -> io::Result<()> {
    let size = c_int::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the descriptor is open for the duration of the call, and the pointer is to a
    // live `c_int` that the kernel only reads.
    unsafe { tun_set_vnet_hdr_size(tun.as_raw_fd(), &size) }
        .map(drop)
        .map_err(io::Error::from)
}
