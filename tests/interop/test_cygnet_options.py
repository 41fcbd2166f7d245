"""Profile options that change what the tunnel does, against strongSwan: a list of gateways
(the first one dead), a split tunnel, IPv4 only, and leaving DNS alone.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.interop.cygnet_helpers import (FAST_RETRANSMIT, LAN_HOST, LAN_HOST6,
                                          ORIGINAL_RESOLV_CONF, make_cygnet, module_testbed)

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


def test_the_next_gateway_is_tried_when_the_first_does_not_answer(tb, make_cygnet):
    client = make_cygnet(tb)
    client.hooks = FAST_RETRANSMIT
    client.up(client.profile("psk", gateway=["198.51.100.3", tb.gateway_address]), timeout=20)
    output = client.output()
    assert "contacting 198.51.100.3" in output and "no answer to IKE_SA_INIT" in output
    status = client.control_status()
    assert status["gateway"] == tb.gateway_address
    assert status["reconnects"] == 0     # not a reconnect: the tunnel had never been up
    assert tb.ping("client", LAN_HOST) == 1
    assert client.down() == 0
    client.assert_clean()


def test_split_tunnel_routes_only_the_listed_networks(tb, make_cygnet):
    client = make_cygnet(tb)
    client.up(client.profile("psk", remote_ts=["10.1.0.0/25"]))
    status = client.control_status()
    (child,) = status["children"]
    assert child["remote_ts"] == ["10.1.0.0/25"]     # the gateway narrowed to what we asked
    routes = client.routes()
    assert f"10.1.0.0/25 dev {status['interface']}" in routes
    assert "fd00:1::/64 dev cygnet" not in routes
    assert tb.ping("client", LAN_HOST) == 1          # 10.1.0.10 is in 10.1.0.0/25
    assert tb.ping("client", LAN_HOST6, timeout=0.3) == 0
    assert client.down() == 0
    client.assert_clean()


def test_ipv4_only_and_dns_left_alone(tb, make_cygnet):
    from testbed import topology

    client = make_cygnet(tb)
    client.up(client.profile("ecdsa", virtual_ip=["ipv4"], dns=False))
    status = client.control_status()
    (vip,) = status["virtual_ips"]
    assert ipaddress.ip_address(vip) in topology.POOL_NET
    assert client.resolv_conf.read_text() == ORIGINAL_RESOLV_CONF
    assert tb.gateway.wait_for_sa()["remote-vips"] == [vip]
    assert tb.ping("client", LAN_HOST) == 1
    assert client.down() == 0
    client.assert_clean()


def test_full_tunnel_behind_nat_keeps_the_gateway_reachable(testbed_factory, make_cygnet):
    from testbed import GatewayOptions, topology

    options = GatewayOptions(local_ts=("0.0.0.0/0", "::/0"))
    tb = testbed_factory(nat="masquerade", gateway_options=options, iperf=False)
    client = make_cygnet(tb)
    client.up(client.profile("psk", dpd=1))
    status = client.control_status()
    (child,) = status["children"]
    assert child["remote_ts"] == ["0.0.0.0/0", "::/0"]
    routes = client.routes()
    tun = status["interface"]
    # Everything goes through the tunnel as two half routes over the default route...
    for half in ("0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"):
        assert f"{half} dev {tun}" in routes, routes
    # ...except the gateway itself, pinned to the way it was reached before.
    assert f"{topology.GATEWAY_ADDR_BEHIND_NAT} via {topology.CLIENT_ROUTER} dev eth0" in routes
    assert tb.ping("client", LAN_HOST) == 1
    assert tb.ping("client", LAN_HOST6) == 1
    # IKE still reaches the gateway outside the tunnel: liveness checks keep being answered.
    start = tb.gateway.log_path.stat().st_size
    from testbed import wait_for
    wait_for(lambda: "parsed INFORMATIONAL request" in tb.gateway.log_path.read_text()[start:],
             timeout=5, message="no liveness check reached the gateway")
    assert client.control_status()["state"] == "up"
    assert client.down() == 0
    client.assert_clean()
