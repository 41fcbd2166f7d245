"""Recovery decisions for a tunnel whose gateway is an HA cluster (issue 16), made once a
second from what the engine sees: the data plane's packet counters and how long the IKE
request we wait for has gone unanswered.

* Inbound silence while we send (a stale node took over: IKE answers, ESP is dead both
  ways): rekey the CHILD_SA (esp_liveness.SilenceWatch). A node that does not know the SA
  answers CHILD_SA_NOT_FOUND and the session sets up a new one; a node that does not answer
  at all runs into the next rule.
* A request unanswered for DESYNC_BUDGET seconds (the original and one retransmission): the
  gateway may be gone, or alive but one message ID ahead of us (the node that took over
  never saw the response to our request: it silently drops every retransmission). A new
  IKE_SA is cheap either way, so start one next to the current one (make-before-break, the
  reauthentication machinery): TUN, addresses, routes and DNS stay. If the gateway is really
  gone it fails, and the old IKE_SA's retransmissions end in the usual reconnect.

The counter restart itself (authentic packets left of the replay window) is spotted in the
userspace data plane (esp_liveness.CounterRestartCheck) and reported as an SA limit; the
kernel's only counts replay drops, so for it a tick checks that they rise while nothing is
accepted (esp_liveness.ReplayStall).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from client.esp_liveness import ReplayStall, SilenceWatch

TICK = 1.0  # seconds between two checks
# Seconds a request may go unanswered before we bring up a new IKE_SA alongside. strongSwan's
# schedule retransmits after 4 s; one retransmission lost with its answer is rare, a cluster
# one message ID ahead drops them all.
DESYNC_BUDGET = 5.0


@dataclass(frozen=True)
class RekeyChildren:
    """Rekey every CHILD_SA of the current IKE_SA."""

    why: str


@dataclass(frozen=True)
class NewIkeSa:
    """Bring up a new IKE_SA next to the current one and switch to it."""

    why: str


class Recovery:
    def __init__(self, silence: Optional[SilenceWatch] = None,
                 desync_budget: float = DESYNC_BUDGET,
                 replay_stall: Optional[ReplayStall] = None):
        self.silence = silence or SilenceWatch()
        # the kernel data plane only: the userspace one reports authentic replays itself
        self.replay_stall = replay_stall
        self.desync_budget = desync_budget
        self._replaced_request: Optional[float] = None  # first_sent of the request we gave up on

    def restart(self) -> None:
        """A new IKE_SA: what was seen of the old one no longer counts."""
        self.silence.restart()
        self._replaced_request = None

    def tick(self, now: float, counters: Iterable, unanswered: Optional[tuple[float, str]]):
        """`counters`: SaCounters of the current CHILD_SAs; `unanswered`: (when the request
        we wait for was first sent, what it is), or None. Returns a decision or None."""
        if unanswered is not None:
            first_sent, what = unanswered
            waited = now - first_sent
            if waited >= self.desync_budget and first_sent != self._replaced_request:
                self._replaced_request = first_sent
                return NewIkeSa(f"no answer to {what} for {waited:.1f} s (gateway gone, or a "
                                f"cluster node that lost our exchange)")
        counters = list(counters)
        if counters and self.replay_stall is not None and self.replay_stall.observe(
                sum(c.packets_in for c in counters), sum(c.replay_drops for c in counters)):
            return RekeyChildren("only replayed ESP arrives (the gateway restarted its "
                                 "sequence numbers: a cluster takeover?)")
        if counters and self.silence.observe(now, sum(c.packets_in for c in counters),
                                             sum(c.packets_out for c in counters)):
            budget = self.silence.budget / 2   # observe() doubled it for next time
            return RekeyChildren(f"nothing received on the CHILD_SA for {budget:.0f} s while "
                                 f"sending (a cluster node that does not know it?)")
        return None


class RecoveryDriver:
    """Runs Recovery once a second on the tunnel's loop while the tunnel is up, and carries
    out what it decides. Engine hooks: `up()` when a CHILD_SA brings the tunnel up,
    `restart()` when a new IKE_SA carries it, `close()`. `pump()` sends what a session queued
    (the engine's pump)."""

    def __init__(self, tunnel, pump):
        self.tunnel = tunnel
        self.pump = pump
        self.recovery: Optional[Recovery] = None
        self._timer = None

    def up(self) -> None:
        if self._timer is None:
            self._tick()
        else:
            self.restart()

    def restart(self) -> None:
        if self.recovery is not None:
            self.recovery.restart()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        from client.esp_liveness import ReplayStall

        t = self.tunnel
        self._timer = t.loop.call_later(TICK, self._tick)
        if self.recovery is None:
            self.recovery = Recovery(replay_stall=ReplayStall()
                                     if t.status.dataplane == "kernel" else None)
        if t.status.state != "up" or t.session is None or t.stopping:
            return
        counters = t.dataplane.counters()
        entries = t.children.entries()
        current = [counters[e.spi_in] for e in entries if e.spi_in in counters]
        decision = self.recovery.tick(t.now(), current, t.session.unanswered_request())
        if isinstance(decision, RekeyChildren):
            t.decided(f"rekeying the CHILD_SA: {decision.why}")
            for child_id in {e.child_id for e in entries}:
                t.session.rekey_child(child_id)
            self.pump()
        elif isinstance(decision, NewIkeSa) and t.sessions.reauthenticating is None:
            t.events.replace_ike_sa(f"new IKE_SA: {decision.why}")
            self.pump()
