"""UDP encapsulation of ESP (RFC 3948) on the shared port-4500 socket of the userspace data plane.

Real sockets on loopback; the "TUN" is a datagram socketpair adopted with TunDevice.from_fd,
the way a mobile platform hands over an already-open descriptor.
"""

import asyncio
import ipaddress
import socket
import struct
import time
from dataclasses import dataclass, field

import pytest

from client.dataplane import NAT_KEEPALIVE, NON_ESP_MARKER, UserspaceDataPlane
from client.tun import TunDevice
from ike.constants import EncrId


@dataclass(frozen=True)
class FakeChildSa:
    """Same attributes as ike.events.ChildSaEstablished (keys made up for the test)."""

    child_id: int = 1
    spi_in: bytes = b"\x00\x00\x10\x01"
    spi_out: bytes = b"\x00\x00\x20\x01"
    encr_id: int = EncrId.AES_GCM_16
    encr_key_bits: int = 128
    integ_id: int | None = None
    esn: bool = False
    encr_key_in: bytes = field(default=bytes(range(20)), repr=False)
    integ_key_in: bytes = field(default=b"", repr=False)
    encr_key_out: bytes = field(default=bytes(range(1, 21)), repr=False)
    integ_key_out: bytes = field(default=b"", repr=False)
    local_ts: tuple = (ipaddress.ip_network("10.9.0.2/32"),)
    remote_ts: tuple = (ipaddress.ip_network("0.0.0.0/0"),)
    udp_encapsulation: bool = True


def ipv4(src, dst, payload=b"hello"):
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 17, 0,
                         ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)
    return header + payload


class Endpoint:
    def __init__(self, family=socket.AF_INET):
        self.app, tun_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.app.settimeout(2)
        self.udp = socket.socket(family, socket.SOCK_DGRAM)
        self.udp.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.ike = []
        self.events = []
        self.plane = UserspaceDataPlane(
            TunDevice.from_fd(tun_end.detach()), self.udp,
            on_ike_packet=lambda message, addr: self.ike.append((message, addr)),
            on_event=self.events.append,
        )

    @property
    def addr(self):
        return self.udp.getsockname()

    def close(self):
        self.plane.close()
        self.plane.tun.close()
        self.udp.close()
        self.app.close()


@pytest.fixture
def endpoint():
    ep = Endpoint()
    yield ep
    ep.close()


def test_ike_message_behind_marker_goes_to_engine(endpoint):
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    ike_message = bytes(8) + b"\x12" * 20  # an IKE header starts with the initiator SPI
    endpoint.plane.receive_datagram(NON_ESP_MARKER + ike_message, sender.getsockname())
    assert endpoint.ike == [(ike_message, sender.getsockname())]
    sender.close()


def test_keepalive_is_ignored(endpoint):
    assert endpoint.plane.receive_datagram(NAT_KEEPALIVE, ("127.0.0.1", 4500)) is None
    assert endpoint.ike == []
    assert endpoint.plane.global_counters.keepalives_in == 1


def test_send_ike_and_keepalive_formats(endpoint):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    endpoint.plane.set_peer(receiver.getsockname())
    endpoint.plane.send_ike(b"IKE-MESSAGE")
    assert receiver.recv(100) == b"\0\0\0\0IKE-MESSAGE"
    endpoint.plane.send_keepalive()
    assert receiver.recv(100) == b"\xff"
    receiver.close()


def test_esp_goes_directly_in_udp(endpoint):
    """RFC 3948 §2.1: the UDP payload starts with the (non-zero) SPI, no marker."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    endpoint.plane.set_peer(receiver.getsockname())
    endpoint.plane.install_child_sa(FakeChildSa())
    assert endpoint.plane.send_packet(ipv4("10.9.0.2", "8.8.8.8"))
    datagram = receiver.recv(2000)
    assert datagram[:4] == FakeChildSa.spi_out and datagram[4:8] == b"\0\0\0\1"
    receiver.close()


def test_esp_in_udp_over_ipv6():
    """The outer transport may be IPv6; batching (UDP_SEGMENT) works the same there."""
    a, b = Endpoint(socket.AF_INET6), Endpoint(socket.AF_INET6)
    try:
        a.plane.set_peer(b.addr[:2])
        a.plane.install_child_sa(FakeChildSa())
        b.plane.install_child_sa(FakeChildSa(
            spi_in=FakeChildSa.spi_out, spi_out=FakeChildSa.spi_in,
            encr_key_in=FakeChildSa.encr_key_out, encr_key_out=FakeChildSa.encr_key_in,
            local_ts=(ipaddress.ip_network("0.0.0.0/0"),), remote_ts=(ipaddress.ip_network("10.9.0.2/32"),)))
        sealed = [a.plane._seal(ipv4("10.9.0.2", "198.51.100.9", bytes([i]) * 100)) for i in range(5)]
        assert a.plane._send_datagrams(sealed) == 5
        time.sleep(0.1)
        b.plane._on_socket_readable()  # the loop's reader: one recvmsg may return all five (GRO)
        received = [b.app.recv(2000) for _ in range(5)]
        assert received == [ipv4("10.9.0.2", "198.51.100.9", bytes([i]) * 100) for i in range(5)]
        assert b.plane.global_counters.socket_datagrams == 5
    finally:
        a.close()
        b.close()


def test_unknown_spi_and_runt_datagrams_are_dropped(endpoint):
    endpoint.plane.install_child_sa(FakeChildSa())
    assert endpoint.plane.receive_datagram(b"\x99\x99\x99\x99" + bytes(40), ("127.0.0.1", 4500)) is None
    assert endpoint.plane.receive_datagram(b"\0\0", ("127.0.0.1", 4500)) is None
    assert endpoint.plane.global_counters.unknown_spi == 1
    assert endpoint.ike == []


def test_both_kinds_arrive_through_the_event_loop(endpoint):
    """IKE and ESP share the socket: the loop reader demultiplexes them."""

    async def scenario():
        peer = Endpoint()
        peer.app.setblocking(False)
        try:
            # Mirror-image SAs: what one sends with spi_out the other receives as spi_in.
            endpoint.plane.install_child_sa(FakeChildSa())
            peer.plane.install_child_sa(FakeChildSa(
                spi_in=FakeChildSa.spi_out, spi_out=FakeChildSa.spi_in,
                encr_key_in=FakeChildSa.encr_key_out, encr_key_out=FakeChildSa.encr_key_in,
                local_ts=(ipaddress.ip_network("0.0.0.0/0"),), remote_ts=(ipaddress.ip_network("10.9.0.2/32"),)))
            endpoint.plane.set_peer(peer.addr)
            peer.plane.set_peer(endpoint.addr)
            endpoint.plane.start()
            peer.plane.start()
            endpoint.plane.send_ike(b"hello IKE")
            endpoint.app.send(ipv4("10.9.0.2", "203.0.113.5", b"through the tunnel"))
            loop = asyncio.get_running_loop()
            inner = await asyncio.wait_for(loop.sock_recv(peer.app, 2000), 2)
            for _ in range(100):
                if peer.ike:
                    break
                await asyncio.sleep(0.01)
            assert inner == ipv4("10.9.0.2", "203.0.113.5", b"through the tunnel")
            assert peer.ike == [(b"hello IKE", endpoint.addr)]
        finally:
            peer.close()

    endpoint.app.setblocking(False)
    asyncio.run(scenario())
