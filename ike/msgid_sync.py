"""RFC 6311 (Protocol Support for High Availability of IKEv2/IPsec), the peer's side.

After a failover the cluster node that took over may not know our message IDs or the ESP
sequence numbers its predecessor used. RFC 6311 lets it ask: an INFORMATIONAL request with
message ID 0 carrying N(IKEV2_MESSAGE_ID_SYNC) = nonce (4) | M1 | P1, where M1 is the message
ID the cluster will send next and P1 the one it expects from us next (§4.1). We answer, also
with message ID 0, with the same nonce, P2 and M2 (§4.2, §5.1):

    M2 = max(M1, the message ID we expect next)   -> what we expect from now on
    P2 = max(P1, the message ID we would send next) -> what we send from now on

and drop a request whose M1 is below what we expect next (§5.1: it would move the cluster
back). A request of ours still waiting for its answer is sent again under the new ID (the
node that received it may be gone). N(IPSEC_REPLAY_COUNTER_SYNC) in the same request asks us
to move the sequence numbers of our outbound SAs forward by its "Incoming IPsec SA delta
value" (§4.3): reported as OutboundCountersAdvanced for the data plane.

We announce IKEV2_MESSAGE_ID_SYNC_SUPPORTED and IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED in the
first IKE_AUTH request, and process a sync only from a gateway that announced support
(as strongSwan's initiator does). strongSwan 5.9.8 answers a sync only as an initiator,
and its ha plugin never sends one: against a strongSwan cluster nothing here is used, and
the in-memory responder (tests/ike) is what tests it.

A collaborator of IkeSession (like informational.py): of the session it uses the request
channel (seal, send, the outstanding request), the lifetimes (a sync is word from the
gateway) and the event queue; it reads and sets the IKE_SA's message IDs.
"""

from __future__ import annotations

import logging
import struct
from typing import Optional

from .constants import ExchangeType, NotifyType
from .events import OutboundCountersAdvanced
from .payloads import Encrypted, Header, Notify, decode_payloads

log = logging.getLogger(__name__)

_SYNC_DATA = struct.Struct(">4sII")  # nonce, EXPECTED_SEND_REQ_MESSAGE_ID, ..._RECV_...


def announcements() -> list[Notify]:
    """Notifies for the first IKE_AUTH request."""
    return [Notify(NotifyType.IKEV2_MESSAGE_ID_SYNC_SUPPORTED),
            Notify(NotifyType.IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED)]


class MessageIdSync:
    """Per IkeSession: did the gateway announce RFC 6311; answering its syncs."""

    def __init__(self, session) -> None:
        self._s = session
        self.gateway_supports = False
        self.replay_sync_supported = False

    def note_ike_auth_response(self, payloads) -> None:
        types = {int(p.type) for p in payloads if isinstance(p, Notify)}
        if NotifyType.IKEV2_MESSAGE_ID_SYNC_SUPPORTED in types:
            self.gateway_supports = True
        if NotifyType.IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED in types:
            self.replay_sync_supported = True

    def candidate(self, header: Header) -> bool:
        """Could this request be a sync (checked before decrypting it)?"""
        return (self.gateway_supports and header.message_id == 0 and not header.is_response
                and header.exchange == ExchangeType.INFORMATIONAL)

    def handle(self, ike, message, data: bytes, now: float) -> bool:
        """Answer a sync request. True if it was one (answered or dropped), False if the
        message ID 0 request is an ordinary one (the gateway's first request)."""
        if message.get(Encrypted) is None:
            return False
        payloads = decode_payloads(*ike.protector.open_chain(data, message))
        sync = next((p for p in payloads if isinstance(p, Notify)
                     and p.type == NotifyType.IKEV2_MESSAGE_ID_SYNC), None)
        if sync is None:
            return False
        if len(sync.data) != _SYNC_DATA.size:
            log.info("dropped an IKEV2_MESSAGE_ID_SYNC of %d octets (12 expected)",
                     len(sync.data))
            return True
        nonce, m1, p1 = _SYNC_DATA.unpack(sync.data)
        if m1 < ike.next_peer_request_id:
            log.info("dropped an IKEV2_MESSAGE_ID_SYNC that would move the gateway's message "
                     "ID back (%d < %d, RFC 6311 §5.1)", m1, ike.next_peer_request_id)
            return True
        m2 = max(m1, ike.next_peer_request_id)
        p2 = max(p1, ike.next_request_id)
        log.info("IKE_SA %s: the gateway synchronises message IDs (RFC 6311): we send %d "
                 "(was %d), expect %d (was %d)", ike.spi_i.hex(), p2, ike.next_request_id,
                 m2, ike.next_peer_request_id)
        ike.next_peer_request_id, ike.next_request_id = m2, p2
        # A sync answer is not a response to remember for retransmissions: the cached one
        # (last_response_id) stays as it is.
        header = Header(ike.spi_i, ike.spi_r, 0, ExchangeType.INFORMATIONAL,
                        ike.flags(response=True), 0)
        answer = Notify(NotifyType.IKEV2_MESSAGE_ID_SYNC, data=_SYNC_DATA.pack(nonce, p2, m2))
        requests = self._s._requests
        requests.send_datagrams(requests.seal(ike, header, [answer]))
        delta = self._replay_delta(payloads)
        if delta:
            self._s._events.append(OutboundCountersAdvanced(delta))
        self._s._lifetimes.heard_from_peer(now)
        self._resend_outstanding(ike, now)
        return True

    def _replay_delta(self, payloads) -> Optional[int]:
        sync = next((p for p in payloads if isinstance(p, Notify)
                     and p.type == NotifyType.IPSEC_REPLAY_COUNTER_SYNC), None)
        if sync is None:
            return None
        if len(sync.data) not in (4, 8):
            log.info("ignored an IPSEC_REPLAY_COUNTER_SYNC of %d octets", len(sync.data))
            return None
        return int.from_bytes(sync.data, "big")

    def _resend_outstanding(self, ike, now: float) -> None:
        """Our request in flight went to a node that may be gone: send it again under the
        message ID the cluster now expects."""
        requests = self._s._requests
        out = requests.outstanding
        if out is None or out.ike is not ike or out.request.message_id >= ike.next_request_id:
            return
        requests.outstanding = None
        requests.send_request(ike, out.request.exchange, out.payloads, out.on_response, now,
                              on_give_up=out.on_give_up)
