"""EAP-only authentication (RFC 5998): the gateway may skip its certificate AUTH and be
authenticated by the EAP method itself — only a method that authenticates the server
(§4: EAP-TLS; TTLS and PEAP, whose TLS tunnel proves the server's certificate before any
credential is sent) — and then by the MSK-based AUTH at the end (§2.16).

The client asks with N(EAP_ONLY_AUTHENTICATION) in its first IKE_AUTH request (§3) when the
settings say so (AuthSettings.eap_only). A gateway may still send its AUTH; then nothing changes.
"""

from __future__ import annotations

from .constants import NotifyType
from .payloads import Notify

MUTUAL_METHODS = frozenset({"tls", "ttls", "peap"})


def request_notifies(auth) -> list:
    if getattr(auth, "eap_only", False) and auth.method == "eap":
        return [Notify(NotifyType.EAP_ONLY_AUTHENTICATION)]
    return []


def may_skip_gateway_auth(auth, eap_client) -> bool:
    """May EAP run before the gateway proved itself? Only when we asked for EAP-only and
    every method we would accept authenticates the server (no password leaves unprotected)."""
    return (getattr(auth, "eap_only", False) and eap_client is not None
            and set(eap_client.allowed) <= MUTUAL_METHODS)
