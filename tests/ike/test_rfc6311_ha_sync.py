"""RFC 6311, the peer's side (ike/msgid_sync.py), against the in-memory responder: the
cluster node that took over asks for our message IDs (and moves our ESP counters on).

strongSwan 5.9.8's ha plugin never sends such a request (and a strongSwan gateway answers
none of ours), so these tests are the only place it runs."""

import struct

from ike.constants import ExchangeType, NotifyType
from ike.events import DeadPeerDetected, OutboundCountersAdvanced
from ike.payloads import Header, Notify

from .responder import GatewayConfig, Pair, client_settings

NONCE = b"\x0a\x0b\x0c\x0d"
ANNOUNCING = GatewayConfig(extra_auth_notifies=(
    (NotifyType.IKEV2_MESSAGE_ID_SYNC_SUPPORTED, b""),
    (NotifyType.IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED, b"")))


def send_sync(gateway, m1: int, p1: int, *extra) -> None:
    """The cluster's INFORMATIONAL with message ID 0 (§4.1)."""
    sa = gateway.sa
    header = Header(sa.spi_i, sa.spi_r, 0, ExchangeType.INFORMATIONAL, sa.flags(False), 0)
    gateway.pending = (sa, 0, lambda payloads: None)
    sync = Notify(NotifyType.IKEV2_MESSAGE_ID_SYNC, data=NONCE + struct.pack(">II", m1, p1))
    gateway._emit(gateway._seal(sa, header, [sync, *extra]))


def sync_answer(gateway):
    notify = next(p for p in gateway.responses[-1] if isinstance(p, Notify)
                  and p.type == NotifyType.IKEV2_MESSAGE_ID_SYNC)
    return notify.data[:4], struct.unpack(">II", notify.data[4:])


def test_we_announce_both_extensions_in_ike_auth():
    pair = Pair()
    pair.connect()
    auth = [payloads for exchange, payloads in pair.gateway.received
            if exchange == ExchangeType.IKE_AUTH][0]
    types = {p.type for p in auth if isinstance(p, Notify)}
    assert {NotifyType.IKEV2_MESSAGE_ID_SYNC_SUPPORTED,
            NotifyType.IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED} <= types


def test_lost_response_repaired_by_the_clusters_sync():
    """The node that parsed our DPD (message ID 2) died before its answer left; the node that
    took over expects 3 and has no answer cached. It syncs; we answer P2 = 3, M2, and send
    the DPD again as message ID 3, which it answers: no dead peer, same IKE_SA."""
    pair = Pair(client_settings(dpd_delay=10.0), gateway=ANNOUNCING)
    pair.connect()
    gateway = pair.gateway
    pair.to_client = lambda data: []
    pair.advance(10.0)                      # our DPD, message ID 2: parsed, answer lost
    assert gateway.sa.next_peer_id == 3
    gateway.sa.last_response, gateway.sa.last_response_id = [], -1   # the new node's cache
    pair.to_client = None
    send_sync(gateway, m1=gateway.sa.next_request_id, p1=gateway.sa.next_peer_id)
    events = pair.run()
    assert sync_answer(gateway) == (NONCE, (3, gateway.sa.next_request_id))
    assert gateway.sa.next_peer_id == 4     # our DPD again, as message ID 3, answered
    assert pair.session.unanswered_request() is None
    events += pair.advance(200.0)           # nothing left to time out
    assert not any(isinstance(e, DeadPeerDetected) for e in events)
    assert not any("expected" in line for line in gateway.log), gateway.log


def test_sync_takes_the_higher_of_both_sides_values():
    pair = Pair(gateway=ANNOUNCING)
    pair.connect()
    ike = pair.session._ike
    ours_next, expected = ike.next_request_id, ike.next_peer_request_id
    send_sync(pair.gateway, m1=expected + 5, p1=ours_next + 7)
    pair.run()
    assert sync_answer(pair.gateway) == (NONCE, (ours_next + 7, expected + 5))
    assert (ike.next_request_id, ike.next_peer_request_id) == (ours_next + 7, expected + 5)


def test_a_sync_moving_the_gateway_back_is_dropped():
    pair = Pair(gateway=ANNOUNCING)
    pair.connect()
    for _ in range(3):                      # the gateway's requests 0, 1, 2
        pair.gateway.send_dpd()
        pair.run()
    answered = len(pair.gateway.responses)
    send_sync(pair.gateway, m1=1, p1=0)     # M1 below the 3 we expect (§5.1)
    pair.run()
    assert len(pair.gateway.responses) == answered
    assert pair.session._ike.next_peer_request_id == 3


def test_replay_counter_sync_is_reported_to_the_data_plane():
    pair = Pair(gateway=ANNOUNCING)
    pair.connect()
    delta = Notify(NotifyType.IPSEC_REPLAY_COUNTER_SYNC, data=(1 << 20).to_bytes(4, "big"))
    send_sync(pair.gateway, pair.gateway.sa.next_request_id, pair.gateway.sa.next_peer_id, delta)
    assert OutboundCountersAdvanced(1 << 20) in pair.run()


def test_without_the_gateways_announcement_message_id_0_is_an_ordinary_request():
    pair = Pair()
    pair.connect()
    send_sync(pair.gateway, m1=9, p1=9)
    pair.run()
    assert pair.gateway.responses[-1] == []  # answered as an INFORMATIONAL, nothing synced
    assert pair.session._ike.next_peer_request_id == 1
