"""The engine routes IKE by its session's socket (client/engine.py Tunnel._send): the IKE
socket while the session talks to the gateway's configured endpoint; the NAT-T socket, shared
with the data plane (non-ESP marker), once the session floated (RFC 7296 §2.23); and a soft
limit of a retired SA asks for no rekey."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from client.children import ChildRegistry
from client.dataplane import SaLimitReached
from client.engine import Tunnel
from client.profile import Profile
from client.status import Progress


class FakeSocket:
    def __init__(self):
        self.sent = []

    def sendto(self, data, addr):
        self.sent.append((data, addr))


class FakePlane:
    kind = "userspace"

    def __init__(self):
        self.sent, self.peer = [], None

    def set_peer(self, peer):
        self.peer = peer

    def send_ike(self, data, addr=None):
        self.sent.append((data, addr))

    def remove_child_sa(self, spi_in):
        pass


class FakeSession:
    def __init__(self, port=500):
        self.settings = SimpleNamespace(remote_address="203.0.113.1", remote_port=port)
        self.received, self.rekeyed = [], []

    def owns(self, data):
        return True

    def receive_datagram(self, data, addr, now):
        self.received.append(addr)

    def rekey_child(self, child_id):
        self.rekeyed.append(child_id)

    def datagrams_to_send(self, now):
        return []

    def next_event(self):
        return None

    def get_timer(self):
        return None


def tunnel_with(session) -> Tunnel:
    profile = Profile(name="office", gateways=("203.0.113.1",), auth="psk", psk_file=Path("/dev/null"))
    tunnel = Tunnel(profile, None, Progress())
    tunnel._sock500, tunnel.dataplane = FakeSocket(), FakePlane()
    tunnel.sessions.start(session)
    return tunnel


def test_ike_leaves_by_the_ike_socket_until_the_session_floats():
    async def scenario():
        session = FakeSession()
        tunnel = tunnel_with(session)
        tunnel._send(session, b"init", ("203.0.113.1", 500))
        assert tunnel._sock500.sent == [(b"init", ("203.0.113.1", 500))] and tunnel.dataplane.sent == []
        tunnel._send(session, b"auth", ("203.0.113.1", 4500))    # NAT detected: the core floated
        assert tunnel.dataplane.sent == [(b"auth", ("203.0.113.1", 4500))]
        assert tunnel.dataplane.peer == ("203.0.113.1", 4500)
        tunnel._send(session, b"info", ("203.0.113.1", 4500))
        assert len(tunnel._sock500.sent) == 1 and len(tunnel.dataplane.sent) == 2

    asyncio.run(scenario())


def test_after_the_float_every_other_endpoint_stays_on_the_nat_t_socket():
    async def scenario():
        session = FakeSession()
        tunnel = tunnel_with(session)
        tunnel._on_ike_4500(b"\x00" * 28, ("203.0.113.1", 4500))   # IKE from the shared socket
        assert session.received == [("203.0.113.1", 4500)] and tunnel.heard_from_gateway
        tunnel._send(session, b"auth", ("203.0.113.1", 4500))
        tunnel._send(session, b"dpd", ("203.0.113.9", 31234))      # a NAT's port, MOBIKE's address
        assert tunnel._sock500.sent == []
        assert tunnel.dataplane.sent == [(b"auth", ("203.0.113.1", 4500)), (b"dpd", ("203.0.113.9", 31234))]

    asyncio.run(scenario())


def test_a_gateway_configured_on_the_nat_t_port_gets_the_marker_from_the_start():
    async def scenario():
        session = FakeSession(port=4500)
        tunnel = tunnel_with(session)
        tunnel._send(session, b"init", ("203.0.113.1", 4500))
        assert tunnel._sock500.sent == [] and tunnel.dataplane.sent == [(b"init", ("203.0.113.1", 4500))]

    asyncio.run(scenario())


def test_only_a_current_sa_soft_limit_asks_for_a_rekey():
    async def scenario():
        session = FakeSession()
        tunnel = tunnel_with(session)
        tunnel.children = ChildRegistry(tunnel.loop, lambda spi: None)
        from tests.client.test_children import entry

        tunnel.children.add(entry(1, b"\x00\x00\x00\x01"))
        limit = dict(spi_out=b"\x00\x00\x00\x02", direction="out", severity="soft", what="bytes")
        tunnel._on_dataplane_event(SaLimitReached(child_id=1, spi_in=b"\x00\x00\x00\x01", **limit))
        tunnel.children.retire_all()                               # e.g. after a reauthentication
        tunnel._on_dataplane_event(SaLimitReached(child_id=1, spi_in=b"\x00\x00\x00\x01", **limit))
        tunnel.children.close()
        assert session.rekeyed == [1]

    asyncio.run(scenario())
