"""Key material of .sswan files: the CA and the PKCS#12 bundle, written private (0600 files
in a 0700 folder) on import and built on export."""

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


def write_ca(data: bytes, material_dir: Path) -> Path:
    """MATERIAL/ca.pem from DER or PEM bytes; ValueError if they are no certificate."""
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = certificates.der_certificate(data)
    private_dir(material_dir)
    path = material_dir / "ca.pem"
    write_private(path, cert.public_bytes(Encoding.PEM))
    return path


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


def write_pkcs12(data: bytes, material_dir: Path,
                 password: Callable[[], bytes]) -> tuple[Path, Path, str]:
    """Split a PKCS#12 bundle into MATERIAL/cert.pem (+ chain) and MATERIAL/key.pem; returns
    their paths and the certificate's subject as an identity. `password()` is called only
    when the bundle is encrypted. Raises WrongPassword, or ValueError if key or cert is missing."""
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
    private_dir(material_dir)
    cert_path, key_path = material_dir / "cert.pem", material_dir / "key.pem"
    # Our certificate first, then the intermediates the gateway may need.
    write_private(cert_path, b"".join(c.public_bytes(Encoding.PEM) for c in [certificate, *chain]))
    write_private(key_path, bundle.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return cert_path, key_path, certificates.subject_identity(certificate)


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
