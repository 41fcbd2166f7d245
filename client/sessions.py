"""The tunnel's IKE sessions: the current one and, during a make-before-break
reauthentication (RFC 4478, RFC 7296 §2.8.3), the new one coming up beside it and the old
one retiring (its DELETE under way). All three share the tunnel's sockets; datagrams go to
the one whose IKE SPIs they carry. No I/O, no clock: the engine drives the sessions."""

from __future__ import annotations

from typing import Optional

CURRENT, REAUTHENTICATING, RETIRING = "current", "reauthenticating", "retiring"


class SessionSet:
    def __init__(self):
        self.current = None
        self.reauthenticating = None
        self.retiring = None

    def start(self, session) -> None:
        """A new attempt: `session` alone."""
        self.current, self.reauthenticating, self.retiring = session, None, None

    def all(self) -> list:
        """Current first, then the new and the retiring one (the order they are pumped in)."""
        return [s for s in (self.current, self.reauthenticating, self.retiring) if s is not None]

    def role(self, session) -> Optional[str]:
        if session is self.current:
            return CURRENT
        if session is self.reauthenticating:
            return REAUTHENTICATING
        if session is self.retiring:
            return RETIRING
        return None

    def for_datagram(self, data: bytes):
        """The session a received datagram belongs to (by its IKE SPIs), or None."""
        sessions = self.all()
        if len(sessions) > 1:
            sessions = [s for s in sessions if s.owns(data)] or sessions[:1]
        return sessions[0] if sessions else None

    def begin_reauthentication(self, session) -> None:
        self.reauthenticating = session

    def reauthentication_failed(self) -> None:
        """The current IKE_SA goes on until the gateway deletes it; then the tunnel reconnects."""
        self.reauthenticating = None

    def switch(self):
        """The new IKE_SA carries the tunnel: it becomes current, the old one retires (one
        retiring before it whose DELETE is still unanswered is dropped). Returns the old one."""
        old = self.current
        self.current, self.reauthenticating, self.retiring = self.reauthenticating, None, old
        return old

    def retired(self) -> None:
        self.retiring = None

    def lost(self):
        """The current IKE_SA is gone: too late for make-before-break. Returns the session
        that was reauthenticating (to close), or None."""
        pending, self.reauthenticating, self.retiring = self.reauthenticating, None, None
        return pending
