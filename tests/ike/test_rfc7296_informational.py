"""INFORMATIONAL exchanges (RFC 7296 §1.4, §1.5, §2.4): DELETE in both directions, liveness
checks (DPD), address notifications and what happens when the gateway goes silent."""

import ipaddress

from ike.constants import ExchangeType, NotifyType, ProtocolId
from ike.events import PeerAddressesAdded
from ike.payloads import Delete, Notify
from ike.session import State

from .responder import GatewayConfig, Pair, client_settings


def _kinds(events):
    return [type(e).__name__ for e in events]


def _established(**settings):
    pair = Pair(client_settings(**settings)) if settings else Pair()
    child = pair.connect()[-1]
    return pair, child


def test_gateway_deletes_the_ike_sa():
    pair, child = _established()
    pair.gateway.delete_ike()
    events = pair.run()
    assert _kinds(events) == ["ChildSaDeleted", "IkeSaDeleted"]
    assert events[-1].reason == "deleted by the gateway"
    assert pair.gateway.responses[-1] == []  # we answered before going away
    assert pair.session.state is State.CLOSED


def test_gateway_deletes_a_child_sa_and_we_answer_with_our_half():
    pair, child = _established()
    pair.gateway.delete_child(pair.gateway.children[child.spi_out])
    events = pair.run()
    assert _kinds(events) == ["ChildSaDeleted"]
    assert events[0].reason == "deleted by the gateway"
    answer = pair.gateway.responses[-1]
    assert answer == [Delete(ProtocolId.ESP, [child.spi_in])]
    assert pair.session.state is State.ESTABLISHED


def test_delete_of_an_unknown_child_is_answered_empty():
    pair, _ = _established()
    pair.gateway.informational([Delete(ProtocolId.ESP, [b"\x00\x00\x99\x99"])])
    assert pair.run() == []
    assert pair.gateway.responses[-1] == []


def test_empty_informational_is_a_liveness_check():
    pair, _ = _established()
    pair.gateway.send_dpd()
    assert pair.run() == []
    assert pair.gateway.responses == [[]]


def test_additional_addresses_are_recorded_but_not_used():
    pair, _ = _established()
    pair.gateway.informational([
        Notify(NotifyType.ADDITIONAL_IP4_ADDRESS, data=ipaddress.ip_address("198.51.100.9").packed),
        Notify(NotifyType.ADDITIONAL_IP6_ADDRESS, data=ipaddress.ip_address("2001:db8::9").packed),
        Notify(NotifyType.ADDITIONAL_IP4_ADDRESS, data=b"\x01"),  # malformed: skipped
    ])
    events = pair.run()
    assert events == [PeerAddressesAdded((ipaddress.ip_address("198.51.100.9"),
                                          ipaddress.ip_address("2001:db8::9")))]
    pair.session.rekey_ike()
    pair.advance(0)
    assert {addr for _, addr in pair.sent_to_gateway} == {("192.0.2.1", 500)}


def test_additional_addresses_in_ike_auth_are_reported():
    pair = Pair(gateway=GatewayConfig(additional_addresses=("198.51.100.9",)))
    events = pair.connect()
    assert PeerAddressesAdded((ipaddress.ip_address("198.51.100.9"),)) in events


def test_update_sa_addresses_moves_to_the_source_address():
    pair, _ = _established()
    pair.gateway.informational([Notify(NotifyType.UPDATE_SA_ADDRESSES)])
    pair.gateway.config.address = "192.0.2.77"  # the request arrives from a new address
    pair.run()
    assert pair.session.remote_address[0] == "192.0.2.77"


def test_dpd_after_idle_time():
    pair, _ = _established(dpd_delay=30.0)
    assert pair.advance(29) == []
    pair.advance(2)
    exchange, payloads = pair.gateway.received[-1]
    assert (exchange, payloads) == (ExchangeType.INFORMATIONAL, [])
    assert pair.session.state is State.ESTABLISHED


def test_dead_gateway_is_detected_after_strongswans_retransmission_schedule():
    pair, _ = _established(dpd_delay=30.0)
    pair.to_gateway = lambda data: []  # the gateway vanished
    start = pair.now
    events = pair.advance(30 + 165)
    assert events == []
    events = pair.advance(1)
    assert _kinds(events) == ["DeadPeerDetected", "ChildSaDeleted", "IkeSaDeleted"]
    assert events[-1].reason.startswith("gateway unreachable")
    sends = [d for d, _ in pair.sent_to_gateway[2:]]
    assert len(sends) == 6  # the request and 5 retransmissions
    assert pair.now - start >= 30 + 165.5


def test_close_without_an_answer_still_finishes():
    pair, _ = _established()
    pair.to_gateway = lambda data: []
    pair.session.close()
    events = pair.advance(200)
    assert _kinds(events) == ["ChildSaDeleted", "IkeSaDeleted"]
    assert pair.session.get_timer() is None


def test_close_before_establishment():
    pair = Pair()
    pair.to_client = lambda data: []
    pair.connect()
    pair.session.close()
    assert [type(e).__name__ for e in pair.run()] == ["IkeSaDeleted"]


def test_unreachable_gateway_during_ike_sa_init():
    pair = Pair()
    pair.to_gateway = lambda data: []
    pair.connect()
    events = pair.advance(170)
    assert _kinds(events) == ["IkeSaDeleted"]
    assert "no answer to IKE_SA_INIT after 6 transmissions" in events[0].reason


def test_gateway_deletes_the_ike_sa_while_we_wait_for_a_response():
    pair, child = _established()
    pair.to_gateway = lambda data: []
    pair.session.rekey_child(child.child_id)
    pair.advance(0)
    pair.to_gateway = None
    pair.gateway.delete_ike()
    events = pair.run()
    assert _kinds(events) == ["ChildSaDeleted", "IkeSaDeleted"]
    assert pair.session.get_timer() is None


def test_check_liveness_sends_an_empty_informational_at_once():
    pair = Pair(client_settings(dpd_delay=0))  # no periodic DPD
    pair.connect()
    before = len(pair.gateway.received)
    pair.session.check_liveness()
    assert pair.session.get_timer() == 0.0  # queued work is due at once
    assert pair.advance(0) == []
    # §2.4: an empty INFORMATIONAL request; the gateway's answer ends it
    assert pair.gateway.received[before:] == [(ExchangeType.INFORMATIONAL, [])]
    assert pair.session.outstanding_request is None
    assert pair.session.state is State.ESTABLISHED
