"""An impostor gateway through NetworkManager (issue 13 §1): a connection whose `certificate`
is the CA and whose `remote-identity` is empty (the README's nmcli example). Like charon-nm
(nm_service.c: the address becomes the gateway identity, loosely matched against the
certificate), Cygnet requires the dialled address as a subjectAltName: the testbed gateway's
certificate carries it and connects; an impostor holding a valid certificate from the same CA
for another name (gateway-other) is refused, by both plugins.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.nm.test_networkmanager_plugin import (VPN_TYPES, add_vpn, password_for, up,
                                                  vpn_data)

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.nm]


def _without_remote_identity(testbed) -> dict:
    data = vpn_data(testbed, "eap")
    del data["remote-identity"]
    return data


@pytest.mark.parametrize("vpn_type", VPN_TYPES)
def test_empty_remote_identity_connects_to_the_honest_gateway(nm_testbed, vpn_type):
    testbed, nm = nm_testbed
    add_vpn(nm, "office", vpn_type, _without_remote_identity(testbed))
    up(nm, "office", password_for(testbed, "eap"))
    assert "office" in nm.active_connections()


@pytest.mark.parametrize("vpn_type", VPN_TYPES)
def test_empty_remote_identity_refuses_an_impostor_from_the_same_ca(nm_testbed, vpn_type):
    testbed, nm = nm_testbed
    other = testbed.pki.gateway_other
    testbed.gateway.reconfigure(replace(testbed.gateway.options, certificate=other.name,
                                        gateway_id=other.identity))
    add_vpn(nm, "office", vpn_type, _without_remote_identity(testbed))
    mark = nm.log_mark()

    result = up(nm, "office", password_for(testbed, "eap"), check=False)

    assert result.returncode != 0 and "Connection activation failed" in result.stderr, result
    assert "office" not in nm.active_connections()
    if vpn_type == "cygnet":
        log = nm.log_since(mark)
        assert (f"gateway identity mismatch: expected a certificate for "
                f"{testbed.gateway_address}, the gateway presented CN=other.cygnet.test,"
                f"O=Cygnet Test,C=CH, SAN DNS:other.cygnet.test") in log, log[-3000:]
