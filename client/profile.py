"""Connection profiles: one TOML file per VPN connection, checked and turned into a `Profile`.

Where profiles live: ``cygnet up office`` looks for ``office.toml`` in
``$XDG_CONFIG_HOME/cygnet/`` (usually ``~/.config/cygnet/``) and then in
``/etc/cygnet/profiles/``. A path to a ``.toml`` file works too. Relative paths inside a
profile (``ca``, ``cert``, ``key``, ``psk_file``, ``password_file``) are relative to the
folder that holds the profile; ``~`` is expanded.

Example::

    gateway = ["vpn1.example.org", "vpn2.example.org"]
    remote_id = "vpn.example.org"
    auth = "eap-mschapv2"
    eap_identity = "carol"
    ca = "ca.pem"
    remote_ts = ["10.0.0.0/8"]

Keys (anything else is an error):

| key           | type              | default                | meaning |
|---------------|-------------------|------------------------|---------|
| name          | string            | the file name, no .toml | Profile name (letters, digits, ``.``, ``_``, ``-``); also the keyring user name |
| gateway       | string or list    | required               | Gateway host name or address; a list is tried in order |
| port          | integer 1-65535   | 500                    | Gateway IKE port |
| remote_id     | string            | the dialled name       | Identity the gateway must prove (e.g. ``vpn.example.org``); unset: its certificate must carry the gateway name or address we dialled as a subjectAltName (with a PSK: its IDr must be it); ``%any`` accepts any identity |
| local_id      | string            | our address / cert subject | Our IKE identity (IDi) |
| auth          | string            | required               | How we authenticate: ``psk``, ``pubkey``, ``eap-mschapv2``, ``eap-md5``, ``eap-tls``, ``pubkey+eap-mschapv2``, ``pubkey+eap-md5`` (certificate, then EAP: RFC 4739) |
| psk_file      | path              | none                   | File holding the pre-shared key: text, or ``0x`` hex, or ``0s`` base64 (mode 0600) |
| password_file | path              | none                   | File holding the EAP password (mode 0600) |
| eap_identity  | string            | ``local_id``           | EAP identity (user name) |
| ca            | path              | system trust store     | CA certificate (PEM/DER file) or a folder of them, to check the gateway |
| cert          | path              | none                   | Our certificate (PEM; may be followed by intermediates) |
| key           | path              | none                   | Our private key (PEM, encrypted or not, or a PKCS#12 ``.p12``/``.pfx`` bundle, which also holds ``cert``; mode 0600). An encrypted key's passphrase: ``key_passphrase_file`` or the keyring (client/credentials.py) |
| ike           | string            | strongSwan's defaults  | IKE proposals, strongSwan syntax, comma-separated (``aes256gcm16-prfsha384-x25519``) |
| esp           | string            | strongSwan's defaults  | ESP proposals, strongSwan syntax (``aes256gcm16``, ``aes256-sha384-ecp256`` for PFS) |
| virtual_ip    | list              | ``["ipv4", "ipv6"]``   | Which inner addresses to ask the gateway for (``[]``: none) |
| remote_ts     | list of CIDRs     | ``["0.0.0.0/0", "::/0"]`` | Networks sent through the tunnel (split tunnel: list only those) |
| dataplane     | string            | ``auto``               | ``userspace`` (TUN + Python ESP), ``kernel`` (XFRM) or ``auto`` (kernel if it works) |
| encap         | boolean           | false                  | Force UDP encapsulation of ESP (port 4500) even without NAT |
| dpd           | integer seconds   | 30                     | Dead peer detection interval; 0 turns it off |
| reauth        | integer seconds   | 0 (off)                | Reauthenticate this often, make-before-break (swanctl's ``reauth_time``; up to 10 % earlier at random). A gateway's own request (RFC 4478 AUTH_LIFETIME) is honoured either way |
| mtu           | integer 1280-9000 | automatic              | MTU of the tunnel interface |
| dns           | boolean           | true                   | Use the DNS servers and domains the gateway sends |
| keyring       | boolean           | false                  | Look the PSK / EAP password up in the user's keyring (service ``cygnet``, user = profile name) |

Enterprise EAP (usually relayed by the gateway to a RADIUS server): ``auth`` may also be
``eap`` (the server picks among ``eap_methods``), ``eap-peap``, ``eap-ttls`` or ``eap-gtc``;
all take the password like ``eap-mschapv2``. Their keys:

- ``eap_methods`` (list, default ``["peap", "ttls", "mschapv2", "gtc", "md5"]``, i.e. any
  password method): with ``auth = "eap"``, the EAP methods we accept, preferred first
  (``tls`` too, with ``cert`` and ``key``); its password methods are also those allowed
  inside PEAP and TTLS
- ``eap_server_id`` (string, default ``remote_id``): the name the PEAP/TTLS server's
  certificate must carry (it must chain to ``ca``)
- ``ttls_inner`` (``eap``, ``pap`` or ``mschapv2``; default ``eap``): what runs inside
  EAP-TTLS (``eap``: one of the password methods of ``eap_methods``, as the server asks)

Encrypted keys: ``key_passphrase_file`` (path, mode 600) holds the passphrase of an encrypted
``key``; without it, ``keyring = true`` looks it up as ``cygnet`` / ``PROFILE:key``.

Leak protection (client/killswitch.py; booleans):
``kill_switch`` (default false): from ``cygnet up`` until ``cygnet down`` nothing leaves but
IKE/ESP to the gateways, DHCP/NDP and what goes into the tunnel (nftables; the block stays after
a failure or a crash until ``cygnet down`` or the next ``cygnet up``); ``allow_lan`` (default
false): with the kill switch, the local networks stay reachable; ``block_ipv4`` /
``block_ipv6`` (default: on for a full tunnel, off for a split one): drop that family outside
the tunnel when the tunnel does not carry it.

Required combinations: ``psk`` needs ``psk_file`` or ``keyring = true``; ``pubkey``,
``eap-tls`` and ``pubkey+eap-*`` need ``cert`` and ``key``; every EAP method needs
``eap_identity`` or ``local_id``. How secrets are found: see client/secrets.py.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ike.files import FileRefused, read_bounded

SYSTEM_PROFILE_DIR = Path("/etc/cygnet/profiles")

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
VIRTUAL_IP_FAMILIES = ("ipv4", "ipv6")
DATAPLANES = ("userspace", "kernel", "auto")
MTU_RANGE = (1280, 9000)
# Longest dpd / reauth interval in seconds (a year): anything longer means "never", and a
# bigger number (10**400) would not even fit a float timer.
MAX_INTERVAL = 365 * 24 * 3600
MAX_PROFILE_SIZE = 1024 * 1024
# RFC 7296 §3.13: a traffic selector payload counts its selectors in one octet.
MAX_TRAFFIC_SELECTORS = 255

DEFAULT_REMOTE_TS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A host name (RFC 1123 labels) or an address; checked loosely, the resolver has the last word.
NAME_RULE = ("letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)")


def is_profile_name(text: str) -> bool:
    """Whether `text` can name a profile (and so its file and key-material folder)."""
    return isinstance(text, str) and bool(_NAME_RE.match(text)) and "\n" not in text


_HOST_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")


class ProfileError(Exception):
    """A profile cannot be found or is wrong; the message says which file and key.

    `.key` and `.problem` hold the key and the complaint alone, when a key is at fault."""

    def __init__(self, message: str, key: Optional[str] = None, problem: Optional[str] = None):
        super().__init__(message)
        self.key = key
        self.problem = problem


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
    kill_switch: bool = False
    allow_lan: bool = False
    block_ipv4: Optional[bool] = None  # None: on for a full tunnel (client/killswitch.py)
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


# ---------------------------------------------------------------------------------------------
# Finding and reading profiles


def user_profile_dir() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config_home) / "cygnet"


def profile_search_dirs() -> list[Path]:
    """Folders searched for NAME.toml, in order."""
    return [user_profile_dir(), SYSTEM_PROFILE_DIR]


def find_profile(name_or_path: str, search_dirs: Optional[list[Path]] = None) -> Path:
    """The file of a profile given by name (``office``) or path (``./office.toml``)."""
    text = str(name_or_path)
    looks_like_path = os.sep in text or text.endswith(".toml")
    if looks_like_path:
        try:
            path = Path(text).expanduser()
            found = path.is_file()
        except (RuntimeError, OSError, ValueError) as e:  # ~nosuchuser, name too long, NUL
            raise ProfileError(f"{text}: not a usable path: {_path_problem(e)}") from None
        if not found:
            raise ProfileError(f"{text}: no such profile file")
        return path
    if not _NAME_RE.match(text):
        raise ProfileError(f"'{text}' is not a profile name or a path to a .toml file")
    dirs = profile_search_dirs() if search_dirs is None else search_dirs
    for folder in dirs:
        candidate = folder / f"{text}.toml"
        if candidate.is_file():
            return candidate
    where = ", ".join(str(d / f"{text}.toml") for d in dirs)
    raise ProfileError(f"no profile named '{text}' (looked for {where})")


def load_profile(name_or_path: str, search_dirs: Optional[list[Path]] = None) -> Profile:
    """Find, read and check a profile. Raises ProfileError naming the file and the key."""
    path = find_profile(name_or_path, search_dirs)
    try:
        raw = read_bounded(path, "profile", limit=MAX_PROFILE_SIZE)
    except FileRefused as e:
        raise ProfileError(str(e)) from None
    return profile_from_bytes(raw, path)


def profile_from_bytes(raw: bytes, path: Path, base_dir: Optional[Path] = None) -> Profile:
    """Parse and check the bytes of a profile file (`path` names it in messages)."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ProfileError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        raise ProfileError(f"{path}: not valid TOML: nested too deeply") from None
    except ValueError as e:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise ProfileError(f"{path}: not valid TOML: {e}") from None
    return profile_from_dict(data, path, base_dir)


# ---------------------------------------------------------------------------------------------
# Checking


class _Checker:
    """Reads one key at a time and raises ProfileError('<file>: key '<k>': <problem>')."""

    def __init__(self, data: dict, path: Path, base_dir: Path):
        self.data = data
        self.source = str(path)
        self.base_dir = base_dir

    def fail(self, key: str, problem: str) -> ProfileError:
        return ProfileError(f"{self.source}: key '{key}': {problem}", key=key, problem=problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, default: Optional[str] = None) -> Optional[str]:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {_describe(value)}")
        if not value.strip():
            raise self.fail(key, "must not be empty")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: Optional[str] = None) -> Optional[str]:
        value = self.string(key, default)
        if value is not None and value not in allowed:
            raise self.fail(key, f"'{value}' is not one of {', '.join(allowed)}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {_describe(value)}")
        return value

    def integer(self, key: str, default: Optional[int], low: int, high: Optional[int],
                cap: Optional[int] = None) -> Optional[int]:
        """A whole number from low to high; `cap` bounds an open range ("or more") by sense."""
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, not {_describe(value)}")
        if value < low or (high is not None and value > high):
            allowed = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise self.fail(key, f"{value} is out of range (allowed: {allowed})")
        if cap is not None and value > cap:
            shown = value if value.bit_length() < 64 else f"a {len(str(value))}-digit number"
            raise self.fail(key, f"{shown} is out of range (at most {cap})")
        return value

    def string_list(self, key: str, default: tuple, allow_single: bool = False) -> tuple:
        if key not in self.data:
            return default
        value = self.data[key]
        if allow_single and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            kind = "a string or a list of strings" if allow_single else "a list of strings"
            raise self.fail(key, f"must be {kind}, not {_describe(value)}")
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise self.fail(key, f"every entry must be a non-empty string, not {_describe(item)}")
        return tuple(value)

    def path(self, key: str, kind: str = "file") -> Optional[Path]:
        text = self.string(key)
        if text is None:
            return None
        try:
            path = Path(os.path.normpath(self.base_dir / Path(text).expanduser()))
            if kind == "file or folder":
                ok = path.exists()
            else:
                ok = path.is_file()
        except (RuntimeError, OSError, ValueError) as e:  # ~nosuchuser, name too long, NUL
            raise self.fail(key, f"'{text}' is not a usable path: {_path_problem(e)}") from None
        if not ok:
            raise self.fail(key, f"{path} does not exist or is not a {kind}")
        return path


def _path_problem(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, ValueError):
        return "it holds a NUL character"
    return str(error)  # RuntimeError: "Could not determine home directory."


def _describe(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _check_proposals(check: _Checker, key: str, parse: Callable) -> Optional[str]:
    text = check.string(key)
    if text is None:
        return None
    from ike.proposals import ProposalError  # imported here: keeps `cygnet --help` fast

    try:
        parse(text)
    except ProposalError as e:
        raise check.fail(key, str(e)) from None
    return text


def _parse_ike(text: str):
    from ike.proposals import parse_ike_proposals

    return parse_ike_proposals(text)


def _parse_esp(text: str):
    from ike.proposals import parse_esp_proposals

    return parse_esp_proposals(text)


KNOWN_KEYS = (
    "name", "gateway", "port", "remote_id", "local_id", "auth", "psk_file", "password_file",
    "eap_identity", "ca", "cert", "key", "ike", "esp", "virtual_ip", "remote_ts", "dataplane",
    "encap", "dpd", "reauth", "mtu", "dns", "keyring",
)
ENTERPRISE_EAP_KEYS = ("eap_methods", "eap_server_id", "ttls_inner", "key_passphrase_file")
LEAK_KEYS = ("kill_switch", "allow_lan", "block_ipv4", "block_ipv6")  # client/killswitch.py


def profile_from_dict(data: dict, path: Path, base_dir: Optional[Path] = None) -> Profile:
    """Check a parsed TOML table. `path` names the file in messages; relative paths in the
    profile are taken from `base_dir` (default: the folder of `path`)."""
    path = Path(path)
    base = Path(os.path.abspath(base_dir if base_dir is not None else path.parent))
    check = _Checker(data, path, base)

    unknown = [k for k in data if k not in KNOWN_KEYS + ENTERPRISE_EAP_KEYS + LEAK_KEYS]
    if unknown:
        raise check.fail(unknown[0], f"unknown key (known keys: {', '.join(KNOWN_KEYS)})")

    name = check.string("name", default=path.stem)
    if not _NAME_RE.match(name):
        rule = ("may hold only letters, digits, '.', '_' and '-' (at most 64, starting with a "
                "letter or digit)")
        if check.has("name"):
            raise check.fail("name", f"'{name}' {rule}")
        raise check.fail("name", f"not set, and the file name '{name}' is no profile name: a name "
                                 f"{rule}; rename the file or set 'name'")

    if not check.has("gateway"):
        raise check.fail("gateway", "is required (the gateway's host name or address)")
    gateways = check.string_list("gateway", (), allow_single=True)
    if not gateways:
        raise check.fail("gateway", "must name at least one gateway")
    for gw in gateways:
        if not _is_host(gw):
            raise check.fail("gateway", f"'{gw}' is not a host name or IP address")

    if not check.has("auth"):
        raise check.fail("auth", f"is required (one of {', '.join(AUTH_METHODS)})")
    if data.get("auth") in ENTERPRISE_EAP_AUTH:
        auth = data["auth"]
    else:
        auth = check.choice("auth", AUTH_METHODS)
    eap_methods = check.string_list("eap_methods", DEFAULT_EAP_METHODS)
    for method in eap_methods:
        if method not in EAP_METHOD_NAMES:
            raise check.fail("eap_methods", f"'{method}' is not one of {', '.join(EAP_METHOD_NAMES)}")
    if not eap_methods:
        raise check.fail("eap_methods", "must list at least one method")

    virtual_ip = check.string_list("virtual_ip", VIRTUAL_IP_FAMILIES)
    for family in virtual_ip:
        if family not in VIRTUAL_IP_FAMILIES:
            raise check.fail("virtual_ip", f"'{family}' is not one of {', '.join(VIRTUAL_IP_FAMILIES)}")
    if len(set(virtual_ip)) != len(virtual_ip):
        raise check.fail("virtual_ip", "lists a family twice")

    remote_ts = _check_networks(check, "remote_ts")

    profile = Profile(
        name=name,
        gateways=gateways,
        auth=auth,
        port=check.integer("port", 500, 1, 65535),
        remote_id=check.string("remote_id"),
        local_id=check.string("local_id"),
        psk_file=check.path("psk_file"),
        password_file=check.path("password_file"),
        eap_identity=check.string("eap_identity"),
        ca=check.path("ca", kind="file or folder"),
        cert=check.path("cert"),
        key=check.path("key"),
        ike=_check_proposals(check, "ike", _parse_ike),
        esp=_check_proposals(check, "esp", _parse_esp),
        virtual_ip=virtual_ip,
        remote_ts=remote_ts,
        dataplane=check.choice("dataplane", DATAPLANES, default="auto"),
        encap=check.boolean("encap", False),
        dpd=check.integer("dpd", 30, 0, None, cap=MAX_INTERVAL),
        reauth=check.integer("reauth", 0, 0, None, cap=MAX_INTERVAL),
        mtu=check.integer("mtu", None, *MTU_RANGE),
        dns=check.boolean("dns", True),
        keyring=check.boolean("keyring", False),
        eap_methods=eap_methods,
        eap_server_id=check.string("eap_server_id"),
        ttls_inner=check.choice("ttls_inner", TTLS_INNER, default="eap"),
        key_passphrase_file=check.path("key_passphrase_file"),
        kill_switch=check.boolean("kill_switch", False),
        allow_lan=check.boolean("allow_lan", False),
        block_ipv4=check.boolean("block_ipv4", None),
        block_ipv6=check.boolean("block_ipv6", None),
        path=path,
    )
    _check_combinations(check, profile)
    return profile


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return len(text) <= 253 and bool(_HOST_RE.match(text))


def _check_networks(check: _Checker, key: str) -> tuple:
    texts = check.string_list(key, ())
    if key not in check.data:
        return DEFAULT_REMOTE_TS
    if not texts:
        raise check.fail(key, "must list at least one network (leave it out to send everything)")
    if len(texts) > MAX_TRAFFIC_SELECTORS:
        raise check.fail(key, f"lists {len(texts)} networks; at most {MAX_TRAFFIC_SELECTORS} fit "
                              "the traffic selector payload (RFC 7296 §3.13)")
    networks = []
    for text in texts:
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise check.fail(key, f"'{text}' is not a network in CIDR form "
                                  "(like 10.0.0.0/8 or fd00::/8)") from None
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=True))
        except ValueError:
            raise check.fail(key, f"'{text}' has host bits set (did you mean {loose}?)") from None
    return tuple(networks)


def _check_combinations(check: _Checker, p: Profile) -> None:
    if p.auth == "psk" and p.psk_file is None and not p.keyring:
        raise check.fail("auth", "psk needs a secret source: set 'psk_file' or 'keyring = true'")
    if p.psk_file is not None and p.auth != "psk":
        raise check.fail("psk_file", f"is only used with auth = \"psk\", not \"{p.auth}\"")
    if p.password_file is not None and p.auth not in PASSWORD_METHODS + ENTERPRISE_EAP_AUTH:
        raise check.fail("password_file", f"is only used with auth {', '.join(PASSWORD_METHODS)}, "
                                          f"not \"{p.auth}\"")
    if p.auth == "eap" and "tls" in p.eap_methods and (p.cert is None or p.key is None):
        raise check.fail("eap_methods", "lists tls: set 'cert' and 'key' too")
    if p.auth in CERTIFICATE_METHODS:
        for key in ("cert", "key"):
            if key == "cert" and p.key is not None and p.key.suffix.lower() in (".p12", ".pfx"):
                continue  # a PKCS#12 bundle holds the certificate
            if getattr(p, key) is None:
                raise check.fail(key, f"is required with auth = \"{p.auth}\"")
    if p.auth in EAP_METHODS + ENTERPRISE_EAP_AUTH and p.eap_identity is None and p.local_id is None:
        raise check.fail("eap_identity", f"is required with auth = \"{p.auth}\" (or set 'local_id')")


# ---------------------------------------------------------------------------------------------
# Writing profiles (used by `cygnet import`)


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


def _toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def identity_warning(profile: Profile) -> Optional[str]:
    """One line for `cygnet up` when the profile accepts any gateway identity (issue 13 §1)."""
    if (profile.remote_id or "").strip().lower() == "%any":
        return ("remote_id = \"%any\": any gateway with a certificate from a trusted CA "
                "(or the PSK) is accepted, not only the one you dialled")
    return None
