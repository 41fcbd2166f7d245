"""IkeSession: the IKEv2 initiator, sans-I/O (RFC 7296 and extensions).

Used like aioquic's QuicConnection: feed it datagrams and time, take datagrams, a timer and
events out. It never touches sockets or clocks; `now` is a float the caller passes in.
It must be epoch seconds (time.time()) because gateway certificates are checked against it.

    session = IkeSession(settings, now)
    session.connect(now)
    for data, addr in session.datagrams_to_send(now): sock.sendto(data, addr)
    ... session.receive_datagram(data, addr, now) / session.handle_timer(now)
    while (event := session.next_event()) is not None: ...

Every session ends with exactly one IkeSaDeleted event (possibly preceded by a more specific
AuthenticationFailed, ProposalMismatch, Redirected or DeadPeerDetected).

Where state changes: the IKE_SA's life cycle is the transition table `TRANSITIONS` applied
by `_transition()`; nothing else assigns `self.state`. CHILD_SA states live in child_sa.py.
Message IDs use a window of one (§2.3): at most one request of ours is outstanding; more
work waits in `_queue`.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable, Optional

from .child_sa import ChildSa, ChildState
from .constants import ExchangeType, NotifyType
from .establishment import Establishment
from .events import (ChildSaDeleted, DeadPeerDetected, Event, IkeSaDeleted,
                     ReauthenticationRequested)
from .ike_sa import (NONCE_SIZE, TRANSITIONS, IkeSaContext, Input, Outstanding, ProtocolViolation,
                     RekeyExchange, Reply, State, describe_payloads)
from .informational import Informational
from .intermediate import IntermediateAuthChain
from .mobike import Mobike
from .payloads import (Encrypted, EncryptedFragment, Header, Message, Notify, ParseError,
                       decode_payloads)
from .rekeying import Rekeying
from .retransmission import PendingRequest
from .settings import Settings
from .unauthenticated import DropLog, InitRefusal
from .header_check import check_header
from . import session_crypto as crypto

log = logging.getLogger(__name__)

MIN_AUTH_LIFETIME = 10  # seconds: a smaller AUTH_LIFETIME (RFC 4478) is raised to this
NON_ESP_MARKER = b"\x00\x00\x00\x00"  # RFC 3948 §2.2, in front of IKE on port 4500


# --------------------------------------------------------------------------- the session

class IkeSession(Establishment, Rekeying, Informational):
    """One IKE_SA (and its CHILD_SAs) towards one gateway, from the initiator's side.

    This module holds the public API, the state machine, message plumbing (sealing,
    retransmission, dispatch of what arrives) and timers; the exchanges themselves are in
    establishment.py, rekeying.py and informational.py."""

    # Tests set this to see internal errors instead of having the datagram dropped.
    raise_internal_errors = False

    def __init__(self, settings: Settings, now: float) -> None:
        if settings.auth.method not in ("psk", "pubkey", "eap"):
            raise ValueError(f"unknown authentication method {settings.auth.method!r} "
                             "(psk, pubkey or eap)")
        if settings.fragment_size < 576:  # every IPv4 host accepts 576-byte datagrams
            raise ValueError(f"fragment_size {settings.fragment_size} is below 576 bytes")
        self.settings = settings
        self.state = State.INITIAL
        self._random = settings.random_bytes
        self._events: deque[Event] = deque()
        self._outbox: list[tuple[bytes, tuple[str, int]]] = []
        self._queue: deque[Callable[[float], None]] = deque()
        self._outstanding: Optional[Outstanding] = None
        self._remote = (settings.remote_address, settings.remote_port)
        self._nat_t = False
        self._nat_detected = False
        self._ike = IkeSaContext(spi_i=self._new_ike_spi(), spi_r=bytes(8),
                                 we_are_initiator=True)
        self._old_ikes: list[IkeSaContext] = []  # rekeyed IKE_SAs until their DELETE is done
        self._offered_ike = crypto.parse_ike(settings.ike_proposals)
        self._offered_esp = crypto.parse_esp(settings.esp_proposals)
        self._offered_ike_text = tuple(map(str, self._offered_ike))
        self._ke_group = crypto.ike_ke_groups(self._offered_ike)[0]
        self._ke = None
        self._nonce_i = b""
        self._nonce_r = b""
        self._cookie = b""
        self._cookie_retries = 0
        self._invalid_ke_retries = 0
        self._init_request = b""
        self._init_response = b""
        self._peer_hash_algorithms: tuple = ()
        self._additional_groups: list[int] = []
        self._intauth = IntermediateAuthChain()
        self._auth_message_id = 1
        self._idi = None
        self._gateway_authenticated = False
        self._eap = None
        self._msk = b""
        self._eap_done = False
        self._peer_multiple_auth = False
        self._peer_identity = ""
        self._pending_redirect: Optional[str] = None
        self._first_child_spi = b""
        self._children: dict[bytes, ChildSa] = {}  # keyed by our inbound SPI
        self._next_child_id = 1
        self._rekeys: dict[int, RekeyExchange] = {}  # child_id -> our CHILD rekey
        self._peer_rekeys: dict[int, RekeyExchange] = {}  # child_id -> the gateway's
        self._ike_rekey: Optional[RekeyExchange] = None
        self._peer_ike_rekey: Optional[RekeyExchange] = None
        self._ike_rekey_at: Optional[float] = None
        # RFC 4478 / §2.8.3: when to report ReauthenticationRequested, and its deadline
        self._reauth_at: Optional[float] = None
        self._reauth_deadline = 0.0
        self._reauth_by_gateway = False
        self._last_received = now
        self._finished = False
        self._deleted_by_gateway = False
        self._close_reason = ""
        self._peer_idr = None
        self._init_refusal: Optional[InitRefusal] = None  # §2.21.1 hint (unauthenticated.py)
        self._drop_log = DropLog(log)
        self._mobike = Mobike(self)  # RFC 4555 (ike/mobike.py)

    # ------------------------------------------------------------------ public API

    def connect(self, now: float) -> None:
        self._transition(Input.CONNECT)
        self._ke = crypto.make_ke(self._ke_group)
        self._nonce_i = self._random(NONCE_SIZE)
        self._send_ike_sa_init(now)

    def ike_sa_deadlines(self) -> tuple[Optional[float], Optional[float]]:
        """(when we rekey this IKE_SA, when we report that it needs reauthentication), on
        the clock of `now`; None when nothing is scheduled (e.g. a rekey is under way)."""
        return self._ike_rekey_at, self._reauth_at

    def receive_datagram(self, data: bytes, addr: tuple, now: float) -> None:
        """Process one datagram. Never raises: bad input is logged and dropped."""
        if self.state in (State.INITIAL, State.CLOSED):
            return
        try:
            self._receive(bytes(data), tuple(addr[:2]), now)
        except (ParseError, ProtocolViolation, *crypto.CRYPTO_ERRORS) as exc:
            self._drop_log.log(now, logging.INFO, "dropped a datagram from %s: %s", addr, exc)
        except Exception:
            if self.raise_internal_errors:
                raise
            self._drop_log.log(now, logging.ERROR, "dropped a datagram from %s after an "
                               "internal error", addr, exc_info=True)
        self._pump(now)

    def owns(self, data: bytes) -> bool:
        """Whether a datagram belongs to one of this session's IKE_SAs (by its SPIs), for an
        owner running several sessions on one socket (make-before-break reauthentication)."""
        if data[:4] == NON_ESP_MARKER:
            data = data[4:]
        try:
            header = Header.decode(bytes(data[:28]))
        except ParseError:
            return False
        return self._context_for(header) is not None

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> Optional[float]:
        if self.state in (State.INITIAL, State.CLOSED):
            return None
        deadlines = []
        if self._outstanding:
            deadlines.append(self._outstanding.request.deadline)
        elif self._queue:
            # work queued by rekey_child()/rekey_ike()/close(), which get no `now`: due at once
            return 0.0
        if self.state is State.ESTABLISHED:
            if self._ike_rekey_at is not None and self._ike_rekey is None:
                deadlines.append(self._ike_rekey_at)
            if self._reauth_at is not None:
                deadlines.append(self._reauth_at)
            for child in self._children.values():
                if child.state is ChildState.INSTALLED:
                    deadlines.append(child.rekey_at)
                deadlines.append(child.expire_at)
            if self.settings.dpd_delay > 0 and not self._outstanding and not self._queue:
                deadlines.append(self._last_received + self.settings.dpd_delay)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self.state in (State.INITIAL, State.CLOSED):
            return
        outstanding = self._outstanding
        refusal = self._init_refusal
        if (refusal is not None and outstanding and self.state is State.INIT_SENT
                and now >= max(outstanding.request.deadline, refusal.not_before)):
            # no valid answer came while we waited: act on the unauthenticated hint (§2.21.1)
            self._finish(refusal.reason, *refusal.events)
        elif outstanding and now >= outstanding.request.deadline:
            if outstanding.request.exhausted:
                self._give_up(outstanding, now)
            else:
                self._transmit(outstanding.request, now)
        if self.state is State.ESTABLISHED:
            self._run_lifetime_timers(now)
        self._pump(now)

    def next_event(self) -> Optional[Event]:
        return self._events.popleft() if self._events else None

    def rekey_child(self, child_id: int) -> None:
        """Start a CHILD_SA rekey (e.g. the data plane's byte or packet limits are near)."""
        child = self._installed_child(child_id)
        if child is not None and self.state is State.ESTABLISHED:
            child.state = ChildState.REKEYING
            self._queue.append(lambda now, c=child: self._send_child_rekey(c, now))

    def rekey_ike(self) -> None:
        if self.state is State.ESTABLISHED and self._ike_rekey is None:
            self._ike_rekey = RekeyExchange("ike", self._ike)
            self._queue.append(self._send_ike_rekey)

    @property
    def mobike(self) -> bool:
        """The gateway supports MOBIKE: update_addresses() can move this IKE_SA."""
        return self._mobike.peer_supports

    def update_addresses(self, local_address: str, now: float) -> None:
        """Our address or path changed: MOBIKE UPDATE_SA_ADDRESSES (ike/mobike.py); the
        answer comes as AddressesUpdated."""
        if self.state is State.ESTABLISHED and self._mobike.peer_supports:
            self._mobike.update_addresses(local_address, now)
            self._pump(now)

    def check_liveness(self, now: float) -> None:
        """One liveness check with a short retransmission budget (after a resume); no
        answer ends the session with DeadPeerDetected."""
        if self.state is State.ESTABLISHED:
            self._mobike.check_liveness(now)
            self._pump(now)

    def close(self) -> None:
        """Delete the IKE_SA (and with it every CHILD_SA) politely."""
        if self.state is State.ESTABLISHED:
            self._transition(Input.CLOSE)
            self._queue.clear()
            self._queue.append(self._send_ike_delete)
        elif self.state is not State.CLOSED and self.state is not State.DELETING:
            self._finish("closed before the IKE_SA was established")

    # ------------------------------------------------------------------ state machine

    def _transition(self, event: Input) -> None:
        new_state = TRANSITIONS.get((self.state, event))
        if new_state is None:
            raise ProtocolViolation(f"{event.value} is not allowed in state {self.state.value}")
        log.debug("IKE_SA %s: %s -> %s", self._ike.spi_i.hex(), self.state.value, new_state.value)
        self.state = new_state

    def _finish(self, reason: str, *events: Event) -> None:
        """Terminal: report why, then IkeSaDeleted; CHILD_SAs go with the IKE_SA."""
        if self._finished:
            return
        self._finished = True
        self._events.extend(events)
        for child in list(self._children.values()):
            self._events.append(ChildSaDeleted(child.child_id, child.spi_in, child.spi_out,
                                               reason))
        self._children.clear()
        self._events.append(IkeSaDeleted(reason))
        self._outstanding = None
        self._queue.clear()
        self._transition(Input.FINISHED)

    # ------------------------------------------------------------------ sending

    def _new_ike_spi(self) -> bytes:
        spi = self._random(8)
        return spi if any(spi) else b"\x00" * 7 + b"\x01"

    def _new_child_spi(self) -> bytes:
        while True:
            spi = self._random(4)
            # SPIs 1..255 are reserved by IANA (RFC 4303 §2.1)
            if int.from_bytes(spi, "big") > 255 and spi not in self._children:
                return spi

    def _jitter(self, span: float) -> float:
        if span <= 0:
            return 0.0
        return span * int.from_bytes(self._random(4), "big") / 2 ** 32

    def _seal(self, ike: IkeSaContext, header: Header, payloads: list) -> list[bytes]:
        """SK-protect a message; RFC 7383 fragments if it would exceed fragment_size."""
        whole = ike.protector.seal(header, payloads)
        # fragment_size is a whole IP datagram (strongSwan's charon.fragment_size)
        ip_version = 6 if ":" in self._remote[0] else 4
        overhead = (40 if ip_version == 6 else 20) + 8 + (4 if self._nat_t else 0)
        if ike.fragmentation and len(whole) + overhead > self.settings.fragment_size:
            return ike.protector.seal_fragments(header, payloads, self.settings.fragment_size,
                                                ip_version=ip_version, non_esp_marker=self._nat_t)
        return [whole]

    def _send_request(self, ike: IkeSaContext, exchange: int, payloads: list,
                      on_response, now: float, on_give_up=None, policy=None) -> None:
        header = Header(ike.spi_i, ike.spi_r, 0, exchange, ike.flags(response=False),
                        ike.next_request_id)
        datagrams = self._seal(ike, header, payloads)
        request = PendingRequest(ike.next_request_id, exchange, datagrams,
                                 policy or self.settings.retransmission)
        ike.next_request_id += 1
        self._outstanding = Outstanding(request, ike, on_response, on_give_up, payloads)
        self._transmit(request, now)

    def _transmit(self, request: PendingRequest, now: float) -> None:
        for datagram in request.datagrams:
            self._outbox.append((datagram, self._remote))
        request.sent(now)

    def _send_response(self, ike: IkeSaContext, request: Header, payloads: list) -> None:
        header = Header(ike.spi_i, ike.spi_r, 0, request.exchange, ike.flags(response=True),
                        request.message_id)
        datagrams = self._seal(ike, header, payloads)
        ike.last_response_id = request.message_id
        ike.last_response = datagrams
        ike.next_peer_request_id = request.message_id + 1
        for datagram in datagrams:
            self._outbox.append((datagram, self._remote))

    def _queue_request(self, send: Callable[[float], None]) -> None:
        self._queue.append(send)

    def _retransmit_now(self, now: float) -> None:
        """Send the outstanding request again at once (the path changed under it)."""
        if self._outstanding is not None and not self._outstanding.request.exhausted:
            self._transmit(self._outstanding.request, now)

    def _pump(self, now: float) -> None:
        """Start queued work when no request is outstanding (window size 1)."""
        while self._outstanding is None and self._queue and not self._finished:
            self._queue.popleft()(now)

    def _give_up(self, outstanding: Outstanding, now: float) -> None:
        self._outstanding = None
        if self._init_refusal is not None and self.state is State.INIT_SENT:
            return self._finish(self._init_refusal.reason, *self._init_refusal.events)
        if outstanding.on_give_up is not None:
            outstanding.on_give_up(now)
            return
        tries = outstanding.request.sends
        exchange = ExchangeType(outstanding.request.exchange).name
        reason = (f"gateway unreachable: no answer to {exchange} after {tries} transmissions")
        if self.state is State.ESTABLISHED:
            self._finish(reason, DeadPeerDetected(reason))
        else:
            self._finish(reason)

    # ------------------------------------------------------------------ receiving

    def _receive(self, data: bytes, addr: tuple, now: float) -> None:
        if data[:4] == NON_ESP_MARKER:
            data = data[4:]  # the engine may hand us the marker; a real SPIi is never zero
        # The header first (SPIs, role, length, message ID): decode the payload chain only of
        # a datagram that can belong to us (spoofed floods cost a header each, issue 13 §2).
        header = Header.decode(data[:28])
        ike = self._context_for(header)
        if ike is None:
            raise ProtocolViolation(f"unknown IKE SPIs {header.spi_i.hex()}/{header.spi_r.hex()}")
        if header.from_initiator == ike.we_are_initiator:
            raise ProtocolViolation("message claims to come from our own role")
        check_header(header, len(data), ike, self._outstanding)
        message = Message.decode(data)
        if header.is_response:
            self._receive_response(ike, message, data, addr, now)
        else:
            self._receive_request(ike, message, data, addr, now)

    def _context_for(self, header: Header) -> Optional[IkeSaContext]:
        for ike in [self._ike, *self._old_ikes, *self._pending_new_ikes()]:
            if header.spi_i != ike.spi_i:
                continue
            if header.spi_r == ike.spi_r:
                return ike
            # the IKE_SA_INIT response is the first time we see the responder's SPI
            if (ike is self._ike and self.state is State.INIT_SENT and header.is_response
                    and header.exchange == ExchangeType.IKE_SA_INIT):
                return ike
        return None

    def _pending_new_ikes(self) -> list:
        result = []
        for exchange in (self._ike_rekey, self._peer_ike_rekey):
            if exchange is not None and isinstance(exchange.result, IkeSaContext):
                result.append(exchange.result)
        return result

    def _open_chain(self, ike: IkeSaContext, message: Message, data: bytes):
        """Authenticate and decrypt SK, or collect SKF fragments (RFC 7383 §2.6).
        Returns (first inner payload type, inner bytes), or None until all fragments are in."""
        if ike.protector is None:
            raise ProtocolViolation("encrypted message before keys exist")
        if message.get(EncryptedFragment) is not None:
            if ike.reassembler is None:
                ike.reassembler = crypto.make_reassembler(ike.protector)
            return ike.reassembler.add_chain(data, message)
        if message.get(Encrypted) is None:
            raise ProtocolViolation("message after IKE_SA_INIT without an SK payload")
        return ike.protector.open_chain(data, message)

    def _set_keys(self, ike: IkeSaContext, keys) -> None:
        ike.keys = keys
        ike.protector = crypto.make_protector(ike.proposal, keys, ike.we_are_initiator,
                                              self._random)
        ike.reassembler = None  # fragments under the old keys are useless now

    def _receive_response(self, ike, message, data, addr, now) -> None:
        out = self._outstanding
        header = message.header
        if (out is None or out.ike is not ike or header.message_id != out.request.message_id
                or header.exchange != out.request.exchange):
            raise ProtocolViolation(f"unexpected response, message ID {header.message_id}")
        inner = None
        if header.exchange == ExchangeType.IKE_SA_INIT:
            payloads = message.payloads
        else:
            inner = self._open_chain(ike, message, data)
            if inner is None:
                return  # more fragments to come
            payloads = decode_payloads(*inner)  # ParseError: dropped, the request is resent
        self._outstanding = None
        self._last_received = now
        try:
            out.on_response(Reply(payloads, message, data, addr, out.payloads, inner), now)
        except (ProtocolViolation, ParseError, *crypto.CRYPTO_ERRORS):
            # Dropped as if never received: keep waiting (and retransmitting) for a good one
            if self._outstanding is None and not self._finished:
                self._outstanding = out
            raise

    def _receive_request(self, ike, message, data, addr, now) -> None:
        header = message.header
        if header.message_id == ike.last_response_id:
            # A retransmitted request: answer from the cache after checking it is genuine
            # (§2.1). For fragments, RFC 7383 §2.6.1 says answer on fragment number 1 only.
            fragment = message.get(EncryptedFragment)
            if fragment is not None:
                if fragment.number == 1:
                    ike.protector.open_fragment(data, fragment)
                    self._resend_cached(ike)
                return
            if message.get(Encrypted) is None:  # plaintext cannot be ours: drop it quietly
                raise ProtocolViolation(f"unprotected request with message ID {header.message_id}")
            ike.protector.open_chain(data, message)
            self._resend_cached(ike)
            return
        if header.message_id != ike.next_peer_request_id:
            raise ProtocolViolation(f"request with message ID {header.message_id}, expected "
                                    f"{ike.next_peer_request_id}")
        if self.state not in (State.ESTABLISHED, State.DELETING):
            # the responder may not start exchanges before IKE_AUTH completes (§1.2)
            raise ProtocolViolation("request before the IKE_SA is established")
        inner = self._open_chain(ike, message, data)  # IntegrityError: dropped silently
        if inner is None:
            return
        try:
            payloads = decode_payloads(*inner)
        except ParseError as exc:
            # Authenticated but malformed (§2.21.2/.3): tell the gateway, keep the IKE_SA.
            notify = exc.notify or NotifyType.INVALID_SYNTAX
            log.info("answering a malformed request with %s: %s", notify.name, exc)
            self._send_response(ike, header, [Notify(notify, data=exc.notify_data or b"")])
            return
        self._last_received = now
        if header.exchange == ExchangeType.INFORMATIONAL:
            response = self._answer_informational(ike, payloads, addr, now)
        elif header.exchange == ExchangeType.CREATE_CHILD_SA:
            response = self._answer_create_child_sa(ike, payloads, now)
        else:
            raise ProtocolViolation(f"gateway sent a {header.exchange} request")
        log.debug("gateway %s request %d: %s -> %s", ExchangeType(header.exchange).name,
                  header.message_id, describe_payloads(payloads), describe_payloads(response))
        if response is not None:
            self._send_response(ike, header, response)
        if self._deleted_by_gateway:
            self._finish("deleted by the gateway")

    def _resend_cached(self, ike: IkeSaContext) -> None:
        for datagram in ike.last_response:
            self._outbox.append((datagram, self._remote))

    # ------------------------------------------------------------------ lifetimes

    def _run_lifetime_timers(self, now: float) -> None:
        for child in list(self._children.values()):
            if now >= child.expire_at:
                # Hard lifetime reached without a successful rekey: it must not be used
                self._remove_child(child, "hard lifetime expired")
                if child.state is not ChildState.DELETING:
                    self._queue.append(lambda t, c=child: self._send_delete_spi(c, t))
            elif child.state is ChildState.INSTALLED and now >= child.rekey_at:
                self.rekey_child(child.child_id)
        if (self._ike_rekey_at is not None and now >= self._ike_rekey_at
                and self._ike_rekey is None):
            self._ike_rekey_at = None
            self.rekey_ike()
        if self._reauth_at is not None and now >= self._reauth_at:
            self._reauth_at = None
            self._events.append(ReauthenticationRequested(self._reauth_deadline,
                                                          self._reauth_by_gateway))
        if (self.settings.dpd_delay > 0 and self._outstanding is None and not self._queue
                and now >= self._last_received + self.settings.dpd_delay):
            self._queue.append(self._send_dpd)

    # ------------------------------------------------------------------ reauthentication

    def _schedule_own_reauth(self, now: float) -> None:
        """swanctl's reauth_time: reauthenticate periodically; off (0) by default."""
        s = self.settings
        if s.reauth_time <= 0:
            return
        spread = s.reauth_time / 10 if s.reauth_rand_time is None else s.reauth_rand_time
        # like swanctl's over_time (default 10 % of reauth_time): the IKE_SA is kept that much
        # longer, time for the new one to come up
        self._plan_reauth(now + s.reauth_time - self._jitter(spread),
                          now + s.reauth_time + s.reauth_time / 10, now, by_gateway=False)

    def _on_auth_lifetime(self, notify, now: float) -> None:
        """RFC 4478 §3: AUTH_LIFETIME (in IKE_AUTH or INFORMATIONAL) holds the seconds left
        until the gateway deletes this IKE_SA unless we reauthenticate. Start 10 % (strongSwan's
        default margin) plus up to 10 % random jitter (RFC 7296 §2.8: fewer collisions, no
        synchronised storms of reauthentications) before that."""
        if len(notify.data) != 4:
            log.info("ignored an AUTH_LIFETIME notify of %d octets (4 expected)", len(notify.data))
            return
        lifetime = int.from_bytes(notify.data, "big")
        if lifetime < MIN_AUTH_LIFETIME:
            # 0 would have us reauthenticate back to back, as fast as the handshakes go: RFC
            # 4478 §3 leaves the value to the gateway, we take no less than MIN_AUTH_LIFETIME:
            # a hostile or broken gateway gets at most one handshake every ~9 s out of us.
            log.info("AUTH_LIFETIME of %d s raised to %d s", lifetime, MIN_AUTH_LIFETIME)
            lifetime = MIN_AUTH_LIFETIME
        margin = lifetime / 10
        self._plan_reauth(now + lifetime - margin - self._jitter(margin), now + lifetime, now,
                          by_gateway=True)

    def _plan_reauth(self, at: float, deadline: float, now: float, by_gateway: bool) -> None:
        # The gateway's word replaces an earlier one of its own (RFC 4478 §3); between ours
        # and the gateway's, the earlier deadline wins.
        current = self._reauth_at is not None
        if current and not (by_gateway and self._reauth_by_gateway) \
                and self._reauth_deadline <= deadline:
            return
        self._reauth_at, self._reauth_deadline, self._reauth_by_gateway = at, deadline, by_gateway
        log.info("IKE_SA %s: reauthentication (%s) in %.0f s, deadline in %.0f s",
                 self._ike.spi_i.hex(), "AUTH_LIFETIME" if by_gateway else "reauth_time",
                 at - now, deadline - now)

