"""A second, independent IKEv2 peer: Cygnet (dataplane = kernel) against a libreswan 4.10
gateway with an address pool and DNS by mode config, PSK and certificate (VM lane only).

Interop differences seen with libreswan 4.10 are noted next to the assertions they affect.
"""

from __future__ import annotations

import ipaddress
import secrets

import pytest

from tests.interop.cygnet_helpers import LAN_HOST, make_cygnet, module_testbed, tcp_echo_transfer
from tests.kernel import libreswan
from tests.kernel.test_kernel_dataplane import assert_kernel_clean, tunnel_status, xfrm_state

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def pluto(pki, tmp_path_factory):
    reason = libreswan.missing()
    if reason:
        pytest.skip(reason)
    gen = module_testbed(pki, capture=False, start_gateway=False)
    tb = next(gen)
    gateway = libreswan.LibreswanGateway(tb, tmp_path_factory.mktemp("libreswan"), secrets.token_urlsafe(24))
    try:
        gateway.start()
        yield tb, gateway
    finally:
        gateway.stop()
        gen.close()


def _profile(client, gateway, method: str):
    keys = {"virtual_ip": ["ipv4"], "dataplane": "kernel"}
    if method == "psk":
        # not "psk": profile() writes the strongSwan gateway's key to that file name
        keys["psk_file"] = str(client.secret_file("libreswan.psk", gateway.psk))
    return client.profile(method, **keys)


@pytest.mark.parametrize("method", ["psk", "rsa"])
def test_cygnet_against_libreswan(pluto, make_cygnet, method):
    tb, gateway = pluto
    client = make_cygnet(tb)
    try:
        client.up(_profile(client, gateway, method), timeout=90)
    except AssertionError:
        raise AssertionError(f"{client.tail()}\n--- pluto ---\n{gateway.log_tail()}") from None
    status = tunnel_status(client)
    assert status["dataplane"] == "kernel"
    # libreswan answers the CP request with an address from rightaddresspool and the
    # modecfgdns server (one IPv4 server; no IPv6 pool configured, so no ADDR6).
    [vip] = status["virtual_ips"]
    assert ipaddress.ip_address(vip) in ipaddress.ip_network("10.3.0.0/24")
    assert status["dns"] == [libreswan.DNS]
    assert status["remote_id"] == "gw.cygnet.test"
    assert tb.ping("client", LAN_HOST, count=3, timeout=3) == 3, gateway.log_tail()
    tcp_echo_transfer(tb.client_ns.name, LAN_HOST, 256 * 1024, timeout=60)
    assert "spi" in xfrm_state(tb)
    assert vip in gateway.established(), gateway.established()
    assert client.down() == 0
    assert_kernel_clean(client)
    assert vip not in gateway.established(), "libreswan kept the tunnel after our DELETE"
