"""client/netwatch.py against the real kernel, in a network namespace of the test's own:
rtnetlink change messages, and the path to the gateway outside a full tunnel."""

from __future__ import annotations

import ipaddress
import select
import socket

import pytest

from client import netwatch

pytestmark = pytest.mark.netns


@pytest.fixture
def namespace():
    from testbed import missing_requirements, wait_for
    from testbed.netns import Namespace, unique_prefix

    if missing_requirements():
        pytest.skip("; ".join(missing_requirements()))
    ns = Namespace(f"{unique_prefix()}-nw").create()
    try:
        # two "uplinks" (veths to a second namespace) and a full tunnel's halves on a third
        peer = Namespace(f"{ns.name}p").create()
        try:
            ns.ip("link", "add", "up1", "type", "veth", "peer", "name", "p1", "netns", peer.name)
            ns.ip("link", "add", "up2", "type", "veth", "peer", "name", "p2", "netns", peer.name)
            ns.ip("link", "add", "tun0", "type", "veth", "peer", "name", "p3", "netns", peer.name)
            for name in ("p1", "p2", "p3"):  # carrier: else the routes are "linkdown"
                peer.ip("link", "set", name, "up")
            for cmd in (("addr", "add", "198.51.100.2/24", "dev", "up1"),
                        ("addr", "add", "10.32.0.2/24", "dev", "up2"),
                        ("addr", "add", "10.3.0.1/32", "dev", "tun0"),
                        ("link", "set", "up1", "up"), ("link", "set", "up2", "up"),
                        ("link", "set", "tun0", "up"),
                        ("route", "add", "default", "via", "198.51.100.1", "metric", "100"),
                        ("route", "add", "default", "via", "10.32.0.1", "metric", "200"),
                        ("route", "add", "0.0.0.0/1", "dev", "tun0"),
                        ("route", "add", "128.0.0.0/1", "dev", "tun0")):
                ns.ip(*cmd)
            # carrier comes up asynchronously (the kernel's linkwatch): until it has, a route is
            # "linkdown" and is not a path yet
            wait_for(lambda: "linkdown" not in ns.ip("route").stdout, timeout=5, interval=0.02,
                     message=lambda: "routes still linkdown:\n" + ns.ip("route").stdout)
            yield ns
        finally:
            peer.delete()
    finally:
        ns.delete()


def _iproute(ns):
    from pyroute2 import NetNS

    return NetNS(ns.name)


def _tun(route) -> bool:
    return route.get("RTA_OIF") == TUN_INDEX[0]


TUN_INDEX: list = [None]


def test_the_path_outside_the_tunnel_and_our_source_on_it(namespace):
    from testbed import wait_for

    ipr = _iproute(namespace)
    try:
        # pyroute2's NetNS answered an empty lookup once in CI just after it opened: ask again
        TUN_INDEX[0] = wait_for(lambda: ipr.link_lookup(ifname="tun0"), timeout=5)[0]
        up1, up2 = ipr.link_lookup(ifname="up1")[0], ipr.link_lookup(ifname="up2")[0]
        gateway = ipaddress.ip_address("203.0.113.1")
        # The kernel itself would send to the gateway into the tunnel (128.0.0.0/1)...
        assert ipr.route("get", dst=str(gateway))[0].get("RTA_OIF") == TUN_INDEX[0]
        # ...outside it, the default route with the lowest metric.
        assert netwatch.gateway_path(ipr, gateway, _tun) == netwatch.GatewayPath(
            up1, "198.51.100.1", "198.51.100.2")
        namespace.ip("link", "set", "up1", "down")  # Wi-Fi gone: Ethernet
        assert netwatch.gateway_path(ipr, gateway, _tun) == netwatch.GatewayPath(
            up2, "10.32.0.1", "10.32.0.2")
        namespace.ip("link", "set", "up2", "down")
        assert netwatch.gateway_path(ipr, gateway, _tun) is None
    finally:
        ipr.close()


def test_link_address_and_route_changes_are_reported_with_their_interface(namespace):
    from testbed.netsock import socket_in

    sock = socket_in(namespace.name, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        sock.bind((0, netwatch.GROUPS))
        namespace.ip("addr", "add", "198.51.100.3/24", "dev", "up1")
        namespace.ip("route", "add", "203.0.113.1/32", "via", "198.51.100.1", "dev", "up1")
        namespace.ip("link", "set", "up2", "down")
        changes = []
        while select.select([sock], [], [], 0.5)[0]:
            changes += netwatch.parse_messages(sock.recv(1 << 16))
    finally:
        sock.close()
    kinds = {c.kind for c in changes}
    assert {netwatch.RTM_NEWADDR, netwatch.RTM_NEWROUTE, netwatch.RTM_NEWLINK} <= kinds
    host_routes = [c for c in changes if c.kind == netwatch.RTM_NEWROUTE
                   and c.destination == "203.0.113.1"]
    assert host_routes and host_routes[0].prefixlen == 32
    assert host_routes[0].table == netwatch.MAIN_TABLE
    # the same interface index in the address, route and link messages of up1
    address = next(c for c in changes if c.kind == netwatch.RTM_NEWADDR)
    assert address.ifindex == host_routes[0].ifindex


def test_a_jump_of_boottime_over_monotonic_is_a_resume(monkeypatch):
    import asyncio

    readings = [100.0, 100.1, 160.1]  # 60 s asleep between the 2nd and 3rd check

    def offset():
        return readings.pop(0) if len(readings) > 1 else readings[0]

    monkeypatch.setattr(netwatch, "sleep_offset", offset)
    monkeypatch.setattr(netwatch, "SUSPEND_CHECK_INTERVAL", 0.01)
    resumed: list = []

    async def run():
        watch = netwatch.SuspendWatch(asyncio.get_running_loop(), resumed.append)
        await asyncio.sleep(0.1)  # ~10 checks: one saw the jump, the others nothing
        watch.close()

    asyncio.run(run())
    assert resumed == [pytest.approx(60.0)]


def test_dbus_fast_is_loaded_only_where_a_system_bus_could_answer(monkeypatch, tmp_path):
    from client import netwatch

    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    monkeypatch.setattr(netwatch, "SYSTEM_BUS_SOCKET", str(tmp_path / "no-bus"))
    assert not netwatch.system_bus_present()
    (tmp_path / "no-bus").touch()
    assert netwatch.system_bus_present()
    monkeypatch.setattr(netwatch, "SYSTEM_BUS_SOCKET", str(tmp_path / "still-no-bus"))
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/elsewhere")
    assert netwatch.system_bus_present()
