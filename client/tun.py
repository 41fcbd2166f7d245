"""TUN devices: open and configure one, or adopt a file descriptor a platform hands us.

Linux: ``TunDevice.create()`` opens /dev/net/tun (IFF_TUN | IFF_NO_PI: every read and write is
exactly one IP packet). Mobile platforms (Android's VpnService, like strongSwan's app) give an
already-open, already-configured descriptor instead: ``TunDevice.from_fd(fd)``.

Two optional kernel features make the userspace data plane cheaper per byte:

* ``offload=True`` sets IFF_VNET_HDR and TUNSETOFFLOAD(CSUM | TSO4 | TSO6): every packet is
  preceded by a 10-byte ``struct virtio_net_hdr``, the kernel hands us TCP "super-packets" of
  up to 64 KiB with a partial checksum (we segment them, see client/dataplane.py) and accepts
  super-packets we write back (it segments or GROs them itself).
* ``multi_queue=True`` (IFF_MULTI_QUEUE) lets ``add_queue()`` open more descriptors on the same
  device; the kernel spreads flows across them by hash.

``configure()`` uses pyroute2 and acts in the calling process's network namespace.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import struct
from typing import Iterable

TUN_PATH = "/dev/net/tun"

# linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNGETIFF = 0x800454D2
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TUN = 0x0001
IFF_MULTI_QUEUE = 0x0100
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04

# linux/virtio_net.h: struct virtio_net_hdr (host byte order, little-endian here).
VNET_HDR_SIZE = 10
VNET_HDR = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_F_NEEDS_CSUM = 1
VNET_GSO_NONE = 0
VNET_GSO_TCPV4 = 1
VNET_GSO_TCPV6 = 4
VNET_GSO_ECN = 0x80

IFNAMSIZ = 16
_IFREQ = struct.Struct(f"{IFNAMSIZ}sH22x")


class TunDevice:
    """One open TUN descriptor (non-blocking) and the interface it belongs to."""

    def __init__(self, fd: int, name: str | None, *, offload: bool = False, multi_queue: bool = False):
        self.fd = fd
        self.name = name
        self.offload = offload  # packets carry a virtio_net_hdr
        self.multi_queue = multi_queue
        self._closed = False

    def __repr__(self) -> str:
        return f"TunDevice(name={self.name!r}, fd={self.fd}, offload={self.offload})"

    @classmethod
    def create(cls, name: str = "cygnet%d", *, offload: bool = False, multi_queue: bool = False) -> "TunDevice":
        """Create (or attach to) a TUN interface; ``%d`` lets the kernel pick a free number."""
        fd = _open_queue(name, offload=offload, multi_queue=multi_queue)
        try:
            ifreq = fcntl.ioctl(fd, TUNGETIFF, _IFREQ.pack(b"", 0))
            actual = _IFREQ.unpack(ifreq)[0].rstrip(b"\0").decode()
        except OSError:
            os.close(fd)
            raise
        return cls(fd, actual, offload=offload, multi_queue=multi_queue)

    @classmethod
    def from_fd(cls, fd: int, *, name: str | None = None, offload: bool = False) -> "TunDevice":
        """Adopt a descriptor opened elsewhere (a mobile VPN service); we own it from now on.

        ``offload`` must say whether it was opened with IFF_VNET_HDR: the framing differs.
        """
        os.set_blocking(fd, False)
        if name is None:
            try:
                ifreq = fcntl.ioctl(fd, TUNGETIFF, _IFREQ.pack(b"", 0))
                name = _IFREQ.unpack(ifreq)[0].rstrip(b"\0").decode() or None
            except OSError:
                name = None  # not a Linux TUN descriptor (a socketpair in tests, another OS)
        return cls(fd, name, offload=offload)

    def add_queue(self) -> "TunDevice":
        """Another descriptor on the same multi-queue device (one per worker)."""
        if not self.multi_queue:
            raise ValueError("device was not created with multi_queue=True")
        fd = _open_queue(self.name, offload=self.offload, multi_queue=True)
        return TunDevice(fd, self.name, offload=self.offload, multi_queue=True)

    def configure(
        self,
        addresses: Iterable = (),
        *,
        mtu: int | None = None,
        routes: Iterable = (),
        up: bool = True,
    ) -> None:
        """Give the interface addresses (``10.1.0.2/32``), an MTU, routes, and bring it up.

        Acts in the calling process's network namespace (pyroute2 IPRoute).
        """
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=self.name)[0]
            if mtu is not None:
                ipr.link("set", index=index, mtu=mtu)
            for address in addresses:
                interface = ipaddress.ip_interface(address)
                ipr.addr("add", index=index, address=str(interface.ip), prefixlen=interface.network.prefixlen)
            if up:
                ipr.link("set", index=index, state="up")
            for route in routes:
                network = ipaddress.ip_network(route)
                ipr.route("add", dst=str(network), oif=index)

    def read(self, size: int = 65536 + VNET_HDR_SIZE) -> bytes:
        return os.read(self.fd, size)

    def write(self, packet) -> int:
        return os.write(self.fd, packet)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    def __enter__(self) -> "TunDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_queue(name: str, *, offload: bool, multi_queue: bool) -> int:
    flags = IFF_TUN | IFF_NO_PI
    if offload:
        flags |= IFF_VNET_HDR
    if multi_queue:
        flags |= IFF_MULTI_QUEUE
    fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), flags))
        if offload:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_SIZE))
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    except OSError:
        os.close(fd)
        raise
    return fd
