"""Key material of .sswan files: the CA and the PKCS#12 bundle, written private (0600 files
in a 0700 folder) on import, only once the whole file has been checked, and built on export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from . import certificates


def private_dir(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def write_material(folder: Path, files: dict[Path, bytes]) -> tuple[bool, list[Path]]:
    """Write checked key material; (whether the folder was created, the files written)."""
    if not files:
        return False, []
    created = not folder.exists()
    private_dir(folder)
    for path, data in files.items():
        write_private(path, data)
    return created, list(files)


def remove_material(folder: Path, written: tuple[bool, list[Path]]) -> None:
    created, paths = written
    for path in paths:
        path.unlink(missing_ok=True)
    if created:
        try:
            folder.rmdir()
        except OSError:
            pass


def ca_pem(data: bytes) -> bytes:
    """The CA certificate (DER or PEM bytes) as PEM; ValueError if it is no certificate."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return certificates.der_certificate(data).public_bytes(Encoding.PEM)


def open_pkcs12_without_password(data: bytes):
    from cryptography.hazmat.primitives.serialization import pkcs12

    for password in (None, b""):
        try:
            return pkcs12.load_pkcs12(data, password)
        except ValueError:
            continue
    return None


def pkcs12_is_encrypted(data: bytes) -> bool:
    return open_pkcs12_without_password(data) is None


class WrongPassword(ValueError):
    """The PKCS#12 password is wrong, or the data is no PKCS#12 bundle."""


def split_pkcs12(data: bytes, password: Callable[[], bytes]) -> tuple[bytes, bytes, str]:
    """A PKCS#12 bundle as (our certificate + chain as PEM, the key as PKCS#8 PEM, the
    certificate's subject as an identity). `password()` is called only when the bundle is
    encrypted. Raises WrongPassword, or ValueError if key or certificate is missing."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding, NoEncryption, PrivateFormat, pkcs12)

    bundle = open_pkcs12_without_password(data)
    if bundle is None:
        secret = password()             # its own errors pass through unchanged
        try:
            bundle = pkcs12.load_pkcs12(data, secret)
        except ValueError:
            raise WrongPassword("wrong password, or not a PKCS#12 bundle") from None
    if bundle.key is None or bundle.cert is None:
        raise ValueError("must hold a private key and its certificate")
    certificate = bundle.cert.certificate
    chain = [c.certificate for c in bundle.additional_certs]
    # Our certificate first, then the intermediates the gateway may need.
    cert_pem = b"".join(c.public_bytes(Encoding.PEM) for c in [certificate, *chain])
    key_pem = bundle.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return cert_pem, key_pem, certificates.subject_identity(certificate)


def pkcs12_from_files(cert_path: Path, key_path: Path, name: str,
                      password: Optional[bytes] = None) -> bytes:
    """A PKCS#12 bundle of our certificate (+ chain) and key, for export."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (BestAvailableEncryption, NoEncryption,
                                                              load_pem_private_key, pkcs12)

    certs = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
    key = load_pem_private_key(Path(key_path).read_bytes(), password=None)
    encryption = BestAvailableEncryption(password) if password else NoEncryption()
    return pkcs12.serialize_key_and_certificates(name.encode(), key, certs[0], certs[1:] or None,
                                                 encryption)
