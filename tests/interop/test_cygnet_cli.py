"""The `cygnet` command line against strongSwan: up --daemon, status (text and JSON), down,
exit codes when the tunnel cannot come up, cleaning up after a killed engine, and secrets
that never show up in argv, logs or status.
"""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

from tests.interop.cygnet_helpers import (DNS_SERVERS, FAST_RETRANSMIT, LAN_HOST, LAN_HOST6,
                                          ORIGINAL_RESOLV_CONF, make_cygnet, module_testbed)

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


def test_daemon_status_and_down(tb, make_cygnet):
    client = make_cygnet(tb, name="office")
    profile = client.profile("ecdsa")

    started = time.monotonic()
    result = client.run("up", "--daemon", str(profile), timeout=20)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tunnel up" in result.stdout
    print(f"cygnet up --daemon returned after {elapsed:.2f} s")
    # It returned because the tunnel is up, not before: traffic flows at once.
    assert tb.ping("client", LAN_HOST) == 1
    (engine,) = client.engine_pids()

    status = client.status()
    assert status["name"] == "office"
    assert status["state"] == "up"
    assert status["gateway"] == tb.gateway_address
    assert status["local_id"] == "bob@cygnet.test"
    assert status["remote_id"] == "gw.cygnet.test"
    assert len(status["virtual_ips"]) == 2
    assert sorted(status["dns"]) == sorted(DNS_SERVERS)
    assert status["interface"].startswith("cygnet")
    assert re.fullmatch(r"[0-9a-f]{16}", status["ike_spi_i"])
    assert re.fullmatch(r"[0-9a-f]{16}", status["ike_spi_r"])
    assert status["ike_proposal"].startswith("aes128gcm16")  # the gateway's first choice
    assert status["reconnects"] == 0
    assert 14400 * 0.9 - 5 <= status["ike_rekey_in"] <= 14400   # swanctl's rekey_time/rand_time
    assert status["reauth_in"] is None                          # off unless the profile asks
    (child,) = status["children"]
    assert child["encryption"] == "AES_GCM_16-128"
    assert 3000 < child["rekey_in"] <= 3600    # swanctl's defaults: rekey after ~1 h
    # The SPIs are the ones the gateway installed, mirrored.
    gateway_child = next(iter(tb.gateway.wait_for_sa()["child-sas"].values()))
    assert (child["spi_in"], child["spi_out"]) == (gateway_child["spi-out"], gateway_child["spi-in"])

    # Counters move with traffic.
    assert tb.ping("client", LAN_HOST6, count=3) == 3
    time.sleep(1.1)  # so that the uptime (whole seconds) moves too
    later = client.status()
    (later_child,) = later["children"]
    assert later_child["packets_out"] >= child["packets_out"] + 3
    assert later_child["packets_in"] >= child["packets_in"] + 3
    assert later_child["bytes_in"] > child["bytes_in"]
    assert later["uptime"] > status["uptime"]

    text = client.run("status", check=True).stdout
    for expected in ("office: up", "bob@cygnet.test", "gw.cygnet.test", child["spi_in"],
                     child["spi_out"], status["virtual_ips"][0], "AES_GCM_16-128", "rekey in",
                     DNS_SERVERS[0], "up for"):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert re.search(r"^ +rekey in \d+ s$", text, re.MULTILINE), f"no IKE_SA rekey time in:\n{text}"

    # A second `cygnet up` of the same tunnel is refused while it runs.
    again = client.run("up", str(profile), timeout=10)
    assert again.returncode == 1 and "already running" in again.stderr

    down = client.run("down", "office", timeout=15)
    assert down.returncode == 0, down.stderr
    assert "closed" in down.stdout
    from testbed import wait_for
    from testbed.netns import _pid_alive   # a zombie counts as gone
    wait_for(lambda: not _pid_alive(engine), timeout=5,
             message="the daemon is still running after `cygnet down`")
    assert client.run("status", "--json", check=True).stdout.strip() == "[]"
    assert "no tunnel is running" in client.run("status").stdout
    client.assert_clean()
    assert tb.gateway.list_sas() == []

    # After detaching, the daemon went on writing its progress to a root-only log.
    log = client.run_dir / "office.log"
    assert log.stat().st_mode & 0o777 == 0o600
    lines = log.read_text().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d detached \(pid \d+\); the tunnel is up", lines[0])
    assert lines[-1].endswith(" tunnel closed")
    assert f"log: {log}" in result.stdout


def test_up_fails_when_the_gateway_does_not_answer(tb, make_cygnet):
    client = make_cygnet(tb)
    client.hooks = FAST_RETRANSMIT
    # Nothing answers at 198.51.100.3 (on the client's link, so ARP fails and nothing comes back).
    profile = client.profile("psk", gateway="198.51.100.3")

    result = client.run("up", "--daemon", str(profile), timeout=20)
    assert result.returncode == 1, result.stdout
    assert "could not connect to 198.51.100.3" in result.stdout
    assert "no answer to IKE_SA_INIT" in result.stdout
    assert client.engine_pids() == []
    client.assert_clean()

    client.start(profile)
    assert client.wait_exit(20) == 1
    assert "cygnet: could not connect to 198.51.100.3" in client.output()
    client.assert_clean()


def test_next_up_cleans_what_a_killed_engine_left(tb, make_cygnet):
    client = make_cygnet(tb)
    profile = client.profile("psk")
    client.up(profile)
    assert tb.ping("client", LAN_HOST) == 1

    client.kill()
    # SIGKILL: the TUN device went with the process, but the gateway's host route, the
    # tunnel's resolv.conf and the journal and backup in the run directory are still there.
    assert client.resolv_conf.read_text() != ORIGINAL_RESOLV_CONF
    left = sorted(p.name for p in client.run_dir.iterdir())
    assert "tunnel.routes.json" in left and "tunnel.resolv.conf.orig" in left, left
    assert client.routes() != client.routes_before

    client.up(profile)
    assert "cleaned up what a previous run of this tunnel left behind" in client.output()
    assert tb.ping("client", LAN_HOST) == 1
    # INITIAL_CONTACT made the gateway drop the IKE_SA of the killed run.
    from testbed import wait_for
    wait_for(lambda: len(tb.gateway.list_sas()) == 1, timeout=5,
             message=lambda: f"gateway SAs: {tb.gateway.list_sas()}")

    assert client.down() == 0
    client.assert_clean()


@pytest.mark.parametrize("method", ["psk", "eap-mschapv2"])
def test_secrets_stay_out_of_argv_logs_and_status(tb, make_cygnet, method):
    client = make_cygnet(tb)
    client.up(client.profile(method))
    (engine,) = client.engine_pids()
    cmdline = open(f"/proc/{engine}/cmdline", "rb").read().decode()
    environ = open(f"/proc/{engine}/environ", "rb").read().decode()
    status_json = json.dumps(client.status())
    status_text = client.run("status", check=True).stdout
    assert tb.ping("client", LAN_HOST) == 1
    assert client.down() == 0
    log = client.log_path.read_text()     # everything it printed, with CYGNET_DEBUG=1
    assert "event ChildSaEstablished" in log, "the debug log is not what we think it is"

    secret = client.tb.gateway.psk if method == "psk" else client.tb.gateway.eap_users[method][1]
    for where, text in (("argv", cmdline), ("environment", environ), ("log", log),
                        ("status --json", status_json), ("status", status_text)):
        assert secret not in text, f"the secret appears in the engine's {where}"
        assert secret.encode().hex() not in text, f"the secret (hex) appears in the {where}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_ctrl_c_or_a_closed_terminal_close_the_tunnel_cleanly(tb, make_cygnet, signum):
    client = make_cygnet(tb)
    client.up(client.profile("psk"))
    client.process.popen.send_signal(signum)
    assert client.wait_exit(10) == 0
    assert "tunnel closed" in client.output()
    client.process.stop()
    client.assert_clean()
    assert tb.gateway.list_sas() == [], "no DELETE was sent"


def test_ctrl_c_while_up_daemon_waits_stops_the_engine_too(tb, make_cygnet):
    from tests.interop.cygnet_helpers import run_on_terminal

    client = make_cygnet(tb)
    client.hooks = FAST_RETRANSMIT
    profile = client.profile("psk", gateway="198.51.100.3")   # nobody answers there
    # ^C on the terminal while `up --daemon` still waits for the tunnel.
    code, screen = run_on_terminal(client, ["up", "--daemon", str(profile)],
                                   {"authenticating as": "\x03"})
    assert code == 130, screen
    assert client.engine_pids() == [], "the detached engine kept running after ^C"
    client.assert_clean()
