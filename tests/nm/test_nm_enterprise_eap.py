"""NetworkManager `method=eap` without `cygnet-eap-method` (issue 19): the server chooses the
EAP method, as with charon-nm. A real NetworkManager 1.42 runs Cygnet's plugin against a
strongSwan gateway whose `eap-radius` plugin relays EAP to a real FreeRADIUS 3.2
(testbed/freeradius.py), configured to propose PEAP or TTLS first. The tunnel carries a ping
to the LAN host; a wrong password fails the activation as an authentication failure."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from testbed import GATEWAY_NAME
from tests.interop.test_enterprise_eap_freeradius import (PASSWORD, RADIUS_SECRET, USER,
                                                         _gateway_options)
from tests.nm.test_failure_kinds import CYGNET_PLUGIN, failed_signals
from tests.nm.test_networkmanager_plugin import LAN_HOST, add_vpn, up

pytestmark = [pytest.mark.interop, pytest.mark.nm, pytest.mark.slow]


@pytest.fixture
def testbed_factory(testbed_factory, pki):
    """The shared factory, with a gateway that relays `*@corp.test` to RADIUS (nm_testbed
    builds its testbed through this name)."""
    def make(**kwargs):
        kwargs.setdefault("gateway_options", _gateway_options(pki))
        return testbed_factory(**kwargs)
    return make


def start_radius(testbed, method: str):
    from testbed import topology
    from testbed.freeradius import FreeRadius, available

    if not available():
        pytest.skip("Debian's freeradius is not installed (scripts/setup-debian.sh)")
    # NetworkManager-strongswan has no separate EAP server name: the RADIUS server's
    # certificate is checked against the gateway's identity (remote-identity), as charon does.
    return FreeRadius(testbed.lan_ns, testbed.workdir / "radius", testbed.pki,
                      users={USER: PASSWORD}, secret=RADIUS_SECRET,
                      client_address=topology.GATEWAY_LAN_ADDR, server_name=GATEWAY_NAME,
                      default_eap_type=method).start()


def eap_data(testbed) -> dict:
    return {"address": testbed.gateway_address, "method": "eap", "virtual": "yes",
            "remote-identity": GATEWAY_NAME, "user": USER,
            "certificate": str(testbed.pki.root_ca)}


def up_watching_failures(nm, name: str, password: str):
    """`nmcli connection up` with a wrong password, and the plugin's Failed signals."""
    bus = f"unix:path=/proc/{nm.holder.pid}/root/run/dbus/system_bus_socket"
    monitor = subprocess.Popen(["dbus-monitor", "--address", bus,
                                f"type='signal',interface='{CYGNET_PLUGIN}'"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)  # let it subscribe
        assert monitor.poll() is None, monitor.stdout.read()
        result = up(nm, name, password, check=False)
        time.sleep(0.5)  # the signal was sent before NM failed the activation; let it print
    finally:
        monitor.terminate()
        output = monitor.communicate(timeout=10)[0]
    return result, failed_signals(output)


@pytest.mark.parametrize("method", ["peap", "ttls"])
def test_server_chooses_the_method(nm_testbed, method):
    testbed, nm = nm_testbed
    radius = start_radius(testbed, method)
    try:
        data = eap_data(testbed)
        assert "cygnet-eap-method" not in data
        add_vpn(nm, "office", "cygnet", data)
        log_start = len(radius.log())
        result = up(nm, "office", PASSWORD)
        assert "successfully activated" in result.stdout, (result, radius.log()[log_start:][-6000:])
        assert testbed.gateway.wait_for_sa()["name"] == "radius"
        testbed.wait_for_ping("client", LAN_HOST, timeout=5)
        log = radius.log()[log_start:]
        # The server's first proposal was the one taken (no Nak, no other method before it;
        # TTLS then runs EAP-MD5 inside, the inner tunnel's default).
        called = re.findall(r"eap: Calling submodule (eap_\w+) to process data", log)
        assert called[:1] == [f"eap_{method}"], (called, log[-6000:])
        nm.nmcli("connection", "down", "office", timeout=60)

        add_vpn(nm, "wrong", "cygnet", data)
        result, signals = up_watching_failures(nm, "wrong", "not Ann's password")
        assert result.returncode != 0 and "Connection activation failed" in result.stderr, result
        assert "successfully activated" not in result.stdout
        assert "wrong" not in nm.active_connections()
        assert "Connection activation failed: Invalid secrets" in result.stderr  # login failure
        (signal,) = signals
        assert signal[2] == "authentication", signal                  # FailureKind.AUTHENTICATION
        assert signal[1].startswith("authentication failed"), signal
    finally:
        radius.stop()
