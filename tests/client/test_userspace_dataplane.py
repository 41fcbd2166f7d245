"""The userspace data plane: SA selection by traffic selectors, make-before-break rekeying,
counters and limit events; and (as root) two network namespaces joined by a veth pair, each
running the data plane over a real TUN device, with ping and a byte-exact TCP transfer."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client import esp
from client.dataplane import SaLimitReached
from client.tun import (
    VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR, VNET_HDR_SIZE,
    coalesce_tcp, ones_complement_sum, split_vnet_packet,
)
from ike.constants import EncrId, IntegId
from tests.client.test_rfc3948_udp_encap import Endpoint, FakeChildSa, ipv4

REPO = Path(__file__).resolve().parents[2]
NET = ipaddress.ip_network


def mirror(sa):
    """The peer's view of an SA pair: in and out swapped."""
    return replace(sa, spi_in=sa.spi_out, spi_out=sa.spi_in,
                   encr_key_in=sa.encr_key_out, encr_key_out=sa.encr_key_in,
                   integ_key_in=sa.integ_key_out, integ_key_out=sa.integ_key_in,
                   local_ts=sa.remote_ts, remote_ts=sa.local_ts)


@pytest.fixture
def pair():
    """Two endpoints wired to each other over loopback UDP (driven synchronously)."""
    a, b = Endpoint(), Endpoint()
    a.plane.set_peer(b.addr)
    b.plane.set_peer(a.addr)
    b.udp.settimeout(2)
    yield a, b
    a.close()
    b.close()


def deliver(src: Endpoint, dst: Endpoint):
    """Move one datagram from src's wire to dst's plane; returns the inner packet or None."""
    datagram, addr = dst.udp.recvfrom(65536)
    return dst.plane.receive_datagram(memoryview(datagram), addr)


SA = FakeChildSa(local_ts=(NET("10.9.0.2/32"),), remote_ts=(NET("10.20.0.0/16"), NET("192.168.7.0/24")))


def test_packets_outside_the_selectors_are_dropped_not_sent(pair):
    a, b = pair
    a.plane.install_child_sa(SA)
    b.plane.install_child_sa(mirror(SA))
    assert not a.plane.send_packet(ipv4("10.9.0.2", "8.8.8.8"))  # destination not in remote_ts
    assert not a.plane.send_packet(ipv4("10.9.0.3", "10.20.1.1"))  # source not in local_ts
    assert not a.plane.send_packet(b"\x60" + bytes(10))  # truncated IPv6 header
    assert a.plane.global_counters.outside_selectors == 3
    b.udp.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.udp.recv(65536)  # nothing reached the wire, not even in the clear
    b.udp.setblocking(True)
    assert a.plane.send_packet(ipv4("10.9.0.2", "192.168.7.9", b"inside"))
    assert deliver(a, b) == ipv4("10.9.0.2", "192.168.7.9", b"inside")
    assert b.app.recv(2000) == ipv4("10.9.0.2", "192.168.7.9", b"inside")


def test_no_sa_means_nothing_is_sent(pair):
    a, _ = pair
    assert not a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))
    assert a.plane.global_counters.outside_selectors == 1


def test_decrypted_packet_outside_selectors_is_dropped(pair):
    """RFC 4301 §5.2: after decryption the inner addresses must match the SA's selectors."""
    a, b = pair
    wide = replace(SA, local_ts=(NET("0.0.0.0/0"),), remote_ts=(NET("0.0.0.0/0"),))
    a.plane.install_child_sa(wide)  # a sends anything ...
    b.plane.install_child_sa(mirror(SA))  # ... but b only accepts 10.9.0.2 -> its selectors
    assert a.plane.send_packet(ipv4("10.66.0.1", "192.168.7.1"))
    assert deliver(a, b) is None
    assert b.plane.counters()[SA.spi_out].policy_drops_in == 1
    assert b.plane.counters()[SA.spi_out].packets_in == 1  # it was authentic, just not allowed


def test_selector_cache_cannot_be_confused_across_address_families(pair):
    """An IPv4 packet with options whose bytes 8-40 equal an allowed IPv6 address pair must
    still be checked on its own IPv4 addresses."""
    a, b = pair
    wide = replace(SA, local_ts=(NET("0.0.0.0/0"), NET("::/0")), remote_ts=(NET("0.0.0.0/0"), NET("::/0")))
    narrow = mirror(replace(SA, local_ts=(NET("fd00:1::/64"),), remote_ts=(NET("fd00:2::/64"),)))
    a.plane.install_child_sa(wide)
    b.plane.install_child_sa(replace(narrow, spi_in=wide.spi_out, spi_out=wide.spi_in,
                                     encr_key_in=wide.encr_key_out, encr_key_out=wide.encr_key_in))
    v6 = struct.pack(">IHBB16s16s", 6 << 28, 4, 17, 64, ipaddress.ip_address("fd00:1::5").packed,
                     ipaddress.ip_address("fd00:2::7").packed) + b"data"
    assert a.plane.send_packet(v6)
    assert deliver(a, b) == v6
    v4_with_options = b"\x46" + v6[1:8] + v6[8:40] + b"data"
    assert a.plane.send_packet(v4_with_options)
    assert deliver(a, b) is None
    assert b.plane.counters()[wide.spi_out].policy_drops_in == 1


def test_ipv6_inner_packets(pair):
    a, b = pair
    sa6 = replace(SA, local_ts=(NET("fd00:1::2/128"),), remote_ts=(NET("fd00:2::/64"),))
    a.plane.install_child_sa(sa6)
    b.plane.install_child_sa(mirror(sa6))
    packet = struct.pack(">IHBB16s16s", 6 << 28, 4, 17, 64, ipaddress.ip_address("fd00:1::2").packed,
                         ipaddress.ip_address("fd00:2::99").packed) + b"data"
    assert a.plane.send_packet(packet)
    datagram = b.udp.recv(65536)
    assert b.plane._inbound[sa6.spi_out].inbound.open(datagram)[0] == esp.NEXT_HEADER_IPV6
    assert not a.plane.send_packet(packet.replace(ipaddress.ip_address("fd00:2::99").packed,
                                                  ipaddress.ip_address("fd00:3::99").packed))


def test_dummy_packets_are_dropped_silently(pair):
    a, b = pair
    a.plane.install_child_sa(SA)
    b.plane.install_child_sa(mirror(SA))
    dummy = a.plane._outbound[SA.child_id].outbound.dummy_packet(30)
    assert b.plane.receive_datagram(dummy, a.addr) is None
    assert b.plane.counters()[SA.spi_out].policy_drops_in == 0
    b.app.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.app.recv(2000)


def test_non_ip_next_header_is_dropped(pair):
    """Tunnel mode carries whole IP packets (RFC 4303 §2.6): Next Header 6 (TCP) is refused."""
    a, b = pair
    a.plane.install_child_sa(SA)
    b.plane.install_child_sa(mirror(SA))
    esp_packet = a.plane._outbound[SA.child_id].outbound.seal(ipv4("10.9.0.2", "10.20.0.1"), 6)
    assert b.plane.receive_datagram(esp_packet, a.addr) is None
    assert b.plane.counters()[SA.spi_out].policy_drops_in == 1


def test_nothing_is_sent_before_the_peer_is_known():
    a = Endpoint()
    try:
        a.plane.install_child_sa(SA)
        assert not a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))
        assert a.plane.global_counters.send_errors == 1
    finally:
        a.close()


def test_replayed_and_tampered_datagrams_are_counted(pair):
    a, b = pair
    a.plane.install_child_sa(SA)
    b.plane.install_child_sa(mirror(SA))
    a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))
    datagram, addr = b.udp.recvfrom(65536)
    assert b.plane.receive_datagram(datagram, addr) is not None
    assert b.plane.receive_datagram(datagram, addr) is None
    a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))
    tampered = bytearray(b.udp.recv(65536))
    tampered[-3] ^= 1
    assert b.plane.receive_datagram(bytes(tampered), addr) is None
    counters = b.plane.counters()[SA.spi_out]
    assert (counters.packets_in, counters.replay_drops, counters.auth_failures) == (1, 1, 1)
    assert a.plane.counters()[SA.spi_in].packets_out == 2
    assert a.plane.counters()[SA.spi_in].bytes_out == 2 * len(ipv4("10.9.0.2", "10.20.0.1"))


def test_make_before_break_rekey(pair):
    """New inbound SA first, outbound switched, old inbound decrypts until removed."""
    a, b = pair
    old = replace(SA, encr_id=EncrId.AES_CBC, encr_key_bits=256, integ_id=IntegId.HMAC_SHA2_256_128,
                  encr_key_in=bytes(32), encr_key_out=bytes(range(32)),
                  integ_key_in=bytes(range(5, 37)), integ_key_out=bytes(range(9, 41)))
    new = replace(SA, spi_in=b"\x00\x00\x10\x02", spi_out=b"\x00\x00\x20\x02",
                  encr_id=EncrId.CHACHA20_POLY1305, encr_key_bits=256,
                  encr_key_in=bytes(range(40, 76)), encr_key_out=bytes(range(80, 116)))
    a.plane.install_child_sa(old)
    b.plane.install_child_sa(mirror(old))
    b.plane.send_packet(ipv4("10.20.0.1", "10.9.0.2", b"late"))  # in flight during the rekey
    late = a.udp.recvfrom(65536)

    # Responder side (b) installs the new pair but keeps sending on the old one ...
    b.plane.install_child_sa(mirror(new), activate_outbound=False)
    # ... initiator side (a) installs and switches at once.
    a.plane.install_child_sa(new)
    a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1", b"new"))
    datagram = b.udp.recv(65536)
    assert datagram[:4] == new.spi_out
    assert b.plane.receive_datagram(datagram, a.addr) == ipv4("10.9.0.2", "10.20.0.1", b"new")
    assert a.plane.receive_datagram(*late) == ipv4("10.20.0.1", "10.9.0.2", b"late")  # old inbound

    b.plane.activate_outbound(new.spi_out)
    b.plane.send_packet(ipv4("10.20.0.1", "10.9.0.2", b"b new"))
    datagram, addr = a.udp.recvfrom(65536)
    assert datagram[:4] == new.spi_in
    a.plane.remove_child_sa(old.spi_in)
    b.plane.remove_child_sa(mirror(old).spi_in)
    assert set(a.plane.counters()) == {new.spi_in}
    assert a.plane.receive_datagram(datagram, addr) is not None
    assert a.plane.receive_datagram(late[0][:4] + bytes(60), late[1]) is None  # old SPI is gone
    assert a.plane.global_counters.unknown_spi == 1


def test_batches_go_one_by_one_without_udp_segmentation(pair):
    """Kernels without UDP_SEGMENT: the same batch leaves as separate datagrams."""
    a, b = pair
    a.plane.install_child_sa(SA)
    b.plane.install_child_sa(mirror(SA))
    a.plane._udp_gso = False
    sealed = [a.plane._seal(ipv4("10.9.0.2", "10.20.0.1", bytes([i]) * 50)) for i in range(3)]
    assert a.plane._send_datagrams(sealed) == 3
    datagrams = [b.udp.recv(65536) for _ in range(3)]
    assert [d[4:8] for d in datagrams] == [b"\0\0\0\1", b"\0\0\0\2", b"\0\0\0\3"]


def test_removing_the_only_sa_stops_traffic(pair):
    a, _ = pair
    a.plane.install_child_sa(SA)
    a.plane.remove_child_sa(SA.spi_in)
    a.plane.remove_child_sa(SA.spi_in)  # unknown: no error
    assert not a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))


def test_soft_limit_becomes_an_event_for_the_engine(pair):
    a, b = pair
    a.plane.limits = esp.SaLimits(soft_packets=3, hard_packets=5)
    a.plane.install_child_sa(SA)
    for _ in range(6):
        a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))
    assert a.events == [
        SaLimitReached(SA.child_id, SA.spi_in, SA.spi_out, "out", "soft", "packets"),
        SaLimitReached(SA.child_id, SA.spi_in, SA.spi_out, "out", "hard", "packets"),
    ]
    assert a.plane.counters()[SA.spi_in].packets_out == 5


def test_keys_are_not_in_reprs():
    assert bytes(range(20)).hex() not in repr(SA) and repr(bytes(range(20))) not in repr(SA)
    a = Endpoint()
    try:
        a.plane.install_child_sa(SA)
        text = repr(a.plane._inbound[SA.spi_in]) + repr(a.plane.counters())
        assert "encr_key" not in text and repr(bytes(range(20))) not in text
    finally:
        a.close()


# --- TUN offload helpers: checksums, TSO segmentation, GRO-style coalescing ------------------


def rfc1071_sum(data: bytes) -> int:
    """Reference one's complement sum, word by word (RFC 1071 §4.1)."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_ones_complement_sum_matches_rfc1071(data):
    assert ones_complement_sum(data) == rfc1071_sum(data)


def tcp_checksum_ok(packet: bytes) -> bool:
    if packet[0] >> 4 == 4:
        ihl = (packet[0] & 15) * 4
        pseudo = packet[12:20] + b"\0\x06" + (len(packet) - ihl).to_bytes(2, "big")
        assert rfc1071_sum(packet[:ihl]) == 0xFFFF, "IPv4 header checksum"
    else:
        ihl = 40
        pseudo = packet[8:40] + (len(packet) - 40).to_bytes(4, "big") + b"\0\0\0\x06"
    return rfc1071_sum(pseudo + packet[ihl:]) == 0xFFFF


def tcp_super_packet(version, payload, flags=0x18 | 0x80, seq=0xFFFFF000):
    """A TCP packet as the kernel hands it to a TSO device: one header, a big payload and the
    pseudo-header sum in the checksum field (CHECKSUM_PARTIAL)."""
    options = b"\x01\x01\x08\x0a" + struct.pack(">II", 12345, 678)
    tcp = struct.pack(">HHIIBBHHH", 40000, 5201, seq, 99, (20 + len(options)) // 4 << 4, flags, 512, 0, 0) + options
    tcp_length = len(tcp) + len(payload)
    if version == 4:
        src, dst = ipaddress.ip_address("10.9.0.2").packed, ipaddress.ip_address("10.20.0.1").packed
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, min(20 + tcp_length, 65535), 7, 0x4000, 64, 6, 0, src, dst)
        pseudo = src + dst + b"\0\x06" + tcp_length.to_bytes(2, "big")
    else:
        src, dst = ipaddress.ip_address("fd00:1::2").packed, ipaddress.ip_address("fd00:2::1").packed
        ip = struct.pack(">IHBB16s16s", 6 << 28, tcp_length, 6, 64, src, dst)
        pseudo = src + dst + tcp_length.to_bytes(4, "big") + b"\0\0\0\x06"
    tcp = tcp[:16] + ones_complement_sum(pseudo).to_bytes(2, "big") + tcp[18:]
    return ip + tcp + payload


@pytest.mark.parametrize("version", [4, 6])
def test_tso_super_packet_is_cut_into_valid_segments(version):
    payload = os.urandom(10 * 1348 + 77)
    packet = tcp_super_packet(version, payload)
    ip_length = 20 if version == 4 else 40
    vnet = VNET_HDR.pack(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 if version == 4 else VNET_GSO_TCPV6,
                         ip_length + 32, 1348, ip_length, 16)
    segments = [bytes(s) for s in split_vnet_packet(vnet + packet)]
    assert len(segments) == 11
    assert b"".join(s[ip_length + 32:] for s in segments) == payload
    for i, segment in enumerate(segments):
        assert tcp_checksum_ok(segment), f"segment {i}"
        seq = int.from_bytes(segment[ip_length + 4: ip_length + 8], "big")
        assert seq == (0xFFFFF000 + i * 1348) & 0xFFFFFFFF  # wraps around 2^32
        flags = segment[ip_length + 13]
        assert bool(flags & 0x08) == (i == 10)  # PSH only on the last
        assert bool(flags & 0x80) == (i == 0)  # CWR only on the first
        if version == 4:
            assert int.from_bytes(segment[2:4], "big") == len(segment)
            assert int.from_bytes(segment[4:6], "big") == 7 + i
        else:
            assert int.from_bytes(segment[4:6], "big") == len(segment) - 40


def test_partial_udp_checksum_is_completed():
    src, dst = ipaddress.ip_address("10.9.0.2").packed, ipaddress.ip_address("10.20.0.1").packed
    data = b"datagram!"
    udp_length = 8 + len(data)
    pseudo = src + dst + b"\0\x11" + udp_length.to_bytes(2, "big")
    udp = struct.pack(">HHHH", 5353, 53, udp_length, ones_complement_sum(pseudo)) + data
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + udp_length, 0, 0, 64, 17, 0, src, dst)
    vnet = VNET_HDR.pack(VNET_F_NEEDS_CSUM, VNET_GSO_NONE, 0, 0, 20, 6)
    (packet,) = split_vnet_packet(vnet + ip + udp)
    assert rfc1071_sum(pseudo + bytes(packet[20:])) == 0xFFFF
    plain = VNET_HDR.pack(0, VNET_GSO_NONE, 0, 0, 0, 0)
    assert bytes(split_vnet_packet(plain + ip + udp)[0]) == ip + udp  # nothing to finish


def _segments(version, payload, **kwargs):
    ip_length = 20 if version == 4 else 40
    vnet = VNET_HDR.pack(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 if version == 4 else VNET_GSO_TCPV6,
                         ip_length + 32, 1000, ip_length, 16)
    return [bytes(s) for s in split_vnet_packet(vnet + tcp_super_packet(version, payload, **kwargs))]


@pytest.mark.parametrize("version", [4, 6])
def test_in_order_segments_are_coalesced_into_one_gso_write(version):
    payload = os.urandom(5 * 1000 + 10)
    segments = _segments(version, payload, flags=0x18)  # ACK, and PSH on the last
    writes = coalesce_tcp(segments)
    assert len(writes) == 1
    vnet, header, *payloads = writes[0]
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack(vnet)
    ip_length = 20 if version == 4 else 40
    assert (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) == (
        VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 if version == 4 else VNET_GSO_TCPV6, ip_length + 32, 1000, ip_length, 16)
    assert b"".join(bytes(p) for p in payloads) == payload
    header = bytes(header)
    assert header[ip_length + 13] & 0x08  # the last segment's PSH is kept
    # The kernel finishes the checksum: header sum + payload sum must verify.
    whole = header + payload
    if version == 4:
        assert int.from_bytes(whole[2:4], "big") == len(whole)
        assert rfc1071_sum(header[:20]) == 0xFFFF
    completed = bytearray(whole)
    partial = ones_complement_sum(completed[ip_length:])
    completed[ip_length + 16: ip_length + 18] = (~partial & 0xFFFF).to_bytes(2, "big")
    assert tcp_checksum_ok(bytes(completed))


def test_coalescing_stops_at_gaps_flows_and_non_tcp():
    segments = _segments(4, os.urandom(4000), flags=0x10)  # four full 1000-byte segments, no PSH
    other_flow = bytearray(segments[1])
    other_flow[20:22] = (40001).to_bytes(2, "big")  # a different source port
    udp = ipv4("10.9.0.2", "10.20.0.1", b"x" * 30)
    packets = [segments[0], segments[1], segments[3], bytes(other_flow), udp, segments[2]]
    writes = coalesce_tcp(packets)
    shapes = [len(w) - 2 if VNET_HDR.unpack(w[0])[1] else 0 for w in writes]
    # [0,1] merge (2 payloads); 3 jumps ahead; other flow; UDP as is; 2 alone
    assert shapes == [2, 0, 0, 0, 0]
    assert writes[3] == [bytes(VNET_HDR_SIZE), udp]


def test_cwr_segment_is_not_merged():
    """Like the kernel's GRO: a congestion-window-reduced signal must reach TCP unchanged."""
    writes = coalesce_tcp(_segments(4, os.urandom(3000), flags=0x90))  # ACK|CWR: CWR only on the first
    assert [len(w) - 2 for w in writes] == [0, 2]


def test_shorter_segment_ends_a_run():
    segments = _segments(4, os.urandom(2500), flags=0x10)  # 1000, 1000, 500
    more = _segments(4, os.urandom(1000), flags=0x10, seq=(0xFFFFF000 + 2500) & 0xFFFFFFFF)
    writes = coalesce_tcp(segments + more)
    assert [len(w) - 2 for w in writes] == [3, 0]


# --- real TUN devices in two network namespaces (root) ----------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and TUN")

ENDPOINT_SCRIPT = r"""
import asyncio, ipaddress, json, signal, socket, sys
from dataclasses import replace
sys.path.insert(0, {repo!r})
from client.dataplane import UserspaceDataPlane
from client.tun import TunDevice
from tests.client.test_rfc3948_udp_encap import FakeChildSa
from tests.client.test_userspace_dataplane import mirror
conf = json.loads(sys.argv[1])
sa = FakeChildSa(encr_id=conf["encr_id"], encr_key_bits=conf["bits"], integ_id=conf["integ_id"],
                 encr_key_in=bytes.fromhex(conf["ek_in"]), encr_key_out=bytes.fromhex(conf["ek_out"]),
                 integ_key_in=bytes.fromhex(conf["ik_in"]), integ_key_out=bytes.fromhex(conf["ik_out"]),
                 esn=conf["esn"], udp_encapsulation=conf.get("udp_encapsulation", True),
                 local_ts=(ipaddress.ip_network(conf["vip"] + "/32"),),
                 remote_ts=(ipaddress.ip_network(conf["peer_vip"] + "/32"),))
if conf["mirror"]:
    sa = mirror(replace(sa, local_ts=sa.remote_ts, remote_ts=sa.local_ts))
tun = TunDevice.create("cygtun%d", vnet_hdr=conf.get("vnet_hdr", False), tso=conf.get("tso", False))
tun.configure([conf["vip"] + "/32"], mtu=conf.get("mtu", 1400), routes=[conf["peer_vip"] + "/32"])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((conf["addr"], 4500))
async def main():
    plane = UserspaceDataPlane(tun, sock, (conf["peer_addr"], 4500), **conf.get("options", {{}}))
    plane.install_child_sa(sa)
    plane.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", tun.name, flush=True)
    await stop.wait()
    print(json.dumps(vars(plane.global_counters)), flush=True)
    print(json.dumps({{k.hex(): vars(v) | {{"spi_in": v.spi_in.hex(), "spi_out": v.spi_out.hex()}}
                      for k, v in plane.counters().items()}}), flush=True)
    plane.close()
asyncio.run(main())
"""


class Namespaces:
    """Two namespaces joined by a veth pair, 198.51.100.1 <-> 198.51.100.2; removed on close."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.names = (f"cygesp-a{tag}", f"cygesp-b{tag}")
        self.processes: list[subprocess.Popen] = []
        for name in self.names:
            subprocess.run(["ip", "netns", "add", name], check=True)
        a, b = self.names
        subprocess.run(["ip", "link", "add", "veth-cyg-a", "netns", a, "type", "veth",
                        "peer", "name", "veth-cyg-b", "netns", b], check=True)
        for ns, dev, addr in ((a, "veth-cyg-a", "198.51.100.1/24"), (b, "veth-cyg-b", "198.51.100.2/24")):
            self.run(ns, "ip", "addr", "add", addr, "dev", dev)
            self.run(ns, "ip", "link", "set", dev, "up")
            self.run(ns, "ip", "link", "set", "lo", "up")

    def run(self, ns, *command, **kwargs):
        return subprocess.run(["ip", "netns", "exec", ns, *command], check=True, **kwargs)

    def spawn(self, ns, *command, **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(["ip", "netns", "exec", ns, *command], **kwargs)
        self.processes.append(process)
        return process

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def start_endpoints(ns: Namespaces, sa_config: dict, **extra):
    script = ENDPOINT_SCRIPT.format(repo=str(REPO))
    sides = [
        dict(addr="198.51.100.1", peer_addr="198.51.100.2", vip="10.99.0.1", peer_vip="10.99.0.2", mirror=False),
        dict(addr="198.51.100.2", peer_addr="198.51.100.1", vip="10.99.0.2", peer_vip="10.99.0.1", mirror=True),
    ]
    processes = []
    for name, side in zip(ns.names, sides):
        conf = sa_config | side | extra
        process = ns.spawn(name, sys.executable, "-c", script, json.dumps(conf),
                           stdout=subprocess.PIPE, text=True, cwd=REPO)
        processes.append(process)
    for process in processes:
        line = process.stdout.readline()
        assert line.startswith("ready"), f"endpoint did not start: {line!r}"
    return processes


def stop_endpoints(processes) -> list[dict]:
    results = []
    for process in processes:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


PING_SCRIPT = r"""
import socket, struct, sys, time
def checksum(data):
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(2)
replies = 0
for seq in range(1, 4):
    body = struct.pack("!HH", 0x4359, seq) + b"cygnet ping" * 10
    sock.sendto(struct.pack("!BBH", 8, 0, checksum(b"\x08\x00\x00\x00" + body)) + body, (sys.argv[1], 0))
    while True:
        data = sock.recv(2000)
        icmp = data[(data[0] & 15) * 4:]
        if icmp[0] == 0 and icmp[4:8] == body[:4]:
            replies += 1
            break
print(replies)
"""

TCP_SINK = r"""
import hashlib, socket, sys
server = socket.create_server((sys.argv[1], 5001))
print("listening", flush=True)
conn, _ = server.accept()
digest, total = hashlib.sha256(), 0
while chunk := conn.recv(262144):
    digest.update(chunk); total += len(chunk)
conn.sendall(f"{total} {digest.hexdigest()}".encode())
conn.close()
"""

TCP_SOURCE = r"""
import os, socket, sys, hashlib, time
data = os.urandom(int(sys.argv[2]))
conn = socket.create_connection((sys.argv[1], 5001), timeout=30)
start = time.monotonic()
conn.sendall(data)
conn.shutdown(socket.SHUT_WR)
answer = conn.recv(200).decode()
elapsed = time.monotonic() - start
print(answer == f"{len(data)} {hashlib.sha256(data).hexdigest()}", elapsed)
"""

SUITE_CONFIGS = {
    "aes128gcm16": dict(encr_id=int(EncrId.AES_GCM_16), bits=128, integ_id=None,
                        ek_in=bytes(range(20)).hex(), ek_out=bytes(range(50, 70)).hex(), ik_in="", ik_out="",
                        esn=False),
    "chacha20poly1305": dict(encr_id=int(EncrId.CHACHA20_POLY1305), bits=256, integ_id=None,
                             ek_in=bytes(range(36)).hex(), ek_out=bytes(range(50, 86)).hex(), ik_in="", ik_out="",
                             esn=True),
    "aes256-sha256-esn": dict(encr_id=int(EncrId.AES_CBC), bits=256, integ_id=int(IntegId.HMAC_SHA2_256_128),
                              ek_in=bytes(range(32)).hex(), ek_out=bytes(range(50, 82)).hex(),
                              ik_in=bytes(range(100, 132)).hex(), ik_out=bytes(range(140, 172)).hex(), esn=True),
}


TUN_QUEUES_SCRIPT = r"""
import os, sys
sys.path.insert(0, {repo!r})
from client.tun import TunDevice
first = TunDevice.create("cygmq%d", multi_queue=True)
second = first.add_queue()
adopted = TunDevice.from_fd(os.dup(first.fd), vnet_hdr=True)  # as a mobile platform hands it over
print(first.name, second.name, adopted.name, first.fd != second.fd, first.vnet_hdr, adopted.vnet_hdr)
"""


@pytest.mark.interop
@pytest.mark.netns
@needs_root
@pytest.mark.timeout(30)
def test_multi_queue_tun_and_adopted_descriptor():
    ns = Namespaces()
    try:
        out = ns.run(ns.names[0], sys.executable, "-c", TUN_QUEUES_SCRIPT.format(repo=str(REPO)),
                     capture_output=True, text=True).stdout.split()
        assert out == ["cygmq0", "cygmq0", "cygmq0", "True", "True", "True"]
    finally:
        ns.close()


@pytest.mark.interop
@pytest.mark.netns
@needs_root
@pytest.mark.timeout(60)
def test_plain_esp_without_udp_encapsulation():
    """No NAT, no forced encapsulation: ESP travels as IP protocol 50 on a raw socket."""
    ns = Namespaces()
    try:
        processes = start_endpoints(ns, SUITE_CONFIGS["aes128gcm16"], udp_encapsulation=False)
        a, b = ns.names
        capture = ns.spawn(b, "tcpdump", "-i", "veth-cyg-b", "-n", "-c", "3", "-l", "esp",
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.5)
        ping = ns.run(a, sys.executable, "-c", PING_SCRIPT, "10.99.0.2", capture_output=True, text=True, timeout=20)
        assert ping.stdout.strip() == "3"
        lines = capture.communicate(timeout=10)[0].splitlines()
        assert len(lines) == 3 and all("ESP(spi=0x0000" in line for line in lines), lines
        counters_a, counters_b = stop_endpoints(processes)
        assert next(iter(counters_b.values()))["packets_in"] == 3
    finally:
        ns.close()


@pytest.mark.interop
@pytest.mark.netns
@needs_root
@pytest.mark.timeout(120)
@pytest.mark.parametrize("offload", [{}, {"vnet_hdr": True}, {"tso": True}], ids=["plain", "gso-write", "tso"])
@pytest.mark.parametrize("suite", list(SUITE_CONFIGS))
def test_tunnel_between_two_namespaces(suite, offload):
    ns = Namespaces()
    try:
        processes = start_endpoints(ns, SUITE_CONFIGS[suite], **offload)
        a, b = ns.names
        ping = ns.run(a, sys.executable, "-c", PING_SCRIPT, "10.99.0.2", capture_output=True, text=True, timeout=20)
        assert ping.stdout.strip() == "3"

        sink = ns.spawn(b, sys.executable, "-c", TCP_SINK, "10.99.0.2", stdout=subprocess.PIPE, text=True)
        assert sink.stdout.readline().startswith("listening")
        size = 4 * 1024 * 1024
        source = ns.run(a, sys.executable, "-c", TCP_SOURCE, "10.99.0.2", str(size),
                        capture_output=True, text=True, timeout=60)
        ok, elapsed = source.stdout.split()
        assert ok == "True", source.stdout + source.stderr
        sink.wait(10)

        counters_a, counters_b = stop_endpoints(processes)
        sa_a = next(iter(counters_a.values()))
        sa_b = next(iter(counters_b.values()))
        assert sa_a["bytes_out"] > size and sa_b["bytes_in"] > size  # every byte crossed (plus headers)
        assert sa_b["auth_failures"] == 0 and sa_b["replay_drops"] == 0
        print(f"{suite} offload={offload}: {size * 8 / float(elapsed) / 1e6:.0f} Mbit/s for {size} bytes;"
              f" a out {sa_a['packets_out']} pkts, b in {sa_b['packets_in']} pkts")
    finally:
        ns.close()
