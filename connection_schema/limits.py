"""The one set of numeric limits, shared by TOML profiles, vpn.data and the editor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Limit:
    low: int
    high: Optional[int] = None   # None: no upper bound

    def allows(self, value: int) -> bool:
        return value >= self.low and (self.high is None or value <= self.high)

    @property
    def allowed(self) -> str:
        return f"from {self.low} to {self.high}" if self.high is not None else f"{self.low} or more"

    def problem(self, value: int) -> str:
        return f"{value} is out of range (allowed: {self.allowed})"


# Keyed by Profile field (or session setting) name. dpd and reauth have no upper bound: the
# TOML profile never had one, and a long interval is harmless (a timer).
PORT = Limit(1, 65535)
MTU = Limit(1280, 9000)
DPD = Limit(0)
REAUTH = Limit(0)
RETRANSMIT_TIMEOUT = Limit(1, 600)
RETRANSMIT_TRIES = Limit(0, 20)

LIMITS = {"port": PORT, "mtu": MTU, "dpd": DPD, "reauth": REAUTH,
          "retransmit_timeout": RETRANSMIT_TIMEOUT, "retransmit_tries": RETRANSMIT_TRIES}
