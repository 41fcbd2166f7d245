"""MS-CHAPv2 arithmetic (RFC 2759) and its MPPE key derivation (RFC 3079).

Pure functions over bytes, shared by the EAP-MSCHAPv2 client (ike/eap.py) and the test
server (tests/ike/eap_server.py). Packet framing lives in ike/eap.py.

MD4 note: the NT password hash is MD4 (RFC 1320). OpenSSL 3+ keeps MD4 in its "legacy"
provider, which neither `cryptography` nor `hashlib` load here, and no maintained Python
library provides it. So this module carries a small MD4; it is used only for the NT hash,
where MS-CHAPv2 itself dictates the algorithm.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from .constant_time import bytes_equal

CHALLENGE_SIZE = 16  # authenticator and peer challenges (RFC 2759 §4)
NT_RESPONSE_SIZE = 24

# ---------------------------------------------------------------------------------------------
# MD4 (RFC 1320 §3)

_MASK32 = 0xFFFFFFFF


def _rotl(value: int, shift: int) -> int:
    value &= _MASK32
    return ((value << shift) | (value >> (32 - shift))) & _MASK32


def md4(data: bytes) -> bytes:
    """MD4 digest of data (RFC 1320). Only for the NT password hash."""
    # §3.1-3.2: pad with 0x80 and zeros to 56 mod 64, then the bit length, little-endian.
    message = bytes(data) + b"\x80"
    message += b"\x00" * ((56 - len(message)) % 64)
    message += struct.pack("<Q", (len(data) * 8) & 0xFFFFFFFFFFFFFFFF)

    a0, b0, c0, d0 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476  # §3.3
    for block_start in range(0, len(message), 64):
        x = struct.unpack("<16I", message[block_start:block_start + 64])
        a, b, c, d = a0, b0, c0, d0

        # Round 1: F(x,y,z) = xy v not(x)z
        for k in range(16):
            shift = (3, 7, 11, 19)[k % 4]
            f = (b & c) | (~b & d)
            a, b, c, d = d, _rotl(a + f + x[k], shift), b, c
        # Round 2: G(x,y,z) = xy v xz v yz, constant sqrt(2)
        for i, k in enumerate((0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)):
            shift = (3, 5, 9, 13)[i % 4]
            g = (b & c) | (b & d) | (c & d)
            a, b, c, d = d, _rotl(a + g + x[k] + 0x5A827999, shift), b, c
        # Round 3: H(x,y,z) = x xor y xor z, constant sqrt(3)
        for i, k in enumerate((0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)):
            shift = (3, 9, 11, 15)[i % 4]
            h = b ^ c ^ d
            a, b, c, d = d, _rotl(a + h + x[k] + 0x6ED9EBA1, shift), b, c

        a0, b0 = (a0 + a) & _MASK32, (b0 + b) & _MASK32
        c0, d0 = (c0 + c) & _MASK32, (d0 + d) & _MASK32
    return struct.pack("<4I", a0, b0, c0, d0)


# ---------------------------------------------------------------------------------------------
# RFC 2759 §8


def _sha1(*parts: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    for part in parts:
        digest.update(part)
    return digest.finalize()


def nt_password_hash(password: str) -> bytes:
    """§8.3 NtPasswordHash: MD4 of the UTF-16LE (Unicode) password.

    Caveat: strongSwan's own eap-mschapv2 server (ascii_to_unicode) widens each UTF-8 *byte*
    to 16 bits, so a non-ASCII password matches Windows/RADIUS back ends (which follow the
    RFC, as we do) but not a strongSwan secrets file. ASCII passwords match both.
    """
    return md4(password.encode("utf-16-le"))


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """§8.4 HashNtPasswordHash."""
    return md4(password_hash)


def username_for_challenge(username: str) -> bytes:
    """The user name as hashed by ChallengeHash: without a "DOMAIN\\" prefix (§8.2)."""
    return username.rsplit("\\", 1)[-1].encode("utf-8")


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: str) -> bytes:
    """§8.2 ChallengeHash: first 8 octets of SHA-1(peer ‖ authenticator ‖ user name)."""
    return _sha1(peer_challenge, authenticator_challenge, username_for_challenge(username))[:8]


def _des_key(seven_bytes: bytes) -> bytes:
    """§8.6 DesEncrypt key setup: spread 56 key bits over 8 octets (the low bit of each
    octet is DES parity, which DES ignores, so it is left 0)."""
    bits = int.from_bytes(seven_bytes, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def _des_encrypt(clear: bytes, seven_byte_key: bytes) -> bytes:
    key = _des_key(seven_byte_key)
    # cryptography offers single DES only as TripleDES; with K1 = K2 = K3 it is single DES.
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(clear) + encryptor.finalize()


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """§8.5 ChallengeResponse: the 8-octet challenge DES-encrypted under three keys cut
    from the zero-padded 21-octet password hash."""
    padded = password_hash.ljust(21, b"\x00")
    return b"".join(_des_encrypt(challenge, padded[i:i + 7]) for i in (0, 7, 14))


def generate_nt_response(authenticator_challenge: bytes, peer_challenge: bytes,
                         username: str, password: str) -> bytes:
    """§8.1 GenerateNTResponse (24 octets)."""
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(challenge, nt_password_hash(password))


_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"


def generate_authenticator_response(password: str, nt_response: bytes, peer_challenge: bytes,
                                    authenticator_challenge: bytes, username: str) -> str:
    """§8.7 GenerateAuthenticatorResponse: "S=" and 40 upper-case hex digits."""
    password_hash_hash = hash_nt_password_hash(nt_password_hash(password))
    digest = _sha1(password_hash_hash, nt_response, _MAGIC1)
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return "S=" + _sha1(digest, challenge, _MAGIC2).hex().upper()


def check_authenticator_response(expected: str, received: str) -> bool:
    """§8.8 CheckAuthenticatorResponse, compared in constant time (hex case ignored)."""
    return bytes_equal(expected.upper().encode(), received.upper().encode())


# ---------------------------------------------------------------------------------------------
# RFC 3079 §3.4 MPPE keys, 128-bit


_MPPE_MAGIC1 = b"This is the MPPE Master Key"
# "On the client side, this is the send key; on the server side, it is the receive key."
_MPPE_MAGIC2 = (b"On the client side, this is the send key; "
                b"on the server side, it is the receive key.")
# "On the client side, this is the receive key; on the server side, it is the send key."
_MPPE_MAGIC3 = (b"On the client side, this is the receive key; "
                b"on the server side, it is the send key.")
_SHS_PAD1 = b"\x00" * 40
_SHS_PAD2 = b"\xf2" * 40


def master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """§3.4 GetMasterKey (16 octets)."""
    return _sha1(password_hash_hash, nt_response, _MPPE_MAGIC1)[:16]


def asymmetric_start_key(master: bytes, client_send: bool) -> bytes:
    """§3.4 GetAsymmetricStartKey for 128-bit keys. client_send selects the key the client
    sends with (= the server's receive key); otherwise the client's receive key."""
    magic = _MPPE_MAGIC2 if client_send else _MPPE_MAGIC3
    return _sha1(master, _SHS_PAD1, magic, _SHS_PAD2)[:16]


def msk(password: str, nt_response: bytes) -> bytes:
    """The 64-octet EAP-MSCHAPv2 MSK as strongSwan builds it (eap_mschapv2.c GenerateMSK):
    server MasterReceiveKey ‖ server MasterSendKey ‖ 32 zero octets. Seen from the server,
    its receive key is the client's send key."""
    master = master_key(hash_nt_password_hash(nt_password_hash(password)), nt_response)
    return (asymmetric_start_key(master, client_send=True)
            + asymmetric_start_key(master, client_send=False)
            + b"\x00" * 32)
