"""Fuzz target: an established IkeSession (ike/session.py) fed hostile datagrams.

The first byte picks what the rest becomes:
  0, 1  a datagram as is (seeds: every real datagram of a connection, DPD and rekeys, from
        the in-memory gateway, so mutations of real exchanges reach deep into the codec);
  2     a payload chain sealed with the gateway's real keys as a request (INFORMATIONAL,
        CREATE_CHILD_SA or another exchange) with the message ID the session expects;
  3     a payload chain sealed as the response to a request of ours (a CHILD_SA rekey or
        an INFORMATIONAL, started first), so authenticated garbage reaches the handlers.
Internal errors are raised (raise_internal_errors), so any exception is a finding; hostile
input must only ever be dropped, answered, or end the session in an orderly way.
"""

from __future__ import annotations

import struct
from dataclasses import replace

from ike.constants import ExchangeType, PayloadType
from ike.payloads import GENERIC_HEADER_SIZE, HEADER_SIZE, Header, encode_payloads
from ike.session import State

from tests.fuzz.ike_seeds import recorded_exchange

EXCHANGES = (ExchangeType.INFORMATIONAL, ExchangeType.CREATE_CHILD_SA, ExchangeType.IKE_AUTH)
RESET_EVERY = 5000  # a fresh session now and then: state drifts (keys, message IDs)

_state: dict = {"pair": None, "inputs": 0}


def _fresh_pair():
    from tests.ike.responder import Pair

    pair = Pair()
    pair.connect()
    pair.session.raise_internal_errors = True
    return pair


def _pair():
    pair = _state["pair"]
    _state["inputs"] += 1
    if (pair is None or pair.session.state in (State.CLOSED, State.DELETING)
            or _state["inputs"] % RESET_EVERY == 0):
        pair = _state["pair"] = _fresh_pair()
    return pair


def _seal_chain(protector, header: Header, first: int, inner: bytes) -> bytes:
    """SkProtector.seal for a raw inner chain (the fuzzer's bytes, not payload objects)."""
    sk_length = GENERIC_HEADER_SIZE + protector._protected_size(len(inner))
    header = replace(header, next_payload=PayloadType.SK, length=HEADER_SIZE + sk_length)
    prefix = header.encode() + struct.pack("!BBH", first, 0, sk_length)
    return protector._protect(prefix, inner)


def _drain(pair) -> None:
    session = pair.session
    session.datagrams_to_send(pair.now)
    while session.next_event() is not None:
        pass


def one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    pair = _pair()
    session, gateway_sa = pair.session, pair.gateway.sa
    mode, body = data[0] % 4, data[1:]
    source = (pair.gateway.config.address, 4500 if session.udp_encapsulation else 500)
    if mode in (0, 1) or gateway_sa is None or gateway_sa.protector is None:
        session.receive_datagram(body, source, pair.now)
    elif mode == 2:
        ike = session.ike_sa
        exchange = EXCHANGES[body[0] % len(EXCHANGES)]
        header = Header(ike.spi_i, ike.spi_r, 0, exchange, gateway_sa.flags(False),
                        ike.next_peer_request_id)
        session.receive_datagram(_seal_chain(gateway_sa.protector, header, body[1], body[2:]),
                                 source, pair.now)
    else:
        if session.outstanding_request is None and session.state is State.ESTABLISHED:
            children = list(session.child_sas.values())
            if body[0] & 1 and children:
                session.rekey_child(children[0].child_id)
            else:
                session.check_liveness()
            session.handle_timer(pair.now)
        out = session.outstanding_request
        if out is not None:
            session.datagrams_to_send(pair.now)  # the request goes nowhere: we answer it
            header = Header(out.ike_sa.spi_i, out.ike_sa.spi_r, 0, out.exchange,
                            gateway_sa.flags(True), out.message_id)
            session.receive_datagram(
                _seal_chain(gateway_sa.protector, header, body[1], body[2:]), source, pair.now)
    _drain(pair)


def _seeds() -> list[bytes]:
    from tests.ike.responder import Pair

    _, received = recorded_exchange()
    seeds = [b"\x00" + d for d in received]
    pair = Pair()
    pair.connect()
    pair.deliver_to_client(pair.gateway.send_dpd())
    child = next(iter(pair.gateway.children.values()))
    pair.gateway.rekey_child(child)
    pair.run()
    for payloads in [*(p for _, p in pair.gateway.received), *pair.gateway.responses]:
        first, inner = encode_payloads(payloads)
        seeds.append(b"\x02\x00" + bytes([first]) + inner)
        seeds.append(b"\x02\x01" + bytes([first]) + inner)
        seeds.append(b"\x03\x00" + bytes([first]) + inner)
        seeds.append(b"\x03\x01" + bytes([first]) + inner)
    return seeds


SEEDS: list[bytes] = _seeds()
