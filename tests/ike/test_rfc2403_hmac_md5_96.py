"""RFC 2403: HMAC-MD5-96 as an INTEG transform, and PRF_HMAC_MD5 (RFC 2104) as an IKE PRF.
Legacy (MD5 is broken; RFC 8221/8247 say MUST NOT): only used when a proposal names md5/prfmd5,
because strongSwan 5.9.8 still accepts them there.

Known answers: the HMAC-MD5 test cases of RFC 2202 §2 (RFC 2403 §3 keys and truncation).
"""

import pytest

from ike.constants import IntegId, PrfId
from ike.transforms import integrity_key_size, make_integrity, make_prf

# RFC 2202 §2: (test case, key, data, HMAC-MD5)
CASES = [
    (1, b"\x0b" * 16, b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
    (2, b"Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
    (3, b"\xaa" * 16, b"\xdd" * 50, "56be34521d144c88dbb8c733f0e8b3f6"),
]


@pytest.mark.parametrize("case,key,data,digest", CASES)
def test_prf_hmac_md5(case, key, data, digest):
    prf = make_prf(PrfId.HMAC_MD5)
    assert (prf.output_size, prf.key_size) == (16, 16)
    assert prf(key, data).hex() == digest


@pytest.mark.parametrize("case,key,data,digest", [c for c in CASES if len(c[1]) == 16])
def test_hmac_md5_96(case, key, data, digest):
    integrity = make_integrity(IntegId.HMAC_MD5_96, key)
    assert (integrity.key_size, integrity.icv_size) == (16, 12)
    assert integrity.sign(data).hex() == digest[:24]
    assert integrity_key_size(IntegId.HMAC_MD5_96) == 16
