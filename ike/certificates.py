"""Identities, certificate loading and gateway certificate validation.

ike/auth.py re-exports the public names below; import them from there.

Validation is a small path builder over `cryptography` primitives rather than
cryptography.x509.verification: that verifier applies the Web PKI profile (CA/B Forum),
which rejects certificates strongSwan issues routinely (Ed25519 keys, for one), and its
errors are not words a user can act on. What is checked here (RFC 5280 §6.1, reduced):
signatures up to a configured trust anchor, validity at `now`, basicConstraints cA (and
pathLenConstraint, keyCertSign) for issuers, unknown critical extensions, the end-entity
EKU (serverAuth, ikeIntermediate or anyExtendedKeyUsage when present; RFC 4945 §5.1.3.12)
and that the certificate names the gateway identity (RFC 4945 §3.1). Not checked:
revocation (CRL/OCSP), name constraints, certificate policies.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Iterable, Sequence, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

# cryptography.x509 is imported inside the functions that use it: a PSK or EAP-MSCHAPv2 tunnel
# never parses a certificate, and `cygnet up`'s start-up time matters (40+ ms, 2 MB).

from .constants import IdType


class CertificateError(Exception):
    """A certificate is unusable; the message says why in plain words."""


Identity = tuple  # (IdType, bytes): what goes into an IDi/IDr payload

# ---------------------------------------------------------------------------------------------
# Minimal DER reading (X.690 §8.1), enough for Names and AlgorithmIdentifiers.


def read_der(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """One DER element at offset: (tag byte, content, offset after the element)."""
    try:
        tag = data[offset]
        length = data[offset + 1]
        offset += 2
        if length & 0x80:  # long form: the low bits count the length octets
            count = length & 0x7F
            if count == 0 or count > 4:
                raise ValueError("unsupported DER length")
            length = int.from_bytes(data[offset:offset + count], "big")
            offset += count
    except IndexError:
        raise ValueError("truncated DER element") from None
    end = offset + length
    if end > len(data):
        raise ValueError("truncated DER element")
    return tag, bytes(data[offset:end]), end


def read_der_sequence(content: bytes) -> list[tuple[int, bytes]]:
    """The (tag, content) elements inside a constructed element's content."""
    elements, offset = [], 0
    while offset < len(content):
        tag, value, offset = read_der(content, offset)
        elements.append((tag, value))
    return elements


def decode_oid(content: bytes) -> str:
    """Dotted form of an OBJECT IDENTIFIER's content octets (X.690 §8.19)."""
    if not content:
        raise ValueError("empty OBJECT IDENTIFIER")
    arcs, value = [], 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first] + arcs[1:])


# ---------------------------------------------------------------------------------------------
# Distinguished names in strongSwan's string form: "C=CH, O=strongSwan, CN=moon"
# (attributes in encoding order, unlike RFC 4514 which lists them reversed).

_DN_ATTRIBUTES = {  # dotted OIDs (cryptography.x509.oid.NameOID)
    "C": "2.5.4.6", "ST": "2.5.4.8", "L": "2.5.4.7", "O": "2.5.4.10", "OU": "2.5.4.11",
    "CN": "2.5.4.3", "E": "1.2.840.113549.1.9.1", "SN": "2.5.4.4", "G": "2.5.4.42",
    "serialNumber": "2.5.4.5", "DC": "0.9.2342.19200300.100.1.25",
    "UID": "0.9.2342.19200300.100.1.1", "T": "2.5.4.12", "street": "2.5.4.9",
    "postalCode": "2.5.4.17", "dnQualifier": "2.5.4.46", "pseudonym": "2.5.4.65",
}
_DN_ALIASES = {"S": "ST", "EMAIL": "E", "EMAILADDRESS": "E", "SERIALNUMBER": "serialNumber",
               "GN": "G", "TITLE": "T", "STREET": "street", "POSTALCODE": "postalCode"}
_DN_NAMES_BY_OID = {oid: name for name, oid in _DN_ATTRIBUTES.items()}
_PRINTABLE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split at separators not escaped by a backslash and not inside double quotes."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _dn_attribute_oid(name: str) -> ObjectIdentifier:
    from cryptography.x509.oid import ObjectIdentifier

    if name[:1].isdigit():
        return ObjectIdentifier(name)  # a dotted OID such as 2.5.4.3
    key = _DN_ALIASES.get(name.upper(), name)
    for candidate in (key, key.upper()):
        if candidate in _DN_ATTRIBUTES:
            return ObjectIdentifier(_DN_ATTRIBUTES[candidate])
    raise ValueError(f"unknown attribute {name!r} in distinguished name")


def dn_from_string(text: str) -> bytes:
    """DER of a DN written like "C=CH, O=strongSwan, CN=moon" (encoding order, as strongSwan).

    Printable values become PrintableString, others UTF8String, as strongSwan encodes them.
    """
    from cryptography import x509
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID

    attributes = []
    for part in _split_unescaped(text, ","):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(f"distinguished name part {part.strip()!r} is not TYPE=value")
        oid = _dn_attribute_oid(name)
        if oid == NameOID.COUNTRY_NAME and len(value) != 2:
            raise ValueError(f"country {value!r} in distinguished name is not two letters")
        printable = set(value) <= _PRINTABLE and oid != NameOID.EMAIL_ADDRESS
        string_type = _ASN1Type.PrintableString if printable else _ASN1Type.UTF8String
        if oid in (NameOID.EMAIL_ADDRESS, NameOID.DOMAIN_COMPONENT):
            string_type = _ASN1Type.IA5String
        attributes.append(x509.NameAttribute(oid, value, _type=string_type))
    return x509.Name(attributes).public_bytes()


_STRING_DECODERS = {
    0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be",
    0x1C: "utf-32-be", 0x1A: "ascii", 0x12: "ascii",
}


def _dn_attributes(der: bytes) -> list[tuple[str, str]]:
    """(dotted OID, value) pairs of a DER Name, in encoding order."""
    tag, content, end = read_der(der)
    if tag != 0x30 or end != len(der):
        raise ValueError("not a DER distinguished name")
    pairs = []
    for set_tag, rdn in read_der_sequence(content):
        if set_tag != 0x31:
            raise ValueError("not a DER distinguished name")
        for _, attribute in read_der_sequence(rdn):
            (oid_tag, oid), (value_tag, value) = read_der_sequence(attribute)[:2]
            encoding = _STRING_DECODERS.get(value_tag)
            text = value.decode(encoding, "replace") if encoding else "#" + value.hex()
            pairs.append((decode_oid(oid), text))
    return pairs


def format_dn(der: bytes) -> str:
    """'C=CH, O=strongSwan, CN=moon' for a DER Name."""
    return ", ".join(f"{_DN_NAMES_BY_OID.get(oid, oid)}={value}"
                     for oid, value in _dn_attributes(der))


def dns_equal(der_a: bytes, der_b: bytes) -> bool:
    """Same DN, ignoring string types and letter case (as strongSwan compares DNs)."""
    if der_a == der_b:
        return True
    try:
        a, b = _dn_attributes(der_a), _dn_attributes(der_b)
    except ValueError:
        return False
    return [(o, v.casefold()) for o, v in a] == [(o, v.casefold()) for o, v in b]


# ---------------------------------------------------------------------------------------------
# Identities (RFC 7296 §3.5)

_TYPE_PREFIXES = {
    "ipv4:": IdType.IPV4_ADDR, "ipv6:": IdType.IPV6_ADDR, "fqdn:": IdType.FQDN,
    "email:": IdType.RFC822_ADDR, "rfc822:": IdType.RFC822_ADDR,
    "asn1dn:": IdType.DER_ASN1_DN, "keyid:": IdType.KEY_ID,
}


def _typed_identity(id_type: IdType, value: str) -> Identity:
    if id_type == IdType.IPV4_ADDR:
        return id_type, ipaddress.IPv4Address(value).packed
    if id_type == IdType.IPV6_ADDR:
        return id_type, ipaddress.IPv6Address(value).packed
    if id_type == IdType.DER_ASN1_DN:
        return id_type, dn_from_string(value)
    if id_type == IdType.KEY_ID:
        return id_type, bytes.fromhex(value.removeprefix("#"))
    return id_type, value.encode("utf-8")


def identity_from_string(text: str) -> Identity:
    """(IdType, data) for an identity written as strongSwan users write them.

    "198.51.100.1" / "2001:db8::1" → IPV4_ADDR / IPV6_ADDR; "@vpn.example.org" → FQDN
    (strongSwan style); "@@carol" → RFC822_ADDR; "@#0a1b" → KEY_ID; anything with "=" → a
    DER_ASN1_DN ("C=CH, O=strongSwan, CN=moon"); "carol@example.org" → RFC822_ADDR; other
    text → FQDN. A "fqdn:", "email:", "asn1dn:", "keyid:", "ipv4:" or "ipv6:" prefix forces
    the type. Raises ValueError naming what is wrong.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty identity")
    try:
        for prefix, id_type in _TYPE_PREFIXES.items():
            if text.lower().startswith(prefix):
                return _typed_identity(id_type, text[len(prefix):].strip())
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            pass
        else:
            return (IdType.IPV4_ADDR if address.version == 4 else IdType.IPV6_ADDR,
                    address.packed)
        if text.startswith("@#"):
            return _typed_identity(IdType.KEY_ID, text[2:])
        if text.startswith("@@"):
            return IdType.RFC822_ADDR, text[2:].encode("utf-8")
        if text.startswith("@"):
            return IdType.FQDN, text[1:].encode("utf-8")
        if "=" in text:
            return IdType.DER_ASN1_DN, dn_from_string(text)
        if "@" in text:
            return IdType.RFC822_ADDR, text.encode("utf-8")
        return IdType.FQDN, text.encode("utf-8")
    except ValueError as exc:
        raise ValueError(f"identity {text!r}: {exc}") from None


def format_identity(id_type: int, data: bytes) -> str:
    """Readable form of an identity, for logs and messages."""
    try:
        if id_type in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
            return str(ipaddress.ip_address(data))
        if id_type in (IdType.FQDN, IdType.RFC822_ADDR):
            return data.decode("utf-8", "replace")
        if id_type == IdType.DER_ASN1_DN:
            return format_dn(data)
    except ValueError:
        pass  # malformed data: fall through to the hex form below
    if id_type == IdType.KEY_ID:
        return "@#" + data.hex()
    if id_type == IdType.NULL:
        return "(null)"
    try:
        name = IdType(id_type).name
    except ValueError:
        name = f"ID type {id_type}"
    return f"{name} #{data.hex()}"


def _as_identity(identity: Union[str, Identity]) -> Identity:
    if isinstance(identity, str):
        return identity_from_string(identity)
    id_type, data = identity
    return IdType(id_type), bytes(data)


# ---------------------------------------------------------------------------------------------
# Loading keys and certificates


def _read(source: Union[str, os.PathLike, bytes]) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "data"
    from .files import FileRefused, read_bounded

    try:
        return read_bounded(source), str(source)
    except FileRefused as exc:
        raise CertificateError(f"cannot read {source}: {exc.problem}") from None


def load_certificates(source: Union[str, os.PathLike, bytes]) -> list[x509.Certificate]:
    """All certificates in a PEM file (one or more) or a DER file, or in such bytes."""
    from cryptography import x509

    data, where = _read(source)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
        raise CertificateError(f"{where} holds no PEM or DER certificate") from None


def load_trust_anchors(source: Union[str, os.PathLike]) -> list[x509.Certificate]:
    """CA certificates from a file or from every file in a directory (PEM or DER).

    In a directory, files without a certificate (keys, READMEs) and certificates that are not
    CA certificates (basicConstraints cA) are skipped, as strongSwan skips them in its cacerts
    directory; a directory without any CA certificate is an error. A single file is taken as
    given, so that a gateway certificate can be pinned on purpose.
    """
    path = Path(source)
    if path.is_dir():
        anchors = []
        for entry in sorted(path.iterdir()):
            if entry.is_file():
                try:
                    found = load_certificates(entry)
                except CertificateError:
                    continue
                anchors.extend(c for c in found if _is_ca(c))
        if not anchors:
            raise CertificateError(f"no CA certificates in directory {path}")
        return anchors
    return load_certificates(path)


def load_private_key(source: Union[str, os.PathLike, bytes], password: bytes | None = None):
    """An RSA, ECDSA, Ed25519 or Ed448 private key from PEM or DER (file path or bytes)."""
    data, where = _read(source)
    loader = (serialization.load_pem_private_key if b"-----BEGIN" in data
              else serialization.load_der_private_key)
    try:
        # No RSA key validation (primality of p and q, ~40 ms for a 2048-bit key at every
        # connection attempt): it guards against keys from untrusted sources, and this is the
        # user's own credential. A damaged key cannot leak through its signatures: OpenSSL
        # checks each CRT signature before returning it. charon does not validate either.
        key = loader(data, password=password, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as exc:
        # cryptography's messages name the format problem, never the key material.
        raise CertificateError(f"cannot load private key from {where}: {exc}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                            ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        raise CertificateError(f"{where}: unsupported key type {type(key).__name__}")
    return key


def certreq_hashes(cas: Iterable[x509.Certificate]) -> bytes:
    """CERTREQ Certification Authority field: SHA-1 of each CA's SubjectPublicKeyInfo,
    concatenated (RFC 7296 §3.7)."""
    digests = []
    for ca in cas:
        digest = hashes.Hash(hashes.SHA1())
        digest.update(ca.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
        digests.append(digest.finalize())
    return b"".join(digests)


# ---------------------------------------------------------------------------------------------
# Validation

# serverAuth, ikeIntermediate (RFC 4945 §5.1.3.12), anyExtendedKeyUsage, as dotted OIDs
_GATEWAY_USAGES = {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.8.2.2", "2.5.29.37.0"}
MAX_CHAIN_LENGTH = 8


def _extension(cert: x509.Certificate, ext_type):
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(ext_type).value
    except x509.ExtensionNotFound:
        return None


def describe_certificate(cert: x509.Certificate) -> str:
    """Who a certificate is for: its first subjectAltName, else its CN, else its DN."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    san = _extension(cert, x509.SubjectAlternativeName)
    for name in san or ():
        if isinstance(name, (x509.DNSName, x509.RFC822Name)):
            return name.value
        if isinstance(name, x509.IPAddress):
            return str(name.value)
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common_names:
        return str(common_names[0].value)
    return format_dn(cert.subject.public_bytes())


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.timezone.utc)


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _is_ca(cert: x509.Certificate) -> bool:
    from cryptography import x509

    constraints = _extension(cert, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def _check_validity(cert: x509.Certificate, what: str, now: float) -> None:
    moment = _utc(now)
    if moment > cert.not_valid_after_utc:
        raise CertificateError(f"{what} expired on {_when(cert.not_valid_after_utc)}")
    if moment < cert.not_valid_before_utc:
        raise CertificateError(f"{what} is not valid before {_when(cert.not_valid_before_utc)}")


def _check_critical_extensions(cert: x509.Certificate, what: str) -> None:
    from cryptography import x509

    for extension in cert.extensions:
        if extension.critical and isinstance(extension.value, x509.UnrecognizedExtension):
            raise CertificateError(
                f"{what} has an unsupported critical extension {extension.oid.dotted_string}")


def _check_issuer_is_ca(issuer: x509.Certificate, cas_below: int) -> None:
    """RFC 5280 §6.1.4 (k), (l), (n) for an intermediate CA."""
    from cryptography import x509

    what = f"intermediate certificate {format_dn(issuer.subject.public_bytes())}"
    if not _is_ca(issuer):
        raise CertificateError(f"{what} is not a CA certificate (basicConstraints)")
    constraints = _extension(issuer, x509.BasicConstraints)
    if constraints.path_length is not None and cas_below > constraints.path_length:
        raise CertificateError(f"{what} allows only {constraints.path_length} CAs below it")
    usage = _extension(issuer, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise CertificateError(f"{what} may not sign certificates (keyUsage)")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):  # bad signature, other issuer, key type
        return False
    return True


def _matches_identity(cert: x509.Certificate, identity: Identity) -> bool:
    """RFC 4945 §3.1: the ID must appear in the certificate (subject or subjectAltName)."""
    from cryptography import x509

    id_type, data = identity
    if id_type == IdType.DER_ASN1_DN:
        return dns_equal(cert.subject.public_bytes(), data)
    san = _extension(cert, x509.SubjectAlternativeName) or x509.SubjectAlternativeName([])
    if id_type in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        address = ipaddress.ip_address(data)
        return address in san.get_values_for_type(x509.IPAddress)
    text = data.decode("utf-8", "replace").casefold()
    if id_type == IdType.FQDN:
        return text in (n.casefold() for n in san.get_values_for_type(x509.DNSName))
    if id_type == IdType.RFC822_ADDR:
        return text in (n.casefold() for n in san.get_values_for_type(x509.RFC822Name))
    return False


def _as_certificate(cert) -> x509.Certificate:
    from cryptography import x509

    if isinstance(cert, x509.Certificate):
        return cert
    try:
        return x509.load_der_x509_certificate(bytes(cert))
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
        raise CertificateError("the gateway sent a certificate that cannot be parsed") from None


def validate_certificate(cert, intermediates: Sequence, trust_anchors,
                         identity: Union[str, Identity], now: float) -> list[x509.Certificate]:
    """Check the gateway's end-entity certificate; return the chain up to the trust anchor.

    cert and intermediates: x509.Certificate or DER bytes (CERT payload data).
    trust_anchors: x509.Certificates, or a path to a CA file or directory.
    identity: the gateway identity the certificate must name, (IdType, data) or a string.
    now: seconds since the epoch. Raises CertificateError in plain words.
    """
    from cryptography import x509

    cert = _as_certificate(cert)
    pool = [_as_certificate(c) for c in intermediates]
    if isinstance(trust_anchors, (str, os.PathLike)):
        trust_anchors = load_trust_anchors(trust_anchors)
    anchors = list(trust_anchors)
    identity = _as_identity(identity)
    what = f"certificate for {describe_certificate(cert)}"

    _check_validity(cert, what, now)
    _check_critical_extensions(cert, what)
    usages = _extension(cert, x509.ExtendedKeyUsage)
    if usages is not None and not _GATEWAY_USAGES & {usage.dotted_string for usage in usages}:
        raise CertificateError(
            f"{what} is not meant for VPN gateways (its extended key usage allows neither "
            "serverAuth nor ikeIntermediate)")

    chain = [cert]
    current, cas_below = cert, 0
    anchor_der = {a.public_bytes(serialization.Encoding.DER) for a in anchors}
    while current.public_bytes(serialization.Encoding.DER) not in anchor_der:
        anchor = next((a for a in anchors if _signed_by(current, a)), None)
        if anchor is not None:
            _check_validity(anchor, f"CA certificate {format_dn(anchor.subject.public_bytes())}",
                            now)
            chain.append(anchor)
            break
        issuer = next((c for c in pool if c not in chain and _signed_by(current, c)), None)
        if issuer is None or len(chain) >= MAX_CHAIN_LENGTH:
            issuer_dn = format_dn(current.issuer.public_bytes())
            raise CertificateError(
                f"{what} is not signed by a trusted CA (no trusted path to issuer {issuer_dn})")
        _check_issuer_is_ca(issuer, cas_below)
        issuer_what = f"intermediate certificate {format_dn(issuer.subject.public_bytes())}"
        _check_validity(issuer, issuer_what, now)
        _check_critical_extensions(issuer, issuer_what)
        if issuer.subject != issuer.issuer:
            cas_below += 1  # self-issued certificates do not count (RFC 5280 §4.2.1.9)
        chain.append(issuer)
        current = issuer

    if not _matches_identity(cert, identity):
        raise CertificateError(f"{what} does not match the gateway identity "
                               f"{format_identity(*identity)}")
    return chain
