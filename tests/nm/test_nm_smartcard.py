"""NetworkManager `method=smartcard` (NetworkManager-strongswan's meaning, issue 19): the key
stays on a SoftHSM2 token (testbed/softhsm.py), the PIN is the connection's `password`
secret; a real NetworkManager starts Cygnet's plugin, which signs through PKCS#11 against
real strongSwan. A wrong PIN fails the activation."""

from __future__ import annotations

import pytest

from testbed import softhsm
from tests.nm.test_networkmanager_plugin import add_vpn, up

pytestmark = [pytest.mark.interop, pytest.mark.nm, pytest.mark.slow,
              pytest.mark.skipif(not softhsm.available(), reason="softhsm2 is not installed")]

PIN = "975310"


@pytest.fixture
def token(pki, tmp_path_factory, monkeypatch):
    # before nm_testbed: NetworkManager passes its environment on to the plugin
    token = softhsm.SoftToken.create(tmp_path_factory.mktemp("nm-token"), pki, PIN)
    token.add_key("ec", "nm-card", b"\x21")
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    return token


@pytest.mark.parametrize("method", [{"method": "smartcard"},
                                    {"method": "cert", "cert-source": "smartcard"}])
def test_smartcard_with_the_pin_as_secret(token, nm_testbed, method):
    from testbed import GATEWAY_NAME

    testbed, nm = nm_testbed
    data = {"address": testbed.gateway_address, "virtual": "yes", "remote-identity": GATEWAY_NAME,
            "certificate": str(testbed.pki.root_ca), "local-identity": "nm-card@cygnet.test",
            "cygnet-pkcs11-module": softhsm.MODULE, "cygnet-pkcs11-key-id": "21", **method}
    add_vpn(nm, "card", "cygnet", data)
    result = up(nm, "card", PIN)
    assert "successfully activated" in result.stdout, result
    sa = testbed.gateway.wait_for_sa()
    assert sa["name"] == "pubkey" and sa["remote-id"] == "nm-card@cygnet.test"
    nm.nmcli("connection", "down", "card", timeout=60)

    add_vpn(nm, "wrong-pin", "cygnet", data)
    result = up(nm, "wrong-pin", "000000", check=False)
    assert result.returncode != 0 and "successfully activated" not in result.stdout
    assert "000000" not in result.stdout + result.stderr
