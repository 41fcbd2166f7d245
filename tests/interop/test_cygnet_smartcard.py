"""`cygnet up` with the key on a smartcard (issue 19): a SoftHSM2 token (testbed/softhsm.py)
whose keys were generated on it, certificates from the test CA; signing through PKCS#11
against real strongSwan; a wrong PIN is one clear line."""

from __future__ import annotations

import pytest

from testbed import softhsm
from tests.interop.cygnet_helpers import make_cygnet, module_testbed
from tests.interop.test_cygnet_errors import fail_to_connect, last_line

pytestmark = [pytest.mark.interop, pytest.mark.netns,
              pytest.mark.skipif(not softhsm.available(), reason="softhsm2 is not installed")]
__all__ = ["make_cygnet"]
PIN = "135790"


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


@pytest.fixture(scope="module")
def token(tb):
    token = softhsm.SoftToken.create(tb.workdir / "token", tb.pki, PIN)
    token.add_key("rsa", "card-rsa", b"\x11")
    token.add_key("ec", "card-ec", b"\x12")
    return token


def _keys(tb, client, token, label, pin=PIN, **extra):
    keys = client.profile_keys("rsa")
    del keys["cert"], keys["key"]
    keys.update(local_id=f"{label}@cygnet.test", pkcs11_module=softhsm.MODULE,
                pkcs11_token=softhsm.TOKEN_LABEL,
                pin_file=str(client.secret_file("pin", pin)), **extra)
    return keys


@pytest.mark.parametrize("label, how", [("card-ec", {"pkcs11_key": "card-ec"}),
                                        ("card-rsa", {"pkcs11_key_id": "11"})])
def test_up_with_the_key_on_the_token(tb, token, make_cygnet, monkeypatch, label, how):
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    client = make_cygnet(tb)
    client.up(client.write_profile(_keys(tb, client, token, label, **how)))
    assert client.status()["state"] == "up"
    sa = tb.gateway.wait_for_sa()
    assert sa["name"] == "pubkey" and sa["remote-id"] == f"{label}@cygnet.test"
    assert tb.ping("client", "10.1.0.10") == 1
    assert client.down() == 0
    client.assert_clean()


def test_wrong_pin(tb, token, make_cygnet, monkeypatch):
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    client = make_cygnet(tb)
    output = fail_to_connect(client, client.write_profile(
        _keys(tb, client, token, "card-ec", pin="000000", pkcs11_key="card-ec")))
    assert last_line(output) == "cygnet: wrong PIN for the token 'cygnet-test'"
    assert "000000" not in output


def test_pin_typed_at_the_terminal(tb, token, make_cygnet, monkeypatch):
    from tests.interop.cygnet_helpers import run_on_terminal

    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    client = make_cygnet(tb)
    keys = _keys(tb, client, token, "card-ec", pkcs11_key="card-ec")
    del keys["pin_file"]
    code, screen = run_on_terminal(client, ["up", "--daemon", str(client.write_profile(keys))],
                                   {"PIN for token 'cygnet-test'": PIN})
    assert code == 0, screen
    assert "tunnel up" in screen and PIN not in screen
    assert client.run("down", client.name, timeout=15).returncode == 0
    client.assert_clean()
