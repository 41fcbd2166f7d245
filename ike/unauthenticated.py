"""What unauthenticated input may do to a session: leave a hint, and a bounded trace in the log.

RFC 7296 §2.21.1: an error answer to IKE_SA_INIT is not protected, so anyone on the path (or
able to guess our SPI) can send one. It must not end the attempt at once: it is kept as a
hint (`InitRefusal`) and the session keeps waiting for a valid answer for a while.

Every datagram a session drops may be spoofed too: `DropLog` keeps its log lines bounded
(the first few per window, then one count), so a flood cannot fill a log on a tmpfs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field


@dataclass(frozen=True)
class InitRefusal:
    """An unauthenticated refusal of IKE_SA_INIT, acted on only if nothing better arrives."""

    reason: str
    events: tuple  # reported with IkeSaDeleted when we give up (e.g. ProposalMismatch)
    not_before: float  # the earliest moment we give up on a valid answer


@dataclass
class DropLog:
    """At most `burst` lines per `window` seconds; the rest are counted and reported once."""

    logger: logging.Logger
    burst: int = 10
    window: float = 60.0
    _window_start: float = field(default=float("-inf"), repr=False)
    _in_window: int = field(default=0, repr=False)
    _suppressed: int = field(default=0, repr=False)

    def log(self, now: float, level: int, message: str, *args, exc_info=False) -> None:
        if now - self._window_start >= self.window:
            if self._suppressed:
                self.logger.log(level, "%d more dropped datagrams were not logged in the last "
                                "%.0f s", self._suppressed, self.window)
            self._window_start, self._in_window, self._suppressed = now, 0, 0
        if self._in_window >= self.burst:
            self._suppressed += 1
            return
        self._in_window += 1
        self.logger.log(level, message, *args, exc_info=exc_info)
