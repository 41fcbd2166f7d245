"""Redirect mechanism (RFC 5685): REDIRECT in IKE_SA_INIT, IKE_AUTH and INFORMATIONAL."""

import pytest

from ike.constants import NotifyType
from ike.events import IkeSaDeleted, Redirected
from ike.payloads import Notify
from ike.redirect import RedirectError, decode_redirect, encode_redirect
from ike.session import State

from .responder import GatewayConfig, Pair


def _kinds(events):
    return [type(e).__name__ for e in events]


@pytest.mark.parametrize("gateway", ["198.51.100.20", "2001:db8::20", "vpn2.example.org"])
def test_redirect_in_ike_sa_init(gateway):
    pair = Pair(gateway=GatewayConfig(redirect_init=gateway))
    events = pair.connect()
    assert events == [Redirected(gateway), IkeSaDeleted(f"redirected to {gateway}")]
    assert pair.session.state is State.CLOSED


def test_redirect_in_ike_sa_init_without_our_nonce_is_ignored():
    pair = Pair(gateway=GatewayConfig(redirect_init="198.51.100.20"))
    original = pair.gateway._answer_init

    def forge(header, payloads):
        if payloads and payloads[0].type == NotifyType.REDIRECT:
            payloads = [Notify(NotifyType.REDIRECT, data=encode_redirect("198.51.100.66",
                                                                         b"\x00" * 32))]
        original(header, payloads)

    pair.gateway._answer_init = forge
    assert pair.connect() == []
    assert pair.session.state is State.INIT_SENT  # still waiting for a genuine answer


def test_redirect_in_ike_auth_deletes_the_ike_sa_then_reports():
    pair = Pair(gateway=GatewayConfig(redirect_auth="vpn2.example.org"))
    events = pair.connect()
    assert _kinds(events) == ["IkeSaEstablished", "ConfigReceived", "Redirected",
                              "IkeSaDeleted"]
    assert events[2] == Redirected("vpn2.example.org")
    assert pair.gateway.sa is None  # we deleted the IKE_SA first (RFC 5685 §6)


def test_redirect_in_informational():
    pair = Pair()
    pair.connect()
    pair.gateway.informational([Notify(NotifyType.REDIRECT,
                                       data=encode_redirect("198.51.100.20"))])
    events = pair.run()
    assert _kinds(events) == ["Redirected", "ChildSaDeleted", "IkeSaDeleted"]
    assert events[-1].reason == "redirected to 198.51.100.20"


def test_redirect_codec_rejects_garbage():
    assert decode_redirect(encode_redirect("192.0.2.9", b"n" * 16)) == ("192.0.2.9", b"n" * 16)
    for bad in (b"", b"\x01", b"\x01\x05abcd", b"\x09\x01x", b"\x03\x02\xff\xfe"):
        with pytest.raises(RedirectError):
            decode_redirect(bad)
