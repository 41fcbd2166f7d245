"""NetworkManager-strongswan's smartcards for Cygnet's plugin: `method=smartcard`, or a
certificate method with `cert-source=smartcard`; the PIN is the `password` secret (as
charon-nm reads it), asked by NetworkManager's agents and the auth dialog ("PIN:").

charon-nm finds the key on any token its pkcs11 plugin loaded; Cygnet needs the PKCS#11
module: `cygnet-pkcs11-module` (default: p11-kit's proxy, which loads every module p11-kit
knows), optionally `cygnet-pkcs11-token` (token label) and `cygnet-pkcs11-key-id` (hex) or
`cygnet-pkcs11-key` (label). `usercert` is optional: default the token's certificate for the key.
"""

from __future__ import annotations

import os

P11_KIT_PROXY = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
KEYS = ("cygnet-pkcs11-module", "cygnet-pkcs11-token", "cygnet-pkcs11-key",
        "cygnet-pkcs11-key-id")


def is_smartcard(data: dict) -> bool:
    return data.get("method") == "smartcard" or (
        data.get("method") in ("cert", "key") and data.get("cert-source") == "smartcard")


def profile_keys(data: dict, error) -> dict:
    """Profile keys for a smartcard connection (`error` builds the VpnDataError)."""
    module = data.get("cygnet-pkcs11-module") or P11_KIT_PROXY
    if not os.path.isfile(module):
        raise error(f"vpn.data 'cygnet-pkcs11-module': no PKCS#11 module at {module}")
    keys = {"auth": "pubkey", "pkcs11_module": module}
    for nm_key, key in (("cygnet-pkcs11-token", "pkcs11_token"), ("cygnet-pkcs11-key", "pkcs11_key"),
                        ("cygnet-pkcs11-key-id", "pkcs11_key_id"), ("usercert", "cert")):
        if data.get(nm_key):
            keys[key] = data[nm_key]
    return keys
