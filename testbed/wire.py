"""What left a namespace on the wire: a capture of one Ethernet link (testbed/capture.py) read
back as IP packets, and sorted into what a VPN client may send outside its tunnel and what
leaked.

Only classic pcap with Ethernet frames (tcpdump -i eth0 -w). A packet counts as sent by the
client when its source MAC is the client's; ARP is link-layer plumbing (IKE needs it too) and
is not an IP packet, so it is not listed.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

UDP, ESP, ICMPV6 = 17, 50, 58
IKE_PORTS = (500, 4500)
# Router solicitation, neighbour solicitation/advertisement, MLD reports (RFC 4861, 3810).
NDP_TYPES = (133, 135, 136, 131, 143)
DHCP = ((68, 67), (546, 547))


@dataclass(frozen=True)
class WirePacket:
    time: float
    src_mac: bytes
    version: int
    src: str
    dst: str
    protocol: int
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None

    def __str__(self) -> str:
        what = {UDP: "UDP", ESP: "ESP", ICMPV6: "ICMPv6", 6: "TCP", 1: "ICMP"}.get(
            self.protocol, f"proto {self.protocol}")
        ports = f" {self.sport}->{self.dport}" if self.sport is not None else ""
        kind = f" type {self.icmp_type}" if self.icmp_type is not None else ""
        return f"{self.time:.3f} {self.src} -> {self.dst} {what}{ports}{kind}"


def read_packets(pcap: str | Path) -> list[WirePacket]:
    data = Path(pcap).read_bytes()
    if len(data) < 24:
        return []
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nanoseconds = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    if struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF != 1:
        raise ValueError(f"{pcap}: not an Ethernet capture (capture one link, not 'any')")
    packets, offset = [], 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        packet = _decode(seconds + fraction / (1e9 if nanoseconds else 1e6), frame)
        if packet is not None:
            packets.append(packet)
    return packets


def _decode(time: float, frame: bytes) -> WirePacket | None:
    if len(frame) < 14:
        return None
    ethertype, ip = struct.unpack("!H", frame[12:14])[0], frame[14:]
    if ethertype == 0x0800 and len(ip) >= 20:
        header = (ip[0] & 0x0F) * 4
        src, dst = ipaddress.IPv4Address(ip[12:16]), ipaddress.IPv4Address(ip[16:20])
        return _transport(time, frame[6:12], 4, str(src), str(dst), ip[9], ip[header:])
    if ethertype == 0x86DD and len(ip) >= 40:
        protocol, payload = ip[6], ip[40:]
        while protocol in (0, 43, 60) and len(payload) >= 8:  # hop-by-hop (MLD), routing, dest
            protocol, payload = payload[0], payload[(payload[1] + 1) * 8:]
        src, dst = ipaddress.IPv6Address(ip[8:24]), ipaddress.IPv6Address(ip[24:40])
        return _transport(time, frame[6:12], 6, str(src), str(dst), protocol, payload)
    return None


def _transport(time, mac, version, src, dst, protocol, payload) -> WirePacket:
    if protocol == UDP and len(payload) >= 4:
        sport, dport = struct.unpack("!HH", payload[:4])
        return WirePacket(time, mac, version, src, dst, protocol, sport, dport)
    if protocol == ICMPV6 and payload:
        return WirePacket(time, mac, version, src, dst, protocol, icmp_type=payload[0])
    return WirePacket(time, mac, version, src, dst, protocol)


def allowed_outside_tunnel(packet: WirePacket, gateways) -> bool:
    """IKE/ESP to a gateway, DHCP/DHCPv6 to a server, neighbour discovery and MLD."""
    if packet.dst in gateways and (packet.protocol == ESP or
                                   (packet.protocol == UDP and packet.dport in IKE_PORTS)):
        return True
    if packet.protocol == UDP and (packet.sport, packet.dport) in DHCP:
        return True
    return packet.protocol == ICMPV6 and packet.icmp_type in NDP_TYPES


def leaks(packets, client_mac: bytes, gateways, since: float = 0.0,
          until: float = float("inf")) -> list[WirePacket]:
    """Packets the client sent in [since, until] that a VPN client must keep in its tunnel."""
    gateways = {str(ipaddress.ip_address(g)) for g in gateways}
    return [p for p in packets if p.src_mac == client_mac and since <= p.time <= until
            and not allowed_outside_tunnel(p, gateways)]


def mac_address(namespace, interface: str = "eth0") -> bytes:
    """The MAC address of `interface` in a testbed Namespace."""
    import json

    link = json.loads(namespace.ip("-j", "link", "show", interface).stdout)[0]
    return bytes.fromhex(link["address"].replace(":", ""))


ISP_RESOLVER = "198.51.100.53"  # the client's "café" DNS server: on its uplink, outside the tunnel


def start_stream(testbed, udp_host: str, dns_server: str = ISP_RESOLVER, ping6_host: str = "",
                 udp_port: int = 9, interval: float = 0.05):
    """testbed/leak_stream.py in the client namespace (stopped with the testbed or by
    .stop()); see that script for what it sends."""
    import subprocess
    import sys

    from .topology import LAN_HOST_ADDR6

    script = Path(__file__).with_name("leak_stream.py")
    return testbed.popen("client", [sys.executable, str(script), udp_host, str(udp_port),
                                    dns_server, ping6_host or LAN_HOST_ADDR6, str(interval)],
                         "leak stream", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)


def add_isp_resolver(testbed) -> None:
    """Give the client's router the ISP resolver's address, so queries to it are routed to a
    neighbour that exists (and show up on the wire as UDP, not as unanswered ARP)."""
    router = testbed.nat_ns or testbed.gateway_ns
    router.ip("addr", "add", f"{ISP_RESOLVER}/32", "dev", "eth0")


class DnsServers:
    """testbed/dns_responder.py on the given namespaces' addresses; `asked(address)` lists
    the names queried at that address."""

    def __init__(self, testbed, log_path: Path, where: dict):
        import subprocess
        import sys

        self.log_path = Path(log_path)
        self.log_path.touch()
        script = Path(__file__).with_name("dns_responder.py")
        for role, addresses in where.items():
            process = testbed.popen(role, [sys.executable, str(script), str(self.log_path), *addresses],
                                    "DNS responder", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True)
            line = process.popen.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"DNS responder in {role} did not start: {line}")

    def asked(self, address: str) -> list[str]:
        return [line.split()[1] for line in self.log_path.read_text().splitlines()
                if line.split()[0] == address]
