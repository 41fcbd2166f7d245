"""Holding IKE_AUTH until the owner has checked the gateway certificate's revocation status.

ike/ does no I/O, so it cannot fetch CRLs or ask OCSP responders. When
`AuthSettings.check_revocation` is set, the session stops right after the gateway's AUTH and
certificate chain verified (the IKE_AUTH response that carries them) and before anything
else happens: before an EAP response with our credentials is sent, before the first CHILD_SA
is reported, before a second authentication round (RFC 4739). It reports
`GatewayCertificateVerified(chain)`; the owner answers with
`IkeSession.revocation_checked(failure, now)`: None continues where the session stopped, a
message ends the session with AuthenticationFailed(message) and nothing more is sent to
that gateway.
"""

from __future__ import annotations

from typing import Callable, Optional

from .events import GatewayCertificateVerified


class RevocationGate:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.chain: tuple = ()            # DER, end entity first, trust anchor last
        self._resume: Optional[Callable[[float], None]] = None
        self._done = False

    @property
    def waiting(self) -> bool:
        return self._resume is not None

    def hold(self, resume: Callable[[float], None], events) -> bool:
        """True if processing must stop here until the owner's verdict."""
        if not self.enabled or self._done or not self.chain:
            return False
        self._resume = resume
        events.append(GatewayCertificateVerified(self.chain))
        return True

    def verdict(self) -> Optional[Callable[[float], None]]:
        """The continuation to run (once), or None if nothing was held."""
        resume, self._resume = self._resume, None
        if resume is not None:
            self._done = True
        return resume
