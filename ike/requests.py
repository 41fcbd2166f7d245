"""RequestChannel: the session's message plumbing (RFC 7296 §2.1-§2.3, RFC 7383 fragments).

It owns what leaves the session and when: the outbox of datagrams, the gateway's address
(and whether it is UDP-encapsulated, §2.23), our one outstanding request (window size 1, §2.3)
with its retransmission, the cache of our last response per IKE_SA, and the queue of work that
waits for the window to open. It knows nothing of exchanges: callers hand it payloads and a
callback, the way aioquic's connection hands frames to its loss recovery.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional

from .ike_sa import IkeSaContext, Outstanding
from .payloads import Header
from .retransmission import PendingRequest
from .settings import Settings


class RequestChannel:
    """Outbox, peer address, the outstanding request and queued work of one session."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._outbox: list[tuple[bytes, tuple[str, int]]] = []
        self._queue: deque[Callable[[float], None]] = deque()
        self.outstanding: Optional[Outstanding] = None
        self.remote = (settings.remote_address, settings.remote_port)
        self.nat_t = False  # UDP-encapsulated (port 4500, non-ESP marker): §2.23
        self._stopped = False

    # ------------------------------------------------------------------ outbox

    def take_datagrams(self) -> list[tuple[bytes, tuple[str, int]]]:
        out, self._outbox = self._outbox, []
        return out

    def seal(self, ike: IkeSaContext, header: Header, payloads: list) -> list[bytes]:
        """SK-protect a message; RFC 7383 fragments if it would exceed fragment_size."""
        whole = ike.protector.seal(header, payloads)
        # fragment_size is a whole IP datagram (strongSwan's charon.fragment_size)
        ip_version = 6 if ":" in self.remote[0] else 4
        overhead = (40 if ip_version == 6 else 20) + 8 + (4 if self.nat_t else 0)
        if ike.fragmentation and len(whole) + overhead > self._settings.fragment_size:
            return ike.protector.seal_fragments(header, payloads, self._settings.fragment_size,
                                                ip_version=ip_version, non_esp_marker=self.nat_t)
        return [whole]

    # ------------------------------------------------------------------ our requests

    def send_request(self, ike: IkeSaContext, exchange: int, payloads: list,
                     on_response, now: float, on_give_up=None, policy=None) -> None:
        header = Header(ike.spi_i, ike.spi_r, 0, exchange, ike.flags(response=False),
                        ike.next_request_id)
        datagrams = self.seal(ike, header, payloads)
        request = PendingRequest(ike.next_request_id, exchange, datagrams,
                                 policy or self._settings.retransmission)
        ike.next_request_id += 1
        self.outstanding = Outstanding(request, ike, on_response, on_give_up, payloads)
        self.transmit(request, now)

    def send_unprotected(self, ike: IkeSaContext, exchange: int, message: bytes,
                         on_response, now: float) -> None:
        """IKE_SA_INIT: message ID 0, no SK payload (§1.2)."""
        request = PendingRequest(0, exchange, [message], self._settings.retransmission)
        ike.next_request_id = 1
        self.outstanding = Outstanding(request, ike, on_response)
        self.transmit(request, now)

    def transmit(self, request: PendingRequest, now: float) -> None:
        for datagram in request.datagrams:
            self._outbox.append((datagram, self.remote))
        request.sent(now)

    def retransmit_now(self, now: float) -> None:
        """Send the outstanding request again at once (the path changed under it)."""
        if self.outstanding is not None and not self.outstanding.request.exhausted:
            self.transmit(self.outstanding.request, now)

    def retransmit_due(self, now: float) -> Optional[Outstanding]:
        """Retransmit the outstanding request if its timer ran out; return it if it is
        exhausted (the caller gives up on it), else None."""
        outstanding = self.outstanding
        if outstanding and now >= outstanding.request.deadline:
            if outstanding.request.exhausted:
                self.outstanding = None
                return outstanding
            self.transmit(outstanding.request, now)
        return None

    # ------------------------------------------------------------------ our responses

    def send_response(self, ike: IkeSaContext, request: Header, payloads: list) -> None:
        header = Header(ike.spi_i, ike.spi_r, 0, request.exchange, ike.flags(response=True),
                        request.message_id)
        datagrams = self.seal(ike, header, payloads)
        ike.last_response_id = request.message_id
        ike.last_response = datagrams
        ike.next_peer_request_id = request.message_id + 1
        for datagram in datagrams:
            self._outbox.append((datagram, self.remote))

    def resend_cached(self, ike: IkeSaContext) -> None:
        for datagram in ike.last_response:
            self._outbox.append((datagram, self.remote))

    # ------------------------------------------------------------------ queued work

    def queue(self, work: Callable[[float], None]) -> None:
        self._queue.append(work)

    def queue_first(self, work: Callable[[float], None]) -> None:
        self._queue.appendleft(work)

    def clear_queue(self) -> None:
        self._queue.clear()

    @property
    def has_queued_work(self) -> bool:
        return bool(self._queue)

    def pump(self, now: float) -> None:
        """Start queued work while no request is outstanding (window size 1)."""
        while self.outstanding is None and self._queue and not self._stopped:
            self._queue.popleft()(now)

    def stop(self) -> None:
        """The IKE_SA is gone: nothing more is sent or retransmitted."""
        self._stopped = True
        self.outstanding = None
        self._queue.clear()
