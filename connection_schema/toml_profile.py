"""TOML profile table <-> Profile. The keys are documented in client/profile.py's table.

`profile_from_dict` is also the last check of every other form: vpn.data and .sswan are first
turned into such a table, so one set of rules and limits decides what a connection may be.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from . import fields, held_keys, limits
from .certificates import is_pkcs12
from .errors import ProfileError
from .profile import (AUTH_METHODS, CERTIFICATE_METHODS, DATAPLANES, DEFAULT_EAP_METHODS,
                      DEFAULT_REMOTE_TS, EAP_METHOD_NAMES, EAP_METHODS, ENTERPRISE_EAP_AUTH,
                      PASSWORD_METHODS, TTLS_INNER, VIRTUAL_IP_FAMILIES, Profile)

KNOWN_KEYS = (
    "name", "gateway", "port", "remote_id", "local_id", "auth", "psk_file", "password_file",
    "eap_identity", "ca", "cert", "key", "ike", "esp", "virtual_ip", "remote_ts", "dataplane",
    "encap", "dpd", "reauth", "mtu", "dns", "keyring",
)
ENTERPRISE_EAP_KEYS = ("eap_methods", "eap_server_id", "ttls_inner", "key_passphrase_file",
                       # issue 19's rest (connection_schema/held_keys.py):
                       "revocation", "pkcs11_module", "pkcs11_token", "pkcs11_key",
                       "pkcs11_key_id", "pin_file", "eap_only", "ssh_agent",
                       "eap_anonymous_identity")
LEAK_KEYS = ("kill_switch", "allow_lan", "block_ipv4", "block_ipv6")  # client/killswitch.py


class _Checker:
    """Reads one key at a time and raises ProfileError('<file>: key '<k>': <problem>')."""

    def __init__(self, data: dict, path: Path, base_dir: Path):
        self.data = data
        self.source = str(path)
        self.base_dir = base_dir

    def fail(self, key: str, problem: str, kind: str = "", limit=None) -> ProfileError:
        return ProfileError(f"{self.source}: key '{key}': {problem}", key=key, problem=problem,
                            kind=kind, limit=limit)

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, default: Optional[str] = None) -> Optional[str]:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {_describe(value)}", "type")
        if not value.strip():
            raise self.fail(key, "must not be empty", "missing")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: Optional[str] = None) -> Optional[str]:
        value = self.string(key, default)
        if value is not None and value not in allowed:
            raise self.fail(key, f"'{value}' is not one of {', '.join(allowed)}", "choice")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {_describe(value)}", "type")
        return value

    def integer(self, key: str, default: Optional[int], limit: limits.Limit) -> Optional[int]:
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, not {_describe(value)}", "type")
        if not limit.allows(value):
            raise self.fail(key, limit.problem(value), "range", limit)
        return value

    def string_list(self, key: str, default: tuple, allow_single: bool = False) -> tuple:
        if key not in self.data:
            return default
        value = self.data[key]
        if allow_single and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            kind = "a string or a list of strings" if allow_single else "a list of strings"
            raise self.fail(key, f"must be {kind}, not {_describe(value)}", "type")
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise self.fail(key, f"every entry must be a non-empty string, not {_describe(item)}", "type")
        return tuple(value)

    def path(self, key: str, kind: str = "file") -> Optional[Path]:
        text = self.string(key)
        if text is None:
            return None
        try:
            path = Path(os.path.normpath(self.base_dir / Path(text).expanduser()))
            ok = path.exists() if kind == "file or folder" else path.is_file()
        except (RuntimeError, OSError, ValueError) as e:  # ~nosuchuser, name too long, NUL
            raise self.fail(key, f"'{text}' is not a usable path: {fields.path_problem(e)}", "file") from None
        if not ok:
            raise self.fail(key, f"{path} does not exist or is not a {kind}", "file")
        return path

    def proposals(self, key: str) -> Optional[str]:
        text = self.string(key)
        if text is None:
            return None
        try:
            return fields.proposals(key, text)
        except ValueError as e:
            raise self.fail(key, str(e), "proposal") from None


def _describe(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def profile_from_dict(data: dict, path: Path, base_dir: Optional[Path] = None) -> Profile:
    """Check a parsed TOML table. `path` names the file in messages; relative paths in the
    profile are taken from `base_dir` (default: the folder of `path`)."""
    path = Path(path)
    base = Path(os.path.abspath(base_dir if base_dir is not None else path.parent))
    check = _Checker(data, path, base)

    unknown = [k for k in data if k not in KNOWN_KEYS + ENTERPRISE_EAP_KEYS + LEAK_KEYS]
    if unknown:
        raise check.fail(unknown[0], f"unknown key (known keys: {', '.join(KNOWN_KEYS)})", "unknown")
    name = _name(check, path)
    gateways = _gateways(check)
    if not check.has("auth"):
        raise check.fail("auth", f"is required (one of {', '.join(AUTH_METHODS)})", "missing")
    auth = data["auth"] if data.get("auth") in ENTERPRISE_EAP_AUTH else check.choice("auth", AUTH_METHODS)
    eap_methods = _eap_methods(check)
    virtual_ip = _virtual_ip(check)
    remote_ts = _check_networks(check, "remote_ts")

    profile = Profile(
        name=name,
        gateways=gateways,
        auth=auth,
        port=check.integer("port", 500, limits.PORT),
        remote_id=check.string("remote_id"),
        local_id=check.string("local_id"),
        psk_file=check.path("psk_file"),
        password_file=check.path("password_file"),
        eap_identity=check.string("eap_identity"),
        ca=check.path("ca", kind="file or folder"),
        cert=check.path("cert"),
        key=check.path("key"),
        ike=check.proposals("ike"),
        esp=check.proposals("esp"),
        virtual_ip=virtual_ip,
        remote_ts=remote_ts,
        dataplane=check.choice("dataplane", DATAPLANES, default="auto"),
        encap=check.boolean("encap", False),
        dpd=check.integer("dpd", 30, limits.DPD),
        reauth=check.integer("reauth", 0, limits.REAUTH),
        mtu=check.integer("mtu", None, limits.MTU),
        dns=check.boolean("dns", True),
        keyring=check.boolean("keyring", False),
        eap_methods=eap_methods,
        eap_server_id=check.string("eap_server_id"),
        ttls_inner=check.choice("ttls_inner", TTLS_INNER, default="eap"),
        key_passphrase_file=check.path("key_passphrase_file"),
        revocation=check.choice("revocation", held_keys.REVOCATION_POLICIES, default="relaxed"),
        pkcs11_module=check.path("pkcs11_module"),
        pkcs11_token=check.string("pkcs11_token"),
        pkcs11_key=check.string("pkcs11_key"),
        pkcs11_key_id=check.string("pkcs11_key_id"),
        pin_file=check.path("pin_file"),
        eap_only=check.boolean("eap_only", False),
        ssh_agent=check.boolean("ssh_agent", False),
        eap_anonymous_identity=check.string("eap_anonymous_identity"),
        kill_switch=check.boolean("kill_switch", False),
        allow_lan=check.boolean("allow_lan", False),
        block_ipv4=check.boolean("block_ipv4", None),
        block_ipv6=check.boolean("block_ipv6", None),
        path=path,
    )
    _check_combinations(check, profile)
    return profile


def _name(check: _Checker, path: Path) -> str:
    name = check.string("name", default=path.stem)
    if not fields.NAME_RE.match(name):
        rule = ("may hold only letters, digits, '.', '_' and '-' (at most 64, starting with a "
                "letter or digit)")
        if check.has("name"):
            raise check.fail("name", f"'{name}' {rule}", "format")
        raise check.fail("name", f"not set, and the file name '{name}' is no profile name: a name "
                                 f"{rule}; rename the file or set 'name'", "format")
    return name


def _gateways(check: _Checker) -> tuple:
    if not check.has("gateway"):
        raise check.fail("gateway", "is required (the gateway's host name or address)", "missing")
    gateways = check.string_list("gateway", (), allow_single=True)
    if not gateways:
        raise check.fail("gateway", "must name at least one gateway", "missing")
    for gw in gateways:
        if not fields.is_host(gw):
            raise check.fail("gateway", f"'{gw}' is not a host name or IP address", "host")
    return gateways


def _eap_methods(check: _Checker) -> tuple:
    eap_methods = check.string_list("eap_methods", DEFAULT_EAP_METHODS)
    for method in eap_methods:
        if method not in EAP_METHOD_NAMES:
            raise check.fail("eap_methods", f"'{method}' is not one of {', '.join(EAP_METHOD_NAMES)}",
                             "choice")
    if not eap_methods:
        raise check.fail("eap_methods", "must list at least one method", "missing")
    return eap_methods


def _virtual_ip(check: _Checker) -> tuple:
    virtual_ip = check.string_list("virtual_ip", VIRTUAL_IP_FAMILIES)
    for family in virtual_ip:
        if family not in VIRTUAL_IP_FAMILIES:
            raise check.fail("virtual_ip", f"'{family}' is not one of {', '.join(VIRTUAL_IP_FAMILIES)}",
                             "choice")
    if len(set(virtual_ip)) != len(virtual_ip):
        raise check.fail("virtual_ip", "lists a family twice", "format")
    return virtual_ip


def _check_networks(check: _Checker, key: str) -> tuple:
    texts = check.string_list(key, ())
    if key not in check.data:
        return DEFAULT_REMOTE_TS
    if not texts:
        raise check.fail(key, "must list at least one network (leave it out to send everything)", "missing")
    if len(texts) > limits.MAX_TRAFFIC_SELECTORS:
        raise check.fail(key, f"lists {len(texts)} networks; at most {limits.MAX_TRAFFIC_SELECTORS} "
                              "fit the traffic selector payload (RFC 7296 §3.13)", "range")
    networks = []
    for text in texts:
        try:
            networks.append(fields.network(text))
        except ValueError as e:
            raise check.fail(key, str(e), "network") from None
    return tuple(networks)


def _check_combinations(check: _Checker, p: Profile) -> None:
    def fail(key, problem):
        return check.fail(key, problem, "combination")

    if p.auth == "psk" and p.psk_file is None and not p.keyring:
        raise fail("auth", "psk needs a secret source: set 'psk_file' or 'keyring = true'")
    if p.psk_file is not None and p.auth != "psk":
        raise fail("psk_file", f"is only used with auth = \"psk\", not \"{p.auth}\"")
    if p.password_file is not None and p.auth not in PASSWORD_METHODS + ENTERPRISE_EAP_AUTH:
        raise fail("password_file", f"is only used with auth {', '.join(PASSWORD_METHODS)}, "
                                    f"not \"{p.auth}\"")
    if p.auth == "eap" and "tls" in p.eap_methods and (p.cert is None or p.key is None):
        raise fail("eap_methods", "lists tls: set 'cert' and 'key' too")
    held_keys.check(fail, p)  # tokens, ssh-agent, EAP-only, anonymous identity
    if p.auth in CERTIFICATE_METHODS and not held_keys.key_is_elsewhere(p):
        for key in ("cert", "key"):
            if key == "cert" and is_pkcs12(p.key):
                continue  # a PKCS#12 bundle holds the certificate
            if getattr(p, key) is None:
                raise fail(key, f"is required with auth = \"{p.auth}\"")
    if p.auth in EAP_METHODS + ENTERPRISE_EAP_AUTH and p.eap_identity is None and p.local_id is None:
        raise fail("eap_identity", f"is required with auth = \"{p.auth}\" (or set 'local_id')")


# ---------------------------------------------------------------------------------------------
# Profile -> TOML


def profile_to_dict(profile: Profile, relative_to: Optional[Path] = None) -> dict:
    """The TOML table for a profile: only keys that differ from the defaults. Paths under
    `relative_to` are written relative to it."""
    defaults = Profile(name="", gateways=("x",), auth="psk")
    table: dict[str, Any] = {"name": profile.name}
    table["gateway"] = profile.gateways[0] if len(profile.gateways) == 1 else list(profile.gateways)
    table["auth"] = profile.auth
    for key in KNOWN_KEYS + ENTERPRISE_EAP_KEYS + LEAK_KEYS:
        if key in table:
            continue
        value = getattr(profile, key)
        if value == getattr(defaults, key):
            continue
        if isinstance(value, Path):
            value = _relative(value, relative_to)
        elif key == "remote_ts":
            value = [str(n) for n in value]
        elif isinstance(value, tuple):
            value = list(value)
        table[key] = value
    return table


def _relative(path: Path, base: Optional[Path]) -> str:
    if base is not None:
        try:
            return str(path.relative_to(Path(os.path.abspath(base))))
        except ValueError:
            pass
    return str(path)


def format_toml(table: dict, comment: str = "") -> str:
    """A flat TOML document from str/int/bool/list-of-str values."""
    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    for key, value in table.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def _toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def profile_from_bytes(raw: bytes, path: Path, base_dir: Optional[Path] = None) -> Profile:
    """Parse and check the bytes of a profile file (`path` names it in messages); the
    round-trip partner of format_toml."""
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ProfileError(f"{path}: not UTF-8 text (byte {e.start})", kind="format") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: not valid TOML: {e}", kind="format") from None
    except RecursionError:
        raise ProfileError(f"{path}: not valid TOML: nested too deeply", kind="format") from None
    except ValueError as e:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise ProfileError(f"{path}: not valid TOML: {e}", kind="format") from None
    return profile_from_dict(data, path, base_dir)
