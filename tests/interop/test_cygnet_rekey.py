"""Rekeying with traffic flowing, against strongSwan, without losing a packet.

Both directions of each rekey: the gateway's (short lifetimes in its swanctl.conf) and ours
(the data plane's byte limit asks the engine to rekey a CHILD_SA; a short IKE lifetime
through the CYGNET_TEST_HOOKS test knob makes us rekey the IKE_SA). A ping flood runs across
the rekeys and every echo must come back; a TCP transfer runs alongside and must arrive
byte for byte.
"""

from __future__ import annotations

import threading

import pytest

from tests.interop.cygnet_helpers import (LAN_HOST, LAN_HOST6, make_cygnet, ping_flood,
                                          tcp_echo_transfer)

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


def traffic_across(tb, seconds: float, tcp_rate: float = 2e6, host: str = LAN_HOST) -> None:
    """A ping flood for `seconds` (no echo may be lost) with a TCP echo transfer alongside,
    paced to `tcp_rate` bytes/s: a saturating transfer would make the tunnel drop pings
    (queues overflow) with or without a rekey."""
    errors: list[BaseException] = []

    def transfer():
        try:
            tcp_echo_transfer(tb.client_ns.name, LAN_HOST6, int(tcp_rate * seconds),
                              rate=tcp_rate, timeout=seconds + 20)
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=transfer)
    worker.start()
    interval = 0.01
    sent, received = ping_flood(tb.client_ns.name, host, count=int(seconds / interval),
                                interval=interval, timeout=seconds + 20)
    worker.join()
    assert not errors, f"TCP transfer across the rekey failed: {errors[0]!r}"
    assert received == sent, f"{sent - received} of {sent} pings lost across the rekey"


def installed_child(gateway_sa: dict) -> dict:
    """The gateway's current CHILD_SA (it lists rekeyed ones for a few seconds more)."""
    installed = [c for c in gateway_sa["child-sas"].values() if c["state"] == "INSTALLED"]
    assert len(installed) == 1, gateway_sa["child-sas"]
    return installed[0]


def child_spis(status: dict) -> set:
    return {(c["spi_in"], c["spi_out"]) for c in status["children"]}


def test_gateway_rekeys_the_child_sa(testbed_factory, make_cygnet):
    from tests.testbed import GatewayOptions

    options = GatewayOptions(child_rekey_time="2s", child_life_time="20s")
    tb = testbed_factory(gateway_options=options, iperf=False, capture=False)
    client = make_cygnet(tb)
    client.up(client.profile("psk", esp="aes256gcm16-x25519"))   # with PFS: KE in the rekey
    before = client.status()

    traffic_across(tb, seconds=4.5)

    after = client.status()
    assert after["child_rekeys"] >= 2, after
    assert not child_spis(after) & child_spis(before)
    assert len(after["children"]) == 1, "old CHILD_SAs must be gone once the gateway deleted them"
    gateway_child = installed_child(tb.gateway.wait_for_sa())
    assert gateway_child["dh-group"] == "CURVE_25519"           # the rekey used PFS
    assert client.down() == 0
    client.assert_clean()


def test_gateway_rekeys_the_ike_sa(testbed_factory, make_cygnet):
    from tests.testbed import GatewayOptions

    # A long over_time: with charon's default (10 % of rekey_time, 0.2 s here) the hard-expiry
    # DELETE is queued while the rekey runs, and charon then deletes the *new* IKE_SA.
    options = GatewayOptions(ike_rekey_time="2s", ike_over_time="20s")
    tb = testbed_factory(gateway_options=options, iperf=False, capture=False)
    client = make_cygnet(tb)
    client.up(client.profile("eap-mschapv2"))
    before = client.status()

    traffic_across(tb, seconds=3.5, host=LAN_HOST6)

    after = client.status()
    assert after["ike_rekeys"] >= 1, after
    assert after["ike_spi_i"] != before["ike_spi_i"]
    gateway_sa = tb.gateway.wait_for_sa()
    assert (gateway_sa["initiator-spi"], gateway_sa["responder-spi"]) == (
        after["ike_spi_i"], after["ike_spi_r"]) or (
        gateway_sa["responder-spi"], gateway_sa["initiator-spi"]) == (
        after["ike_spi_i"], after["ike_spi_r"])
    # The CHILD_SA moved to the new IKE_SA untouched.
    assert child_spis(after) == child_spis(before)
    assert client.down() == 0
    client.assert_clean()
    assert tb.gateway.list_sas() == []


def test_we_rekey_the_child_sa_at_the_data_planes_byte_limit(testbed_factory, make_cygnet):
    tb = testbed_factory(iperf=False, capture=False)
    client = make_cygnet(tb)
    client.hooks = {"esp_soft_bytes": 3 * 1024 * 1024}
    client.up(client.profile("rsa", esp="aes128-sha256-ecp256"))   # CBC + HMAC, PFS
    before = client.status()

    traffic_across(tb, seconds=3.0, tcp_rate=4e6)

    after = client.status()
    # 12 MB each way with a 3 MB soft limit: at least three rekeys.
    assert after["child_rekeys"] >= 3, after
    assert not child_spis(after) & child_spis(before)
    log = tb.gateway.log_path.read_text()
    assert "received CREATE_CHILD_SA request" in log or "parsed CREATE_CHILD_SA request" in log
    gateway_child = installed_child(tb.gateway.wait_for_sa())
    assert gateway_child["dh-group"] == "ECP_256"
    assert client.down() == 0
    client.assert_clean()


def test_we_rekey_the_ike_sa(testbed_factory, make_cygnet):
    tb = testbed_factory(iperf=False, capture=False)
    client = make_cygnet(tb)
    client.hooks = {"ike_rekey_time": 1.5, "ike_rand_time": 0}
    client.up(client.profile("ed25519"))
    before = client.status()

    traffic_across(tb, seconds=3.5)

    after = client.status()
    assert after["ike_rekeys"] >= 1, after
    assert after["ike_spi_i"] != before["ike_spi_i"]
    assert "parsed CREATE_CHILD_SA request" in tb.gateway.log_path.read_text()
    assert child_spis(after) == child_spis(before)
    assert len(tb.gateway.list_sas()) == 1
    assert client.down() == 0
    client.assert_clean()
    assert tb.gateway.list_sas() == []
