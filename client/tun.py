"""TUN devices: open and configure one, or adopt a file descriptor a platform hands us.

Linux: ``TunDevice.create()`` opens /dev/net/tun (IFF_TUN | IFF_NO_PI: every read and write is
exactly one IP packet). Mobile platforms (Android's VpnService, like strongSwan's app) give an
already-open, already-configured descriptor instead: ``TunDevice.from_fd(fd)``.

Optional kernel features make the userspace data plane cheaper per byte:

* ``vnet_hdr=True`` (IFF_VNET_HDR): every packet read or written is preceded by a 10-byte
  ``struct virtio_net_hdr``. That lets us *write* TCP "super-packets" (many decrypted segments
  of one flow coalesced, see ``coalesce_tcp``): the kernel takes up to 64 KiB in one write.
* ``tso=True`` (implies vnet_hdr) also sets TUNSETOFFLOAD(CSUM | TSO4 | TSO6): the kernel then
  hands us TCP super-packets with a partial checksum, which ``segment_tcp`` cuts back to MTU size.
  Off by default: checksumming every segment in Python costs more than the reads it saves.
* ``multi_queue=True`` (IFF_MULTI_QUEUE) lets ``add_queue()`` open more descriptors on the same
  device; the kernel spreads flows across them by hash. The userspace data plane reads one
  queue: threads gain nothing (cryptography keeps the GIL during AEAD calls, measured), and
  worker processes could not share one SA's sequence counter; per-queue SAs (RFC 9611) would.

``configure()`` uses pyroute2 and acts in the calling process's network namespace.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
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

# Packets the kernel queues for us to read. TCP sends in bursts; with the default 500 a short
# scheduling delay of the (single-threaded, Python) reader drops packets and TCP backs off.
DEFAULT_TXQUEUELEN = 4000

IFNAMSIZ = 16
_IFREQ = struct.Struct(f"{IFNAMSIZ}sH22x")


def configure_link(ipr, index: int, addresses: Iterable = (), **settings) -> None:
    """Set an interface's link settings (mtu, txqlen, state; None ones are left alone) in one
    request, then add its addresses: each request is a round trip to the engine's netlink
    agent. Shared by TUN devices and XFRM interfaces (client/kernel_dataplane.py)."""
    settings = {name: value for name, value in settings.items() if value is not None}
    if settings:
        ipr.link("set", index=index, **settings)
    for address in addresses:
        interface = ipaddress.ip_interface(address)
        ipr.addr("add", index=index, address=str(interface.ip), prefixlen=interface.network.prefixlen)


class TunDevice:
    """One open TUN descriptor (non-blocking) and the interface it belongs to."""

    def __init__(self, fd: int, name: str | None, *, vnet_hdr: bool = False, tso: bool = False,
                 multi_queue: bool = False):
        self.fd = fd
        self.name = name
        self.vnet_hdr = vnet_hdr or tso  # packets carry a virtio_net_hdr
        self.tso = tso  # reads may be TCP super-packets
        self.multi_queue = multi_queue
        self._closed = False

    def __repr__(self) -> str:
        return f"TunDevice(name={self.name!r}, fd={self.fd}, vnet_hdr={self.vnet_hdr}, tso={self.tso})"

    @classmethod
    def create(cls, name: str = "cygnet%d", *, vnet_hdr: bool = True, tso: bool = False,
               multi_queue: bool = False) -> "TunDevice":
        """Create (or attach to) a TUN interface; ``%d`` lets the kernel pick a free number.

        vnet_hdr is on by default: it costs 10 bytes per read and lets the data plane hand the
        kernel coalesced TCP super-packets (measured: ~20-30 % less CPU per packet received).
        tso stays off: cutting super-packets in Python (checksums!) costs more than the
        per-packet reads it saves.
        """
        fd = _open_queue(name, vnet_hdr=vnet_hdr or tso, tso=tso, multi_queue=multi_queue)
        try:
            ifreq = fcntl.ioctl(fd, TUNGETIFF, _IFREQ.pack(b"", 0))
            actual = _IFREQ.unpack(ifreq)[0].rstrip(b"\0").decode()
        except OSError:
            os.close(fd)
            raise
        return cls(fd, actual, vnet_hdr=vnet_hdr, tso=tso, multi_queue=multi_queue)

    @classmethod
    def from_fd(cls, fd: int, *, name: str | None = None, vnet_hdr: bool = False, tso: bool = False) -> "TunDevice":
        """Adopt a descriptor opened elsewhere (a mobile VPN service); we own it from now on.

        ``vnet_hdr``/``tso`` must say how it was opened (IFF_VNET_HDR, TUNSETOFFLOAD): the
        framing differs.
        """
        os.set_blocking(fd, False)
        if name is None:
            try:
                ifreq = fcntl.ioctl(fd, TUNGETIFF, _IFREQ.pack(b"", 0))
                name = _IFREQ.unpack(ifreq)[0].rstrip(b"\0").decode() or None
            except OSError:
                name = None  # not a Linux TUN descriptor (a socketpair in tests, another OS)
        return cls(fd, name, vnet_hdr=vnet_hdr, tso=tso)

    def add_queue(self) -> "TunDevice":
        """Another descriptor on the same multi-queue device (one per worker)."""
        if not self.multi_queue:
            raise ValueError("device was not created with multi_queue=True")
        fd = _open_queue(self.name, vnet_hdr=self.vnet_hdr, tso=self.tso, multi_queue=True)
        return TunDevice(fd, self.name, vnet_hdr=self.vnet_hdr, tso=self.tso, multi_queue=True)

    def configure(
        self,
        addresses: Iterable = (),
        *,
        mtu: int | None = None,
        routes: Iterable = (),
        up: bool = True,
        txqueuelen: int | None = DEFAULT_TXQUEUELEN,
        ipr=None,
    ) -> None:
        """Give the interface addresses (``10.1.0.2/32``), an MTU, routes, and bring it up.

        Acts in the calling process's network namespace, through `ipr` (an IPRoute, or the
        engine's netlink agent) or a pyroute2 IPRoute of its own.
        """
        if ipr is None:
            from pyroute2.iproute import IPRoute  # not `from pyroute2`: see client/netlink_agent.py

            with IPRoute() as own:
                return self.configure(addresses, mtu=mtu, routes=routes, up=up, txqueuelen=txqueuelen, ipr=own)
        index = socket.if_nametoindex(self.name)
        configure_link(ipr, index, addresses, mtu=mtu, txqlen=txqueuelen, state="up" if up else None)
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


def _open_queue(name: str, *, vnet_hdr: bool, tso: bool, multi_queue: bool) -> int:
    flags = IFF_TUN | IFF_NO_PI
    if vnet_hdr:
        flags |= IFF_VNET_HDR
    if multi_queue:
        flags |= IFF_MULTI_QUEUE
    fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), flags))
        if vnet_hdr:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_SIZE))
            # Without TUN_F_CSUM the kernel finishes checksums before handing packets to us.
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 if tso else 0)
    except OSError:
        os.close(fd)
        raise
    return fd


# --- checksums and TCP coalescing for IFF_VNET_HDR writes ------------------------------------

_VNET_PLAIN = bytes(VNET_HDR_SIZE)  # no offload: the kernel checks the packet's own checksums
_TCP = 6
_TCP_ACK, _TCP_PSH = 0x10, 0x08
_MAX_IP_PACKET = 65535


def ones_complement_sum(data) -> int:
    """The 16-bit one's complement sum of ``data`` (RFC 1071), folded, not inverted.

    2^16 ≡ 1 (mod 2^16 - 1), so a big-endian integer taken modulo 0xFFFF is the folded sum;
    one C-level modulo is far cheaper than a Python loop over 16-bit words.
    """
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8  # odd length: pad with a zero byte
    value %= 0xFFFF
    if value == 0 and any(data):
        return 0xFFFF  # non-zero words never sum to +0 with end-around carry
    return value


def ipv4_header_checksum(header) -> int:
    """Checksum of an IPv4 header whose checksum field is zero (RFC 791)."""
    return ~ones_complement_sum(header) & 0xFFFF


class _Run:
    """Consecutive segments of one TCP flow being merged into one super-packet."""

    __slots__ = ("key", "first", "header_length", "gso_size", "next_seq", "payloads", "total", "push")

    def __init__(self, key, packet, header_length, seq, payload_length, push):
        self.key = key
        self.first = packet
        self.header_length = header_length
        self.gso_size = payload_length
        self.next_seq = (seq + payload_length) & 0xFFFFFFFF
        self.payloads = [memoryview(packet)[header_length:]]
        self.total = payload_length
        self.push = push


def coalesce_tcp(packets) -> list:
    """Group in-order TCP segments of one flow into super-packets for one GSO write each.

    ``packets`` are complete IP packets. Returns a list of iovec lists, each beginning with a
    virtio_net_hdr: either one packet unchanged (plain header: the kernel verifies it as
    usual) or a rebuilt IP+TCP header followed by the segments' payloads, with gso_size = the
    first payload's length and a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM). The rules
    follow the kernel's GRO: same TOS, addresses, ports, ACK number, flags, window and options;
    consecutive sequence numbers; equal payload sizes except a shorter last one; only ACK set,
    or ACK+PSH on the segment that ends a run. Checksums are not verified: ESP authenticated
    every byte. This loop runs per packet, so it works on local variables, not helper calls.
    """
    writes: list = []
    run: _Run | None = None
    for packet in packets:
        length = len(packet)
        first = packet[0] if length >= 40 else 0
        payload_length = 0
        if first == 0x45 and packet[9] == _TCP and not (packet[6] & 0x3F or packet[7]):
            ip_length = 20
            header_length = 20 + (packet[32] >> 4) * 4
            flags = packet[33]
            # TOS, addresses and ports; ACK and data offset; window; options.
            key = (packet[1], packet[12:24], packet[28:33], packet[34:36], packet[40:header_length])
            payload_length = length - header_length
        elif first >> 4 == 6 and length >= 60 and packet[6] == _TCP:
            ip_length = 40
            header_length = 40 + (packet[52] >> 4) * 4
            flags = packet[53]
            key = (packet[0:4], packet[8:44], packet[48:53], packet[54:56], packet[60:header_length])
            payload_length = length - header_length
        if payload_length <= 0 or flags & ~_TCP_PSH != _TCP_ACK or header_length < ip_length + 20:
            if run is not None:
                writes.append(_emit(run))
                run = None
            writes.append([_VNET_PLAIN, packet])
            continue
        seq = int.from_bytes(packet[ip_length + 4 : ip_length + 8], "big")
        push = flags & _TCP_PSH
        if (
            run is not None
            and seq == run.next_seq
            and payload_length <= run.gso_size
            and key == run.key
            and header_length + run.total + payload_length <= _MAX_IP_PACKET
        ):
            run.payloads.append(memoryview(packet)[header_length:])
            run.next_seq = (seq + payload_length) & 0xFFFFFFFF
            run.total += payload_length
            run.push = push
            if push or payload_length < run.gso_size:  # only the last may be short; PSH ends a run
                writes.append(_emit(run))
                run = None
            continue
        if run is not None:
            writes.append(_emit(run))
        run = _Run(key, packet, header_length, seq, payload_length, push)
        if push:
            writes.append(_emit(run))
            run = None
    if run is not None:
        writes.append(_emit(run))
    return writes


def _emit(run: _Run) -> list:
    if len(run.payloads) == 1:
        return [_VNET_PLAIN, run.first]
    header_length, total = run.header_length, run.total
    header = bytearray(run.first[:header_length])
    version = header[0] >> 4
    ip_length = 20 if version == 4 else 40
    tcp_length = header_length - ip_length + total
    header[ip_length + 13] |= run.push
    if version == 4:
        header[2:4] = (header_length + total).to_bytes(2, "big")
        header[10:12] = b"\0\0"
        header[10:12] = ipv4_header_checksum(header[:20]).to_bytes(2, "big")
        pseudo = bytes(header[12:20]) + b"\0\x06" + tcp_length.to_bytes(2, "big")
        gso_type = VNET_GSO_TCPV4
    else:
        header[4:6] = tcp_length.to_bytes(2, "big")
        pseudo = bytes(header[8:40]) + tcp_length.to_bytes(4, "big") + b"\0\0\0\x06"
        gso_type = VNET_GSO_TCPV6
    # CHECKSUM_PARTIAL: the field holds the pseudo-header sum; the rest is "offloaded".
    header[ip_length + 16 : ip_length + 18] = ones_complement_sum(pseudo).to_bytes(2, "big")
    vnet = VNET_HDR.pack(VNET_F_NEEDS_CSUM, gso_type, header_length, run.gso_size, ip_length, 16)
    return [vnet, header, *run.payloads]


# --- TCP segmentation of super-packets read with TSO (tso=True) ------------------------------

_TCP_FIN, _TCP_CWR = 0x01, 0x80


def split_vnet_packet(data) -> list:
    """Complete IP packets from one read of a vnet_hdr TUN: cuts TSO super-packets into
    gso_size segments and finishes partial checksums (the kernel left them to the "NIC")."""
    flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(data)
    packet = memoryview(data)[VNET_HDR_SIZE:]
    gso_type &= ~VNET_GSO_ECN
    if gso_type == VNET_GSO_NONE:
        if not flags & VNET_F_NEEDS_CSUM:
            return [packet]
        packet = bytearray(packet)
        # The checksum field already holds the pseudo-header sum (CHECKSUM_PARTIAL).
        checksum = ~ones_complement_sum(packet[csum_start:]) & 0xFFFF
        if checksum == 0 and csum_offset == 6:
            checksum = 0xFFFF  # UDP sends a computed zero as all ones (RFC 768)
        packet[csum_start + csum_offset : csum_start + csum_offset + 2] = checksum.to_bytes(2, "big")
        return [packet]
    if gso_type not in (VNET_GSO_TCPV4, VNET_GSO_TCPV6):
        raise ValueError(f"unsupported GSO type {gso_type}")
    return segment_tcp(packet, gso_size, csum_start)


def segment_tcp(packet, mss: int, tcp_start: int) -> list:
    """Cut a TCP super-packet into segments of ``mss`` payload bytes, as a NIC's TSO would:
    per segment the IP length (and IPv4 ID and header checksum), the TCP sequence number,
    FIN/PSH only on the last, CWR only on the first, and a full TCP checksum."""
    version = packet[0] >> 4
    data_offset = (packet[tcp_start + 12] >> 4) * 4
    header_length = tcp_start + data_offset
    template = bytearray(packet[:header_length])
    template[tcp_start + 16 : tcp_start + 18] = b"\0\0"
    if version == 4:
        template[10:12] = b"\0\0"
        ip_id = int.from_bytes(template[4:6], "big")
        # Pseudo-header without its length field: source, destination, zero, protocol.
        pseudo_sum = ones_complement_sum(bytes(template[12:20]) + b"\0\x06")
    else:
        pseudo_sum = ones_complement_sum(bytes(template[8:40]) + b"\0\0\0\x06")
    seq0 = int.from_bytes(template[tcp_start + 4 : tcp_start + 8], "big")
    flags = template[tcp_start + 13]
    payload = memoryview(packet)[header_length:]
    total = len(payload)
    segments = []
    for offset in range(0, total, mss):
        chunk = payload[offset : offset + mss]
        header = bytearray(template)
        tcp_length = data_offset + len(chunk)
        if version == 4:
            header[2:4] = (header_length + len(chunk)).to_bytes(2, "big")
            header[4:6] = ((ip_id + offset // mss) & 0xFFFF).to_bytes(2, "big")
            header[10:12] = ipv4_header_checksum(header[:20]).to_bytes(2, "big")
        else:
            header[4:6] = tcp_length.to_bytes(2, "big")
        header[tcp_start + 4 : tcp_start + 8] = ((seq0 + offset) & 0xFFFFFFFF).to_bytes(4, "big")
        segment_flags = flags
        if offset + mss < total:
            segment_flags &= ~(_TCP_FIN | _TCP_PSH)
        if offset:
            segment_flags &= ~_TCP_CWR
        header[tcp_start + 13] = segment_flags
        checksum = pseudo_sum + tcp_length + ones_complement_sum(header[tcp_start:]) + ones_complement_sum(chunk)
        checksum = (checksum & 0xFFFF) + (checksum >> 16)
        checksum = (checksum & 0xFFFF) + (checksum >> 16)
        header[tcp_start + 16 : tcp_start + 18] = (~checksum & 0xFFFF).to_bytes(2, "big")
        segments.append(b"".join((header, chunk)))
    return segments
