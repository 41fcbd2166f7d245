"""NetworkManager's `vpn.data` / `vpn.secrets` → a Cygnet `Profile` and its secret.

The keys are NetworkManager-strongswan's, with the meanings charon-nm gives them, so a
connection made for strongSwan's plugin works with `vpn-type cygnet` unchanged:

| key             | meaning (charon-nm's)                                                     |
|-----------------|---------------------------------------------------------------------------|
| address         | gateway host name or address (required)                                   |
| server-port     | gateway IKE port (default 500)                                            |
| method          | psk, eap, eap-tls, cert, key (agent and smartcard: not supported)         |
| cert-source     | where cert/key come from: file (agent, smartcard: not supported)          |
| user            | EAP identity; also our IKE identity when local-identity is not set        |
| local-identity  | our IKE identity (IDi)                                                    |
| remote-identity | the gateway's identity; default: subject of `certificate` if that is the  |
|                 | gateway's own certificate, else the gateway address, which the gateway    |
|                 | must then carry as a subjectAltName (as charon-nm; %any means the same)   |
| certificate     | the gateway's certificate or its CA (default: the system's CA bundle)     |
| usercert        | our certificate (cert, key, eap-tls)                                      |
| userkey         | our private key (PEM or PKCS#12; if encrypted, its passphrase is the      |
|                 | `password` secret, asked like the EAP password)                           |
| virtual         | yes: ask for virtual IPs (IPv4 and IPv6); anything else: none             |
| encap           | yes: force UDP encapsulation of ESP                                       |
| ipcomp          | yes: refused (Cygnet has no IPComp)                                       |
| proposal        | yes: use `ike` and `esp` below; otherwise strongSwan's defaults           |
| ike, esp        | proposals in strongSwan syntax, several separated by ';'                  |
| remote-ts       | networks through the tunnel, ';'-separated (default everything)           |
| local-ts        | refused unless empty (Cygnet proposes what the gateway assigns)           |
| password-flags  | NetworkManager's secret flags for `password` (4: not required)            |

Cygnet's own keys (prefixed, so they never clash with a later NetworkManager-strongswan key):

| key                        | meaning                                                         |
|----------------------------|-----------------------------------------------------------------|
| cygnet-gateways            | more gateways tried after `address`, ';'-separated              |
| cygnet-ipv6                | no: with virtual=yes ask for an IPv4 address only (default yes) |
| cygnet-dns                 | no: ignore the gateway's DNS servers and domains (default yes)  |
| cygnet-domains             | extra DNS search domains, ';'-separated                         |
| cygnet-eap-method          | mschapv2, md5, peap, ttls or gtc for method=eap; unset: the     |
|                            | server chooses among them (as charon-nm)                        |
| cygnet-dataplane           | userspace, kernel or auto (default auto)                        |
| cygnet-dpd                 | dead peer detection interval in seconds (0: off; default 30)    |
| cygnet-mtu                 | MTU of the tunnel interface                                     |
| cygnet-retransmit-timeout  | seconds before the first IKE retransmission (default 4; 1-600)  |
| cygnet-retransmit-tries    | IKE retransmissions before giving up (default 5; 0-20)          |
| cygnet-kill-switch         | yes: nothing leaves outside the tunnel from connect to          |
|                            | disconnect, nor after a failure (client/killswitch.py; default no)|
| cygnet-allow-lan           | yes: with the kill switch, the local networks stay reachable    |
| cygnet-block-ipv4/-ipv6    | yes/no: drop that family outside the tunnel when the tunnel     |
|                            | does not carry it (default: yes on a full tunnel only)          |

The mapping, its checks and limits live in connection_schema/vpn_data.py (shared with the
editor and the .sswan import/export); this module adds the secret and the session settings.

Secrets: `password` in `vpn.secrets` is the PSK (method psk) or the EAP password (method eap).
It is wrapped in a `client.secrets.Secret` at once and never logged or written anywhere.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from client.profile import Profile
from client.secrets import Secret
# The mapping itself lives in connection_schema.vpn_data; these names stay importable here.
from connection_schema import held_keys
from connection_schema.errors import VpnDataError
from connection_schema.vpn_data import (CERTIFICATE_METHODS, CYGNET_KEYS,  # noqa: F401
                                        SECRET_FLAG_AGENT_OWNED, SECRET_FLAG_NOT_REQUIRED,
                                        SECRET_FLAG_NOT_SAVED, UNSUPPORTED_METHODS, checked_profile,
                                        extra_domains, needs_password, password_needed, profile_table,
                                        retransmission, secret_flags)
from connection_schema.vpn_data import NM_EAP_METHODS  # noqa: F401
from connection_schema.vpn_data import SECRET_METHODS_NM as PASSWORD_METHODS  # noqa: F401


@dataclass
class Activation:
    """What the plugin needs to start a tunnel for one NetworkManager connection."""

    profile: Profile
    secret: Optional[Secret] = field(repr=False, default=None)
    connection_id: str = ""
    extra_domains: tuple[str, ...] = ()
    # ike.settings.Settings fields the engine sets on every attempt (retransmission policy).
    session_overrides: dict = field(default_factory=dict)


def unpack(connection: dict) -> tuple[dict, dict, dict]:
    """(connection setting, vpn.data, vpn.secrets) from Connect's a{sa{sv}} (dbus-fast
    Variants or plain values)."""
    def plain(value):
        return getattr(value, "value", value)

    settings = {name: {key: plain(v) for key, v in group.items()} for name, group in connection.items()}
    vpn = settings.get("vpn", {})
    return settings.get("connection", {}), dict(vpn.get("data", {})), dict(vpn.get("secrets", {}))


def is_persistent(connection: dict) -> bool:
    """vpn.persistent: stay connected across outages until the user disconnects."""
    value = connection.get("vpn", {}).get("persistent", False)
    return bool(getattr(value, "value", value))


def needed_secret(connection: dict) -> str:
    """NeedSecrets' answer: "vpn" when the password is missing and required, else ""."""
    _, data, secrets = unpack(connection)
    if held_keys.is_agent(data):  # the ssh-agent socket (connection_schema/held_keys.py)
        return "" if secrets.get("agent") else "vpn"
    if not password_needed(data):
        return ""  # certificates: only an encrypted key needs its passphrase (the `password`)
    if secret_flags(data) & SECRET_FLAG_NOT_REQUIRED:
        return ""
    return "" if secrets.get("password") else "vpn"


def activation_from_connection(connection: dict) -> Activation:
    """Check a connection and build the Activation. Raises VpnDataError in plain words."""
    conn, data, secrets = unpack(connection)
    uuid = str(conn.get("uuid") or "")
    connection_id = str(conn.get("id") or uuid or "vpn")
    table = profile_table(data, uuid, password=bool(secrets.get("password")))
    secret = _held_key_secret(data, secrets) or _secret(data.get("method", ""), secrets)
    profile = checked_profile(table, connection_id)
    return Activation(profile=profile, secret=secret, connection_id=connection_id,
                      extra_domains=extra_domains(data), session_overrides=_overrides(data))


def _secret(method: str, secrets: dict) -> Optional[Secret]:
    """The PSK, EAP password or key passphrase from vpn.secrets, wrapped at once; never logged."""
    password = secrets.get("password") or ""
    if not needs_password(method):
        # the passphrase of an encrypted userkey (checked present by profile_table)
        return Secret(password) if password and method in CERTIFICATE_METHODS else None
    if not password:
        what = "pre-shared key" if method == "psk" else "EAP password"
        raise VpnDataError(f"vpn.secrets 'password': the {what} is missing", key="password",
                           problem=f"the {what} is missing", kind="missing")
    return Secret(password)


def _held_key_secret(data: dict, secrets: dict) -> Optional[Secret]:
    """A smartcard's PIN (`password`) or the ssh-agent socket (`agent`), as charon-nm reads them."""
    if held_keys.is_agent(data):
        if not secrets.get("agent"):
            raise VpnDataError("vpn.secrets 'agent': the ssh-agent socket is missing (SSH_AUTH_SOCK "
                               "of the user, passed by the auth dialog)", key="agent",
                               problem="the ssh-agent socket is missing", kind="missing")
        return Secret(secrets["agent"])
    if held_keys.is_smartcard(data):
        if not secrets.get("password"):
            raise VpnDataError("vpn.secrets 'password': the smartcard's PIN is missing",
                               key="password", problem="the smartcard's PIN is missing",
                               kind="missing")
        return Secret(secrets["password"])
    return None


def _overrides(data: dict) -> dict:
    """ike.settings.Settings fields from cygnet-retransmit-* (limits: connection_schema.limits)."""
    timeout, tries = retransmission(data)
    if timeout is None and tries is None:
        return {}
    from ike.retransmission import RetransmissionPolicy

    default = RetransmissionPolicy()
    return {"retransmission": RetransmissionPolicy(
        tries=default.tries if tries is None else tries,
        timeout=float(default.timeout if timeout is None else timeout), base=default.base)}


def ipv4_u32(address) -> int:
    """NetworkManager's encoding of an IPv4 address: a uint32 holding the address bytes in
    network order, i.e. the bytes read as a little-endian number on x86 (and as NM reads it)."""
    import sys

    return int.from_bytes(ipaddress.IPv4Address(address).packed, sys.byteorder)
