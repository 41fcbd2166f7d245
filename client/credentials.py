"""Our certificate and private key, as a profile names them (issue 19).

``key`` may be an unencrypted PEM/DER key, an encrypted PEM (PKCS#8 or OpenSSL's traditional
format), or a PKCS#12 bundle (``.p12``/``.pfx``: key, certificate and chain; ``cert`` may then
be left out). The passphrase of an encrypted key comes from ``key_passphrase_file`` (mode
600), else, with ``keyring = true``, from the keyring entry ``cygnet`` / ``PROFILE:key``
(``keyring set cygnet PROFILE:key``).

    certificate, private_key, intermediates = load_credential(profile)

Problems raise CredentialError with one line naming the file and what to do; the
passphrase never appears in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from client.secrets import Secret, SecretError, prompt_secret, read_keyring, read_secret_file
# Key-file formats are the connection schema's (vpn.data and the tray read them too).
from connection_schema.certificates import (PKCS12_SUFFIXES, is_encrypted_pem as _is_encrypted_pem,  # noqa: F401
                                            is_pkcs12, key_is_encrypted)
from ike import certificates
from ike.files import FileRefused, read_bounded


class CredentialError(ValueError):
    """Our certificate or key cannot be loaded; the message says which file and why."""


def keyring_user(profile) -> str:
    return f"{profile.name}:key"


def key_passphrase(profile) -> Optional[Secret]:
    """The passphrase of the profile's key, if the profile says where it is."""
    passphrase_file = getattr(profile, "key_passphrase_file", None)
    if passphrase_file is not None:
        return read_secret_file(Path(passphrase_file), is_psk=False)
    if profile.keyring:
        stored = read_keyring(keyring_user(profile))
        if stored is not None:
            return Secret(stored)
    return _typed.get(profile.name)


_typed: dict = {}  # profile name -> the passphrase typed on the terminal (ask_key_passphrase)


def ask_key_passphrase(profile, ask=None) -> None:
    """`cygnet up` on a terminal, before detaching: ask for an encrypted key's passphrase
    that neither key_passphrase_file nor the keyring gives (as for passwords)."""
    key = getattr(profile, "key", None)
    if key is None or not key_is_encrypted(key) or key_passphrase(profile) is not None:
        return
    typed = prompt_secret(f"Passphrase for our private key {key} ('{profile.name}'): ", ask)
    if typed:
        _typed[profile.name] = Secret(typed)


def load_credential(profile, passphrase: Optional[Secret] = None) -> tuple:
    """(certificate, private key, intermediates) for the profile. `passphrase`: one given
    directly (NetworkManager's secret), else the profile says where it is."""
    key_path = Path(profile.key)
    try:
        passphrase = passphrase or key_passphrase(profile)
    except SecretError as error:
        raise CredentialError(str(error)) from None
    how = (f"set 'key_passphrase_file' (a file with mode 600) or 'keyring = true' with "
           f"`keyring set cygnet {keyring_user(profile)}`")
    try:
        data = read_bounded(key_path, "private key")
    except FileRefused as error:
        raise CredentialError(f"cannot read our private key {key_path}: {error.problem}") from None

    if is_pkcs12(key_path):
        from cryptography.hazmat.primitives.serialization import pkcs12

        try:
            bundle = pkcs12.load_pkcs12(data, passphrase.reveal() if passphrase else None)
        except ValueError:
            if passphrase is None:
                raise CredentialError(f"our PKCS#12 {key_path} is protected by a password: "
                                      f"{how}") from None
            raise CredentialError(f"cannot open our PKCS#12 {key_path}: wrong password or a "
                                  "damaged file") from None
        if bundle.key is None or bundle.cert is None:
            raise CredentialError(f"our PKCS#12 {key_path} holds no private key and certificate")
        certificate = bundle.cert.certificate
        intermediates = [c.certificate for c in bundle.additional_certs]
        if profile.cert is not None:  # an explicit `cert` wins (with its own chain)
            chain = certificates.load_certificates(profile.cert)
            certificate, intermediates = chain[0], chain[1:]
        return certificate, bundle.key, intermediates

    encrypted = _is_encrypted_pem(data)
    if encrypted and passphrase is None:
        raise CredentialError(f"our private key {key_path} is encrypted: {how}")
    # an unencrypted PEM refuses a password; DER may be either, so it gets one if we have it
    use_passphrase = passphrase is not None and (encrypted or not data.startswith(b"-----"))
    try:
        key = certificates.load_private_key(key_path,
                                            passphrase.reveal() if use_passphrase else None)
    except certificates.CertificateError as error:
        if encrypted:
            raise CredentialError(f"cannot decrypt our private key {key_path}: wrong "
                                  "passphrase?") from None
        raise CredentialError(str(error)) from None
    chain = certificates.load_certificates(profile.cert)
    return chain[0], key, chain[1:]
