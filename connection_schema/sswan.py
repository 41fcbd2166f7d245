"""strongSwan Android ``.sswan`` profiles (JSON) <-> Profile.

The field table for users is in client/sswan.py. Reading checks the JSON, writes key
material (sswan_material) and builds a TOML-style table that toml_profile.profile_from_dict
checks, so .sswan files obey the same rules and limits as every other form; errors are
`SswanError`s naming the dotted field. Fields Cygnet does not honour become warnings.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import limits, sswan_material
from .errors import ConversionError, ProfileError, SswanError
from .profile import DEFAULT_REMOTE_TS, Profile, is_any_identity
from .toml_profile import profile_from_dict

SSWAN_TYPES = {
    "ikev2-eap": "eap-mschapv2",
    "ikev2-cert": "pubkey",
    "ikev2-cert-eap": "pubkey+eap-mschapv2",
    "ikev2-eap-tls": "eap-tls",
    "ikev2-byod-eap": "eap-mschapv2",
}
# Profile.auth -> .sswan type when writing (the first of SSWAN_TYPES for each auth).
# auth "eap" (the server chooses) becomes the app's EAP-MSCHAPv2, which such servers offer.
TYPE_OF_AUTH = {"eap-mschapv2": "ikev2-eap", "eap": "ikev2-eap", "pubkey": "ikev2-cert",
                "pubkey+eap-mschapv2": "ikev2-cert-eap", "eap-tls": "ikev2-eap-tls"}
USES_CERTIFICATE = ("ikev2-cert", "ikev2-cert-eap", "ikev2-eap-tls")
USES_PASSWORD = ("ikev2-eap", "ikev2-cert-eap", "ikev2-byod-eap")

# Where each profile key came from, so errors found by the profile checks name the .sswan field.
FIELD_OF_KEY = {
    "name": "name", "gateway": "remote.addr", "port": "remote.port", "remote_id": "remote.id",
    "local_id": "local.id", "eap_identity": "local.eap_id", "ike": "ike-proposal",
    "esp": "esp-proposal", "mtu": "mtu", "remote_ts": "split-tunneling", "auth": "type",
    "ca": "remote.cert", "cert": "local.p12", "key": "local.p12",
}

KNOWN_FIELDS = {
    "": {"uuid", "name", "type", "remote", "local", "ike-proposal", "esp-proposal", "mtu",
         "dns-servers", "nat-keepalive", "split-tunneling", "apps", "excluded-apps"},
    "remote": {"addr", "port", "id", "cert", "certreq", "revocation"},
    "local": {"eap_id", "id", "p12", "rsa-pss"},
    "split-tunneling": {"subnets", "excluded", "block-ipv4", "block-ipv6"},
}

# A .sswan holds a profile, a CA certificate and a PKCS#12 bundle: a few KB.
MAX_SSWAN_SIZE = 1024 * 1024

_KIND_NAMES = {str: "a string", int: "a whole number", bool: "true or false", list: "a list",
               dict: "a JSON object"}


@dataclass
class SswanImport:
    profile: Profile
    warnings: list[str] = field(default_factory=list)
    display_name: str = ""              # the file's "name", as the app shows it


class Reader:
    """Typed access to the JSON object with errors naming the dotted field."""

    def __init__(self, obj: dict, source: str):
        self.obj = obj
        self.source = source
        self.warnings: list[str] = []

    def fail(self, dotted: str, problem: str, kind: str = "", limit=None) -> SswanError:
        return SswanError(printable(f"{self.source}: field '{dotted}': {problem}"), key=dotted,
                          problem=problem, kind=kind, limit=limit)

    def warn(self, dotted: str, why: str) -> None:
        self.warnings.append(printable(f"{self.source}: field '{dotted}' {why}"))

    def section(self, name: str, required: bool = False) -> dict:
        value = self.obj.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is required", "missing")
            return {}
        if not isinstance(value, dict):
            raise self.fail(name, "must be a JSON object", "type")
        return value

    def get(self, dotted: str, kind: type, required: bool = False) -> Any:
        *parents, last = dotted.split(".")
        table = self.obj
        for parent in parents:
            table = table.get(parent) or {}
        value = table.get(last)
        if value is None or value == "":
            if required:
                raise self.fail(dotted, "is required", "missing")
            return None
        if kind is int and isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # Android's optInt() accepts numeric strings too
        if kind is bool and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"  # likewise optBoolean()
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise self.fail(dotted, f"must be {_KIND_NAMES[kind]}", "type")
        if isinstance(value, str) and printable(value) != value:
            raise self.fail(dotted, "holds a lone surrogate (\\ud800-\\udfff): not valid Unicode text",
                            "format")
        return value

    def warn_unknown_fields(self) -> None:
        for section, known in KNOWN_FIELDS.items():
            table = self.obj if not section else self.obj.get(section)
            if not isinstance(table, dict):
                continue
            for key in table:
                if key not in known:
                    dotted = f"{section}.{key}" if section else key
                    self.warn(dotted, "is not known to Cygnet and was ignored")


# ---------------------------------------------------------------------------------------------
# .sswan -> Profile


def read_sswan(path: Path, material_dir: Path, *, name: Optional[str] = None,
               p12_password: Callable[[str], bytes]) -> SswanImport:
    """Parse a .sswan file, write its key material under `material_dir`, and return the
    equivalent Profile with the warnings for every field that was not honoured.
    `p12_password(what)` gives the PKCS#12 password when the bundle is encrypted."""
    path = Path(path)
    obj = load_json(path)
    if not isinstance(obj, dict):
        raise SswanError(f"{path}: the top level must be a JSON object")
    r = Reader(obj, str(path))
    for section in ("remote", "local", "split-tunneling"):
        r.section(section, required=(section == "remote"))
    sswan_type = _check_header(r)
    table: dict[str, Any] = {
        "name": name or profile_name_from(r.get("name", str)),
        "gateway": r.get("remote.addr", str, required=True),
        "auth": SSWAN_TYPES[sswan_type],
    }
    for key, dotted, kind in (("port", "remote.port", int), ("remote_id", "remote.id", str),
                              ("local_id", "local.id", str), ("ike", "ike-proposal", str),
                              ("esp", "esp-proposal", str), ("mtu", "mtu", int)):
        _put(table, key, r.get(dotted, kind))
    if is_any_identity(table.get("remote_id")):
        # The Android app: no remote.id, or %any, means the gateway must prove the address we
        # dial (a subjectAltName of its certificate): our default when remote_id is not set.
        del table["remote_id"]
    if sswan_type == "ikev2-byod-eap":
        r.warn("type", "'ikev2-byod-eap': BYOD (TNC) assessment is not supported; "
                       "imported as plain EAP authentication")
    _eap_identity(r, sswan_type, table)
    material_dir = Path(os.path.abspath(material_dir))
    # Key material is checked here and written only once the whole file has been checked.
    to_write = _key_material(r, sswan_type, table, material_dir, p12_password)
    ts = _remote_ts(r)
    if ts is not None:
        table["remote_ts"] = ts
    revocation = r.obj.get("remote", {}).get("revocation")
    if isinstance(revocation, dict) and revocation.get("strict") is True:
        table["revocation"] = "strict"  # the app's "strict revocation" (client/revocation.py)
    _warn_unsupported(r)
    r.warn_unknown_fields()
    for family in ("ipv4", "ipv6"):  # client/killswitch.py
        if r.get(f"split-tunneling.block-{family}", bool):
            table[f"block_{family}"] = True
    written = sswan_material.write_material(material_dir, to_write)
    try:
        profile = profile_from_dict(table, path, base_dir=material_dir)
    except ProfileError as e:
        sswan_material.remove_material(material_dir, written)
        if e.key is None:
            raise SswanError(str(e)) from None
        raise r.fail(FIELD_OF_KEY.get(e.key, e.key), e.problem, e.kind, e.limit) from None
    return SswanImport(profile, r.warnings, r.get("name", str))


def load_json(path: Path) -> Any:
    """The JSON value of a .sswan file, read through the one bounded reader."""
    from ike.files import FileRefused, read_bounded

    try:
        raw = read_bounded(path, "", limit=MAX_SSWAN_SIZE)
    except FileRefused as e:
        problem = e.problem
        if problem == "does not exist":  # as `cygnet import` has always said it
            problem = f"cannot be read: {os.strerror(2)}"
        raise SswanError(f"{path}: {problem}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SswanError(f"{path}: is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise SswanError(f"{path}: not valid JSON: {e}") from None
    except RecursionError:
        raise SswanError(f"{path}: not valid JSON: nested too deeply") from None
    except ValueError as e:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise SswanError(f"{path}: not valid JSON: {e}") from None


def printable(text: str) -> str:
    """Text from the file as it can be printed: a lone surrogate ("\\ud800" in JSON) shown
    escaped instead of failing the print."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_header(r: Reader) -> str:
    profile_uuid = r.get("uuid", str, required=True)
    try:
        uuid.UUID(profile_uuid)
    except ValueError:
        raise r.fail("uuid", f"'{profile_uuid}' is not a UUID (RFC 4122)", "format") from None
    r.get("name", str, required=True)
    sswan_type = r.get("type", str, required=True)
    if sswan_type not in SSWAN_TYPES:
        raise r.fail("type", f"'{sswan_type}' is not one of {', '.join(SSWAN_TYPES)}", "choice")
    return sswan_type


def _eap_identity(r: Reader, sswan_type: str, table: dict) -> None:
    eap_id = r.get("local.eap_id", str)
    if sswan_type in USES_PASSWORD:
        if eap_id is None and "local_id" not in table:
            raise r.fail("local.eap_id", f"is required for type '{sswan_type}' (the EAP user name)",
                         "missing")
        _put(table, "eap_identity", eap_id)
    elif eap_id is not None:
        r.warn("local.eap_id", f"is not used by type '{sswan_type}' and was ignored")


def _key_material(r: Reader, sswan_type: str, table: dict, material_dir: Path,
                  p12_password: Callable[[str], bytes]) -> dict[Path, bytes]:
    """Check remote.cert and local.p12, name their files in `table`; the files to write."""
    to_write: dict[Path, bytes] = {}
    ca_data = _base64(r, "remote.cert")
    if ca_data is not None:
        try:
            to_write[material_dir / "ca.pem"] = sswan_material.ca_pem(ca_data)
        except ValueError:
            raise r.fail("remote.cert", "is not an X.509 certificate (DER or PEM)", "format") from None
        table["ca"] = str(material_dir / "ca.pem")
    p12_data = _base64(r, "local.p12")
    if sswan_type not in USES_CERTIFICATE:
        if p12_data is not None:
            r.warn("local.p12", f"is not used by type '{sswan_type}' and was ignored")
        return to_write
    if p12_data is None:
        raise r.fail("local.p12", f"is required for type '{sswan_type}' (the client "
                                  "certificate and key as base64 PKCS#12)", "missing")
    # Encrypted (the usual case): ask for the password the app would have asked for.
    what = f"the PKCS#12 in {r.source} (local.p12)"
    try:
        cert_pem, key_pem, subject = sswan_material.split_pkcs12(p12_data, lambda: p12_password(what))
    except SswanError:
        raise                           # from p12_password: already names what went wrong
    except ValueError as e:
        raise r.fail("local.p12", str(e), "format") from None
    cert_path, key_path = material_dir / "cert.pem", material_dir / "key.pem"
    to_write[cert_path], to_write[key_path] = cert_pem, key_pem
    table["cert"], table["key"] = str(cert_path), str(key_path)
    if sswan_type == "ikev2-eap-tls" and "local_id" not in table:
        table["local_id"] = subject
    return to_write


def profile_name_from(display_name: str) -> str:
    """'Office VPN (Zürich)' -> 'office-vpn-z-rich': a name usable as a file name."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", display_name.lower()).strip("-._")
    return slug[:64].rstrip("-._") or "imported"


def _put(table: dict, key: str, value: Any) -> None:
    if value is not None:
        table[key] = value


def _base64(r: Reader, dotted: str) -> Optional[bytes]:
    text = r.get(dotted, str)
    if text is None:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise r.fail(dotted, "is not valid base64", "format") from None


def _remote_ts(r: Reader) -> Optional[list[str]]:
    included = _networks(r, "split-tunneling.subnets")
    excluded = _networks(r, "split-tunneling.excluded")
    if included is None and excluded is None:
        return None
    if included is None:
        included = list(DEFAULT_REMOTE_TS)
    most = limits.MAX_TRAFFIC_SELECTORS
    try:
        remaining = subtract(included, excluded or [], limit=most)
    except TooManyNetworks:
        raise r.fail("split-tunneling.excluded", f"leaves more than {most} networks to send through "
                     f"the tunnel (an IKE traffic selector payload holds at most {most}: RFC 7296 "
                     "§3.13)", "range") from None
    if not remaining:
        raise r.fail("split-tunneling.excluded", "excludes every included network", "network")
    return [str(n) for n in remaining]


def _networks(r: Reader, dotted: str) -> Optional[list]:
    """Subnets as the app takes them: a list, or one string of space-separated entries;
    each a CIDR, an address, or a range 'a-b'."""
    *_, key = dotted.split(".")
    raw = (r.obj.get("split-tunneling") or {}).get(key)
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, str):
        entries = raw.split()
    elif isinstance(raw, list) and all(isinstance(e, str) for e in raw):
        entries = [e.replace(" ", "") for e in raw]
    else:
        raise r.fail(dotted, "must be a list of strings or a space-separated string", "type")
    networks: list = []
    for entry in entries:
        try:
            if "-" in entry:
                first, last = (ipaddress.ip_address(a) for a in entry.split("-", 1))
                networks.extend(ipaddress.summarize_address_range(first, last))
            else:
                networks.append(ipaddress.ip_network(entry, strict=False))
        except (ValueError, TypeError):
            raise r.fail(dotted, f"'{entry}' is not a subnet, address or address range", "network") from None
    return networks


def subtract(networks: list, excluded: list, limit: Optional[int] = None) -> list:
    """CIDRs covering `networks` minus `excluded`, sorted.

    A sweep over address intervals sorted by start, per family: O((n + m) log(n + m)) plus
    the size of the answer (subtracting each excluded network from every remaining CIDR was
    quadratic: 1,500 IPv6 addresses over many /16s took minutes). With `limit`, stops with
    TooManyNetworks once the answer would be longer."""
    result: list = []
    for version in (4, 6):
        keep = _merged([n for n in networks if n.version == version])
        drop = _merged([n for n in excluded if n.version == version])
        address = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        j = 0
        for start, end in keep:
            while j < len(drop) and drop[j][1] < start:
                j += 1
            k, cursor = j, start
            while k < len(drop) and drop[k][0] <= end:  # the excluded intervals inside this one
                if drop[k][0] > cursor:
                    _add_range(result, address(cursor), address(drop[k][0] - 1), limit)
                cursor = max(cursor, drop[k][1] + 1)
                k += 1
            if cursor <= end:
                _add_range(result, address(cursor), address(end), limit)
    return result


class TooManyNetworks(ValueError):
    pass


def _merged(networks: list) -> list[tuple[int, int]]:
    """Sorted, disjoint, non-adjacent [first, last] integer intervals covering `networks`."""
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in networks)
    merged: list[list[int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(first, last) for first, last in merged]


def _add_range(result: list, first, last, limit: Optional[int]) -> None:
    for network in ipaddress.summarize_address_range(first, last):
        result.append(network)
        if limit is not None and len(result) > limit:
            raise TooManyNetworks(limit)


def _warn_unsupported(r: Reader) -> None:
    if r.get("remote.certreq", bool) is False:
        r.warn("remote.certreq", "= false is not supported: Cygnet always sends certificate requests")
    revocation = r.obj.get("remote", {}).get("revocation")
    if revocation not in (None, {}) and (not isinstance(revocation, dict)
                                         or set(revocation) - {"crl", "ocsp", "strict"}
                                         or revocation.get("crl") is False
                                         or revocation.get("ocsp") is False):
        r.warn("remote.revocation", "crl/ocsp cannot be turned off one by one: Cygnet asks OCSP "
                                    "and the CRLs (only 'strict' is used)")
    if r.get("local.rsa-pss", bool):
        r.warn("local.rsa-pss", "is not supported: the signature scheme follows the gateway's "
                                "SIGNATURE_HASH_ALGORITHMS")
    if r.obj.get("dns-servers") not in (None, "", []):
        r.warn("dns-servers", "is not supported: the DNS servers sent by the gateway are used")
    if r.obj.get("nat-keepalive") not in (None, ""):
        r.warn("nat-keepalive", "is not supported: Cygnet's default NAT keepalive interval is used")
    for family in ("ipv4", "ipv6"):
        if r.get(f"split-tunneling.block-{family}", bool):
            r.warn(f"split-tunneling.block-{family}", f"is taken as block_{family} = true: Cygnet "
                   f"drops {family.replace('ip', 'IP')} outside the tunnel while the tunnel carries none, "
                   "not what falls outside the split-tunnel subnets")
    for key in ("apps", "excluded-apps"):
        if r.obj.get(key) not in (None, "", []):
            r.warn(key, "is Android-only (per-app VPN) and was ignored")


# ---------------------------------------------------------------------------------------------
# Profile -> .sswan


def sswan_from_profile(profile: Profile, profile_uuid: str, display_name: str) -> dict:
    """The .sswan JSON object for a profile. The CA certificate is embedded; for certificate
    types, the certificate and key as PKCS#12 without a password (the file must then be kept
    private). Passwords are never exported."""
    sswan_type = _type_for_export(profile)
    result: dict = {"uuid": profile_uuid, "name": display_name, "type": sswan_type,
                    "remote": _remote_for_export(profile)}
    local: dict = {}
    if sswan_type in USES_PASSWORD and profile.eap_identity:
        local["eap_id"] = profile.eap_identity
    if profile.local_id:
        local["id"] = profile.local_id
    if sswan_type in USES_CERTIFICATE:
        local["p12"] = base64.b64encode(
            sswan_material.pkcs12_from_files(profile.cert, profile.key, display_name)).decode()
    if local:
        result["local"] = local
    for attr in ("ike", "esp"):
        if getattr(profile, attr):
            result[f"{attr}-proposal"] = getattr(profile, attr)
    if profile.mtu:
        result["mtu"] = profile.mtu
    if set(profile.remote_ts) != set(DEFAULT_REMOTE_TS):
        result["split-tunneling"] = {"subnets": " ".join(str(n) for n in profile.remote_ts)}
    for family in ("ipv4", "ipv6"):
        if getattr(profile, f"block_{family}"):
            result.setdefault("split-tunneling", {})[f"block-{family}"] = True
    return result


def _type_for_export(profile: Profile) -> str:
    if profile.auth == "psk":
        raise ConversionError("pre-shared-key connections cannot be exported: strongSwan's "
                              "Android app has no PSK profiles", key="auth", kind="unsupported")
    if profile.auth not in TYPE_OF_AUTH:
        method = profile.auth.rsplit("eap-", 1)[-1].upper()
        raise ConversionError(f"EAP-{method} connections cannot be exported: the Android app uses "
                              "EAP-MSCHAPv2", key="auth", kind="unsupported")
    return TYPE_OF_AUTH[profile.auth]


def _remote_for_export(profile: Profile) -> dict:
    from . import certificates

    remote: dict = {"addr": profile.gateways[0]}
    if profile.port != 500:
        remote["port"] = profile.port
    if profile.remote_id:
        remote["id"] = profile.remote_id
    if profile.ca:
        if Path(profile.ca).is_dir():
            raise ConversionError("the CA is a folder; choose one CA certificate file to export",
                                  key="ca", kind="unsupported")
        remote["cert"] = base64.b64encode(certificates.certificate_der_from_file(profile.ca)).decode()
    return remote
