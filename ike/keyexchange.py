"""Key exchange methods (RFC 7296 §2.14, §3.4; RFC 9370 for ML-KEM), built on `cryptography`.

`make_key_exchange(group)` returns a `KeyExchange` holding a fresh private value:

    ke = make_key_exchange(KeId.CURVE25519)
    ke.public_bytes()             # KE payload data to send
    ke.shared_secret(peer_data)   # g^ir, or KeyExchangeError if peer_data is invalid

Peer values are checked as RFC 6989 asks before they are used:

* MODP (RFC 3526 groups 14–18): exactly the length of the prime, and 1 < y < p-1 (§2.1).
  The primes are safe primes, so no subgroup check is needed (RFC 6989 §2.2).
* ECP (RFC 5903 groups 19–21): x‖y, each coordinate padded to the field size; the point
  must lie on the curve (and cannot be the point at infinity, which has no x‖y form)
  (RFC 6989 §2.3). The shared secret is the x coordinate (RFC 5903 §7).
* Curve25519/448 (RFC 8031): 32 / 56 bytes; an all-zero shared secret is rejected (§2.3).
* ML-KEM (RFC 9370 additional key exchanges, draft-ietf-ipsecme-ikev2-mlkem): the
  initiator sends its encapsulation key; the responder answers with a ciphertext made by
  `respond(group, encapsulation_key)`; the initiator's `shared_secret(ciphertext)`
  decapsulates.
"""

from __future__ import annotations

import warnings

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh, ec, mlkem, x448, x25519
from cryptography.utils import CryptographyDeprecationWarning

from ike.constants import KeId

__all__ = [
    "KeyExchange",
    "KeyExchangeError",
    "SUPPORTED_KE",
    "make_key_exchange",
    "public_value_size",
    "respond",
]


class KeyExchangeError(Exception):
    """A key exchange could not be done: unsupported group or invalid peer value."""


def _group_name(group) -> str:
    try:
        return KeId(group).name
    except ValueError:
        return f"group {group}"


class KeyExchange:
    """One side of one key exchange: a private value and the public value derived from it."""

    group: KeId

    def public_bytes(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def shared_secret(self, peer_bytes: bytes) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {_group_name(self.group)}>"

    def _check_length(self, peer_bytes: bytes, expected: int, what: str = "public value") -> None:
        if len(peer_bytes) != expected:
            raise KeyExchangeError(
                f"{_group_name(self.group)} peer {what} must be {expected} bytes, "
                f"got {len(peer_bytes)}"
            )


# --------------------------------------------------------------------------------------------
# MODP groups (RFC 3526). Hex exactly as printed in the RFC; generator 2 for all.

_MODP_14_PRIME = """
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718
    3995497C EA956AE5 15D22618 98FA0510 15728E5A 8AACAA68 FFFFFFFF FFFFFFFF
"""

_MODP_15_PRIME = """
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718
    3995497C EA956AE5 15D22618 98FA0510 15728E5A 8AAAC42D AD33170D 04507A33
    A85521AB DF1CBA64 ECFB8504 58DBEF0A 8AEA7157 5D060C7D B3970F85 A6E1E4C7
    ABF5AE8C DB0933D7 1E8C94E0 4A25619D CEE3D226 1AD2EE6B F12FFA06 D98A0864
    D8760273 3EC86A64 521F2B18 177B200C BBE11757 7A615D6C 770988C0 BAD946E2
    08E24FA0 74E5AB31 43DB5BFC E0FD108E 4B82D120 A93AD2CA FFFFFFFF FFFFFFFF
"""

_MODP_16_PRIME = """
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718
    3995497C EA956AE5 15D22618 98FA0510 15728E5A 8AAAC42D AD33170D 04507A33
    A85521AB DF1CBA64 ECFB8504 58DBEF0A 8AEA7157 5D060C7D B3970F85 A6E1E4C7
    ABF5AE8C DB0933D7 1E8C94E0 4A25619D CEE3D226 1AD2EE6B F12FFA06 D98A0864
    D8760273 3EC86A64 521F2B18 177B200C BBE11757 7A615D6C 770988C0 BAD946E2
    08E24FA0 74E5AB31 43DB5BFC E0FD108E 4B82D120 A9210801 1A723C12 A787E6D7
    88719A10 BDBA5B26 99C32718 6AF4E23C 1A946834 B6150BDA 2583E9CA 2AD44CE8
    DBBBC2DB 04DE8EF9 2E8EFC14 1FBECAA6 287C5947 4E6BC05D 99B2964F A090C3A2
    233BA186 515BE7ED 1F612970 CEE2D7AF B81BDD76 2170481C D0069127 D5B05AA9
    93B4EA98 8D8FDDC1 86FFB7DC 90A6C08F 4DF435C9 34063199 FFFFFFFF FFFFFFFF
"""

_MODP_17_PRIME = """
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718
    3995497C EA956AE5 15D22618 98FA0510 15728E5A 8AAAC42D AD33170D 04507A33
    A85521AB DF1CBA64 ECFB8504 58DBEF0A 8AEA7157 5D060C7D B3970F85 A6E1E4C7
    ABF5AE8C DB0933D7 1E8C94E0 4A25619D CEE3D226 1AD2EE6B F12FFA06 D98A0864
    D8760273 3EC86A64 521F2B18 177B200C BBE11757 7A615D6C 770988C0 BAD946E2
    08E24FA0 74E5AB31 43DB5BFC E0FD108E 4B82D120 A9210801 1A723C12 A787E6D7
    88719A10 BDBA5B26 99C32718 6AF4E23C 1A946834 B6150BDA 2583E9CA 2AD44CE8
    DBBBC2DB 04DE8EF9 2E8EFC14 1FBECAA6 287C5947 4E6BC05D 99B2964F A090C3A2
    233BA186 515BE7ED 1F612970 CEE2D7AF B81BDD76 2170481C D0069127 D5B05AA9
    93B4EA98 8D8FDDC1 86FFB7DC 90A6C08F 4DF435C9 34028492 36C3FAB4 D27C7026
    C1D4DCB2 602646DE C9751E76 3DBA37BD F8FF9406 AD9E530E E5DB382F 413001AE
    B06A53ED 9027D831 179727B0 865A8918 DA3EDBEB CF9B14ED 44CE6CBA CED4BB1B
    DB7F1447 E6CC254B 33205151 2BD7AF42 6FB8F401 378CD2BF 5983CA01 C64B92EC
    F032EA15 D1721D03 F482D7CE 6E74FEF6 D55E702F 46980C82 B5A84031 900B1C9E
    59E7C97F BEC7E8F3 23A97A7E 36CC88BE 0F1D45B7 FF585AC5 4BD407B2 2B4154AA
    CC8F6D7E BF48E1D8 14CC5ED2 0F8037E0 A79715EE F29BE328 06A1D58B B7C5DA76
    F550AA3D 8A1FBFF0 EB19CCB1 A313D55C DA56C9EC 2EF29632 387FE8D7 6E3C0468
    043E8F66 3F4860EE 12BF2D5B 0B7474D6 E694F91E 6DCC4024 FFFFFFFF FFFFFFFF
"""

_MODP_18_PRIME = """
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718
    3995497C EA956AE5 15D22618 98FA0510 15728E5A 8AAAC42D AD33170D 04507A33
    A85521AB DF1CBA64 ECFB8504 58DBEF0A 8AEA7157 5D060C7D B3970F85 A6E1E4C7
    ABF5AE8C DB0933D7 1E8C94E0 4A25619D CEE3D226 1AD2EE6B F12FFA06 D98A0864
    D8760273 3EC86A64 521F2B18 177B200C BBE11757 7A615D6C 770988C0 BAD946E2
    08E24FA0 74E5AB31 43DB5BFC E0FD108E 4B82D120 A9210801 1A723C12 A787E6D7
    88719A10 BDBA5B26 99C32718 6AF4E23C 1A946834 B6150BDA 2583E9CA 2AD44CE8
    DBBBC2DB 04DE8EF9 2E8EFC14 1FBECAA6 287C5947 4E6BC05D 99B2964F A090C3A2
    233BA186 515BE7ED 1F612970 CEE2D7AF B81BDD76 2170481C D0069127 D5B05AA9
    93B4EA98 8D8FDDC1 86FFB7DC 90A6C08F 4DF435C9 34028492 36C3FAB4 D27C7026
    C1D4DCB2 602646DE C9751E76 3DBA37BD F8FF9406 AD9E530E E5DB382F 413001AE
    B06A53ED 9027D831 179727B0 865A8918 DA3EDBEB CF9B14ED 44CE6CBA CED4BB1B
    DB7F1447 E6CC254B 33205151 2BD7AF42 6FB8F401 378CD2BF 5983CA01 C64B92EC
    F032EA15 D1721D03 F482D7CE 6E74FEF6 D55E702F 46980C82 B5A84031 900B1C9E
    59E7C97F BEC7E8F3 23A97A7E 36CC88BE 0F1D45B7 FF585AC5 4BD407B2 2B4154AA
    CC8F6D7E BF48E1D8 14CC5ED2 0F8037E0 A79715EE F29BE328 06A1D58B B7C5DA76
    F550AA3D 8A1FBFF0 EB19CCB1 A313D55C DA56C9EC 2EF29632 387FE8D7 6E3C0468
    043E8F66 3F4860EE 12BF2D5B 0B7474D6 E694F91E 6DBE1159 74A3926F 12FEE5E4
    38777CB6 A932DF8C D8BEC4D0 73B931BA 3BC832B6 8D9DD300 741FA7BF 8AFC47ED
    2576F693 6BA42466 3AAB639C 5AE4F568 3423B474 2BF1C978 238F16CB E39D652D
    E3FDB8BE FC848AD9 22222E04 A4037C07 13EB57A8 1A23F0C7 3473FC64 6CEA306B
    4BCBC886 2F8385DD FA9D4B7F A2C087E8 79683303 ED5BDD3A 062B3CF5 B3A278A6
    6D2A13F8 3F44F82D DF310EE0 74AB6A36 4597E899 A0255DC1 64F31CC5 0846851D
    F9AB4819 5DED7EA1 B1D510BD 7EE74D73 FAF36BC3 1ECFA268 359046F4 EB879F92
    4009438B 481C6CD7 889A002E D5EE382B C9190DA6 FC026E47 9558E447 5677E9AA
    9E3050E2 765694DF C81F56E8 80B96E71 60C980DD 98EDD3DF FFFFFFFF FFFFFFFF
"""
_MODP_PRIMES = {
    KeId.MODP_2048: _MODP_14_PRIME,
    KeId.MODP_3072: _MODP_15_PRIME,
    KeId.MODP_4096: _MODP_16_PRIME,
    KeId.MODP_6144: _MODP_17_PRIME,
    KeId.MODP_8192: _MODP_18_PRIME,
}


def _ffdh(call):
    """Run `call` (which touches `cryptography`'s DH API) without its FFDH deprecation warning.

    MODP stays for interoperability (RFC 8247 §2.4 still lists group 14 as MUST); the
    warning (raised when the DH classes are looked up) would otherwise print on every use.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return call()


class _ModpGroup:
    """Parameters of one MODP group, built once and shared by every exchange in it."""

    def __init__(self, group: KeId, prime_hex: str):
        self.group = group
        self.p = int("".join(prime_hex.split()), 16)
        self.size = (self.p.bit_length() + 7) // 8
        self.numbers = _ffdh(lambda: dh.DHParameterNumbers(self.p, 2))
        # OpenSSL recognises the RFC 3526 primes and then picks a short private exponent of
        # twice the group's strength (measured: 222 bits for 2048, 400 for 8192), which makes
        # key generation ~1.7 ms (2048) to ~9 ms (8192) — faster than drawing an exponent
        # from os.urandom and exponentiating in Python (5–67 ms).
        self.parameters = _ffdh(self.numbers.parameters)


_modp_groups: dict[int, _ModpGroup] = {}


def _modp_group(group: KeId) -> _ModpGroup:
    if group not in _modp_groups:
        _modp_groups[group] = _ModpGroup(group, _MODP_PRIMES[group])
    return _modp_groups[group]


class _ModpExchange(KeyExchange):
    def __init__(self, group: KeId):
        self.group = group
        self._params = _modp_group(group)
        self._private = self._params.parameters.generate_private_key()

    def public_bytes(self) -> bytes:
        y = self._private.public_key().public_numbers().y
        # RFC 7296 §3.4: the value is padded with zeros to the length of the prime.
        return y.to_bytes(self._params.size, "big")

    def shared_secret(self, peer_bytes: bytes) -> bytes:
        params = self._params
        self._check_length(peer_bytes, params.size)
        y = int.from_bytes(peer_bytes, "big")
        if not 1 < y < params.p - 1:
            # RFC 6989 §2.1: 0, 1 and p-1 (and anything ≥ p) leak or fix the shared secret.
            raise KeyExchangeError(
                f"{_group_name(self.group)} peer public value is out of range (must be 1 < y < p-1)"
            )
        peer = _ffdh(lambda: dh.DHPublicNumbers(y, params.numbers).public_key())
        try:
            secret = self._private.exchange(peer)
        except ValueError as exc:
            raise KeyExchangeError(
                f"{_group_name(self.group)} peer public value was rejected: {exc}"
            ) from None
        # RFC 7296 §2.14: g^ir is padded with zeros to the length of the prime.
        return secret.rjust(params.size, b"\0")


# --------------------------------------------------------------------------------------------
# ECP groups (RFC 5903)

# group -> (curve, coordinate length in bytes)
_ECP_CURVES = {
    KeId.ECP_256: (ec.SECP256R1, 32),
    KeId.ECP_384: (ec.SECP384R1, 48),
    KeId.ECP_521: (ec.SECP521R1, 66),
}


class _EcpExchange(KeyExchange):
    def __init__(self, group: KeId, private_key: ec.EllipticCurvePrivateKey | None = None):
        self.group = group
        curve_cls, self._coordinate_size = _ECP_CURVES[group]
        self._curve = curve_cls()
        self._private = private_key or ec.generate_private_key(self._curve)

    def public_bytes(self) -> bytes:
        point = self._private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return point[1:]  # RFC 5903 §7: x‖y, without SEC 1's 0x04 prefix

    def shared_secret(self, peer_bytes: bytes) -> bytes:
        self._check_length(peer_bytes, 2 * self._coordinate_size)
        try:
            # OpenSSL checks that the point lies on the curve (RFC 6989 §2.3); the point at
            # infinity cannot be written as x‖y, and (0, 0) is not on these curves.
            peer = ec.EllipticCurvePublicKey.from_encoded_point(
                self._curve, b"\x04" + bytes(peer_bytes)
            )
        except ValueError:
            raise KeyExchangeError(
                f"{_group_name(self.group)} peer public value is not a point on the curve"
            ) from None
        return self._private.exchange(ec.ECDH(), peer)  # the x coordinate, RFC 5903 §7


# --------------------------------------------------------------------------------------------
# Curve25519 / Curve448 (RFC 8031)

# group -> (private key class, public key class, value length)
_MONTGOMERY = {
    KeId.CURVE25519: (x25519.X25519PrivateKey, x25519.X25519PublicKey, 32),
    KeId.CURVE448: (x448.X448PrivateKey, x448.X448PublicKey, 56),
}


class _MontgomeryExchange(KeyExchange):
    def __init__(self, group: KeId, private_key=None):
        self.group = group
        private_cls, self._public_cls, self._size = _MONTGOMERY[group]
        self._private = private_key or private_cls.generate()

    def public_bytes(self) -> bytes:
        return self._private.public_key().public_bytes_raw()

    def shared_secret(self, peer_bytes: bytes) -> bytes:
        self._check_length(peer_bytes, self._size)
        peer = self._public_cls.from_public_bytes(bytes(peer_bytes))
        try:
            secret = self._private.exchange(peer)
        except ValueError:
            # OpenSSL refuses the all-zero result of a low-order point itself.
            secret = bytes(self._size)
        if not any(secret):
            # RFC 8031 §2.3: a low-order peer point gives an all-zero secret; MUST reject.
            raise KeyExchangeError(
                f"{_group_name(self.group)} peer public value is a low-order point "
                "(all-zero shared secret)"
            )
        return secret


# --------------------------------------------------------------------------------------------
# ML-KEM (FIPS 203) as an RFC 9370 additional key exchange

# group -> (private key class, public key class, encapsulation key size, ciphertext size)
_MLKEM = {
    KeId.MLKEM768: (mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey, 1184, 1088),
    KeId.MLKEM1024: (mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PublicKey, 1568, 1568),
}
# ML-KEM-512 (35) is in the registry but `cryptography` 50 does not offer it.


class _MlKemExchange(KeyExchange):
    """Initiator side: public value = encapsulation key; the peer's value is a ciphertext."""

    def __init__(self, group: KeId, private_key=None):
        self.group = group
        private_cls, _, _, self._ciphertext_size = _MLKEM[group]
        self._private = private_key or private_cls.generate()

    def public_bytes(self) -> bytes:
        return self._private.public_key().public_bytes_raw()

    def shared_secret(self, peer_bytes: bytes) -> bytes:
        self._check_length(peer_bytes, self._ciphertext_size, "ciphertext")
        # A wrong ciphertext of the right size decapsulates to an unrelated secret (FIPS 203
        # implicit rejection); the exchange then fails at AUTH, as the draft intends.
        return self._private.decapsulate(bytes(peer_bytes))


def _mlkem_respond(group: KeId, encapsulation_key: bytes) -> tuple[bytes, bytes]:
    _, public_cls, key_size, _ = _MLKEM[group]
    if len(encapsulation_key) != key_size:
        raise KeyExchangeError(
            f"{_group_name(group)} peer encapsulation key must be {key_size} bytes, "
            f"got {len(encapsulation_key)}"
        )
    try:
        public = public_cls.from_public_bytes(bytes(encapsulation_key))
    except ValueError:
        # FIPS 203 §7.2 input check: coefficients must be reduced modulo q.
        raise KeyExchangeError(
            f"{_group_name(group)} peer encapsulation key is malformed"
        ) from None
    shared, ciphertext = public.encapsulate()
    return ciphertext, shared


# --------------------------------------------------------------------------------------------
# Public entry points

_FACTORIES = {
    **{group: _ModpExchange for group in _MODP_PRIMES},
    **{group: _EcpExchange for group in _ECP_CURVES},
    **{group: _MontgomeryExchange for group in _MONTGOMERY},
    **{group: _MlKemExchange for group in _MLKEM},
}
SUPPORTED_KE = frozenset(_FACTORIES)
KEM_GROUPS = frozenset(_MLKEM)


def make_key_exchange(group: int) -> KeyExchange:
    """A fresh key exchange (new private value) for `group` (a KeId)."""
    try:
        factory = _FACTORIES[group]
    except KeyError:
        raise KeyExchangeError(f"unsupported key exchange method {_group_name(group)}") from None
    return factory(KeId(group))


def respond(group: int, peer_public: bytes) -> tuple[bytes, bytes]:
    """The responder's side in one step: `(public value to send, shared secret)`.

    For ML-KEM the public value is the ciphertext encapsulated to the initiator's key; for
    the Diffie-Hellman groups it is a fresh public value.
    """
    if group in _MLKEM:
        return _mlkem_respond(KeId(group), peer_public)
    exchange = make_key_exchange(group)
    return exchange.public_bytes(), exchange.shared_secret(peer_public)


def public_value_size(group: int, *, responder: bool = False) -> int:
    """Length of the KE payload data for `group` (the responder's for ML-KEM: the ciphertext)."""
    if group in _MODP_PRIMES:
        return _modp_group(KeId(group)).size
    if group in _ECP_CURVES:
        return 2 * _ECP_CURVES[group][1]
    if group in _MONTGOMERY:
        return _MONTGOMERY[group][2]
    if group in _MLKEM:
        _, _, key_size, ciphertext_size = _MLKEM[group]
        return ciphertext_size if responder else key_size
    raise KeyExchangeError(f"unsupported key exchange method {_group_name(group)}")
