"""The data plane: where CHILD_SAs carry packets between the virtual interface and the peer.

(Over 500 lines for a reason: the userspace ESP loop is a hot path whose batching, GSO/GRO and
buffer reuse read best in one place; the interface, selectors and counters are its vocabulary.)

``DataPlane`` is the interface the engine codes against; implementations are the userspace one
here (a TUN device and the UDP 4500 socket, like strongSwan's libipsec and its Android app), and
later a kernel-XFRM backend or a mobile port.

``UserspaceDataPlane`` does ESP tunnel mode in UDP encapsulation (RFC 3948):

* TUN → outbound SA chosen by the packet's addresses (traffic selectors; packets matching no
  SA are dropped and counted, never sent in the clear) → ESP → UDP to the peer's port 4500.
* UDP 4500 → first four bytes: zero = the non-ESP marker of an IKE message (RFC 3948 §2.2),
  handed to the engine without the marker; a single 0xFF byte = NAT keepalive (§2.3), ignored;
  otherwise ESP: SPI → inbound SA → replay check, decrypt, inner addresses checked against the
  SA's selectors (RFC 4301 §5.2) → TUN.
* A CHILD_SA negotiated without UDP encapsulation (no NAT, not forced) sends and receives
  plain ESP (IP protocol 50) on a raw socket instead; that needs CAP_NET_RAW and a kernel that
  does not consume ESP itself (no XFRM state for the SPI), and it is not batched.

Speed (Python costs ~5 µs per packet each way, the kernel's per-packet work is what batching
saves): TUN reads go into reused buffers, a wake-up handles up to BATCH reads, ESP datagrams
leave in one sendmsg with UDP_SEGMENT, arrive in one recvmsg with UDP_GRO, and decrypted TCP
segments of one flow are written to the TUN as one super-packet (client/tun.py coalesce_tcp).
cryptography does not release the GIL for AEAD calls, so threads would not add throughput.

Make-before-break rekeying (RFC 7296 §2.8): ``install_child_sa`` for a child_id that already has
an SA adds the new inbound SA and (by default) switches outbound to the new one; the old inbound
SA keeps decrypting late packets until ``remove_child_sa(old spi_in)``.

Nothing here knows IKE: volume limits become ``SaLimitReached`` events for the engine.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from client import esp
from client.tun import VNET_HDR_SIZE, TunDevice, coalesce_tcp, split_vnet_packet

log = logging.getLogger(__name__)

NON_ESP_MARKER = b"\0\0\0\0"  # RFC 3948 §2.2: precedes IKE messages on port 4500
NAT_KEEPALIVE = b"\xff"  # RFC 3948 §2.3
IKE_NATT_PORT = 4500

# How many reads one wake-up does before giving the event loop back.
BATCH = 64
_RECV_BUFFER = 65536
_SOCKET_BUFFER = 4 * 1024 * 1024

# UDP segmentation offload (linux/udp.h): one sendmsg carries many equal-size datagrams, one
# recvmsg returns many; the kernel keeps them as one buffer through veth and loopback.
SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
_GSO_MAX_SEGMENTS = 64
_GSO_MAX_BYTES = 65000  # the sum must fit one IP datagram


# --- events and counters --------------------------------------------------------------------


@dataclass(frozen=True)
class SaLimitReached:
    """An SA crossed a volume or sequence-number limit; "soft" asks the engine to rekey now,
    "hard" means the SA has stopped carrying traffic in that direction."""

    child_id: int
    spi_in: bytes
    spi_out: bytes
    direction: str  # "in" | "out"
    severity: str  # "soft" | "hard"
    what: str  # "packets" | "bytes" | "sequence"


@dataclass
class SaCounters:
    """Per-SA counters (a snapshot when returned by ``counters()``)."""

    child_id: int
    spi_in: bytes
    spi_out: bytes
    bytes_in: int = 0
    packets_in: int = 0
    bytes_out: int = 0
    packets_out: int = 0
    replay_drops: int = 0
    auth_failures: int = 0
    malformed_drops: int = 0
    policy_drops_in: int = 0  # decrypted packets outside the selectors, or not IP (tunnel mode)


@dataclass
class GlobalCounters:
    outside_selectors: int = 0  # TUN packets no outbound SA covers (dropped, never sent clear)
    unknown_spi: int = 0
    keepalives_in: int = 0
    ike_in: int = 0
    send_errors: int = 0
    exhausted_drops: int = 0  # outbound packets refused because their SA hit a hard limit
    tun_wakeups: int = 0  # loop callbacks; packets per wake-up shows how well reads batch
    socket_wakeups: int = 0
    tun_packets: int = 0
    socket_datagrams: int = 0


class ChildSaParameters(Protocol):
    """What the data plane reads from ike.events.ChildSaEstablished (any object with these)."""

    child_id: int
    spi_in: bytes
    spi_out: bytes
    encr_id: int
    encr_key_bits: int
    integ_id: int | None
    esn: bool
    encr_key_in: bytes
    integ_key_in: bytes
    encr_key_out: bytes
    integ_key_out: bytes
    local_ts: tuple
    remote_ts: tuple
    udp_encapsulation: bool


class DataPlane(Protocol):
    """What the engine needs from any data plane (userspace, kernel XFRM, mobile): everything
    client/engine.py calls on one, and nothing else (the engine never asks which one it has)."""

    kind: str  # "userspace" or "kernel", for `cygnet status` and the progress line

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start reading the socket (and the TUN device or the kernel's events) on `loop`."""

    def set_peer(self, peer: tuple[str, int]) -> None:
        """Where ESP goes (the gateway's address and NAT-T port)."""

    def send_ike(self, message: bytes, addr: tuple[str, int] | None = None) -> None:
        """Send an IKE message on the shared NAT-T socket, behind the non-ESP marker."""

    def send_keepalive(self, addr: tuple[str, int] | None = None) -> None:
        """A NAT keepalive (RFC 3948 §2.3) to the gateway."""

    def install_child_sa(self, sa: ChildSaParameters, *, activate_outbound: bool = True) -> None:
        """Install both SAs; with activate_outbound, outbound traffic of sa.child_id moves to it."""

    def activate_outbound(self, spi_in: bytes) -> None:
        """Send the child's traffic with the SA installed under spi_in (responder-side rekey)."""

    def remove_child_sa(self, spi_in: bytes) -> None:
        """Forget the SA pair installed under spi_in (no error if unknown)."""

    def counters(self) -> dict[bytes, SaCounters]:
        """Counters per installed SA pair, keyed by spi_in."""

    def close(self) -> None:
        """Stop, remove all SAs, release what the data plane opened."""


# --- traffic selectors ----------------------------------------------------------------------


class Selectors:
    """A set of networks compiled for integer address matching (protocol/ports not used)."""

    def __init__(self, networks: Iterable):
        self.networks = tuple(ipaddress.ip_network(n) for n in networks)
        self._v4 = [(int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 4]
        self._v6 = [(int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 6]

    def contains(self, version: int, address: int) -> bool:
        for base, mask in self._v4 if version == 4 else self._v6:
            if address & mask == base:
                return True
        return False


def _addresses(packet) -> tuple[int, int, int] | None:
    """(IP version, source, destination) as integers, or None if not an IP header."""
    if not len(packet):
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        return 4, int.from_bytes(packet[12:16], "big"), int.from_bytes(packet[16:20], "big")
    if version == 6 and len(packet) >= 40:
        return 6, int.from_bytes(packet[8:24], "big"), int.from_bytes(packet[24:40], "big")
    return None


def _address_key(packet):
    """Cache key for a packet's address pair: IPv4 without options -> bytes 12-20 (8 bytes),
    IPv6 -> bytes 8-40 (32 bytes); lengths differ, so the families cannot collide. Anything
    else (IPv4 options, garbage) gets None and is checked in full every time."""
    length = len(packet)
    if length >= 20 and packet[0] == 0x45:
        return bytes(packet[12:20])
    if length >= 40 and packet[0] >> 4 == 6:
        return bytes(packet[8:40])
    return None


# --- one installed CHILD_SA pair ----------------------------------------------------------


@dataclass(eq=False)
class _Child:
    child_id: int
    inbound: esp.InboundSa = field(repr=False)
    outbound: esp.OutboundSa = field(repr=False)
    local: Selectors
    remote: Selectors
    counters: SaCounters
    udp_encapsulation: bool = True  # False: plain ESP on the raw socket
    # (src, dst) address bytes already checked against the selectors: skips the scan per packet
    allowed_in: set = field(default_factory=set, repr=False)

    def inner_allowed(self, packet) -> bool:
        """RFC 4301 §5.2: a decrypted packet must come from remote_ts and go to local_ts.

        Allowed address pairs are cached (see ``_address_key``).
        """
        key = _address_key(packet)
        if key is not None and key in self.allowed_in:
            return True
        parsed = _addresses(packet)
        if parsed is None:
            return False
        version, src, dst = parsed
        if self.remote.contains(version, src) and self.local.contains(version, dst):
            if key is not None:
                if len(self.allowed_in) > 4096:
                    self.allowed_in.clear()
                self.allowed_in.add(key)
            return True
        return False


# --- the userspace implementation -----------------------------------------------------------


class SharedUdpSocket:
    """The UDP 4500 socket a data plane shares with IKE (RFC 3948): IKE messages go behind the
    non-ESP marker, NAT keepalives keep the mapping open. Both data planes (userspace and
    kernel) send the same way; they set `self.sock` and `self.peer`."""

    sock: socket.socket
    peer: tuple[str, int] | None

    def set_peer(self, peer: tuple[str, int]) -> None:
        """Where ESP goes (the gateway's address and NAT-T port; changes with MOBIKE)."""
        self.peer = peer

    def send_ike(self, message: bytes, addr: tuple[str, int] | None = None) -> None:
        """Send an IKE message on the shared socket, behind the non-ESP marker."""
        self.sock.sendmsg([NON_ESP_MARKER, message], [], 0, addr or self.peer)

    def send_keepalive(self, addr: tuple[str, int] | None = None) -> None:
        """A NAT keepalive (RFC 3948 §2.3) keeps the NAT mapping of the UDP flow open."""
        self.sock.sendto(NAT_KEEPALIVE, addr or self.peer)


class UserspaceDataPlane(SharedUdpSocket):
    """ESP-in-UDP between a TUN device and the (shared) UDP 4500 socket, on an asyncio loop.

    ``on_ike_packet(message, addr)`` receives IKE messages that arrived on the socket (marker
    removed); ``on_event(SaLimitReached)`` receives limit notices. Both run on the loop thread.
    """

    kind = "userspace"

    def __init__(
        self,
        tun: TunDevice,
        sock: socket.socket,
        peer: tuple[str, int] | None = None,
        *,
        on_ike_packet: Callable[[bytes, tuple], None] | None = None,
        on_event: Callable[[object], None] | None = None,
        replay_window: int = esp.DEFAULT_REPLAY_WINDOW,
        limits: esp.SaLimits | None = None,
    ):
        self.tun = tun
        self.sock = sock
        sock.setblocking(False)
        self.peer = peer
        self.on_ike_packet = on_ike_packet or (lambda message, addr: None)
        self.on_event = on_event or (lambda event: None)
        self.replay_window = replay_window
        self.limits = limits
        self.global_counters = GlobalCounters()
        self._inbound: dict[bytes, _Child] = {}
        self._outbound: dict[int, _Child] = {}  # child_id -> the SA outbound traffic uses
        self._route_cache: dict[bytes, _Child] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recv_buffer = bytearray(_RECV_BUFFER)
        self._recv_view = memoryview(self._recv_buffer)
        tun_buffer = bytearray(_RECV_BUFFER)
        self._tun_view = memoryview(tun_buffer)
        self._vnet_buffer = bytearray(VNET_HDR_SIZE) if tun.vnet_hdr else None
        self._tun_buffers = [tun_buffer] if self._vnet_buffer is None else [self._vnet_buffer, tun_buffer]
        self._closed = False
        self._udp_gso, self._udp_gro = _enable_udp_offloads(sock)
        self._raw_sock: socket.socket | None = None  # plain ESP (no UDP): opened when needed
        self._raw_buffer = bytearray()

    # --- SA management (DataPlane) ---

    def install_child_sa(self, sa: ChildSaParameters, *, activate_outbound: bool = True) -> None:
        spi_in, spi_out = bytes(sa.spi_in), bytes(sa.spi_out)
        counters = SaCounters(sa.child_id, spi_in, spi_out)

        def limit_notifier(direction: str):
            def notify(severity: str, what: str) -> None:
                self.on_event(SaLimitReached(sa.child_id, spi_in, spi_out, direction, severity, what))

            return notify

        inbound = esp.InboundSa(
            spi_in, sa.encr_id, sa.encr_key_bits, sa.encr_key_in, sa.integ_id, sa.integ_key_in,
            esn=sa.esn, replay_window=self.replay_window, limits=self.limits, on_limit=limit_notifier("in"),
        )
        outbound = esp.OutboundSa(
            spi_out, sa.encr_id, sa.encr_key_bits, sa.encr_key_out, sa.integ_id, sa.integ_key_out,
            esn=sa.esn, limits=self.limits, on_limit=limit_notifier("out"),
        )
        child = _Child(sa.child_id, inbound, outbound, Selectors(sa.local_ts), Selectors(sa.remote_ts), counters,
                       udp_encapsulation=bool(getattr(sa, "udp_encapsulation", True)))
        if not child.udp_encapsulation:
            self._open_raw_esp_socket()
        self._inbound[spi_in] = child  # inbound first: the peer may already use it
        if activate_outbound or sa.child_id not in self._outbound:
            self._outbound[sa.child_id] = child
            self._route_cache.clear()

    def activate_outbound(self, spi_in: bytes) -> None:
        child = self._inbound[bytes(spi_in)]
        self._outbound[child.child_id] = child
        self._route_cache.clear()

    def remove_child_sa(self, spi_in: bytes) -> None:
        child = self._inbound.pop(bytes(spi_in), None)
        if child is None:
            return
        if self._outbound.get(child.child_id) is child:
            # Fall back to a newer SA of the same child if one is installed, else stop sending.
            successor = next((c for c in self._inbound.values() if c.child_id == child.child_id), None)
            if successor is None:
                del self._outbound[child.child_id]
            else:
                self._outbound[child.child_id] = successor
        self._route_cache.clear()

    def counters(self) -> dict[bytes, SaCounters]:
        result = {}
        for spi_in, child in self._inbound.items():
            c = child.counters
            inbound, outbound = child.inbound, child.outbound
            result[spi_in] = SaCounters(
                c.child_id, c.spi_in, c.spi_out,
                bytes_in=inbound.bytes, packets_in=inbound.packets,
                bytes_out=outbound.bytes, packets_out=outbound.packets,
                replay_drops=inbound.replay_drops, auth_failures=inbound.auth_failures,
                malformed_drops=inbound.malformed_drops, policy_drops_in=c.policy_drops_in,
            )
        return result

    # --- packet paths (synchronous; the loop callbacks below drive them) ---

    def _outbound_child(self, packet) -> _Child | None:
        key = _address_key(packet)
        child = self._route_cache.get(key)
        if child is not None:
            return child
        parsed = _addresses(packet)
        if parsed is None:
            return None
        version, src, dst = parsed
        for candidate in self._outbound.values():
            if candidate.local.contains(version, src) and candidate.remote.contains(version, dst):
                if key is not None:
                    if len(self._route_cache) > 4096:
                        self._route_cache.clear()
                    self._route_cache[key] = candidate
                return candidate
        return None

    def _seal(self, packet):
        """(ESP header, ciphertext) for one inner packet, or None if it must be dropped."""
        # Common case inline: IPv4 without options, address pair already routed.
        if len(packet) >= 20 and packet[0] == 0x45:
            child = self._route_cache.get(bytes(packet[12:20])) or self._outbound_child(packet)
        else:
            child = self._outbound_child(packet)
        if child is None:
            self.global_counters.outside_selectors += 1
            return None
        next_header = esp.NEXT_HEADER_IPV4 if packet[0] >> 4 == 4 else esp.NEXT_HEADER_IPV6
        try:
            sealed = child.outbound.seal_parts(packet, next_header)
        except esp.SaExhausted:
            self.global_counters.exhausted_drops += 1
            return None
        if child.udp_encapsulation:
            return sealed
        self._send_raw_esp(sealed)
        return None

    def send_packet(self, packet) -> bool:
        """Encrypt one inner IP packet from the TUN and send it; False if dropped."""
        sealed = self._seal(packet)
        if sealed is None:
            return False
        return self._send_datagrams([sealed]) == 1

    def _send_datagrams(self, datagrams: list) -> int:
        """Send (header, body) ESP datagrams to the peer, many per syscall where the kernel
        allows (UDP_SEGMENT needs equal sizes, only the last may be shorter). Returns how
        many were handed to the kernel."""
        if self.peer is None:
            self.global_counters.send_errors += len(datagrams)
            return 0
        sent = 0
        count = len(datagrams)
        start = 0
        while start < count:
            size = len(datagrams[start][0]) + len(datagrams[start][1])
            end = start + 1
            if self._udp_gso:
                total = size
                while end < count and end - start < _GSO_MAX_SEGMENTS:
                    length = len(datagrams[end][0]) + len(datagrams[end][1])
                    if length > size or total + length > _GSO_MAX_BYTES:
                        break
                    total += length
                    end += 1
                    if length < size:
                        break
            sent += self._sendmsg(datagrams[start:end], size)
            start = end
        return sent

    def _sendmsg(self, datagrams: list, segment_size: int) -> int:
        iov = [part for datagram in datagrams for part in datagram]
        ancillary = [(SOL_UDP, UDP_SEGMENT, segment_size.to_bytes(2, "little"))] if len(datagrams) > 1 else ()
        try:
            self.sock.sendmsg(iov, ancillary, 0, self.peer)
            return len(datagrams)
        except (BlockingIOError, InterruptedError):
            self.global_counters.send_errors += len(datagrams)  # buffer full: drop like a router
        except OSError as error:
            if ancillary and error.errno in (errno.EINVAL, errno.EIO, errno.EMSGSIZE, errno.ENOPROTOOPT):
                log.info("UDP segmentation offload refused (%s): sending datagrams one by one", error)
                self._udp_gso = False
                return sum(self._sendmsg([datagram], 0) for datagram in datagrams)
            self.global_counters.send_errors += len(datagrams)
            log.debug("ESP send failed: %s", error)
        return 0

    def _open(self, datagram, addr):
        """Demultiplex one UDP payload from port 4500; returns an inner packet for the TUN."""
        spi = bytes(datagram[:4])
        child = self._inbound.get(spi)
        if child is None:
            return self._not_esp(datagram, spi, addr)
        try:
            next_header, inner = child.inbound.open(datagram)
        except (esp.EspError, esp.SaExhausted):
            return None  # counted by the SA
        if next_header != esp.NEXT_HEADER_IPV4 and next_header != esp.NEXT_HEADER_IPV6:
            if next_header != esp.NEXT_HEADER_NONE:  # 59 = dummy packet (RFC 4303 §2.6): silent
                child.counters.policy_drops_in += 1  # tunnel mode carries only IP packets
            return None
        # RFC 4301 §5.2: inner addresses must match the SA's selectors. The common case, an
        # IPv4 packet without options whose address pair was seen before, is checked inline.
        if not (len(inner) >= 20 and inner[0] == 0x45 and inner[12:20] in child.allowed_in) \
                and not child.inner_allowed(inner):
            child.counters.policy_drops_in += 1
            return None
        return inner

    def _not_esp(self, datagram, spi: bytes, addr) -> None:
        """Keepalives, IKE behind the non-ESP marker, runts and unknown SPIs."""
        if len(datagram) == 1 and datagram[0] == 0xFF:
            self.global_counters.keepalives_in += 1
        elif len(datagram) < 4:
            pass
        elif spi == NON_ESP_MARKER:
            self.global_counters.ike_in += 1
            self.on_ike_packet(bytes(datagram[4:]), addr)
        else:
            self.global_counters.unknown_spi += 1
        return None

    def receive_datagram(self, datagram, addr) -> bytes | None:
        """Handle one UDP payload from port 4500; returns the inner packet written to the TUN."""
        inner = self._open(datagram, addr)
        if inner is not None:
            self._write_tun([inner])
        return inner

    def _write_tun(self, packets: list) -> None:
        fd = self.tun.fd
        try:
            if self.tun.vnet_hdr:
                for iov in coalesce_tcp(packets):
                    os.writev(fd, iov)
            else:
                for packet in packets:
                    os.write(fd, packet)
        except (BlockingIOError, InterruptedError):
            pass  # TUN queue full: the rest of this batch is dropped
        except OSError as error:
            log.debug("TUN write failed: %s", error)

    # --- plain ESP (IP protocol 50) for SAs without UDP encapsulation ---

    def _open_raw_esp_socket(self) -> None:
        if self._raw_sock is not None:
            return
        family = socket.AF_INET6 if self.peer and ":" in self.peer[0] else socket.AF_INET
        self._raw_sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_ESP)
        self._raw_sock.setblocking(False)
        self._raw_buffer = bytearray(_RECV_BUFFER)
        if self._loop is not None:
            self._loop.add_reader(self._raw_sock.fileno(), self._on_raw_readable)

    def _send_raw_esp(self, sealed) -> None:
        try:
            self._raw_sock.sendmsg(sealed, (), 0, (self.peer[0], 0))
        except OSError as error:
            self.global_counters.send_errors += 1
            log.debug("ESP send failed: %s", error)

    def _on_raw_readable(self) -> None:
        recv_into, buffer, view = self._raw_sock.recvfrom_into, self._raw_buffer, memoryview(self._raw_buffer)
        ipv4 = self._raw_sock.family == socket.AF_INET
        packets = []
        for _ in range(BATCH):
            try:
                length, addr = recv_into(buffer)
            except (BlockingIOError, InterruptedError):
                break
            # IPv4 raw sockets deliver the IP header too; IPv6 ones do not.
            start = (buffer[0] & 0x0F) * 4 if ipv4 else 0
            if length - start < 8 or view[start : start + 4] == NON_ESP_MARKER:
                continue  # SPI 0 is reserved (RFC 4303 §2.1): no IKE on this path
            inner = self._open(view[start:length], addr)
            if inner is not None:
                packets.append(inner)
        if packets:
            self._write_tun(packets)

    # --- asyncio integration ---

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start reading the TUN device and the socket on the (running) event loop."""
        self._loop = loop or asyncio.get_running_loop()
        self._loop.add_reader(self.tun.fd, self._on_tun_readable)
        self._loop.add_reader(self.sock.fileno(), self._on_socket_readable)
        if self._raw_sock is not None:
            self._loop.add_reader(self._raw_sock.fileno(), self._on_raw_readable)

    def _on_tun_readable(self) -> None:
        # readv into reused buffers: no 64 KiB allocation per read; the packet is encrypted
        # (copied) before the next read overwrites it.
        readv, fd, buffers = os.readv, self.tun.fd, self._tun_buffers
        packet_view = self._tun_view
        vnet = self._vnet_buffer
        seal = self._seal
        datagrams = []
        self.global_counters.tun_wakeups += 1
        for _ in range(BATCH):
            try:
                length = readv(fd, buffers)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:  # e.g. EBADFD while the interface is torn down
                log.warning("reading the TUN device failed: %s", error)
                break
            if vnet is None:
                sealed = seal(packet_view[:length])
                if sealed is not None:
                    datagrams.append(sealed)
            elif vnet[0] or vnet[1]:  # partial checksum or TSO super-packet: finish/cut it first
                for packet in split_vnet_packet(bytes(vnet) + packet_view[: length - VNET_HDR_SIZE]):
                    sealed = seal(packet)
                    if sealed is not None:
                        datagrams.append(sealed)
            else:
                sealed = seal(packet_view[: length - VNET_HDR_SIZE])
                if sealed is not None:
                    datagrams.append(sealed)
        self.global_counters.tun_packets += len(datagrams)
        if datagrams:
            self._send_datagrams(datagrams)

    def _on_socket_readable(self) -> None:
        recvmsg_into, buffers, view = self.sock.recvmsg_into, [self._recv_buffer], self._recv_view
        ancillary_size = socket.CMSG_SPACE(4) if self._udp_gro else 0
        open_ = self._open
        packets = []
        self.global_counters.socket_wakeups += 1
        for _ in range(BATCH):
            try:
                length, ancillary, _flags, addr = recvmsg_into(buffers, ancillary_size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:  # e.g. ICMP port unreachable reported on the socket
                if error.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue
                log.warning("receiving on the UDP socket failed: %s", error)
                break
            segment = length
            for level, kind, data in ancillary:
                if level == SOL_UDP and kind == UDP_GRO:
                    segment = int.from_bytes(data[:4], "little") or length
            self.global_counters.socket_datagrams += -(-length // segment)
            for offset in range(0, length, segment):
                inner = open_(view[offset : min(offset + segment, length)], addr)
                if inner is not None:
                    packets.append(inner)
        if packets:
            self._write_tun(packets)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            self._loop.remove_reader(self.tun.fd)
            self._loop.remove_reader(self.sock.fileno())
            if self._raw_sock is not None:
                self._loop.remove_reader(self._raw_sock.fileno())
        if self._raw_sock is not None:
            self._raw_sock.close()  # the only socket the data plane opened itself
        self._inbound.clear()
        self._outbound.clear()
        self._route_cache.clear()


def _enable_udp_offloads(sock: socket.socket) -> tuple[bool, bool]:
    """Larger buffers, and UDP GSO/GRO where the kernel has them (Linux ≥ 4.18 / 5.0)."""
    for option, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # SO_*BUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, _SOCKET_BUFFER)
        except OSError:
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
            except OSError:
                pass
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False, False
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
        gso = True
    except OSError:
        gso = False
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        gro = True
    except OSError:
        gro = False
    return gso, gro
