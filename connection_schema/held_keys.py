"""Profile rules for keys held elsewhere (issue 19): on a smartcard/token (PKCS#11,
client/smartcard.py) or in ssh-agent (client/ssh_agent_key.py); and for EAP-only (RFC 5998)
and an anonymous outer EAP identity, which need methods that authenticate the server."""

from __future__ import annotations

import re

TUNNEL_METHODS = frozenset({"tls", "ttls", "peap"})
REVOCATION_POLICIES = ("strict", "ifuri", "relaxed")  # strongSwan's remote.revocation


def check(fail, p) -> None:
    """`fail(key, problem)` builds the error to raise."""
    if p.ssh_agent:
        if p.pkcs11_module is not None:
            raise fail("ssh_agent", "cannot be used with 'pkcs11_module': choose one")
        if p.auth != "pubkey":
            raise fail("ssh_agent", f"is only used with auth = \"pubkey\", not \"{p.auth}\"")
        if p.key is not None:
            raise fail("key", "cannot be used with 'ssh_agent = true': the key is in the agent")
        if p.cert is None:
            raise fail("cert", "is required with 'ssh_agent = true' (it names the agent's key)")
    elif p.pkcs11_module is None:
        key = next((k for k in ("pin_file", "pkcs11_key", "pkcs11_key_id") if getattr(p, k)), None)
        if key is not None:
            raise fail(key, "is only used with 'pkcs11_module' (a smartcard or token)")
    else:
        if p.auth != "pubkey":
            raise fail("pkcs11_module", f"is only used with auth = \"pubkey\", not \"{p.auth}\"")
        if p.key is not None:
            raise fail("key", "cannot be used with 'pkcs11_module': the key is on the token")
        if p.pkcs11_key_id is not None and not re.fullmatch(r"(0x)?([0-9a-fA-F]{2})+",
                                                             p.pkcs11_key_id.replace(":", "")):
            raise fail("pkcs11_key_id", f"'{p.pkcs11_key_id}' is not hex (e.g. \"01\" or \"0a:1b\")")
    if p.eap_anonymous_identity is not None and not set(p.eap_allowed) & TUNNEL_METHODS:
        raise fail("eap_anonymous_identity", "is only used with PEAP, TTLS or TLS (the real "
                   f"identity goes inside their tunnel), not {', '.join(p.eap_allowed) or p.auth}")
    if p.eap_only and (not p.eap_allowed or not set(p.eap_allowed) <= TUNNEL_METHODS):
        raise fail("eap_only", "needs EAP methods that authenticate the server (tls, ttls, peap), "
                               f"not {', '.join(p.eap_allowed) or p.auth}")


def key_is_elsewhere(p) -> bool:
    return p.pkcs11_module is not None or p.ssh_agent


# ------------------------------------------------------------------------- NetworkManager forms
# NetworkManager-strongswan's meanings: method=smartcard (or cert-source=smartcard): the PIN is
# the `password` secret; method=agent (or cert-source=agent): `usercert` names the key, the
# ssh-agent socket is the `agent` secret (the auth dialog passes SSH_AUTH_SOCK).

P11_KIT_PROXY = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
NM_KEYS = ("cygnet-pkcs11-module", "cygnet-pkcs11-token", "cygnet-pkcs11-key",
           "cygnet-pkcs11-key-id", "cygnet-revocation", "cygnet-eap-only")
HELD_METHODS = ("smartcard", "agent")
CERT_SOURCES = ("file", "smartcard", "agent")


def is_smartcard(data: dict) -> bool:
    return data.get("method") == "smartcard" or (
        data.get("method") in ("cert", "key") and data.get("cert-source") == "smartcard")


def is_agent(data: dict) -> bool:
    return data.get("method") == "agent" or (
        data.get("method") in ("cert", "key") and data.get("cert-source") == "agent")


def nm_authentication(data: dict, local_identity, error) -> dict:
    """Profile keys for a smartcard or ssh-agent connection; `error(key, problem, kind)`."""
    import os

    table: dict = {"auth": "pubkey"}
    if is_agent(data):
        if not data.get("usercert"):
            raise error("usercert", f"needed with method={data.get('method')} (it names the key "
                                    "in ssh-agent)", "missing")
        table.update(ssh_agent=True, cert=data["usercert"])
    else:
        module = data.get("cygnet-pkcs11-module") or P11_KIT_PROXY
        if not os.path.isfile(module):
            raise error("cygnet-pkcs11-module", f"no PKCS#11 module at {module}", "file")
        table["pkcs11_module"] = module
        for nm_key, key in (("cygnet-pkcs11-token", "pkcs11_token"),
                            ("cygnet-pkcs11-key", "pkcs11_key"),
                            ("cygnet-pkcs11-key-id", "pkcs11_key_id"), ("usercert", "cert")):
            if data.get(nm_key):
                table[key] = data[nm_key]
    if local_identity:
        table["local_id"] = local_identity
    return table


def nm_options(data: dict, yes) -> dict:
    """cygnet-revocation and cygnet-eap-only as profile keys."""
    table: dict = {}
    if data.get("cygnet-revocation"):
        table["revocation"] = data["cygnet-revocation"]
    if yes(data, "cygnet-eap-only"):
        table["eap_only"] = True
    return table
