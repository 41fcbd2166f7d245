"""RFC 7296 key derivation: prf+ (§2.13), SKEYSEED and SK_* (§2.14), Child SA KEYMAT (§2.17),
IKE SA rekey (§2.18), and the RFC 9370 §2.2.2 update after each additional key exchange.

Every derivation is checked against a second, deliberately plain implementation written here
with the standard library's hmac module, plus the key lengths the RFCs require.
"""

import hashlib
import hmac
from types import SimpleNamespace

import pytest

from ike.constants import EncrId, IntegId, PrfId
from ike.keys import (
    ChildSaKeymat,
    IkeSaKeys,
    derive_child_sa_keymat,
    derive_ike_sa_keys,
    prf_plus,
    update_for_additional_ke,
)
from ike.transforms import make_prf

HASH = {PrfId.HMAC_SHA2_256: hashlib.sha256, PrfId.HMAC_SHA2_384: hashlib.sha384,
        PrfId.HMAC_SHA2_512: hashlib.sha512}

NI = bytes(range(32))
NR = bytes(range(100, 132))
SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes.fromhex("a1a2a3a4a5a6a7a8")
GIR = bytes(range(7, 7 + 64))


# --- the independent reference -------------------------------------------------------------

def ref_prf(prf_id, key, data):
    return hmac.new(key, data, HASH[prf_id]).digest()


def ref_prf_plus(prf_id, key, seed, length):
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = ref_prf(prf_id, key, t + seed + bytes([n]))
        out += t
        n += 1
    return out[:length]


def split(stream, sizes):
    parts, pos = [], 0
    for size in sizes:
        parts.append(stream[pos:pos + size])
        pos += size
    assert pos == len(stream)
    return parts


def ref_ike_keys(prf_id, skeyseed, sizes, ni=NI, nr=NR, spi_i=SPI_I, spi_r=SPI_R):
    stream = ref_prf_plus(prf_id, skeyseed, ni + nr + spi_i + spi_r, sum(sizes))
    return split(stream, sizes)


def as_list(keys: IkeSaKeys):
    return [keys.sk_d, keys.sk_ai, keys.sk_ar, keys.sk_ei, keys.sk_er, keys.sk_pi, keys.sk_pr]


def ike(encr, bits, prf, integ):
    return SimpleNamespace(encr_id=encr, encr_key_bits=bits, prf_id=prf, integ_id=integ)


def esp(encr, bits, integ):
    return SimpleNamespace(encr_id=encr, encr_key_bits=bits, integ_id=integ)


# (proposal, expected SK_* lengths d, ai, ar, ei, er, pi, pr)
IKE_CASES = [
    (ike(EncrId.AES_CBC, 128, PrfId.HMAC_SHA2_256, IntegId.HMAC_SHA2_256_128),
     (32, 32, 32, 16, 16, 32, 32)),
    (ike(EncrId.AES_CBC, 256, PrfId.HMAC_SHA2_384, IntegId.HMAC_SHA2_512_256),
     (48, 64, 64, 32, 32, 48, 48)),
    (ike(EncrId.AES_GCM_16, 256, PrfId.HMAC_SHA2_512, None),  # AEAD: no SK_a, salt in SK_e
     (64, 0, 0, 36, 36, 64, 64)),
    (ike(EncrId.CHACHA20_POLY1305, 256, PrfId.HMAC_SHA2_256, IntegId.NONE),
     (32, 0, 0, 36, 36, 32, 32)),
]


# --- prf+ ----------------------------------------------------------------------------------

@pytest.mark.parametrize("prf_id", list(HASH))
@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 64, 65, 200, 1000])
def test_prf_plus_matches_reference(prf_id, length):
    key, seed = b"key material", b"seed bytes"
    out = prf_plus(make_prf(prf_id), key, seed, length)
    assert out == ref_prf_plus(prf_id, key, seed, length)
    assert len(out) == length


def test_prf_plus_first_blocks_spelled_out():
    prf = make_prf(PrfId.HMAC_SHA2_256)
    k, s = b"K", b"S"
    t1 = ref_prf(PrfId.HMAC_SHA2_256, k, s + b"\x01")
    t2 = ref_prf(PrfId.HMAC_SHA2_256, k, t1 + s + b"\x02")
    assert prf_plus(prf, k, s, 64) == t1 + t2


def test_prf_plus_limit_of_255_blocks():
    prf = make_prf(PrfId.HMAC_SHA2_256)
    assert len(prf_plus(prf, b"k", b"s", 255 * 32)) == 255 * 32
    with pytest.raises(ValueError, match="prf\\+ can produce at most 8160 bytes with this PRF, 8161 requested"):
        prf_plus(prf, b"k", b"s", 255 * 32 + 1)


# --- IKE SA keys ---------------------------------------------------------------------------

@pytest.mark.parametrize("proposal,sizes", IKE_CASES)
def test_initial_ike_sa_keys(proposal, sizes):
    keys = derive_ike_sa_keys(proposal, GIR, NI, NR, SPI_I, SPI_R)
    skeyseed = ref_prf(proposal.prf_id, NI + NR, GIR)  # SKEYSEED = prf(Ni | Nr, g^ir)
    assert as_list(keys) == ref_ike_keys(proposal.prf_id, skeyseed, sizes)
    assert [len(k) for k in as_list(keys)] == list(sizes)


def test_every_input_matters():
    proposal = IKE_CASES[0][0]
    base = as_list(derive_ike_sa_keys(proposal, GIR, NI, NR, SPI_I, SPI_R))
    variants = [
        (b"x" + GIR[1:], NI, NR, SPI_I, SPI_R),
        (GIR, NR, NI, SPI_I, SPI_R),        # nonces swapped
        (GIR, NI, NR, SPI_R, SPI_I),        # SPIs swapped
    ]
    for args in variants:
        assert as_list(derive_ike_sa_keys(proposal, *args)) != base


@pytest.mark.parametrize("proposal,sizes", IKE_CASES[:3])
def test_rfc9370_additional_ke_update(proposal, sizes):
    keys0 = derive_ike_sa_keys(proposal, GIR, NI, NR, SPI_I, SPI_R)
    sk1, sk2 = b"\x11" * 32, b"\x22" * 32
    keys1 = update_for_additional_ke(proposal, keys0, sk1, NI, NR, SPI_I, SPI_R)
    keys2 = update_for_additional_ke(proposal, keys1, sk2, NI, NR, SPI_I, SPI_R)
    # SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr); all seven keys replaced
    seed1 = ref_prf(proposal.prf_id, keys0.sk_d, sk1 + NI + NR)
    assert as_list(keys1) == ref_ike_keys(proposal.prf_id, seed1, sizes)
    seed2 = ref_prf(proposal.prf_id, keys1.sk_d, sk2 + NI + NR)
    assert as_list(keys2) == ref_ike_keys(proposal.prf_id, seed2, sizes)
    assert all(a != b for a, b in zip(as_list(keys0), as_list(keys1)) if a)


def test_rekey_uses_old_prf_for_skeyseed_and_new_prf_for_prf_plus():
    old = IKE_CASES[0][0]  # PRF HMAC-SHA-256
    new, sizes = IKE_CASES[1]  # PRF HMAC-SHA-384
    old_keys = derive_ike_sa_keys(old, GIR, NI, NR, SPI_I, SPI_R)
    ni2, nr2 = b"\x33" * 32, b"\x44" * 32
    spi_i2, spi_r2 = b"\x55" * 8, b"\x66" * 8
    gir2 = b"\x77" * 56
    keys = derive_ike_sa_keys(new, gir2, ni2, nr2, spi_i2, spi_r2,
                              old_sk_d=old_keys.sk_d, old_prf=old.prf_id)
    # RFC 7296 §2.18: SKEYSEED = prf_old(SK_d(old), g^ir(new) | Ni | Nr)
    skeyseed = ref_prf(old.prf_id, old_keys.sk_d, gir2 + ni2 + nr2)
    assert as_list(keys) == ref_ike_keys(new.prf_id, skeyseed, sizes, ni2, nr2, spi_i2, spi_r2)


def test_rekey_defaults_to_the_new_prf_and_takes_additional_secrets():
    proposal, sizes = IKE_CASES[0]
    sk_d = b"\x99" * 32
    extra = [b"\xa1" * 32, b"\xa2" * 32]
    keys = derive_ike_sa_keys(proposal, GIR, NI, NR, SPI_I, SPI_R, old_sk_d=sk_d,
                              additional_secrets=extra)
    # RFC 9370 §2.2.4: SKEYSEED = prf(SK_d, SK(0) | Ni | Nr | SK(1) | SK(2))
    skeyseed = ref_prf(proposal.prf_id, sk_d, GIR + NI + NR + extra[0] + extra[1])
    assert as_list(keys) == ref_ike_keys(proposal.prf_id, skeyseed, sizes)


def test_additional_secrets_rejected_for_initial_exchange():
    with pytest.raises(ValueError, match="update_for_additional_ke"):
        derive_ike_sa_keys(IKE_CASES[0][0], GIR, NI, NR, SPI_I, SPI_R, additional_secrets=[b"x"])


@pytest.mark.parametrize("spi_i,spi_r", [(b"\1" * 4, SPI_R), (SPI_I, b"")])
def test_spi_lengths_checked(spi_i, spi_r):
    with pytest.raises(ValueError, match="IKE SPIs must be 8 bytes each"):
        derive_ike_sa_keys(IKE_CASES[0][0], GIR, NI, NR, spi_i, spi_r)
    keys = derive_ike_sa_keys(IKE_CASES[0][0], GIR, NI, NR, SPI_I, SPI_R)
    with pytest.raises(ValueError, match="IKE SPIs must be 8 bytes each"):
        update_for_additional_ke(IKE_CASES[0][0], keys, GIR, NI, NR, spi_i, spi_r)


# --- Child SA KEYMAT -----------------------------------------------------------------------

CHILD_CASES = [
    (esp(EncrId.AES_GCM_16, 128, None), 20, 0),
    (esp(EncrId.AES_GCM_16, 256, None), 36, 0),
    (esp(EncrId.CHACHA20_POLY1305, 256, None), 36, 0),
    (esp(EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128), 16, 32),
    (esp(EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_384_192), 32, 48),
]


@pytest.mark.parametrize("proposal,encr,integ", CHILD_CASES)
@pytest.mark.parametrize("pfs", [b"", b"\x5a" * 32])
def test_child_sa_keymat(proposal, encr, integ, pfs):
    sk_d = b"\x42" * 48
    keymat = derive_child_sa_keymat(proposal, PrfId.HMAC_SHA2_384, sk_d, NI, NR, pfs)
    # KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr): encr_i, integ_i, encr_r, integ_r
    stream = ref_prf_plus(PrfId.HMAC_SHA2_384, sk_d, pfs + NI + NR, 2 * (encr + integ))
    assert [keymat.encr_i, keymat.integ_i, keymat.encr_r, keymat.integ_r] == split(
        stream, (encr, integ, encr, integ))


def test_child_sa_keymat_with_additional_secrets():
    proposal = CHILD_CASES[0][0]
    sk_d = b"\x42" * 32
    keymat = derive_child_sa_keymat(proposal, PrfId.HMAC_SHA2_256, sk_d, NI, NR, b"\x01" * 32,
                                    additional_secrets=[b"\x02" * 32])
    stream = ref_prf_plus(PrfId.HMAC_SHA2_256, sk_d, b"\x01" * 32 + NI + NR + b"\x02" * 32, 40)
    assert keymat.encr_i + keymat.encr_r == stream


def test_pfs_changes_the_keys():
    proposal = CHILD_CASES[3][0]
    sk_d = b"\x42" * 32
    without = derive_child_sa_keymat(proposal, PrfId.HMAC_SHA2_256, sk_d, NI, NR)
    with_pfs = derive_child_sa_keymat(proposal, PrfId.HMAC_SHA2_256, sk_d, NI, NR, b"\x01" * 32)
    assert without.encr_i != with_pfs.encr_i


# --- secrets stay out of text --------------------------------------------------------------

def test_reprs_hide_keys():
    keys = derive_ike_sa_keys(IKE_CASES[0][0], GIR, NI, NR, SPI_I, SPI_R)
    keymat = derive_child_sa_keymat(CHILD_CASES[3][0], PrfId.HMAC_SHA2_256, keys.sk_d, NI, NR)
    assert repr(keys) == "IkeSaKeys()"
    assert repr(keymat) == "ChildSaKeymat()"
    assert keys.sk_d.hex()[:16] not in str(keys) + str(keymat)
    assert isinstance(keymat, ChildSaKeymat)
