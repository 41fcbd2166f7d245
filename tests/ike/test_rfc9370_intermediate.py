"""Additional key exchanges in IKE_INTERMEDIATE (RFC 9242, RFC 9370): ML-KEM after the
classic group, keys updated after each exchange, IntAuth bound into AUTH."""

from ike.constants import ExchangeType, KeId, NotifyType
from ike.events import ChildSaEstablished, IkeSaDeleted
from ike.intermediate import IntermediateAuthChain, intermediate_auth_input
from ike.payloads import KE, Notify
from ike.transforms import make_prf

from .responder import GatewayConfig, Pair, client_settings

HYBRID = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"


def test_mlkem_in_ike_intermediate_then_ike_auth():
    pair = Pair(client_settings(ike_proposals=HYBRID), GatewayConfig(ike_proposals=HYBRID))
    events = pair.connect()
    assert isinstance(events[-1], ChildSaEstablished)
    exchanges = [x for x, _ in pair.gateway.received]
    assert exchanges[:3] == [ExchangeType.IKE_SA_INIT, ExchangeType.IKE_INTERMEDIATE,
                             ExchangeType.IKE_AUTH]
    init = pair.gateway.received[0][1]
    assert any(isinstance(p, Notify) and p.type == NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED
               for p in init)
    ke = next(p for p in pair.gateway.received[1][1] if isinstance(p, KE))
    assert ke.group == KeId.MLKEM768
    # both sides moved to the updated keys: the CHILD_SA keys agree
    assert pair.gateway.children[events[-1].spi_out].encr_key_in == events[-1].encr_key_out


def test_two_additional_key_exchanges():
    proposal = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_ecp256"
    pair = Pair(client_settings(ike_proposals=proposal), GatewayConfig(ike_proposals=proposal))
    events = pair.connect()
    assert isinstance(events[-1], ChildSaEstablished)
    exchanges = [x for x, _ in pair.gateway.received]
    assert exchanges.count(ExchangeType.IKE_INTERMEDIATE) == 2


def test_intauth_mismatch_fails_authentication(monkeypatch):
    from . import responder
    # the gateway MACs a different IKE_INTERMEDIATE than we sent: AUTH must fail
    monkeypatch.setattr(responder, "intermediate_auth_input",
                        lambda *args: intermediate_auth_input(*args) + b"x")
    pair = Pair(client_settings(ike_proposals=HYBRID), GatewayConfig(ike_proposals=HYBRID))
    events = pair.connect()
    assert type(events[0]).__name__ == "AuthenticationFailed"
    assert isinstance(events[-1], IkeSaDeleted)


def test_gateway_refusing_the_additional_exchange():
    pair = Pair(client_settings(ike_proposals=HYBRID), GatewayConfig(ike_proposals=HYBRID))
    pair.gateway._on_intermediate = lambda *args: [Notify(NotifyType.NO_PROPOSAL_CHOSEN)]
    events = pair.connect()
    assert isinstance(events[-1], IkeSaDeleted)
    assert "additional key exchange" in events[-1].reason


def test_intauth_chain_and_auth_data_layout():
    prf = make_prf(5)
    chain = IntermediateAuthChain()
    assert chain.auth_data(1) == b""
    data = intermediate_auth_input(b"i" * 8, b"r" * 8, 43, 0x08, 1, 34, b"payload")
    # header (28) + SK header (4) + inner; lengths as if unencrypted (RFC 9242 §3.3.1)
    assert len(data) == 28 + 4 + 7
    assert int.from_bytes(data[24:28], "big") == 39
    assert data[16] == 46 and data[28] == 34 and int.from_bytes(data[30:32], "big") == 11
    chain.add(prf, b"pi", b"pr", data, data)
    first_i = chain.initiator
    assert first_i == prf(b"pi", data)
    chain.add(prf, b"pi2", b"pr2", data, data)
    assert chain.initiator == prf(b"pi2", first_i + data)
    assert chain.auth_data(2) == chain.initiator + chain.responder + b"\x00\x00\x00\x02"


def test_ike_rekey_after_a_hybrid_exchange_offers_no_additional_key_exchange():
    # IKE_FOLLOWUP_KE is not implemented: rekeys leave the ADDKE transforms out
    pair = Pair(client_settings(ike_proposals=HYBRID),
                GatewayConfig(ike_proposals=HYBRID + ",aes256gcm16-prfsha384-x25519"))
    child = pair.connect()[-1]
    pair.session.rekey_ike()
    assert [type(e).__name__ for e in pair.advance(0)] == ["IkeSaRekeyed"]
    _, payloads = pair.gateway.received[-2]
    sa = next(p for p in payloads if type(p).__name__ == "SA")
    assert all(t.type < 6 for p in sa.proposals for t in p.transforms)  # no ADDKE1..7
    assert pair.session.ike_sa.proposal.additional_ke == ()
    pair.session.rekey_child(child.child_id)
    assert "ChildSaRekeyed" in [type(e).__name__ for e in pair.advance(0)]


def test_gateway_insisting_on_additional_key_exchange_in_rekeys_keeps_the_old_ike_sa():
    pair = Pair(client_settings(ike_proposals=HYBRID), GatewayConfig(ike_proposals=HYBRID))
    pair.connect()
    old = pair.session.ike_sa
    pair.session.rekey_ike()
    assert pair.advance(0) == []  # NO_PROPOSAL_CHOSEN: retried later, nothing breaks
    assert pair.session.ike_sa == old and pair.session.state.name == "ESTABLISHED"
