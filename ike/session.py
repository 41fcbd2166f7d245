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
by `_transition()` (`state` is read-only); a CHILD_SA's is `CHILD_TRANSITIONS` applied by
`ChildSa.apply()`. A (state, input) pair outside its table raises ProtocolViolation.

The session is composed like aioquic's QuicConnection: it keeps the public API, the IKE_SA
state machine, the current IKE_SA's keys, the dispatch of what arrives and the timers, and
hands the rest to collaborators that own their state:

- `RequestChannel` (requests.py): outbox, the gateway's address, our one outstanding request
  and its retransmission (window size 1, §2.3), queued work, cached responses;
- `ChildSaSet` (child_sa_set.py): the CHILD_SAs and how they are made and removed;
- `Lifetimes` (lifetimes.py): IKE_SA rekey and reauthentication deadlines, liveness;
- `Establishment`, `Rekeying`, `Informational`: the exchanges (establishment.py,
  rekeying.py, informational.py), each with the state only it needs.

Tests and tools inspect it through read-only properties (`ike_sa_state`, `ike_sa`,
`child_sas`, ...), never through its private attributes.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Mapping, Optional

from .child_sa import ChildSa, ChildState
from .child_sa_set import ChildSaSet
from .constants import ExchangeType, NotifyType
from .establishment import Establishment
from .events import AUTH_GATEWAY, AuthenticationFailed, DeadPeerDetected, Event, IkeSaDeleted
from .ike_sa import (TRANSITIONS, IkeSaContext, IkeSaView, Input, ProtocolViolation, Reply,
                     RequestInfo, State, describe_payloads, new_ike_spi, next_state)
from .informational import Informational
from .mobike import Mobike
from .lifetimes import MIN_AUTH_LIFETIME, Lifetimes  # noqa: F401 (the stated floor)
from .payloads import (Encrypted, EncryptedFragment, Header, Message, Notify, ParseError,
                       decode_payloads)
from .rekeying import Rekeying
from .requests import RequestChannel
from .settings import Settings
from .unauthenticated import DropLog, InitRefusal
from .header_check import check_header
from . import session_crypto as crypto

log = logging.getLogger(__name__)

NON_ESP_MARKER = b"\x00\x00\x00\x00"  # RFC 3948 §2.2, in front of IKE on port 4500


# --------------------------------------------------------------------------- the session

class IkeSession:
    """One IKE_SA (and its CHILD_SAs) towards one gateway, from the initiator's side.

    This module holds the public API, the IKE_SA state machine, the dispatch of what arrives
    and the timers; its collaborators (see the module docstring) do the rest."""

    # Tests set this to see internal errors instead of having the datagram dropped.
    raise_internal_errors = False

    def __init__(self, settings: Settings, now: float) -> None:
        if settings.auth.method not in ("psk", "pubkey", "eap"):
            raise ValueError(f"unknown authentication method {settings.auth.method!r} "
                             "(psk, pubkey or eap)")
        if settings.fragment_size < 576:  # every IPv4 host accepts 576-byte datagrams
            raise ValueError(f"fragment_size {settings.fragment_size} is below 576 bytes")
        self.settings = settings
        self._state = State.INITIAL
        self._random = settings.random_bytes
        self._events: deque[Event] = deque()
        self._finished = False
        self._ike = IkeSaContext(spi_i=new_ike_spi(self._random), spi_r=bytes(8),
                                 we_are_initiator=True)
        self._offered_ike = crypto.parse_ike(settings.ike_proposals)
        self._offered_esp = crypto.parse_esp(settings.esp_proposals)
        self._offered_ike_text = tuple(map(str, self._offered_ike))
        # collaborators, each owning its state (see the module docstring)
        self._requests = RequestChannel(settings)
        self._child_sas = ChildSaSet(settings, self._offered_esp, self._random, self._events,
                                     lambda: self._requests.nat_t)
        self._lifetimes = Lifetimes(settings, self._random, now, lambda: self._ike.spi_i.hex())
        self._establishment = Establishment(self)
        self._rekeying = Rekeying(self)
        self._informational = Informational(self)
        self._mobike = Mobike(self)  # RFC 4555, liveness after resume (ike/mobike.py)
        self._drop_log = DropLog(log)  # bounded: dropped datagrams may be a spoofed flood

    # ------------------------------------------------------------------ inspection (read-only)

    @property
    def state(self) -> State:
        return self._state

    @property
    def ike_sa_state(self) -> State:
        return self._state

    @property
    def ike_sa(self) -> IkeSaView:
        """The current IKE_SA (it changes when the IKE_SA is rekeyed, §2.18)."""
        return IkeSaView(self._ike)

    @property
    def retired_ike_sas(self) -> tuple[IkeSaView, ...]:
        """IKE_SAs rekeyed away whose DELETE is not done yet."""
        return tuple(IkeSaView(ike) for ike in self._rekeying.old_ikes)

    @property
    def child_sas(self) -> Mapping[bytes, ChildSa]:
        """Our inbound SPI -> CHILD_SA, read-only."""
        return self._child_sas.view()

    @property
    def outstanding_request(self) -> Optional[RequestInfo]:
        """Our request awaiting its response (§2.3: at most one), or None."""
        out = self._requests.outstanding
        if out is None:
            return None
        request = out.request
        return RequestInfo(request.exchange, request.message_id, request.sends, request.deadline,
                           IkeSaView(out.ike))

    @property
    def init_refusal(self) -> Optional[InitRefusal]:
        """An unauthenticated IKE_SA_INIT refusal we hold as a hint (§2.21.1), or None."""
        return self._establishment.init_refusal

    @property
    def remote_address(self) -> tuple:
        """Where IKE goes: the gateway's address and port (4500 after NAT-T, §2.23)."""
        return self._requests.remote

    @property
    def udp_encapsulation(self) -> bool:
        return self._requests.nat_t

    # ------------------------------------------------------------------ public API

    def connect(self, now: float) -> None:
        self._establishment.start(now)

    def ike_sa_deadlines(self) -> tuple[Optional[float], Optional[float]]:
        """(when we rekey this IKE_SA, when we report that it needs reauthentication), on
        the clock of `now`; None when nothing is scheduled (e.g. a rekey is under way)."""
        return self._lifetimes.ike_rekey_at, self._lifetimes.reauth_at

    def receive_datagram(self, data: bytes, addr: tuple, now: float) -> None:
        """Process one datagram. Never raises: bad input is logged and dropped."""
        if self._state in (State.INITIAL, State.CLOSED):
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
        self._requests.pump(now)

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
        return self._requests.take_datagrams()

    def get_timer(self) -> Optional[float]:
        if self._state in (State.INITIAL, State.CLOSED):
            return None
        requests = self._requests
        deadlines = []
        if requests.outstanding:
            deadlines.append(requests.outstanding.request.deadline)
        elif requests.has_queued_work:
            # work queued by rekey_child()/rekey_ike()/close(), which get no `now`: due at once
            return 0.0
        if self._state is State.ESTABLISHED:
            lifetimes = self._lifetimes
            if lifetimes.ike_rekey_at is not None and not self._rekeying.ike_rekey_running:
                deadlines.append(lifetimes.ike_rekey_at)
            if lifetimes.reauth_at is not None:
                deadlines.append(lifetimes.reauth_at)
            for child in self._child_sas:
                if child.state is ChildState.INSTALLED:
                    deadlines.append(child.rekey_at)
                deadlines.append(child.expire_at)
            dpd_at = lifetimes.dpd_at()
            if dpd_at is not None and not requests.outstanding and not requests.has_queued_work:
                deadlines.append(dpd_at)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self._state in (State.INITIAL, State.CLOSED):
            return
        refusal = self._establishment.init_refusal
        outstanding = self._requests.outstanding
        if (refusal is not None and outstanding and self._state is State.INIT_SENT
                and now >= max(outstanding.request.deadline, refusal.not_before)):
            # no valid answer came while we waited: act on the unauthenticated hint (§2.21.1)
            self._finish(refusal.reason, *refusal.events)
        else:
            exhausted = self._requests.retransmit_due(now)
            if exhausted is not None:
                self._give_up(exhausted, now)
        if self._state is State.ESTABLISHED:
            self._run_lifetime_timers(now)
        self._requests.pump(now)

    def next_event(self) -> Optional[Event]:
        return self._events.popleft() if self._events else None

    def rekey_child(self, child_id: int) -> None:
        """Start a CHILD_SA rekey (e.g. the data plane's byte or packet limits are near)."""
        child = self._child_sas.installed(child_id)
        if child is not None and self._state is State.ESTABLISHED:
            self._rekeying.start_child_rekey(child)

    def rekey_ike(self) -> None:
        if self._state is State.ESTABLISHED:
            self._rekeying.start_ike_rekey()

    @property
    def mobike(self) -> bool:
        """The gateway supports MOBIKE: update_addresses() can move this IKE_SA."""
        return self._mobike.peer_supports

    def update_addresses(self, local_address: str, now: float) -> None:
        """Our address or path changed: MOBIKE UPDATE_SA_ADDRESSES (ike/mobike.py); the
        answer comes as AddressesUpdated."""
        if self._state is State.ESTABLISHED and self._mobike.peer_supports:
            self._mobike.update_addresses(local_address, now)
            self._requests.pump(now)

    def check_liveness(self, now: Optional[float] = None) -> None:
        """Send a liveness check (§2.4) as soon as no other request is outstanding, e.g.
        after the host resumed from suspend, without waiting for dpd_delay; with a short
        retransmission budget (ike/mobike.py): no answer ends the session with
        DeadPeerDetected. With `now`, it goes out at once."""
        if self._state is State.ESTABLISHED:
            self._mobike.check_liveness(now)
            if now is not None:
                self._requests.pump(now)

    def revocation_checked(self, failure: Optional[str], now: float) -> None:
        """The owner's verdict after GatewayCertificateVerified: None continues IKE_AUTH,
        a message ends the session (AuthenticationFailed) without another word to the gateway
        (ike/revocation_gate.py)."""
        resume = self._establishment.revocation.verdict()
        if resume is None or self._finished:
            return
        if failure:
            self._finish(failure, AuthenticationFailed(failure, AUTH_GATEWAY))
        else:
            resume(now)
        self._requests.pump(now)

    def close(self) -> None:
        """Delete the IKE_SA (and with it every CHILD_SA) politely."""
        if self._state is State.ESTABLISHED:
            self._informational.close_with("closed")
        elif self._state is not State.CLOSED and self._state is not State.DELETING:
            self._finish("closed before the IKE_SA was established")

    # ------------------------------------------------------------------ state machine

    def _transition(self, event: Input) -> None:
        """The one place the IKE_SA's state changes (TRANSITIONS)."""
        new_state = next_state(TRANSITIONS, self._state, event, "IKE_SA")
        log.debug("IKE_SA %s: %s -> %s", self._ike.spi_i.hex(), self._state.value,
                  new_state.value)
        self._state = new_state

    def _finish(self, reason: str, *events: Event) -> None:
        """Terminal: report why, then IkeSaDeleted; CHILD_SAs go with the IKE_SA."""
        if self._finished:
            return
        self._finished = True
        self._events.extend(events)
        self._child_sas.remove_all(reason)
        self._events.append(IkeSaDeleted(reason))
        self._requests.stop()
        self._transition(Input.FINISHED)

    def _give_up(self, outstanding, now: float) -> None:
        refusal = self._establishment.init_refusal
        if refusal is not None and self._state is State.INIT_SENT:
            return self._finish(refusal.reason, *refusal.events)
        if outstanding.on_give_up is not None:
            outstanding.on_give_up(now)
            return
        tries = outstanding.request.sends
        exchange = ExchangeType(outstanding.request.exchange).name
        reason = (f"gateway unreachable: no answer to {exchange} after {tries} transmissions")
        if self._state is State.ESTABLISHED:
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
        check_header(header, len(data), ike, self._requests.outstanding)
        message = Message.decode(data)
        if header.is_response:
            self._receive_response(ike, message, data, addr, now)
        else:
            self._receive_request(ike, message, data, addr, now)

    def _context_for(self, header: Header) -> Optional[IkeSaContext]:
        for ike in [self._ike, *self._rekeying.contexts()]:
            if header.spi_i != ike.spi_i:
                continue
            if header.spi_r == ike.spi_r:
                return ike
            # the IKE_SA_INIT response is the first time we see the responder's SPI
            if (ike is self._ike and self._state is State.INIT_SENT and header.is_response
                    and header.exchange == ExchangeType.IKE_SA_INIT):
                return ike
        return None

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

    def _receive_response(self, ike, message, data, addr, now) -> None:
        requests = self._requests
        out = requests.outstanding
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
        requests.outstanding = None
        self._lifetimes.heard_from_peer(now)
        try:
            out.on_response(Reply(payloads, message, data, addr, out.payloads, inner), now)
        except (ProtocolViolation, ParseError, *crypto.CRYPTO_ERRORS):
            # Dropped as if never received: keep waiting (and retransmitting) for a good one
            if requests.outstanding is None and not self._finished:
                requests.outstanding = out
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
                    self._requests.resend_cached(ike)
                return
            if message.get(Encrypted) is None:  # plaintext cannot be ours: drop it quietly
                raise ProtocolViolation(f"unprotected request with message ID {header.message_id}")
            ike.protector.open_chain(data, message)
            self._requests.resend_cached(ike)
            return
        if header.message_id != ike.next_peer_request_id:
            raise ProtocolViolation(f"request with message ID {header.message_id}, expected "
                                    f"{ike.next_peer_request_id}")
        if self._state not in (State.ESTABLISHED, State.DELETING):
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
            self._requests.send_response(ike, header,
                                         [Notify(notify, data=exc.notify_data or b"")])
            return
        self._lifetimes.heard_from_peer(now)
        if header.exchange == ExchangeType.INFORMATIONAL:
            response = self._informational.answer(ike, payloads, addr, now)
        elif header.exchange == ExchangeType.CREATE_CHILD_SA:
            response = self._rekeying.answer_create_child_sa(ike, payloads, now)
        else:
            raise ProtocolViolation(f"gateway sent a {header.exchange} request")
        log.debug("gateway %s request %d: %s -> %s", ExchangeType(header.exchange).name,
                  header.message_id, describe_payloads(payloads), describe_payloads(response))
        if response is not None:
            self._requests.send_response(ike, header, response)
        if self._informational.deleted_by_gateway:
            self._finish("deleted by the gateway")

    # ------------------------------------------------------------------ lifetimes

    def _run_lifetime_timers(self, now: float) -> None:
        for child in self._child_sas:
            if now >= child.expire_at:
                # Hard lifetime reached without a successful rekey: it must not be used
                self._child_sas.remove(child, "hard lifetime expired")
                if child.state is not ChildState.DELETING:
                    self._requests.queue(
                        lambda t, c=child: self._informational.send_delete_spi(c, t))
            elif child.state is ChildState.INSTALLED and now >= child.rekey_at:
                self.rekey_child(child.child_id)
        if self._lifetimes.take_ike_rekey_due(now, self._rekeying.ike_rekey_running):
            self.rekey_ike()
        reauth = self._lifetimes.take_reauth_due(now)
        if reauth is not None:
            self._events.append(reauth)
        dpd_at = self._lifetimes.dpd_at()
        if (dpd_at is not None and self._requests.outstanding is None
                and not self._requests.has_queued_work and now >= dpd_at):
            self._requests.queue(self._informational.send_dpd)
