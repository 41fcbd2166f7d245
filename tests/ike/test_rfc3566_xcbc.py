"""RFC 3566: AES-XCBC-MAC-96 as an INTEG transform (IKE and ESP), and RFC 4434:
AES-XCBC-PRF-128 as an IKE PRF, including its key-length rules and RFC 7296 §2.14's SKEYSEED
with only 64 bits of each nonce.

Known answers: RFC 3566 §4.6 test cases #1–#5 (the full 128-bit MAC is the PRF output of
RFC 4434 for a 16-byte key) and RFC 4434 §5 (10- and 18-byte keys).
"""

import pytest

from ike.constants import IntegId, PrfId
from ike.keys import derive_ike_sa_keys, prf_plus
from ike.transforms import (
    IntegrityError,
    TransformError,
    aes_xcbc_prf_128,
    integrity_key_size,
    make_integrity,
    make_prf,
)

KEY = bytes(range(16))

# RFC 3566 §4.6: (test case, message, AES-XCBC-MAC (128 bits))
VECTORS = [
    ("#1", b"", "75f0251d528ac01c4573dfd584d79f29"),
    ("#2", bytes(range(3)), "5b376580ae2f19afe7219ceef172756f"),
    ("#3", bytes(range(16)), "d2a246fa349b68a79998a4394ff7a263"),
    ("#4", bytes(range(20)), "47f51b4564966215b8985c63055ed308"),
    ("#5", bytes(range(32)), "f54f0ec8d2b9f3d36807734bd5283fd4"),
]


@pytest.mark.parametrize("case,message,mac", VECTORS, ids=[v[0] for v in VECTORS])
def test_aes_xcbc_mac_96_known_answers(case, message, mac):
    integrity = make_integrity(IntegId.AES_XCBC_96, KEY)
    assert integrity.icv_size == 12 and integrity.key_size == 16
    assert integrity.sign(message).hex() == mac[:24]  # AES-XCBC-MAC-96: the first 96 bits
    integrity.verify(message, bytes.fromhex(mac[:24]))


@pytest.mark.parametrize("case,message,mac", VECTORS, ids=[v[0] for v in VECTORS])
def test_prf_aes128_xcbc_with_a_16_byte_key_is_the_whole_mac(case, message, mac):
    prf = make_prf(PrfId.AES128_XCBC)
    assert prf(KEY, message).hex() == mac
    assert (prf.output_size, prf.key_size, prf.fixed_key) == (16, 16, True)


# RFC 4434 §5: keys shorter than 128 bits are zero-padded, longer ones first reduced with
# AES-XCBC-MAC(0^128, key).
@pytest.mark.parametrize("key,out", [
    (bytes(range(10)), "0fa087af7d866e7653434e602fdde835"),
    (bytes(range(16)), "47f51b4564966215b8985c63055ed308"),
    (bytes(range(16)) + b"\xed\xcb", "8cd3c93ae598a9803006ffb67c40e9e4"),
])
def test_rfc4434_key_lengths(key, out):
    assert aes_xcbc_prf_128(key, bytes(range(20))).hex() == out


def test_tampered_icv_and_message_are_rejected():
    integrity = make_integrity(IntegId.AES_XCBC_96, KEY)
    icv = integrity.sign(b"payload")
    with pytest.raises(IntegrityError, match="AES_XCBC_96"):
        integrity.verify(b"payloae", icv)
    with pytest.raises(IntegrityError):
        integrity.verify(b"payload", bytes([icv[0] ^ 1]) + icv[1:])


def test_key_size_and_wrong_key():
    assert integrity_key_size(IntegId.AES_XCBC_96) == 16
    with pytest.raises(TransformError, match=r"AES_XCBC_96 \(5\) needs a 16-byte key, got 20"):
        make_integrity(IntegId.AES_XCBC_96, bytes(20))


class _Proposal:
    encr_id, encr_key_bits, integ_id, prf_id = 12, 128, IntegId.AES_XCBC_96, PrfId.AES128_XCBC


def test_skeyseed_uses_64_bits_of_each_nonce():
    """RFC 7296 §2.14: for AES-XCBC-PRF-128 SKEYSEED = prf(Ni[0:8] | Nr[0:8], g^ir); prf+ then
    uses the whole nonces."""
    ni, nr = bytes(range(1, 33)), bytes(range(101, 133))
    spi_i, spi_r, shared = bytes(range(8)), bytes(range(8, 16)), b"\x42" * 256
    keys = derive_ike_sa_keys(_Proposal, shared, ni, nr, spi_i, spi_r)

    skeyseed = aes_xcbc_prf_128(ni[:8] + nr[:8], shared)
    # SK_d, SK_ai, SK_ar (16 each: XCBC), SK_ei, SK_er (16: AES-128), SK_pi, SK_pr (16 each)
    stream = prf_plus(make_prf(PrfId.AES128_XCBC), skeyseed, ni + nr + spi_i + spi_r, 7 * 16)
    assert keys.sk_d == stream[:16]
    assert keys.sk_ai == stream[16:32] and keys.sk_er == stream[64:80]
    assert keys.sk_pr == stream[96:112]
    # Changing a nonce byte beyond the first 8 leaves SKEYSEED alone but changes the keys.
    other = derive_ike_sa_keys(_Proposal, shared, ni[:8] + bytes(24), nr, spi_i, spi_r)
    assert other.sk_d != keys.sk_d
