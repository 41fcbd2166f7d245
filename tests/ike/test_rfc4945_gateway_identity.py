"""The gateway must be the one we dialled (issue 13 §1; RFC 4945 §3.1 for where identities live
in certificates). With no remote_id, a certificate from a trusted CA is not enough: it must name
the dialled name or address as a subjectAltName; with a PSK the IDr must be it. remote_id
"%any" accepts any identity, explicitly.
"""

from __future__ import annotations

import pytest

from ike.events import AuthenticationFailed, ChildSaEstablished, IkeSaDeleted
from ike.payloads import IDr
from ike.settings import AuthSettings

from .responder import GatewayConfig, Pair, client_settings


@pytest.fixture(scope="module")
def pki():
    from .eap_server import Pki
    pki = Pki()
    return {
        "root": pki,
        "gateway": pki.issue("vpn.example.org", san=("vpn.example.org", "192.0.2.1")),
        "other server": pki.issue("other.example.org"),
        "user": pki.issue("carol@example.org", san=("carol@example.org",), eku=None),
    }


def _pair(pki, cert: str, identity: str, *, remote_id=None, dialled="vpn.example.org"):
    gw_cert, gw_key = pki[cert]
    client_cert, client_key = pki["user"]
    auth = AuthSettings(method="pubkey", private_key=client_key, certificate=client_cert,
                        trust_anchors=(pki["root"].cert,))
    gateway = GatewayConfig(client_auth="pubkey", certificate=gw_cert, private_key=gw_key,
                            identity=identity)
    return Pair(client_settings(auth=auth, remote_id=remote_id, gateway_name=dialled), gateway)


def test_the_honest_gateway_proves_the_dialled_name(pki):
    assert isinstance(_pair(pki, "gateway", "vpn.example.org").connect()[-1], ChildSaEstablished)


def test_the_honest_gateway_proves_the_dialled_address(pki):
    pair = _pair(pki, "gateway", "vpn.example.org", dialled="192.0.2.1")
    assert isinstance(pair.connect()[-1], ChildSaEstablished)


@pytest.mark.parametrize("cert,identity,presented", [
    ("other server", "other.example.org", "CN=other.example.org,O=Cygnet,C=CH, "
                                          "SAN DNS:other.example.org"),
    ("user", "carol@example.org", "SAN email:carol@example.org"),
])
def test_a_certificate_from_the_same_ca_for_another_name_is_refused(pki, cert, identity,
                                                                    presented):
    events = _pair(pki, cert, identity).connect()
    assert [type(e) for e in events] == [AuthenticationFailed, IkeSaDeleted]
    reason = events[0].reason
    assert reason.startswith("gateway identity mismatch: expected a certificate for "
                             "vpn.example.org, the gateway presented "), reason
    assert presented in reason


def test_percent_any_accepts_any_identity_explicitly(pki):
    pair = _pair(pki, "other server", "other.example.org", remote_id="%any")
    assert isinstance(pair.connect()[-1], ChildSaEstablished)
    # and %any is not sent as IDr
    _, request = pair.gateway.received[1]
    assert not any(isinstance(p, IDr) for p in request)


def test_remote_id_set_replaces_the_dialled_name(pki):
    pair = _pair(pki, "other server", "other.example.org", remote_id="other.example.org")
    assert isinstance(pair.connect()[-1], ChildSaEstablished)


def test_psk_gateway_must_identify_as_the_dialled_name():
    pair = Pair(client_settings(gateway_name="vpn.example.org"),
                GatewayConfig(identity="impostor.example.org"))
    events = pair.connect()
    assert isinstance(events[0], AuthenticationFailed)
    assert "expected the gateway to identify itself as vpn.example.org" in events[0].reason
    assert "impostor.example.org" in events[0].reason


def test_psk_gateway_with_the_dialled_identity_connects():
    pair = Pair(client_settings(gateway_name="vpn.example.org"),
                GatewayConfig(identity="vpn.example.org"))
    assert isinstance(pair.connect()[-1], ChildSaEstablished)
