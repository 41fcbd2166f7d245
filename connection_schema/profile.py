"""The checked connection profile every form maps to, and the authentication methods."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

AUTH_METHODS = (
    "psk",
    "pubkey",
    "eap-mschapv2",
    "eap-md5",
    "eap-tls",
    "pubkey+eap-mschapv2",
    "pubkey+eap-md5",
)
PASSWORD_METHODS = ("eap-mschapv2", "eap-md5", "pubkey+eap-mschapv2", "pubkey+eap-md5")
CERTIFICATE_METHODS = ("pubkey", "eap-tls", "pubkey+eap-mschapv2", "pubkey+eap-md5")
EAP_METHODS = ("eap-mschapv2", "eap-md5", "eap-tls", "pubkey+eap-mschapv2", "pubkey+eap-md5")
# Enterprise EAP (issue 19): kept apart so the messages listing AUTH_METHODS stay as they were
ENTERPRISE_EAP_AUTH = ("eap", "eap-peap", "eap-ttls", "eap-gtc")
EAP_METHOD_NAMES = ("peap", "ttls", "mschapv2", "gtc", "md5", "tls")
TTLS_INNER = ("eap", "pap", "mschapv2")
DEFAULT_EAP_METHODS = ("peap", "ttls", "mschapv2", "gtc", "md5")  # any password method
# The one password-method set: every auth whose secret is typed (a PSK or an EAP password).
# vpn.data's and the editor's "methods with a password" are derived from it
# (vpn_data.SECRET_METHODS_NM); Profile.needs_password refines it for auth = "eap".
SECRET_METHODS = ("psk",) + PASSWORD_METHODS + ENTERPRISE_EAP_AUTH
VIRTUAL_IP_FAMILIES = ("ipv4", "ipv6")
DATAPLANES = ("userspace", "kernel", "auto")

DEFAULT_REMOTE_TS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))

# remote_id = "%any" accepts any gateway identity (strongSwan's ID_ANY). In vpn.data and .sswan
# it means what an empty identity means there: the gateway must prove the dialled name.
ANY_IDENTITY = "%any"


def is_any_identity(text: Optional[str]) -> bool:
    return (text or "").strip().lower() == ANY_IDENTITY


@dataclass(frozen=True)
class Profile:
    """A checked connection profile. Holds no secrets, only where to find them."""

    name: str
    gateways: tuple[str, ...]
    auth: str
    port: int = 500
    remote_id: Optional[str] = None
    local_id: Optional[str] = None
    psk_file: Optional[Path] = None
    password_file: Optional[Path] = None
    eap_identity: Optional[str] = None
    ca: Optional[Path] = None
    cert: Optional[Path] = None
    key: Optional[Path] = None
    ike: Optional[str] = None
    esp: Optional[str] = None
    virtual_ip: tuple[str, ...] = VIRTUAL_IP_FAMILIES
    remote_ts: tuple = DEFAULT_REMOTE_TS
    dataplane: str = "auto"
    encap: bool = False
    dpd: int = 30
    reauth: int = 0
    mtu: Optional[int] = None
    dns: bool = True
    keyring: bool = False
    eap_methods: tuple[str, ...] = DEFAULT_EAP_METHODS
    eap_server_id: Optional[str] = None
    ttls_inner: str = "eap"
    key_passphrase_file: Optional[Path] = None
    revocation: str = "relaxed"  # client/revocation.py: strict, ifuri or relaxed
    pkcs11_module: Optional[Path] = None  # a smartcard/token (client/smartcard.py)
    pkcs11_token: Optional[str] = None
    pkcs11_key: Optional[str] = None
    pkcs11_key_id: Optional[str] = None
    pin_file: Optional[Path] = None
    eap_only: bool = False  # RFC 5998 (ike/eap_only.py)
    ssh_agent: bool = False  # the key is in ssh-agent (client/ssh_agent_key.py)
    eap_anonymous_identity: Optional[str] = None  # the outer EAP identity of PEAP/TTLS/TLS
    # Leak protection (client/killswitch.py)
    kill_switch: bool = False
    allow_lan: bool = False
    block_ipv4: Optional[bool] = None  # None: on for a full tunnel
    block_ipv6: Optional[bool] = None
    # Where the profile was read from; not part of what the profile means.
    path: Optional[Path] = field(default=None, compare=False)

    @property
    def gateway(self) -> str:
        """The first gateway to try."""
        return self.gateways[0]

    @property
    def auth_rounds(self) -> tuple[str, ...]:
        """Our authentication rounds in order (RFC 4739): ("pubkey", "eap-mschapv2") for
        "pubkey+eap-mschapv2", else the one method."""
        return tuple(self.auth.split("+"))

    @property
    def eap_method(self) -> Optional[str]:
        """The EAP method ("mschapv2", "md5", "tls", "peap", "ttls", "gtc") for EAP profiles,
        "any" when the server chooses (auth = "eap"), else None."""
        if self.auth == "eap":
            return "any"
        if "eap-" not in self.auth:
            return None
        return self.auth.split("eap-", 1)[1]

    @property
    def eap_allowed(self) -> tuple[str, ...]:
        """The EAP methods we accept from the server, preferred first."""
        method = self.eap_method
        return self.eap_methods if method == "any" else ((method,) if method else ())

    @property
    def needs_password(self) -> bool:
        if self.auth == "eap":  # EAP-TLS alone needs no password
            return any(m != "tls" for m in self.eap_methods)
        return self.auth in PASSWORD_METHODS + ENTERPRISE_EAP_AUTH

    @property
    def needs_certificate(self) -> bool:
        return self.auth in CERTIFICATE_METHODS


def identity_warning(profile: Profile) -> Optional[str]:
    """One line for `cygnet up` when the profile accepts any gateway identity (issue 13 §1)."""
    if is_any_identity(profile.remote_id):
        return ("remote_id = \"%any\": any gateway with a certificate from a trusted CA "
                "(or the PSK) is accepted, not only the one you dialled")
    return None
