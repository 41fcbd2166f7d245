"""Getting a profile's PSK or EAP password without leaking it.

Sources, in order:

1. ``psk_file`` / ``password_file`` from the profile. The file must not be readable or
   writable by group or others (``chmod 600 FILE``). One trailing newline is ignored.
2. The user's keyring (the ``keyring`` library: service ``cygnet``, user name = profile
   name) when the profile says ``keyring = true``. Store a secret with
   ``keyring set cygnet PROFILE``.
3. A prompt on the terminal, when standard input is a terminal.

Otherwise a `SecretError` says which secret is missing and how to provide it.

A PSK may be written as text, as ``0x`` followed by hex digits, or as ``0s`` followed by
base64 (strongSwan's ipsec.secrets conventions). Passwords are taken as UTF-8 text.

Secrets travel as `Secret` objects: their repr and str never show the value, and they refuse
to be pickled; ``.reveal()`` gives the bytes to the code that needs them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

from connection_schema.naming import KEYRING_SERVICE  # noqa: F401  (the one definition)
from ike.constant_time import bytes_equal
from ike.files import FileRefused, read_bounded

MAX_SECRET_FILE_SIZE = 64 * 1024


class SecretError(Exception):
    """A secret is missing, unreadable or badly formed. The message never holds the value."""


class Secret:
    """Bytes that must not be shown. Compare with ==; get the value with .reveal()."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes | str):
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError("Secret holds bytes or str")
        self._value = bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return bytes_equal(self._value, other._value)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking on purpose: no dict keys

    def __reduce__(self):
        raise TypeError("a Secret cannot be pickled")


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_psk(text: str, where: str) -> bytes:
    """A PSK as bytes: '0x' hex, '0s' base64, or the text itself as UTF-8."""
    if text[:2].lower() == "0x":
        digits = "".join(text[2:].split())
        try:
            value = bytes.fromhex(digits)
        except ValueError:
            raise SecretError(f"{where}: the PSK starts with 0x but is not valid hex") from None
    elif text[:2] == "0s":
        import base64  # here: rare, and a connected engine need not hold it
        import binascii

        try:
            value = base64.b64decode("".join(text[2:].split()), validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(f"{where}: the PSK starts with 0s but is not valid base64") from None
    else:
        value = text.encode("utf-8")
    if not value:
        raise SecretError(f"{where}: the PSK is empty")
    return value


def _decode(text: str, is_psk: bool, where: str) -> Secret:
    if is_psk:
        return Secret(decode_psk(text, where))
    if not text:
        raise SecretError(f"{where}: the password is empty")
    return Secret(text)


# ---------------------------------------------------------------------------------------------
# Sources


def _read_private_file(path: Path, what: str) -> bytes:
    """The bytes of a secret file, refused if group or others could read or change it."""
    try:
        return read_bounded(path, what, limit=MAX_SECRET_FILE_SIZE, private=True)
    except FileRefused as e:
        raise SecretError(str(e)) from None


def read_secret_file(path: Path, is_psk: bool) -> Secret:
    """A PSK or password from a private file (one trailing newline dropped)."""
    what = "PSK file" if is_psk else "password file"
    path = Path(path)
    raw = _read_private_file(path, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"{what} {path} is not UTF-8 text (write binary PSKs as 0x hex)") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return _decode(text, is_psk, f"{what} {path}")


def read_keyring(profile_name: str) -> Optional[str]:
    """The secret stored for this profile in the user's keyring, or None."""
    import keyring  # imported here: it probes D-Bus backends on import
    from keyring.errors import KeyringError

    try:
        return keyring.get_password(KEYRING_SERVICE, profile_name)
    except KeyringError as e:
        raise SecretError(
            f"profile '{profile_name}' says keyring = true, but the keyring cannot be used: {e}"
        ) from None


def store_in_keyring(profile_name: str, secret: Secret) -> None:
    """Save a secret for this profile in the user's keyring."""
    import keyring
    from keyring.errors import KeyringError

    try:
        keyring.set_password(KEYRING_SERVICE, profile_name, secret.reveal().decode("utf-8"))
    except KeyringError as e:
        raise SecretError(f"cannot store the secret of profile '{profile_name}' in the keyring: {e}") from None


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def prompt_secret(prompt_text: str, ask: Optional[Callable[[str], str]] = None) -> Optional[str]:
    """Ask on the terminal (without echo; getpass unless `ask` is given), or None when there
    is no terminal."""
    if not stdin_is_terminal():
        return None
    if ask is None:
        from getpass import getpass as ask  # here: getpass loads termios, rarely needed
    try:
        return ask(prompt_text)
    except EOFError:
        return None


# ---------------------------------------------------------------------------------------------
# What the engine calls


def get_secret(profile, ask: Optional[Callable[[str], str]] = None) -> Secret:
    """The PSK (auth = psk) or EAP password (EAP methods with a password) of a profile."""
    is_psk = profile.auth == "psk"
    if not is_psk and not profile.needs_password:
        raise SecretError(f"profile '{profile.name}' (auth = {profile.auth}) uses no PSK or password")
    what = "PSK" if is_psk else "EAP password"

    secret_file = profile.psk_file if is_psk else profile.password_file
    if secret_file is not None:
        return read_secret_file(secret_file, is_psk)

    if profile.keyring:
        stored = read_keyring(profile.name)
        if stored:
            return _decode(stored, is_psk, f"the keyring entry cygnet/{profile.name}")

    who = None if is_psk else (profile.eap_identity or profile.local_id)
    label = f"{what} for {who} on '{profile.name}': " if who else f"{what} for '{profile.name}': "
    typed = prompt_secret(label, ask)
    if typed:
        return _decode(typed, is_psk, f"the {what} typed in")

    file_key = "psk_file" if is_psk else "password_file"
    raise SecretError(
        f"no {what} for profile '{profile.name}': set '{file_key}' in the profile (a file with "
        f"mode 600), or set 'keyring = true' and store it with `keyring set {KEYRING_SERVICE} "
        f"{profile.name}`, or run cygnet on a terminal to be asked"
    )


def get_file_password(description: str, password_file: Optional[Path] = None,
                      ask: Optional[Callable[[str], str]] = None) -> Secret:
    """A password that unlocks a file (e.g. a PKCS#12 bundle): from a private file, or asked."""
    if password_file is not None:
        return read_secret_file(Path(password_file), is_psk=False)
    typed = prompt_secret(f"Password for {description}: ", ask)
    if typed is not None:
        return Secret(typed)
    raise SecretError(
        f"{description} is protected by a password: run on a terminal to be asked, "
        "or give a password file (mode 600)"
    )
