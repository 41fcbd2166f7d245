"""Why a connection failed, in plain words, from what NetworkManager and the plugin reported.

Inputs: NetworkManager's VPN state reason (VpnStateChanged), the plugin's Failure code
(org.freedesktop.NetworkManager.VPN.Plugin.Failure: 0 login, 1 connect, 2 bad IP config) and,
when Cygnet's plugin sends its Failed(u, s, s) signal, its message and the failure's kind
(a client.failure.FailureKind token). The headline comes from tables: by kind first, then by
the plugin's code, then by NetworkManager's reason; the message is never read for meaning.
"""

from __future__ import annotations

from typing import Optional

from connection_schema.failure_kinds import FailureKind, kind_from_token

# NMActiveConnectionStateReason as carried by VPN.Connection.VpnStateChanged
REASON_UNKNOWN, REASON_NONE, REASON_USER_DISCONNECTED, REASON_DEVICE_DISCONNECTED, \
    REASON_SERVICE_STOPPED, REASON_IP_CONFIG_INVALID, REASON_CONNECT_TIMEOUT, \
    REASON_SERVICE_START_TIMEOUT, REASON_SERVICE_START_FAILED, REASON_NO_SECRETS, \
    REASON_LOGIN_FAILED, REASON_CONNECTION_REMOVED = range(12)

# NMVpnPluginFailure
PLUGIN_LOGIN_FAILED, PLUGIN_CONNECT_FAILED, PLUGIN_BAD_IP_CONFIG = 0, 1, 2

WRONG_PASSWORD = "The gateway refused the login: wrong user name or password."
CERTIFICATE = "The gateway's certificate does not match what this connection expects."
UNREACHABLE = "The gateway could not be reached."
NO_SECRETS = "No password was given."
BAD_IP = "The gateway's address or DNS settings could not be applied."
PLUGIN_MISSING = "The Cygnet VPN service could not be started (is the plugin installed?)."
REFUSED = "The connection could not be set up."

_BY_REASON = {
    REASON_LOGIN_FAILED: WRONG_PASSWORD,
    REASON_NO_SECRETS: NO_SECRETS,
    REASON_IP_CONFIG_INVALID: BAD_IP,
    REASON_CONNECT_TIMEOUT: UNREACHABLE,
    REASON_SERVICE_START_TIMEOUT: PLUGIN_MISSING,
    REASON_SERVICE_START_FAILED: PLUGIN_MISSING,
}

# What the user is told for each kind of failure the plugin reports.
BY_KIND = {
    FailureKind.AUTHENTICATION: WRONG_PASSWORD,
    FailureKind.PASSWORD_MISSING: NO_SECRETS,
    FailureKind.IDENTITY_MISMATCH: CERTIFICATE,
    FailureKind.GATEWAY_UNREACHABLE: UNREACHABLE,
    FailureKind.TUNNEL_LOST: UNREACHABLE,
    FailureKind.LOOKUP_FAILED: "The gateway's name could not be found.",
    FailureKind.PROPOSAL_MISMATCH: "The gateway accepted none of the proposed algorithms.",
    FailureKind.CERTIFICATE_UNAVAILABLE: "A certificate or key this connection needs cannot be used.",
    FailureKind.IP_CONFIGURATION: BAD_IP,
    FailureKind.LOCAL_CONFIGURATION: "This computer could not set up the VPN.",
    FailureKind.PROTOCOL_ERROR: "The gateway did not complete the connection.",
}
_BY_PLUGIN_FAILURE = {PLUGIN_LOGIN_FAILED: WRONG_PASSWORD, PLUGIN_BAD_IP_CONFIG: BAD_IP}


def explain(reason: int, plugin_failure: Optional[int] = None, message: str = "",
            kind: Optional[str] = None) -> str:
    """One or two sentences for a failure notification. `kind`: the token from the plugin's
    Failed signal (unknown tokens count as none)."""
    known = kind_from_token(kind) if kind else None
    headline = BY_KIND.get(known) if known is not None else None
    if headline is None:
        headline = _BY_PLUGIN_FAILURE.get(plugin_failure)
    if headline is None:
        headline = _BY_REASON.get(reason)
    if headline is None and plugin_failure == PLUGIN_CONNECT_FAILED:
        headline = UNREACHABLE
    if headline is None:
        headline = REFUSED
    if message and message.rstrip(".").lower() not in headline.lower():
        return f"{headline}\n{message}"
    return headline


def is_failure(reason: int) -> bool:
    """A VPN state change to DISCONNECTED/FAILED with this reason is not what the user asked."""
    return reason not in (REASON_NONE, REASON_USER_DISCONNECTED, REASON_CONNECTION_REMOVED)
