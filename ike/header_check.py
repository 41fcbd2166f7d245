"""Is a datagram worth decoding? Checked on the 28-byte header alone (RFC 7296 §3.1, §2.2).

A datagram whose SPIs are not ours is dropped before this (IkeSession._context_for). One
that claims our SPIs must also have the right length, and be either the response to our
outstanding request (same message ID and exchange) or a request with the message ID we
expect next or answered last (§2.2). Everything else is dropped without decoding its
payload chain, which costs far more than the header (issue 13 §2: 65 KB of empty payloads).
"""

from __future__ import annotations

from .ike_sa import ProtocolViolation
from .payloads import ParseError


def check_header(header, datagram_length: int, ike, outstanding) -> None:
    """Raise ParseError/ProtocolViolation unless the header can belong to this exchange."""
    if header.length != datagram_length:
        raise ParseError(f"header length {header.length} differs from the datagram's "
                         f"{datagram_length} bytes", offset=24)
    if header.is_response:
        if (outstanding is None or outstanding.ike is not ike
                or header.message_id != outstanding.request.message_id
                or header.exchange != outstanding.request.exchange):
            raise ProtocolViolation(f"unexpected response, message ID {header.message_id}")
    elif header.message_id not in (ike.last_response_id, ike.next_peer_request_id):
        raise ProtocolViolation(f"request with message ID {header.message_id}, expected "
                                f"{ike.next_peer_request_id}")
