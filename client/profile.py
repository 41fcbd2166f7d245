"""Connection profiles: one TOML file per VPN connection, checked and turned into a `Profile`.

(Over 500 lines for a reason: the TOML schema's table and its checks; issue 14 §2 moves the
schema to one neutral module shared with NetworkManager's vpn.data and .sswan.)

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

Revocation of the gateway's certificate (CRLs and OCSP, client/revocation.py):
``revocation`` is ``relaxed`` (default: only a ``revoked`` answer fails), ``ifuri`` (also fails
when the certificate names a CRL/OCSP server but no valid answer comes) or ``strict`` (the
status must be known good), as strongSwan's ``remote.revocation``.

Smartcards and tokens (PKCS#11, client/smartcard.py), with ``auth = "pubkey"`` and no ``key``:
``pkcs11_module`` (the PKCS#11 library, e.g. /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so),
``pkcs11_token`` (token label; default: the first token), ``pkcs11_key`` (key label) or
``pkcs11_key_id`` (hex), ``cert`` (default: the token's certificate with the key's id); the
PIN from ``pin_file`` (mode 600), the keyring entry ``cygnet`` / ``PROFILE:pin`` with
``keyring = true``, or asked on the terminal. A key in ssh-agent: ``ssh_agent = true`` with
``auth = "pubkey"``, ``cert`` and no ``key`` (the agent at ``$SSH_AUTH_SOCK`` signs).

EAP-only authentication (RFC 5998): ``eap_only = true`` lets the gateway skip its certificate
and be authenticated by the EAP method (only ``eap-tls``, ``eap-ttls``, ``eap-peap`` or ``eap``
with ``eap_methods`` among tls, ttls, peap: their TLS server certificate is checked against
``ca`` and ``eap_server_id``).

``eap_anonymous_identity`` (e.g. ``"anonymous@corp.example"``): the outer EAP identity for
PEAP, TTLS and TLS; the real one (``eap_identity``) travels only inside the TLS tunnel (the
password methods of ``eap_methods`` then run only inside the tunnel).

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

import os
from pathlib import Path
from typing import Optional

# The schema itself (keys, checks, limits, the Profile) lives in connection_schema; these
# names stay importable from here for the CLI, the engine and the tests.
from connection_schema.errors import ProfileError
from connection_schema.fields import NAME_RE as _NAME_RE
from connection_schema.fields import NAME_RULE, is_profile_name, path_problem  # noqa: F401
from connection_schema.limits import MAX_INTERVAL, MAX_TRAFFIC_SELECTORS, MTU  # noqa: F401
from connection_schema.profile import (AUTH_METHODS, CERTIFICATE_METHODS, DATAPLANES,  # noqa: F401
                                       DEFAULT_EAP_METHODS, DEFAULT_REMOTE_TS, EAP_METHOD_NAMES,
                                       EAP_METHODS, ENTERPRISE_EAP_AUTH, PASSWORD_METHODS,
                                       TTLS_INNER, VIRTUAL_IP_FAMILIES, Profile, identity_warning)
from connection_schema.toml_profile import (ENTERPRISE_EAP_KEYS, KNOWN_KEYS, LEAK_KEYS,  # noqa: F401
                                            format_toml, profile_from_bytes, profile_from_dict,
                                            profile_to_dict)
from ike.files import FileRefused, read_bounded

SYSTEM_PROFILE_DIR = Path("/etc/cygnet/profiles")
MTU_RANGE = (MTU.low, MTU.high)
MAX_PROFILE_SIZE = 1024 * 1024


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
            raise ProfileError(f"{text}: not a usable path: {path_problem(e)}") from None
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
