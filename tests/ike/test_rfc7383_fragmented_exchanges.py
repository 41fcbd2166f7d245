"""IKE fragmentation in exchanges (RFC 7383): negotiated in IKE_SA_INIT, used both ways for
messages larger than the fragment size, lost fragments recovered by retransmission."""

import pytest

from ike.constants import NotifyType, PayloadType
from ike.events import ChildSaEstablished, IkeSaEstablished
from ike.payloads import Message, Notify
from ike.settings import AuthSettings

from .responder import GatewayConfig, Pair, client_settings


def _is_fragment(datagram: bytes) -> bool:
    return Message.decode(datagram).header.next_payload == PayloadType.SKF


@pytest.fixture(scope="module")
def rsa_pki():
    from .eap_server import Pki
    pki = Pki(key_kind="rsa3072")
    return pki, pki.issue("vpn.example.org", key_kind="rsa3072"), \
        pki.issue("carol@example.org", key_kind="rsa3072", eku=None)


def _pair(rsa_pki, settings=None, **gateway):
    pki, (gw_cert, gw_key), (cl_cert, cl_key) = rsa_pki
    auth = AuthSettings(method="pubkey", private_key=cl_key, certificate=cl_cert,
                        trust_anchors=(pki.cert,))
    return Pair(client_settings(auth=auth, remote_id="vpn.example.org", **(settings or {})),
                GatewayConfig(client_auth="pubkey", certificate=gw_cert, private_key=gw_key,
                              **gateway))


def test_large_ike_auth_is_fragmented_both_ways(rsa_pki):
    pair = _pair(rsa_pki)
    events = pair.connect()
    assert isinstance(events[-1], ChildSaEstablished)
    ours = [d for d, _ in pair.sent_to_gateway if _is_fragment(d)]
    theirs = [d for d in pair.sent_to_client[1:] if _is_fragment(d)]
    assert len(ours) >= 2 and len(theirs) >= 2
    assert all(len(d) + 28 <= 1280 for d in ours)


def test_fragment_size_is_configurable(rsa_pki):
    pair = _pair(rsa_pki, {"fragment_size": 576})
    pair.connect()
    ours = [d for d, _ in pair.sent_to_gateway if _is_fragment(d)]
    assert len(ours) >= 4 and all(len(d) + 28 <= 576 for d in ours)


def test_no_fragmentation_unless_both_sides_support_it(rsa_pki):
    pair = _pair(rsa_pki, fragmentation=False)
    events = pair.connect()
    assert isinstance(events[0], IkeSaEstablished)
    assert not any(_is_fragment(d) for d, _ in pair.sent_to_gateway)
    init = pair.gateway.received[0][1]
    assert any(isinstance(p, Notify) and p.type == NotifyType.IKEV2_FRAGMENTATION_SUPPORTED
               for p in init)


def test_a_lost_fragment_of_the_response_is_recovered_by_retransmission(rsa_pki):
    pair = _pair(rsa_pki)
    dropped = []

    def lose_second_fragment(data):
        if _is_fragment(data) and not dropped and Message.decode(data).payloads[0].number == 2:
            dropped.append(data)
            return []
        return [data]

    pair.to_client = lose_second_fragment
    assert pair.connect() == []
    events = pair.advance(5)  # our IKE_AUTH is retransmitted; the gateway resends its answer
    assert dropped and isinstance(events[-1], ChildSaEstablished)


def test_reordered_and_duplicated_fragments_are_reassembled(rsa_pki):
    pair = _pair(rsa_pki)
    held = []
    released = []

    def reorder(data):
        if not _is_fragment(data) or released:
            return [data]
        if Message.decode(data).payloads[0].number == 1:
            held.append(data)
            return []
        released.append(True)
        return [data, held[0], held[0]]  # second, first, first again

    pair.to_client = reorder
    events = pair.connect()
    assert isinstance(events[-1], ChildSaEstablished)
