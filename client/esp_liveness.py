"""Is the CHILD_SA still alive at the other end? Checks an HA cluster's failovers need.

A gateway cluster keeps our IKE_SA across a takeover, but the data plane can die in ways
IKE alone never notices (issue 16):

* **Counter restart**: the new node sends with the same keys and its ESP sequence numbers
  start again at 1. Our replay window drops all of it until its counter passes the old one.
  ``CounterRestartCheck`` decides, per inbound SA, when authentic "replayed" packets prove
  the restart (a rekey then gives both sides fresh counters).
* **Stale node**: a node that missed a CHILD_SA rekey takes over; it answers our DPDs, but
  knows neither our new SPIs nor we its old ones. ESP is dead both ways while IKE is fine.
  ``SilenceWatch`` notices inbound silence while we send, and asks for a CHILD_SA rekey.

Both are pure: they take the time as an argument (or a clock), so tests drive them with a
fake clock. Neither acts: they answer "rekey now", the engine does it.
"""

from __future__ import annotations

import time
from typing import Callable

# Replay drops in a row that prove a restart without looking at the clock (the old rule:
# at 50 packets/s that is 0.3 s).
RESTART_RUN = 16
# Two authentic replays this far apart, with nothing accepted in between, prove it too.
# Network duplicates come in ones and within microseconds of the original; a peer that sends
# a packet every 2 s is spotted with its second packet.
RESTART_SPAN = 0.25
# One authentic replay this far behind the highest sequence number seen proves it at once: a
# duplicate arrives close behind its original, and RFC 4303 §3.4.3's smallest window (64)
# bounds the reordering a receiver must expect. (A packet left of the whole window is farther.)
RESTART_FAR = 64

# Inbound silence while we send, before the first CHILD_SA rekey (then doubling: traffic that
# is one-way on purpose costs a rekey every few minutes at most).
SILENCE_BUDGET = 4.0
SILENCE_BUDGET_MAX = 300.0


class CounterRestartCheck:
    """Per inbound SA: does this replay drop prove that the peer restarted its counter?

    ``replayed`` is called for each replay drop (run = drops since the last accepted packet,
    1 for the first; far_left = at least RESTART_FAR behind the window's top), ``authentic``
    verifies the dropped packet's ICV (only called when the answer matters). True at most
    once per SA: a rekey replaces it.

    An attacker replaying two captured packets RESTART_SPAN apart also gets a True: the cost
    is one CHILD_SA rekey per SA, which is what a counter restart costs anyway."""

    __slots__ = ("clock", "span", "run", "reported", "_first_authentic")

    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 span: float = RESTART_SPAN, run: int = RESTART_RUN):
        self.clock = clock
        self.span = span
        self.run = run
        self.reported = False
        self._first_authentic: float | None = None

    def replayed(self, run: int, far_left: bool, authentic: Callable[[], bool]) -> bool:
        if self.reported:
            return False
        if run == 1:
            self._first_authentic = None  # a new run: the last one ended with an accepted packet
        if not (far_left or run >= self.run or self._first_authentic is None
                or self.clock() - self._first_authentic >= self.span):
            return False  # not conclusive yet: spare the ICV check
        if not authentic():
            return False
        if far_left or run >= self.run or self._first_authentic is not None:
            self.reported = True
            return True
        self._first_authentic = self.clock()
        return False


class SilenceWatch:
    """Per tunnel: inbound silence on the CHILD_SAs while we keep sending.

    ``observe(now, packets_in, packets_out)`` takes the tunnel's packet counters (summed over
    its SAs) every second or so and returns True when a CHILD_SA rekey is due: we have been
    sending for `budget` seconds and nothing came back. Counters that go down (an SA was
    removed) start the watch again."""

    def __init__(self, budget: float = SILENCE_BUDGET, budget_max: float = SILENCE_BUDGET_MAX):
        self.first_budget = budget
        self.budget = budget
        self.budget_max = budget_max
        self._last: tuple[int, int] | None = None
        self._last_time = 0.0
        self._sending_since: float | None = None  # first send seen in this silence

    def restart(self) -> None:
        """Forget what was seen (a new IKE_SA, or a rekey just happened)."""
        self._last = None
        self._sending_since = None

    def observe(self, now: float, packets_in: int, packets_out: int) -> bool:
        last, last_time = self._last, self._last_time
        self._last, self._last_time = (packets_in, packets_out), now
        if last is None or packets_in < last[0] or packets_out < last[1]:
            self._sending_since = None
            return False
        if packets_in > last[0]:
            self._sending_since = None  # alive: the next silence starts from the first budget
            self.budget = self.first_budget
            return False
        if packets_out == last[1]:
            self._sending_since = None  # idle both ways: nothing to conclude
            return False
        if self._sending_since is None:
            self._sending_since = last_time
        if now - self._sending_since < self.budget:
            return False
        self._sending_since = None
        self.budget = min(self.budget * 2, self.budget_max)
        return True


class ReplayStall:
    """For a data plane that drops replays without saying whether they were authentic (the
    kernel's XFRM only counts them, stats_replay): replay drops rising while nothing is
    accepted, `checks` observations in a row, are taken as a counter restart.

    The evidence is unauthenticated (the kernel checks the window before the ICV), so forged
    packets could trigger it: each firing doubles the observations needed next time, and
    accepted traffic resets that. The userspace data plane has CounterRestartCheck instead."""

    def __init__(self, checks: int = 2, checks_max: int = 256):
        self.first_checks = checks
        self.checks = checks
        self.checks_max = checks_max
        self._last: tuple[int, int] | None = None
        self._run = 0

    def observe(self, packets_in: int, replay_drops: int) -> bool:
        last, self._last = self._last, (packets_in, replay_drops)
        if last is None or packets_in < last[0] or replay_drops < last[1]:
            self._run = 0   # first look, or the SAs changed
            return False
        if packets_in > last[0]:
            self._run = 0
            self.checks = self.first_checks
            return False
        self._run = self._run + 1 if replay_drops > last[1] else 0
        if self._run < self.checks:
            return False
        self._run = 0
        self.checks = min(self.checks * 2, self.checks_max)
        return True
