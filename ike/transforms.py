"""ENCR / PRF / INTEG algorithms bound to keys (RFC 7296 §3.3.2), built on `cryptography`.

Used by the IKE SK payload (ike/protection.py) and by the ESP data plane, so the per-packet
paths are kept cheap: every object is built once per key and reused for every message.

* `Cipher` — ENCR transforms. CBC needs the caller to pad to `block_size`; AEAD ciphers
  (`aead` is True) return ciphertext‖ICV and check it on decrypt.
* `Integrity` — INTEG transforms, HMAC-SHA2 with truncated ICVs (RFC 4868).
* `Prf` — PRF transforms, HMAC-SHA2 (RFC 4868 §2.1.2): `prf(key, data)`.

Incoming data that fails authentication (or cannot be ciphertext at all) raises
`IntegrityError`; programming errors (wrong key or IV length, unsupported id) raise
`TransformError`. Neither ever carries key material in its message.

Objects are not thread-safe: the CBC cipher keeps chaining state (see `_AesCbcCipher`), so a
multi-threaded data plane needs one object per thread.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher as _CryptoCipher
from cryptography.hazmat.primitives.ciphers import aead, algorithms, modes

from ike.constant_time import bytes_equal
from ike.constants import EncrId, IntegId, PrfId

__all__ = [
    "Cipher",
    "Integrity",
    "IntegrityError",
    "Prf",
    "TransformError",
    "cipher_keymat_size",
    "integrity_key_size",
    "make_cipher",
    "make_integrity",
    "make_prf",
    "SUPPORTED_ENCR",
    "SUPPORTED_INTEG",
    "SUPPORTED_PRF",
]


class IntegrityError(Exception):
    """Received data failed authentication (bad ICV/tag) or is not valid ciphertext."""


class TransformError(ValueError):
    """A transform was asked for something it cannot do (unsupported id, wrong key size)."""


def _name(enum_cls, value) -> str:
    """'ENCR_3DES (3)' for known ids, '999' for unknown ones: for error messages."""
    try:
        return f"{enum_cls(value).name} ({int(value)})"
    except ValueError:
        return str(value)


# --------------------------------------------------------------------------------------------
# Encryption


class Cipher:
    """An ENCR transform bound to one key.

    `block_size`: the length the plaintext must be a multiple of (16 for CBC; 1 for the
    counter-mode AEADs, which need no padding; ESP still aligns to 4 bytes, RFC 4303 §2.4).
    `iv_size`: bytes of IV the caller sends in each message. `icv_size`: AEAD tag length
    appended by `encrypt` (0 for CBC, whose integrity comes from a separate `Integrity`).
    """

    aead: bool = False
    block_size: int = 1
    iv_size: int = 0
    icv_size: int = 0
    key_bits: int = 0

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:  # pragma: no cover
        raise NotImplementedError

    def decrypt(self, iv: bytes, data: bytes, aad: bytes = b"") -> bytes:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key_bits}-bit>"

    def _check_iv(self, iv: bytes) -> None:
        if len(iv) != self.iv_size:
            raise TransformError(
                f"{type(self).__name__}: IV must be {self.iv_size} bytes, got {len(iv)}"
            )


class _AesCbcCipher(Cipher):
    """AES-CBC (RFC 3602) with one long-lived encryptor and decryptor context.

    `cryptography` cannot reset the IV of a CBC context, and building a context per packet costs
    ~3 µs (measured here: fresh context 3.5–5.4 µs per 1400-byte packet, this approach ~1.8 µs
    encrypt / ~0.6 µs decrypt plus the fix-up below). CBC only remembers the previous ciphertext
    block, so a context that is never finalized can serve many messages:

    * encrypt: the context will XOR the first block with its chaining value `prev` (the last
      ciphertext block it produced); feeding P1 ^ IV ^ prev makes that E(P1 ^ IV), exactly
      what CBC with this message's IV computes. The rest of the message chains normally.
    * decrypt: the context outputs D(C1) ^ prev (the last ciphertext block it was fed);
      XORing with prev ^ IV gives D(C1) ^ IV = P1.

    Inputs are checked to be whole blocks *before* they reach a context, so a context never
    holds a partial block and the chaining values stay in step.
    """

    block_size = 16
    iv_size = 16

    def __init__(self, key: bytes):
        self.key_bits = len(key) * 8
        algorithm = algorithms.AES(key)
        zero_iv = modes.CBC(bytes(16))
        self._encryptor = _CryptoCipher(algorithm, zero_iv).encryptor()
        self._decryptor = _CryptoCipher(algorithm, zero_iv).decryptor()
        self._encrypt_chain = 0  # last ciphertext block produced by _encryptor, as an int
        self._decrypt_chain = 0  # last ciphertext block fed to _decryptor, as an int

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        """CBC-encrypt `plaintext` (already padded to 16 bytes) under `iv`; `aad` is unused."""
        self._check_iv(iv)
        if not plaintext or len(plaintext) % 16:
            raise TransformError(
                f"AES-CBC plaintext must be a non-zero multiple of 16 bytes, got {len(plaintext)}"
            )
        first = (
            int.from_bytes(plaintext[:16], "big")
            ^ int.from_bytes(iv, "big")
            ^ self._encrypt_chain
        )
        out = self._encryptor.update(first.to_bytes(16, "big") + plaintext[16:])
        self._encrypt_chain = int.from_bytes(out[-16:], "big")
        return out

    def decrypt(self, iv: bytes, data: bytes, aad: bytes = b"") -> bytes:
        """CBC-decrypt `data` under `iv`. CBC cannot detect tampering: check the ICV first."""
        self._check_iv(iv)
        if not data or len(data) % 16:
            raise IntegrityError(
                f"AES-CBC ciphertext must be a non-zero multiple of 16 bytes, got {len(data)}"
            )
        out = self._decryptor.update(data)
        fix = int.from_bytes(iv, "big") ^ self._decrypt_chain
        self._decrypt_chain = int.from_bytes(data[-16:], "big")
        first = int.from_bytes(out[:16], "big") ^ fix
        return first.to_bytes(16, "big") + out[16:]


class _SaltedAeadCipher(Cipher):
    """An AEAD whose KEYMAT ends in a 4-byte salt; nonce = salt ‖ 8-byte IV.

    AES-GCM: RFC 4106 §8.1 for ESP, and RFC 5282 reuses the layout for IKE; ChaCha20-Poly1305:
    RFC 7634 §2 (KEYMAT and nonce; §3 applies it to IKEv2). The IV must never repeat under one
    key: callers use a counter (the ESP sequence number or the IKE message counter).
    """

    aead = True
    iv_size = 8
    icv_size = 16
    _SALT = 4

    def __init__(self, keymat: bytes, implementation):
        key, salt = keymat[: -self._SALT], keymat[-self._SALT :]
        self.key_bits = len(key) * 8
        self._salt = bytes(salt)
        self._aead = implementation(key)

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Return ciphertext ‖ 16-byte ICV."""
        self._check_iv(iv)
        return self._aead.encrypt(self._salt + iv, plaintext, aad)

    def decrypt(self, iv: bytes, data: bytes, aad: bytes = b"") -> bytes:
        """Check the ICV at the end of `data` and return the plaintext, or raise IntegrityError."""
        self._check_iv(iv)
        if len(data) < self.icv_size:
            raise IntegrityError(
                f"{self._label} data is {len(data)} bytes, shorter than its {self.icv_size}-byte ICV"
            )
        try:
            return self._aead.decrypt(self._salt + iv, data, aad)
        except InvalidTag:
            raise IntegrityError(f"{self._label} ICV check failed") from None


class _AesGcm16Cipher(_SaltedAeadCipher):
    _label = "AES-GCM-16"

    def __init__(self, keymat: bytes):
        super().__init__(keymat, aead.AESGCM)


class _ChaCha20Poly1305Cipher(_SaltedAeadCipher):
    _label = "ChaCha20-Poly1305"

    def __init__(self, keymat: bytes):
        super().__init__(keymat, aead.ChaCha20Poly1305)


# encr id -> (allowed key sizes in bits, cipher class, salt bytes in KEYMAT)
_ENCR = {
    EncrId.AES_CBC: ((128, 192, 256), _AesCbcCipher, 0),
    EncrId.AES_GCM_16: ((128, 192, 256), _AesGcm16Cipher, 4),
    # RFC 7634: fixed 256-bit key; no Key Length attribute is sent (§4).
    EncrId.CHACHA20_POLY1305: ((256,), _ChaCha20Poly1305Cipher, 4),
}
SUPPORTED_ENCR = frozenset(_ENCR)
AEAD_ENCR = frozenset({EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305})


def _encr_entry(encr_id: int, key_bits: int | None):
    try:
        sizes, cls, salt = _ENCR[encr_id]
    except KeyError:
        raise TransformError(
            f"unsupported encryption algorithm {_name(EncrId, encr_id)}"
        ) from None
    if key_bits is None and len(sizes) == 1:
        key_bits = sizes[0]
    if key_bits not in sizes:
        raise TransformError(
            f"{_name(EncrId, encr_id)} does not support a key length of {key_bits} bits "
            f"(allowed: {', '.join(map(str, sizes))})"
        )
    return key_bits, cls, salt


def cipher_keymat_size(encr_id: int, key_bits: int | None) -> int:
    """Bytes of KEYMAT the cipher consumes: the key plus, for GCM/ChaCha20, a 4-byte salt."""
    key_bits, _, salt = _encr_entry(encr_id, key_bits)
    return key_bits // 8 + salt


def make_cipher(encr_id: int, key_bits: int | None, keymat: bytes) -> Cipher:
    """Bind an ENCR transform to `keymat` (as cut from prf+ output, salt included)."""
    key_bits, cls, salt = _encr_entry(encr_id, key_bits)
    expected = key_bits // 8 + salt
    if len(keymat) != expected:
        raise TransformError(
            f"{_name(EncrId, encr_id)} with {key_bits}-bit key needs {expected} bytes of "
            f"keying material, got {len(keymat)}"
        )
    return cls(bytes(keymat))


# --------------------------------------------------------------------------------------------
# Integrity


class Integrity:
    """An HMAC-SHA2 INTEG transform bound to one key (RFC 4868 §2.1.1, §2.2).

    The key is as long as the hash output; the ICV is the hash output truncated to half.
    """

    def __init__(self, integ_id: int, key: bytes):
        self.integ_id = integ_id
        algorithm_cls, self.icv_size = _INTEG[integ_id]
        self.key_size = algorithm_cls.digest_size
        if len(key) != self.key_size:
            raise TransformError(
                f"{_name(IntegId, integ_id)} needs a {self.key_size}-byte key, got {len(key)}"
            )
        # Keying HMAC once and copying the keyed state per message halves the cost
        # (measured 1.6 µs vs 2.9 µs on 1400 bytes).
        self._keyed = hmac.HMAC(key, algorithm_cls())

    def sign(self, data: bytes) -> bytes:
        """The truncated ICV of `data`."""
        h = self._keyed.copy()
        h.update(data)
        return h.finalize()[: self.icv_size]

    def verify(self, data: bytes, icv: bytes) -> None:
        """Raise IntegrityError unless `icv` is the ICV of `data` (constant-time compare)."""
        if not bytes_equal(self.sign(data), bytes(icv)):
            raise IntegrityError(f"{_name(IntegId, self.integ_id)} ICV check failed")

    def __repr__(self) -> str:
        return f"<Integrity {_name(IntegId, self.integ_id)}>"


# integ id -> (hash, truncated ICV length in bytes)
_INTEG = {
    IntegId.HMAC_SHA2_256_128: (hashes.SHA256, 16),
    IntegId.HMAC_SHA2_384_192: (hashes.SHA384, 24),
    IntegId.HMAC_SHA2_512_256: (hashes.SHA512, 32),
}
SUPPORTED_INTEG = frozenset(_INTEG)


def _check_integ(integ_id: int):
    if integ_id not in _INTEG:
        raise TransformError(f"unsupported integrity algorithm {_name(IntegId, integ_id)}")


def integrity_key_size(integ_id: int) -> int:
    """Bytes of KEYMAT an INTEG transform consumes (RFC 4868 §2.1.1: the hash output size)."""
    _check_integ(integ_id)
    return _INTEG[integ_id][0].digest_size


def make_integrity(integ_id: int, key: bytes) -> Integrity:
    _check_integ(integ_id)
    return Integrity(integ_id, bytes(key))


# --------------------------------------------------------------------------------------------
# Pseudo-random functions


class Prf:
    """An HMAC-SHA2 PRF (RFC 4868 §2.1.2). Stateless: the key is an argument of each call,
    because IKE keys its PRF with different values (Ni‖Nr, SKEYSEED, SK_d, SK_p…).

    `key_size` is the preferred key length (the output size); HMAC accepts any length.
    """

    def __init__(self, prf_id: int):
        self.prf_id = prf_id
        self._hash = _PRF[prf_id]
        self.output_size = self._hash.digest_size
        self.key_size = self.output_size

    def __call__(self, key: bytes, data: bytes) -> bytes:
        h = hmac.HMAC(key, self._hash())
        h.update(data)
        return h.finalize()

    def __repr__(self) -> str:
        return f"<Prf {_name(PrfId, self.prf_id)}>"


_PRF = {
    PrfId.HMAC_SHA2_256: hashes.SHA256,
    PrfId.HMAC_SHA2_384: hashes.SHA384,
    PrfId.HMAC_SHA2_512: hashes.SHA512,
}
SUPPORTED_PRF = frozenset(_PRF)


def make_prf(prf_id: int) -> Prf:
    if prf_id not in _PRF:
        raise TransformError(f"unsupported PRF {_name(PrfId, prf_id)}")
    return Prf(prf_id)
