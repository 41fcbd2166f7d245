"""CHILD_SA bookkeeping: what we know about one ESP SA pair and how it turns into an event.

A CHILD_SA is identified on the wire by its SPIs and locally by `child_id`, which survives
rekeys (the data plane keys its tunnel state on it, like strongSwan's reqid).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .events import ChildSaEstablished


class ChildState(enum.Enum):
    INSTALLED = "installed"
    REKEYING = "rekeying"  # our CREATE_CHILD_SA(REKEY_SA) is outstanding
    REKEYED = "rekeyed"  # replaced; waiting for the DELETE exchange to finish
    DELETING = "deleting"  # our INFORMATIONAL DELETE is outstanding


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
    state: ChildState = ChildState.INSTALLED

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
