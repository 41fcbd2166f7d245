"""strongSwan Android `.sswan` profiles, imported with `cygnet import` and connected as they
are with `cygnet up`, against the strongSwan gateway: EAP-MSCHAPv2 (the password typed at the
terminal prompt, as a user would) and a certificate from a PKCS#12 bundle.
"""

from __future__ import annotations

import base64
import json
import stat
import uuid
from pathlib import Path

import pytest

from tests.interop.cygnet_helpers import (LAN_HOST, LAN_HOST6, make_cygnet, module_testbed,
                                          run_on_terminal, tcp_echo_transfer)

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


def write_sswan(client, filename: str, profile: dict) -> str:
    path = client.dir / filename
    path.write_text(json.dumps(profile, indent=2))
    return str(path)


def import_profile(client, sswan: str, *extra: str) -> str:
    """`cygnet import` into the client's own profile folder; returns the TOML path."""
    result = client.run("import", sswan, "--dir", str(client.dir / "profiles"), *extra)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"unexpected warnings: {result.stderr}"
    toml = result.stdout.split("wrote ", 1)[1].split(";", 1)[0]
    assert toml.endswith(".toml"), result.stdout
    return toml


def check_tunnel(tb, client) -> None:
    assert tb.ping("client", LAN_HOST) == 1
    assert tb.ping("client", LAN_HOST6) == 1
    tcp_echo_transfer(tb.client_ns.name, LAN_HOST, 1 << 20)


def test_eap_mschapv2_profile_with_the_password_typed_at_the_prompt(tb, make_cygnet):
    client = make_cygnet(tb)
    identity, password = tb.gateway.eap_users["eap-mschapv2"]
    sswan = write_sswan(client, "office.sswan", {
        "uuid": str(uuid.uuid4()),
        "name": "Office VPN",
        "type": "ikev2-eap",
        "remote": {"addr": tb.gateway_address, "id": "gw.cygnet.test",
                   "cert": base64.b64encode(tb.pki.root_ca.read_bytes()).decode()},
        "local": {"eap_id": identity},
    })
    toml = import_profile(client, sswan)
    assert toml.endswith("/office-vpn.toml") or toml.endswith(".toml")

    code, screen = run_on_terminal(client, ["up", "--daemon", toml],
                                   {"EAP password": password})
    assert code == 0, screen
    assert "tunnel up" in screen
    assert password not in screen, "the typed password was echoed"
    status = client.status()
    assert status["local_id"] == identity
    check_tunnel(tb, client)
    name = status["name"]
    assert client.run("down", name, timeout=15).returncode == 0
    assert client.engine_pids() == []
    client.assert_clean()


def test_certificate_profile_from_pkcs12(tb, make_cygnet):
    from testbed import P12_PASSWORD

    client = make_cygnet(tb)
    sswan = write_sswan(client, "alice.sswan", {
        "uuid": str(uuid.uuid4()),
        "name": "alice-cert",
        "type": "ikev2-cert",
        "remote": {"addr": tb.gateway_address, "id": "gw.cygnet.test",
                   "cert": base64.b64encode(tb.pki.root_ca.read_bytes()).decode()},
        "local": {"p12": base64.b64encode(tb.pki.alice.p12.read_bytes()).decode()},
        "esp-proposal": "aes256gcm16",
    })
    password_file = client.secret_file("p12-password", P12_PASSWORD)
    toml = import_profile(client, sswan, "--p12-password-file", str(password_file))
    assert P12_PASSWORD not in Path(toml).read_text()
    written_key = Path(toml).with_suffix("") / "key.pem"
    assert stat.S_IMODE(written_key.stat().st_mode) == 0o600

    client.up(toml)
    gateway_sa = tb.gateway.wait_for_sa()
    assert gateway_sa["name"] == "pubkey"
    # Without local.id the certificate's subject DN is our identity, as in the Android app.
    assert gateway_sa["remote-id"] == "C=CH, O=Cygnet Test, CN=alice@cygnet.test"
    assert next(iter(gateway_sa["child-sas"].values()))["encr-keysize"] == "256"
    check_tunnel(tb, client)
    assert client.down() == 0
    client.assert_clean()
