"""MOBIKE (RFC 4555): MOBIKE_SUPPORTED in IKE_AUTH (§3.1), UPDATE_SA_ADDRESSES with fresh NAT
detection (§3.5) and COOKIE2 (§3.8), refusals, and the liveness check after a resume."""

from ike.constants import ExchangeType, NotifyType
from ike.events import AddressesUpdated, DeadPeerDetected
from ike.payloads import Notify
from ike.session import State

from .responder import GatewayConfig, Pair, client_settings

NEW_ADDRESS = "198.51.100.77"


def _notify_types(payloads):
    return [p.type for p in payloads if isinstance(p, Notify)]


def _established(gateway=None, **settings):
    pair = Pair(client_settings(**settings), gateway=gateway)
    pair.connect()
    assert pair.session.state is State.ESTABLISHED
    return pair


def _sent(pair, exchange):
    return [payloads for kind, payloads in pair.gateway.received if kind == exchange]


def test_ike_auth_offers_mobike_and_learns_the_gateway_supports_it():
    pair = _established()
    assert NotifyType.MOBIKE_SUPPORTED in _notify_types(_sent(pair, ExchangeType.IKE_AUTH)[0])
    assert pair.session.mobike


def test_a_gateway_without_mobike_is_not_sent_updates():
    pair = _established(gateway=GatewayConfig(mobike=False))
    assert not pair.session.mobike
    pair.session.update_addresses(NEW_ADDRESS, pair.now)
    assert pair.run() == []
    assert _sent(pair, ExchangeType.INFORMATIONAL) == []


def test_mobike_off_in_settings_is_not_offered():
    pair = _established(mobike=False)
    assert NotifyType.MOBIKE_SUPPORTED not in _notify_types(_sent(pair, ExchangeType.IKE_AUTH)[0])
    assert not pair.session.mobike


def test_update_sa_addresses_moves_the_gateway_to_our_new_address():
    pair = _established()
    pair.session.update_addresses(NEW_ADDRESS, pair.now)
    events = pair.run()
    request = _sent(pair, ExchangeType.INFORMATIONAL)[-1]
    assert _notify_types(request) == [NotifyType.UPDATE_SA_ADDRESSES,
                                      NotifyType.NAT_DETECTION_SOURCE_IP,
                                      NotifyType.NAT_DETECTION_DESTINATION_IP,
                                      NotifyType.COOKIE2]
    assert pair.gateway.moved_to == (NEW_ADDRESS, 500)  # sent from the new address
    assert events == [AddressesUpdated(NEW_ADDRESS, ("192.0.2.1", 500), False)]
    assert pair.session.state is State.ESTABLISHED


def test_nat_appearing_on_the_new_path_floats_to_port_4500():
    pair = _established()
    pair.client_nat = ("203.0.113.200", 40000)  # the new path translates our address
    pair.session.update_addresses(NEW_ADDRESS, pair.now)
    events = pair.run()
    assert events == [AddressesUpdated(NEW_ADDRESS, ("192.0.2.1", 4500), True)]
    assert pair.session.udp_encapsulation
    pair.session.check_liveness(pair.now)  # later requests go to 4500
    pair.run()
    assert pair.sent_to_gateway[-1][1] == ("192.0.2.1", 4500)


def test_a_response_without_our_cookie2_does_not_complete_the_update():
    pair = _established(gateway=GatewayConfig(echo_cookie2=False))
    pair.session.update_addresses(NEW_ADDRESS, pair.now)
    assert pair.run() == []
    assert pair.session.outstanding_request is not None  # still waiting for the real answer


def test_unexpected_nat_detected_refuses_the_move():
    pair = _established(gateway=GatewayConfig(mobike_refusal=NotifyType.UNEXPECTED_NAT_DETECTED))
    pair.session.update_addresses(NEW_ADDRESS, pair.now)
    [event] = pair.run()
    assert isinstance(event, AddressesUpdated)
    assert "UNEXPECTED_NAT_DETECTED" in event.refused


def test_a_second_move_during_an_update_is_sent_after_it():
    pair = _established()
    pair.to_gateway = lambda data: []  # the first update is lost on its way
    pair.session.update_addresses(NEW_ADDRESS, pair.now)
    pair.run()
    pair.session.update_addresses("198.51.100.78", pair.now)
    pair.to_gateway = None
    events = pair.advance(30)
    updates = [e for e in events if isinstance(e, AddressesUpdated)]
    assert updates and updates[-1].local_address == "198.51.100.78"
    assert pair.gateway.moved_to == ("198.51.100.78", 500)


def test_the_gateway_cookie2_is_echoed():
    pair = _established()
    pair.gateway.informational([Notify(NotifyType.COOKIE2, data=b"12345678")])
    pair.run()
    assert pair.gateway.responses[-1] == [Notify(NotifyType.COOKIE2, data=b"12345678")]


def test_liveness_check_with_a_short_budget_finds_a_silent_gateway():
    pair = _established(dpd_delay=0)
    pair.to_gateway = lambda data: []  # the gateway forgot us / is gone
    pair.session.check_liveness(pair.now)
    events = pair.advance(10)  # far less than the 165 s of the default retransmissions
    dead = [e for e in events if isinstance(e, DeadPeerDetected)]
    assert dead and "liveness check after 3 transmissions" in dead[0].reason
    assert pair.session.state is State.CLOSED


def test_liveness_check_answered_keeps_the_ike_sa():
    pair = _established(dpd_delay=0)
    pair.session.check_liveness(pair.now)
    assert pair.advance(10) == []
    assert pair.session.state is State.ESTABLISHED


def test_a_short_dpd_budget_finds_a_dead_gateway_in_seconds():
    from ike.mobike import DPD_POLICY, give_up_after

    pair = _established(dpd_delay=10.0, dpd_retransmission=DPD_POLICY)
    pair.to_gateway = lambda data: []  # the gateway vanished
    events = pair.advance(10 + give_up_after(DPD_POLICY) + 0.01)
    assert [type(e).__name__ for e in events] == ["DeadPeerDetected", "ChildSaDeleted",
                                                  "IkeSaDeleted"]
    assert "after 4 transmissions" in events[0].reason
