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

import getpass
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

# The mapping itself lives in connection_schema.sswan; these names stay importable here.
from connection_schema import sswan as _schema
from connection_schema.certificates import subject_identity  # noqa: F401
from connection_schema.errors import SswanError
from connection_schema.fields import NAME_RULE, is_profile_name
from connection_schema.sswan import (MAX_SSWAN_SIZE, SSWAN_TYPES, SswanImport,  # noqa: F401
                                     TooManyNetworks, load_json, profile_name_from)
from connection_schema.sswan import printable as _printable
from connection_schema.sswan import subtract as _subtract  # noqa: F401

from .profile import Profile, format_toml, load_profile, profile_to_dict, user_profile_dir
from .secrets import SecretError, get_file_password


class UnsupportedFieldWarning(UserWarning):
    """A .sswan field Cygnet does not honour."""


@dataclass
class ImportResult:
    toml_path: Path
    profile: Profile
    warnings: list[str]


def read_sswan(path: Path, material_dir: Path, *, name: Optional[str] = None,
               p12_password_file: Optional[Path] = None,
               ask: Callable[[str], str] = getpass.getpass) -> SswanImport:
    """Parse a .sswan file, write its key material under `material_dir`, and return the
    equivalent Profile with the warnings for every field that was not honoured. An encrypted
    PKCS#12's password comes from `p12_password_file` or is asked (client/secrets)."""
    def p12_password(what: str) -> bytes:
        try:
            return get_file_password(what, p12_password_file, ask).reveal()
        except SecretError as e:
            raise SswanError(str(e)) from None

    return _schema.read_sswan(Path(path), material_dir, name=name, p12_password=p12_password)


def load_sswan(path: Path, material_dir: Path, **options) -> Profile:
    """read_sswan(), with each unhonoured field reported as an UnsupportedFieldWarning."""
    result = read_sswan(path, material_dir, **options)
    for message in result.warnings:
        warnings.warn(message, UnsupportedFieldWarning, stacklevel=2)
    return result.profile


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
        obj = load_json(path)
        display_name = obj.get("name") if isinstance(obj, dict) else None
    except SswanError:
        display_name = None  # read_sswan reports the real problem
    if isinstance(display_name, str) and display_name.strip():
        return profile_name_from(display_name)
    return profile_name_from(path.stem)
