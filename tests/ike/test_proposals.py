"""ike/proposals.py: strongSwan proposal syntax, SA payload proposals (RFC 7296 §3.3),
the initiator's check of the responder's choice, and responder-side selection,
including RFC 9370 additional key exchanges."""

import pytest

from ike.constants import EncrId, EsnId, IntegId, KeId, PrfId, ProtocolId, TransformType
from ike.payloads import SA, Proposal, Transform
from ike.proposals import (
    DEFAULT_ESP,
    DEFAULT_IKE,
    EspProposal,
    IkeProposal,
    ProposalError,
    choose_esp,
    choose_ike,
    parse_esp_proposals,
    parse_ike_proposals,
    select_esp,
    select_ike,
)

T = TransformType


def round_trip(sa: SA) -> SA:
    """Through the wire format, so enums come back the way a peer's message would."""
    return SA._decode_body(sa._encode_body(), 0, False)


# --- parsing: valid ------------------------------------------------------------------------

def test_aead_ike_proposal_with_additional_ke():
    (p,) = parse_ike_proposals("aes256gcm16-prfsha384-x25519-ke1_mlkem768")
    assert p.encryption == ((EncrId.AES_GCM_16, 256),)
    assert p.prfs == (PrfId.HMAC_SHA2_384,)
    assert p.integrities == ()
    assert p.ke_groups == (KeId.CURVE25519,)
    assert p.additional_ke == ((KeId.MLKEM768,),)
    assert (p.encr_id, p.encr_key_bits, p.prf_id, p.integ_id, p.ke_group) == (
        EncrId.AES_GCM_16, 256, PrfId.HMAC_SHA2_384, None, KeId.CURVE25519)
    assert p.is_aead and p.additional_ke_groups == (KeId.MLKEM768,)


def test_classic_ike_proposal_takes_prf_from_integrity():
    (p,) = parse_ike_proposals("aes128-sha256-modp3072")
    assert p.encryption == ((EncrId.AES_CBC, 128),)
    assert p.integrities == (IntegId.HMAC_SHA2_256_128,)
    assert p.prfs == (PrfId.HMAC_SHA2_256,)
    assert p.ke_groups == (KeId.MODP_3072,)
    assert not p.is_aead and p.additional_ke == ()


def test_explicit_prf_wins_over_integrity():
    (p,) = parse_ike_proposals("aes256-sha512-prfsha256-ecp384")
    assert p.prfs == (PrfId.HMAC_SHA2_256,)
    assert p.integrities == (IntegId.HMAC_SHA2_512_256,)


def test_strongswan_idiom_aead_with_hash_means_prf_only():
    """aes256gcm16-sha384-… is common in strongSwan configs: sha384 names the PRF only."""
    (p,) = parse_ike_proposals("aes256gcm16-sha384-modp3072")
    assert p.prfs == (PrfId.HMAC_SHA2_384,) and p.integrities == ()


def test_alternatives_keep_order_and_drop_duplicates():
    (p,) = parse_ike_proposals("aes256-aes128-aes256-sha384-sha256-ecp256-curve25519-x25519")
    assert p.encryption == ((EncrId.AES_CBC, 256), (EncrId.AES_CBC, 128))
    assert p.integrities == (IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA2_256_128)
    assert p.prfs == (PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA2_256)
    assert p.ke_groups == (KeId.ECP_256, KeId.CURVE25519)


@pytest.mark.parametrize("token,encryption", [
    ("aes", (EncrId.AES_CBC, 128)),
    ("aes192", (EncrId.AES_CBC, 192)),
    ("aes128gcm16", (EncrId.AES_GCM_16, 128)),
    ("aes128gcm128", (EncrId.AES_GCM_16, 128)),
    ("aes192gcm", (EncrId.AES_GCM_16, 192)),
    ("aes256gcm128", (EncrId.AES_GCM_16, 256)),
    ("chacha20poly1305", (EncrId.CHACHA20_POLY1305, 256)),
])
def test_encryption_keywords(token, encryption):
    integ = "" if encryption[0] != EncrId.AES_CBC else "-sha256"
    (p,) = parse_esp_proposals(token + integ)
    assert p.encryption == (encryption,)


@pytest.mark.parametrize("token,group", [
    ("modp2048", KeId.MODP_2048), ("modp4096", KeId.MODP_4096), ("modp8192", KeId.MODP_8192),
    ("ecp521", KeId.ECP_521), ("curve448", KeId.CURVE448), ("x448", KeId.CURVE448),
    ("mlkem1024", KeId.MLKEM1024),
])
def test_key_exchange_keywords(token, group):
    (p,) = parse_ike_proposals(f"aes128gcm16-prfsha256-{token}")
    assert p.ke_groups == (group,)


def test_several_proposals_and_list_input():
    text = "aes128gcm16-prfsha256-x25519, aes256-sha384-ecp384"
    assert len(parse_ike_proposals(text)) == 2
    assert parse_ike_proposals(["aes128gcm16-prfsha256-x25519", "aes256-sha384-ecp384"]) == \
        parse_ike_proposals(text)


def test_keywords_are_case_insensitive():
    assert parse_ike_proposals("AES256GCM16-PRFSHA384-X25519") == \
        parse_ike_proposals("aes256gcm16-prfsha384-x25519")


def test_additional_ke_alternatives_gaps_and_none():
    (p,) = parse_ike_proposals(
        "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_mlkem1024-ke3_mlkem1024-ke3_none")
    assert p.additional_ke == ((KeId.MLKEM768, KeId.MLKEM1024), (), (KeId.MLKEM1024, KeId.NONE))
    assert p.additional_ke_groups == (KeId.MLKEM768, KeId.MLKEM1024)


def test_esp_proposals():
    gcm, cbc = parse_esp_proposals("aes128gcm16, aes256-sha384-ecp256-esn-noesn")
    assert gcm.encryption == ((EncrId.AES_GCM_16, 128),) and gcm.integrities == ()
    assert gcm.ke_group is None and gcm.esns == (EsnId.NO_ESN,) and not gcm.esn
    assert cbc.integ_id == IntegId.HMAC_SHA2_384_192
    assert cbc.ke_groups == (KeId.ECP_256,) and cbc.ke_group == KeId.ECP_256
    assert cbc.esns == (EsnId.ESN, EsnId.NO_ESN) and cbc.esn


def test_esp_optional_pfs():
    (p,) = parse_esp_proposals("aes128gcm16-none-ecp256")
    assert p.ke_groups == (KeId.NONE, KeId.ECP_256)
    assert p.ke_group is None  # NONE preferred: no PFS unless the peer insists


def test_defaults_parse_and_put_aead_first():
    ike = parse_ike_proposals(DEFAULT_IKE)
    esp = parse_esp_proposals(DEFAULT_ESP)
    assert ike[0].is_aead and not ike[-1].is_aead
    assert esp[0].is_aead and not esp[-1].is_aead
    assert ike[0].ke_group == KeId.CURVE25519


@pytest.mark.parametrize("text", [
    "aes256gcm16-prfsha384-x25519-ke1_mlkem768",
    "aes128-aes256-sha256-sha512-prfsha384-ecp256-modp3072",
    "chacha20poly1305-prfsha512-x448-ke1_mlkem1024-ke1_none-ke2_mlkem768",
])
def test_str_round_trips(text):
    (p,) = parse_ike_proposals(text)
    assert parse_ike_proposals(str(p)) == [p]


def test_str_esp():
    (p,) = parse_esp_proposals("aes256-sha256-modp3072-esn")
    assert str(p) == "aes256-sha256-modp3072-esn"
    assert str(parse_esp_proposals("aes128gcm128")[0]) == "aes128gcm16-noesn"


# --- parsing: errors, with exact messages --------------------------------------------------

@pytest.mark.parametrize("text,message,token", [
    ("des-sha256-modp2048",
     "algorithm 'des' in proposal 'des-sha256-modp2048' is unsafe (56-bit key) and not accepted",
     "des"),
    ("aes128-sha256-modp1024",
     "algorithm 'modp1024' in proposal 'aes128-sha256-modp1024' is unsafe "
     "(1024-bit MODP is too weak (RFC 8247)) and not accepted", "modp1024"),
    ("aes128-sha256-modp768",
     "algorithm 'modp768' in proposal 'aes128-sha256-modp768' is unsafe "
     "(768-bit MODP is breakable) and not accepted", "modp768"),
    ("null-sha256-x25519",
     "algorithm 'null' in proposal 'null-sha256-x25519' is unsafe (no encryption) and not accepted",
     "null"),
    ("aes128-sha256-x25519-ke1_modp1024",
     "algorithm 'modp1024' in proposal 'aes128-sha256-x25519-ke1_modp1024' is unsafe "
     "(1024-bit MODP is too weak (RFC 8247)) and not accepted", "modp1024"),
    ("aes128-sha256-x25519-ke1_mlkem512",
     "algorithm 'mlkem512' in proposal 'aes128-sha256-x25519-ke1_mlkem512' is not supported "
     "by Cygnet", "mlkem512"),
    ("aes128ccm16-prfsha256-x25519",
     "algorithm 'aes128ccm16' in proposal 'aes128ccm16-prfsha256-x25519' is not supported "
     "by Cygnet", "aes128ccm16"),
    ("aes128-sha256-rot13",
     "unknown algorithm 'rot13' in proposal 'aes128-sha256-rot13'", "rot13"),
    ("aes128--sha256", "empty algorithm name in proposal 'aes128--sha256'", None),
    ("aes128gcm16-aes128-sha256-x25519",
     "IKE proposal 'aes128gcm16-aes128-sha256-x25519' mixes AEAD 'aes128gcm16' with non-AEAD "
     "'aes128'; put them in separate proposals", None),
    ("aes128-prfsha256-x25519",
     "IKE proposal 'aes128-prfsha256-x25519' needs an integrity algorithm (e.g. sha256) for "
     "non-AEAD 'aes128'", None),
    ("aes128gcm16-x25519", "IKE proposal 'aes128gcm16-x25519' needs a PRF (e.g. prfsha256)", None),
    ("aes128-sha256", "IKE proposal 'aes128-sha256' needs a key exchange method (e.g. x25519)",
     None),
    ("aes128-sha256-none", "IKE proposal 'aes128-sha256-none' needs a key exchange method "
     "(e.g. x25519)", None),
    ("sha256-x25519", "IKE proposal 'sha256-x25519' has no encryption algorithm", None),
    ("aes128-sha256-x25519-ke8_mlkem768",
     "'ke8_mlkem768' in proposal 'aes128-sha256-x25519-ke8_mlkem768': additional key exchanges "
     "are numbered ke1_ to ke7_", "ke8_mlkem768"),
    ("aes128-sha256-x25519-ke1_aes128",
     "'ke1_aes128' in proposal 'aes128-sha256-x25519-ke1_aes128': 'aes128' is not a key "
     "exchange method", "ke1_aes128"),
    ("", "no proposal given", None),
    (" , ", "no proposal given", None),
    ("aes128gcm16-prfsha256-x25519,",
     "empty proposal in the list (two commas in a row, or a comma at an end)", None),
])
def test_ike_parse_errors(text, message, token):
    with pytest.raises(ProposalError) as error:
        parse_ike_proposals(text)
    assert str(error.value) == message
    assert error.value.token == token


@pytest.mark.parametrize("text,message", [
    ("aes128", "ESP proposal 'aes128' needs an integrity algorithm (e.g. sha256) for non-AEAD "
     "'aes128'"),
    ("aes128gcm16-ke1_mlkem768",
     "'ke1_mlkem768' in proposal 'aes128gcm16-ke1_mlkem768': additional key exchanges are only "
     "supported in IKE proposals"),
    ("aes128gcm12", "algorithm 'aes128gcm12' in proposal 'aes128gcm12' is not supported by Cygnet"),
])
def test_esp_parse_errors(text, message):
    with pytest.raises(ProposalError) as error:
        parse_esp_proposals(text)
    assert str(error.value) == message


# --- SA payload proposals ------------------------------------------------------------------

def test_ike_to_payload():
    (p,) = parse_ike_proposals("aes256gcm16-chacha20poly1305-prfsha384-x25519-ke1_mlkem768-ke1_none")
    payload = p.to_payload(1)
    assert payload == Proposal(1, ProtocolId.IKE, b"", [
        Transform(T.ENCR, EncrId.AES_GCM_16, 256),
        Transform(T.ENCR, EncrId.CHACHA20_POLY1305, None),  # RFC 7634: no Key Length
        Transform(T.PRF, PrfId.HMAC_SHA2_384),
        Transform(T.KE, KeId.CURVE25519),
        Transform(T.ADDKE1, KeId.MLKEM768),
        Transform(T.ADDKE1, KeId.NONE),
    ])
    assert p.to_payload(2, b"\x01" * 8).spi == b"\x01" * 8


def test_classic_ike_to_payload_has_integ():
    (p,) = parse_ike_proposals("aes128-sha256-modp3072")
    types = [(t.type, t.id) for t in p.to_payload(1).transforms]
    assert (T.INTEG, IntegId.HMAC_SHA2_256_128) in types
    assert (T.PRF, PrfId.HMAC_SHA2_256) in types


def test_esp_to_payload():
    (p,) = parse_esp_proposals("aes128-sha256-ecp256")
    payload = p.to_payload(3, b"\xaa\xbb\xcc\xdd")
    assert payload == Proposal(3, ProtocolId.ESP, b"\xaa\xbb\xcc\xdd", [
        Transform(T.ENCR, EncrId.AES_CBC, 128),
        Transform(T.INTEG, IntegId.HMAC_SHA2_256_128),
        Transform(T.KE, KeId.ECP_256),
        Transform(T.ESN, EsnId.NO_ESN),
    ])
    assert all(t.type != T.KE for t in p.to_payload(3, b"\0" * 4, with_ke=False).transforms)
    with pytest.raises(ValueError, match="an ESP SPI is 4 bytes, got 8"):
        p.to_payload(1, b"\0" * 8)


# --- initiator: checking the responder's choice ---------------------------------------------

OFFERED_IKE = parse_ike_proposals(
    "aes256gcm16-aes128gcm16-prfsha384-prfsha256-x25519-ecp256-ke1_mlkem768-ke1_none,"
    "aes256-sha256-modp3072")


def answer(*transforms, number=1, protocol=ProtocolId.IKE, spi=b""):
    return round_trip(SA([Proposal(number, protocol, spi, list(transforms))]))


def test_choose_ike_aead_with_addke():
    chosen = choose_ike(OFFERED_IKE, answer(
        Transform(T.ENCR, EncrId.AES_GCM_16, 128), Transform(T.PRF, PrfId.HMAC_SHA2_256),
        Transform(T.KE, KeId.ECP_256), Transform(T.ADDKE1, KeId.MLKEM768)))
    assert chosen == IkeProposal(((EncrId.AES_GCM_16, 128),), (PrfId.HMAC_SHA2_256,), (),
                                 (KeId.ECP_256,), ((KeId.MLKEM768,),))
    assert chosen.additional_ke_groups == (KeId.MLKEM768,)


def test_choose_ike_optional_addke_skipped_and_integ_none():
    chosen = choose_ike(OFFERED_IKE, answer(
        Transform(T.ENCR, EncrId.AES_GCM_16, 256), Transform(T.PRF, PrfId.HMAC_SHA2_384),
        Transform(T.INTEG, IntegId.NONE), Transform(T.KE, KeId.CURVE25519)))
    assert chosen.additional_ke == () and chosen.integ_id is None


def test_choose_ike_second_proposal():
    chosen = choose_ike(OFFERED_IKE, answer(
        Transform(T.ENCR, EncrId.AES_CBC, 256), Transform(T.PRF, PrfId.HMAC_SHA2_256),
        Transform(T.INTEG, IntegId.HMAC_SHA2_256_128), Transform(T.KE, KeId.MODP_3072),
        number=2))
    assert str(chosen) == "aes256-sha256-prfsha256-modp3072"


GCM128 = Transform(T.ENCR, EncrId.AES_GCM_16, 128)
PRF256 = Transform(T.PRF, PrfId.HMAC_SHA2_256)
KE25519 = Transform(T.KE, KeId.CURVE25519)


@pytest.mark.parametrize("sa,message", [
    (answer(GCM128, PRF256), "the responder's IKE proposal has no key exchange method"),
    (answer(PRF256, KE25519), "the responder's IKE proposal has no encryption algorithm"),
    (answer(GCM128, KE25519), "the responder's IKE proposal has no PRF"),
    (answer(Transform(T.ENCR, EncrId.AES_GCM_16, 192), PRF256, KE25519),
     "the responder chose encryption algorithm AES_GCM_16 (192-bit), which was not offered"),
    (answer(GCM128, PRF256, Transform(T.KE, KeId.MODP_2048)),
     "the responder chose key exchange method MODP_2048, which was not offered"),
    (answer(GCM128, PRF256, Transform(T.INTEG, IntegId.HMAC_SHA2_256_128), KE25519),
     "the responder chose integrity algorithm HMAC_SHA2_256_128, which was not offered"),
    (answer(GCM128, PRF256, KE25519, Transform(T.ADDKE2, KeId.MLKEM768)),
     "the responder chose additional key exchange 2 MLKEM768, which was not offered"),
    (answer(GCM128, GCM128, PRF256, KE25519),
     "the responder's proposal 1 has 2 ENCR transforms; a choice has exactly one"),
    (answer(GCM128, PRF256, KE25519, Transform(T.ESN, EsnId.NO_ESN)),
     "the responder's IKE proposal contains ESN transforms"),
    (answer(GCM128, PRF256, KE25519, number=3),
     "the responder chose proposal number 3, but 2 were offered"),
    (answer(GCM128, PRF256, KE25519, protocol=ProtocolId.ESP, spi=b"\0" * 4),
     "the responder chose a proposal for protocol ESP, not IKE"),
    (answer(Transform(T.ENCR, EncrId.AES_CBC, 256), PRF256, Transform(T.KE, KeId.MODP_3072),
            number=2),
     "the responder's IKE proposal has no integrity algorithm"),
    (answer(Transform(T.ENCR, EncrId.AES_GCM_16, 128, b"\x80\x0f\x00\x01"), PRF256, KE25519),
     "proposal 1 has a ENCR transform with an unknown attribute"),
])
def test_choose_ike_rejects(sa, message):
    with pytest.raises(ProposalError) as error:
        choose_ike(OFFERED_IKE, sa)
    assert str(error.value) == message


def test_choose_ike_requires_mandatory_addke():
    offered = parse_ike_proposals("aes128gcm16-prfsha256-x25519-ke1_mlkem768")
    with pytest.raises(ProposalError, match="skipped additional key exchange 1, which is required"):
        choose_ike(offered, answer(GCM128, PRF256, KE25519))


def test_choose_ike_rejects_more_than_one_proposal():
    sa = SA([Proposal(1, ProtocolId.IKE, b"", [GCM128, PRF256, KE25519])] * 2)
    with pytest.raises(ProposalError, match="holds 2 proposals; exactly one is expected"):
        choose_ike(OFFERED_IKE, sa)


OFFERED_ESP = parse_esp_proposals("aes256gcm16-aes128gcm16, aes128-sha256-ecp256-esn")


def esp_answer(*transforms, number=1, spi=b"\x01\x02\x03\x04"):
    return answer(*transforms, number=number, protocol=ProtocolId.ESP, spi=spi)


def test_choose_esp():
    chosen = choose_esp(OFFERED_ESP, esp_answer(GCM128, Transform(T.ESN, EsnId.NO_ESN)),
                        with_ke=False)
    assert chosen == EspProposal(((EncrId.AES_GCM_16, 128),), (), (), (EsnId.NO_ESN,))
    pfs = choose_esp(OFFERED_ESP, esp_answer(
        Transform(T.ENCR, EncrId.AES_CBC, 128), Transform(T.INTEG, IntegId.HMAC_SHA2_256_128),
        Transform(T.KE, KeId.ECP_256), Transform(T.ESN, EsnId.ESN), number=2))
    assert (pfs.ke_group, pfs.esn, pfs.integ_id) == (KeId.ECP_256, True, IntegId.HMAC_SHA2_256_128)


def test_choose_esp_missing_esn_means_no_esn():
    assert not choose_esp(OFFERED_ESP, esp_answer(GCM128)).esn


CBC = Transform(T.ENCR, EncrId.AES_CBC, 128)
SHA256 = Transform(T.INTEG, IntegId.HMAC_SHA2_256_128)
ESN = Transform(T.ESN, EsnId.ESN)


@pytest.mark.parametrize("sa,with_ke,message", [
    (esp_answer(CBC, SHA256, ESN, number=2), True,
     "the responder declined PFS, which our proposal requires"),
    (esp_answer(CBC, SHA256, Transform(T.KE, KeId.ECP_256), ESN, number=2), False,
     "the responder chose PFS group ECP_256, which was not offered"),
    (esp_answer(CBC, SHA256, Transform(T.KE, KeId.MODP_2048), ESN, number=2), True,
     "the responder chose PFS group MODP_2048, which was not offered"),
    (esp_answer(CBC, ESN, Transform(T.KE, KeId.ECP_256), number=2), True,
     "the responder chose no integrity algorithm, which was not offered"),
    (esp_answer(GCM128, SHA256), False,
     "the responder chose integrity algorithm HMAC_SHA2_256_128, which was not offered"),
    (esp_answer(GCM128, ESN), False, "the responder chose ESN, which was not offered"),
    (esp_answer(Transform(T.ENCR, EncrId.AES_CBC, 256), SHA256, number=2), False,
     "the responder chose encryption algorithm AES_CBC (256-bit), which was not offered"),
    (esp_answer(SHA256, number=2), False,
     "the responder's ESP proposal has no encryption algorithm"),
    (esp_answer(GCM128, PRF256), False, "the responder's ESP proposal contains PRF transforms"),
    (esp_answer(GCM128, spi=b"\1" * 8), False, "the responder's ESP SPI is 8 bytes, not 4"),
])
def test_choose_esp_rejects(sa, with_ke, message):
    with pytest.raises(ProposalError) as error:
        choose_esp(OFFERED_ESP, sa, with_ke=with_ke)
    assert str(error.value) == message


# --- responder: selecting from the initiator's offer ---------------------------------------

def offer_sa(proposals, spi=b""):
    return round_trip(SA([p.to_payload(n, spi) for n, p in enumerate(proposals, start=1)]))


def test_select_ike_prefers_configured_order():
    received = offer_sa(parse_ike_proposals(DEFAULT_IKE))
    configured = parse_ike_proposals("aes128-sha256-ecp256, aes256gcm16-prfsha384-x25519")
    selection = select_ike(configured, received)
    assert selection.number == 2 and selection.spi == b""
    assert str(selection.proposal) == "aes128-sha256-prfsha256-ecp256"
    # and the initiator accepts the answer
    reply = round_trip(SA([selection.proposal.to_payload(selection.number)]))
    assert choose_ike(parse_ike_proposals(DEFAULT_IKE), reply) == selection.proposal


def test_select_ike_honours_the_initiators_ke_group():
    received = offer_sa(parse_ike_proposals("aes128gcm16-prfsha256-ecp256-x25519"))
    configured = parse_ike_proposals("aes128gcm16-prfsha256-x25519-ecp256")
    assert select_ike(configured, received).proposal.ke_group == KeId.CURVE25519
    assert select_ike(configured, received, preferred_ke=KeId.ECP_256).proposal.ke_group == KeId.ECP_256
    # a preference we do not allow is ignored
    assert select_ike(configured, received, preferred_ke=KeId.MODP_2048).proposal.ke_group == \
        KeId.CURVE25519


def test_select_ike_additional_ke():
    received = offer_sa(parse_ike_proposals(
        "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none-ke2_mlkem1024-ke2_none"))
    with_pq = parse_ike_proposals("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024")
    assert select_ike(with_pq, received).proposal.additional_ke_groups == (
        KeId.MLKEM768, KeId.MLKEM1024)
    classic = parse_ike_proposals("aes256gcm16-prfsha384-x25519")
    assert select_ike(classic, received).proposal.additional_ke == ()
    # we require ADDKE1 but the initiator offers none: no match
    plain = offer_sa(parse_ike_proposals("aes256gcm16-prfsha384-x25519"))
    with pytest.raises(ProposalError, match="no acceptable IKE proposal"):
        select_ike(with_pq, plain)


@pytest.mark.parametrize("mine,theirs", [
    ("aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha256-x25519"),
    ("aes128gcm16-prfsha256-x25519", "aes128gcm16-prfsha384-x25519"),
    ("aes128gcm16-prfsha256-x25519", "aes128gcm16-prfsha256-ecp256"),
    ("aes128-sha256-x25519", "aes128-sha384-prfsha256-x25519"),
])
def test_select_ike_no_match(mine, theirs):
    with pytest.raises(ProposalError, match="no acceptable IKE proposal"):
        select_ike(parse_ike_proposals(mine), offer_sa(parse_ike_proposals(theirs)))


def test_select_ike_skips_esp_and_unusable_proposals():
    good = parse_ike_proposals("aes128gcm16-prfsha256-x25519")[0]
    weird = Proposal(1, ProtocolId.IKE, b"", [Transform(T.ENCR, EncrId.AES_GCM_16, 128, b"\x80\x63\x00\x00")])
    esp = Proposal(2, ProtocolId.ESP, b"\0" * 4, [GCM128])
    sa = round_trip(SA([weird, esp, good.to_payload(3, b"\x07" * 8)]))
    selection = select_ike([good], sa)
    assert (selection.number, selection.spi) == (3, b"\x07" * 8)


def test_select_esp():
    received = round_trip(SA([p.to_payload(n, b"\x0a\x0b\x0c\x0d", with_ke=False)
                              for n, p in enumerate(parse_esp_proposals(DEFAULT_ESP), start=1)]))
    selection = select_esp(parse_esp_proposals("aes128-sha256, aes128gcm16"), received, with_ke=False)
    assert selection.number == 2 and selection.spi == b"\x0a\x0b\x0c\x0d"
    assert selection.proposal.integ_id == IntegId.HMAC_SHA2_256_128
    reply = round_trip(SA([selection.proposal.to_payload(selection.number, b"\1\2\3\4", with_ke=False)]))
    assert choose_esp(parse_esp_proposals(DEFAULT_ESP), reply, with_ke=False) == selection.proposal


def test_select_esp_pfs_and_esn():
    received = round_trip(SA([
        parse_esp_proposals("aes128gcm16-ecp256-none-esn")[0].to_payload(1, b"\1\2\3\4")]))
    chosen = select_esp(parse_esp_proposals("aes128gcm16-ecp256-esn-noesn"), received).proposal
    assert chosen.ke_group == KeId.ECP_256 and chosen.esn
    optional = select_esp(parse_esp_proposals("aes128gcm16-none-esn"), received).proposal
    assert optional.ke_groups == ()
    for mine in ("aes256gcm16", "aes128gcm16-modp3072-esn", "aes128gcm16-noesn",
                 "aes128-sha256-esn"):
        with pytest.raises(ProposalError, match="no acceptable ESP proposal"):
            select_esp(parse_esp_proposals(mine), received)


def test_select_esp_skips_bad_spi_and_unknown_attributes():
    good = parse_esp_proposals("aes128gcm16")[0]
    sa = round_trip(SA([
        Proposal(1, ProtocolId.ESP, b"\1" * 8, good.to_payload(1, b"\0" * 4).transforms),
        Proposal(2, ProtocolId.ESP, b"\1" * 4, [Transform(T.ENCR, EncrId.AES_GCM_16, 128, b"\x80\x63\0\0")]),
        good.to_payload(3, b"\2" * 4),
    ]))
    assert select_esp([good], sa, with_ke=False).number == 3


def test_select_esp_needs_common_integrity():
    received = round_trip(SA([parse_esp_proposals("aes128-sha512")[0].to_payload(1, b"\1" * 4)]))
    with pytest.raises(ProposalError, match="no acceptable ESP proposal"):
        select_esp(parse_esp_proposals("aes128-sha256"), received)


def test_esp_proposal_properties():
    (p,) = parse_esp_proposals("aes192-sha512")
    assert (p.encr_id, p.encr_key_bits, p.is_aead) == (EncrId.AES_CBC, 192, False)


def test_unknown_numbers_are_named_plainly():
    unknown_type = answer(GCM128, PRF256, KE25519, Transform(200, 1))
    with pytest.raises(ProposalError, match="the responder's IKE proposal contains type 200 transforms"):
        choose_ike(OFFERED_IKE, unknown_type)
    unknown_protocol = answer(GCM128, PRF256, KE25519, protocol=9)
    with pytest.raises(ProposalError, match="the responder chose a proposal for protocol 9, not IKE"):
        choose_ike(OFFERED_IKE, unknown_protocol)
