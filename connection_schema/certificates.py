"""Certificates and keys as the connection forms refer to them (files, DER, PKCS#12).

Every error is a `ValueError` whose text is the problem alone; the caller names its key."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

PKCS12_SUFFIXES = (".p12", ".pfx")


def is_pkcs12(path: Optional[Path]) -> bool:
    return path is not None and Path(path).suffix.lower() in PKCS12_SUFFIXES


def key_is_encrypted(path) -> bool:
    """Whether a key file needs a passphrase (encrypted PEM; PKCS#12 bundles always ask)."""
    if is_pkcs12(Path(path)):
        return True
    from ike.files import FileRefused, read_bounded

    try:  # bounded and regular files only: the NM service asks this as root
        return is_encrypted_pem(read_bounded(path, "private key"))
    except FileRefused:
        return False


def is_encrypted_pem(data: bytes) -> bool:
    head = data[:400]
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in head or b"Proc-Type: 4,ENCRYPTED" in head


def subject_identity(certificate) -> str:
    """A certificate's subject as an IKE identity, in encoding order as strongSwan writes it
    ("C=CH, O=strongSwan, CN=carol"): rfc4514_string() of the whole Name reverses the RDNs,
    and that DN is not the certificate's. Values keep RFC 4514 escapes, which
    ike.certificates.dn_from_string reads back. charon-nm and the Android app derive the
    identity of a certificate so."""
    return ", ".join(rdn.rfc4514_string() for rdn in certificate.subject.rdns)


def load_certificate_file(path: str):
    """The first certificate in a PEM/DER file."""
    from ike.certificates import CertificateError, load_certificates

    try:
        return load_certificates(path)[0]
    except (CertificateError, OSError, IndexError) as error:
        raise ValueError(f"cannot read a certificate from {path}: {error}") from None


def is_ca(path: str) -> bool:
    """True for a folder (of CAs) or a certificate with basicConstraints CA=true."""
    from cryptography import x509

    try:
        if Path(path).is_dir():
            return True
    except (OSError, ValueError) as error:  # a name too long, a NUL: one line, not a traceback
        raise ValueError(f"{path!r} is not a usable path: "
                         f"{getattr(error, 'strerror', None) or error}") from None
    cert = load_certificate_file(path)
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def check_unencrypted_key(path: str) -> None:
    from ike.certificates import CertificateError, load_private_key

    try:
        load_private_key(path)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except CertificateError as error:
        if "password" in str(error).lower() or "encrypted" in str(error).lower():
            raise ValueError(f"{path} is encrypted; Cygnet needs an unencrypted key (mode 0600)") from None
        raise ValueError(str(error)) from None


def der_certificate(data: bytes):
    """A certificate from DER or PEM bytes (ValueError if neither)."""
    from cryptography import x509

    try:
        try:
            return x509.load_der_x509_certificate(data)
        except (ValueError, x509.InvalidVersion):
            return x509.load_pem_x509_certificate(data)
    except x509.InvalidVersion as e:  # no ValueError: callers expect one for "not a certificate"
        raise ValueError(str(e)) from None


def certificate_der_from_file(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    raw = Path(path).read_bytes()
    cert = x509.load_pem_x509_certificate(raw) if b"-----BEGIN" in raw else x509.load_der_x509_certificate(raw)
    return cert.public_bytes(Encoding.DER)
