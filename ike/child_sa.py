"""CHILD_SA bookkeeping: what we know about one ESP SA pair, its life cycle, and how it turns
into an event.

A CHILD_SA is identified on the wire by its SPIs and locally by `child_id`, which survives
rekeys (the data plane keys its tunnel state on it, like strongSwan's reqid).

Its state changes only through `ChildSa.apply(ChildInput)`, which looks the pair up in
`CHILD_TRANSITIONS`; a pair outside the table raises ProtocolViolation (as h2's stream state
machine raises ProtocolError). Leaving the SA set (DELETE done, hard expiry) is not a state:
the session's ChildSaSet forgets the SA and reports ChildSaDeleted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .events import ChildSaEstablished
from .ike_sa import next_state


class ChildState(enum.Enum):
    INSTALLED = "installed"
    REKEYING = "rekeying"  # our CREATE_CHILD_SA(REKEY_SA) is outstanding
    REKEYED = "rekeyed"  # replaced; waiting for the DELETE exchange to finish
    DELETING = "deleting"  # our INFORMATIONAL DELETE is outstanding


class ChildInput(enum.Enum):
    START_REKEY = "rekey started"  # rekey_child(), soft lifetime (§2.8)
    REKEY_FAILED = "rekey refused, failed or abandoned"  # TEMPORARY_FAILURE etc. (§2.25)
    REPLACED = "replaced by a new CHILD_SA"  # ours or the gateway's rekey won (§2.8, §2.8.1)
    SEND_DELETE = "our DELETE sent"  # §1.4.1


CHILD_TRANSITIONS: dict[tuple[ChildState, ChildInput], ChildState] = {
    (ChildState.INSTALLED, ChildInput.START_REKEY): ChildState.REKEYING,
    (ChildState.REKEYING, ChildInput.REKEY_FAILED): ChildState.INSTALLED,
    # our rekey completed; or the gateway rekeyed an SA whose rekey we had only queued
    (ChildState.REKEYING, ChildInput.REPLACED): ChildState.REKEYED,
    # the gateway rekeyed it; or it is the gateway's redundant SA of a §2.8.1 collision
    (ChildState.INSTALLED, ChildInput.REPLACED): ChildState.REKEYED,
    # our redundant SA of a §2.8.1 collision
    (ChildState.INSTALLED, ChildInput.SEND_DELETE): ChildState.DELETING,
    # the SA our rekey replaced
    (ChildState.REKEYED, ChildInput.SEND_DELETE): ChildState.DELETING,
}


@dataclass
class ChildSa:
    child_id: int
    spi_in: bytes  # ours (the gateway sends with it)
    spi_out: bytes  # the gateway's
    proposal: Any  # the EspProposal both sides agreed on
    encr_key_in: bytes = field(repr=False)
    integ_key_in: bytes = field(repr=False)
    encr_key_out: bytes = field(repr=False)
    integ_key_out: bytes = field(repr=False)
    local_ts: tuple = ()
    remote_ts: tuple = ()
    udp_encapsulation: bool = False
    rekey_at: float = 0.0
    expire_at: float = 0.0
    lifetime_soft: float = 0.0
    lifetime_hard: float = 0.0
    _state: ChildState = ChildState.INSTALLED

    @property
    def state(self) -> ChildState:
        return self._state

    def apply(self, event: ChildInput) -> None:
        """The one place a CHILD_SA's state changes (CHILD_TRANSITIONS)."""
        self._state = next_state(CHILD_TRANSITIONS, self._state, event,
                                 f"CHILD_SA {self.spi_in.hex()}")

    @classmethod
    def from_keymat(cls, child_id, spi_in, spi_out, proposal, keymat, we_initiated: bool,
                    **kwargs) -> "ChildSa":
        """KEYMAT is ordered initiator->responder first (RFC 7296 §2.17): the direction that
        is ours depends on who started the exchange that created this SA."""
        if we_initiated:
            out_e, out_i, in_e, in_i = (keymat.encr_i, keymat.integ_i,
                                        keymat.encr_r, keymat.integ_r)
        else:
            out_e, out_i, in_e, in_i = (keymat.encr_r, keymat.integ_r,
                                        keymat.encr_i, keymat.integ_i)
        return cls(child_id=child_id, spi_in=spi_in, spi_out=spi_out, proposal=proposal,
                   encr_key_in=in_e, integ_key_in=in_i, encr_key_out=out_e,
                   integ_key_out=out_i, **kwargs)

    def established_event(self) -> ChildSaEstablished:
        p = self.proposal
        return ChildSaEstablished(
            child_id=self.child_id, spi_in=self.spi_in, spi_out=self.spi_out,
            encr_id=int(p.encr_id), encr_key_bits=int(p.encr_key_bits),
            integ_id=None if p.integ_id in (None, 0) else int(p.integ_id),
            esn=bool(p.esn),
            encr_key_in=self.encr_key_in, integ_key_in=self.integ_key_in,
            encr_key_out=self.encr_key_out, integ_key_out=self.integ_key_out,
            local_ts=tuple(self.local_ts), remote_ts=tuple(self.remote_ts),
            lifetime_soft=self.lifetime_soft, lifetime_hard=self.lifetime_hard,
            udp_encapsulation=self.udp_encapsulation)
