"""A laptop's life against strongSwan 5.9.8 (issue 15): a client with two uplinks (testbed/roaming.py),
a full tunnel, and the path to the gateway changing under it.

- MOBIKE (RFC 4555) with the gateway's default `mobike = yes`: Wi-Fi → Ethernet with the Wi-Fi
  link going down, the same into a NAT (the Ethernet router masquerades), and a new address
  on the same link. The client sends UPDATE_SA_ADDRESSES
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


@pytest.mark.parametrize("move", ["wifi-down", "new-address", "into-nat"])
def test_mobike_keeps_the_tunnel_through_a_move(roaming_testbed, make_cygnet, record_property, move):
    from testbed.roaming import ETH_ADDR, WIFI_ADDR_RENUMBERED

    tb = roaming_testbed(nat_on_eth=move == "into-nat")
    client = _up(tb, make_cygnet)
    before = client.control_status()
    if move in ("wifi-down", "into-nat"):
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
    assert len(routes) == 1 and ("wifi0" if move == "new-address" else "eth0") in routes[0], routes
    if move == "into-nat":  # charon's libipsec fakes NAT anyway: it stays UDP-encapsulated
        assert status["nat"]
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



# ------------------------------------------------------------------------------ sleep and resume

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def private_system_bus(tmp_path):
    """A dbus-daemon of our own standing in for the system bus (logind's signals)."""
    import subprocess

    from testbed import wait_for

    socket_path = tmp_path / "system_bus_socket"
    config = tmp_path / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=socket_path))
    daemon = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(socket_path.exists, timeout=10, message="dbus-daemon did not open its socket")
        yield f"unix:path={socket_path}"
    finally:
        daemon.terminate()
        daemon.wait(5)


def _send_resume_signal(address: str) -> None:
    """logind's PrepareForSleep(false): the machine has just woken up."""
    import asyncio

    from dbus_fast import BusType, Message, MessageType
    from dbus_fast.aio import MessageBus

    async def send():
        bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
        await bus.send(Message(message_type=MessageType.SIGNAL, path="/org/freedesktop/login1",
                               interface="org.freedesktop.login1.Manager",
                               member="PrepareForSleep", signature="b", body=[False]))
        bus.disconnect()

    asyncio.run(send())


def test_resume_finds_a_gateway_that_forgot_us_and_reconnects(
        roaming_testbed, make_cygnet, private_system_bus, record_property, monkeypatch):
    """The engine frozen (SIGSTOP) for longer than the gateway's DPD, as over a suspend; the
    gateway deletes the IKE_SA. On SIGCONT + logind's resume signal: one liveness check with
    a short budget, then a new IKE_SA at once."""
    import os
    import signal

    from testbed import CharonSettings, GatewayOptions, wait_for

    tb = roaming_testbed(gateway_options=GatewayOptions(dpd_delay="1s", charon=CharonSettings(
        retransmit_tries=1, retransmit_timeout=0.5, retransmit_base=1.2)))
    client = make_cygnet(tb)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private_system_bus)  # cygnet's env copies ours
    client.start(client.profile("psk", virtual_ip=["ipv4"], dpd=30))
    client.wait_up()
    client.wait_for_output("watching logind's PrepareForSleep")
    assert tb.ping("client", LAN_HOST) == 1
    before = client.control_status()
    [engine] = client.engine_pids()
    offset = tb.gateway.log_path.stat().st_size
    os.kill(engine, signal.SIGSTOP)
    try:
        wait_for(lambda: "deleting IKE_SA" in _gateway_log(tb)[offset:]
                 or "giving up after" in _gateway_log(tb)[offset:], timeout=15,
                 message="the gateway did not give up on the frozen client")
    finally:
        os.kill(engine, signal.SIGCONT)
    resumed = time.monotonic()
    _send_resume_signal(private_system_bus)
    client.wait_for_output("checking that the gateway still knows us")
    elapsed = _time_to_first_reply(tb)
    total = time.monotonic() - resumed
    record_property("time_to_first_reply_after_resume", total)
    print(f"\nresume, gateway forgot us: first echo reply {total:.3f} s after the resume signal")
    assert elapsed >= 0
    status = client.control_status()
    assert status["state"] == "up" and status["reconnects"] == 1
    assert status["ike_spi_i"] != before["ike_spi_i"]
    assert "liveness check" in client.output()
    assert client.down() == 0
    client.assert_clean()


# ------------------------------------------------------------------------------ dead gateways


def test_a_blackholed_gateway_hands_over_to_the_next_of_the_list(
        roaming_testbed, make_cygnet, record_property):
    """Full tunnel, two gateways in the profile; the first stops answering (nft drop in its
    namespace). Our liveness check gives up after a few seconds, and the second gateway is
    contacted at once, pinned outside the tunnel first (else its IKE would go into the TUN)."""
    from testbed.roaming import GATEWAY2_PUBLIC, GATEWAY_PUBLIC, LAN_HOST2

    tb = roaming_testbed(with_second_gateway=True)
    client = make_cygnet(tb)
    client.up(client.profile("psk", virtual_ip=["ipv4"], dpd=2,
                             gateway=[GATEWAY_PUBLIC, GATEWAY2_PUBLIC]))
    assert tb.ping("client", LAN_HOST) == 1
    tb.blackhole(tb.topology.gateway)
    started = time.monotonic()
    while time.monotonic() - started < 40:
        if tb.ping("client", LAN_HOST2, timeout=0.05):
            break
    else:
        raise AssertionError(f"the second gateway never carried traffic:\n{client.tail()}")
    elapsed = time.monotonic() - started
    record_property("time_to_first_reply", elapsed)
    print(f"\nblackholed gateway, dpd = 2: first echo reply through the second gateway "
          f"{elapsed:.3f} s after the blackhole")
    status = client.control_status()
    assert status["state"] == "up" and status["reconnects"] == 1
    assert GATEWAY2_PUBLIC in status["gateway"]
    assert "no answer to a liveness check" in client.output()
    # Only the second gateway is pinned now, outside the tunnel.
    pinned = [line for line in tb.client_ns.ip("route", "show").stdout.splitlines()
              if line.startswith("203.0.113.")]
    assert len(pinned) == 1 and pinned[0].startswith(f"{GATEWAY2_PUBLIC} via"), pinned
    assert client.down() == 0
    client.assert_clean()


def test_a_host_name_whose_first_address_is_dead(roaming_testbed, make_cygnet, tmp_path):
    """Every address of a gateway's name is tried in turn: the first answers nothing."""
    from testbed.roaming import GATEWAY_PUBLIC

    from tests.interop.cygnet_helpers import FAST_RETRANSMIT

    tb = roaming_testbed()
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n203.0.113.9 vpn.roam.test\n"
                     f"{GATEWAY_PUBLIC} vpn.roam.test\n")
    tb.hosts_file = hosts
    client = make_cygnet(tb)
    client.hooks = dict(FAST_RETRANSMIT)  # the dead address is given up after 2.7 s
    client.up(client.profile("psk", virtual_ip=["ipv4"], gateway="vpn.roam.test"), timeout=30)
    output = client.output()
    assert "contacting vpn.roam.test (203.0.113.9)" in output
    assert "trying the next address of vpn.roam.test" in output
    assert client.control_status()["gateway"] == f"vpn.roam.test ({GATEWAY_PUBLIC})"
    assert tb.ping("client", LAN_HOST) == 1
    assert client.down() == 0
    client.assert_clean()


def test_a_redirect_while_up_reaches_its_target_from_inside_a_full_tunnel(
        roaming_testbed, make_cygnet):
    """RFC 5685 §6 while the tunnel is up (swanctl --redirect): the target is pinned outside
    the tunnel before we contact it."""
    from testbed import wait_for
    from testbed.roaming import GATEWAY2_PUBLIC, LAN_HOST2

    tb = roaming_testbed(with_second_gateway=True)
    client = make_cygnet(tb)
    client.up(client.profile("psk", virtual_ip=["ipv4"]))
    assert tb.ping("client", LAN_HOST) == 1
    tb.gateway.charon.swanctl("--redirect", "--ike", "psk", "--gateway", GATEWAY2_PUBLIC)
    client.wait_for_output(f"redirected to {GATEWAY2_PUBLIC}")
    wait_for(lambda: tb.ping("client", LAN_HOST2, timeout=0.2), timeout=15,
             message=lambda: f"no traffic through the redirect target:\n{client.tail()}")
    status = client.control_status()
    assert status["state"] == "up" and GATEWAY2_PUBLIC in status["gateway"]
    assert client.down() == 0
    client.assert_clean()


def test_resume_with_a_gateway_that_still_knows_us_keeps_the_ike_sa(
        roaming_testbed, make_cygnet, private_system_bus, monkeypatch):
    from testbed import wait_for
    from ike.mobike import LIVENESS_POLICY, give_up_after

    tb = roaming_testbed()
    client = make_cygnet(tb)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private_system_bus)
    client.start(client.profile("psk", virtual_ip=["ipv4"], dpd=30))
    client.wait_up()
    client.wait_for_output("watching logind's PrepareForSleep")
    before = client.control_status()
    offset = tb.gateway.log_path.stat().st_size
    _send_resume_signal(private_system_bus)
    client.wait_for_output("checking that the gateway still knows us")
    wait_for(lambda: "parsed INFORMATIONAL request" in _gateway_log(tb)[offset:], timeout=5,
             message="no liveness check reached the gateway after the resume signal")
    time.sleep(give_up_after(LIVENESS_POLICY))  # longer than a failing check would take
    status = client.control_status()
    assert status["state"] == "up" and status["reconnects"] == 0
    assert status["ike_spi_i"] == before["ike_spi_i"]
    assert tb.ping("client", LAN_HOST) == 1
    assert client.down() == 0
    client.assert_clean()
