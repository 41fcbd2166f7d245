"""RFC 5282 (AES-GCM in IKEv2, same layout as RFC 4106 for ESP): KEYMAT = key ‖ 4-byte salt,
nonce = salt ‖ 8-byte IV, 16-byte ICV appended to the ciphertext.

Known answers: test cases 2–4, 8–10 and 14–16 of the GCM specification (McGrew & Viega), whose
12-byte IVs split into the 4-byte salt and the 8-byte IV of RFC 5282.
"""

import pytest

from ike.constants import EncrId
from ike.transforms import (
    AEAD_ENCR,
    IntegrityError,
    TransformError,
    cipher_keymat_size,
    make_cipher,
)

K128 = "feffe9928665731c6d6a8f9467308308"
K192 = K128 + "feffe9928665731c"
K256 = K128 + K128
SALT, IV = "cafebabe", "facedbaddecaf888"
P64 = ("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
P60 = P64[:120]
AAD = "feedfacedeadbeeffeedfacedeadbeefabaddad2"

# (case, key bits, key ‖ salt, iv, aad, plaintext, ciphertext ‖ tag)
VECTORS = [
    ("TC2", 128, "00" * 20, "00" * 8, "", "00" * 16,
     "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf"),
    ("TC3", 128, K128 + SALT, IV, "", P64,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
     "4d5c2af327cd64a62cf35abd2ba6fab4"),
    ("TC4", 128, K128 + SALT, IV, AAD, P60,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
     "5bc94fbc3221a5db94fae95ae7121a47"),
    ("TC8", 192, "00" * 28, "00" * 8, "", "00" * 16,
     "98e7247c07f0fe411c267e4384b0f6002ff58d80033927ab8ef4d4587514f0fb"),
    ("TC9", 192, K192 + SALT, IV, "", P64,
     "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c"
     "7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256"
     "9924a7c8587336bfb118024db8674a14"),
    ("TC10", 192, K192 + SALT, IV, AAD, P60,
     "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c"
     "7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710"
     "2519498e80f1478f37ba55bd6d27618c"),
    ("TC14", 256, "00" * 36, "00" * 8, "", "00" * 16,
     "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"),
    ("TC15", 256, K256 + SALT, IV, "", P64,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
     "b094dac5d93471bdec1a502270e3cc6c"),
    ("TC16", 256, K256 + SALT, IV, AAD, P60,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
     "76fc6ece0f4e1768cddf8853bb2d551b"),
]


@pytest.mark.parametrize("case,bits,keymat,iv,aad,plain,sealed", VECTORS)
def test_gcm_known_answers(case, bits, keymat, iv, aad, plain, sealed):
    cipher = make_cipher(EncrId.AES_GCM_16, bits, bytes.fromhex(keymat))
    iv, aad = bytes.fromhex(iv), bytes.fromhex(aad)
    assert cipher.encrypt(iv, bytes.fromhex(plain), aad).hex() == sealed
    assert cipher.decrypt(iv, bytes.fromhex(sealed), aad).hex() == plain


@pytest.mark.parametrize("bits,keymat_size", [(128, 20), (192, 28), (256, 36)])
def test_gcm_geometry(bits, keymat_size):
    assert cipher_keymat_size(EncrId.AES_GCM_16, bits) == keymat_size
    cipher = make_cipher(EncrId.AES_GCM_16, bits, bytes(keymat_size))
    assert cipher.aead and EncrId.AES_GCM_16 in AEAD_ENCR
    assert (cipher.iv_size, cipher.icv_size, cipher.block_size) == (8, 16, 1)
    assert cipher.key_bits == bits


def _tc4():
    _, bits, keymat, iv, aad, plain, sealed = VECTORS[2]
    return (make_cipher(EncrId.AES_GCM_16, bits, bytes.fromhex(keymat)), bytes.fromhex(iv),
            bytes.fromhex(aad), bytes.fromhex(sealed))


@pytest.mark.parametrize("what", ["ciphertext", "tag", "aad", "iv"])
def test_gcm_rejects_any_modification(what):
    cipher, iv, aad, sealed = _tc4()
    if what == "ciphertext":
        sealed = bytes([sealed[0] ^ 1]) + sealed[1:]
    elif what == "tag":
        sealed = sealed[:-1] + bytes([sealed[-1] ^ 1])
    elif what == "aad":
        aad = aad + b"\0"
    else:
        iv = bytes(8)
    with pytest.raises(IntegrityError, match="AES-GCM-16 ICV check failed"):
        cipher.decrypt(iv, sealed, aad)


def test_gcm_rejects_data_shorter_than_icv():
    cipher, iv, aad, _ = _tc4()
    with pytest.raises(IntegrityError, match="AES-GCM-16 data is 15 bytes, shorter than its 16-byte ICV"):
        cipher.decrypt(iv, bytes(15), aad)


def test_gcm_salt_is_part_of_the_nonce():
    """Same key, different salt: a different keystream (RFC 5282 §7.1 nonce = salt ‖ IV)."""
    a = make_cipher(EncrId.AES_GCM_16, 128, bytes(16) + b"\x00\x00\x00\x01")
    b = make_cipher(EncrId.AES_GCM_16, 128, bytes(16) + b"\x00\x00\x00\x02")
    assert a.encrypt(bytes(8), bytes(16)) != b.encrypt(bytes(8), bytes(16))


def test_gcm_accepts_memoryview_input():
    cipher, iv, aad, sealed = _tc4()
    assert cipher.decrypt(memoryview(iv), memoryview(sealed), aad).hex() == P60


@pytest.mark.parametrize("bits,keymat,message", [
    (128, bytes(16), r"AES_GCM_16 \(20\) with 128-bit key needs 20 bytes of keying material, got 16"),
    (64, bytes(12), r"AES_GCM_16 \(20\) does not support a key length of 64 bits \(allowed: 128, 192, 256\)"),
    (None, bytes(20), r"AES_GCM_16 \(20\) does not support a key length of None bits"),
])
def test_gcm_bad_key_material_is_named(bits, keymat, message):
    with pytest.raises(TransformError, match=message):
        make_cipher(EncrId.AES_GCM_16, bits, keymat)


def test_gcm_wrong_iv_length():
    cipher, _, aad, sealed = _tc4()
    with pytest.raises(TransformError, match="IV must be 8 bytes, got 12"):
        cipher.encrypt(bytes(12), b"x", aad)


@pytest.mark.parametrize("encr_id,text", [
    (EncrId.AES_GCM_8, r"unsupported encryption algorithm AES_GCM_8 \(18\)"),
    (EncrId.BLOWFISH, r"unsupported encryption algorithm BLOWFISH \(7\)"),
    (250, "unsupported encryption algorithm 250"),
])
def test_unsupported_encryption_ids(encr_id, text):
    with pytest.raises(TransformError, match=text):
        cipher_keymat_size(encr_id, 128)


def test_cipher_repr_has_no_key():
    cipher = make_cipher(EncrId.AES_GCM_16, 128, bytes.fromhex(K128 + SALT))
    assert repr(cipher) == "<_AesGcm16Cipher 128-bit>"
