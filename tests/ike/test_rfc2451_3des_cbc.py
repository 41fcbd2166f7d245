"""RFC 2451: 3DES-CBC for ESP and (RFC 7296) IKE SK payloads: 192-bit key, 8-byte block and IV.

Known answers: NIST 3DES multi-block message tests (TCBC MMT, examples 1 and 2).
"""

import pytest

from client.esp import InboundSa, OutboundSa
from ike.constants import EncrId, IntegId
from ike.transforms import IntegrityError, TransformError, cipher_keymat_size, make_cipher

VECTORS = [
    ("627f460e08104a1043cd265d5840eaf1313edf97df2a8a8c", "8e29f75ea77e5475",
     "326a494cd33fe756", "b22b8d66de970692"),
    ("37ae5ebf46dff2dc0754b94f31cbb3855e7fd36dc870bfae", "3d1de3cc132e3b65",
     "84401f78fe6c10876d8ea23094ea5309", "7b1f7c7e3b1c948ebd04a75ffba7d2f5"),
]


@pytest.mark.parametrize("key,iv,plain,cipher", VECTORS)
def test_known_answers_through_one_long_lived_context(key, iv, plain, cipher):
    des3 = make_cipher(EncrId.DES3, 192, bytes.fromhex(key))
    assert (des3.block_size, des3.iv_size, des3.unique_iv) == (8, 8, False)
    for _ in range(3):  # the chaining fix-up must hold message after message
        assert des3.encrypt(bytes.fromhex(iv), bytes.fromhex(plain)).hex() == cipher
        assert des3.decrypt(bytes.fromhex(iv), bytes.fromhex(cipher)).hex() == plain


def test_fixed_key_length():
    assert cipher_keymat_size(EncrId.DES3, None) == 24  # no Key Length attribute: 192 bits
    with pytest.raises(TransformError, match=r"DES3 \(3\) does not support a key length of 128"):
        make_cipher(EncrId.DES3, 128, bytes(16))


def test_ciphertext_must_be_whole_blocks():
    des3 = make_cipher(EncrId.DES3, 192, bytes(range(24)))
    with pytest.raises(IntegrityError, match="3DES-CBC ciphertext must be a non-zero multiple of 8"):
        des3.decrypt(bytes(8), bytes(12))


@pytest.mark.parametrize("integ_id,integ_len,icv", [(IntegId.HMAC_SHA1_96, 20, 12),
                                                    (IntegId.HMAC_MD5_96, 16, 12)])
def test_esp_round_trip_pads_to_8_bytes(integ_id, integ_len, icv):
    key, integ_key = bytes(range(24)), bytes(range(50, 50 + integ_len))
    out = OutboundSa(b"\x00\x00\x20\x02", EncrId.DES3, 192, key, integ_id, integ_key)
    inb = InboundSa(b"\x00\x00\x20\x02", EncrId.DES3, 192, key, integ_id, integ_key)
    for size in (1, 7, 8, 100, 1400):
        inner = (bytes([0x60]) + bytes(range(256)) * 6)[:size]
        packet = out.seal(inner, 41)
        assert (len(packet) - 8 - 8 - icv) % 8 == 0
        assert inb.open(packet) == (41, inner)
