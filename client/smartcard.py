"""Profiles whose key is on a smartcard or token (PKCS#11; the signing is in
client/pkcs11_key.py): checking their keys, finding the PIN, opening the key once per process.

The PIN comes from ``pin_file`` (mode 600), the keyring entry ``cygnet`` / ``PROFILE:pin``
(with ``keyring = true``) or a prompt on the terminal; NetworkManager passes it as the
``password`` secret of ``method=smartcard`` (NetworkManager-strongswan's meaning).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional

from client.secrets import Secret, SecretError, prompt_secret, read_keyring, read_secret_file

_opened: dict = {}  # (module, token, key label, key id, PIN digest) -> (key, certificate)


def keyring_user(profile) -> str:
    return f"{profile.name}:pin"


def uses_token(profile) -> bool:
    return getattr(profile, "pkcs11_module", None) is not None


def check_profile(check, p) -> None:
    """Profile rules for keys held elsewhere: a token or ssh-agent (from client/profile.py)."""
    if p.ssh_agent:
        if p.pkcs11_module is not None:
            raise check.fail("ssh_agent", "cannot be used with 'pkcs11_module': choose one")
        if p.auth != "pubkey":
            raise check.fail("ssh_agent", f"is only used with auth = \"pubkey\", not \"{p.auth}\"")
        if p.key is not None:
            raise check.fail("key", "cannot be used with 'ssh_agent = true': the key is in the agent")
        if p.cert is None:
            raise check.fail("cert", "is required with 'ssh_agent = true' (it names the agent's key)")
        return
    if p.pkcs11_module is None:
        key = next(k for k in ("pin_file", "pkcs11_key", "pkcs11_key_id") if getattr(p, k))
        raise check.fail(key, "is only used with 'pkcs11_module' (a smartcard or token)")
    if p.auth != "pubkey":
        raise check.fail("pkcs11_module", f"is only used with auth = \"pubkey\", not \"{p.auth}\"")
    if p.key is not None:
        raise check.fail("key", "cannot be used with 'pkcs11_module': the key is on the token")
    if p.pkcs11_key_id is not None and not re.fullmatch(r"(0x)?([0-9a-fA-F]{2})+",
                                                         p.pkcs11_key_id.replace(":", "")):
        raise check.fail("pkcs11_key_id", f"'{p.pkcs11_key_id}' is not hex (e.g. \"01\" or \"0a:1b\")")


def _key_id(text: Optional[str]) -> Optional[bytes]:
    if not text:
        return None
    text = text.replace(":", "")
    return bytes.fromhex(text[2:] if text.lower().startswith("0x") else text)


def get_pin(profile, ask: Optional[Callable[[str], str]] = None) -> Secret:
    if profile.pin_file is not None:
        return read_secret_file(Path(profile.pin_file), is_psk=False)
    if profile.keyring:
        stored = read_keyring(keyring_user(profile))
        if stored:
            return Secret(stored)
    token = f"token '{profile.pkcs11_token}'" if profile.pkcs11_token else "the smartcard"
    typed = prompt_secret(f"PIN for {token} ('{profile.name}'): ", ask)
    if typed:
        return Secret(typed)
    raise SecretError(
        f"no PIN for the smartcard of profile '{profile.name}': set 'pin_file' (a file with mode "
        f"600), or 'keyring = true' and `keyring set cygnet {keyring_user(profile)}`, or run "
        "cygnet on a terminal to be asked")


def credential(profile, pin: Secret) -> tuple:
    """(certificate, private key on the token, intermediates). Raises TokenError."""
    from client.pkcs11_key import open_key
    from ike import certificates

    chain = certificates.load_certificates(profile.cert) if profile.cert is not None else []
    import hashlib

    # a digest of the PIN in the key: another PIN logs in again (and may be refused)
    where = (str(profile.pkcs11_module), profile.pkcs11_token, profile.pkcs11_key,
             profile.pkcs11_key_id, hashlib.sha256(pin.reveal()).digest())
    if where not in _opened:
        _opened[where] = open_key(profile.pkcs11_module, profile.pkcs11_token, profile.pkcs11_key,
                                  _key_id(profile.pkcs11_key_id), pin.reveal(),
                                  chain[0] if chain else None)
    certificate, key = _opened[where][1], _opened[where][0]
    return certificate, key, chain[1:]


class KeyElsewhereError(Exception):
    """A token or ssh-agent problem, in one line."""


def held_credential(profile, secret) -> Optional[tuple]:
    """(certificate, stand-in private key, intermediates) when the key is on a token or in
    ssh-agent, else None. `secret`: the PIN, or (NetworkManager) the agent's socket."""
    import os

    if getattr(profile, "ssh_agent", False):  # client/ssh_agent_key.py
        from client import ssh_agent_key
        from ike import certificates

        sock = secret.reveal().decode() if secret is not None else os.environ.get("SSH_AUTH_SOCK")
        if not sock:
            raise KeyElsewhereError(f"profile '{profile.name}': ssh_agent = true, but "
                                    "SSH_AUTH_SOCK is not set (start ssh-agent and ssh-add the key)")
        chain = certificates.load_certificates(profile.cert)
        try:
            return chain[0], ssh_agent_key.agent_key(sock, chain[0]), chain[1:]
        except ssh_agent_key.AgentError as error:
            raise KeyElsewhereError(str(error)) from None
    if uses_token(profile):
        from client.pkcs11_key import TokenError

        try:
            return credential(profile, secret)
        except TokenError as error:
            raise KeyElsewhereError(str(error)) from None
    return None
