"""strongSwan Android ``.sswan`` profiles (JSON) turned into Cygnet profiles.

The format is the one documented on strongSwan's "Android VPN client profiles" page. How
each field is used here:

| .sswan field                    | Cygnet profile |
|---------------------------------|----------------|
| uuid, name                      | checked; name gives the profile name unless ``--name`` is given |
| type ``ikev2-eap``              | auth = "eap-mschapv2" |
| type ``ikev2-cert``             | auth = "pubkey" |
| type ``ikev2-cert-eap``         | auth = "pubkey+eap-mschapv2" |
| type ``ikev2-eap-tls``          | auth = "eap-tls" |
| type ``ikev2-byod-eap``         | auth = "eap-mschapv2" (BYOD/TNC assessment is not supported: warning) |
| remote.addr / port / id         | gateway / port / remote_id (none, or %any: the gateway must prove remote.addr) |
| remote.cert (base64)            | written to MATERIAL/ca.pem, ca |
| local.eap_id                    | eap_identity |
| local.id                        | local_id (for eap-tls without it: the certificate's subject) |
| local.p12 (base64 PKCS#12)      | split into MATERIAL/cert.pem (+ chain) and MATERIAL/key.pem; its password is asked (client/secrets) |
| ike-proposal / esp-proposal     | ike / esp |
| mtu                             | mtu |
| split-tunneling.subnets         | remote_ts (addresses become /32 or /128, ranges become CIDRs) |
| split-tunneling.excluded        | subtracted from remote_ts |

Fields Cygnet cannot honour (remote.certreq = false, remote.revocation, local.rsa-pss,
dns-servers, nat-keepalive, split-tunneling.block-ipv4/-ipv6, apps, excluded-apps) and
fields it does not know are reported as warnings, never dropped silently. Key material is
written with mode 0600 in a folder with mode 0700.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import ipaddress
import json
import os
import re
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .profile import (
    Profile,
    ProfileError,
    MAX_TRAFFIC_SELECTORS,
    NAME_RULE,
    format_toml,
    is_profile_name,
    load_profile,
    profile_from_dict,
    profile_to_dict,
    user_profile_dir,
)
from .secrets import SecretError, get_file_password
from ike.files import FileRefused, read_bounded

# A .sswan holds a profile, a CA certificate and a PKCS#12 bundle: a few KB.
MAX_SSWAN_SIZE = 1024 * 1024

SSWAN_TYPES = {
    "ikev2-eap": "eap-mschapv2",
    "ikev2-cert": "pubkey",
    "ikev2-cert-eap": "pubkey+eap-mschapv2",
    "ikev2-eap-tls": "eap-tls",
    "ikev2-byod-eap": "eap-mschapv2",
}
_USES_CERTIFICATE = ("ikev2-cert", "ikev2-cert-eap", "ikev2-eap-tls")
_USES_PASSWORD = ("ikev2-eap", "ikev2-cert-eap", "ikev2-byod-eap")

# Where each profile key came from, so errors found by the profile checks name the .sswan field.
_FIELD_OF_KEY = {
    "name": "name", "gateway": "remote.addr", "port": "remote.port", "remote_id": "remote.id",
    "local_id": "local.id", "eap_identity": "local.eap_id", "ike": "ike-proposal",
    "esp": "esp-proposal", "mtu": "mtu", "remote_ts": "split-tunneling", "auth": "type",
    "ca": "remote.cert", "cert": "local.p12", "key": "local.p12",
}

_KNOWN = {
    "": {"uuid", "name", "type", "remote", "local", "ike-proposal", "esp-proposal", "mtu",
         "dns-servers", "nat-keepalive", "split-tunneling", "apps", "excluded-apps"},
    "remote": {"addr", "port", "id", "cert", "certreq", "revocation"},
    "local": {"eap_id", "id", "p12", "rsa-pss"},
    "split-tunneling": {"subnets", "excluded", "block-ipv4", "block-ipv6"},
}


class SswanError(Exception):
    """A .sswan file cannot be used; the message names the file and the field."""


class UnsupportedFieldWarning(UserWarning):
    """A .sswan field Cygnet does not honour."""


@dataclass
class SswanImport:
    profile: Profile
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    toml_path: Path
    profile: Profile
    warnings: list[str]


class _Reader:
    """Typed access to the JSON object with errors naming the dotted field."""

    def __init__(self, obj: dict, source: str):
        self.obj = obj
        self.source = source
        self.warnings: list[str] = []

    def fail(self, dotted: str, problem: str) -> SswanError:
        return SswanError(_printable(f"{self.source}: field '{dotted}': {problem}"))

    def warn(self, dotted: str, why: str) -> None:
        self.warnings.append(_printable(f"{self.source}: field '{dotted}' {why}"))

    def section(self, name: str, required: bool = False) -> dict:
        value = self.obj.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return {}
        if not isinstance(value, dict):
            raise self.fail(name, "must be a JSON object")
        return value

    def get(self, dotted: str, kind: type, required: bool = False) -> Any:
        *parents, last = dotted.split(".")
        table = self.obj
        for parent in parents:
            table = table.get(parent) or {}
        value = table.get(last)
        if value is None or value == "":
            if required:
                raise self.fail(dotted, "is required")
            return None
        if kind is int and isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # Android's optInt() accepts numeric strings too
        if kind is bool and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"  # likewise optBoolean()
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise self.fail(dotted, f"must be {_KIND_NAMES[kind]}")
        if isinstance(value, str) and _printable(value) != value:
            raise self.fail(dotted, "holds a lone surrogate (\\ud800-\\udfff): not valid Unicode text")
        return value

    def warn_unknown_fields(self) -> None:
        for section, known in _KNOWN.items():
            table = self.obj if not section else self.obj.get(section)
            if not isinstance(table, dict):
                continue
            for key in table:
                if key not in known:
                    dotted = f"{section}.{key}" if section else key
                    self.warn(dotted, "is not known to Cygnet and was ignored")


_KIND_NAMES = {str: "a string", int: "a whole number", bool: "true or false", list: "a list",
               dict: "a JSON object"}


# ---------------------------------------------------------------------------------------------
# Reading


def read_sswan(path: Path, material_dir: Path, *, name: Optional[str] = None,
               p12_password_file: Optional[Path] = None,
               ask: Callable[[str], str] = getpass.getpass) -> SswanImport:
    """Parse a .sswan file, write its key material under `material_dir`, and return the
    equivalent Profile with the warnings for every field that was not honoured."""
    path = Path(path)
    source = str(path)
    obj = _load_json(path)
    if not isinstance(obj, dict):
        raise SswanError(f"{source}: the top level must be a JSON object")

    r = _Reader(obj, source)
    for section in ("remote", "local", "split-tunneling"):
        r.section(section, required=(section == "remote"))

    profile_uuid = r.get("uuid", str, required=True)
    try:
        uuid.UUID(profile_uuid)
    except ValueError:
        raise r.fail("uuid", f"'{profile_uuid}' is not a UUID (RFC 4122)") from None
    display_name = r.get("name", str, required=True)
    sswan_type = r.get("type", str, required=True)
    if sswan_type not in SSWAN_TYPES:
        raise r.fail("type", f"'{sswan_type}' is not one of {', '.join(SSWAN_TYPES)}")

    table: dict[str, Any] = {
        "name": name or profile_name_from(display_name),
        "gateway": r.get("remote.addr", str, required=True),
        "auth": SSWAN_TYPES[sswan_type],
    }
    _put(table, "port", r.get("remote.port", int))
    remote_id = r.get("remote.id", str)
    # The Android app: no remote.id, or %any, means the gateway must prove the address we
    # dial (a subjectAltName of its certificate): our default when remote_id is not set.
    _put(table, "remote_id", None if (remote_id or "").strip().lower() == "%any" else remote_id)
    _put(table, "local_id", r.get("local.id", str))
    _put(table, "ike", r.get("ike-proposal", str))
    _put(table, "esp", r.get("esp-proposal", str))
    _put(table, "mtu", r.get("mtu", int))

    if sswan_type == "ikev2-byod-eap":
        r.warn("type", "'ikev2-byod-eap': BYOD (TNC) assessment is not supported; "
                       "imported as plain EAP authentication")

    eap_id = r.get("local.eap_id", str)
    if sswan_type in _USES_PASSWORD:
        if eap_id is None and "local_id" not in table:
            raise r.fail("local.eap_id", f"is required for type '{sswan_type}' (the EAP user name)")
        _put(table, "eap_identity", eap_id)
    elif eap_id is not None:
        r.warn("local.eap_id", f"is not used by type '{sswan_type}' and was ignored")

    material_dir = Path(os.path.abspath(material_dir))
    # Key material is checked here and written only once the whole file has been checked.
    to_write: dict[Path, bytes] = {}
    ca_data = _base64(r, "remote.cert")
    if ca_data is not None:
        table["ca"] = str(_write_ca(r, ca_data, material_dir, to_write))

    p12_data = _base64(r, "local.p12")
    if sswan_type in _USES_CERTIFICATE:
        if p12_data is None:
            raise r.fail("local.p12", f"is required for type '{sswan_type}' (the client "
                                      "certificate and key as base64 PKCS#12)")
        cert_path, key_path, subject = _write_pkcs12(r, p12_data, material_dir,
                                                     p12_password_file, ask, to_write)
        table["cert"], table["key"] = str(cert_path), str(key_path)
        if sswan_type == "ikev2-eap-tls" and "local_id" not in table:
            table["local_id"] = subject
    elif p12_data is not None:
        r.warn("local.p12", f"is not used by type '{sswan_type}' and was ignored")

    ts = _remote_ts(r)
    if ts is not None:
        table["remote_ts"] = ts

    _warn_unsupported(r)
    r.warn_unknown_fields()
    for family in ("ipv4", "ipv6"):  # client/killswitch.py
        if r.get(f"split-tunneling.block-{family}", bool):
            table[f"block_{family}"] = True

    written = _write_material(material_dir, to_write)
    try:
        profile = profile_from_dict(table, path, base_dir=material_dir)
    except ProfileError as e:
        _remove_material(material_dir, written)
        if e.key is None:
            raise SswanError(str(e)) from None
        raise r.fail(_FIELD_OF_KEY.get(e.key, e.key), e.problem) from None
    return SswanImport(profile, r.warnings)


def _load_json(path: Path) -> Any:
    """The JSON value of a .sswan file, read through the one bounded reader."""
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


def _printable(text: str) -> str:
    """Text from the file as it can be printed: a lone surrogate ("\\ud800" in JSON) shown
    escaped instead of failing the print."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def load_sswan(path: Path, material_dir: Path, **options) -> Profile:
    """read_sswan(), with each unhonoured field reported as an UnsupportedFieldWarning."""
    result = read_sswan(path, material_dir, **options)
    for message in result.warnings:
        warnings.warn(message, UnsupportedFieldWarning, stacklevel=2)
    return result.profile


def profile_name_from(display_name: str) -> str:
    """'Office VPN (Zürich)' -> 'office-vpn-z-rich': a name usable as a file name."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", display_name.lower()).strip("-._")
    return slug[:64].rstrip("-._") or "imported"


def _put(table: dict, key: str, value: Any) -> None:
    if value is not None:
        table[key] = value


def _base64(r: _Reader, dotted: str) -> Optional[bytes]:
    text = r.get(dotted, str)
    if text is None:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise r.fail(dotted, "is not valid base64") from None


def _remote_ts(r: _Reader) -> Optional[list[str]]:
    included = _networks(r, "split-tunneling.subnets")
    excluded = _networks(r, "split-tunneling.excluded")
    if included is None and excluded is None:
        return None
    if included is None:
        included = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    try:
        remaining = _subtract(included, excluded or [], limit=MAX_TRAFFIC_SELECTORS)
    except TooManyNetworks:
        raise r.fail("split-tunneling.excluded", f"leaves more than {MAX_TRAFFIC_SELECTORS} networks "
                     "to send through the tunnel (an IKE traffic selector payload holds at most "
                     "255: RFC 7296 §3.13)") from None
    if not remaining:
        raise r.fail("split-tunneling.excluded", "excludes every included network")
    return [str(n) for n in remaining]


def _networks(r: _Reader, dotted: str) -> Optional[list]:
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
        raise r.fail(dotted, "must be a list of strings or a space-separated string")
    networks: list = []
    for entry in entries:
        try:
            if "-" in entry:
                first, last = (ipaddress.ip_address(a) for a in entry.split("-", 1))
                networks.extend(ipaddress.summarize_address_range(first, last))
            else:
                networks.append(ipaddress.ip_network(entry, strict=False))
        except (ValueError, TypeError):
            raise r.fail(dotted, f"'{entry}' is not a subnet, address or address range") from None
    return networks


def _subtract(networks: list, excluded: list, limit: Optional[int] = None) -> list:
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


def _warn_unsupported(r: _Reader) -> None:
    if r.get("remote.certreq", bool) is False:
        r.warn("remote.certreq", "= false is not supported: Cygnet always sends certificate requests")
    if r.obj.get("remote", {}).get("revocation") not in (None, {}):
        r.warn("remote.revocation", "is not supported: revocation settings were ignored")
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
# Key material


def _private_dir(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _load_certificate(data: bytes):
    from cryptography import x509

    try:
        try:
            return x509.load_der_x509_certificate(data)
        except (ValueError, x509.InvalidVersion):
            return x509.load_pem_x509_certificate(data)
    except x509.InvalidVersion as e:  # no ValueError: callers expect one for "not a certificate"
        raise ValueError(str(e)) from None


def _write_material(folder: Path, files: dict[Path, bytes]) -> tuple[bool, list[Path]]:
    """Write the checked key material; (whether the folder was created, the files written)."""
    if not files:
        return False, []
    created = not folder.exists()
    _private_dir(folder)
    for path, data in files.items():
        _write_private(path, data)
    return created, list(files)


def _remove_material(folder: Path, written: tuple[bool, list[Path]]) -> None:
    created, paths = written
    for path in paths:
        path.unlink(missing_ok=True)
    if created:
        try:
            folder.rmdir()
        except OSError:
            pass


def _write_ca(r: _Reader, data: bytes, material_dir: Path, to_write: dict) -> Path:
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        cert = _load_certificate(data)
    except ValueError:
        raise r.fail("remote.cert", "is not an X.509 certificate (DER or PEM)") from None
    path = material_dir / "ca.pem"
    to_write[path] = cert.public_bytes(Encoding.PEM)
    return path


def _write_pkcs12(r: _Reader, data: bytes, material_dir: Path,
                  password_file: Optional[Path], ask: Callable[[str], str],
                  to_write: dict) -> tuple[Path, Path, str]:
    from cryptography.hazmat.primitives.serialization import (
        Encoding, NoEncryption, PrivateFormat, pkcs12)

    bundle = _open_pkcs12_without_password(data)
    if bundle is None:
        # Encrypted (the usual case): ask for the password the app would have asked for.
        try:
            password = get_file_password(f"the PKCS#12 in {r.source} (local.p12)",
                                         password_file, ask)
        except SecretError as e:
            raise SswanError(str(e)) from None
        try:
            bundle = pkcs12.load_pkcs12(data, password.reveal())
        except ValueError:
            raise r.fail("local.p12", "wrong password, or not a PKCS#12 bundle") from None
    if bundle.key is None or bundle.cert is None:
        raise r.fail("local.p12", "must hold a private key and its certificate")

    certificate = bundle.cert.certificate
    chain = [c.certificate for c in bundle.additional_certs]
    cert_path, key_path = material_dir / "cert.pem", material_dir / "key.pem"
    # Our certificate first, then the intermediates the gateway may need.
    to_write[cert_path] = b"".join(c.public_bytes(Encoding.PEM) for c in [certificate, *chain])
    to_write[key_path] = bundle.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return cert_path, key_path, subject_identity(certificate)


def _open_pkcs12_without_password(data: bytes):
    from cryptography.hazmat.primitives.serialization import pkcs12

    for password in (None, b""):
        try:
            return pkcs12.load_pkcs12(data, password)
        except ValueError:
            continue
    return None


def subject_identity(certificate) -> str:
    """The subject DN in strongSwan's order and style: 'C=CH, O=strongSwan, CN=carol'."""
    return ", ".join(rdn.rfc4514_string() for rdn in certificate.subject.rdns)


# ---------------------------------------------------------------------------------------------
# `cygnet import`


def import_sswan(path: Path, profile_dir: Optional[Path] = None, name: Optional[str] = None,
                 force: bool = False, p12_password_file: Optional[Path] = None,
                 ask: Callable[[str], str] = getpass.getpass) -> ImportResult:
    """Write PROFILE_DIR/NAME.toml (and key material in PROFILE_DIR/NAME/) for a .sswan file."""
    profile_dir = Path(os.path.abspath(profile_dir or user_profile_dir()))
    if name is None:
        name = _peek_name(Path(path))
    if not is_profile_name(name):
        # Before anything is written: the name becomes a folder and a file name.
        raise SswanError(f"'{_printable(name)}' is not a profile name: {NAME_RULE}")
    toml_path = profile_dir / f"{name}.toml"
    if toml_path.exists() and not force:
        raise SswanError(f"{toml_path} already exists (use --force to replace it)")
    profile_dir.mkdir(parents=True, exist_ok=True)

    result = read_sswan(path, profile_dir / name, name=name,
                        p12_password_file=p12_password_file, ask=ask)
    text = format_toml(profile_to_dict(result.profile, relative_to=profile_dir),
                       comment=f"Imported by `cygnet import` from {Path(path).name}")
    tmp_path = toml_path.with_name(f".{toml_path.name}.tmp")
    try:
        tmp_path.write_text(text, encoding="utf-8")
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, toml_path)
    finally:
        tmp_path.unlink(missing_ok=True)

    # The written file must mean exactly what was imported.
    written = load_profile(str(toml_path))
    if written != result.profile:
        raise SswanError(f"{toml_path}: internal error: the written profile differs from the import")
    return ImportResult(toml_path, written, result.warnings)


def _peek_name(path: Path) -> str:
    try:
        obj = _load_json(path)
        display_name = obj.get("name") if isinstance(obj, dict) else None
    except SswanError:
        display_name = None  # read_sswan reports the real problem
    if isinstance(display_name, str) and display_name.strip():
        return profile_name_from(display_name)
    return profile_name_from(path.stem)
