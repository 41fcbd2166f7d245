"""The failure kinds of a tunnel and their tokens: the contract between the engine, the
NetworkManager plugin's Failed(u, s, s) signal and the tray (client/failure.py says how a
failure is decided and carried). Tokens cross processes: never rename one. Standard library only.
"""

from __future__ import annotations

import enum


class FailureKind(str, enum.Enum):
    AUTHENTICATION = "authentication"        # the gateway refused our credentials
    IDENTITY_MISMATCH = "identity-mismatch"  # the gateway did not prove the identity we expect
    GATEWAY_UNREACHABLE = "gateway-unreachable"  # no answer (before or after the tunnel was up)
    LOOKUP_FAILED = "lookup-failed"          # the gateway's name does not resolve
    PROPOSAL_MISMATCH = "proposal-mismatch"  # no common IKE/ESP proposal
    CERTIFICATE_UNAVAILABLE = "certificate-unavailable"  # our certificate/key/CA cannot be loaded
    PASSWORD_MISSING = "password-missing"    # no secret to authenticate with
    LOCAL_CONFIGURATION = "local-configuration"  # this machine cannot run the tunnel as set up
    IP_CONFIGURATION = "ip-configuration"    # the gateway's addresses/DNS could not be applied
    PROTOCOL_ERROR = "protocol-error"        # the gateway answered, but the exchange failed
    TUNNEL_LOST = "tunnel-lost"              # a tunnel that was up went away (deleted by the gateway)
    STOPPED = "stopped"                      # stopped on request before it came up


def kind_from_token(token: str):
    """The FailureKind a token names, or None (an older plugin, or none sent)."""
    try:
        return FailureKind(token)
    except ValueError:
        return None
