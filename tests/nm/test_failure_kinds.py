"""A failure's kind reaches NetworkManager and its listeners (the tray) as data: NM's failure
code comes from the kind by table (nm_plugin/service.py NM_FAILURE), and the kind's token
travels in the plugin's org.freedesktop.NetworkManager.cygnet.Plugin.Failed(u, s, s) signal.
Under a real NetworkManager, against the strongSwan testbed gateway."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.nm.test_networkmanager_plugin import add_vpn, up, vpn_data

pytestmark = [pytest.mark.interop, pytest.mark.nm]

CYGNET_PLUGIN = "org.freedesktop.NetworkManager.cygnet.Plugin"


def failed_signals(text: str) -> list[tuple[int, str, str]]:
    """(reason, message, kind) of every Failed signal in dbus-monitor's output."""
    found = []
    for block in text.split("\nsignal ")[1:]:
        if f"interface={CYGNET_PLUGIN}; member=Failed" not in block:
            continue
        (reason,) = re.findall(r"^\s+uint32 (\d+)$", block, re.M)
        message, kind = re.findall(r'^\s+string "(.*)"$', block, re.M)
        found.append((int(reason), message, kind))
    return found


def test_wrong_password_is_a_login_failure_of_kind_authentication(nm_testbed):
    testbed, nm = nm_testbed
    add_vpn(nm, "office", "cygnet", vpn_data(testbed, "eap"))
    bus = f"unix:path=/proc/{nm.holder.pid}/root/run/dbus/system_bus_socket"
    monitor = subprocess.Popen(["dbus-monitor", "--address", bus,
                                f"type='signal',interface='{CYGNET_PLUGIN}'"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)  # let it subscribe
        assert monitor.poll() is None, monitor.stdout.read()
        mark = nm.log_mark()
        result = up(nm, "office", "not-the-password", check=False)
        time.sleep(0.5)  # the signal was sent before NM failed the activation; let it print
    finally:
        monitor.terminate()
        output = monitor.communicate(timeout=10)[0]
    assert "Connection activation failed: Invalid secrets" in result.stderr   # NM: login failure
    assert "failure: login-failed" in nm.log_since(mark)
    (signal,) = failed_signals(output)
    assert signal[0] == 0                                                     # NM_VPN_PLUGIN_FAILURE_LOGIN
    assert signal[2] == "authentication"                                      # FailureKind.AUTHENTICATION
    assert signal[1].startswith("authentication failed: wrong password")
