"""NetworkManager's vpn.data <-> Profile, and the editor's checks of vpn.data.

The keys are NetworkManager-strongswan's with charon-nm's meanings, plus Cygnet's `cygnet-*`
keys; nm_plugin/vpn_data.py documents them for users. Reading goes vpn.data -> a TOML-style
table -> toml_profile.profile_from_dict, so the same rules and limits decide; errors are
`VpnDataError`s naming the vpn.data key. `field_errors` runs the same checks over what the
editor holds and returns every problem, for the GUI to show beside its fields.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from . import certificates, fields, held_keys, limits
from .errors import FieldError, ProfileError, VpnDataError
from .naming import nm_profile_name
from .profile import DEFAULT_REMOTE_TS, SECRET_METHODS, Profile, is_any_identity
from .toml_profile import profile_from_dict

SERVICE_TYPE = "org.freedesktop.NetworkManager.cygnet"

# NMSettingSecretFlags
SECRET_FLAG_AGENT_OWNED = 0x1
SECRET_FLAG_NOT_SAVED = 0x2
SECRET_FLAG_NOT_REQUIRED = 0x4

# vpn.data method -> Profile.auth; method=eap: cygnet-eap-method names one of NM_EAP_METHODS,
# unset lets the server choose (auth "eap"), as with charon-nm.
NM_EAP_METHODS = ("mschapv2", "md5", "peap", "ttls", "gtc")
_AUTH_OF_METHOD = {"psk": "psk", "eap": "eap", "cert": "pubkey", "key": "pubkey",
                   "eap-tls": "eap-tls"}
# Profile.auth -> (vpn.data method, cygnet-eap-method); RFC 4739's two rounds have no vpn.data form.
METHOD_OF_AUTH = {"psk": ("psk", None), "eap-mschapv2": ("eap", None), "eap-md5": ("eap", "md5"),
                  "pubkey": ("cert", None), "eap-tls": ("eap-tls", None),
                  "eap": ("eap", None), "eap-peap": ("eap", "peap"), "eap-ttls": ("eap", "ttls"),
                  "eap-gtc": ("eap", "gtc")}
# Methods whose `password` secret is needed: derived from the one set in profile.py.
SECRET_METHODS_NM = tuple(m for m, auth in _AUTH_OF_METHOD.items() if auth in SECRET_METHODS)
CERTIFICATE_METHODS = ("cert", "key", "eap-tls")
METHODS = SECRET_METHODS_NM + CERTIFICATE_METHODS
UNSUPPORTED_METHODS: dict = {}  # smartcard and agent: held_keys.py (issue 19)

STRONGSWAN_KEYS = (
    "address", "server-port", "method", "cert-source", "user", "local-identity",
    "remote-identity", "certificate", "usercert", "userkey", "virtual", "encap", "ipcomp",
    "proposal", "ike", "esp", "remote-ts", "local-ts", "password-flags",
)
CYGNET_KEYS = (
    "cygnet-gateways", "cygnet-ipv6", "cygnet-dns", "cygnet-domains", "cygnet-eap-method",
    "cygnet-dataplane", "cygnet-dpd", "cygnet-mtu", "cygnet-retransmit-timeout",
    "cygnet-retransmit-tries", *held_keys.NM_KEYS, "cygnet-kill-switch", "cygnet-allow-lan",
    "cygnet-block-ipv4", "cygnet-block-ipv6",
)
# vpn.data key -> the limit its number must keep (the same Limit objects TOML profiles use).
NUMBER_LIMITS = {"server-port": limits.PORT, "cygnet-mtu": limits.MTU, "cygnet-dpd": limits.DPD,
                 "cygnet-retransmit-timeout": limits.RETRANSMIT_TIMEOUT,
                 "cygnet-retransmit-tries": limits.RETRANSMIT_TRIES}
YES_NO_KEYS = ("virtual", "encap", "ipcomp", "proposal", "cygnet-ipv6", "cygnet-dns",
               "cygnet-kill-switch", "cygnet-allow-lan", "cygnet-block-ipv4", "cygnet-block-ipv6")

# Profile key -> the vpn.data key a profile error is about, so messages name what the user set.
NM_KEY_FOR = {
    "gateway": "address", "port": "server-port", "remote_id": "remote-identity",
    "local_id": "local-identity", "eap_identity": "user", "ca": "certificate",
    "cert": "usercert", "key": "userkey", "ike": "ike", "esp": "esp", "remote_ts": "remote-ts",
    "dataplane": "cygnet-dataplane", "dpd": "cygnet-dpd", "mtu": "cygnet-mtu", "auth": "method",
    "virtual_ip": "virtual", "name": "connection.uuid", "revocation": "cygnet-revocation",
    "eap_only": "cygnet-eap-only",
}


def split_list(text: Optional[str]) -> list[str]:
    """NetworkManager-strongswan separates list items with ';' (commas are tolerated)."""
    return [item.strip() for item in (text or "").replace(",", ";").split(";") if item.strip()]


def secret_flags(data: dict, name: str = "password") -> int:
    try:
        return int(data.get(f"{name}-flags", "0"))
    except ValueError:
        return 0


def needs_password(method: str) -> bool:
    """Whether the method's own secret is the `password` (PSK or EAP password)."""
    return method in SECRET_METHODS_NM


def password_needed(data: dict) -> bool:
    """Whether the connection needs the `password` secret: for a PSK or EAP password, or as
    the passphrase of an encrypted userkey."""
    if needs_password(data.get("method", "")) or held_keys.is_smartcard(data):  # or the PIN
        return True
    return bool(data.get("userkey")) and certificates.key_is_encrypted(data["userkey"])


def _error(key: str, problem: str, kind: str = "", limit=None) -> VpnDataError:
    return VpnDataError(f"vpn.data '{key}': {problem}", key=key, problem=problem, kind=kind, limit=limit)


def yes(data: dict, key: str, default: bool = False) -> bool:
    value = data.get(key)
    if value is None or value == "":
        return default
    if value not in ("yes", "no"):
        raise _error(key, f"'{value}' is not yes or no", "choice")
    return value == "yes"


def number(data: dict, key: str) -> Optional[int]:
    """A whole number, or None when unset. Range: see NUMBER_LIMITS (checked by callers)."""
    value = data.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _error(key, f"'{value}' is not a whole number", "type") from None


def limited_number(data: dict, key: str) -> Optional[int]:
    """A number of NUMBER_LIMITS in its range; errors carry the Limit (for the editor)."""
    limit = NUMBER_LIMITS[key]
    try:
        value = number(data, key)
    except VpnDataError as e:
        e.limit = limit
        raise
    if value is not None and not limit.allows(value):
        raise _error(key, limit.problem(value), "range", limit)
    return value


# ---------------------------------------------------------------------------------------------
# vpn.data -> Profile


def profile_table(data: dict, uuid: str = "", password: Optional[bool] = None) -> dict:
    """The TOML-style table for vpn.data, after the checks only vpn.data has (unsupported
    methods and options, cygnet-* key names). Certificates are read where charon-nm would.
    `password`: whether vpn.secrets holds one (None: not known, e.g. in the editor)."""
    _check_supported(data)
    table: dict = {"name": nm_profile_name(uuid) if uuid else "nm-connection",
                   "gateway": [data["address"].strip(), *split_list(data.get("cygnet-gateways"))]}
    port = number(data, "server-port")
    if port is not None:
        table["port"] = port
    table.update(_authentication(data, password))
    table.update(_gateway_identity(data))
    table.update(_network(data))
    return table


def _check_supported(data: dict) -> None:
    unknown = [k for k in data if k.startswith("cygnet-") and k not in CYGNET_KEYS]
    if unknown:
        raise _error(unknown[0], f"unknown key (Cygnet's keys: {', '.join(CYGNET_KEYS)})", "unknown")
    if not (data.get("address") or "").strip():
        raise _error("address", "the gateway address is missing", "missing")
    method = data.get("method") or ""
    if method in UNSUPPORTED_METHODS:
        raise _error("method", f"'{method}' ({UNSUPPORTED_METHODS[method]}) is not supported by "
                               "Cygnet; use psk, eap, eap-tls or cert", "unsupported")
    if method not in METHODS + held_keys.HELD_METHODS:
        raise _error("method", f"'{method or '(not set)'}' is not one of psk, eap, eap-tls, cert, key",
                     "choice")
    cert_source = data.get("cert-source") or "file"
    if method in CERTIFICATE_METHODS and cert_source not in held_keys.CERT_SOURCES:
        raise _error("cert-source", f"'{cert_source}' is not one of file, smartcard, agent",
                     "choice")
    if yes(data, "ipcomp"):
        raise _error("ipcomp", "IPComp (ipcomp=yes) is not supported by Cygnet; set ipcomp=no",
                     "unsupported")
    if split_list(data.get("local-ts")):
        raise _error("local-ts", "local traffic selectors are not supported by Cygnet (it proposes "
                                 "the virtual IP the gateway assigns); remove local-ts", "unsupported")


def _authentication(data: dict, password: Optional[bool]) -> dict:
    method = data["method"]
    user = data.get("user") or None
    local_identity = data.get("local-identity") or None
    table: dict = {}
    if method == "psk":
        table["auth"] = "psk"
        if local_identity or user:
            table["local_id"] = local_identity or user
    elif method == "eap":
        # As with charon-nm, method=eap lets the server choose among the password methods
        # unless cygnet-eap-method names one.
        eap_method = data.get("cygnet-eap-method") or None
        if eap_method not in (None, *NM_EAP_METHODS):
            raise _error("cygnet-eap-method", f"'{eap_method}' is not one of {', '.join(NM_EAP_METHODS)}",
                         "choice")
        table["auth"] = f"eap-{eap_method}" if eap_method else "eap"
        if not (user or local_identity):
            raise _error("user", "the EAP user name is missing", "missing")
        table["eap_identity"] = user or local_identity
        if local_identity:
            table["local_id"] = local_identity
    elif held_keys.is_smartcard(data) or held_keys.is_agent(data):
        table.update(held_keys.nm_authentication(data, local_identity, _error))
    else:
        table.update(_certificate_authentication(data, method, local_identity, password))
    return table


def _check_key(path: str, password: Optional[bool]) -> None:
    """An encrypted key's passphrase is the `password` secret; `password` says whether it was
    given (None: secrets are not known here, as in the editor)."""
    if certificates.key_is_encrypted(path):
        if password is False:
            raise _error("userkey", f"{path} is encrypted; its passphrase (the 'password' secret) "
                                    "is missing", "missing")
        return
    try:
        certificates.check_unencrypted_key(path)
    except ValueError as e:
        raise _error("userkey", str(e), "file") from None


def _certificate_authentication(data: dict, method: str, local_identity: Optional[str],
                                password: Optional[bool]) -> dict:
    table: dict = {"auth": _AUTH_OF_METHOD[method]}
    for key, target in (("usercert", "cert"), ("userkey", "key")):
        if not data.get(key):
            raise _error(key, f"needed with method={method}", "missing")
        table[target] = data[key]
    _check_key(data["userkey"], password)
    if local_identity:
        table["local_id"] = local_identity
    elif method == "eap-tls":
        table["local_id"] = _identity_of(data["usercert"], "usercert")
    return table


def _identity_of(path: str, key: str) -> str:
    try:
        return certificates.subject_identity(certificates.load_certificate_file(path))
    except ValueError as e:
        raise _error(key, str(e), "file") from None


def _gateway_identity(data: dict) -> dict:
    table: dict = {}
    certificate = data.get("certificate") or None
    remote_identity = data.get("remote-identity") or None
    # charon-nm: "%any" (ID_ANY) falls back to the address, as an empty identity does; the
    # engine then makes the gateway prove the address as a subjectAltName (issue 13 §1).
    any_identity = is_any_identity(remote_identity)
    if any_identity:
        remote_identity = None
    if certificate:
        table["ca"] = certificate
        try:
            ca = certificates.is_ca(certificate)
        except ValueError as e:
            raise _error("certificate", str(e), "file") from None
        if not remote_identity and not any_identity and not ca:
            # charon-nm: a gateway certificate (not a CA) names the gateway by its subject.
            remote_identity = _identity_of(certificate, "certificate")
    if remote_identity:
        table["remote_id"] = remote_identity
    return table


def _network(data: dict) -> dict:
    families = []
    if yes(data, "virtual"):
        families = ["ipv4", "ipv6"] if yes(data, "cygnet-ipv6", default=True) else ["ipv4"]
    table: dict = {"virtual_ip": families, "encap": yes(data, "encap"),
                   "dns": yes(data, "cygnet-dns", default=True),
                   "kill_switch": yes(data, "cygnet-kill-switch"),
                   "allow_lan": yes(data, "cygnet-allow-lan")}
    for family in ("ipv4", "ipv6"):  # unset: automatic (client/killswitch.py)
        if data.get(f"cygnet-block-{family}"):
            table[f"block_{family}"] = yes(data, f"cygnet-block-{family}")
    if yes(data, "proposal"):
        for key in ("ike", "esp"):
            if split_list(data.get(key)):
                table[key] = ",".join(split_list(data.get(key)))
    if split_list(data.get("remote-ts")):
        table["remote_ts"] = split_list(data.get("remote-ts"))
    if data.get("cygnet-dataplane"):
        table["dataplane"] = data["cygnet-dataplane"]
    table.update(held_keys.nm_options(data, yes))  # cygnet-revocation, cygnet-eap-only
    for key, target in (("cygnet-dpd", "dpd"), ("cygnet-mtu", "mtu")):
        value = number(data, key)
        if value is not None:
            table[target] = value
    return table


def checked_profile(table: dict, connection_id: str) -> Profile:
    """profile_from_dict over a profile_table, its errors named by vpn.data key. A psk
    connection's secret comes from NetworkManager: keyring=true only satisfies the file rule
    "psk needs a secret source" and is cleared again."""
    if table.get("auth") == "psk":
        table = dict(table, keyring=True)
    try:
        checked = profile_from_dict(table, Path(f"NetworkManager connection '{connection_id}'"),
                                    base_dir=Path("/"))
    except ProfileError as error:
        key = NM_KEY_FOR.get(error.key or "", error.key)
        raise _error(key, error.problem or str(error), error.kind, error.limit) from None
    return dataclasses.replace(checked, keyring=False)


def profile_from_vpn_data(data: dict, uuid: str = "", connection_id: str = "") -> Profile:
    """vpn.data -> Profile (no secrets involved). Raises VpnDataError."""
    return checked_profile(profile_table(data, uuid), connection_id or uuid or "vpn")


def retransmission(data: dict) -> tuple[Optional[int], Optional[int]]:
    """(timeout seconds, tries) from cygnet-retransmit-*, None where unset; limits checked."""
    return limited_number(data, "cygnet-retransmit-timeout"), limited_number(data, "cygnet-retransmit-tries")


def extra_domains(data: dict) -> tuple[str, ...]:
    return tuple(split_list(data.get("cygnet-domains")))


# ---------------------------------------------------------------------------------------------
# Profile -> vpn.data


def vpn_data_from_profile(profile: Profile) -> dict[str, str]:
    """vpn.data for a Profile (e.g. from an imported .sswan file)."""
    from .errors import ConversionError

    if profile.auth not in METHOD_OF_AUTH:
        raise ConversionError(f"authentication '{profile.auth}' (certificate, then EAP) is not "
                              "available in NetworkManager connections; use 'cygnet up' with a profile",
                              key="auth", kind="unsupported")
    method, eap_method = METHOD_OF_AUTH[profile.auth]
    data = {"address": profile.gateways[0], "method": method}
    if profile.gateways[1:]:
        data["cygnet-gateways"] = ";".join(profile.gateways[1:])
    if profile.port != 500:
        data["server-port"] = str(profile.port)
    if eap_method:
        data["cygnet-eap-method"] = eap_method
    data.update(_identities_to_data(profile, method))
    data.update(_network_to_data(profile))
    if profile.revocation != "relaxed":
        data["cygnet-revocation"] = profile.revocation
    if profile.eap_only:
        data["cygnet-eap-only"] = "yes"
    return data


def _identities_to_data(profile: Profile, method: str) -> dict[str, str]:
    data = {}
    if profile.eap_identity:
        data["user"] = profile.eap_identity
    for attr, key in (("local_id", "local-identity"), ("remote_id", "remote-identity"),
                      ("ca", "certificate"), ("cert", "usercert"), ("key", "userkey")):
        value = getattr(profile, attr)
        if value:
            data[key] = str(value)
    if method == "eap" and "user" not in data and profile.local_id:
        data["user"] = profile.local_id
    return data


def _network_to_data(profile: Profile) -> dict[str, str]:
    data = {}
    if profile.ike or profile.esp:
        data["proposal"] = "yes"
        for attr in ("ike", "esp"):
            if getattr(profile, attr):
                data[attr] = ";".join(split_list(getattr(profile, attr)))
    data["virtual"] = "yes" if profile.virtual_ip else "no"
    if profile.virtual_ip and "ipv6" not in profile.virtual_ip:
        data["cygnet-ipv6"] = "no"
    if set(profile.remote_ts) != set(DEFAULT_REMOTE_TS):
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
    for attr, key in (("kill_switch", "cygnet-kill-switch"), ("allow_lan", "cygnet-allow-lan")):
        if getattr(profile, attr):
            data[key] = "yes"
    for family in ("ipv4", "ipv6"):
        if getattr(profile, f"block_{family}") is not None:
            data[f"cygnet-block-{family}"] = "yes" if getattr(profile, f"block_{family}") else "no"
    return data


# ---------------------------------------------------------------------------------------------
# The editor's checks: every problem at once, each a FieldError naming its vpn.data key


def field_errors(data: dict) -> list[FieldError]:
    """Every problem with vpn.data as the editor holds it (no secrets, no certificate parsing):
    the same host, network, proposal and limit checks the plugin applies when it connects."""
    errors: list[FieldError] = []
    for check in (_check_hosts, _check_method, _check_files, _check_proposals, _check_networks,
                  _check_numbers, _check_domains):
        errors.extend(check(data))
    return errors


def _check_hosts(data: dict) -> list[FieldError]:
    errors = []
    if not (data.get("address") or "").strip():
        errors.append(_error("address", "the gateway address is missing", "missing"))
    for key in ("address", "cygnet-gateways"):
        for host in split_list(data.get(key)):
            if not fields.is_host(host):
                errors.append(_error(key, f"'{host}' is not a host name or IP address", "host"))
    return errors


def _check_method(data: dict) -> list[FieldError]:
    method = data.get("method", "")
    if method in held_keys.HELD_METHODS:
        return [] if method == "smartcard" or data.get("usercert") else [
            _error("usercert", "needed with method=agent (it names the key in ssh-agent)", "missing")]
    if method not in METHODS:
        return [_error("method", f"'{method or '(not set)'}' is not one of psk, eap, eap-tls, cert, key",
                       "choice")]
    errors = []
    if method == "eap" and not (data.get("user") or data.get("local-identity")):
        errors.append(_error("user", "the EAP user name is missing", "missing"))
    if method in CERTIFICATE_METHODS:
        errors.extend(_error(key, f"needed with method={method}", "missing")
                      for key in ("usercert", "userkey") if not data.get(key))
    return errors


def _check_files(data: dict) -> list[FieldError]:
    return [_error(key, f"{data[key]} does not exist", "file")
            for key in ("certificate", "usercert", "userkey", "cygnet-pkcs11-module")
            if data.get(key) and not Path(data[key]).exists()]


def _check_proposals(data: dict) -> list[FieldError]:
    errors = []
    for key in ("ike", "esp"):
        for proposal in split_list(data.get(key)):
            try:
                fields.proposals(key, proposal)
            except ValueError as e:
                errors.append(_error(key, str(e), "proposal"))
                break
    return errors


def _check_networks(data: dict) -> list[FieldError]:
    errors = []
    for text in split_list(data.get("remote-ts")):
        try:
            fields.network(text)
        except ValueError as e:
            errors.append(_error("remote-ts", str(e), "network"))
    return errors


def _check_numbers(data: dict) -> list[FieldError]:
    errors = []
    for key in NUMBER_LIMITS:
        try:
            limited_number(data, key)
        except VpnDataError as e:
            errors.append(e)
    return errors


def _check_domains(data: dict) -> list[FieldError]:
    return [_error("cygnet-domains", f"'{domain}' is not a DNS domain", "format")
            for domain in split_list(data.get("cygnet-domains"))
            if any(c.isspace() or c == "/" for c in domain)]
