"""Proposal strings with strongSwan 5.9.8's meanings (issue 20): swanctl's `default` keyword,
the silent normalisations of strongSwan's parser (libstrongswan/crypto/proposal/proposal.c,
check_proposal), and the legacy algorithms that are accepted only when named, each with a
warning naming its risk."""

import pytest

from ike.constants import EncrId, EsnId, IntegId, KeId, PrfId, ProtocolId, TransformType
from ike.payloads import SA, Proposal, Transform
from ike.proposals import (
    DEFAULT_ESP,
    DEFAULT_IKE,
    ProposalError,
    choose_esp,
    choose_ike,
    legacy_warnings,
    parse_esp_proposals,
    parse_ike_proposals,
    proposal_warnings,
)

# --- default ----------------------------------------------------------------------------------


def test_default_inserts_the_default_ike_proposals_at_its_place():
    mine = "aes256gcm16-prfsha384-x25519"
    parsed = parse_ike_proposals(f"{mine},default")
    assert parsed == parse_ike_proposals(mine) + parse_ike_proposals(DEFAULT_IKE)
    before = parse_ike_proposals(f"DEFAULT , {mine}")  # vici compares case-insensitively
    assert before == parse_ike_proposals(DEFAULT_IKE) + parse_ike_proposals(mine)


def test_default_in_esp_and_numbering_follows_the_position():
    parsed = parse_esp_proposals("aes128gcm16-x25519,default,aes256-sha512")
    expected = (parse_esp_proposals("aes128gcm16-x25519") + parse_esp_proposals(DEFAULT_ESP)
                + parse_esp_proposals("aes256-sha512"))
    assert parsed == expected
    numbers = [p.to_payload(n, b"\x00\x00\x00\x01").number for n, p in enumerate(parsed, 1)]
    assert numbers == list(range(1, len(expected) + 1))


def test_default_inside_a_proposal_says_it_stands_alone():
    with pytest.raises(ProposalError) as error:
        parse_ike_proposals("aes128-sha256-default")
    assert str(error.value) == (
        "'default' in proposal 'aes128-sha256-default' stands for the default proposals and "
        "must stand alone between commas (e.g. 'aes256gcm16-prfsha384-x25519,default')")
    assert error.value.token == "default"


# --- strongSwan's normalisations ------------------------------------------------------------


def test_integrity_beside_aead_is_dropped_in_ike_with_an_explicit_prf():
    (p,) = parse_ike_proposals("aes128gcm16-prfsha256-sha256-sha384-x25519")
    assert p.integrities == () and p.prfs == (PrfId.HMAC_SHA2_256,)
    assert str(p) == "aes128gcm16-prfsha256-x25519"
    assert not any(t.type == TransformType.INTEG for t in p.to_payload(1).transforms)


def test_integrity_beside_aead_without_prf_still_names_the_prf():
    (p,) = parse_ike_proposals("aes256gcm16-sha384-sha1-x25519")
    assert p.integrities == () and p.prfs == (PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA1)


def test_integrity_beside_aead_is_dropped_in_esp():
    (p,) = parse_esp_proposals("aes128gcm16-chacha20poly1305-sha256")
    assert p.integrities == () and str(p) == "aes128gcm16-chacha20poly1305-noesn"


def test_prf_in_esp_is_dropped():
    (p,) = parse_esp_proposals("aes128-sha256-prfsha384-ecp256")
    assert (p.integrities, p.ke_groups) == ((IntegId.HMAC_SHA2_256_128,), (KeId.ECP_256,))
    assert not any(t.type == TransformType.PRF
                   for t in p.to_payload(1, b"\x00\x00\x00\x01").transforms)


@pytest.mark.parametrize("keyword", ["esn", "noesn", "esn-noesn"])
def test_esn_keywords_in_ike_are_dropped(keyword):
    (p,) = parse_ike_proposals(f"aes128-sha256-x25519-{keyword}")
    assert p == parse_ike_proposals("aes128-sha256-x25519")[0]
    # RFC 7296 §3.3.2: ESN transforms belong to AH/ESP; strongSwan's own responder refuses
    # an IKE proposal carrying one, so none is sent.
    assert not any(t.type == TransformType.ESN for t in p.to_payload(1).transforms)


def test_blanks_around_tokens_are_trimmed_like_strongswan():
    assert parse_ike_proposals("aes128 - sha256 - x25519") == parse_ike_proposals("aes128-sha256-x25519")


# --- legacy algorithms ----------------------------------------------------------------------

LEGACY_IKE = {
    "aes128ctr-aesxcbc-modp2048": (
        ((EncrId.AES_CTR, 128),), (PrfId.AES128_XCBC,), (IntegId.AES_XCBC_96,),
        "aes128ctr-aesxcbc-prfaesxcbc-modp2048", ["AES-CTR", "AES-XCBC"]),
    "3des-sha1-modp2048": (
        ((EncrId.DES3, 192),), (PrfId.HMAC_SHA1,), (IntegId.HMAC_SHA1_96,),
        "3des-sha1-prfsha1-modp2048", ["3DES", "SHA-1"]),
    "aes256ctr-sha-x25519": (
        ((EncrId.AES_CTR, 256),), (PrfId.HMAC_SHA1,), (IntegId.HMAC_SHA1_96,),
        "aes256ctr-sha1-prfsha1-x25519", ["AES-CTR", "SHA-1"]),
    "aes128-md5-prfmd5-modp3072": (
        ((EncrId.AES_CBC, 128),), (PrfId.HMAC_MD5,), (IntegId.HMAC_MD5_96,),
        "aes128-md5-prfmd5-modp3072", ["MD5"]),
    "aes192-sha256-prfaesxcbc-ecp256": (
        ((EncrId.AES_CBC, 192),), (PrfId.AES128_XCBC,), (IntegId.HMAC_SHA2_256_128,),
        "aes192-sha256-prfaesxcbc-ecp256", ["AES-XCBC"]),
}


@pytest.mark.parametrize("text", list(LEGACY_IKE))
def test_legacy_ike_proposals_parse_when_named_and_warn(text):
    encryption, prfs, integrities, printed, families = LEGACY_IKE[text]
    (p,) = parse_ike_proposals(text)
    assert (p.encryption, p.prfs, p.integrities) == (encryption, prfs, integrities)
    assert str(p) == printed
    warnings = legacy_warnings([p])
    assert [w.split(" uses legacy ")[1].split(":")[0] for w in warnings] == families
    for warning in warnings:
        assert warning.startswith(f"proposal '{printed}' uses legacy ")
        assert "\n" not in warning and len(warning.split(": ", 1)[1]) > 20  # names the risk


def test_legacy_warning_texts():
    assert proposal_warnings("3des-sha1-modp2048", "aes128ctr-aesxcbc") == [
        "proposal '3des-sha1-prfsha1-modp2048' uses legacy 3DES: its 64-bit block lets "
        "collisions leak plaintext after a few GB per key (Sweet32)",
        "proposal '3des-sha1-prfsha1-modp2048' uses legacy SHA-1: SHA-1 is being retired "
        "(RFC 8221, RFC 8247)",
        "proposal 'aes128ctr-aesxcbc-noesn' uses legacy AES-CTR: unauthenticated counter mode; "
        "a repeated counter block reveals plaintext",
        "proposal 'aes128ctr-aesxcbc-noesn' uses legacy AES-XCBC: 96-bit ICV, and its PRF caps "
        "every derived key at 128 bits",
    ]
    assert proposal_warnings("aes128-md5-modp2048", None) == [
        "proposal 'aes128-md5-prfmd5-modp2048' uses legacy MD5: MD5 is broken; RFC 8221 and "
        "RFC 8247 say MUST NOT"]


def test_defaults_hold_no_legacy_algorithm():
    assert proposal_warnings(None, None) == []
    assert legacy_warnings(parse_ike_proposals(DEFAULT_IKE) + parse_esp_proposals(DEFAULT_ESP)) == []
    assert legacy_warnings(parse_ike_proposals("default") + parse_esp_proposals("default")) == []
    assert proposal_warnings("aes128-sha256-x25519", "aes128gcm16") == []


def test_3des_is_sent_without_key_length_and_chosen_back():
    offered = parse_ike_proposals("3des-sha1-modp2048")
    (encr,) = [t for t in offered[0].to_payload(1).transforms if t.type == TransformType.ENCR]
    assert (encr.id, encr.key_length) == (EncrId.DES3, None)
    reply = SA([Proposal(1, ProtocolId.IKE, b"", [
        Transform(TransformType.ENCR, EncrId.DES3), Transform(TransformType.PRF, PrfId.HMAC_SHA1),
        Transform(TransformType.INTEG, IntegId.HMAC_SHA1_96),
        Transform(TransformType.KE, KeId.MODP_2048)])])
    chosen = choose_ike(offered, reply)
    assert (chosen.encr_id, chosen.encr_key_bits, chosen.prf_id) == (EncrId.DES3, 192, PrfId.HMAC_SHA1)


def test_esp_aes_ctr_with_xcbc_is_chosen_back():
    offered = parse_esp_proposals("aes256ctr-aesxcbc-esn")
    reply = SA([Proposal(1, ProtocolId.ESP, b"\x01\x02\x03\x04", [
        Transform(TransformType.ENCR, EncrId.AES_CTR, 256),
        Transform(TransformType.INTEG, IntegId.AES_XCBC_96),
        Transform(TransformType.ESN, EsnId.ESN)])])
    chosen = choose_esp(offered, reply)
    assert (chosen.encr_id, chosen.encr_key_bits, chosen.integ_id, chosen.esn) == \
        (EncrId.AES_CTR, 256, IntegId.AES_XCBC_96, True)


@pytest.mark.parametrize("text,token", [("des-sha1-modp2048", "des"),
                                        ("aes128-sha1-modp1024", "modp1024"),
                                        ("aes128-md5_128-modp2048", "md5_128")])
def test_broken_algorithms_stay_refused(text, token):
    with pytest.raises(ProposalError, match="is unsafe") as error:
        parse_ike_proposals(text)
    assert error.value.token == token
