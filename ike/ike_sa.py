"""One IKE_SA's state and the small types the session's exchange modules share.

- the IKE_SA life cycle: `State`, `Input` and the transition table `TRANSITIONS` (applied
  only by IkeSession._transition in session.py, through `next_state`, which CHILD_SAs share);
- `IkeSaContext`: keys and message IDs of one IKE_SA (a rekey makes a new one, §2.18);
- `Outstanding` / `Reply`: our one in-flight request (window size 1, §2.3) and its answer;
- `RekeyExchange`: a CREATE_CHILD_SA kept for collision resolution (§2.8.1, §2.8.2).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import session_crypto as crypto
from .constants import NotifyType
from .payloads import FLAG_INITIATOR, FLAG_RESPONSE, Message, Notify
from .retransmission import PendingRequest

NONCE_SIZE = 32  # bytes of our nonces (§2.10: at least half the PRF key size)
TEMPORARY_FAILURE_RETRY = 10.0  # seconds before retrying a refused rekey (§2.25)


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


TRANSITIONS: dict[tuple[State, Input], State] = {
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


def next_state(table: dict, state: enum.Enum, event: enum.Enum, subject: str) -> enum.Enum:
    """Look (state, input) up in a transition table; a pair outside it is a protocol error
    (like h2's state machines: what is not listed is not allowed)."""
    new_state = table.get((state, event))
    if new_state is None:
        raise ProtocolViolation(f"{subject}: {event.value} is not allowed in state {state.value}")
    return new_state


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

    def set_keys(self, keys, random: Callable[[int], bytes]) -> None:
        self.keys = keys
        self.protector = crypto.make_protector(self.proposal, keys, self.we_are_initiator, random)
        self.reassembler = None  # fragments under the old keys are useless now


def new_ike_spi(random: Callable[[int], bytes]) -> bytes:
    spi = random(8)
    return spi if any(spi) else b"\x00" * 7 + b"\x01"


class IkeSaView:
    """Read-only view of one IKE_SA for inspection (tests, tools); equal to another view of
    the same IKE_SA. Keys stay out of it, as they stay out of IkeSaContext's repr."""

    __slots__ = ("_ike",)

    def __init__(self, ike: IkeSaContext) -> None:
        self._ike = ike

    spi_i = property(lambda self: self._ike.spi_i)
    spi_r = property(lambda self: self._ike.spi_r)
    we_are_initiator = property(lambda self: self._ike.we_are_initiator)
    proposal = property(lambda self: self._ike.proposal)
    next_request_id = property(lambda self: self._ike.next_request_id)
    next_peer_request_id = property(lambda self: self._ike.next_peer_request_id)
    last_response_id = property(lambda self: self._ike.last_response_id)
    fragmentation = property(lambda self: self._ike.fragmentation)

    def __eq__(self, other) -> bool:
        return isinstance(other, IkeSaView) and other._ike is self._ike

    def __hash__(self) -> int:
        return id(self._ike)

    def __repr__(self) -> str:
        return repr(self._ike)


@dataclass
class Reply:
    """A response to one of our requests, decrypted, with what it answers."""

    payloads: list = field(repr=False)
    message: Message = field(repr=False)
    raw: bytes = field(repr=False)  # the datagram as received (AUTH signs IKE_SA_INIT's)
    addr: tuple = ()
    request_payloads: list = field(default_factory=list, repr=False)
    inner: Optional[tuple] = field(default=None, repr=False)  # (first type, plaintext chain)


@dataclass(frozen=True)
class RequestInfo:
    """Inspection copy of our outstanding request (IkeSession.outstanding_request)."""

    exchange: int
    message_id: int
    sends: int  # transmissions so far
    deadline: float  # when it is retransmitted or given up
    ike_sa: "IkeSaView"  # the IKE_SA it was sent on (an old one while a rekey finishes)


@dataclass
class Outstanding:
    """Our one in-flight request and what to do with its response."""

    request: PendingRequest
    ike: IkeSaContext
    on_response: Callable[[Reply, float], None]
    on_give_up: Optional[Callable[[float], None]] = None
    payloads: list = field(default_factory=list, repr=False)


@dataclass
class RekeyExchange:
    """A CREATE_CHILD_SA we are running, kept for §2.8 collision resolution."""

    kind: str  # "child" or "ike"
    old: Any  # the ChildSa or IkeSaContext being rekeyed
    nonce_i: bytes = b""
    nonce_r: bytes = b""
    result: Any = None  # new ChildSa / IkeSaContext once complete


def lowest_nonce(exchange: RekeyExchange) -> bytes:
    return min(exchange.nonce_i, exchange.nonce_r)


def jitter(random: Callable[[int], bytes], span: float) -> float:
    """A random part of `span` (lifetimes are shortened by it, §2.8: fewer collisions)."""
    if span <= 0:
        return 0.0
    return span * int.from_bytes(random(4), "big") / 2 ** 32


# --------------------------------------------------------------------------- helpers

def first(payloads: list, cls):
    return next((p for p in payloads if isinstance(p, cls)), None)


def describe_payloads(payloads) -> str:
    """Payload names for debug logs (no contents: they may be secret)."""
    if not payloads:
        return "(empty)"
    return " ".join(f"N({notify_name(p)})" if isinstance(p, Notify) else type(p).__name__
                    for p in payloads)


def notify_name(notify: Notify) -> str:
    try:
        return NotifyType(int(notify.type)).name
    except ValueError:
        return f"notify {int(notify.type)}"

