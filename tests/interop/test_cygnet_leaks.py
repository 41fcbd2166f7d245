"""No leaks (issue 17) against strongSwan, with real nftables and a capture of the client's
uplink: while an application in the client namespace sends a steady stream (UDP to the LAN
host behind the gateway, DNS queries to the café's resolver on the uplink, IPv6 pings), the
uplink must show nothing but IKE/ESP to the gateway, DHCP and neighbour discovery.

The client sits behind a NAT box (its default router), so whatever escapes the tunnel is
routed and visible on the uplink, as in a café.
"""

from __future__ import annotations

import time

import pytest

from tests.interop.cygnet_helpers import FAST_RETRANSMIT, LAN_HOST, make_cygnet

pytestmark = [pytest.mark.interop, pytest.mark.netns]
__all__ = ["make_cygnet"]


def leak_testbed(testbed_factory, **kwargs):
    from testbed import wire

    tb = testbed_factory(nat="masquerade", capture=False, iperf=False, **kwargs)
    wire.add_isp_resolver(tb)
    capture = tb.start_capture("client", "eth0")
    return tb, capture


def nft_tables(tb) -> str:
    return tb.run("client", ["nft", "list", "tables"]).stdout


def leaked(tb, capture, since: float, until: float) -> list:
    from testbed import wire

    packets = wire.read_packets(capture.pcap)
    mac = wire.mac_address(tb.client_ns)
    return wire.leaks(packets, mac, [tb.gateway_address, tb.gateway_address6], since, until)


def first_ike_packet(tb, capture) -> float:
    from testbed import wire

    packets = wire.read_packets(capture.pcap)
    return min(p.time for p in packets
               if p.dst == tb.gateway_address and p.protocol == wire.UDP and p.dport == 500)


def wait_state(client, predicate, timeout=20, message="state not reached"):
    from testbed import wait_for

    return wait_for(lambda: predicate(client.control_status()), timeout=timeout, interval=0.1,
                    message=lambda: f"{message}:\n{client.tail()}")


def test_kill_switch_lets_nothing_out_from_up_to_down(testbed_factory, make_cygnet):
    """Connect, run, reconnect after the gateway was killed, fail for good (the gateway now
    wants another PSK), then `cygnet down`: 0 leaked packets in all of it."""
    from testbed import wire

    tb, capture = leak_testbed(testbed_factory)
    client = make_cygnet(tb)
    client.hooks = FAST_RETRANSMIT
    stream = wire.start_stream(tb, LAN_HOST)
    time.sleep(0.5)
    before_up = time.time()
    client.up(client.profile("psk", kill_switch=True, dpd=1))
    assert "kill switch on" in client.output()
    assert "cygnet-tunnel" in nft_tables(tb)
    tb.wait_for_ping("client", LAN_HOST)                 # the tunnel carries traffic
    status = client.control_status()
    assert status["kill_switch"] is True
    time.sleep(0.5)

    tb.gateway.kill()                                     # reconnecting...
    wait_state(client, lambda s: s["state"] != "up", message="the loss was not noticed")
    time.sleep(1.0)
    tb.gateway.start()
    wait_state(client, lambda s: s["state"] == "up" and s["reconnects"] == 1,
               message="no reconnect")
    time.sleep(0.5)

    tb.gateway.kill()                                     # ...and failed for good
    tb.gateway.options.psk = "not-the-psk-the-client-has"
    tb.gateway.start()
    assert client.wait_exit(30) == 3                      # exit status: authentication
    assert "authentication failed" in client.output()
    assert "kill switch stays on" in client.output()
    assert client.tun_links() == []                       # the TUN went, the block stayed
    assert "cygnet-tunnel" in nft_tables(tb)
    time.sleep(1.0)

    down_at = time.time()                                 # the block ends during `down`
    result = client.run("down", "tunnel", check=True)
    assert "kill switch of tunnel removed" in result.stdout
    after_down = time.time()
    assert "cygnet-tunnel" not in nft_tables(tb)
    time.sleep(0.5)
    stream.stop()
    capture.stop()

    start = first_ike_packet(tb, capture)
    assert start >= before_up
    inside = leaked(tb, capture, start, down_at)
    assert inside == [], "leaked with the kill switch on:\n" + "\n".join(map(str, inside[:20]))
    # The stream ran all along: it leaked before `up` and leaks again after `down`.
    assert leaked(tb, capture, 0, before_up), "the stream sent nothing before cygnet up"
    assert leaked(tb, capture, after_down, float("inf")), "nothing leaked after cygnet down"


def test_a_killed_engine_leaves_the_block_until_the_next_up_or_down(testbed_factory, make_cygnet):
    from testbed import wire

    tb, capture = leak_testbed(testbed_factory)
    client = make_cygnet(tb)
    profile = client.profile("psk", kill_switch=True)
    stream = wire.start_stream(tb, LAN_HOST)
    client.up(profile)
    client.kill()                                         # SIGKILL: no cleanup at all
    killed_at = time.time()
    assert "cygnet-tunnel" in nft_tables(tb)
    time.sleep(1.0)
    checked_until = time.time()

    # The next `up` replaces the leftover table in one transaction, its `down` removes it.
    client.up(profile)
    assert "cleared the firewall table a previous run left" in client.output()
    assert client.down() == 0
    assert "cygnet-tunnel" not in nft_tables(tb)

    client.up(profile)                                    # killed again: `cygnet down` lifts it
    client.kill()
    assert "cygnet-tunnel" in nft_tables(tb)
    result = client.run("down", check=True)
    assert "kill switch of tunnel removed" in result.stdout
    assert "cygnet-tunnel" not in nft_tables(tb)
    stream.stop()
    capture.stop()
    inside = leaked(tb, capture, killed_at, checked_until)
    assert inside == [], "leaked after the engine was killed:\n" + "\n".join(map(str, inside[:20]))


def ipv4_only_gateway():
    from testbed import GatewayOptions, topology

    return GatewayOptions(pool_v6=None, dns_v6=(), local_ts=(str(topology.LAN_NET),))


@pytest.mark.parametrize("block", [None, False], ids=["default", "block_ipv6-false"])
def test_ipv6_stays_home_when_a_full_tunnel_carries_only_ipv4(testbed_factory, make_cygnet,
                                                              block):
    """The gateway tunnels IPv4 only. By default IPv6 is dropped outside the tunnel; with
    block_ipv6 = false the pings leave in the clear (what leaks without it, documented)."""
    from testbed import wire

    tb, capture = leak_testbed(testbed_factory, gateway_options=ipv4_only_gateway())
    client = make_cygnet(tb)
    overrides = {} if block is None else {"block_ipv6": block}
    stream = wire.start_stream(tb, LAN_HOST)
    client.up(client.profile("psk", **overrides))
    up_at = time.time()
    status = client.control_status()
    time.sleep(1.0)
    until = time.time()
    assert client.down() == 0
    stream.stop()
    capture.stop()
    client.assert_clean()
    assert "cygnet-tunnel" not in nft_tables(tb)
    pings6 = [p for p in leaked(tb, capture, up_at, until) if p.version == 6]
    if block is None:
        assert status["blocked"] == ["IPv6"]
        assert "blocked outside the tunnel: IPv6" in client.output()
        assert pings6 == [], "\n".join(map(str, pings6[:20]))
    else:
        assert status["blocked"] == []
        assert pings6, "IPv6 should leak with block_ipv6 = false"


def test_kill_switch_lets_ike_out_to_listed_and_redirected_gateways(testbed_factory, make_cygnet):
    """The first gateway of the list does not answer, the second does; then the gateway
    redirects us (RFC 5685) to an address no profile names. IKE reaches each of them through
    the kill switch, and nothing else leaves."""
    from testbed import wire

    tb, capture = leak_testbed(testbed_factory)
    tb.gateway_ns.ip("addr", "add", "203.0.113.2/24", "dev", "eth0")
    client = make_cygnet(tb)
    client.hooks = FAST_RETRANSMIT
    stream = wire.start_stream(tb, LAN_HOST)
    before_up = time.time()
    client.up(client.profile("psk", kill_switch=True, gateway=["203.0.113.77", tb.gateway_address]),
              timeout=30)
    assert client.control_status()["gateway"] == tb.gateway_address

    tb.gateway.swanctl("--redirect", "--ike", "psk", "--gateway", "203.0.113.2")
    wait_state(client, lambda s: s["gateway"] == "203.0.113.2" and s["state"] == "up",
               message="not redirected")
    tb.wait_for_ping("client", LAN_HOST)
    until = time.time()
    assert client.down() == 0
    stream.stop()
    capture.stop()

    packets = wire.read_packets(capture.pcap)
    ike_to = {p.dst for p in packets if p.protocol == wire.UDP and p.dport in (500, 4500)
              and p.time >= before_up}
    assert {"203.0.113.77", tb.gateway_address, "203.0.113.2"} <= ike_to
    mac = wire.mac_address(tb.client_ns)
    start = min(p.time for p in packets if p.dst == "203.0.113.77" and p.dport == 500)
    inside = wire.leaks(packets, mac, [tb.gateway_address, "203.0.113.77", "203.0.113.2"],
                        start, until)
    assert inside == [], "\n".join(map(str, inside[:20]))


def test_without_the_kill_switch_on_link_dns_is_what_leaks(testbed_factory, make_cygnet):
    """Documents (does not endorse) what leaks with the kill switch off: while the full tunnel
    is up or reconnecting, its routes keep the LAN traffic and IPv6 in the tunnel, but the
    café's resolver is on the uplink's own network, whose route is more specific than the
    tunnel's halves: an application asking it directly leaks its queries."""
    from testbed import wire

    tb, capture = leak_testbed(testbed_factory)
    client = make_cygnet(tb)
    client.hooks = FAST_RETRANSMIT
    stream = wire.start_stream(tb, LAN_HOST)
    client.up(client.profile("psk", dpd=1))
    up_at = time.time()
    time.sleep(1.0)
    tb.gateway.kill()
    wait_state(client, lambda s: s["state"] != "up", message="the loss was not noticed")
    time.sleep(1.0)
    until = time.time()
    assert client.down() == 0
    stream.stop()
    capture.stop()
    kinds = {(p.dst, p.dport) for p in leaked(tb, capture, up_at, until)}
    assert kinds == {(wire.ISP_RESOLVER, 53)}, kinds


@pytest.mark.parametrize("allow_lan", [False, True], ids=["lan-blocked", "allow_lan"])
def test_allow_lan_keeps_the_local_network_reachable(testbed_factory, make_cygnet, allow_lan):
    from testbed import topology

    tb, capture = leak_testbed(testbed_factory)
    client = make_cygnet(tb)
    client.up(client.profile("psk", kill_switch=True, allow_lan=allow_lan))
    router = topology.CLIENT_ROUTER                        # on the client's own network
    assert tb.ping("client", router, timeout=1) == (1 if allow_lan else 0)
    assert tb.ping("client", LAN_HOST) == 1                # the tunnel works either way
    assert client.down() == 0
    assert tb.ping("client", router) == 1


def test_kill_switch_with_an_ipv6_gateway(testbed_factory, make_cygnet):
    """IKE/ESP to an IPv6 gateway (and the neighbour discovery it needs) pass the block."""
    from testbed import wire

    tb, capture = leak_testbed(testbed_factory)
    client = make_cygnet(tb)
    stream = wire.start_stream(tb, LAN_HOST)
    client.up(client.profile("psk", kill_switch=True, gateway=tb.gateway_address6))
    tb.wait_for_ping("client", LAN_HOST)
    until = time.time()
    assert client.down() == 0
    stream.stop()
    capture.stop()
    start = min(p.time for p in wire.read_packets(capture.pcap)
                if p.dst == tb.gateway_address6 and p.dport == 500)
    inside = leaked(tb, capture, start, until)
    assert inside == [], "\n".join(map(str, inside[:20]))


def test_two_tunnels_with_kill_switches_do_not_block_each_other(testbed_factory, make_cygnet):
    """Each tunnel's table lets the other's IKE/ESP reach its gateway (another address) and
    traffic into the other's TUN; nothing else leaves."""
    from testbed import wire

    tb, capture = leak_testbed(testbed_factory)
    tb.gateway_ns.ip("addr", "add", "203.0.113.2/24", "dev", "eth0")
    first, second = make_cygnet(tb, "first"), make_cygnet(tb, "second")
    stream = wire.start_stream(tb, LAN_HOST)
    first.up(first.profile("psk", kill_switch=True))
    second.up(second.profile("ecdsa", kill_switch=True, gateway="203.0.113.2"))
    tables = nft_tables(tb)
    assert "cygnet-first" in tables and "cygnet-second" in tables
    tb.wait_for_ping("client", LAN_HOST)                  # through the first tunnel
    assert first.down() == 0                               # the second's routes take over
    tb.wait_for_ping("client", LAN_HOST)
    assert second.control_status()["state"] == "up"
    until = time.time()
    assert second.down() == 0
    stream.stop()
    capture.stop()
    assert "cygnet-" not in nft_tables(tb)
    start = first_ike_packet(tb, capture)
    inside = wire.leaks(wire.read_packets(capture.pcap), wire.mac_address(tb.client_ns),
                        [tb.gateway_address, "203.0.113.2"], start, until)
    assert inside == [], "\n".join(map(str, inside[:20]))
