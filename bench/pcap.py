"""A minimal pcap reader that finds IKEv2 messages and times handshakes on the wire.

Only what the benchmark needs: classic pcap files (as tcpdump -w writes them) with Ethernet,
Linux cooked (SLL, SLL2) or raw IP link types; IPv4/IPv6; UDP to or from port 500 or 4500 (on
4500 an IKE message follows the four zero bytes of the non-ESP marker, RFC 3948 §2.2).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

IKE_PORTS = (500, 4500)
IKE_SA_INIT, IKE_AUTH = 34, 35
FLAG_INITIATOR, FLAG_RESPONSE = 0x08, 0x20

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_SLL, LINKTYPE_SLL2 = 1, 101, 113, 276


@dataclass(frozen=True)
class IkePacket:
    time: float            # capture timestamp (seconds since the epoch)
    spi_i: bytes
    spi_r: bytes
    exchange: int
    flags: int
    message_id: int
    src_port: int
    dst_port: int

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)


def read_pcap(path: str | Path):
    """Yield (timestamp, link_type, frame bytes) for every record of a classic pcap file."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    nanoseconds = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link_type = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        offset += 16
        frame = data[offset:offset + captured]
        offset += captured
        yield seconds + fraction / (1e9 if nanoseconds else 1e6), link_type, frame


def _ip_payload(link_type: int, frame: bytes) -> bytes | None:
    """The IP packet inside a link-layer frame (None for anything else)."""
    if link_type == LINKTYPE_ETHERNET:
        ethertype, start = struct.unpack("!H", frame[12:14])[0], 14
        if ethertype == 0x8100:                       # one VLAN tag
            ethertype, start = struct.unpack("!H", frame[16:18])[0], 18
    elif link_type == LINKTYPE_SLL:
        ethertype, start = struct.unpack("!H", frame[14:16])[0], 16
    elif link_type == LINKTYPE_SLL2:
        ethertype, start = struct.unpack("!H", frame[0:2])[0], 20
    elif link_type == LINKTYPE_RAW:
        return frame
    else:
        return None
    return frame[start:] if ethertype in (0x0800, 0x86DD) else None


def _udp(packet: bytes) -> tuple[int, int, bytes] | None:
    """(source port, destination port, payload) of an unfragmented UDP packet."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        header_length = (packet[0] & 0x0F) * 4
        flags_fragment = struct.unpack("!H", packet[6:8])[0]
        if packet[9] != 17 or flags_fragment & 0x1FFF:
            return None
        udp = packet[header_length:]
    elif version == 6:
        if packet[6] != 17:   # no extension headers expected on the testbed
            return None
        udp = packet[40:]
    else:
        return None
    if len(udp) < 8:
        return None
    source, destination = struct.unpack("!HH", udp[:4])
    return source, destination, udp[8:]


def ike_packets(path: str | Path) -> list[IkePacket]:
    """Every IKE message header in the capture, in capture order."""
    found = []
    for timestamp, link_type, frame in read_pcap(path):
        packet = _ip_payload(link_type, frame)
        udp = _udp(packet) if packet is not None else None
        if udp is None:
            continue
        source, destination, payload = udp
        if source not in IKE_PORTS and destination not in IKE_PORTS:
            continue
        if 4500 in (source, destination):
            if payload[:4] != b"\0\0\0\0":
                continue                              # ESP or a NAT keepalive
            payload = payload[4:]
        if len(payload) < 28 or payload[17] >> 4 != 2:  # IKE header; major version 2
            continue
        spi_i, spi_r = payload[0:8], payload[8:16]
        exchange, flags = payload[18], payload[19]
        message_id = struct.unpack("!I", payload[20:24])[0]
        found.append(IkePacket(timestamp, spi_i, spi_r, exchange, flags, message_id,
                               source, destination))
    return found


def handshakes(packets: list[IkePacket], windows: list[tuple[float, float]]) -> list[tuple[float, float] | None]:
    """On-the-wire (start, end) of the tunnel-up handshake in each window of wall-clock time.

    Within a window: from the first IKE_SA_INIT request to the last IKE_AUTH response (the one
    that completes the CHILD_SA; with EAP several IKE_AUTH exchanges precede it, and a
    fragmented response ends with its last fragment). A retried IKE_SA_INIT (COOKIE,
    INVALID_KE_PAYLOAD) counts from the first attempt. None if the window holds no complete
    handshake.
    """
    found: list[tuple[float, float] | None] = []
    for start, end in windows:
        inside = [p for p in packets if start <= p.time <= end]
        first = next((p for p in inside if p.exchange == IKE_SA_INIT and not p.is_response), None)
        auth_responses = [p for p in inside if first is not None and p.time >= first.time
                          and p.exchange == IKE_AUTH and p.is_response]
        found.append((first.time, auth_responses[-1].time) if auth_responses else None)
    return found


def handshake_durations(packets: list[IkePacket], windows: list[tuple[float, float]]) -> list[float | None]:
    """Seconds each handshake took on the wire (see `handshakes`)."""
    return [None if h is None else h[1] - h[0] for h in handshakes(packets, windows)]


def who_waited(packets: list[IkePacket], handshake: tuple[float, float]) -> dict:
    """Split one handshake's wire time between the two sides.

    Each gap between consecutive IKE messages is charged to the side that sent the later one:
    a request (from the client) ends a gap the client spent computing, a response one the
    gateway spent. Returns {"client_s": ..., "gateway_s": ...} (they add up to the wire time).
    """
    start, end = handshake
    inside = [p for p in packets if start <= p.time <= end]
    split = {"client_s": 0.0, "gateway_s": 0.0}
    for previous, current in zip(inside, inside[1:]):
        side = "gateway_s" if current.is_response else "client_s"
        split[side] += current.time - previous.time
    return split


def exchange_summary(packets: list[IkePacket], window: tuple[float, float]) -> list[str]:
    """Human-readable list of the IKE messages in one window (for debugging a run)."""
    names = {34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL"}
    start = None
    lines = []
    for p in packets:
        if window[0] <= p.time <= window[1]:
            start = p.time if start is None else start
            kind = "response" if p.is_response else "request"
            lines.append(f"+{(p.time - start) * 1000:7.2f} ms {names.get(p.exchange, p.exchange)} "
                         f"{kind} #{p.message_id} {p.src_port}->{p.dst_port}")
    return lines
