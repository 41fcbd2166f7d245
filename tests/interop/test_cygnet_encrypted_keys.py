"""`cygnet up` with encrypted private keys in the profile (issue 19): the testbed PKI's PKCS#12
bundle of alice (made by testbed/pki.py) with the passphrase in a mode-600 file, bob's
key as an encrypted PEM with the passphrase in the keyring, and a wrong passphrase."""

from __future__ import annotations

import pytest

from tests.interop.cygnet_helpers import make_cygnet, module_testbed
from tests.interop.test_cygnet_errors import fail_to_connect, last_line

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


def _up_down(tb, client, profile):
    client.up(profile)
    assert client.status()["state"] == "up"
    assert tb.gateway.wait_for_sa()["name"] == "pubkey"
    assert client.down() == 0
    client.assert_clean()


def test_pkcs12_with_a_passphrase_file(tb, make_cygnet):
    from testbed.pki import P12_PASSWORD

    client = make_cygnet(tb)
    keys = client.profile_keys("rsa")
    del keys["cert"]
    keys["key"] = str(tb.pki.alice.p12)
    keys["key_passphrase_file"] = str(client.secret_file("p12-passphrase", P12_PASSWORD))
    _up_down(tb, client, client.write_profile(keys))


def test_encrypted_pem_with_the_passphrase_in_the_keyring(tb, make_cygnet, tmp_path, monkeypatch):
    pytest.importorskip("keyrings.alt")
    import keyring
    import keyring.core
    from cryptography.hazmat.primitives import serialization

    client = make_cygnet(tb)
    keys = client.profile_keys("ecdsa")
    plain = serialization.load_pem_private_key(tb.pki.bob.key.read_bytes(), None)
    encrypted = client.dir / "bob-encrypted.pem"
    encrypted.touch(mode=0o600)
    encrypted.write_bytes(plain.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"bob's passphrase")))
    keys["key"] = str(encrypted)
    keys["keyring"] = True
    # cygnet inherits these: a real file keyring (keyrings.alt) under our temporary folder
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    keyring.core.init_backend()
    try:
        keyring.set_password("cygnet", f"{client.name}:key", "bob's passphrase")
        _up_down(tb, client, client.write_profile(keys))
        keyring.set_password("cygnet", f"{client.name}:key", "not bob's passphrase")
        message = last_line(fail_to_connect(client, client.write_profile(keys)))
        assert "cannot decrypt our private key" in message and "wrong passphrase" in message
        assert "not bob's passphrase" not in client.output()
    finally:
        monkeypatch.undo()
        keyring.core.init_backend()


def test_passphrase_typed_at_the_terminal_with_up_daemon(tb, make_cygnet):
    from tests.interop.cygnet_helpers import run_on_terminal
    from testbed.pki import P12_PASSWORD

    client = make_cygnet(tb)
    keys = client.profile_keys("rsa")
    del keys["cert"]
    keys["key"] = str(tb.pki.alice.p12)  # no key_passphrase_file, no keyring: cygnet asks
    code, screen = run_on_terminal(client, ["up", "--daemon", str(client.write_profile(keys))],
                                   {"Passphrase for our private key": P12_PASSWORD})
    assert code == 0, screen
    assert "tunnel up" in screen and P12_PASSWORD not in screen
    assert tb.gateway.wait_for_sa()["name"] == "pubkey"
    assert client.run("down", client.name, timeout=15).returncode == 0
    client.assert_clean()
