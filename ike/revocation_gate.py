"""Holding IKE_AUTH until the owner has checked the gateway certificate's revocation status.

ike/ does no I/O, so it cannot fetch CRLs or ask OCSP responders. When
`AuthSettings.check_revocation` is set, the session stops right after the gateway's AUTH and
certificate chain verified (the IKE_AUTH response that carries them) and before anything
else happens: before an EAP response with our credentials is sent, before the first CHILD_SA
is reported, before a second authentication round (RFC 4739). It reports
`GatewayCertificateVerified(chain)`; the owner answers with
`IkeSession.revocation_checked(failure, now)`: None continues where the session stopped, a
message ends the session with AuthenticationFailed(message) and nothing more is sent to
that gateway. The TLS certificate of an EAP server (EAP-TLS, PEAP, TTLS; often a RADIUS
server behind the gateway) is held the same way, before the EAP response that follows its
validation is sent (`hold_eap`): no inner credentials go to a revoked EAP server.
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
        self._checked_eap: list = []  # EAP server chains already judged

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

    def hold_eap(self, eap_client, resume: Callable[[float], None], events) -> bool:
        """After an EAP method validated its server's certificate (once per chain)."""
        method = getattr(eap_client, "method", None)
        chain = getattr(method, "verified_chain", None)
        if not self.enabled or not chain:
            return False
        from .session_crypto import der_chain

        der = der_chain(chain)
        if der in self._checked_eap:
            return False
        self._checked_eap.append(der)
        self._resume = resume
        events.append(GatewayCertificateVerified(der, role="EAP server"))
        return True

    def verdict(self) -> Optional[Callable[[float], None]]:
        """The continuation to run (once), or None if nothing was held."""
        resume, self._resume = self._resume, None
        if resume is not None and self.chain:
            self._done = True  # the gateway's chain (an EAP server's is noted in hold_eap)
        return resume
