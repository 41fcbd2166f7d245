"""`cygnet up` against a real strongSwan gateway, once per authentication method.

Each method must give the full tunnel: an IPv4 and an IPv6 virtual IP, the gateway's DNS
servers in resolv.conf, pings to the LAN host over both families and a 10 MB TCP round trip
through the LAN echo service, byte for byte. The gateway is shared by the whole module:
each test closes its tunnel with a DELETE, leaving the gateway as it found it.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.interop.cygnet_helpers import (DNS_SERVERS, LAN_HOST, LAN_HOST6, TEN_MB, make_cygnet,
                                          module_testbed, tcp_echo_transfer)

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]   # a fixture, used by name

# method -> the gateway connection its identity selects, and the peer identity we expect
METHODS = {
    "psk": "psk", "rsa": "pubkey", "ecdsa": "pubkey", "ed25519": "pubkey",
    "eap-mschapv2": "eap-mschapv2", "eap-md5": "eap-md5", "eap-tls": "eap-tls",
}


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_authentication_method_gives_a_working_dual_stack_tunnel(tb, make_cygnet, method):
    from testbed import topology

    client = make_cygnet(tb)
    client.up(client.profile(method))

    status = client.status()
    assert status["state"] == "up"
    vips = [ipaddress.ip_address(v) for v in status["virtual_ips"]]
    assert any(v in topology.POOL_NET for v in vips), vips
    assert any(v in topology.POOL_NET6 for v in vips), vips
    assert sorted(status["dns"]) == sorted(DNS_SERVERS)
    resolv = client.resolv_conf.read_text()
    for server in DNS_SERVERS:
        assert f"nameserver {server}" in resolv
    assert "198.51.100.53" not in resolv, "the tunnel's DNS servers must replace the old ones"

    # The gateway agrees: the right connection, our virtual IPs, the identity we sent.
    gateway_sa = tb.gateway.wait_for_sa()
    assert gateway_sa["name"] == METHODS[method]
    assert sorted(gateway_sa["remote-vips"]) == sorted(status["virtual_ips"])
    assert status["remote_id"] == "gw.cygnet.test"

    assert tb.ping("client", LAN_HOST, count=2) == 2
    assert tb.ping("client", LAN_HOST6, count=2) == 2
    seconds = tcp_echo_transfer(tb.client_ns.name, LAN_HOST, TEN_MB)
    print(f"{method}: tunnel up {client.up_after:.2f} s after exec; "
          f"10 MB echoed in {seconds:.2f} s")

    assert client.down() == 0
    client.assert_clean()
    assert tb.gateway.list_sas() == [], "cygnet did not delete its IKE_SA on the gateway"
