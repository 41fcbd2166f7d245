"""Why a connection failed, in plain words, from what NetworkManager and the plugin reported.

Inputs: NetworkManager's VPN state reason (VpnStateChanged), the plugin's Failure code
(org.freedesktop.NetworkManager.VPN.Plugin.Failure: 0 login, 1 connect, 2 bad IP config) and,
when the plugin sends one, its own message text.
"""

from __future__ import annotations

from typing import Optional

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

# Words in the plugin's message (the engine's FatalError texts) and what they mean.
_MESSAGE_HINTS = (
    (("certificate", "not trusted", "identity", "did not authenticate itself"), CERTIFICATE),
    (("wrong password", "wrong user name", "eap", "authentication failed"), WRONG_PASSWORD),
    (("unreachable", "no answer", "no response", "timed out", "no tunnel after", "refused"), UNREACHABLE),
    (("no proposal chosen",), "The gateway accepted none of the proposed algorithms."),
)


def explain(reason: int, plugin_failure: Optional[int] = None, message: str = "") -> str:
    """One or two sentences for a failure notification."""
    lowered = message.lower()
    headline = None
    for words, meaning in _MESSAGE_HINTS:
        if any(word in lowered for word in words):
            headline = meaning
            break
    if headline is None and plugin_failure == PLUGIN_LOGIN_FAILED:
        headline = WRONG_PASSWORD
    if headline is None and plugin_failure == PLUGIN_BAD_IP_CONFIG:
        headline = BAD_IP
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
