"""The session's RequestChannel on its own (RFC 7296 §2.1 retransmission, §2.3 window size 1).

Like aioquic's loss recovery, the channel is a collaborator that can be driven without a
session: a fake clock, an IKE_SA context and callbacks.
"""

from __future__ import annotations

import pytest

from ike.constants import ExchangeType
from ike.ike_sa import IkeSaContext
from ike.requests import RequestChannel
from tests.ike.responder import NOW, client_settings


def _channel():
    channel = RequestChannel(client_settings())
    ike = IkeSaContext(spi_i=b"\x01" * 8, spi_r=bytes(8), we_are_initiator=True)
    return channel, ike


def test_queued_work_waits_while_a_request_is_outstanding():
    channel, ike = _channel()
    ran = []
    channel.send_unprotected(ike, ExchangeType.IKE_SA_INIT, b"init", lambda r, t: None, NOW)
    channel.queue(lambda now: ran.append(now))
    channel.pump(NOW)
    assert ran == [] and channel.has_queued_work  # §2.3: one request at a time
    channel.outstanding = None  # its response arrived
    channel.pump(NOW + 1)
    assert ran == [NOW + 1] and not channel.has_queued_work


def test_retransmissions_follow_the_policy_then_the_request_is_given_up():
    channel, ike = _channel()
    channel.send_unprotected(ike, ExchangeType.IKE_SA_INIT, b"init", lambda r, t: None, NOW)
    assert ike.next_request_id == 1
    assert channel.take_datagrams() == [(b"init", ("192.0.2.1", 500))]
    sent_at = [0.0]
    for _ in range(5):  # strongSwan's defaults: 4 s, then * 1.8 each time
        deadline = channel.outstanding.request.deadline
        assert channel.retransmit_due(deadline - 0.001) is None
        assert channel.take_datagrams() == []
        assert channel.retransmit_due(deadline) is None
        assert channel.take_datagrams() == [(b"init", ("192.0.2.1", 500))]
        sent_at.append(deadline - NOW)
    assert sent_at == pytest.approx([0, 4, 11.2, 24.16, 47.488, 89.4784])
    outstanding = channel.outstanding
    given_up = channel.retransmit_due(outstanding.request.deadline)
    assert given_up is outstanding and channel.outstanding is None
    assert outstanding.request.deadline - NOW == pytest.approx(165.06112)


def test_a_stopped_channel_runs_no_more_work():
    channel, _ = _channel()
    ran = []
    channel.stop()
    channel.queue(lambda now: ran.append(now))
    channel.pump(NOW)
    assert ran == []


def test_the_gateway_address_follows_nat_traversal():
    channel, ike = _channel()
    channel.remote = ("192.0.2.1", 4500)
    channel.nat_t = True
    channel.send_unprotected(ike, ExchangeType.IKE_SA_INIT, b"init", lambda r, t: None, NOW)
    assert channel.take_datagrams() == [(b"init", ("192.0.2.1", 4500))]
