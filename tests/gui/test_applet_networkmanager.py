"""The tray applet against a real NetworkManager (the sandbox of tests/nm) and the strongSwan
testbed gateway, running as an unprivileged user (nobody) with its own session bus and an
unlocked gnome-keyring. The applet is driven through its menu (tests/gui/applet_driver.py).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.gui.certs import make_pki
from tests.gui.desktop_session import DesktopSession
from tests.nm.conftest import nm_testbed  # noqa: F401  (the fixture)
from tests.nm.test_networkmanager_plugin import password_for, store_password, vpn_data
from testbed import GATEWAY_NAME, topology, wait_for

pytestmark = [
    pytest.mark.interop, pytest.mark.slow,
    pytest.mark.skipif(not all(shutil.which(p) for p in ("gnome-keyring-daemon", "dbus-daemon",
                                                        "dbus-send", "secret-tool", "setpriv")),
                       reason="needs gnome-keyring, dbus-daemon, libsecret-tools, setpriv"),
]

REPO = Path(__file__).resolve().parents[2]
USER = "nobody"
DOMAIN = "office.cygnet.test"


class Driver:
    """The applet process and its line protocol."""

    def __init__(self, session: DesktopSession, log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = session.popen([*session.python(), "-m", "tests.gui.applet_driver"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, cwd=str(REPO))
        assert self.read(timeout=60) == {"ready": True}

    def read(self, timeout: float = 30.0) -> dict:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"the applet did not answer in {timeout:.0f} s; its log:\n{self.stderr()}")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the applet exited ({self.process.poll()}); its log:\n{self.stderr()}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"applet: {answer['error']}\n{self.stderr()}")
        return answer

    def ask(self, command: str, timeout: float = 30.0) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read(timeout)

    def stderr(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def menu(self) -> list[str]:
        return self.ask("menu")["menu"]

    def notices(self) -> list[list[str]]:
        return self.ask("notices")["notices"]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask("quit", timeout=1)
            except Exception:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def applet(nm_testbed, tmp_path):  # noqa: F811
    testbed, nm = nm_testbed
    folder = tempfile.mkdtemp(prefix="cygnet-applet-")
    os.chmod(folder, 0o755)
    session = DesktopSession(Path(folder) / "session", user=USER, prefix=nm.enter_argv([]))
    driver = None
    try:
        session.start()
        try:
            session.python()
        except PermissionError as error:
            pytest.skip(str(error))
        driver = Driver(session, tmp_path / "applet.log")
        yield testbed, nm, session, driver
    finally:
        if driver is not None:
            driver.close()
        session.close()
        shutil.rmtree(folder, ignore_errors=True)


def wait_gateway_without_sas(testbed, timeout: float = 10.0) -> None:
    wait_for(lambda: not testbed.gateway.list_sas(), timeout=timeout,
             message=lambda: f"gateway still has SAs: {testbed.gateway.list_sas()}")


def test_connect_from_the_menu_shows_status_and_disconnect_tears_down(applet):
    testbed, nm, session, driver = applet
    data = dict(vpn_data(testbed, "psk"), **{"password-flags": "0", "cygnet-domains": DOMAIN})
    driver.ask("add " + json.dumps({"id": "office", "data": data}))
    store_password(nm, "office", password_for(testbed, "psk"))   # a system-owned secret
    assert driver.menu() == ["Connect office", "-", "&Edit connections…", "&Status…", "-", "&Quit"]

    driver.ask("trigger Connect office")
    driver.ask("wait office connected 60", timeout=70)

    fields = nm.connection_fields("office")
    assert fields.get("VPN.VPN-STATE") == ["5 - VPN connected"], (fields, driver.stderr())
    assert driver.menu()[0] == "Disconnect office (connected)"
    status = driver.ask("status")["status"]
    (ipv4,) = status["Virtual IPv4"].split(", ")
    assert ipaddress.ip_interface(ipv4).ip in topology.POOL_NET
    assert ipaddress.ip_interface(status["Virtual IPv6"].split(", ")[0]).ip in topology.POOL_NET6
    for server in (*topology.DNS_SERVERS, *topology.DNS_SERVERS6):
        assert server in status["DNS servers"].split(", ")
    assert status["Gateway"] == testbed.gateway_address
    assert status["Gateway identity"] == GATEWAY_NAME
    assert status["State"] == "Connected"
    assert status["Interface"].startswith("cygnet")
    assert DOMAIN in status["DNS domains"].split(", ")
    # Split tunnel as the gateway narrowed it (no link-local, no prefix route of our address).
    assert status["Routes"] == "10.1.0.0/24, fd00:1::/64"
    assert not [a for a in status["Virtual IPv6"].split(", ") if a.startswith("fe80:")]

    # Counters are the TUN device's: traffic through the tunnel makes them grow.
    before = int(status["Received"].split("(")[1].split()[0])
    testbed.wait_for_ping("client", topology.LAN_HOST_ADDR, timeout=5)
    assert testbed.ping("client", topology.LAN_HOST_ADDR, count=3, timeout=2) == 3
    after = int(driver.ask("status")["status"]["Received"].split("(")[1].split()[0])
    assert after >= before + 3

    # The icon went disconnected -> connecting (animated) -> connected.
    assert driver.ask("icons")["icons"] == [["disconnected", False], ["connecting", True],
                                            ["connected", False]]
    connected = driver.notices()
    assert connected[-1][0] == "Connected to office" and ipv4.split("/")[0] in connected[-1][1]

    driver.ask("trigger Disconnect office (connected)")
    driver.ask("wait office disconnected 30", timeout=40)
    wait_gateway_without_sas(testbed)
    nm.wait_inactive("office")
    wait_for(lambda: driver.notices()[-1][0] == "Disconnected from office", timeout=5,
             message=lambda: f"no disconnect notice: {driver.notices()}")
    assert driver.menu()[0] == "Connect office"


def test_eap_password_comes_from_the_keyring_through_the_agent(applet):
    testbed, nm, session, driver = applet
    password = password_for(testbed, "eap")
    added = driver.ask("add " + json.dumps({"id": "office", "data": vpn_data(testbed, "eap")}))
    stored = session.run(["secret-tool", "store", "--label=Cygnet office", "service", "cygnet",
                          "username", f"nm-{added['uuid']}"], input=password)
    assert stored.returncode == 0, stored.stderr
    fields = nm.connection_fields("office")
    assert fields["vpn.data"][0].count("password-flags = 1") == 1  # agent-owned

    driver.ask("trigger Connect office")
    driver.ask("wait office connected 60", timeout=70)

    assert driver.ask("agent") == {"requests": 1}
    status = driver.ask("status")["status"]
    assert ipaddress.ip_interface(status["Virtual IPv4"]).ip in topology.POOL_NET
    assert status["Local identity"] == vpn_data(testbed, "eap")["user"]
    assert testbed.gateway.wait_for_sa()["name"] == "eap-mschapv2"
    # The password went keyring -> agent -> NetworkManager -> plugin, and nowhere else.
    assert password not in nm.log_path.read_text(errors="replace")
    assert password not in driver.stderr()
    for keyfile in (nm.root / "etc/NetworkManager/system-connections").glob("*"):
        assert password not in keyfile.read_text(errors="replace")

    driver.ask("trigger Disconnect office (connected)")
    driver.ask("wait office disconnected 30", timeout=40)
    wait_gateway_without_sas(testbed)


def test_wrong_password_is_reported_in_plain_words(applet):
    testbed, nm, session, driver = applet
    added = driver.ask("add " + json.dumps({"id": "office", "data": vpn_data(testbed, "eap")}))
    session.run(["secret-tool", "store", "--label=x", "service", "cygnet", "username",
                 f"nm-{added['uuid']}"], input="not-the-password")

    driver.ask("trigger Connect office")

    def failure():
        notices = [n for n in driver.notices() if n[0] == "office: connection failed"]
        return notices[-1] if notices else None

    wait_for(failure, timeout=60, message=lambda: f"no failure notice: {driver.notices()}")
    summary, body, via = failure()
    assert body.splitlines()[0] == "The gateway refused the login: wrong user name or password."
    assert via == "log"  # no notification server and no tray in this headless session
    # The headline came from the failure's kind, sent by the plugin (not from NM's code alone).
    said = driver.ask("failure")
    assert said["kind"] == "authentication" and said["plugin_failure"] == 0
    assert driver.menu()[0] == "Connect office"
    assert not testbed.gateway.list_sas()
    # The notice is sent before the icon's refresh; the icon must follow within moments.
    wait_for(lambda: driver.ask("icons")["icons"][-1] == ["failed", False], timeout=10,
             message=lambda: f"icon not failed: {driver.ask('icons')['icons']}")


def test_unreachable_gateway_is_reported_in_plain_words(applet):
    testbed, nm, session, driver = applet
    fast = {"cygnet-retransmit-timeout": "1", "cygnet-retransmit-tries": "1", "password-flags": "0"}
    data = dict(vpn_data(testbed, "psk"), **fast)
    driver.ask("add " + json.dumps({"id": "office", "data": data}))
    store_password(nm, "office", password_for(testbed, "psk"))
    testbed.gateway.stop()                     # nobody answers on the gateway's address

    driver.ask("trigger Connect office")

    def failure():
        notices = [n for n in driver.notices() if n[0] == "office: connection failed"]
        return notices[-1] if notices else None

    wait_for(failure, timeout=60, message=lambda: f"no failure notice: {driver.notices()}")
    assert failure()[1].splitlines()[0] == "The gateway could not be reached."
    # The notice is sent before the icon's refresh; the icon must follow within moments.
    wait_for(lambda: driver.ask("icons")["icons"][-1] == ["failed", False], timeout=10,
             message=lambda: f"icon not failed: {driver.ask('icons')['icons']}")


def test_editor_operations_reach_networkmanager(applet):
    testbed, nm, session, driver = applet
    driver.ask("add " + json.dumps({"id": "lab", "data": vpn_data(testbed, "psk")}))
    assert nm.connection_fields("lab")["vpn.service-type"] == ["org.freedesktop.NetworkManager.cygnet"]

    driver.ask('edit lab {"address": "192.0.2.77", "cygnet-domains": "lab.example"}')
    data = nm.connection_fields("lab")["vpn.data"][0]
    assert "address = 192.0.2.77" in data and "cygnet-domains = lab.example" in data

    # A connection made elsewhere (nmcli, as root) appears in the applet's menu by itself.
    nm.nmcli("connection", "add", "type", "vpn", "con-name", "other", "ifname", "--",
             "vpn-type", "cygnet", "vpn.data", f"address={testbed.gateway_address}, method=psk")
    wait_for(lambda: "Connect other" in driver.menu(), timeout=10,
             message=lambda: f"menu: {driver.menu()}")
    # ... and a strongSwan one does not (not Cygnet's VPN type).
    nm.nmcli("connection", "add", "type", "vpn", "con-name", "theirs", "ifname", "--",
             "vpn-type", "strongswan", "vpn.data", f"address={testbed.gateway_address}, method=psk")
    time.sleep(0.5)
    assert "Connect theirs" not in driver.menu()

    assert driver.ask("duplicate lab")["message"] == "Added “lab (copy)”."
    copy = nm.connection_fields("lab (copy)")
    assert "address = 192.0.2.77" in copy["vpn.data"][0]
    assert copy["connection.uuid"] != nm.connection_fields("lab")["connection.uuid"]

    assert driver.ask("delete lab")["message"] == "Deleted “lab”."
    assert "lab" not in nm.nmcli("-t", "-f", "NAME", "connection", "show").stdout.splitlines()
    assert driver.menu()[:2] == ["Connect lab (copy)", "Connect other"]


def test_import_sswan_creates_a_connection_that_connects(applet, tmp_path):
    testbed, nm, session, driver = applet
    pki = testbed.pki
    profile = {"uuid": "0b7c3f5e-9c2a-4f1e-8d6b-2a1c3e5f7a9b", "name": "Imported office",
               "type": "ikev2-eap",
               "remote": {"addr": testbed.gateway_address, "id": GATEWAY_NAME,
                          "cert": base64.b64encode(_der(pki.root_ca)).decode()},
               "local": {"eap_id": vpn_data(testbed, "eap")["user"]}}
    path = Path(session.home) / "office.sswan"
    path.write_text(json.dumps(profile))
    os.chown(path, session.uid, session.gid)

    assert driver.ask(f"import {path}")["message"] == "Added “Imported office”."
    fields = nm.connection_fields("Imported office")
    data = fields["vpn.data"][0]
    assert f"address = {testbed.gateway_address}" in data and "method = eap" in data
    # The CA from the profile was written where the user's files go, readable by the plugin (root).
    ca = Path(session.home) / ".local/share/cygnet/sswan/office/ca.pem"
    assert f"certificate = {ca}" in data and ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE")

    uuid = fields["connection.uuid"][0]
    session.run(["secret-tool", "store", "--label=x", "service", "cygnet", "username", f"nm-{uuid}"],
                input=password_for(testbed, "eap"))
    driver.ask("trigger Connect Imported office")
    driver.ask("wait Imported office connected 60", timeout=70)
    assert testbed.gateway.wait_for_sa()["name"] == "eap-mschapv2"
    driver.ask("trigger Disconnect Imported office (connected)")
    wait_gateway_without_sas(testbed)


def _der(path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(Path(path).read_bytes()).public_bytes(Encoding.DER)


def test_cygnet_tray_itself_answers_networkmanager_from_the_keyring(nm_testbed, tmp_path):  # noqa: F811
    """The real entry point (gui.tray:main), started as the user: its agent gives NetworkManager
    the keyring's password when the user activates the connection from elsewhere; SIGTERM ends
    it cleanly."""
    testbed, nm = nm_testbed
    folder = tempfile.mkdtemp(prefix="cygnet-tray-")
    os.chmod(folder, 0o755)
    session = DesktopSession(Path(folder) / "session", user=USER, prefix=nm.enter_argv([]))
    log_path = tmp_path / "cygnet-tray.log"
    password = password_for(testbed, "eap")
    nm.nmcli("connection", "add", "type", "vpn", "con-name", "office", "ifname", "--", "vpn-type", "cygnet",
             "vpn.data", ", ".join(f"{k}={v}" for k, v in
                                   dict(vpn_data(testbed, "eap"), **{"password-flags": "1"}).items()))
    uuid = nm.connection_fields("office")["connection.uuid"][0]
    try:
        session.start()
        try:
            session.python()
        except PermissionError as error:
            pytest.skip(str(error))
        session.run(["secret-tool", "store", "--label=x", "service", "cygnet", "username", f"nm-{uuid}"],
                    input=password)
        with open(log_path, "w") as log:
            tray = session.popen([*session.python(), "-m", "gui.tray"], stdout=log, stderr=log,
                                 cwd=str(REPO))
        wait_for(lambda: "secret agent registered" in log_path.read_text(), timeout=30,
                 message=lambda: f"cygnet-tray did not register its agent:\n{log_path.read_text()}",
                 abort=lambda: tray.poll() is not None)

        # The user activates it from another client (as GNOME's settings would: a plain D-Bus call
        # without an agent of its own). NetworkManager asks only the requesting user's agents:
        # root's `nmcli connection up` would never reach the applet.
        path = next(line.split(":", 1)[1] for line in
                    nm.nmcli("-t", "-f", "NAME,DBUS-PATH", "connection", "show").stdout.splitlines()
                    if line.startswith("office:"))
        activated = session.run(["dbus-send", "--system", "--print-reply",
                                 "--dest=org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager",
                                 "org.freedesktop.NetworkManager.ActivateConnection",
                                 f"objpath:{path}", "objpath:/", "objpath:/"])
        assert activated.returncode == 0, activated.stderr
        nm.wait_vpn_state("office", "VPN connected", timeout=60)
        assert "password for 'office' handed to NetworkManager" in log_path.read_text()
        nm.nmcli("connection", "down", "office")
        wait_gateway_without_sas(testbed)
        tray.terminate()
        assert tray.wait(timeout=10) == 0
        text = log_path.read_text()
        assert "quitting" in text and password not in text
    finally:
        session.close()
        shutil.rmtree(folder, ignore_errors=True)



def test_untrusted_gateway_certificate_is_reported_as_a_certificate_problem(applet, tmp_path):
    testbed, nm, session, driver = applet
    other_ca = make_pki(tmp_path)["ca"]            # a CA that did not sign the gateway's certificate
    data = dict(vpn_data(testbed, "eap"), certificate=str(other_ca))
    added = driver.ask("add " + json.dumps({"id": "office", "data": data}))
    session.run(["secret-tool", "store", "--label=x", "service", "cygnet", "username",
                 f"nm-{added['uuid']}"], input=password_for(testbed, "eap"))

    driver.ask("trigger Connect office")

    def failure():
        notices = [n for n in driver.notices() if n[0] == "office: connection failed"]
        return notices[-1] if notices else None

    wait_for(failure, timeout=60, message=lambda: f"no failure notice: {driver.notices()}")
    assert failure()[1].splitlines()[0] == \
        "The gateway's certificate does not match what this connection expects."


def test_status_shows_the_negotiated_algorithms(applet):
    testbed, nm, session, driver = applet
    driver.ask("add " + json.dumps({"id": "office",
                                    "data": dict(vpn_data(testbed, "psk"), **{"password-flags": "0"})}))
    store_password(nm, "office", password_for(testbed, "psk"))
    driver.ask("trigger Connect office")
    driver.ask("wait office connected 60", timeout=70)
    status = driver.ask("status")["status"]
    driver.ask("trigger Disconnect office (connected)")
    for key in ("IKE", "ESP"):
        assert status[key] not in ("strongSwan's defaults", "—"), status
