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

Where state changes: the IKE_SA's life cycle is the transition table `_TRANSITIONS` applied
by `_transition()`; nothing else assigns `self.state`. CHILD_SA states live in child_sa.py.
Message IDs use a window of one (§2.3): at most one request of ours is outstanding; more
work waits in `_queue`.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import logging
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import config_payload, traffic_selectors
from .child_sa import ChildSa, ChildState
from .constants import (AuthMethod, CertEncoding, ExchangeType, HashAlgorithm, NotifyType,
                        ProtocolId)
from .events import (AuthenticationFailed, ChildSaDeleted, ChildSaRekeyed, DeadPeerDetected,
                     Event, IkeSaDeleted, IkeSaEstablished, IkeSaRekeyed, PeerAddressesAdded,
                     ProposalMismatch, Redirected)
from .intermediate import IntermediateAuthChain, intermediate_auth_input
from .nat_detection import nat_detection_hash
from .payloads import (AUTH, CERT, CERTREQ, CP, EAP, KE, SA, FLAG_INITIATOR, FLAG_RESPONSE,
                       Delete, Encrypted, EncryptedFragment, Header, IDi, IDr, Message, Nonce,
                       Notify, ParseError, TSi, TSr, decode_payloads, encode_payloads)
from .redirect import RedirectError, decode_redirect
from .retransmission import PendingRequest
from .settings import Settings
from . import session_crypto as crypto

log = logging.getLogger(__name__)

NON_ESP_MARKER = b"\x00\x00\x00\x00"  # RFC 3948 §2.2, in front of IKE on port 4500
NAT_T_PORT = 4500
NONCE_SIZE = 32
MAX_COOKIE_RETRIES = 3  # strongSwan: MAX_COOKIES
MAX_INVALID_KE_RETRIES = 3
TEMPORARY_FAILURE_RETRY = 10.0  # seconds before retrying a refused rekey (§2.25)
# strongSwan sends SIGNATURE_HASH_ALGORITHMS 2,3,4,5 (SHA-256/384/512, Identity)
OUR_HASH_ALGORITHMS = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384,
                       HashAlgorithm.SHA2_512, HashAlgorithm.IDENTITY)


class ProtocolViolation(Exception):
    """A message that is well-formed but wrong in context; it is dropped."""


# --------------------------------------------------------------------------- IKE_SA states

class State(enum.Enum):
    INITIAL = "initial"
    INIT_SENT = "IKE_SA_INIT sent"
    INTERMEDIATE_SENT = "IKE_INTERMEDIATE sent"
    AUTH_SENT = "IKE_AUTH sent"
    ESTABLISHED = "established"
    DELETING = "deleting"
    CLOSED = "closed"


class Input(enum.Enum):
    CONNECT = "connect"
    RETRY_INIT = "retry IKE_SA_INIT (COOKIE / INVALID_KE_PAYLOAD)"
    SEND_INTERMEDIATE = "send IKE_INTERMEDIATE"
    SEND_AUTH = "send IKE_AUTH"
    CONTINUE_AUTH = "another IKE_AUTH round (EAP)"
    AUTHENTICATED = "IKE_AUTH completed"
    CLOSE = "close requested"
    FINISHED = "IKE_SA gone"


_TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.INITIAL, Input.CONNECT): State.INIT_SENT,
    (State.INIT_SENT, Input.RETRY_INIT): State.INIT_SENT,
    (State.INIT_SENT, Input.SEND_INTERMEDIATE): State.INTERMEDIATE_SENT,
    (State.INTERMEDIATE_SENT, Input.SEND_INTERMEDIATE): State.INTERMEDIATE_SENT,
    (State.INIT_SENT, Input.SEND_AUTH): State.AUTH_SENT,
    (State.INTERMEDIATE_SENT, Input.SEND_AUTH): State.AUTH_SENT,
    (State.AUTH_SENT, Input.CONTINUE_AUTH): State.AUTH_SENT,
    (State.AUTH_SENT, Input.AUTHENTICATED): State.ESTABLISHED,
    (State.ESTABLISHED, Input.CLOSE): State.DELETING,
    **{(s, Input.FINISHED): State.CLOSED for s in State if s is not State.CLOSED},
}


# --------------------------------------------------------------------------- one IKE_SA's keys

@dataclass
class IkeSaContext:
    """Keys and message-ID state of one IKE_SA. A rekey creates a new one (§2.18)."""

    spi_i: bytes
    spi_r: bytes
    we_are_initiator: bool  # the initiator of *this* IKE_SA (a gateway rekey swaps roles)
    proposal: Any = None
    keys: Any = field(default=None, repr=False)
    protector: Any = field(default=None, repr=False)
    prf: Any = field(default=None, repr=False)
    next_request_id: int = 0
    next_peer_request_id: int = 0
    last_response_id: int = -1
    last_response: list = field(default_factory=list, repr=False)
    reassembler: Any = field(default=None, repr=False)
    fragmentation: bool = False

    def flags(self, response: bool) -> int:
        return (FLAG_INITIATOR if self.we_are_initiator else 0) | (FLAG_RESPONSE if response else 0)


@dataclass
class _Reply:
    """A response to one of our requests, decrypted, with what it answers."""

    payloads: list = field(repr=False)
    message: Message = field(repr=False)
    raw: bytes = field(repr=False)  # the datagram as received (AUTH signs IKE_SA_INIT's)
    addr: tuple = ()
    request_payloads: list = field(default_factory=list, repr=False)
    inner: Optional[tuple] = field(default=None, repr=False)  # (first type, plaintext chain)


@dataclass
class _Outstanding:
    """Our one in-flight request and what to do with its response."""

    request: PendingRequest
    ike: IkeSaContext
    on_response: Callable[[_Reply, float], None]
    on_give_up: Optional[Callable[[float], None]] = None
    payloads: list = field(default_factory=list, repr=False)


@dataclass
class _RekeyExchange:
    """A CREATE_CHILD_SA we are running, kept for §2.8 collision resolution."""

    kind: str  # "child" or "ike"
    old: Any  # the ChildSa or IkeSaContext being rekeyed
    nonce_i: bytes = b""
    nonce_r: bytes = b""
    result: Any = None  # new ChildSa / IkeSaContext once complete


def _lowest_nonce(exchange: _RekeyExchange) -> bytes:
    return min(exchange.nonce_i, exchange.nonce_r)


# --------------------------------------------------------------------------- the session

class IkeSession:
    """One IKE_SA (and its CHILD_SAs) towards one gateway, from the initiator's side."""

    # Tests set this to see internal errors instead of having the datagram dropped.
    raise_internal_errors = False

    def __init__(self, settings: Settings, now: float) -> None:
        self.settings = settings
        self.state = State.INITIAL
        self._random = settings.random_bytes
        self._events: deque[Event] = deque()
        self._outbox: list[tuple[bytes, tuple[str, int]]] = []
        self._queue: deque[Callable[[float], None]] = deque()
        self._outstanding: Optional[_Outstanding] = None
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
        self._peer_identity = ""
        self._pending_redirect: Optional[str] = None
        self._first_child_spi = b""
        self._children: dict[bytes, ChildSa] = {}  # keyed by our inbound SPI
        self._next_child_id = 1
        self._rekeys: dict[int, _RekeyExchange] = {}  # child_id -> our CHILD rekey
        self._peer_rekeys: dict[int, _RekeyExchange] = {}  # child_id -> the gateway's
        self._ike_rekey: Optional[_RekeyExchange] = None
        self._peer_ike_rekey: Optional[_RekeyExchange] = None
        self._ike_rekey_at: Optional[float] = None
        self._last_received = now
        self._finished = False
        self._deleted_by_gateway = False
        self._close_reason = ""
        self._peer_idr = None

    # ------------------------------------------------------------------ public API

    def connect(self, now: float) -> None:
        self._transition(Input.CONNECT)
        self._ke = crypto.make_ke(self._ke_group)
        self._nonce_i = self._random(NONCE_SIZE)
        self._send_ike_sa_init(now)

    def receive_datagram(self, data: bytes, addr: tuple, now: float) -> None:
        """Process one datagram. Never raises: bad input is logged and dropped."""
        if self.state in (State.INITIAL, State.CLOSED):
            return
        try:
            self._receive(bytes(data), tuple(addr[:2]), now)
        except (ParseError, ProtocolViolation, *crypto.CRYPTO_ERRORS) as exc:
            log.info("dropped a datagram from %s: %s", addr, exc)
        except Exception:
            if self.raise_internal_errors:
                raise
            log.exception("dropped a datagram from %s after an internal error", addr)
        self._pump(now)

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
        if outstanding and now >= outstanding.request.deadline:
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
            self._ike_rekey = _RekeyExchange("ike", self._ike)
            self._queue.append(self._send_ike_rekey)

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
        new_state = _TRANSITIONS.get((self.state, event))
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
                      on_response, now: float, on_give_up=None) -> None:
        header = Header(ike.spi_i, ike.spi_r, 0, exchange, ike.flags(response=False),
                        ike.next_request_id)
        datagrams = self._seal(ike, header, payloads)
        request = PendingRequest(ike.next_request_id, exchange, datagrams,
                                 self.settings.retransmission)
        ike.next_request_id += 1
        self._outstanding = _Outstanding(request, ike, on_response, on_give_up, payloads)
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

    def _pump(self, now: float) -> None:
        """Start queued work when no request is outstanding (window size 1)."""
        while self._outstanding is None and self._queue and not self._finished:
            self._queue.popleft()(now)

    def _give_up(self, outstanding: _Outstanding, now: float) -> None:
        self._outstanding = None
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
        message = Message.decode(data)
        header = message.header
        ike = self._context_for(header)
        if ike is None:
            raise ProtocolViolation(f"unknown IKE SPIs {header.spi_i.hex()}/{header.spi_r.hex()}")
        if header.from_initiator == ike.we_are_initiator:
            raise ProtocolViolation("message claims to come from our own role")
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
            out.on_response(_Reply(payloads, message, data, addr, out.payloads, inner), now)
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
                  header.message_id, _describe_payloads(payloads), _describe_payloads(response))
        if response is not None:
            self._send_response(ike, header, response)
        if self._deleted_by_gateway:
            self._finish("deleted by the gateway")

    def _resend_cached(self, ike: IkeSaContext) -> None:
        for datagram in ike.last_response:
            self._outbox.append((datagram, self._remote))

    # ------------------------------------------------------------------ IKE_SA_INIT (§1.2)

    def _send_ike_sa_init(self, now: float) -> None:
        s = self.settings
        ike = self._ike
        payloads: list = []
        if self._cookie:
            payloads.append(Notify(NotifyType.COOKIE, data=self._cookie))  # must be first (§2.6)
        payloads += [
            SA(crypto.ike_proposal_payloads(self._offered_ike)),
            KE(self._ke_group, self._ke.public_bytes()),
            Nonce(self._nonce_i),
        ]
        source_hash = nat_detection_hash(ike.spi_i, bytes(8), s.local_address, s.local_port)
        if s.force_encapsulation:
            # strongSwan's trick: a bogus source hash makes both sides see a NAT and float
            source_hash = self._random(len(source_hash))
        payloads += [
            Notify(NotifyType.NAT_DETECTION_SOURCE_IP, data=source_hash),
            Notify(NotifyType.NAT_DETECTION_DESTINATION_IP, data=nat_detection_hash(
                ike.spi_i, bytes(8), self._remote[0], self._remote[1])),
        ]
        if s.fragmentation:
            payloads.append(Notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
        payloads.append(Notify(NotifyType.SIGNATURE_HASH_ALGORITHMS,
                               data=b"".join(struct.pack("!H", h) for h in OUR_HASH_ALGORITHMS)))
        payloads.append(Notify(NotifyType.REDIRECT_SUPPORTED))
        if crypto.ike_offers_additional_ke(self._offered_ike):
            payloads.append(Notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED))
        ike.next_request_id = 0
        header = Header(ike.spi_i, bytes(8), 0, ExchangeType.IKE_SA_INIT,
                        ike.flags(response=False), 0)
        self._init_request = Message(header, payloads).encode()
        request = PendingRequest(0, ExchangeType.IKE_SA_INIT, [self._init_request],
                                 self.settings.retransmission)
        ike.next_request_id = 1
        self._outstanding = _Outstanding(request, ike, self._on_ike_sa_init_response)
        self._transmit(request, now)

    def _on_ike_sa_init_response(self, reply: _Reply, now: float) -> None:
        payloads, message = reply.payloads, reply.message
        notifies = [p for p in payloads if isinstance(p, Notify)]
        by_type = {int(n.type): n for n in notifies}
        if NotifyType.COOKIE in by_type:
            return self._retry_with_cookie(by_type[NotifyType.COOKIE], now)
        if NotifyType.INVALID_KE_PAYLOAD in by_type:
            return self._retry_with_group(by_type[NotifyType.INVALID_KE_PAYLOAD], now)
        if NotifyType.REDIRECT in by_type:
            return self._redirect_in_init(by_type[NotifyType.REDIRECT])
        if NotifyType.NO_PROPOSAL_CHOSEN in by_type:
            offered = self._offered_ike_text
            reason = "the gateway accepted none of our IKE proposals"
            return self._finish(reason, ProposalMismatch(offered, reason))
        errors = [n for n in notifies if int(n.type) < 16384]
        if errors:
            return self._finish(f"the gateway refused IKE_SA_INIT with {_notify_name(errors[0])}")
        sa, ke, nonce = (_first(payloads, SA), _first(payloads, KE), _first(payloads, Nonce))
        if sa is None or ke is None or nonce is None:
            raise ProtocolViolation("IKE_SA_INIT response lacks SA, KE or Nonce")
        header = message.header
        if not any(header.spi_r):
            raise ProtocolViolation("IKE_SA_INIT response with a zero responder SPI")
        try:
            chosen = crypto.choose_ike(self._offered_ike, sa)
        except crypto.ProposalError as exc:
            offered = self._offered_ike_text
            reason = f"the gateway chose an IKE proposal we did not offer: {exc}"
            return self._finish(reason, ProposalMismatch(offered, reason))
        if ke.group != self._ke_group or crypto.ike_chosen_group(chosen) != self._ke_group:
            return self._finish("the gateway answered with a different key exchange group")
        shared = self._ke.shared_secret(ke.data)  # KeyExchangeError -> dropped by caller
        ike = self._ike
        ike.spi_r = header.spi_r
        self._nonce_r = nonce.data
        self._init_response = reply.raw  # AUTH signs it exactly as received (§2.15)
        ike.proposal = chosen
        ike.prf = crypto.make_prf_for(chosen)
        self._set_keys(ike, crypto.derive_ike_keys(chosen, shared, self._nonce_i, self._nonce_r,
                                                   ike.spi_i, ike.spi_r))
        ike.fragmentation = (self.settings.fragmentation
                             and NotifyType.IKEV2_FRAGMENTATION_SUPPORTED in by_type)
        if NotifyType.SIGNATURE_HASH_ALGORITHMS in by_type:
            data = by_type[NotifyType.SIGNATURE_HASH_ALGORITHMS].data
            self._peer_hash_algorithms = tuple(
                struct.unpack("!H", data[i:i + 2])[0] for i in range(0, len(data) - 1, 2))
        self._detect_nat(by_type, reply.addr)
        self._additional_groups = crypto.ike_chosen_additional_groups(chosen)
        if self._additional_groups:
            self._send_intermediate(now)
        else:
            self._send_ike_auth(now)

    def _retry_with_cookie(self, cookie: Notify, now: float) -> None:
        self._cookie_retries += 1
        if self._cookie_retries > MAX_COOKIE_RETRIES or not cookie.data:
            return self._finish("the gateway keeps asking for a cookie")
        self._cookie = cookie.data
        self._transition(Input.RETRY_INIT)
        self._send_ike_sa_init(now)

    def _retry_with_group(self, notify: Notify, now: float) -> None:
        """INVALID_KE_PAYLOAD (§1.2, §3.4): retry with the gateway's group if we offered it."""
        group = int.from_bytes(notify.data[:2], "big") if len(notify.data) >= 2 else 0
        self._invalid_ke_retries += 1
        if group not in crypto.ike_ke_groups(self._offered_ike):
            reason = f"the gateway wants key exchange group {group}, which we do not offer"
            return self._finish(reason, ProposalMismatch(self._offered_ike_text, reason))
        if group == self._ke_group or self._invalid_ke_retries > MAX_INVALID_KE_RETRIES:
            reason = f"the gateway keeps refusing our key exchange (it asks for group {group})"
            return self._finish(reason, ProposalMismatch(self._offered_ike_text, reason))
        self._ke_group = group
        self._ke = crypto.make_ke(group)
        self._transition(Input.RETRY_INIT)
        self._send_ike_sa_init(now)

    def _redirect_in_init(self, notify: Notify) -> None:
        try:
            gateway, nonce = decode_redirect(notify.data)
        except RedirectError as exc:
            raise ProtocolViolation(str(exc)) from None
        if not hmac.compare_digest(nonce, self._nonce_i):  # RFC 5685 §4.3: must echo Ni
            raise ProtocolViolation("REDIRECT without our nonce")
        self._finish(f"redirected to {gateway}", Redirected(gateway))

    def _detect_nat(self, by_type: dict, addr: tuple) -> None:
        """§2.23: compare the gateway's NAT-D hashes with what we see; float to 4500."""
        s = self.settings
        ike = self._ike
        source = by_type.get(NotifyType.NAT_DETECTION_SOURCE_IP)
        destination = by_type.get(NotifyType.NAT_DETECTION_DESTINATION_IP)
        if source is not None and destination is not None:
            seen_remote = nat_detection_hash(ike.spi_i, ike.spi_r, addr[0], addr[1])
            seen_local = nat_detection_hash(ike.spi_i, ike.spi_r, s.local_address, s.local_port)
            remote_natted = not hmac.compare_digest(source.data, seen_remote)
            local_natted = not hmac.compare_digest(destination.data, seen_local)
            self._nat_detected = remote_natted or local_natted
        supports_nat_t = source is not None and destination is not None
        if self._nat_detected or (s.force_encapsulation and supports_nat_t):
            self._nat_t = True
            if self._remote[1] == 500:
                self._remote = (self._remote[0], NAT_T_PORT)

    # ------------------------------------------------------------------ IKE_INTERMEDIATE (RFC 9242)

    def _send_intermediate(self, now: float) -> None:
        self._transition(Input.SEND_INTERMEDIATE)
        group = self._additional_groups.pop(0)
        ke = crypto.make_ke(group)
        self._send_request(self._ike, ExchangeType.IKE_INTERMEDIATE, [KE(group, ke.public_bytes())],
                           lambda reply, now: self._on_intermediate_response(
                               group, ke, reply, now), now)

    def _on_intermediate_response(self, group, ke, reply: _Reply, now: float) -> None:
        ike = self._ike
        payloads, message = reply.payloads, reply.message
        answer = _first(payloads, KE)
        if answer is None or answer.group != group:
            errors = [p for p in payloads if isinstance(p, Notify) and int(p.type) < 16384]
            what = _notify_name(errors[0]) if errors else "no matching KE payload"
            return self._finish(f"the gateway refused the additional key exchange: {what}")
        shared = ke.shared_secret(answer.data)
        # IntAuth covers both messages under the keys that protected them (RFC 9242 §3.3)
        old_keys = ike.keys
        self._intauth.add(ike.prf, old_keys.sk_pi, old_keys.sk_pr,
                          self._intermediate_input(message.header,
                                                   encode_payloads(reply.request_payloads),
                                                   flags=ike.flags(response=False)),
                          self._intermediate_input(message.header, reply.inner,
                                                   flags=message.header.flags))
        self._set_keys(ike, crypto.update_keys(ike.proposal, ike.keys, shared, self._nonce_i,
                                               self._nonce_r, ike.spi_i, ike.spi_r))
        if self._additional_groups:
            self._send_intermediate(now)
        else:
            self._send_ike_auth(now)

    def _intermediate_input(self, header: Header, chain: tuple, flags: int) -> bytes:
        first, inner = chain
        return intermediate_auth_input(self._ike.spi_i, self._ike.spi_r,
                                       ExchangeType.IKE_INTERMEDIATE, flags,
                                       header.message_id, first, inner)

    # ------------------------------------------------------------------ IKE_AUTH (§1.2, §2.15, §2.16)

    def _send_ike_auth(self, now: float) -> None:
        self._transition(Input.SEND_AUTH)
        s = self.settings
        auth = s.auth
        ike = self._ike
        self._auth_message_id = ike.next_request_id
        id_type, id_data = crypto.identity(s.local_id or s.local_address)
        self._idi = IDi(id_type, id_data)
        payloads: list = [self._idi]
        if auth.method == "pubkey" and auth.certificate is not None:
            payloads.append(CERT(CertEncoding.X509_SIGNATURE, crypto.cert_der(auth.certificate)))
        if s.initial_contact:
            payloads.append(Notify(NotifyType.INITIAL_CONTACT))
        if auth.method != "psk" and auth.send_certreq and auth.trust_anchors:
            payloads.append(CERTREQ(CertEncoding.X509_SIGNATURE,
                                    crypto.certreq_data(auth.trust_anchors)))
        if s.remote_id and s.send_remote_id:
            payloads.append(IDr(*crypto.identity(s.remote_id)))
        if auth.method == "eap":
            self._eap = crypto.make_eap_client(auth, s.local_id, now, self._random)
        else:
            try:
                payloads.append(self._our_auth())
            except crypto.AuthError as exc:  # e.g. an empty PSK, a key the gateway refuses
                reason = f"cannot authenticate: {exc}"
                return self._finish(reason, AuthenticationFailed(reason))
        request_cp = config_payload.build_request(s)
        if request_cp.attributes:
            payloads.append(request_cp)
        self._first_child_spi = self._new_child_spi()
        payloads += self._child_sa_offer(self._first_child_spi)
        payloads.append(Notify(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED))
        self._send_request(ike, ExchangeType.IKE_AUTH, payloads, self._on_ike_auth_response, now)

    def _child_sa_offer(self, spi: bytes, ke_payload=None, ts=None) -> list:
        """SA [KE] TSi TSr. ts: (local, remote) networks; the settings' for a new CHILD_SA,
        the current (narrowed) ones when rekeying, as strongSwan does."""
        local_ts, remote_ts = ts or (self.settings.local_ts, self.settings.remote_ts)
        payloads = [SA(crypto.esp_proposal_payloads(self._offered_esp, spi,
                                                    with_ke=ke_payload is not None))]
        if ke_payload is not None:
            payloads.append(ke_payload)
        payloads += [TSi(traffic_selectors.selectors_for(local_ts)),
                     TSr(traffic_selectors.selectors_for(remote_ts))]
        return payloads

    def _signed_octets(self, ours: bool) -> bytes:
        """§2.15 (+ RFC 9242 IntAuth): what the AUTH payloads cover."""
        ike = self._ike
        intauth = self._intauth.auth_data(self._auth_message_id)
        if ours:
            return crypto.signed_octets(self._init_request, self._nonce_r, ike.prf,
                                        ike.keys.sk_pi, self._idi) + intauth
        return crypto.signed_octets(self._init_response, self._nonce_i, ike.prf,
                                    ike.keys.sk_pr, self._peer_idr) + intauth

    def _our_auth(self) -> AUTH:
        auth = self.settings.auth
        octets = self._signed_octets(ours=True)
        if auth.method == "psk":
            return AUTH(AuthMethod.SHARED_KEY_MIC,
                        crypto.psk_auth(self._ike.prf, auth.psk, octets))
        if auth.method == "eap":
            # §2.16: keyed with the MSK; methods without one (MD5) use SK_pi like strongSwan
            key = self._msk or self._ike.keys.sk_pi
            return AUTH(AuthMethod.SHARED_KEY_MIC, crypto.psk_auth(self._ike.prf, key, octets))
        method, data = crypto.sign(auth.private_key, octets, self._peer_hash_algorithms)
        return AUTH(method, data)

    def _on_ike_auth_response(self, reply: _Reply, now: float) -> None:
        payloads = reply.payloads
        auth = self.settings.auth
        notifies = {int(p.type): p for p in payloads if isinstance(p, Notify)}
        if NotifyType.AUTHENTICATION_FAILED in notifies:
            eap = _first(payloads, EAP)
            if eap is not None and self._eap is not None:
                self._eap.respond(eap.data, now)  # an EAP-Failure may say more than the notify
                if crypto.eap_failed(self._eap):
                    reason = crypto.eap_failure_reason(self._eap)
                    return self._finish(reason, AuthenticationFailed(reason))
            reason = {
                "psk": "the gateway rejected our credentials (wrong pre-shared key?)",
                "pubkey": "the gateway rejected our certificate (not trusted, or wrong identity?)",
                "eap": "the gateway rejected our credentials (wrong user name or password?)",
            }.get(auth.method, "the gateway rejected our credentials")
            return self._finish(reason, AuthenticationFailed(reason))
        idr = _first(payloads, IDr)
        gateway_auth = _first(payloads, AUTH)
        if not self._gateway_authenticated or (auth.method == "eap" and self._eap_done):
            if gateway_auth is None and _first(payloads, EAP) is None:
                errors = [p for p in payloads if isinstance(p, Notify) and int(p.type) < 16384]
                what = _notify_name(errors[0]) if errors else "no AUTH payload"
                return self._finish(f"IKE_AUTH failed: {what}")
            if gateway_auth is not None:
                failure = self._verify_gateway(idr, gateway_auth, payloads, now)
                if failure:
                    return self._finish(failure, AuthenticationFailed(failure))
        eap = _first(payloads, EAP)
        if eap is not None:
            return self._continue_eap(eap, now)
        if gateway_auth is None:
            return self._finish("IKE_AUTH response without AUTH")
        if auth.method == "eap" and not self._eap_done:
            return self._finish("the gateway skipped EAP authentication")
        self._transition(Input.AUTHENTICATED)
        self._on_established(payloads, notifies, now)

    def _verify_gateway(self, idr, gateway_auth, payloads, now) -> str:
        """Return a plain-words failure, or "" if the gateway proved who it is."""
        s = self.settings
        auth = s.auth
        if idr is None and self._peer_idr is None:
            return "the gateway did not identify itself"
        if idr is not None:
            self._peer_idr = idr
            self._peer_identity = crypto.format_identity(idr)
        octets = self._signed_octets(ours=False)
        if auth.method == "psk" or (auth.method == "eap" and self._eap_done):
            key = auth.psk if auth.method == "psk" else (self._msk or self._ike.keys.sk_pr)
            expected = crypto.psk_auth(self._ike.prf, key, octets)
            if (gateway_auth.method != AuthMethod.SHARED_KEY_MIC
                    or not hmac.compare_digest(expected, gateway_auth.data)):
                if auth.method == "psk":
                    return "the gateway's pre-shared key does not match ours"
                return "the gateway's EAP authentication data is wrong"
            if auth.method == "psk" and s.remote_id and not crypto.identity_matches(
                    s.remote_id, self._peer_idr):
                return f"the gateway identified itself as {self._peer_identity}, not {s.remote_id}"
            self._gateway_authenticated = True
            return ""
        certs = [p for p in payloads if isinstance(p, CERT)]
        if not certs:
            return "the gateway sent no certificate"
        # Like strongSwan: the certificate must name the identity the gateway claims (IDr),
        # and that identity must be the one we expect (remote_id; unset accepts any).
        if s.remote_id and not crypto.identity_matches(s.remote_id, self._peer_idr):
            return (f"gateway certificate does not match {s.remote_id} "
                    f"(the gateway says it is {self._peer_identity})")
        try:
            end_entity, intermediates = crypto.load_certificates(certs)
            crypto.validate_certificate(end_entity, intermediates, auth.trust_anchors,
                                        (self._peer_idr.id_type, self._peer_idr.data), now)
            crypto.verify_signature(gateway_auth, octets, end_entity)
        except crypto.AuthError as exc:
            return str(exc) or "the gateway's signature is invalid"
        self._gateway_authenticated = True
        return ""

    def _continue_eap(self, eap: EAP, now: float) -> None:
        """§2.16: relay EAP until success, then AUTH with the MSK."""
        if self._eap is None:
            return self._finish("the gateway started EAP, which we did not ask for")
        if not self._gateway_authenticated:
            return self._finish("the gateway started EAP before proving its identity",
                                AuthenticationFailed("the gateway did not authenticate itself"))
        answer = self._eap.respond(eap.data, now)
        self._transition(Input.CONTINUE_AUTH)
        if answer is not None:
            self._send_request(self._ike, ExchangeType.IKE_AUTH, [EAP(answer)],
                               self._on_ike_auth_response, now)
            return
        if crypto.eap_failed(self._eap):
            reason = crypto.eap_failure_reason(self._eap)
            return self._finish(reason, AuthenticationFailed(reason))
        self._msk = crypto.eap_msk(self._eap)
        self._eap_done = True
        self._send_request(self._ike, ExchangeType.IKE_AUTH, [self._our_auth()],
                           self._on_ike_auth_response, now)

    def _on_established(self, payloads: list, notifies: dict, now: float) -> None:
        ike = self._ike
        self._events.append(IkeSaEstablished(
            spi_i=ike.spi_i, spi_r=ike.spi_r, peer_identity=self._peer_identity,
            remote_addr=self._remote, nat_detected=self._nat_detected or self._nat_t,
            proposal=crypto.describe(ike.proposal)))
        self._ike_rekey_at = now + self.settings.ike_rekey_time - self._jitter(
            self.settings.ike_rand_time)
        self._record_additional_addresses(payloads)
        cp = _first(payloads, CP)
        if cp is not None:
            self._events.append(config_payload.parse_reply(cp))
        if NotifyType.REDIRECT in notifies:  # RFC 5685 §6: after IKE_AUTH, move on
            try:
                gateway, _ = decode_redirect(notifies[NotifyType.REDIRECT].data)
            except RedirectError:
                gateway = None
            if gateway:
                self._pending_redirect = gateway
                self._transition(Input.CLOSE)
                self._queue.append(self._send_ike_delete)
                return
        child_failure = self._install_first_child(payloads, notifies, now)
        if child_failure:
            # A VPN client without a tunnel is of no use: report and delete the IKE_SA.
            self._transition(Input.CLOSE)
            self._close_reason = child_failure
            self._queue.append(self._send_ike_delete)

    def _install_first_child(self, payloads, notifies, now) -> str:
        sa = _first(payloads, SA)
        if sa is None:
            for kind, text in ((NotifyType.NO_PROPOSAL_CHOSEN, None),
                               (NotifyType.TS_UNACCEPTABLE,
                                "the gateway refused our traffic selectors"),
                               (NotifyType.FAILED_CP_REQUIRED,
                                "the gateway requires a configuration request"),
                               (NotifyType.INTERNAL_ADDRESS_FAILURE,
                                "the gateway has no virtual address for us"),
                               (NotifyType.SINGLE_PAIR_REQUIRED,
                                "the gateway wants a single pair of traffic selectors")):
                if kind in notifies:
                    if text is None:
                        text = "the gateway accepted none of our ESP proposals"
                        self._events.append(ProposalMismatch(tuple(map(str, self._offered_esp)),
                                                             text))
                    return text
            return "the gateway did not set up a CHILD_SA"
        try:
            child = self._child_from_response(
                payloads, self._first_child_spi, self._nonce_i, self._nonce_r, b"", now,
                child_id=None, we_initiated=True)
        except ProtocolViolation as exc:
            return str(exc)
        except crypto.ProposalError as exc:
            return f"the gateway chose an ESP proposal we did not offer: {exc}"
        self._events.append(child.established_event())
        return ""

    def _child_from_response(self, payloads, spi_in, ni, nr, shared, now, child_id,
                             we_initiated, with_ke: bool = False, ts=None) -> ChildSa:
        """Build a CHILD_SA from the responder's SA/TSi/TSr (we initiated the exchange)."""
        sa, tsi, tsr = _first(payloads, SA), _first(payloads, TSi), _first(payloads, TSr)
        if sa is None or tsi is None or tsr is None:
            raise ProtocolViolation("CHILD_SA response lacks SA, TSi or TSr")
        chosen = crypto.choose_esp(self._offered_esp, sa, with_ke=with_ke)
        spi_out = sa.proposals[0].spi
        if len(spi_out) != 4:
            raise ProtocolViolation("ESP SPI must be 4 bytes")
        local_ts, remote_ts = ts or (self.settings.local_ts, self.settings.remote_ts)
        proposed_i = traffic_selectors.selectors_for(local_ts)
        proposed_r = traffic_selectors.selectors_for(remote_ts)
        if not (traffic_selectors.is_narrowing_of(proposed_i, tsi.selectors)
                and traffic_selectors.is_narrowing_of(proposed_r, tsr.selectors)):
            raise ProtocolViolation("the gateway widened our traffic selectors")
        return self._install_child(chosen, spi_in, spi_out, ni, nr, shared,
                                   traffic_selectors.networks_of(tsi.selectors),
                                   traffic_selectors.networks_of(tsr.selectors),
                                   now, child_id, we_initiated)

    def _install_child(self, chosen, spi_in, spi_out, ni, nr, shared, local_ts, remote_ts,
                       now, child_id, we_initiated) -> ChildSa:
        s = self.settings
        ike = self._ike
        keymat = crypto.child_keymat(chosen, ike.proposal, ike.keys.sk_d, ni, nr, shared)
        if child_id is None:
            child_id = self._next_child_id
            self._next_child_id += 1
        soft = s.child_rekey_time - self._jitter(s.child_rand_time)
        hard = max(s.child_life_time, soft)
        child = ChildSa.from_keymat(
            child_id, spi_in, spi_out, chosen, keymat, we_initiated,
            local_ts=local_ts, remote_ts=remote_ts, udp_encapsulation=self._nat_t,
            rekey_at=now + soft, expire_at=now + hard, lifetime_soft=soft, lifetime_hard=hard)
        self._children[spi_in] = child
        return child

    def _record_additional_addresses(self, payloads) -> None:
        addresses = []
        for p in payloads:
            if isinstance(p, Notify) and p.type in (NotifyType.ADDITIONAL_IP4_ADDRESS,
                                                    NotifyType.ADDITIONAL_IP6_ADDRESS):
                try:
                    addresses.append(ipaddress.ip_address(p.data))
                except ValueError:
                    continue
        if addresses:
            self._events.append(PeerAddressesAdded(tuple(addresses)))

    # ------------------------------------------------------------------ our CREATE_CHILD_SA (§1.3)

    def _installed_child(self, child_id: int) -> Optional[ChildSa]:
        for child in self._children.values():
            if child.child_id == child_id and child.state is ChildState.INSTALLED:
                return child
        return None

    def _send_child_rekey(self, old: ChildSa, now: float) -> None:
        if (self._children.get(old.spi_in) is not old or old.state is not ChildState.REKEYING
                or self.state is not State.ESTABLISHED):
            return  # deleted, or the gateway rekeyed it while our request was queued
        spi_in = self._new_child_spi()
        nonce = self._random(NONCE_SIZE)
        ke = None
        ke_payload = None
        # strongSwan: PFS whenever the ESP proposals name a KE group (the IKE_AUTH choice
        # never has one, §1.2, so look at what we offer)
        group = crypto.esp_offered_pfs_group(self._offered_esp)
        if group:
            ke = crypto.make_ke(group)
            ke_payload = KE(group, ke.public_bytes())
        exchange = _RekeyExchange("child", old, nonce_i=nonce)
        self._rekeys[old.child_id] = exchange
        payloads = [Notify(NotifyType.REKEY_SA, ProtocolId.ESP, old.spi_in)]
        offer = self._child_sa_offer(spi_in, ke_payload, ts=(old.local_ts, old.remote_ts))
        payloads += [offer[0], Nonce(nonce)] + offer[1:]
        payloads.append(Notify(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED))
        self._send_request(
            self._ike, ExchangeType.CREATE_CHILD_SA, payloads,
            lambda reply, t: self._on_child_rekey_response(exchange, spi_in, ke, reply.payloads,
                                                           t), now)

    def _on_child_rekey_response(self, exchange: _RekeyExchange, spi_in, ke, payloads, now):
        old: ChildSa = exchange.old
        del self._rekeys[old.child_id]
        notifies = {int(p.type): p for p in payloads if isinstance(p, Notify)}
        if NotifyType.TEMPORARY_FAILURE in notifies:
            old.state = ChildState.INSTALLED  # §2.25: try again a little later
            old.rekey_at = now + TEMPORARY_FAILURE_RETRY + self._jitter(TEMPORARY_FAILURE_RETRY)
            return
        if NotifyType.CHILD_SA_NOT_FOUND in notifies:
            # The gateway no longer has it: drop ours and set up a fresh one (§2.25)
            self._remove_child(old, "the gateway no longer knows this CHILD_SA")
            self._queue.append(lambda t, c=old.child_id: self._send_new_child(c, t))
            return
        nonce = _first(payloads, Nonce)
        if nonce is None or _first(payloads, SA) is None:
            old.state = ChildState.INSTALLED
            old.rekey_at = now + TEMPORARY_FAILURE_RETRY
            errors = [p for p in payloads if isinstance(p, Notify)]
            log.warning("CHILD_SA rekey refused: %s",
                        _notify_name(errors[0]) if errors else "no SA")
            return
        try:
            shared = b""
            if ke is not None:
                answer = _first(payloads, KE)
                if answer is None:
                    raise ProtocolViolation("PFS rekey answered without KE")
                shared = ke.shared_secret(answer.data)
            new = self._child_from_response(payloads, spi_in, exchange.nonce_i, nonce.data,
                                            shared, now, old.child_id, we_initiated=True,
                                            with_ke=ke is not None,
                                            ts=(old.local_ts, old.remote_ts))
        except (ProtocolViolation, *crypto.CRYPTO_ERRORS) as exc:
            # An answer we cannot use: keep the old SA, retry later, and have the gateway
            # drop the SA it just installed (it knows it by our SPI)
            log.warning("CHILD_SA rekey failed: %s", exc)
            old.state = ChildState.INSTALLED
            old.rekey_at = now + TEMPORARY_FAILURE_RETRY
            self._peer_rekeys.pop(old.child_id, None)
            self._queue.append(lambda t: self._send_request(
                self._ike, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.ESP, [spi_in])],
                lambda reply, t2: None, t))
            return
        exchange.nonce_r = nonce.data
        exchange.result = new
        self._events.append(new.established_event())
        collision = self._peer_rekeys.pop(old.child_id, None)
        if collision is not None and _lowest_nonce(exchange) < _lowest_nonce(collision):
            # §2.8.1: ours holds the lowest nonce, so ours is redundant: delete it; the
            # gateway, whose SA survives, deletes the old one.
            self._events.append(ChildSaRekeyed(old.child_id, old.spi_in, old.spi_out,
                                               collision.result.spi_in,
                                               collision.result.spi_out))
            new.state = ChildState.DELETING
            self._queue.appendleft(lambda t, c=new: self._send_child_delete(c, t, "redundant"))
            return
        if collision is not None:
            collision.result.state = ChildState.REKEYED  # the gateway deletes its redundant SA
        self._events.append(ChildSaRekeyed(old.child_id, old.spi_in, old.spi_out,
                                           new.spi_in, new.spi_out))
        old.state = ChildState.REKEYED
        self._queue.appendleft(lambda t, c=old: self._send_child_delete(c, t, "rekeyed"))

    def _send_new_child(self, child_id: int, now: float) -> None:
        """CREATE_CHILD_SA without REKEY_SA, keeping child_id (after CHILD_SA_NOT_FOUND)."""
        if self.state is not State.ESTABLISHED:
            return
        spi_in = self._new_child_spi()
        nonce = self._random(NONCE_SIZE)
        offer = self._child_sa_offer(spi_in)
        payloads = [offer[0], Nonce(nonce)] + offer[1:]

        def on_response(reply, t):
            p = reply.payloads
            answer = _first(p, Nonce)
            if answer is None or _first(p, SA) is None:
                return self._close_with("the gateway refused to set up the CHILD_SA again")
            child = self._child_from_response(p, spi_in, nonce, answer.data, b"", t,
                                              child_id, we_initiated=True)
            self._events.append(child.established_event())

        self._send_request(self._ike, ExchangeType.CREATE_CHILD_SA, payloads, on_response, now)

    def _send_child_delete(self, child: ChildSa, now: float, why: str) -> None:
        if self._children.get(child.spi_in) is not child or self.state is not State.ESTABLISHED:
            return
        child.state = ChildState.DELETING
        payloads = [Delete(ProtocolId.ESP, [child.spi_in])]

        def on_response(reply, t):
            self._remove_child(child, why)

        self._send_request(self._ike, ExchangeType.INFORMATIONAL, payloads, on_response, now,
                           on_give_up=lambda t: self._unreachable(t, "INFORMATIONAL"))

    def _remove_child(self, child: ChildSa, reason: str) -> None:
        if self._children.pop(child.spi_in, None) is not None:
            self._events.append(ChildSaDeleted(child.child_id, child.spi_in, child.spi_out,
                                               reason))

    def _unreachable(self, now: float, exchange: str) -> None:
        reason = f"gateway unreachable: no answer to {exchange} " \
                 f"after {self.settings.retransmission.tries + 1} transmissions"
        self._finish(reason, DeadPeerDetected(reason))

    def _send_ike_rekey(self, now: float) -> None:
        """§1.3.2: CREATE_CHILD_SA with an IKE SA payload, new SPI, nonce and KE."""
        exchange = self._ike_rekey
        if exchange is None or self.state is not State.ESTABLISHED:
            return
        new_spi = self._new_ike_spi()
        nonce = self._random(NONCE_SIZE)
        exchange.nonce_i = nonce
        group = crypto.ike_chosen_group(self._ike.proposal)
        ke = crypto.make_ke(group)
        payloads = [SA(crypto.ike_proposal_payloads(self._rekey_offers(), spi=new_spi)),
                    Nonce(nonce), KE(group, ke.public_bytes())]
        self._send_request(
            self._ike, ExchangeType.CREATE_CHILD_SA, payloads,
            lambda reply, t: self._on_ike_rekey_response(exchange, new_spi, ke, reply.payloads,
                                                         t), now)

    def _on_ike_rekey_response(self, exchange, new_spi, ke, payloads, now) -> None:
        notifies = {int(p.type): p for p in payloads if isinstance(p, Notify)}
        sa, nonce, answer = _first(payloads, SA), _first(payloads, Nonce), _first(payloads, KE)
        if sa is None or nonce is None or answer is None:
            self._ike_rekey = None
            delay = TEMPORARY_FAILURE_RETRY if NotifyType.TEMPORARY_FAILURE in notifies \
                else self.settings.ike_rand_time or TEMPORARY_FAILURE_RETRY
            self._ike_rekey_at = now + delay + self._jitter(TEMPORARY_FAILURE_RETRY)
            return
        try:
            chosen = crypto.choose_ike(self._rekey_offers(), sa)
            shared = ke.shared_secret(answer.data)
        except crypto.CRYPTO_ERRORS as exc:
            log.warning("IKE_SA rekey failed: %s", exc)
            self._ike_rekey = None
            self._ike_rekey_at = now + TEMPORARY_FAILURE_RETRY + self._jitter(
                TEMPORARY_FAILURE_RETRY)
            return
        old = self._ike
        new = IkeSaContext(spi_i=new_spi, spi_r=sa.proposals[0].spi, we_are_initiator=True,
                           proposal=chosen, fragmentation=old.fragmentation)
        self._key_new_ike(new, old, shared, exchange.nonce_i, nonce.data)
        exchange.nonce_r = nonce.data
        exchange.result = new
        self._ike_rekey = None
        collision, self._peer_ike_rekey = self._peer_ike_rekey, None
        if collision is not None and _lowest_nonce(exchange) < _lowest_nonce(collision):
            # §2.8.2: ours holds the lowest nonce, so our new IKE_SA is redundant: move to
            # the gateway's, delete ours; the gateway deletes the old one.
            self._switch_ike(old, collision.result)
            self._old_ikes.append(new)
            self._queue.appendleft(lambda t: self._send_ike_delete_of(new, t))
            return
        if collision is not None:
            self._old_ikes.append(collision.result)  # redundant; the gateway deletes it
        self._switch_ike(old, new)
        self._queue.appendleft(lambda t: self._send_ike_delete_of(old, t))

    def _rekey_offers(self) -> list:
        """IKE proposals for a rekey: the current algorithms first. Keeping the PRF avoids a
        known divergence: strongSwan 5.9 runs prf+ of a rekeyed IKE_SA with the *old* PRF
        (keymat_v2.c), RFC 7296 §2.18 and ike/keys.py with the new one; with one PRF both
        agree. Without ADDKE transforms: IKE_FOLLOWUP_KE (RFC 9370 §2.2.4) is not
        implemented, so a rekey must not negotiate additional key exchanges."""
        return crypto.without_additional_ke([self._ike.proposal, *self._offered_ike])

    def _key_new_ike(self, new, old, shared, ni, nr) -> None:
        """§2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)."""
        new.prf = crypto.make_prf_for(new.proposal)
        self._set_keys(new, crypto.derive_ike_keys(new.proposal, shared, ni, nr, new.spi_i,
                                                   new.spi_r, old_sk_d=old.keys.sk_d,
                                                   old_prf=old.proposal.prf_id))

    def _switch_ike(self, old: IkeSaContext, new: IkeSaContext) -> None:
        """Make `new` the IKE_SA; CHILD_SAs move over with it (§2.18)."""
        self._ike = new
        if old not in self._old_ikes:
            self._old_ikes.append(old)
        self._events.append(IkeSaRekeyed(old.spi_i, old.spi_r, new.spi_i, new.spi_r))
        self._ike_rekey_at = self._last_received + self.settings.ike_rekey_time - self._jitter(
            self.settings.ike_rand_time)

    def _send_ike_delete_of(self, ike: IkeSaContext, now: float) -> None:
        """DELETE of a replaced or redundant IKE_SA, sent over that IKE_SA (§2.18)."""
        self._send_request(ike, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE, [])],
                           lambda reply, t: self._retire(ike, t), now,
                           on_give_up=lambda t: self._retire(ike, t))

    def _retire(self, ike: IkeSaContext, now: float) -> None:
        """Forget a replaced IKE_SA. A request of ours still waiting on it can never be
        answered now: drop it, and let a CHILD_SA rekey it carried start again later."""
        if ike in self._old_ikes:
            self._old_ikes.remove(ike)
        if self._outstanding is not None and self._outstanding.ike is ike:
            self._outstanding = None
            for child_id, exchange in list(self._rekeys.items()):
                del self._rekeys[child_id]
                exchange.old.state = ChildState.INSTALLED
                exchange.old.rekey_at = now + TEMPORARY_FAILURE_RETRY

    def _send_ike_delete(self, now: float) -> None:
        """Our DELETE of the IKE_SA (close(), or after a failed first CHILD_SA)."""
        reason = self._closing_reason()

        def done(*_):
            events = (Redirected(self._pending_redirect),) if self._pending_redirect else ()
            self._finish(reason, *events)

        self._send_request(self._ike, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE, [])],
                           lambda reply, t: done(), now, on_give_up=lambda t: done())

    def _closing_reason(self) -> str:
        if self._pending_redirect:
            return f"redirected to {self._pending_redirect}"
        return self._close_reason or "closed"

    def _close_with(self, reason: str) -> None:
        if self.state is State.ESTABLISHED:
            self._close_reason = reason
            self._transition(Input.CLOSE)
            self._queue.clear()
            self._queue.append(self._send_ike_delete)

    # ------------------------------------------------------------------ the gateway's requests

    def _answer_informational(self, ike, payloads, addr, now) -> Optional[list]:
        """INFORMATIONAL from the gateway (§1.4): DELETE, liveness, address notifies."""
        response: list = []
        self._record_additional_addresses(payloads)
        for p in payloads:
            if isinstance(p, Notify) and p.type == NotifyType.UPDATE_SA_ADDRESSES:
                # RFC 4555 §3.5: the new addresses are those of the IP header
                self._remote = (addr[0], addr[1])
            elif isinstance(p, Notify) and p.type == NotifyType.REDIRECT:  # RFC 5685 §5
                try:
                    gateway, _ = decode_redirect(p.data)
                except RedirectError:
                    continue
                self._pending_redirect = gateway
                self._close_with(f"redirected to {gateway}")
        deletes = [p for p in payloads if isinstance(p, Delete)]
        for delete in deletes:
            if delete.protocol == ProtocolId.IKE:
                if ike is not self._ike:
                    self._retire(ike, now)  # the gateway deletes an IKE_SA rekeyed away
                    return []
                self._deleted_by_gateway = True  # answer first, then finish
                return []
            if delete.protocol == ProtocolId.ESP:
                ours = []
                for spi in delete.spis:
                    child = self._child_by_spi_out(spi)
                    if child is None:
                        continue
                    if child.state is not ChildState.DELETING:
                        ours.append(child.spi_in)  # §1.4.1: answer with our half
                    reason = "rekeyed by the gateway" if child.state is ChildState.REKEYED \
                        else "deleted by the gateway"
                    self._remove_child(child, reason)
                if ours:
                    response.append(Delete(ProtocolId.ESP, ours))
        return response

    def _child_by_spi_out(self, spi: bytes) -> Optional[ChildSa]:
        return next((c for c in self._children.values() if c.spi_out == spi), None)

    def _answer_create_child_sa(self, ike, payloads, now) -> list:
        """CREATE_CHILD_SA from the gateway: a rekey of a CHILD_SA or of the IKE_SA, or a
        new CHILD_SA (strongSwan recreates one after a hard expiry)."""
        sa = _first(payloads, SA)
        nonce = _first(payloads, Nonce)
        tsi, tsr = _first(payloads, TSi), _first(payloads, TSr)
        if sa is None or nonce is None:
            return [Notify(NotifyType.INVALID_SYNTAX)]
        if sa.proposals and sa.proposals[0].protocol == ProtocolId.IKE:
            return self._answer_ike_rekey(ike, sa, nonce, payloads, now)
        if tsi is None or tsr is None:
            return [Notify(NotifyType.INVALID_SYNTAX)]
        if self._ike_rekey is not None and self._ike_rekey.result is None \
                and self._outstanding is not None:
            return [Notify(NotifyType.TEMPORARY_FAILURE)]  # §2.25: our IKE rekey is running
        rekey = next((p for p in payloads if isinstance(p, Notify)
                      and p.type == NotifyType.REKEY_SA), None)
        old = None
        if rekey is not None:
            old = self._child_by_spi_out(rekey.spi)
            if old is None or old.state is ChildState.DELETING:
                return [Notify(NotifyType.CHILD_SA_NOT_FOUND, ProtocolId.ESP, rekey.spi)]
            if old.state is ChildState.REKEYED:
                return [Notify(NotifyType.TEMPORARY_FAILURE)]
            # the gateway proposes the SA's current selectors: keep them
            their_side, our_side = tsi.selectors, tsr.selectors
        else:
            # §2.9 as responder: the gateway's TSi is its side, TSr ours; narrow to policy
            their_side = traffic_selectors.narrow(
                tsi.selectors, traffic_selectors.selectors_for(self.settings.remote_ts))
            our_side = traffic_selectors.narrow(
                tsr.selectors, traffic_selectors.selectors_for(self.settings.local_ts))
            if not their_side or not our_side:
                return [Notify(NotifyType.TS_UNACCEPTABLE)]
        their_ke = _first(payloads, KE)
        try:
            if their_ke is not None:
                selection = crypto.select_esp_for_peer_ke(self._offered_esp, sa, their_ke.group)
            else:
                selection = crypto.select_esp(self._offered_esp, sa, with_ke=False)
        except crypto.ProposalError:
            return [Notify(NotifyType.NO_PROPOSAL_CHOSEN)]
        chosen = selection.proposal
        our_nonce = self._random(NONCE_SIZE)
        shared = b""
        response_ke = []
        group = crypto.esp_pfs_group(chosen)
        if group:
            if their_ke is None:
                return [Notify(NotifyType.INVALID_SYNTAX)]
            if their_ke.group != group:
                return [Notify(NotifyType.INVALID_KE_PAYLOAD, data=struct.pack("!H", group))]
            ke = crypto.make_ke(group)
            shared = ke.shared_secret(their_ke.data)
            response_ke = [KE(group, ke.public_bytes())]
        spi_in = self._new_child_spi()
        new = self._install_child(chosen, spi_in, selection.spi, nonce.data, our_nonce, shared,
                                  traffic_selectors.networks_of(our_side),
                                  traffic_selectors.networks_of(their_side),
                                  now, old.child_id if old is not None else None,
                                  we_initiated=False)
        self._events.append(new.established_event())
        if old is not None:
            self._note_gateway_child_rekey(old, new, nonce.data, our_nonce)
        proposal = chosen.to_payload(selection.number, spi_in, with_ke=bool(group))
        return [SA([proposal]), Nonce(our_nonce), *response_ke, TSi(their_side),
                TSr(our_side)]

    def _note_gateway_child_rekey(self, old: ChildSa, new: ChildSa, ni: bytes,
                                  nr: bytes) -> None:
        exchange = _RekeyExchange("child", old, nonce_i=ni, nonce_r=nr, result=new)
        if old.child_id in self._rekeys:
            self._peer_rekeys[old.child_id] = exchange  # §2.8.1: decided by our response
        else:
            self._events.append(ChildSaRekeyed(old.child_id, old.spi_in, old.spi_out,
                                               new.spi_in, new.spi_out))
            old.state = ChildState.REKEYED  # the gateway will DELETE it

    def _answer_ike_rekey(self, ike, sa, nonce, payloads, now) -> list:
        """The gateway rekeys the IKE_SA (§1.3.2, §2.18); it becomes the new SA's initiator."""
        if ike is not self._ike:
            return [Notify(NotifyType.TEMPORARY_FAILURE)]
        if any(c.state is ChildState.REKEYING for c in self._children.values()) \
                and self._outstanding is not None:
            return [Notify(NotifyType.TEMPORARY_FAILURE)]  # §2.25: finish the CHILD rekey first
        their_ke = _first(payloads, KE)
        try:
            selection = crypto.select_ike(self._rekey_offers(), sa,
                                          their_ke.group if their_ke is not None else None)
        except crypto.ProposalError:
            return [Notify(NotifyType.NO_PROPOSAL_CHOSEN)]
        chosen = selection.proposal
        group = crypto.ike_chosen_group(chosen)
        if their_ke is None or their_ke.group != group:
            return [Notify(NotifyType.INVALID_KE_PAYLOAD, data=struct.pack("!H", group))]
        ke = crypto.make_ke(group)
        shared = ke.shared_secret(their_ke.data)
        our_spi = self._new_ike_spi()
        our_nonce = self._random(NONCE_SIZE)
        new = IkeSaContext(spi_i=selection.spi, spi_r=our_spi, we_are_initiator=False,
                           proposal=chosen, fragmentation=ike.fragmentation)
        self._key_new_ike(new, ike, shared, nonce.data, our_nonce)
        exchange = _RekeyExchange("ike", ike, nonce_i=nonce.data, nonce_r=our_nonce, result=new)
        ours = self._ike_rekey
        if ours is not None and ours.nonce_i and self._outstanding is not None:
            self._peer_ike_rekey = exchange  # collision: decided when our response arrives
        else:
            self._switch_ike(ike, new)  # the gateway deletes the old IKE_SA next
            if ours is not None and not ours.nonce_i:
                self._ike_rekey = None  # ours was only queued: no need any more
        return [SA([chosen.to_payload(selection.number, our_spi)]), Nonce(our_nonce),
                KE(group, ke.public_bytes())]

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
        if (self.settings.dpd_delay > 0 and self._outstanding is None and not self._queue
                and now >= self._last_received + self.settings.dpd_delay):
            self._queue.append(self._send_dpd)

    def _send_delete_spi(self, child: ChildSa, now: float) -> None:
        self._send_request(self._ike, ExchangeType.INFORMATIONAL,
                           [Delete(ProtocolId.ESP, [child.spi_in])], lambda reply, t: None, now,
                           on_give_up=lambda t: self._unreachable(t, "INFORMATIONAL"))

    def _send_dpd(self, now: float) -> None:
        """§2.4 liveness check: an empty INFORMATIONAL request."""
        self._send_request(self._ike, ExchangeType.INFORMATIONAL, [],
                           lambda reply, t: None, now,
                           on_give_up=lambda t: self._unreachable(t, "a liveness check"))


# --------------------------------------------------------------------------- helpers

def _first(payloads: list, cls):
    return next((p for p in payloads if isinstance(p, cls)), None)


def _describe_payloads(payloads) -> str:
    """Payload names for debug logs (no contents: they may be secret)."""
    if not payloads:
        return "(empty)"
    return " ".join(f"N({_notify_name(p)})" if isinstance(p, Notify) else type(p).__name__
                    for p in payloads)


def _notify_name(notify: Notify) -> str:
    try:
        return NotifyType(int(notify.type)).name
    except ValueError:
        return f"notify {int(notify.type)}"

