"""RFC 7634: ChaCha20-Poly1305 for IKEv2 and ESP. KEYMAT is a 32-byte key followed by a
4-byte salt; nonce = salt ‖ 8-byte IV (§2); the ICV is 16 bytes; no Key Length attribute.

Known answer: the AEAD vector of RFC 8439 §2.8.2, whose 12-byte nonce 07000000‖4041…47 is
exactly salt ‖ IV in the RFC 7634 layout.
"""

import pytest

from ike.constants import EncrId
from ike.transforms import IntegrityError, TransformError, cipher_keymat_size, make_cipher

KEY = bytes(range(0x80, 0xA0))
SALT = bytes.fromhex("07000000")
IV = bytes.fromhex("4041424344454647")
AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
PLAIN = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
         b"for the future, sunscreen would be it.")
SEALED = bytes.fromhex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
    "1ae10b594f09e26a7e902ecbd0600691"
)


@pytest.fixture
def cipher():
    return make_cipher(EncrId.CHACHA20_POLY1305, None, KEY + SALT)


def test_rfc8439_aead_vector(cipher):
    assert cipher.encrypt(IV, PLAIN, AAD) == SEALED
    assert cipher.decrypt(IV, SEALED, AAD) == PLAIN


def test_geometry(cipher):
    assert cipher_keymat_size(EncrId.CHACHA20_POLY1305, None) == 36
    assert cipher_keymat_size(EncrId.CHACHA20_POLY1305, 256) == 36
    assert cipher.aead
    assert (cipher.key_bits, cipher.iv_size, cipher.icv_size, cipher.block_size) == (256, 8, 16, 1)


def test_explicit_256_bit_key_length_is_accepted():
    assert make_cipher(EncrId.CHACHA20_POLY1305, 256, KEY + SALT).encrypt(IV, PLAIN, AAD) == SEALED


@pytest.mark.parametrize("index", [0, 57, len(SEALED) - 16, len(SEALED) - 1])
def test_any_flipped_bit_is_refused(cipher, index):
    tampered = bytearray(SEALED)
    tampered[index] ^= 0x01
    with pytest.raises(IntegrityError, match="ChaCha20-Poly1305 ICV check failed"):
        cipher.decrypt(IV, bytes(tampered), AAD)


def test_wrong_aad_or_iv_is_refused(cipher):
    with pytest.raises(IntegrityError):
        cipher.decrypt(IV, SEALED, AAD[:-1])
    with pytest.raises(IntegrityError):
        cipher.decrypt(bytes(8), SEALED, AAD)


def test_salt_comes_from_the_last_four_keymat_bytes():
    other = make_cipher(EncrId.CHACHA20_POLY1305, None, KEY + b"\x07\x00\x00\x01")
    assert other.encrypt(IV, PLAIN, AAD) != SEALED


@pytest.mark.parametrize("bits,keymat,message", [
    (128, KEY + SALT, r"CHACHA20_POLY1305 \(28\) does not support a key length of 128 bits \(allowed: 256\)"),
    (None, KEY, r"needs 36 bytes of keying material, got 32"),
])
def test_bad_key_material(bits, keymat, message):
    with pytest.raises(TransformError, match=message):
        make_cipher(EncrId.CHACHA20_POLY1305, bits, keymat)
