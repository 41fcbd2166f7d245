"""EAP-only authentication (RFC 5998, ike/eap_only.py) against the in-memory responder: the
request carries N(EAP_ONLY_AUTHENTICATION) only when asked; a gateway without AUTH is
accepted only with methods that authenticate the server (§4), and then proves itself with
the MSK-based AUTH; with a password method it gets nothing."""

from ike.constants import ExchangeType, NotifyType
from ike.events import (AuthenticationFailed, ChildSaEstablished, ConfigReceived, IkeSaDeleted,
                        IkeSaEstablished)
from ike.payloads import EAP, Notify

from .test_rfc7296_exchanges import _cert_pair, _eap_server, _kinds, pki  # noqa: F401


def _auth_requests(pair):
    return [p for x, p in pair.gateway.received if x == ExchangeType.IKE_AUTH]


def _eap_tls_pair(pki, **gateway):  # noqa: F811
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from ike.eap import TlsClientConfig
    from .eap_server import EapServer, TlsServerConfig
    root, (gw_cert, gw_key), _, _ = pki
    client_cert, client_key = root.issue("carol@example.org", eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    server = lambda: EapServer("tls", tls=TlsServerConfig(gw_cert, gw_key,  # noqa: E731
                                                          client_ca=root.cert))
    pair = _cert_pair(pki, client_auth="eap", eap=server, eap_method="tls", **gateway)
    pair.settings.auth.eap_tls = TlsClientConfig(client_cert, client_key, trust_anchors=[root.cert],
                                                 server_identity="vpn.example.org")
    pair.settings.auth.eap_only = True
    return pair


def test_gateway_authenticated_by_eap_tls_and_the_msk(pki):  # noqa: F811
    pair = _eap_tls_pair(pki, eap_only=True)
    events = pair.connect()
    assert _kinds(events) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
    first = _auth_requests(pair)[0]
    assert any(isinstance(p, Notify) and p.type == NotifyType.EAP_ONLY_AUTHENTICATION for p in first)
    assert events[0].peer_identity == "vpn.example.org"


def test_a_gateway_that_sends_its_auth_anyway_is_fine(pki):  # noqa: F811
    pair = _eap_tls_pair(pki)
    assert _kinds(pair.connect()) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]


def test_without_a_mutual_method_an_auth_less_gateway_gets_no_eap_answer(pki):  # noqa: F811
    pair = _cert_pair(pki, client_auth="eap", eap=_eap_server(), eap_only=True)
    pair.settings.auth.eap_only = True   # asked, but MSCHAPv2 does not prove the server
    events = pair.connect()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert len(_auth_requests(pair)) == 1     # no EAP response at all
    assert not any(isinstance(p, EAP) for p in _auth_requests(pair)[0])


def test_the_notify_is_sent_only_when_asked(pki):  # noqa: F811
    pair = _cert_pair(pki, client_auth="eap", eap=_eap_server())
    pair.connect()
    assert not any(isinstance(p, Notify) and p.type == NotifyType.EAP_ONLY_AUTHENTICATION
                   for p in _auth_requests(pair)[0])


def test_an_eap_only_gateway_must_still_be_the_expected_identity(pki):  # noqa: F811
    pair = _eap_tls_pair(pki, eap_only=True, identity="other.example.org")
    events = pair.connect()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert events[0].reason == "the gateway identified itself as other.example.org, not vpn.example.org"
