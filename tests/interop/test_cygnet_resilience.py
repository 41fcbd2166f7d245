"""Staying connected against strongSwan: dead peer detection both ways, a gateway that is
killed and restarted (the engine must reconnect by itself), a gateway that shuts down
politely, and packet loss in both directions.
"""

from __future__ import annotations

import time

import pytest

from tests.interop.cygnet_helpers import (FAST_RETRANSMIT, LAN_HOST, LAN_HOST6, make_cygnet,
                                          tcp_echo_transfer)

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


def gateway_log_since(tb, offset: int) -> str:
    return tb.gateway.log_path.read_text()[offset:]


def test_we_answer_the_gateways_liveness_checks(testbed_factory, make_cygnet):
    from testbed import GatewayOptions, wait_for

    tb = testbed_factory(gateway_options=GatewayOptions(dpd_delay="1s"), iperf=False)
    client = make_cygnet(tb)
    client.up(client.profile("psk"))
    start = tb.gateway.log_path.stat().st_size

    # The gateway probes the idle IKE_SA every second with an empty INFORMATIONAL.
    wait_for(lambda: gateway_log_since(tb, start).count("parsed INFORMATIONAL response") >= 2,
             timeout=6, message="the gateway's liveness checks got no answers from us")
    status = client.control_status()
    assert status["state"] == "up" and status["reconnects"] == 0
    assert tb.ping("client", LAN_HOST) == 1
    assert client.down() == 0
    client.assert_clean()


def test_we_check_the_gateways_liveness(testbed_factory, make_cygnet):
    from testbed import wait_for

    tb = testbed_factory(iperf=False)
    client = make_cygnet(tb)
    client.up(client.profile("psk", dpd=1))   # the gateway itself never probes (no dpd_delay)
    start = tb.gateway.log_path.stat().st_size

    wait_for(lambda: gateway_log_since(tb, start).count("parsed INFORMATIONAL request") >= 2,
             timeout=6, message="we sent no liveness checks with dpd = 1")
    assert "generating INFORMATIONAL response" in gateway_log_since(tb, start)
    assert client.control_status()["state"] == "up"
    assert client.down() == 0
    client.assert_clean()


def test_reconnects_by_itself_after_the_gateway_was_killed(testbed_factory, make_cygnet):
    from testbed import wait_for

    tb = testbed_factory(iperf=False)
    client = make_cygnet(tb)
    client.hooks = FAST_RETRANSMIT           # dead after 2.7 s instead of strongSwan's 165 s
    client.up(client.profile("ecdsa", dpd=1))
    assert tb.ping("client", LAN_HOST) == 1
    first = client.control_status()

    tb.gateway.kill()                        # SIGKILL: no DELETE, all state gone
    tb.gateway.restart()
    killed_at = time.monotonic()

    def reconnected():
        status = client.control_status()
        return status["state"] == "up" and status["reconnects"] == 1 and status

    status = wait_for(reconnected, timeout=20, interval=0.2,
                      message=lambda: f"no reconnect:\n{client.tail()}")
    print(f"tunnel back {time.monotonic() - killed_at:.1f} s after the gateway was killed")
    assert "gateway unreachable" in status["last_error"]
    assert status["ike_spi_i"] != first["ike_spi_i"]
    # Virtual IPs, TUN device and routes stayed; traffic flows again over both families.
    assert status["interface"] == first["interface"]
    assert tb.ping("client", LAN_HOST, count=2) == 2
    assert tb.ping("client", LAN_HOST6, count=2) == 2
    assert "tunnel up" in client.output().split("reconnecting in")[-1]
    assert client.process.running
    assert client.down() == 0
    client.assert_clean()


def test_reconnect_backs_off_while_the_gateway_is_away_and_down_still_works(
        testbed_factory, make_cygnet):
    from testbed import wait_for

    tb = testbed_factory(iperf=False)
    client = make_cygnet(tb)
    # Each attempt at the dead gateway gives up after 1.4 s.
    client.hooks = {"retransmit_tries": 2, "retransmit_timeout": 0.3, "retransmit_base": 1.5}
    client.up(client.profile("psk", dpd=1))

    tb.gateway.kill()
    # Lost (DPD), then two failed attempts: the wait doubles.
    client.wait_for_output("reconnecting in 1 s", timeout=10)
    assert client.control_status()["state"] == "reconnecting"
    client.wait_for_output("reconnecting in 2 s", timeout=10)
    status = client.control_status()
    assert status["state"] == "reconnecting"
    assert "could not" not in client.output(), "gave up although the tunnel had been up"
    assert "no answer to IKE_SA_INIT" in status["last_error"]

    tb.gateway.restart()
    wait_for(lambda: client.control_status()["state"] == "up", timeout=15, interval=0.2,
             message=lambda: f"no reconnect:\n{client.tail()}")
    assert client.control_status()["reconnects"] == 1
    assert tb.ping("client", LAN_HOST) == 1

    # Gone again: `cygnet down` while it waits to reconnect ends it at once, cleanly.
    tb.gateway.kill()
    client.wait_for_output("reconnecting in 1 s", timeout=10, count=2)
    started = time.monotonic()
    assert client.down() == 0
    assert time.monotonic() - started < 5
    client.assert_clean()


def test_reconnects_after_the_gateway_deleted_the_ike_sa(testbed_factory, make_cygnet):
    from testbed import wait_for

    tb = testbed_factory(iperf=False)
    client = make_cygnet(tb)
    client.up(client.profile("eap-md5"))

    tb.gateway.stop()                        # SIGTERM: charon sends DELETE first
    client.wait_for_output("deleted by the gateway", timeout=5)
    tb.gateway.charon.start()
    tb.gateway.reconfigure(tb.gateway.options)
    status = wait_for(lambda: (s := client.control_status())["state"] == "up" and s["reconnects"] and s,
                      timeout=20, interval=0.2, message=lambda: f"no reconnect:\n{client.tail()}")
    assert status["reconnects"] == 1
    assert tb.ping("client", LAN_HOST) == 1
    assert client.down() == 0
    client.assert_clean()


def test_connects_and_carries_traffic_through_five_percent_loss(testbed_factory, make_cygnet):
    tb = testbed_factory(iperf=False)
    tb.drop_packets(5, "client")             # in and out of the client namespace
    client = make_cygnet(tb)
    # Quicker retransmissions than strongSwan's 4 s, so a lost message costs < 1 s here.
    client.hooks = {"retransmit_timeout": 0.5, "retransmit_base": 1.4, "retransmit_tries": 6}
    # EAP-MSCHAPv2 takes five IKE_AUTH round trips: plenty of chances to lose one.
    client.up(client.profile("eap-mschapv2"), timeout=30)

    print(f"up through 5 % loss after {client.up_after:.1f} s")
    replies = tb.ping("client", LAN_HOST, count=40, timeout=0.3)
    assert replies >= 25, replies    # each echo crosses the loss twice: ~10 % lost
    tcp_echo_transfer(tb.client_ns.name, LAN_HOST6, 1 << 20, timeout=60)
    tb.drop_packets(0, "client")
    assert client.control_status()["reconnects"] == 0
    assert client.down() == 0
    client.assert_clean()
