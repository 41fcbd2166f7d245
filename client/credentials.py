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

from client.secrets import Secret, SecretError, read_keyring, read_secret_file
from ike import certificates
from ike.files import FileRefused, read_bounded

PKCS12_SUFFIXES = (".p12", ".pfx")


class CredentialError(ValueError):
    """Our certificate or key cannot be loaded; the message says which file and why."""


def is_pkcs12(path: Optional[Path]) -> bool:
    return path is not None and Path(path).suffix.lower() in PKCS12_SUFFIXES


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
    return None


def key_is_encrypted(path) -> bool:
    """Whether a key file needs a passphrase (encrypted PEM; PKCS#12 bundles always ask)."""
    if is_pkcs12(Path(path)):
        return True
    try:  # bounded and regular files only: the NM service asks this as root
        return _is_encrypted_pem(read_bounded(path, "private key"))
    except FileRefused:
        return False


def _is_encrypted_pem(data: bytes) -> bool:
    head = data[:400]
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in head or b"Proc-Type: 4,ENCRYPTED" in head


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
