"""RFC 3602: AES-CBC for IKE SK payloads and ESP, 128/192/256-bit keys, 16-byte IV.

The cipher keeps one encryptor and one decryptor context per key and fixes up the chaining
value for each message's IV (see `_AesCbcCipher`). These tests check that trick against the
RFC's known answers and against a fresh `cryptography` context per message.
"""

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from ike.constants import EncrId
from ike.transforms import IntegrityError, TransformError, cipher_keymat_size, make_cipher

# RFC 3602 §4, cases 1–4: (key, iv, plaintext, ciphertext)
VECTORS = [
    ("06a9214036b8a15b512e03d534120006", "3dafba429d9eb430b422da802c9fac41",
     b"Single block msg".hex(), "e353779c1079aeb82708942dbe77181a"),
    ("c286696d887c9aa0611bbb3e2025a45a", "562e17996d093d28ddb3ba695a2e6f58",
     bytes(range(32)).hex(),
     "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1"),
]


def reference(key, iv, data, encrypt=True):
    context = Cipher(algorithms.AES(key), modes.CBC(iv))
    context = context.encryptor() if encrypt else context.decryptor()
    return context.update(data) + context.finalize()


@pytest.mark.parametrize("key,iv,plain,sealed", VECTORS)
def test_cbc_known_answers(key, iv, plain, sealed):
    cipher = make_cipher(EncrId.AES_CBC, 128, bytes.fromhex(key))
    iv = bytes.fromhex(iv)
    assert cipher.encrypt(iv, bytes.fromhex(plain)).hex() == sealed
    assert cipher.decrypt(iv, bytes.fromhex(sealed)).hex() == plain


def test_cbc_known_answers_in_sequence_on_one_object():
    """The second message must not be chained to the first one."""
    key = bytes.fromhex(VECTORS[0][0])
    cipher = make_cipher(EncrId.AES_CBC, 128, key)
    for _ in range(3):
        for _, iv, plain, sealed in VECTORS[:1]:
            assert cipher.encrypt(bytes.fromhex(iv), bytes.fromhex(plain)).hex() == sealed
            assert cipher.decrypt(bytes.fromhex(iv), bytes.fromhex(sealed)).hex() == plain


@settings(max_examples=60, deadline=None)
@given(
    bits=st.sampled_from([128, 192, 256]),
    messages=st.lists(
        st.tuples(st.binary(min_size=16, max_size=16), st.integers(1, 12), st.booleans()),
        min_size=1, max_size=12,
    ),
)
def test_cbc_matches_fresh_context_for_any_message_sequence(bits, messages):
    key = os.urandom(bits // 8)
    cipher = make_cipher(EncrId.AES_CBC, bits, key)
    for iv, blocks, also_decrypt_garbage in messages:
        plaintext = os.urandom(16 * blocks)
        sealed = cipher.encrypt(iv, plaintext)
        assert sealed == reference(key, iv, plaintext)
        if also_decrypt_garbage:
            # Decrypting unrelated data in between must not disturb the next message.
            garbage = os.urandom(32)
            assert cipher.decrypt(iv, garbage) == reference(key, iv, garbage, encrypt=False)
        assert cipher.decrypt(iv, sealed) == plaintext


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_cbc_geometry(bits):
    assert cipher_keymat_size(EncrId.AES_CBC, bits) == bits // 8
    cipher = make_cipher(EncrId.AES_CBC, bits, bytes(bits // 8))
    assert not cipher.aead
    assert (cipher.block_size, cipher.iv_size, cipher.icv_size) == (16, 16, 0)


def test_cbc_accepts_buffers():
    key, iv, plain, sealed = (bytes.fromhex(v) for v in VECTORS[1])
    cipher = make_cipher(EncrId.AES_CBC, 128, key)
    assert cipher.encrypt(memoryview(iv), bytearray(plain)) == sealed
    assert cipher.decrypt(iv, memoryview(sealed)) == plain


@pytest.mark.parametrize("length", [0, 15, 17])
def test_cbc_refuses_partial_blocks(length):
    cipher = make_cipher(EncrId.AES_CBC, 128, bytes(16))
    with pytest.raises(TransformError, match=f"non-zero multiple of 16 bytes, got {length}"):
        cipher.encrypt(bytes(16), bytes(length))
    with pytest.raises(IntegrityError, match=f"non-zero multiple of 16 bytes, got {length}"):
        cipher.decrypt(bytes(16), bytes(length))
    # …and the refused input left the contexts usable
    key, iv, plain, sealed = (bytes.fromhex(v) for v in VECTORS[0])
    cipher = make_cipher(EncrId.AES_CBC, 128, key)
    with pytest.raises(IntegrityError):
        cipher.decrypt(iv, bytes(length))
    assert cipher.decrypt(iv, sealed) == plain


def test_cbc_iv_length_checked():
    cipher = make_cipher(EncrId.AES_CBC, 128, bytes(16))
    with pytest.raises(TransformError, match="IV must be 16 bytes, got 8"):
        cipher.encrypt(bytes(8), bytes(16))


def test_cbc_key_length_checked():
    with pytest.raises(TransformError, match=r"AES_CBC \(12\) with 256-bit key needs 32 bytes"):
        make_cipher(EncrId.AES_CBC, 256, bytes(16))
