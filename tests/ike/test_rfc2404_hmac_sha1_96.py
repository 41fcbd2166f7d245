"""RFC 2404: HMAC-SHA-1-96 as an INTEG transform (IKE and ESP), and PRF_HMAC_SHA1 (RFC 2104)
as an IKE PRF. Legacy: only used when a proposal names sha1/sha/prfsha1.

Known answers: the HMAC-SHA-1 test cases of RFC 2202 §3 (RFC 2404 §3 keys and truncation).
"""

import pytest

from ike.constants import IntegId, PrfId
from ike.transforms import IntegrityError, TransformError, integrity_key_size, make_integrity, make_prf

# RFC 2202 §3: (test case, key, data, HMAC-SHA-1)
CASES = [
    (1, b"\x0b" * 20, b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
    (2, b"Jefe", b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    (3, b"\xaa" * 20, b"\xdd" * 50, "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
]


@pytest.mark.parametrize("case,key,data,digest", CASES)
def test_prf_hmac_sha1(case, key, data, digest):
    prf = make_prf(PrfId.HMAC_SHA1)
    assert (prf.output_size, prf.key_size, prf.fixed_key) == (20, 20, False)
    assert prf(key, data).hex() == digest


@pytest.mark.parametrize("case,key,data,digest", [c for c in CASES if len(c[1]) == 20])
def test_hmac_sha1_96(case, key, data, digest):
    integrity = make_integrity(IntegId.HMAC_SHA1_96, key)
    assert (integrity.key_size, integrity.icv_size) == (20, 12)  # RFC 2404 §3
    assert integrity.sign(data).hex() == digest[:24]
    integrity.verify(data, bytes.fromhex(digest[:24]))
    with pytest.raises(IntegrityError, match="HMAC_SHA1_96"):
        integrity.verify(data + b"x", bytes.fromhex(digest[:24]))


def test_key_size():
    assert integrity_key_size(IntegId.HMAC_SHA1_96) == 20
    with pytest.raises(TransformError, match=r"HMAC_SHA1_96 \(2\) needs a 20-byte key, got 16"):
        make_integrity(IntegId.HMAC_SHA1_96, bytes(16))
