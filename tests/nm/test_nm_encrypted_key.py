"""NetworkManager `method=key` with an encrypted private key (issue 19): the key's passphrase
is the connection's `password` secret (NetworkManager-strongswan's meaning), a real
NetworkManager hands it to Cygnet's plugin, and a wrong one fails the activation."""

from __future__ import annotations

import pytest

from tests.nm.test_networkmanager_plugin import add_vpn, up, vpn_data

pytestmark = [pytest.mark.interop, pytest.mark.nm, pytest.mark.slow]

PASSPHRASE = "alice's key passphrase"


def encrypted_copy(testbed, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(testbed.pki.alice.key.read_bytes(), None)
    path = tmp_path / "alice-encrypted.pem"
    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    return path


def test_method_key_with_an_encrypted_key(nm_testbed, tmp_path):
    testbed, nm = nm_testbed
    data = vpn_data(testbed, "cert", method="key", userkey=str(encrypted_copy(testbed, tmp_path)))
    add_vpn(nm, "office", "cygnet", data)
    result = up(nm, "office", PASSPHRASE)
    assert "successfully activated" in result.stdout, result
    assert testbed.gateway.wait_for_sa()["name"] == "pubkey"
    nm.nmcli("connection", "down", "office", timeout=60)

    add_vpn(nm, "wrong", "cygnet", data)
    result = up(nm, "wrong", "not the passphrase", check=False)
    assert result.returncode != 0
    assert "successfully activated" not in result.stdout
