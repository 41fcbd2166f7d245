"""Our private key on a smartcard or token, through PKCS#11 (python-pkcs11): the key never
leaves the token; ike/auth.py's Signer signs through these objects, which stand in for
cryptography's RSA and EC private keys (RSA PKCS#1 v1.5 and PSS, ECDSA).

python-pkcs11 rather than PyKCS11: it is maintained (0.10, 2026), typed and object-oriented,
ships wheels, and passes PSS parameters as plain tuples.

    key, certificate = open_key(module, token_label, key_label, key_id, pin)

The PKCS#11 session stays open for the tunnel's life (reauthentication signs again).
"""

from __future__ import annotations

from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from .held_key import HeldEcKey, HeldKey

_KEEP = []  # open sessions: closing one would log the token out under the signer


class TokenError(Exception):
    """One line for the user: no module, no token, wrong PIN, no such key."""


_RSA_PKCS = {"sha1": "SHA1_RSA_PKCS", "sha256": "SHA256_RSA_PKCS",
             "sha384": "SHA384_RSA_PKCS", "sha512": "SHA512_RSA_PKCS"}
_PSS = {"sha1": ("SHA1_RSA_PKCS_PSS", "SHA_1", "SHA1"), "sha256": ("SHA256_RSA_PKCS_PSS", "SHA256", "SHA256"),
        "sha384": ("SHA384_RSA_PKCS_PSS", "SHA384", "SHA384"),
        "sha512": ("SHA512_RSA_PKCS_PSS", "SHA512", "SHA512")}


class TokenRsaKey(HeldKey, rsa.RSAPrivateKey):
    _holder = "on the token"

    def __init__(self, token_key, public: rsa.RSAPublicKey):
        self._key, self._public = token_key, public

    def sign(self, data, pad, algorithm):
        import pkcs11

        if isinstance(algorithm, utils.Prehashed):
            raise TypeError("pre-hashed data cannot be signed on the token")
        name = algorithm.name
        if isinstance(pad, padding.PSS):
            mech, hash_mech, mgf = _PSS[name]
            salt = pad._salt_length if isinstance(pad._salt_length, int) else algorithm.digest_size
            return self._key.sign(data, mechanism=getattr(pkcs11.Mechanism, mech),
                                  mechanism_param=(getattr(pkcs11.Mechanism, hash_mech),
                                                   getattr(pkcs11.MGF, mgf), salt))
        return self._key.sign(data, mechanism=getattr(pkcs11.Mechanism, _RSA_PKCS[name]))


class TokenEcKey(HeldEcKey, ec.EllipticCurvePrivateKey):
    _holder = "on the token"

    def __init__(self, token_key, public: ec.EllipticCurvePublicKey):
        self._key, self._public = token_key, public

    def sign(self, data, signature_algorithm):
        import pkcs11

        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, utils.Prehashed):
            digest = data
        else:
            h = hashes.Hash(algorithm)
            h.update(data)
            digest = h.finalize()
        raw = self._key.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)  # r ‖ s
        half = len(raw) // 2
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                          int.from_bytes(raw[half:], "big"))


def close_all() -> None:
    """Close the kept sessions (the token logs out with the last one)."""
    while _KEEP:
        _KEEP.pop().close()


def open_key(module: str, token_label: Optional[str], key_label: Optional[str],
             key_id: Optional[bytes], pin: bytes, certificate: Optional[x509.Certificate] = None):
    """(private key object, certificate): `certificate` given, or the token's certificate
    object with the key's id/label."""
    try:
        import pkcs11
        from pkcs11 import Attribute, ObjectClass
        from pkcs11 import exceptions as pe
    except ImportError:
        raise TokenError("PKCS#11 support needs python-pkcs11 (pip install python-pkcs11)") from None
    try:
        lib = pkcs11.lib(str(module))
    except (RuntimeError, OSError, pe.PKCS11Error) as error:
        raise TokenError(f"cannot load the PKCS#11 module {module}: {error}") from None
    try:
        tokens = [t for t in lib.get_tokens() if token_label is None or t.label == token_label]
    except pe.PKCS11Error as error:
        raise TokenError(f"the PKCS#11 module {module} lists no tokens ({type(error).__name__})") from None
    if not tokens:
        raise TokenError(f"no token labelled '{token_label}' in {module}" if token_label
                         else f"no token in {module} (is the smartcard inserted?)")
    token = tokens[0]
    try:
        session = token.open(user_pin=pin.decode("utf-8"))
    except pe.PinIncorrect:
        raise TokenError(f"wrong PIN for the token '{token.label}'") from None
    except pe.PinLocked:
        raise TokenError(f"the token '{token.label}' is locked (too many wrong PINs)") from None
    except (pe.PinLenRange, pe.PinInvalid):
        raise TokenError(f"the PIN for the token '{token.label}' has the wrong form") from None
    except pe.PKCS11Error as error:
        raise TokenError(f"cannot log in to the token '{token.label}': {type(error).__name__}") from None
    query = {}
    if key_label:
        query["label"] = key_label
    if key_id:
        query["id"] = key_id
    what = " ".join(f"{k} {v if k == 'label' else v.hex()}" for k, v in query.items())
    try:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, **query)
    except pe.NoSuchKey:
        session.close()
        raise TokenError(f"no private key with {what or 'any label'} on the token '{token.label}'") from None
    except pe.MultipleObjectsReturned:
        session.close()
        raise TokenError(f"several private keys match on the token '{token.label}': set "
                         "'pkcs11_key' (label) or 'pkcs11_key_id'") from None
    if certificate is None:
        lookup = {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key[Attribute.ID]}
        found = list(session.get_objects(lookup))
        if not found:
            session.close()
            raise TokenError(f"no certificate for the key {what} on the token '{token.label}': "
                             "set 'cert'")
        certificate = x509.load_der_x509_certificate(bytes(found[0][Attribute.VALUE]))
    public = certificate.public_key()
    _KEEP.append(session)
    if isinstance(public, rsa.RSAPublicKey):
        return TokenRsaKey(key, public), certificate
    if isinstance(public, ec.EllipticCurvePublicKey):
        return TokenEcKey(key, public), certificate
    session.close()
    raise TokenError(f"the token's key {what} is neither RSA nor ECDSA")
