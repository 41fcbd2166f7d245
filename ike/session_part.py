"""What IkeSession's collaborators share: the session that composes them, and read-only
access to its other collaborators (the request channel, the CHILD_SA set, the lifetimes, the
INFORMATIONAL and rekeying exchanges), so that each one reaches the others the same way and
owns nothing of theirs."""

from __future__ import annotations


class SessionPart:
    def __init__(self, session) -> None:
        self._s = session

    @property
    def _requests(self):
        return self._s._requests

    @property
    def _child_sas(self):
        return self._s._child_sas

    @property
    def _lifetimes(self):
        return self._s._lifetimes

    @property
    def _informational(self):
        return self._s._informational

    @property
    def _rekeying(self):
        return self._s._rekeying
