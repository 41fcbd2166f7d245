"""Retransmission of the one outstanding request (RFC 7296 §2.1, §2.4).

IKEv2 requests are retransmitted by the initiator of the exchange only; responses are never
retransmitted on a timer, only re-sent when a duplicate request arrives.

The schedule is strongSwan's: the n-th retransmission (n = 1 … tries) leaves
``timeout * base ** (n - 1)`` seconds after the previous send, and the request is given up
``timeout * base ** tries`` seconds after the last one. With the defaults (5, 4.0, 1.8) that
is sends at 0, 4, 11.2, 24.2, 47.5, 89.5 s and giving up at 165.1 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetransmissionPolicy:
    """strongSwan's charon.retransmit_tries / _timeout / _base."""

    tries: int = 5
    timeout: float = 4.0
    base: float = 1.8

    def delay(self, sends_so_far: int) -> float:
        """Seconds to wait after the `sends_so_far`-th transmission (1-based)."""
        return self.timeout * self.base ** (sends_so_far - 1)


@dataclass
class PendingRequest:
    """One request we sent and whose response has not arrived yet."""

    message_id: int
    exchange: int
    datagrams: list[bytes] = field(repr=False)  # one, or all its RFC 7383 fragments
    policy: RetransmissionPolicy
    deadline: float = 0.0
    sends: int = 0
    first_sent: float = 0.0

    def sent(self, now: float) -> None:
        if not self.sends:
            self.first_sent = now
        self.sends += 1
        self.deadline = now + self.policy.delay(self.sends)

    @property
    def exhausted(self) -> bool:
        """True once the original and all `tries` retransmissions have timed out."""
        return self.sends > self.policy.tries
