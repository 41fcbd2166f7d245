"""The one set of numeric limits, shared by TOML profiles, vpn.data, .sswan and the editor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Limit:
    low: int
    high: Optional[int] = None   # None: documented as "low or more"...
    cap: Optional[int] = None    # ...but bounded by sense (a number too big to mean anything)

    def allows(self, value: int) -> bool:
        return self.low <= value <= (self.high if self.high is not None else self.cap or value)

    @property
    def allowed(self) -> str:
        return f"from {self.low} to {self.high}" if self.high is not None else f"{self.low} or more"

    @property
    def upper(self) -> Optional[int]:
        return self.high if self.high is not None else self.cap

    def problem(self, value: int) -> str:
        if value < self.low or (self.high is not None and value > self.high):
            return f"{value} is out of range (allowed: {self.allowed})"
        shown = value if value.bit_length() < 64 else f"a {len(str(value))}-digit number"
        return f"{shown} is out of range (at most {self.cap})"


# Longest dpd / reauth interval in seconds (a year): anything longer means "never", and a
# bigger number (10**400) would not even fit a float timer.
MAX_INTERVAL = 365 * 24 * 3600
# RFC 7296 §3.13: a traffic selector payload counts its selectors in one octet.
MAX_TRAFFIC_SELECTORS = 255

PORT = Limit(1, 65535)
MTU = Limit(1280, 9000)
DPD = Limit(0, cap=MAX_INTERVAL)
REAUTH = Limit(0, cap=MAX_INTERVAL)
RETRANSMIT_TIMEOUT = Limit(1, 600)
RETRANSMIT_TRIES = Limit(0, 20)

# Keyed by Profile field (or session setting) name.
LIMITS = {"port": PORT, "mtu": MTU, "dpd": DPD, "reauth": REAUTH,
          "retransmit_timeout": RETRANSMIT_TIMEOUT, "retransmit_tries": RETRANSMIT_TRIES}
