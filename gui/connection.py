"""A Cygnet VPN connection as NetworkManager stores it, and as the editor shows it.

NetworkManager keeps a connection as settings groups (`a{sa{sv}}`): `connection` (id, uuid,
type "vpn") and `vpn` (service-type, `data` a{ss}, `secrets` a{ss}). The plugin (nm_plugin/
vpn_data.py) reads NetworkManager-strongswan's keys from `vpn.data`; this module only moves
those keys between NetworkManager's settings and the editor. The schema itself — the keys,
the checks and limits, the mappings to profiles and .sswan files — is connection_schema's:
`validate` is its `vpn_data.field_errors` mapped to the editor's fields, so a bad proposal or
an out-of-range number is caught in the editor with the limits the plugin applies.

No secrets live here: `vpn.secrets` is NetworkManager's and the secret agent's business.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dbus_fast import Variant

from connection_schema import held_keys
from connection_schema import vpn_data as schema
from connection_schema.errors import ConversionError, FieldError, SswanError, VpnDataError
from connection_schema.naming import keyring_user
from connection_schema.sswan import read_sswan, sswan_from_profile
from connection_schema.vpn_data import (CERTIFICATE_METHODS, SECRET_FLAG_AGENT_OWNED,  # noqa: F401
                                        SERVICE_TYPE, split_list, vpn_data_from_profile)

VPN_TYPE = "cygnet"

# vpn.data "method" values the plugin accepts, with the words the editor shows.
METHODS = {
    "eap": "Username and password (EAP)",
    "psk": "Pre-shared key",
    "cert": "Certificate",
    "eap-tls": "Certificate (EAP-TLS)",
    "smartcard": "Smartcard (PKCS#11)",
    "agent": "Certificate, key in ssh-agent",
}
PASSWORD_METHODS = schema.SECRET_METHODS_NM
# cygnet-eap-method values for method=eap; "" (unset): the server chooses among them
EAP_METHODS = {"": "Server chooses (PEAP, TTLS, MSCHAPv2, GTC, MD5)", "peap": "PEAP (MSCHAPv2 inside)",
               "ttls": "TTLS", "mschapv2": "EAP-MSCHAPv2", "gtc": "EAP-GTC", "md5": "EAP-MD5"}


def is_cygnet(settings: dict) -> bool:
    """True for a NetworkManager connection of Cygnet's VPN type (plain or Variant values)."""
    conn = settings.get("connection", {})
    vpn = settings.get("vpn", {})
    return _plain(conn.get("type")) == "vpn" and _plain(vpn.get("service-type")) == SERVICE_TYPE


def _plain(value):
    return getattr(value, "value", value)


@dataclass
class VpnConnection:
    """What the editor edits: the name and `vpn.data`, plus NetworkManager's handle."""

    id: str
    data: dict[str, str] = field(default_factory=dict)
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    path: Optional[str] = None          # NetworkManager object path once saved
    autoconnect: bool = False

    @property
    def method(self) -> str:
        return self.data.get("method", "")

    @property
    def gateway(self) -> str:
        return self.data.get("address", "")

    @property
    def needs_password(self) -> bool:
        """The `password` secret: PSK, EAP password, an encrypted key's passphrase or a
        smartcard's PIN (NetworkManager-strongswan's meanings)."""
        return self.secret_kind != "none"

    @property
    def uses_ssh_agent(self) -> bool:
        return held_keys.is_agent(self.data)

    @property
    def secret_kind(self) -> str:
        """What the `password` secret is: "pre-shared key", "password", "PIN",
        "private key passphrase" or "none"."""
        if self.method == "psk":
            return "pre-shared key"
        if self.method == "eap":
            return "password"
        if held_keys.is_smartcard(self.data):
            return "PIN"
        key = self.data.get("userkey")
        if self.method in CERTIFICATE_METHODS and key:
            from connection_schema.certificates import key_is_encrypted

            # a key we (the user) cannot read may be encrypted: the plugin (root) decides
            # whether NetworkManager asks, and then we answer
            if key_is_encrypted(key) or not os.access(key, os.R_OK):
                return "private key passphrase"
        return "none"

    @property
    def keyring_user(self) -> str:
        """The keyring user name for this connection's password (service "cygnet"): the same
        name the plugin gives the profile it builds, nm-<uuid>."""
        return keyring_user(self.uuid)

    def duplicate(self, new_id: str) -> "VpnConnection":
        return VpnConnection(id=new_id, data=dict(self.data))

    # ---------------------------------------------------------------- NetworkManager settings

    @classmethod
    def from_settings(cls, settings: dict, path: Optional[str] = None) -> "VpnConnection":
        conn = {k: _plain(v) for k, v in settings.get("connection", {}).items()}
        vpn = {k: _plain(v) for k, v in settings.get("vpn", {}).items()}
        return cls(id=str(conn.get("id", "")), uuid=str(conn.get("uuid") or uuidlib.uuid4()),
                   data={str(k): str(v) for k, v in dict(vpn.get("data", {})).items()},
                   path=path, autoconnect=bool(conn.get("autoconnect", False)))

    def to_settings(self, base: Optional[dict] = None) -> dict:
        """Settings for Settings.AddConnection / Connection.Update. `base` is what
        GetSettings returned (Variants): everything the editor does not touch is kept."""
        settings = {group: dict(values) for group, values in (base or {}).items()}
        conn = settings.setdefault("connection", {})
        conn.update({"id": Variant("s", self.id), "uuid": Variant("s", self.uuid),
                     "type": Variant("s", "vpn"), "autoconnect": Variant("b", self.autoconnect)})
        vpn = settings.setdefault("vpn", {})
        vpn["service-type"] = Variant("s", SERVICE_TYPE)
        data = dict(self.data)
        if self.needs_password and "password-flags" not in data:
            data["password-flags"] = str(SECRET_FLAG_AGENT_OWNED)
        if self.uses_ssh_agent and "agent-flags" not in data:  # the socket, from our session
            data["agent-flags"] = str(SECRET_FLAG_AGENT_OWNED)
        vpn["data"] = Variant("a{ss}", data)
        vpn.pop("secrets", None)  # agent-owned: NetworkManager hands them to our agent
        for family in ("ipv4", "ipv6"):
            settings.setdefault(family, {}).setdefault("method", Variant("s", "auto"))
        return settings


# ------------------------------------------------------------------------------ validation

# The editor's words for some of the schema's errors (by vpn.data key and kind); the others
# are shown as the schema words them.
_FIELD_TEXT = {
    ("address", "missing"): "The gateway address is required.",
    ("method", "choice"): "Choose how to authenticate.",
    ("user", "missing"): "The user name is required for EAP.",
    ("usercert", "missing"): "Choose the file with your certificate.",
    ("userkey", "missing"): "Choose the file with your private key.",
}


def field_message(error: FieldError, data: dict) -> str:
    """How the editor words one of connection_schema's errors beside its field."""
    key, kind = error.key, error.kind
    if (key, kind) in _FIELD_TEXT:
        return _FIELD_TEXT[(key, kind)]
    if kind == "file":
        return f"{data[key]}: no such file."
    if kind in ("range", "type") and error.limit is not None:
        limit = error.limit
        allowed = (f"from {limit.low} to {limit.upper}" if limit.upper is not None
                   else f"of {limit.allowed}")
        return f"'{data[key]}' is not a number {allowed}."
    return f"{error.problem[:1].upper()}{error.problem[1:]}." if kind != "proposal" else error.problem


def validate(connection: VpnConnection) -> dict[str, str]:
    """Problems with what the user entered: {vpn.data key (or "id"): message}. Empty: fine."""
    errors: dict[str, str] = {}
    if not connection.id.strip():
        errors["id"] = "Give the connection a name."
    for error in schema.field_errors(connection.data):
        errors.setdefault(error.key, field_message(error, connection.data))
    return errors


# ------------------------------------------------------------------------------ profiles, .sswan


data_from_profile = vpn_data_from_profile      # vpn.data for a Profile (the old name)


def import_sswan(path: Path, material_dir: Path, ask_password) -> tuple[VpnConnection, list[str]]:
    """A .sswan file → a new (unsaved) VpnConnection and the warnings about fields not honoured.
    Key material is written under material_dir (mode 0700) by connection_schema; `ask_password`
    (prompt → str, "" to cancel) is called when the PKCS#12 bundle is encrypted."""
    def p12_password(what: str) -> bytes:
        password = ask_password(f"the certificate bundle in {Path(path).name}")
        if not password:
            raise SswanError(f"{path}: the certificate bundle (local.p12) needs its password")
        return password.encode()

    try:
        result = read_sswan(Path(path), Path(material_dir), p12_password=p12_password)
        data = vpn_data_from_profile(result.profile)
    except SswanError as error:
        raise ConversionError(str(error)) from None
    return VpnConnection(id=result.display_name or result.profile.name, data=data), list(result.warnings)


def export_sswan(connection: VpnConnection) -> dict:
    """The .sswan JSON object for a connection (strongSwan's Android profile format), made
    through the profile the plugin would build from it. Passwords are never exported."""
    try:
        profile = schema.profile_from_vpn_data(connection.data, connection.uuid, connection.id)
    except VpnDataError as error:
        raise ConversionError(str(error)) from None
    return sswan_from_profile(profile, connection.uuid, connection.id)
