"""A Cygnet VPN connection as NetworkManager stores it, and as the editor shows it.

NetworkManager keeps a connection as settings groups (`a{sa{sv}}`): `connection` (id, uuid,
type "vpn") and `vpn` (service-type, `data` a{ss}, `secrets` a{ss}). The plugin (nm_plugin/
vpn_data.py) reads NetworkManager-strongswan's keys from `vpn.data`; this module only moves
those keys between NetworkManager's settings, the editor's fields, Cygnet profiles (.sswan
import) and .sswan files (export). It checks what the user typed with the same parsers the
engine uses (ike.proposals), so a bad proposal is caught in the editor, not at connect time.

No secrets live here: `vpn.secrets` is NetworkManager's and the secret agent's business.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dbus_fast import Variant

SERVICE_TYPE = "org.freedesktop.NetworkManager.cygnet"
VPN_TYPE = "cygnet"

# vpn.data "method" values the plugin accepts, with the words the editor shows.
METHODS = {
    "eap": "Username and password (EAP)",
    "psk": "Pre-shared key",
    "cert": "Certificate",
    "eap-tls": "Certificate (EAP-TLS)",
}
PASSWORD_METHODS = ("eap", "psk")
CERTIFICATE_METHODS = ("cert", "key", "eap-tls")

# NMSettingSecretFlags: the secret agent (this applet) owns the password.
SECRET_FLAG_AGENT_OWNED = 0x1

# Profile.auth (client/profile.py) -> (vpn.data method, cygnet-eap-method)
_METHOD_OF_AUTH = {
    "psk": ("psk", None), "eap-mschapv2": ("eap", None), "eap-md5": ("eap", "md5"),
    "pubkey": ("cert", None), "eap-tls": ("eap-tls", None),
    "eap": ("eap", None), "eap-peap": ("eap", "peap"), "eap-ttls": ("eap", "ttls"),
    "eap-gtc": ("eap", "gtc"),
}
# vpn.data method -> .sswan type (strongSwan's Android app)
_SSWAN_TYPE = {"eap": "ikev2-eap", "cert": "ikev2-cert", "key": "ikev2-cert",
               "eap-tls": "ikev2-eap-tls"}


def split_list(text: str) -> list[str]:
    """NetworkManager-strongswan separates list items with ';' (commas are tolerated)."""
    return [item.strip() for item in (text or "").replace(",", ";").split(";") if item.strip()]


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
        return self.method in PASSWORD_METHODS

    @property
    def keyring_user(self) -> str:
        """The keyring user name for this connection's password (service "cygnet"): the same
        name the plugin gives the profile it builds, nm-<uuid>."""
        return f"nm-{self.uuid}"

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
        vpn["data"] = Variant("a{ss}", data)
        vpn.pop("secrets", None)  # agent-owned: NetworkManager hands them to our agent
        for family in ("ipv4", "ipv6"):
            settings.setdefault(family, {}).setdefault("method", Variant("s", "auto"))
        return settings


# ------------------------------------------------------------------------------ validation


def validate(connection: VpnConnection) -> dict[str, str]:
    """Problems with what the user entered: {vpn.data key (or "id"): message}. Empty: fine."""
    from ike.proposals import ProposalError, parse_esp_proposals, parse_ike_proposals

    data = connection.data
    errors: dict[str, str] = {}
    if not connection.id.strip():
        errors["id"] = "Give the connection a name."
    if not data.get("address", "").strip():
        errors["address"] = "The gateway address is required."
    for key in ("address", "cygnet-gateways"):
        for host in split_list(data.get(key, "")):
            if any(c.isspace() for c in host) or "/" in host:
                errors[key] = f"'{host}' is not a host name or address."
    method = data.get("method", "")
    if method not in METHODS and method != "key":
        errors["method"] = "Choose how to authenticate."
    if method == "eap" and not (data.get("user") or data.get("local-identity")):
        errors["user"] = "The user name is required for EAP."
    if method in CERTIFICATE_METHODS:
        for key, what in (("usercert", "your certificate"), ("userkey", "your private key")):
            if not data.get(key):
                errors[key] = f"Choose the file with {what}."
    for key in ("certificate", "usercert", "userkey"):
        if data.get(key) and not Path(data[key]).exists():
            errors[key] = f"{data[key]}: no such file."
    for key, parse in (("ike", parse_ike_proposals), ("esp", parse_esp_proposals)):
        text = data.get(key, "")
        if not text:
            continue
        try:
            for proposal in split_list(text):
                parse(proposal)
        except ProposalError as error:
            errors[key] = str(error)
    for network in split_list(data.get("remote-ts", "")):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            errors["remote-ts"] = f"'{network}' is not a network (like 10.0.0.0/8)."
    for key, low, high in (("server-port", 1, 65535), ("cygnet-mtu", 1280, 9000),
                           ("cygnet-dpd", 0, 86400), ("cygnet-retransmit-timeout", 1, 600),
                           ("cygnet-retransmit-tries", 0, 20)):
        text = data.get(key, "")
        if text and (not text.isdigit() or not low <= int(text) <= high):
            errors[key] = f"'{text}' is not a number from {low} to {high}."
    for domain in split_list(data.get("cygnet-domains", "")):
        if any(c.isspace() or c == "/" for c in domain):
            errors["cygnet-domains"] = f"'{domain}' is not a DNS domain."
    return errors


# ------------------------------------------------------------------------------ profiles, .sswan


class ConversionError(Exception):
    """A profile or .sswan file cannot become a NetworkManager connection (or back)."""


def data_from_profile(profile) -> dict[str, str]:
    """vpn.data for a client.profile.Profile (e.g. from an imported .sswan file)."""
    if profile.auth not in _METHOD_OF_AUTH:
        raise ConversionError(f"authentication '{profile.auth}' (certificate, then EAP) is not "
                              "available in NetworkManager connections; use 'cygnet up' with a profile")
    method, eap_method = _METHOD_OF_AUTH[profile.auth]
    data = {"address": profile.gateways[0], "method": method}
    if profile.gateways[1:]:
        data["cygnet-gateways"] = ";".join(profile.gateways[1:])
    if profile.port != 500:
        data["server-port"] = str(profile.port)
    if eap_method:
        data["cygnet-eap-method"] = eap_method
    if profile.eap_identity:
        data["user"] = profile.eap_identity
    for attr, key in (("local_id", "local-identity"), ("remote_id", "remote-identity"),
                      ("ca", "certificate"), ("cert", "usercert"), ("key", "userkey")):
        value = getattr(profile, attr)
        if value:
            data[key] = str(value)
    if method == "eap" and "user" not in data and profile.local_id:
        data["user"] = profile.local_id
    if profile.ike or profile.esp:
        data["proposal"] = "yes"
        for attr in ("ike", "esp"):
            if getattr(profile, attr):
                data[attr] = ";".join(split_list(getattr(profile, attr)))
    data["virtual"] = "yes" if profile.virtual_ip else "no"
    if profile.virtual_ip and "ipv6" not in profile.virtual_ip:
        data["cygnet-ipv6"] = "no"
    everything = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}
    if set(profile.remote_ts) != everything:
        data["remote-ts"] = ";".join(str(n) for n in profile.remote_ts)
    if profile.encap:
        data["encap"] = "yes"
    if not profile.dns:
        data["cygnet-dns"] = "no"
    if profile.mtu:
        data["cygnet-mtu"] = str(profile.mtu)
    if profile.dpd != 30:
        data["cygnet-dpd"] = str(profile.dpd)
    if profile.dataplane != "auto":
        data["cygnet-dataplane"] = profile.dataplane
    return data


def import_sswan(path: Path, material_dir: Path, ask_password) -> tuple[VpnConnection, list[str]]:
    """A .sswan file → a new (unsaved) VpnConnection and the warnings about fields not honoured.
    Key material is written under material_dir (mode 0700) by client.sswan; `ask_password`
    (prompt → str, "" to cancel) is called when the PKCS#12 bundle is encrypted."""
    from client.sswan import SswanError, read_sswan

    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
        name = obj.get("name")
        p12 = (obj.get("local") or {}).get("p12")
    except (OSError, ValueError, AttributeError):
        name = p12 = None
    password_fd = None
    try:
        if p12 and _p12_is_encrypted(p12):
            password = ask_password(f"the certificate bundle in {Path(path).name}")
            if not password:
                raise ConversionError(f"{path}: the certificate bundle (local.p12) needs its password")
            password_fd = _memory_file(password.encode())
        options = {"p12_password_file": Path(f"/proc/self/fd/{password_fd}")} if password_fd else {}
        result = read_sswan(Path(path), Path(material_dir), **options)
    except SswanError as error:
        raise ConversionError(str(error)) from None
    finally:
        if password_fd is not None:
            os.close(password_fd)
    data = data_from_profile(result.profile)
    return VpnConnection(id=str(name or result.profile.name), data=data), list(result.warnings)


def _p12_is_encrypted(text: str) -> bool:
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        raw = base64.b64decode(text)
    except ValueError:
        return False  # client.sswan reports the bad field
    for password in (None, b""):
        try:
            pkcs12.load_pkcs12(raw, password)
            return False
        except ValueError:
            continue
    return True


def _memory_file(content: bytes) -> int:
    """A private in-memory file (memfd, mode 0600) holding `content`: how a typed PKCS#12
    password reaches client.sswan's password-file reader without touching a disk."""
    fd = os.memfd_create("cygnet-p12-password")
    os.fchmod(fd, 0o600)
    os.write(fd, content)
    return fd


def export_sswan(connection: VpnConnection) -> dict:
    """The .sswan JSON object for a connection (strongSwan's Android profile format). The CA
    certificate is embedded; for certificate methods, the certificate and key as PKCS#12 without
    a password (the file must then be kept private). Passwords are never exported."""
    data = connection.data
    method = connection.method
    if method == "psk":
        raise ConversionError("pre-shared-key connections cannot be exported: strongSwan's "
                              "Android app has no PSK profiles")
    if method not in _SSWAN_TYPE:
        raise ConversionError(f"method '{method}' cannot be exported")
    if data.get("cygnet-eap-method", "mschapv2") != "mschapv2" and method == "eap":
        raise ConversionError("EAP-MD5 connections cannot be exported: the Android app uses EAP-MSCHAPv2")
    remote: dict = {"addr": data["address"]}
    if data.get("server-port") and data["server-port"] != "500":
        remote["port"] = int(data["server-port"])
    if data.get("remote-identity"):
        remote["id"] = data["remote-identity"]
    if data.get("certificate"):
        if Path(data["certificate"]).is_dir():
            raise ConversionError("the CA is a folder; choose one CA certificate file to export")
        remote["cert"] = base64.b64encode(_der_certificate(Path(data["certificate"]))).decode()
    local: dict = {}
    if method == "eap" and data.get("user"):
        local["eap_id"] = data["user"]
    if data.get("local-identity"):
        local["id"] = data["local-identity"]
    if method in CERTIFICATE_METHODS:
        local["p12"] = base64.b64encode(_pkcs12(Path(data["usercert"]), Path(data["userkey"]),
                                                connection.id)).decode()
    result: dict = {"uuid": connection.uuid, "name": connection.id, "type": _SSWAN_TYPE[method],
                    "remote": remote}
    if local:
        result["local"] = local
    if data.get("proposal") == "yes":
        for key in ("ike", "esp"):
            if data.get(key):
                result[f"{key}-proposal"] = ",".join(split_list(data[key]))
    if data.get("cygnet-mtu"):
        result["mtu"] = int(data["cygnet-mtu"])
    if data.get("remote-ts"):
        result["split-tunneling"] = {"subnets": " ".join(split_list(data["remote-ts"]))}
    return result


def _der_certificate(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    raw = path.read_bytes()
    cert = x509.load_pem_x509_certificate(raw) if b"-----BEGIN" in raw else x509.load_der_x509_certificate(raw)
    return cert.public_bytes(Encoding.DER)


def _pkcs12(cert_path: Path, key_path: Path, name: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import NoEncryption, load_pem_private_key, pkcs12

    certs = x509.load_pem_x509_certificates(cert_path.read_bytes())
    key = load_pem_private_key(key_path.read_bytes(), password=None)
    return pkcs12.serialize_key_and_certificates(name.encode(), key, certs[0], certs[1:] or None,
                                                 NoEncryption())
