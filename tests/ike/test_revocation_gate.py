"""The session waits for the owner's revocation verdict on the gateway's certificate chain
(ike/revocation_gate.py; RFC 5280 §6.3 / RFC 6960 checks run in client/revocation.py): nothing
is sent to the gateway meanwhile — above all no EAP response with our credentials."""

from cryptography import x509

from ike.constants import ExchangeType
from ike.session import IkeSession
from ike.events import (AuthenticationFailed, ChildSaEstablished, ConfigReceived,
                        GatewayCertificateVerified, IkeSaDeleted, IkeSaEstablished)

from .test_rfc7296_exchanges import _cert_pair, _eap_server, _kinds, pki  # noqa: F401


def _checking(pair):
    """The pair's session rebuilt with check_revocation set."""
    pair.settings.auth.check_revocation = True
    pair.session = IkeSession(pair.settings, pair.now)
    pair.session.raise_internal_errors = True
    return pair


def _auth_requests(pair):
    return [p for x, p in pair.gateway.received if x == ExchangeType.IKE_AUTH]


def test_eap_credentials_wait_for_the_verdict_then_flow(pki):  # noqa: F811
    root, (gateway_cert, _), _, _ = pki
    pair = _checking(_cert_pair(pki, client_auth="eap", eap=_eap_server()))
    events = pair.connect()
    assert _kinds(events) == [GatewayCertificateVerified]
    chain = [x509.load_der_x509_certificate(der) for der in events[0].chain]
    assert chain[0] == gateway_cert and chain[-1] == root.cert
    sent = len(pair.sent_to_gateway)
    assert len(_auth_requests(pair)) == 1            # only the first IKE_AUTH request
    assert pair.run() == [] and len(pair.sent_to_gateway) == sent   # still waiting
    pair.session.revocation_checked(None, pair.now)
    assert _kinds(pair.run()) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
    assert len(_auth_requests(pair)) == 5


def test_a_revoked_gateway_gets_no_eap_response(pki):  # noqa: F811
    pair = _checking(_cert_pair(pki, client_auth="eap", eap=_eap_server()))
    pair.connect()
    sent = len(pair.sent_to_gateway)
    pair.session.revocation_checked("the gateway's certificate … was revoked", pair.now)
    events = pair.run()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert events[0].reason == "the gateway's certificate … was revoked"
    assert len(pair.sent_to_gateway) == sent and len(_auth_requests(pair)) == 1


def test_certificate_authentication_waits_before_the_child_sa(pki):  # noqa: F811
    pair = _checking(_cert_pair(pki))
    assert _kinds(pair.connect()) == [GatewayCertificateVerified]
    pair.session.revocation_checked(None, pair.now)
    assert _kinds(pair.run()) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
    pair.session.revocation_checked("late", pair.now)   # a second verdict changes nothing
    assert pair.run() == []


def test_certificate_then_eap_rounds_hold_once(pki):  # noqa: F811
    pair = _checking(_cert_pair(pki, client_auth="pubkey+eap", eap=_eap_server()))
    assert _kinds(pair.connect()) == [GatewayCertificateVerified]
    pair.session.revocation_checked(None, pair.now)
    assert _kinds(pair.run()) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]


def test_without_check_revocation_nothing_waits(pki):  # noqa: F811
    pair = _cert_pair(pki)
    assert _kinds(pair.connect()) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]


def _eap_tls_pair(pki, **gateway):  # noqa: F811
    from .test_rfc5998_eap_only import _eap_tls_pair as make

    pair = _checking(make(pki, **gateway))
    return pair


def test_the_eap_server_certificate_is_held_too(pki):  # noqa: F811

    pair = _eap_tls_pair(pki)
    pair.settings.auth.eap_only = False
    events = pair.connect()
    assert [e.role for e in events] == ["gateway"]
    pair.session.revocation_checked(None, pair.now)
    events = pair.run()
    assert _kinds(events) == [GatewayCertificateVerified] and events[0].role == "EAP server"
    sent = len(pair.sent_to_gateway)
    # the answer to the server's certificate waits: revoked -> it is never sent
    pair.session.revocation_checked("the EAP server's certificate … was revoked", pair.now)
    events = pair.run()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert len(pair.sent_to_gateway) == sent


def test_eap_only_gateway_is_judged_by_its_eap_certificate(pki):  # noqa: F811
    pair = _eap_tls_pair(pki, eap_only=True)
    events = pair.connect()
    assert _kinds(events) == [GatewayCertificateVerified] and events[0].role == "EAP server"
    pair.session.revocation_checked(None, pair.now)
    assert _kinds(pair.run()) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
