"""AUTH payloads: the signed octets, shared-key AUTH, signatures; identities; certificates.

RFC 7296 §2.15 defines what both sides sign; §2.16 how an EAP MSK replaces the PSK.
Signatures follow RFC 7427 (Digital Signature, method 14) when the peer announced
SIGNATURE_HASH_ALGORITHMS, else the classic methods: 1 (RSA PKCS#1 v1.5 with SHA-1,
RFC 7296 §3.8) and 9/10/11 (ECDSA, RFC 4754).

Identities and certificate validation live in ike/certificates.py and are re-exported
here, so callers need only `from ike import auth`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)

from .certificates import (  # re-exported, see __all__
    CertificateError, certreq_hashes, describe_certificate, dn_from_string, format_dn,
    format_identity, identity_from_string, load_certificates, load_private_key,
    load_trust_anchors, validate_certificate, decode_oid, read_der, read_der_sequence)
from .constants import AuthMethod, HashAlgorithm
from .constant_time import bytes_equal

__all__ = [
    # defined here
    "AuthenticationError", "Signer", "SUPPORTED_HASH_ALGORITHMS", "decode_hash_algorithms",
    "encode_hash_algorithms", "psk_auth_data", "rest_of_id_payload", "signed_octets",
    "verify_auth", "verify_shared_key_auth",
    # from ike.certificates
    "CertificateError", "certreq_hashes", "describe_certificate", "dn_from_string", "format_dn",
    "format_identity", "identity_from_string", "load_certificates", "load_private_key",
    "load_trust_anchors", "validate_certificate",
]


class AuthenticationError(Exception):
    """The peer's AUTH payload does not prove what it must, or we cannot sign as asked.
    Messages are plain words and never carry key material."""


# ---------------------------------------------------------------------------------------------
# RFC 7296 §2.15: what is signed or MACed

_KEY_PAD = b"Key Pad for IKEv2"  # §2.15, 17 ASCII octets, no NUL


def rest_of_id_payload(id_payload) -> bytes:
    """ID Type ‖ 3 reserved octets ‖ Identification Data: the ID payload body after its
    generic header. id_payload: an IDi/IDr payload, an (IdType, data) tuple, or these bytes."""
    if isinstance(id_payload, (bytes, bytearray)):
        return bytes(id_payload)
    if isinstance(id_payload, tuple):
        id_type, data = id_payload
    else:
        id_type, data = id_payload.id_type, id_payload.data
    return bytes([int(id_type)]) + b"\x00\x00\x00" + bytes(data)


def signed_octets(message: bytes, nonce: bytes, prf, sk_p: bytes, id_payload) -> bytes:
    """RFC 7296 §2.15 InitiatorSignedOctets / ResponderSignedOctets.

    message: our own IKE_SA_INIT message (as sent) when we sign, the peer's when we verify.
    nonce: the *other* side's nonce data. prf: the negotiated PRF (`prf(key, data)`).
    sk_p: SK_pi for the initiator's AUTH, SK_pr for the responder's.
    """
    return bytes(message) + bytes(nonce) + prf(sk_p, rest_of_id_payload(id_payload))


def psk_auth_data(prf, secret: bytes, octets: bytes) -> bytes:
    """AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>) (§2.15).

    With EAP the secret is the MSK (§2.16); for a method without an MSK it is SK_pi/SK_pr.
    """
    if not secret:
        raise AuthenticationError("the shared secret is empty")
    return prf(prf(bytes(secret), _KEY_PAD), octets)


def verify_shared_key_auth(auth_payload, prf, secret: bytes, octets: bytes) -> None:
    """Check a peer's SHARED_KEY_MIC AUTH payload; raise AuthenticationError if wrong."""
    if auth_payload.method != AuthMethod.SHARED_KEY_MIC:
        raise AuthenticationError(
            f"the gateway authenticated with {_method_name(auth_payload.method)}, "
            "expected a pre-shared key")
    if not bytes_equal(psk_auth_data(prf, secret, octets), bytes(auth_payload.data)):
        raise AuthenticationError("the gateway's AUTH does not match our pre-shared key "
                                  "(or EAP key)")


# ---------------------------------------------------------------------------------------------
# RFC 7427 SIGNATURE_HASH_ALGORITHMS notify (§4)

# What we accept from a peer, announced in our own notify.
SUPPORTED_HASH_ALGORITHMS = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384,
                             HashAlgorithm.SHA2_512, HashAlgorithm.IDENTITY)


def encode_hash_algorithms(algorithms: Iterable[int] = SUPPORTED_HASH_ALGORITHMS) -> bytes:
    """Notification data: one 16-bit number per hash algorithm."""
    return b"".join(struct.pack("!H", int(a)) for a in algorithms)


def decode_hash_algorithms(data: bytes) -> tuple[int, ...]:
    """The peer's announced hash algorithms (unknown numbers kept as ints)."""
    if len(data) % 2:
        raise AuthenticationError("SIGNATURE_HASH_ALGORITHMS data has an odd length")
    numbers = struct.unpack(f"!{len(data) // 2}H", data)
    return tuple(HashAlgorithm(n) if n in HashAlgorithm._value2member_map_ else n
                 for n in numbers)


# ---------------------------------------------------------------------------------------------
# ASN.1 AlgorithmIdentifiers (RFC 7427 §3 and Appendix A)

_SHA1, _SHA256, _SHA384, _SHA512 = (
    "1.3.14.3.2.26", "2.16.840.1.101.3.4.2.1", "2.16.840.1.101.3.4.2.2", "2.16.840.1.101.3.4.2.3")
_HASH_BY_OID = {_SHA1: hashes.SHA1, _SHA256: hashes.SHA256, _SHA384: hashes.SHA384,
                _SHA512: hashes.SHA512}
_OID_BY_HASH = {cls.name: oid for oid, cls in _HASH_BY_OID.items()}
_HASH_BY_NUMBER = {HashAlgorithm.SHA2_256: hashes.SHA256, HashAlgorithm.SHA2_384: hashes.SHA384,
                   HashAlgorithm.SHA2_512: hashes.SHA512}

_RSA_PKCS1_OIDS = {"1.2.840.113549.1.1.5": hashes.SHA1, "1.2.840.113549.1.1.11": hashes.SHA256,
                   "1.2.840.113549.1.1.12": hashes.SHA384, "1.2.840.113549.1.1.13": hashes.SHA512}
_ECDSA_OIDS = {"1.2.840.10045.4.1": hashes.SHA1, "1.2.840.10045.4.3.2": hashes.SHA256,
               "1.2.840.10045.4.3.3": hashes.SHA384, "1.2.840.10045.4.3.4": hashes.SHA512}
_RSA_PSS = "1.2.840.113549.1.1.10"
_MGF1 = "1.2.840.113549.1.1.8"
_ED25519, _ED448 = "1.3.101.112", "1.3.101.113"


def _der(tag: int, content: bytes) -> bytes:
    """One DER element (X.690 §8.1.3 definite length)."""
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    content = b""
    for arc in [40 * arcs[0] + arcs[1]] + arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.insert(0, 0x80 | (arc & 0x7F))
        content += bytes(chunk)
    return _der(0x06, content)


_DER_NULL = b"\x05\x00"


def _algorithm_identifier(oid: str, parameters: Optional[bytes] = None) -> bytes:
    return _der(0x30, _der_oid(oid) + (parameters or b""))


def _pss_algorithm_identifier(hash_cls) -> bytes:
    """RSASSA-PSS with explicit parameters (RFC 4055 §3.1): hash, MGF1 with the same hash,
    salt as long as the digest (what strongSwan sends)."""
    hash_id = _algorithm_identifier(_OID_BY_HASH[hash_cls.name], _DER_NULL)
    params = (_der(0xA0, hash_id)
              + _der(0xA1, _algorithm_identifier(_MGF1, hash_id))
              + _der(0xA2, _der(0x02, bytes([hash_cls.digest_size]))))
    return _algorithm_identifier(_RSA_PSS, _der(0x30, params))


def _parse_pss_parameters(params: bytes):
    """(hash class, MGF1 hash class, salt length) from RSASSA-PSS-params (RFC 4055 §3.1),
    with its SHA-1/20 defaults for absent fields."""
    hash_cls, mgf_hash_cls, salt = hashes.SHA1, hashes.SHA1, 20
    tag, content, _ = read_der(params)
    if tag != 0x30:
        raise ValueError("RSASSA-PSS parameters are not a SEQUENCE")
    for field_tag, value in read_der_sequence(content):
        if field_tag == 0xA0:
            hash_cls = _hash_from_algorithm_identifier(value)
        elif field_tag == 0xA1:
            mgf_oid, mgf_params = _parse_algorithm_identifier(value)
            if mgf_oid != _MGF1 or mgf_params is None:
                raise ValueError(f"unsupported PSS mask generation function {mgf_oid}")
            mgf_hash_cls = _hash_from_algorithm_identifier(mgf_params)
        elif field_tag == 0xA2:
            _, salt_bytes, _ = read_der(value)
            salt = int.from_bytes(salt_bytes, "big")
    return hash_cls, mgf_hash_cls, salt


def _parse_algorithm_identifier(der: bytes) -> tuple[str, Optional[bytes]]:
    """(dotted OID, DER of the parameters or None)."""
    tag, content, end = read_der(der)
    if tag != 0x30 or end != len(der):
        raise ValueError("AlgorithmIdentifier is not a SEQUENCE")
    oid_tag, oid, offset = read_der(content)
    if oid_tag != 0x06:
        raise ValueError("AlgorithmIdentifier does not start with an OID")
    params = content[offset:] or None
    return decode_oid(oid), (None if params == _DER_NULL else params)


def _hash_from_algorithm_identifier(der: bytes):
    oid, _ = _parse_algorithm_identifier(der)
    if oid not in _HASH_BY_OID:
        raise ValueError(f"unsupported hash algorithm {oid}")
    return _HASH_BY_OID[oid]


# ---------------------------------------------------------------------------------------------
# Signing

# Curve → (hash RFC 4754 pairs with it, classic AUTH method, octets per coordinate)
_ECDSA_CURVES = {
    "secp256r1": (hashes.SHA256, AuthMethod.ECDSA_SHA256_P256, 32),
    "secp384r1": (hashes.SHA384, AuthMethod.ECDSA_SHA384_P384, 48),
    "secp521r1": (hashes.SHA512, AuthMethod.ECDSA_SHA512_P521, 66),
}
_ECDSA_OID_BY_HASH = {cls.name: oid for oid, cls in _ECDSA_OIDS.items()}
_RSA_OID_BY_HASH = {cls.name: oid for oid, cls in _RSA_PKCS1_OIDS.items()}
_RSA_HASH_PREFERENCE = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512)


def _method_name(method: int) -> str:
    try:
        return AuthMethod(method).name
    except ValueError:
        return f"authentication method {method}"


@dataclass
class Signer:
    """Signs our AUTH payload with a private key (RSA, ECDSA P-256/384/521, Ed25519, Ed448).

    `rsa_pss` selects RSASSA-PSS over PKCS#1 v1.5 for RSA keys under RFC 7427.
    """

    private_key: Any = field(repr=False)
    rsa_pss: bool = False

    def __post_init__(self):
        if not isinstance(self.private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                                             ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
            raise TypeError(f"cannot sign with a {type(self.private_key).__name__}")
        if (isinstance(self.private_key, ec.EllipticCurvePrivateKey)
                and self.private_key.curve.name not in _ECDSA_CURVES):
            raise TypeError(f"ECDSA curve {self.private_key.curve.name} is not usable in IKEv2")

    def sign(self, octets: bytes, peer_hash_algorithms: Optional[Iterable[int]] = None
             ) -> tuple[AuthMethod, bytes]:
        """(AUTH method, AUTH data) over the signed octets.

        peer_hash_algorithms: what the peer sent in SIGNATURE_HASH_ALGORITHMS, or None when it
        sent no such notify (then only the classic methods 1, 9, 10, 11 are possible).
        """
        announced = set(peer_hash_algorithms or ())
        key = self.private_key
        if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
            if HashAlgorithm.IDENTITY not in announced:
                raise AuthenticationError(
                    "the gateway does not accept EdDSA signatures (no 'Identity' hash in its "
                    "SIGNATURE_HASH_ALGORITHMS, RFC 8420)")
            oid = _ED25519 if isinstance(key, ed25519.Ed25519PrivateKey) else _ED448
            return self._digital_signature(_algorithm_identifier(oid), key.sign(octets))
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return self._sign_ecdsa(octets, announced)
        return self._sign_rsa(octets, announced)

    @staticmethod
    def _digital_signature(algorithm_identifier: bytes, signature: bytes):
        """RFC 7427 §3: length of the AlgorithmIdentifier ‖ it ‖ the signature."""
        return (AuthMethod.DIGITAL_SIGNATURE,
                bytes([len(algorithm_identifier)]) + algorithm_identifier + signature)

    def _sign_rsa(self, octets: bytes, announced: set):
        usable = [n for n in _RSA_HASH_PREFERENCE if n in announced]
        if not usable:
            # §3.8 method 1: PKCS#1 v1.5 with SHA-1, the only RSA choice without RFC 7427
            return (AuthMethod.RSA_DIGITAL_SIGNATURE,
                    self.private_key.sign(octets, padding.PKCS1v15(), hashes.SHA1()))
        hash_cls = _HASH_BY_NUMBER[usable[0]]
        if self.rsa_pss:
            pss = padding.PSS(padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
            return self._digital_signature(_pss_algorithm_identifier(hash_cls),
                                           self.private_key.sign(octets, pss, hash_cls()))
        return self._digital_signature(
            _algorithm_identifier(_RSA_OID_BY_HASH[hash_cls.name], _DER_NULL),
            self.private_key.sign(octets, padding.PKCS1v15(), hash_cls()))

    def _sign_ecdsa(self, octets: bytes, announced: set):
        curve_hash, classic_method, coordinate_size = _ECDSA_CURVES[self.private_key.curve.name]
        curve_number = next(n for n, c in _HASH_BY_NUMBER.items() if c is curve_hash)
        # RFC 7427: prefer the hash that matches the curve's strength if the peer takes it
        usable = [n for n in (curve_number, *_RSA_HASH_PREFERENCE) if n in announced]
        if not usable:
            # RFC 4754 §7: the signature is r ‖ s, each as long as the curve's order
            r, s = decode_dss_signature(self.private_key.sign(octets, ec.ECDSA(curve_hash())))
            return classic_method, r.to_bytes(coordinate_size, "big") + s.to_bytes(
                coordinate_size, "big")
        hash_cls = _HASH_BY_NUMBER[usable[0]]
        # RFC 7427 §3: ECDSA signatures are DER ECDSA-Sig-Value, as cryptography emits them
        return self._digital_signature(
            _algorithm_identifier(_ECDSA_OID_BY_HASH[hash_cls.name]),
            self.private_key.sign(octets, ec.ECDSA(hash_cls())))


# ---------------------------------------------------------------------------------------------
# Verifying


def _public_key(certificate_or_public_key):
    from cryptography import x509  # imported here: PSK and EAP never need it (start-up time)

    if isinstance(certificate_or_public_key, x509.Certificate):
        return certificate_or_public_key.public_key()
    return certificate_or_public_key


def _require(key, key_types, description: str) -> None:
    if not isinstance(key, key_types):
        raise AuthenticationError(
            f"the gateway signed with {description}, but its certificate holds a "
            f"{_key_description(key)}")


def _key_description(key) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size} key"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name} key"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519 key"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448 key"
    return f"{type(key).__name__}"


def _verify_classic_ecdsa(key, method: int, data: bytes, octets: bytes) -> None:
    """RFC 4754: methods 9/10/11 fix curve and hash; the signature is r ‖ s."""
    curve_name = next(name for name, (_, m, _) in _ECDSA_CURVES.items() if m == method)
    hash_cls, _, size = _ECDSA_CURVES[curve_name]
    _require(key, ec.EllipticCurvePublicKey, _method_name(method))
    if key.curve.name != curve_name:
        raise AuthenticationError(f"the gateway signed with {_method_name(method)}, but its "
                                  f"certificate holds an {_key_description(key)}")
    if len(data) != 2 * size:
        raise InvalidSignature()
    r, s = int.from_bytes(data[:size], "big"), int.from_bytes(data[size:], "big")
    key.verify(encode_dss_signature(r, s), octets, ec.ECDSA(hash_cls()))


def _verify_digital_signature(key, data: bytes, octets: bytes) -> None:
    """RFC 7427 §3: ASN.1 length ‖ AlgorithmIdentifier ‖ signature."""
    if not data:
        raise AuthenticationError("the gateway's AUTH payload is empty")
    id_length = data[0]
    try:
        oid, params = _parse_algorithm_identifier(data[1:1 + id_length])
        pss = _parse_pss_parameters(params) if oid == _RSA_PSS else None
    except ValueError as exc:
        raise AuthenticationError(f"the gateway's AUTH payload is malformed: {exc}") from None
    signature = data[1 + id_length:]

    if oid in _RSA_PKCS1_OIDS or oid == _RSA_PSS:
        hash_cls = _RSA_PKCS1_OIDS.get(oid) or pss[0]
        _require(key, rsa.RSAPublicKey, "RSA")
        _refuse_sha1(hash_cls)
        if pss:
            scheme = padding.PSS(padding.MGF1(pss[1]()), salt_length=pss[2])
        else:
            scheme = padding.PKCS1v15()
        key.verify(signature, octets, scheme, hash_cls())
    elif oid in _ECDSA_OIDS:
        _require(key, ec.EllipticCurvePublicKey, "ECDSA")
        _refuse_sha1(_ECDSA_OIDS[oid])
        key.verify(signature, octets, ec.ECDSA(_ECDSA_OIDS[oid]()))
    elif oid == _ED25519:
        _require(key, ed25519.Ed25519PublicKey, "Ed25519")
        key.verify(signature, octets)
    elif oid == _ED448:
        _require(key, ed448.Ed448PublicKey, "Ed448")
        key.verify(signature, octets)
    else:
        raise AuthenticationError(f"the gateway used an unsupported signature algorithm {oid}")


def _refuse_sha1(hash_cls) -> None:
    # We never announce SHA-1 in SIGNATURE_HASH_ALGORITHMS (RFC 8247 §3.1: MUST NOT).
    if hash_cls is hashes.SHA1:
        raise AuthenticationError("the gateway signed with SHA-1, which we do not accept "
                                  "in RFC 7427 signatures")


def verify_auth(auth_payload, octets: bytes, certificate_or_public_key) -> None:
    """Check the gateway's signature AUTH payload (methods 1, 9, 10, 11 and 14) against the
    public key of its (already validated) certificate. Raises AuthenticationError."""
    key = _public_key(certificate_or_public_key)
    method, data = auth_payload.method, bytes(auth_payload.data)
    try:
        if method == AuthMethod.RSA_DIGITAL_SIGNATURE:
            _require(key, rsa.RSAPublicKey, "RSA (method 1)")
            key.verify(data, octets, padding.PKCS1v15(), hashes.SHA1())
        elif method in (AuthMethod.ECDSA_SHA256_P256, AuthMethod.ECDSA_SHA384_P384,
                        AuthMethod.ECDSA_SHA512_P521):
            _verify_classic_ecdsa(key, method, data, octets)
        elif method == AuthMethod.DIGITAL_SIGNATURE:
            _verify_digital_signature(key, data, octets)
        elif method == AuthMethod.SHARED_KEY_MIC:
            raise AuthenticationError("the gateway authenticated with a pre-shared key where "
                                      "a certificate signature was expected")
        else:
            raise AuthenticationError(f"the gateway used {_method_name(method)}, "
                                      "which we do not support")
    except InvalidSignature:
        raise AuthenticationError("the gateway's AUTH signature does not verify with the "
                                  "public key of its certificate") from None
