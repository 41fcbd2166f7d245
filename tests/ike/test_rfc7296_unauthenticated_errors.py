"""A hostile network against the in-memory gateway (issue 13 §2; RFC 7296 §2.21.1, §3.10.1).

Spoofed, unauthenticated answers to IKE_SA_INIT are hints, not verdicts: the session keeps
waiting for a valid answer and completes with it. Datagrams that are not ours are dropped on
their header, before the payload chain is decoded; replays of plaintext requests are dropped
without an internal error; drop logs stay bounded; an unknown error in an IKE_AUTH response
fails the request; a tiny AUTH_LIFETIME does not make the client reauthenticate in a loop.
"""

from __future__ import annotations

import logging
import os
import struct

import pytest

from ike import session_crypto as crypto
from ike.constants import ExchangeType, KeId, NotifyType
from ike.events import (ChildSaEstablished, IkeSaDeleted, IkeSaEstablished, ProposalMismatch,
                        ReauthenticationRequested)
from ike.payloads import FLAG_RESPONSE, KE, SA, Header, Message, Nonce, Notify, PayloadType
from ike import session as session_module
from ike.session import State

from .responder import GatewayConfig, Pair, client_settings

MIN_AUTH_LIFETIME = 10  # seconds, the floor ike/session.py states (RFC 4478 leaves it open)


def _kinds(events):
    return [type(e) for e in events]


def _start(pair: Pair) -> bytes:
    """Send our IKE_SA_INIT request, but hold it back from the gateway: returns it."""
    pair.session.connect(pair.now)
    [(request, _)] = pair.session.datagrams_to_send(pair.now)
    return request


def _gateway_addr(pair: Pair) -> tuple:
    return (pair.gateway.config.address, 500)


def _spoofed_init_response(request: bytes, payloads: list) -> bytes:
    """What an off-path attacker who saw our request can forge: our SPIi, any SPIr."""
    ours = Header.decode(request[:28])
    header = Header(ours.spi_i, os.urandom(8), 0, ExchangeType.IKE_SA_INIT, FLAG_RESPONSE, 0)
    return Message(header, payloads).encode()


def _let_the_real_gateway_answer(pair: Pair, request: bytes) -> list:
    pair.gateway.receive(request, pair._client_address(500))
    return pair.run()


OUR_IKE = "aes256gcm16-prfsha384-x25519"
SPOOFS = {
    "NO_PROPOSAL_CHOSEN": lambda: [Notify(NotifyType.NO_PROPOSAL_CHOSEN)],
    "INVALID_KE for a group we did not offer": lambda: [
        Notify(NotifyType.INVALID_KE_PAYLOAD, data=struct.pack("!H", KeId.MODP_1024))],
    "an error notify": lambda: [Notify(NotifyType.TEMPORARY_FAILURE)],
    "an unknown error notify": lambda: [Notify(9000)],
    "a proposal we did not offer": lambda: [
        SA(crypto.ike_proposal_payloads(crypto.parse_ike("aes128-sha256-x25519"))),
        KE(KeId.CURVE25519, os.urandom(32)), Nonce(os.urandom(32))],
}


@pytest.mark.parametrize("spoof", SPOOFS, ids=list(SPOOFS))
def test_a_spoofed_init_refusal_does_not_end_the_attempt(spoof):
    pair = Pair(client_settings(ike_proposals=OUR_IKE))
    request = _start(pair)
    pair.session.receive_datagram(_spoofed_init_response(request, SPOOFS[spoof]()),
                                  _gateway_addr(pair), pair.now)
    assert pair.session.next_event() is None  # nothing decided yet
    assert pair.session.state is State.INIT_SENT
    events = _let_the_real_gateway_answer(pair, request)
    assert _kinds(events)[0] is IkeSaEstablished
    assert isinstance(events[-1], ChildSaEstablished)


def test_an_unanswered_refusal_is_acted_on_after_a_wait_as_an_unauthenticated_hint():
    pair = Pair()
    request = _start(pair)
    pair.session.receive_datagram(_spoofed_init_response(
        request, [Notify(NotifyType.NO_PROPOSAL_CHOSEN)]), _gateway_addr(pair), pair.now)
    assert pair.advance(1.0) == []  # still waiting for a valid answer
    events = pair.advance(10.0)
    assert _kinds(events) == [ProposalMismatch, IkeSaDeleted]
    assert not events[0].authenticated  # the engine retries later instead of giving up
    assert "none of our IKE proposals" in events[1].reason


def test_an_esp_proposal_mismatch_in_ike_auth_is_authenticated():
    pair = Pair(gateway=GatewayConfig(refuse_child=NotifyType.NO_PROPOSAL_CHOSEN))
    mismatch = next(e for e in pair.connect() if isinstance(e, ProposalMismatch))
    assert mismatch.authenticated


def test_an_honest_refusal_still_fails_the_attempt():
    pair = Pair(client_settings(ike_proposals="aes128gcm16-prfsha256-x25519"),
                GatewayConfig(invalid_ke=KeId.ECP_384))
    events = pair.connect()
    assert _kinds(events) == [ProposalMismatch, IkeSaDeleted]
    assert "group 20" in events[0].reason


# --------------------------------------------------------------------------- header first


def _count_decodes(monkeypatch) -> list:
    calls = []
    real = Message.decode.__func__

    def counting(cls, data):
        calls.append(len(data))
        return real(cls, data)

    monkeypatch.setattr(Message, "decode", classmethod(counting))
    return calls


def _empty_payload_flood(spi_i: bytes, spi_r: bytes, message_id: int = 0,
                         exchange=ExchangeType.INFORMATIONAL, size: int = 65_000) -> bytes:
    """A datagram of empty payloads (4-byte generic headers, each naming the next)."""
    count = (size - 28) // 4
    body = struct.pack("!BBH", PayloadType.VENDOR, 0, 4) * (count - 1) + \
        struct.pack("!BBH", 0, 0, 4)
    header = Header(spi_i, spi_r, PayloadType.VENDOR, exchange, FLAG_RESPONSE, message_id,
                    28 + len(body))
    return header.encode() + body


def test_datagrams_with_foreign_spis_are_dropped_without_decoding(monkeypatch):
    pair = Pair()
    pair.connect()
    calls = _count_decodes(monkeypatch)
    for _ in range(20):
        pair.session.receive_datagram(_empty_payload_flood(os.urandom(8), os.urandom(8)),
                                      _gateway_addr(pair), pair.now)
    assert calls == []
    assert pair.session.state is State.ESTABLISHED


def test_our_spis_with_a_message_id_we_do_not_expect_are_not_decoded(monkeypatch):
    pair = Pair()
    pair.connect()
    ike = pair.session.ike_sa
    calls = _count_decodes(monkeypatch)
    # a response to nothing we asked, and a request far ahead of the window
    pair.session.receive_datagram(_empty_payload_flood(ike.spi_i, ike.spi_r, 77),
                                  _gateway_addr(pair), pair.now)
    assert calls == []
    assert pair.session.state is State.ESTABLISHED


# --------------------------------------------------------------------------- replays, logs


def test_a_plaintext_request_with_the_last_answered_message_id_is_dropped_quietly(caplog):
    pair = Pair()
    pair.connect()
    pair.deliver_to_client(pair.gateway.send_dpd())  # we answer message ID 0
    ike = pair.session.ike_sa
    assert ike.last_response_id == 0
    pair.session.raise_internal_errors = True  # an internal error would surface here
    header = Header(ike.spi_i, ike.spi_r, 0, ExchangeType.INFORMATIONAL, 0, 0)
    plaintext = Message(header, [Notify(NotifyType.INITIAL_CONTACT)]).encode()
    with caplog.at_level(logging.INFO, logger="ike.session"):
        pair.session.receive_datagram(plaintext, _gateway_addr(pair), pair.now)
    assert pair.session.datagrams_to_send(pair.now) == []  # no cached answer for it
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert pair.session.state is State.ESTABLISHED


def test_drop_logs_are_bounded(caplog):
    pair = Pair()
    pair.connect()
    with caplog.at_level(logging.INFO, logger="ike.session"):
        for _ in range(1000):
            pair.session.receive_datagram(os.urandom(60), _gateway_addr(pair), pair.now)
    assert 1 <= len(caplog.records) <= 20
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ike.session"):
        pair.now += 120  # the next window reports how many it did not log
        pair.session.receive_datagram(os.urandom(60), _gateway_addr(pair), pair.now)
    assert any("were not logged" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- IKE_AUTH, lifetimes


def test_an_unknown_error_notify_in_the_ike_auth_response_fails_the_request():
    pair = Pair(gateway=GatewayConfig(extra_auth_notifies=((9000, b""),)))
    events = pair.connect()
    assert IkeSaEstablished not in _kinds(events)
    assert isinstance(events[-1], IkeSaDeleted)
    assert "9000" in events[-1].reason


def test_known_child_sa_errors_still_leave_the_choice_to_the_child_sa_code():
    pair = Pair(gateway=GatewayConfig(refuse_child=NotifyType.TS_UNACCEPTABLE))
    events = pair.connect()
    assert "traffic selectors" in events[-1].reason


@pytest.mark.parametrize("lifetime", [0, 1])
def test_a_tiny_auth_lifetime_does_not_loop_reauthentication(lifetime):
    pair = Pair(gateway=GatewayConfig(auth_lifetime=lifetime))
    assert isinstance(pair.connect()[-1], ChildSaEstablished)
    start = pair.now
    reauths = lambda events: [e for e in events if isinstance(e, ReauthenticationRequested)]  # noqa: E731
    # not at once: no earlier than the floor minus the 10 % margin and 10 % jitter
    assert reauths(pair.advance(MIN_AUTH_LIFETIME * 0.75)) == []
    [request] = reauths(pair.advance(MIN_AUTH_LIFETIME * 0.25))
    assert request.deadline == start + MIN_AUTH_LIFETIME
    assert pair.session.ike_sa_deadlines()[1] is None  # reported once, not rescheduled


def test_the_stated_auth_lifetime_floor():
    assert getattr(session_module, "MIN_AUTH_LIFETIME", None) == MIN_AUTH_LIFETIME


# --------------------------------------------------------------------------- found by fuzzing


def test_an_ike_rekey_request_with_a_short_spi_is_answered_not_an_internal_error():
    """tests/fuzz/target_ike_session.py: a CREATE_CHILD_SA request that rekeys the IKE_SA with
    an SPI that is not 8 octets (§3.3.1) raised ValueError inside the session."""
    from ike.keyexchange import make_key_exchange

    pair = Pair()
    pair.connect()
    pair.session.raise_internal_errors = True
    offer = SA(crypto.ike_proposal_payloads(crypto.parse_ike("aes256gcm16-prfsha384-x25519")))
    ke = KE(KeId.CURVE25519, make_key_exchange(KeId.CURVE25519).public_bytes())
    answers = []
    pair.gateway.request(ExchangeType.CREATE_CHILD_SA, [offer, Nonce(os.urandom(32)), ke],
                         on_response=answers.append)
    pair.run()
    [answer] = answers
    assert [p.type for p in answer if isinstance(p, Notify)] == [NotifyType.INVALID_SYNTAX]
    assert pair.session.state is State.ESTABLISHED
