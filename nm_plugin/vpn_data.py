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
| cygnet-retransmit-timeout  | seconds before the first IKE retransmission (default 4)         |
| cygnet-retransmit-tries    | IKE retransmissions before giving up (default 5)                |
| cygnet-kill-switch         | yes: nothing leaves outside the tunnel from connect to          |
|                            | disconnect, nor after a failure (client/killswitch.py; default no)|
| cygnet-allow-lan           | yes: with the kill switch, the local networks stay reachable    |
| cygnet-block-ipv4/-ipv6    | yes/no: drop that family outside the tunnel when the tunnel     |
|                            | does not carry it (default: yes on a full tunnel only)          |

Secrets: `password` in `vpn.secrets` is the PSK (method psk) or the EAP password (method eap).
It is wrapped in a `client.secrets.Secret` at once and never logged or written anywhere.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from client.profile import Profile, ProfileError, profile_from_dict
from client.secrets import Secret

# NMSettingSecretFlags
SECRET_FLAG_AGENT_OWNED = 0x1
SECRET_FLAG_NOT_SAVED = 0x2
SECRET_FLAG_NOT_REQUIRED = 0x4

PASSWORD_METHODS = ("psk", "eap")
NM_EAP_METHODS = ("mschapv2", "md5", "peap", "ttls", "gtc")
CERTIFICATE_METHODS = ("cert", "key", "eap-tls")
UNSUPPORTED_METHODS = {
    "agent": "keys held by ssh-agent",
    "smartcard": "smartcards (PKCS#11)",
}

CYGNET_KEYS = (
    "cygnet-gateways", "cygnet-ipv6", "cygnet-dns", "cygnet-domains", "cygnet-eap-method",
    "cygnet-dataplane", "cygnet-dpd", "cygnet-mtu", "cygnet-retransmit-timeout",
    "cygnet-retransmit-tries", "cygnet-kill-switch", "cygnet-allow-lan", "cygnet-block-ipv4",
    "cygnet-block-ipv6",
)

# Profile key -> the vpn.data key a profile error is about, so messages name what the user set.
_NM_KEY_FOR = {
    "gateway": "address", "port": "server-port", "remote_id": "remote-identity",
    "local_id": "local-identity", "eap_identity": "user", "ca": "certificate",
    "cert": "usercert", "key": "userkey", "ike": "ike", "esp": "esp", "remote_ts": "remote-ts",
    "dataplane": "cygnet-dataplane", "dpd": "cygnet-dpd", "mtu": "cygnet-mtu", "auth": "method",
    "virtual_ip": "virtual", "name": "connection.uuid",
}


class VpnDataError(Exception):
    """The connection cannot be used; the message names the vpn.data key and says why."""


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


def secret_flags(data: dict, name: str = "password") -> int:
    try:
        return int(data.get(f"{name}-flags", "0"))
    except ValueError:
        return 0


def needed_secret(connection: dict) -> str:
    """NeedSecrets' answer: "vpn" when the password is missing and required, else ""."""
    _, data, secrets = unpack(connection)
    method = data.get("method", "")
    if method not in PASSWORD_METHODS:
        # certificates: only an encrypted key needs its passphrase (the `password` secret)
        if not (data.get("userkey") and _key_is_encrypted(data["userkey"])):
            return ""
    if secret_flags(data) & SECRET_FLAG_NOT_REQUIRED:
        return ""
    return "" if secrets.get("password") else "vpn"


def activation_from_connection(connection: dict) -> Activation:
    """Check a connection and build the Activation. Raises VpnDataError in plain words."""
    conn, data, secrets = unpack(connection)
    uuid = str(conn.get("uuid") or "")
    connection_id = str(conn.get("id") or uuid or "vpn")

    def yes(key: str, default: bool = False) -> bool:
        value = data.get(key)
        if value is None or value == "":
            return default
        if value not in ("yes", "no"):
            raise VpnDataError(f"vpn.data '{key}': '{value}' is not yes or no")
        return value == "yes"

    def number(key: str) -> Optional[int]:
        value = data.get(key)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise VpnDataError(f"vpn.data '{key}': '{value}' is not a whole number") from None

    def listed(key: str) -> list[str]:
        # NetworkManager-strongswan separates list items with ';' (commas are tolerated).
        text = data.get(key) or ""
        return [item.strip() for item in text.replace(",", ";").split(";") if item.strip()]

    unknown = [k for k in data if k.startswith("cygnet-") and k not in CYGNET_KEYS]
    if unknown:
        raise VpnDataError(f"vpn.data '{unknown[0]}': unknown key (Cygnet's keys: {', '.join(CYGNET_KEYS)})")

    address = (data.get("address") or "").strip()
    if not address:
        raise VpnDataError("vpn.data 'address': the gateway address is missing")
    method = data.get("method") or ""
    if method in UNSUPPORTED_METHODS:
        raise VpnDataError(f"vpn.data 'method': '{method}' ({UNSUPPORTED_METHODS[method]}) is not "
                           f"supported by Cygnet; use psk, eap, eap-tls or cert")
    if method not in PASSWORD_METHODS + CERTIFICATE_METHODS:
        raise VpnDataError(f"vpn.data 'method': '{method or '(not set)'}' is not one of "
                           "psk, eap, eap-tls, cert, key")
    cert_source = data.get("cert-source") or "file"
    if method in CERTIFICATE_METHODS and cert_source in UNSUPPORTED_METHODS:
        raise VpnDataError(f"vpn.data 'cert-source': '{cert_source}' ({UNSUPPORTED_METHODS[cert_source]}) "
                           "is not supported by Cygnet; use file")
    if yes("ipcomp"):
        raise VpnDataError("vpn.data 'ipcomp': IPComp (ipcomp=yes) is not supported by Cygnet; set ipcomp=no")
    if listed("local-ts"):
        raise VpnDataError("vpn.data 'local-ts': local traffic selectors are not supported by Cygnet "
                           "(it proposes the virtual IP the gateway assigns); remove local-ts")

    profile: dict = {"name": f"nm-{uuid}" if uuid else "nm-connection",
                     "gateway": [address, *listed("cygnet-gateways")]}
    port = number("server-port")
    if port is not None:
        profile["port"] = port

    user = data.get("user") or None
    local_identity = data.get("local-identity") or None
    if method == "psk":
        profile["auth"] = "psk"
        if local_identity or user:
            profile["local_id"] = local_identity or user
    elif method == "eap":
        # As with charon-nm, method=eap lets the server choose among the password methods
        # unless cygnet-eap-method names one.
        eap_method = data.get("cygnet-eap-method") or None
        if eap_method not in (None, *NM_EAP_METHODS):
            raise VpnDataError(f"vpn.data 'cygnet-eap-method': '{eap_method}' is not one of "
                               f"{', '.join(NM_EAP_METHODS)}")
        profile["auth"] = f"eap-{eap_method}" if eap_method else "eap"
        if not (user or local_identity):
            raise VpnDataError("vpn.data 'user': the EAP user name is missing")
        profile["eap_identity"] = user or local_identity
        if local_identity:
            profile["local_id"] = local_identity
    else:
        profile["auth"] = "eap-tls" if method == "eap-tls" else "pubkey"
        for key, target in (("usercert", "cert"), ("userkey", "key")):
            if not data.get(key):
                raise VpnDataError(f"vpn.data '{key}': needed with method={method}")
            profile[target] = data[key]
        if _key_is_encrypted(data["userkey"]):
            if not (secrets.get("password") or ""):
                raise VpnDataError(f"vpn.data 'userkey': {data['userkey']} is encrypted; its "
                                   "passphrase (the 'password' secret) is missing")
        else:
            _check_unencrypted_key(data["userkey"])
        if local_identity:
            profile["local_id"] = local_identity
        elif method == "eap-tls":
            profile["local_id"] = _certificate_identity(data["usercert"], "usercert")

    certificate = data.get("certificate") or None
    remote_identity = data.get("remote-identity") or None
    # charon-nm: "%any" (ID_ANY) falls back to the address, as an empty identity does; the
    # engine then makes the gateway prove the address as a subjectAltName (issue 13 §1).
    any_identity = (remote_identity or "").strip().lower() == "%any"
    if any_identity:
        remote_identity = None
    if certificate:
        profile["ca"] = certificate
        if not remote_identity and not any_identity and not _is_ca_certificate(certificate):
            # charon-nm: a gateway certificate (not a CA) names the gateway by its subject.
            remote_identity = _certificate_identity(certificate, "certificate")
    if remote_identity:
        profile["remote_id"] = remote_identity

    families = []
    if yes("virtual"):
        families = ["ipv4", "ipv6"] if yes("cygnet-ipv6", default=True) else ["ipv4"]
    profile["virtual_ip"] = families
    profile["encap"] = yes("encap")
    profile["dns"] = yes("cygnet-dns", default=True)
    profile["kill_switch"] = yes("cygnet-kill-switch")
    profile["allow_lan"] = yes("cygnet-allow-lan")
    for family in ("ipv4", "ipv6"):
        if data.get(f"cygnet-block-{family}"):
            profile[f"block_{family}"] = yes(f"cygnet-block-{family}")
    if yes("proposal"):
        for key in ("ike", "esp"):
            if listed(key):
                profile[key] = ",".join(listed(key))
    if listed("remote-ts"):
        profile["remote_ts"] = listed("remote-ts")
    for key, target in (("cygnet-dataplane", "dataplane"),):
        if data.get(key):
            profile[target] = data[key]
    for key, target in (("cygnet-dpd", "dpd"), ("cygnet-mtu", "mtu")):
        value = number(key)
        if value is not None:
            profile[target] = value

    secret = None
    password = secrets.get("password") or ""
    if method in PASSWORD_METHODS:
        if not password:
            what = "pre-shared key" if method == "psk" else "EAP password"
            raise VpnDataError(f"vpn.secrets 'password': the {what} is missing")
        secret = Secret(password)
        # The secret comes from NetworkManager, not from a file or the keyring; keyring=true
        # only satisfies the file-profile rule "psk needs a secret source" and is cleared below.
        if method == "psk":
            profile["keyring"] = True
    elif password and method in CERTIFICATE_METHODS:
        secret = Secret(password)  # the passphrase of an encrypted userkey

    try:
        checked = profile_from_dict(profile, Path(f"NetworkManager connection '{connection_id}'"),
                                    base_dir=Path("/"))
    except ProfileError as error:
        nm_key = _NM_KEY_FOR.get(error.key or "", error.key)
        raise VpnDataError(f"vpn.data '{nm_key}': {error.problem or error}") from None
    checked = dataclasses.replace(checked, keyring=False)

    overrides = {}
    timeout, tries = number("cygnet-retransmit-timeout"), number("cygnet-retransmit-tries")
    if timeout is not None or tries is not None:
        from ike.retransmission import RetransmissionPolicy

        default = RetransmissionPolicy()
        if (timeout is not None and timeout < 1) or (tries is not None and tries < 0):
            raise VpnDataError("vpn.data 'cygnet-retransmit-timeout'/'cygnet-retransmit-tries': "
                               "timeout must be 1 s or more, tries 0 or more")
        overrides["retransmission"] = RetransmissionPolicy(
            tries=default.tries if tries is None else tries,
            timeout=float(default.timeout if timeout is None else timeout), base=default.base)
    return Activation(profile=checked, secret=secret, connection_id=connection_id,
                      extra_domains=tuple(listed("cygnet-domains")), session_overrides=overrides)


def _load_certificate(path: str, key: str):
    from ike.certificates import CertificateError, load_certificates

    try:
        return load_certificates(path)[0]
    except (CertificateError, OSError, IndexError) as error:
        raise VpnDataError(f"vpn.data '{key}': cannot read a certificate from {path}: {error}") from None


def _is_ca_certificate(path: str) -> bool:
    from cryptography import x509

    try:
        if Path(path).is_dir():
            return True
    except (OSError, ValueError) as error:  # a name too long, a NUL: one line, not a traceback
        raise VpnDataError(f"vpn.data 'certificate': {path!r} is not a usable path: "
                           f"{getattr(error, 'strerror', None) or error}") from None
    cert = _load_certificate(path, "certificate")
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _certificate_identity(path: str, key: str) -> str:
    """A certificate's subject DN in strongSwan's notation ("C=CH, O=…, CN=…")."""
    from ike.certificates import format_dn

    cert = _load_certificate(path, key)
    return format_dn(cert.subject.public_bytes())


def _key_is_encrypted(path: str) -> bool:
    from client.credentials import key_is_encrypted

    return key_is_encrypted(path)


def _check_unencrypted_key(path: str) -> None:
    from ike.certificates import CertificateError, load_private_key

    try:
        load_private_key(path)
    except OSError as error:
        raise VpnDataError(f"vpn.data 'userkey': cannot read {path}: {error.strerror}") from None
    except CertificateError as error:
        if "password" in str(error).lower() or "encrypted" in str(error).lower():
            raise VpnDataError(f"vpn.data 'userkey': {path} is encrypted; Cygnet needs an unencrypted "
                               "key (mode 0600)") from None
        raise VpnDataError(f"vpn.data 'userkey': {error}") from None


def ipv4_u32(address) -> int:
    """NetworkManager's encoding of an IPv4 address: a uint32 holding the address bytes in
    network order, i.e. the bytes read as a little-endian number on x86 (and as NM reads it)."""
    import sys

    return int.from_bytes(ipaddress.IPv4Address(address).packed, sys.byteorder)
