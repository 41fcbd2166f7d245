"""Rekeying and reauthentication with traffic flowing, against strongSwan, without losing a
packet.

Both directions of each rekey: the gateway's (short lifetimes in its swanctl.conf) and ours
(the data plane's packet limit asks the engine to rekey a CHILD_SA; a short IKE lifetime
through the CYGNET_TEST_HOOKS test knob makes us rekey the IKE_SA). Two phases, each spanning
at least one rekey: a ping flood in which every echo must come back, then a paced TCP echo
transfer that must come back byte for byte.

The phases run one after the other on purpose: bulk TCP alongside the flood makes charon's
libipsec drop datagrams when its UDP receive buffer overflows (UdpRcvbufErrors in the gateway
namespace, on this loaded 2-core machine), with or without a rekey.
"""

from __future__ import annotations

import pytest

from tests.interop.cygnet_helpers import (LAN_HOST, LAN_HOST6, make_cygnet, ping_flood,
                                          tcp_echo_transfer)

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


def traffic_across(tb, client, counter: str, seconds: float, tcp_rate: float = 2e6,
                   host: str = LAN_HOST) -> None:
    """A ping flood, then a TCP echo transfer paced to `tcp_rate` bytes/s, `seconds` each;
    status[counter] ("child_rekeys", "ike_rekeys" or "reauths") must grow during each of them."""
    rekeys = client.control_status()[counter]
    interval = 0.01
    sent, received = ping_flood(tb.client_ns.name, host, count=int(seconds / interval),
                                interval=interval, timeout=seconds + 20)
    assert received == sent, f"{sent - received} of {sent} pings lost across the rekey"
    after_flood = client.control_status()[counter]
    assert after_flood > rekeys, f"no {counter} during the ping flood"

    tcp_echo_transfer(tb.client_ns.name, LAN_HOST6, int(tcp_rate * seconds), rate=tcp_rate,
                      timeout=seconds + 20)
    assert client.control_status()[counter] > after_flood, f"no {counter} during the TCP transfer"


def installed_child(gateway_sa: dict) -> dict:
    """The gateway's current CHILD_SA (it lists rekeyed ones for a few seconds more)."""
    installed = [c for c in gateway_sa["child-sas"].values() if c["state"] == "INSTALLED"]
    assert len(installed) == 1, gateway_sa["child-sas"]
    return installed[0]


def child_spis(status: dict) -> set:
    return {(c["spi_in"], c["spi_out"]) for c in status["children"]}


def test_gateway_rekeys_the_child_sa(testbed_factory, make_cygnet):
    from testbed import GatewayOptions

    options = GatewayOptions(child_rekey_time="1s", child_life_time="20s")
    tb = testbed_factory(gateway_options=options, iperf=False, capture=False)
    client = make_cygnet(tb)
    client.up(client.profile("psk", esp="aes256gcm16-x25519"))   # with PFS: KE in the rekey
    before = client.control_status()

    traffic_across(tb, client, "child_rekeys", seconds=2.5)

    after = client.control_status()
    assert not child_spis(after) & child_spis(before)
    assert len(after["children"]) == 1, "old CHILD_SAs must be gone once the gateway deleted them"
    gateway_child = installed_child(tb.gateway.wait_for_sa())
    assert gateway_child["dh-group"] == "CURVE_25519"           # the rekey used PFS
    assert client.down() == 0
    client.assert_clean()


def test_gateway_rekeys_the_ike_sa(testbed_factory, make_cygnet):
    from testbed import GatewayOptions

    # A long over_time: with charon's default (10 % of rekey_time, 0.1 s here) the hard-expiry
    # DELETE is queued while the rekey runs, and charon then deletes the *new* IKE_SA.
    options = GatewayOptions(ike_rekey_time="1s", ike_over_time="20s")
    tb = testbed_factory(gateway_options=options, iperf=False, capture=False)
    client = make_cygnet(tb)
    client.up(client.profile("eap-mschapv2"))
    before = client.control_status()

    traffic_across(tb, client, "ike_rekeys", seconds=2.5, host=LAN_HOST6)

    after = client.control_status()
    assert after["ike_spi_i"] != before["ike_spi_i"]
    gateway_sa = tb.gateway.wait_for_sa()
    assert {gateway_sa["initiator-spi"], gateway_sa["responder-spi"]} == {
        after["ike_spi_i"], after["ike_spi_r"]}
    # The CHILD_SA moved to the new IKE_SA untouched.
    assert child_spis(after) == child_spis(before)
    assert after["reconnects"] == 0
    assert client.down() == 0
    client.assert_clean()
    assert tb.gateway.list_sas() == []


def test_we_rekey_the_child_sa_at_the_data_planes_packet_limit(testbed_factory, make_cygnet):
    tb = testbed_factory(iperf=False, capture=False)
    client = make_cygnet(tb)
    # A rekey after 100 packets in either direction: every second of the ping flood, and
    # several times during the TCP transfer (~250 packets each way).
    client.hooks = {"esp_soft_packets": 100}
    client.up(client.profile("rsa", esp="aes128-sha256-ecp256"))   # CBC + HMAC, PFS
    before = client.control_status()

    traffic_across(tb, client, "child_rekeys", seconds=2.5, tcp_rate=150e3)

    after = client.control_status()
    assert after["child_rekeys"] >= 4, after
    assert not child_spis(after) & child_spis(before)
    assert "parsed CREATE_CHILD_SA request" in tb.gateway.log_path.read_text()
    gateway_child = installed_child(tb.gateway.wait_for_sa())
    assert gateway_child["dh-group"] == "ECP_256"
    assert client.down() == 0
    client.assert_clean()


def test_we_rekey_the_ike_sa(testbed_factory, make_cygnet):
    tb = testbed_factory(iperf=False, capture=False)
    client = make_cygnet(tb)
    client.hooks = {"ike_rekey_time": 1.0, "ike_rand_time": 0}
    client.up(client.profile("ed25519"))
    before = client.control_status()

    traffic_across(tb, client, "ike_rekeys", seconds=2.5)

    after = client.control_status()
    assert after["ike_spi_i"] != before["ike_spi_i"]
    assert "parsed CREATE_CHILD_SA request" in tb.gateway.log_path.read_text()
    assert child_spis(after) == child_spis(before)
    assert len(tb.gateway.list_sas()) == 1
    assert after["reconnects"] == 0
    assert client.down() == 0
    client.assert_clean()
    assert tb.gateway.list_sas() == []


def test_we_reauthenticate_when_the_gateway_asks(testbed_factory, make_cygnet):
    """RFC 4478: a strongSwan responder cannot reauthenticate a road warrior itself: it sends
    N(AUTH_LIFETIME) and deletes the IKE_SA unless the client reauthenticates within
    reauth_time + over_time. We do it make-before-break: a new IKE_SA and CHILD_SA next to
    the old ones, outbound switched, then DELETE of the old IKE_SA: no ping lost, TCP intact."""
    from testbed import GatewayOptions, wait_for

    # 10 s: the shortest AUTH_LIFETIME we honour (ike.session.MIN_AUTH_LIFETIME)
    options = GatewayOptions(ike_reauth_time="10s", ike_over_time="2s")
    tb = testbed_factory(gateway_options=options, iperf=False, capture=False)
    client = make_cygnet(tb)
    client.up(client.profile("psk"))
    first = client.control_status()

    traffic_across(tb, client, "reauths", seconds=10.5)

    after = client.control_status()
    assert after["ike_spi_i"] != first["ike_spi_i"]
    assert not child_spis(after) & child_spis(first)
    assert after["virtual_ips"] == first["virtual_ips"], "strongSwan gave the same identity a new lease"
    assert after["reconnects"] == 0
    log = tb.gateway.log_path.read_text()
    assert "N(AUTH_LFT)" in log  # charon's name of AUTH_LIFETIME in its message summaries
    assert "did not reauthenticate as requested" not in log
    # one IKE_SA per reauthentication on the gateway's side too, each from scratch
    assert log.count("state change: CONNECTING => ESTABLISHED") >= 1 + after["reauths"], log
    # the old IKE_SAs are gone on the gateway: one left (ours, or its successor mid-reauth)
    wait_for(lambda: len(tb.gateway.list_sas()) == 1, timeout=5, interval=0.1,
             message="old IKE_SAs still on the gateway")
    assert client.down() == 0
    client.assert_clean()
    assert tb.gateway.list_sas() == []


def test_we_reauthenticate_with_reauth_in_the_profile(testbed_factory, make_cygnet):
    """Client-side periodic reauthentication (the profile's `reauth`, swanctl's reauth_time),
    here with EAP: every round runs the whole EAP conversation again."""
    tb = testbed_factory(iperf=False, capture=False)
    client = make_cygnet(tb)
    client.up(client.profile("eap-mschapv2", reauth=2))
    first = client.control_status()

    traffic_across(tb, client, "reauths", seconds=2.5, host=LAN_HOST6)

    after = client.control_status()
    assert after["ike_spi_i"] != first["ike_spi_i"]
    assert after["virtual_ips"] == first["virtual_ips"]
    assert after["reconnects"] == 0
    assert "AUTH_LIFETIME" not in tb.gateway.log_path.read_text()  # our idea, not the gateway's
    assert client.down() == 0
    client.assert_clean()
    assert tb.gateway.list_sas() == []
