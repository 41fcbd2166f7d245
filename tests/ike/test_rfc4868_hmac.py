"""RFC 4868: HMAC-SHA-256/384/512 as IKE PRFs (§2.1.2) and as truncated INTEG transforms (§2.1.1).

Known answers are the test vectors of RFC 4868 §2.7.1 (PRF) and §2.7.2 (authenticator).
"""

import hmac as std_hmac
import hashlib

import pytest

from ike.constants import IntegId, PrfId
from ike.transforms import (
    IntegrityError,
    TransformError,
    integrity_key_size,
    make_integrity,
    make_prf,
)

DD50 = b"\xdd" * 50
LARGE_KEY = b"\xaa" * 131
LARGE_DATA = b"Test Using Larger Than Block-Size Key - Hash Key First"

# RFC 4868 §2.7.1: (test case, key, data, PRF output) per PRF
PRF_VECTORS = {
    PrfId.HMAC_SHA2_256: [
        ("PRF-1", b"\x0b" * 20, b"Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        ("PRF-3", b"\xaa" * 20, DD50,
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        ("PRF-4", bytes(range(1, 26)), b"\xcd" * 50,
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        ("PRF-5", LARGE_KEY, LARGE_DATA,
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    ],
    PrfId.HMAC_SHA2_384: [
        ("PRF-1", b"\x0b" * 20, b"Hi There",
         "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec6"
         "82aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"),
        ("PRF-3", b"\xaa" * 20, DD50,
         "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9feb"
         "e83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27"),
        ("PRF-5", LARGE_KEY, LARGE_DATA,
         "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f"
         "3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952"),
    ],
    PrfId.HMAC_SHA2_512: [
        ("PRF-1", b"\x0b" * 20, b"Hi There",
         "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
         "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
        ("PRF-3", b"\xaa" * 20, DD50,
         "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
         "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"),
        ("PRF-5", LARGE_KEY, LARGE_DATA,
         "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
         "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"),
    ],
}

# RFC 4868 §2.7.2: (test case, key, data, truncated ICV) per INTEG transform
AUTH_VECTORS = {
    IntegId.HMAC_SHA2_256_128: [
        ("AUTH256-1", b"\x0b" * 32, b"Hi There", "198a607eb44bfbc69903a0f1cf2bbdc5"),
        ("AUTH256-2", b"Jefe" * 8, b"what do ya want for nothing?",
         "167f928588c5cc2eef8e3093caa0e87c"),
        ("AUTH256-3", b"\xaa" * 32, DD50, "cdcb1220d1ecccea91e53aba3092f962"),
    ],
    IntegId.HMAC_SHA2_384_192: [
        ("AUTH384-1", b"\x0b" * 48, b"Hi There",
         "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973"),
        ("AUTH384-2", b"Jefe" * 12, b"what do ya want for nothing?",
         "2c7353974f1842fd66d53c452ca42122b28c0b594cfb184d"),
        ("AUTH384-3", b"\xaa" * 48, DD50, "809f439be00274321d4a538652164b53554a508184a0c316"),
    ],
    IntegId.HMAC_SHA2_512_256: [
        ("AUTH512-1", b"\x0b" * 64, b"Hi There",
         "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8"),
        ("AUTH512-2", b"Jefe" * 16, b"what do ya want for nothing?",
         "cb370917ae8a7ce28cfd1d8f4705d6141c173b2a9362c15df235dfb251b15454"),
        ("AUTH512-3", b"\xaa" * 64, DD50,
         "2ee7acd783624ca9398710f3ee05ae41b9f9b0510c87e49e586cc9bf961733d8"),
    ],
}

HASHES = {
    PrfId.HMAC_SHA2_256: hashlib.sha256,
    PrfId.HMAC_SHA2_384: hashlib.sha384,
    PrfId.HMAC_SHA2_512: hashlib.sha512,
}


@pytest.mark.parametrize(
    "prf_id,case,key,data,expected",
    [(p, *v) for p, vectors in PRF_VECTORS.items() for v in vectors],
)
def test_prf_known_answers(prf_id, case, key, data, expected):
    prf = make_prf(prf_id)
    assert prf(key, data).hex() == expected


@pytest.mark.parametrize("prf_id,size", [(PrfId.HMAC_SHA2_256, 32), (PrfId.HMAC_SHA2_384, 48),
                                         (PrfId.HMAC_SHA2_512, 64)])
def test_prf_sizes_and_stdlib_agreement(prf_id, size):
    prf = make_prf(prf_id)
    assert prf.output_size == size
    assert prf.key_size == size  # RFC 4868 §2.1.2: preferred key size = output size
    key, data = b"k" * 7, b"some data" * 30
    assert prf(key, data) == std_hmac.new(key, data, HASHES[prf_id]).digest()


@pytest.mark.parametrize(
    "integ_id,case,key,data,expected",
    [(i, *v) for i, vectors in AUTH_VECTORS.items() for v in vectors],
)
def test_integrity_known_answers(integ_id, case, key, data, expected):
    integrity = make_integrity(integ_id, key)
    icv = integrity.sign(data)
    assert icv.hex() == expected
    integrity.verify(data, icv)  # does not raise


@pytest.mark.parametrize("integ_id,key_size,icv_size", [
    (IntegId.HMAC_SHA2_256_128, 32, 16),
    (IntegId.HMAC_SHA2_384_192, 48, 24),
    (IntegId.HMAC_SHA2_512_256, 64, 32),
])
def test_integrity_sizes(integ_id, key_size, icv_size):
    assert integrity_key_size(integ_id) == key_size
    integrity = make_integrity(integ_id, b"\x01" * key_size)
    assert integrity.key_size == key_size
    assert integrity.icv_size == icv_size
    assert len(integrity.sign(b"")) == icv_size


def test_integrity_object_is_reusable():
    """The keyed state is copied per message, so messages do not leak into each other."""
    integrity = make_integrity(IntegId.HMAC_SHA2_256_128, b"\x0b" * 32)
    first = integrity.sign(b"Hi There")
    integrity.sign(b"something else entirely")
    assert integrity.sign(b"Hi There") == first


@pytest.mark.parametrize("mutate", [
    lambda data, icv: (data + b"x", icv),
    lambda data, icv: (data, bytes([icv[0] ^ 1]) + icv[1:]),
    lambda data, icv: (data, icv[:-1] + bytes([icv[-1] ^ 0x80])),
    lambda data, icv: (data, icv[:-1]),
    lambda data, icv: (data, b""),
])
def test_integrity_rejects_tampering(mutate):
    integrity = make_integrity(IntegId.HMAC_SHA2_512_256, b"\x0b" * 64)
    data = b"payload"
    bad_data, bad_icv = mutate(data, integrity.sign(data))
    with pytest.raises(IntegrityError, match="HMAC_SHA2_512_256 .*ICV check failed"):
        integrity.verify(bad_data, bad_icv)


def test_integrity_wrong_key_length_is_named():
    with pytest.raises(TransformError, match=r"HMAC_SHA2_256_128 \(12\) needs a 32-byte key, got 20"):
        make_integrity(IntegId.HMAC_SHA2_256_128, b"\x0b" * 20)


@pytest.mark.parametrize("integ_id,text", [
    (IntegId.HMAC_SHA1_160, r"unsupported integrity algorithm HMAC_SHA1_160 \(7\)"),
    (999, "unsupported integrity algorithm 999"),
])
def test_unsupported_integrity(integ_id, text):
    with pytest.raises(TransformError, match=text):
        make_integrity(integ_id, b"k" * 20)
    with pytest.raises(TransformError, match=text):
        integrity_key_size(integ_id)


@pytest.mark.parametrize("prf_id,text", [
    (PrfId.HMAC_TIGER, r"unsupported PRF HMAC_TIGER \(3\)"),
    (PrfId.AES128_CMAC, r"unsupported PRF AES128_CMAC \(8\)"),
])
def test_unsupported_prf(prf_id, text):
    with pytest.raises(TransformError, match=text):
        make_prf(prf_id)


def test_reprs_carry_no_key():
    key = bytes.fromhex("5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2")
    integrity = make_integrity(IntegId.HMAC_SHA2_256_128, key)
    assert "5ec2e7" not in repr(integrity) and "HMAC_SHA2_256_128" in repr(integrity)
    assert repr(make_prf(PrfId.HMAC_SHA2_384)) == "<Prf HMAC_SHA2_384 (6)>"
