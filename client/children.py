"""The engine's CHILD_SA registry: which SAs carry the tunnel now, by child_id and SPI.

It decides what the status display used to be scanned for: whether a new CHILD_SA is a rekey
(its child_id is already here), which SA takes over when one is deleted, whether a data-plane
warning concerns a current SA, and when a rekeyed or retired SA leaves the data plane
(REKEYED_SA_GRACE after it stopped carrying traffic). Time comes from a scheduler with
`call_later(delay, callback) -> handle with cancel()` (the asyncio loop, or a fake clock).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

# A rekeyed CHILD_SA still decrypts for this long after its DELETE, for packets the gateway
# sent on it just before switching (strongSwan's charon.delete_rekeyed_delay).
REKEYED_SA_GRACE = 5.0


@dataclass(frozen=True)
class ChildEntry:
    """One installed CHILD_SA as the tunnel shows it."""

    child_id: int
    spi_in: bytes
    spi_out: bytes
    encryption: str  # "AES_GCM_16-128"
    integrity: str   # "" for AEAD
    esn: bool
    local_ts: tuple
    remote_ts: tuple
    rekey_at: float  # wall clock
    installed_at: float

    @classmethod
    def from_event(cls, child) -> "ChildEntry":
        """From ike.events.ChildSaEstablished."""
        from ike.constants import EncrId, IntegId

        now = time.time()
        return cls(child_id=child.child_id, spi_in=child.spi_in, spi_out=child.spi_out,
                   encryption=f"{EncrId(child.encr_id).name}-{child.encr_key_bits}",
                   integrity=IntegId(child.integ_id).name if child.integ_id else "",
                   esn=child.esn, local_ts=tuple(child.local_ts), remote_ts=tuple(child.remote_ts),
                   rekey_at=now + child.lifetime_soft, installed_at=now)

    def describe(self) -> dict:
        """The entry in the status model (`cygnet status --json`)."""
        return {"child_id": self.child_id, "spi_in": self.spi_in.hex(), "spi_out": self.spi_out.hex(),
                "encryption": self.encryption, "integrity": self.integrity, "esn": self.esn,
                "local_ts": [str(n) for n in self.local_ts], "remote_ts": [str(n) for n in self.remote_ts],
                "rekey_at": self.rekey_at, "installed_at": self.installed_at}


class ChildRegistry:
    """Current CHILD_SAs (spi_in -> ChildEntry, in install order) and the ones in their grace
    period. `remove_sa(spi_in)` takes an SA out of the data plane."""

    def __init__(self, scheduler, remove_sa: Callable[[bytes], None], grace: float = REKEYED_SA_GRACE):
        self._scheduler = scheduler
        self._remove_sa = remove_sa
        self._grace = grace
        self._current: dict[bytes, ChildEntry] = {}
        self._leaving: dict[bytes, object] = {}  # spi_in -> the handle of its removal

    def entries(self) -> list[ChildEntry]:
        return list(self._current.values())

    def is_rekey(self, child_id: int) -> bool:
        """A CHILD_SA with this child_id is installed: a new one replaces it (make-before-break)."""
        return any(e.child_id == child_id for e in self._current.values())

    def is_current(self, spi_in: bytes) -> bool:
        """Carries the tunnel (not a rekeyed or retired SA in its grace period)."""
        return spi_in in self._current

    def leaving(self) -> list[bytes]:
        """SAs in their grace period, still decrypting."""
        return list(self._leaving)

    def add(self, entry: ChildEntry) -> None:
        self._current[entry.spi_in] = entry

    def deleted(self, child_id: int, spi_in: bytes) -> Optional[bytes]:
        """The CHILD_SA under spi_in is gone. Returns its successor's spi_in (a rekey: send on
        that one now; the old one keeps decrypting for the grace period), or None (removed now)."""
        self._current.pop(spi_in, None)
        successor = next((e.spi_in for e in self._current.values() if e.child_id == child_id), None)
        if successor is None:
            self._remove_sa(spi_in)
        else:
            self._retire(spi_in)
        return successor

    def retire_all(self) -> None:
        """Reauthentication: the current SAs stop carrying the tunnel; each leaves the data
        plane after the grace period."""
        for spi_in in list(self._current):
            self._retire(spi_in)
        self._current.clear()

    def remove_all(self) -> None:
        """The IKE_SA is gone: its CHILD_SAs leave the data plane now."""
        for spi_in in list(self._current):
            self._remove_sa(spi_in)
        self._current.clear()

    def close(self) -> None:
        """Cancel pending removals (the data plane is closing and removes everything)."""
        for handle in self._leaving.values():
            handle.cancel()
        self._leaving.clear()

    def _retire(self, spi_in: bytes) -> None:
        previous = self._leaving.pop(spi_in, None)
        if previous is not None:
            previous.cancel()
        self._leaving[spi_in] = self._scheduler.call_later(self._grace, self._expire, spi_in)

    def _expire(self, spi_in: bytes) -> None:
        self._leaving.pop(spi_in, None)
        self._remove_sa(spi_in)
