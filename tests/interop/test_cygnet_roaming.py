"""A laptop's life against strongSwan 5.9.8 (issue 15): a client with two uplinks (testbed/roaming.py),
a full tunnel, and the path to the gateway changing under it.

- MOBIKE (RFC 4555) with the gateway's default `mobike = yes`: Wi-Fi → Ethernet with the Wi-Fi
  link going down, and a new address on the same link. The client sends UPDATE_SA_ADDRESSES
  from the new address, re-pins the gateway's host route, and the echo through the tunnel
  comes back without a new IKE_SA.
- A gateway with `mobike = no`: the same move brings a new IKE_SA at once (no back-off), on
  the same TUN device.

Time from the event to the first echo reply is printed (`-s`) and recorded as a test property;
it is not asserted (no timing assertions).
"""

from __future__ import annotations

import time

import pytest

from tests.interop.cygnet_helpers import LAN_HOST, make_cygnet

pytestmark = [pytest.mark.interop, pytest.mark.netns]
__all__ = ["make_cygnet"]


@pytest.fixture
def roaming_testbed(pki, request):
    from tests.conftest import ARTIFACTS_DIR, _test_failed
    from testbed.roaming import RoamingTestbed

    made = []

    def make(**kwargs):
        tb = RoamingTestbed(pki, capture=True, **kwargs)
        made.append(tb)
        return tb.start()

    yield make
    failed = _test_failed(request.node)
    for tb in made:
        try:
            if failed:
                tb.save_artifacts(ARTIFACTS_DIR / request.node.name / tb.topology.prefix)
        finally:
            tb.close()


def _time_to_first_reply(tb, timeout: float = 20.0) -> float:
    """Seconds until an echo through the tunnel is answered (probes every 50 ms)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if tb.ping("client", LAN_HOST, timeout=0.05):
            return time.monotonic() - started
    raise AssertionError(f"no echo reply through the tunnel within {timeout} s")


def _gateway_log(tb) -> str:
    return tb.gateway.log_path.read_text(errors="replace")


def _up(tb, make_cygnet):
    client = make_cygnet(tb)
    client.up(client.profile("psk", virtual_ip=["ipv4"], dpd=10))
    assert tb.ping("client", LAN_HOST) == 1
    return client


@pytest.mark.parametrize("move", ["wifi-down", "new-address"])
def test_mobike_keeps_the_tunnel_through_a_move(roaming_testbed, make_cygnet, record_property, move):
    from testbed.roaming import ETH_ADDR, WIFI_ADDR_RENUMBERED

    tb = roaming_testbed()
    client = _up(tb, make_cygnet)
    before = client.control_status()
    if move == "wifi-down":
        tb.topology.wifi_down()
        new_address = ETH_ADDR
    else:
        tb.topology.renumber_wifi()
        new_address = WIFI_ADDR_RENUMBERED
    elapsed = _time_to_first_reply(tb)
    record_property("time_to_first_reply", elapsed)
    print(f"\nMOBIKE {move}: first echo reply {elapsed:.3f} s after the move")

    client.wait_for_output(f"the gateway follows us to {new_address}")
    log = _gateway_log(tb)
    assert "N(UPD_SA_ADDR)" in log, "the gateway saw no UPDATE_SA_ADDRESSES"
    status = client.control_status()
    assert status["state"] == "up" and status["reconnects"] == 0
    assert status["ike_spi_i"] == before["ike_spi_i"]  # the same IKE_SA moved
    # The gateway's host route follows the new path (and only one is left).
    routes = tb.client_ns.ip("route", "show", "203.0.113.1").stdout.strip().splitlines()
    assert len(routes) == 1 and ("eth0" if move == "wifi-down" else "wifi0") in routes[0], routes
    # Traffic keeps flowing, both ways, after the first reply.
    assert tb.ping("client", LAN_HOST, count=5) == 5
    assert client.down() == 0
    tb.topology.restore_wifi()
    client.assert_clean()


def test_without_mobike_a_move_reconnects_at_once(roaming_testbed, make_cygnet, record_property):
    from testbed import GatewayOptions

    tb = roaming_testbed(gateway_options=GatewayOptions(mobike=False))
    client = _up(tb, make_cygnet)
    before = client.control_status()
    tb.topology.wifi_down()
    elapsed = _time_to_first_reply(tb)
    record_property("time_to_first_reply", elapsed)
    print(f"\nno MOBIKE, wifi down: first echo reply {elapsed:.3f} s after the move")
    client.wait_for_output("reconnecting now")
    status = client.control_status()
    assert status["state"] == "up" and status["reconnects"] == 1
    assert status["ike_spi_i"] != before["ike_spi_i"]
    assert status["interface"] == before["interface"]  # the TUN device stayed
    assert "N(UPD_SA_ADDR)" not in _gateway_log(tb)
    assert client.down() == 0
    tb.topology.restore_wifi()
    client.assert_clean()

