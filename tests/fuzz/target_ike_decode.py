"""Fuzz target: the IKE codec (ike/payloads.py) on arbitrary bytes.

Message.decode, Header.decode and decode_payloads must either return or raise ParseError;
whatever decodes must encode again without an error (the session re-encodes payloads, e.g.
for IntAuth and the cached responses)."""

from __future__ import annotations

from ike.payloads import Header, Message, ParseError, decode_payloads, encode_payloads

from tests.fuzz.ike_seeds import recorded_exchange


def one_input(data: bytes) -> None:
    try:
        Header.decode(data[:28])
    except ParseError:
        pass
    try:
        message = Message.decode(data)
    except ParseError:
        pass
    else:
        message.encode()
    if data:
        # an inner (decrypted) payload chain: first payload type, then the chain
        try:
            payloads = decode_payloads(data[0], data[1:])
        except ParseError:
            pass
        else:
            encode_payloads(payloads)


def _seeds() -> list[bytes]:
    sent, received = recorded_exchange()
    return [*sent, *received]


SEEDS: list[bytes] = _seeds()
