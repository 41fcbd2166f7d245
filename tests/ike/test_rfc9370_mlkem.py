"""ML-KEM (FIPS 203) as an RFC 9370 additional key exchange (draft-ietf-ipsecme-ikev2-mlkem):
the initiator's KE data is its encapsulation key, the responder answers with a ciphertext,
and both sides get a 32-byte shared secret.
"""

import pytest

from ike.constants import KeId
from ike.keyexchange import (
    KEM_GROUPS,
    SUPPORTED_KE,
    KeyExchangeError,
    make_key_exchange,
    public_value_size,
    respond,
)

SIZES = {KeId.MLKEM768: (1184, 1088), KeId.MLKEM1024: (1568, 1568)}


@pytest.mark.parametrize("group", list(SIZES))
def test_round_trip_through_respond(group):
    key_size, ciphertext_size = SIZES[group]
    initiator = make_key_exchange(group)
    encapsulation_key = initiator.public_bytes()
    assert len(encapsulation_key) == key_size == public_value_size(group)
    ciphertext, responder_secret = respond(group, encapsulation_key)
    assert len(ciphertext) == ciphertext_size == public_value_size(group, responder=True)
    secret = initiator.shared_secret(ciphertext)
    assert secret == responder_secret
    assert len(secret) == 32


@pytest.mark.parametrize("group", list(SIZES))
def test_each_encapsulation_is_fresh(group):
    initiator = make_key_exchange(group)
    first = respond(group, initiator.public_bytes())
    second = respond(group, initiator.public_bytes())
    assert first[0] != second[0] and first[1] != second[1]
    assert initiator.shared_secret(first[0]) == first[1]
    assert initiator.shared_secret(second[0]) == second[1]


def test_tampered_ciphertext_gives_an_unrelated_secret():
    """FIPS 203 implicit rejection: no error, but the secrets differ (AUTH then fails)."""
    initiator = make_key_exchange(KeId.MLKEM768)
    ciphertext, secret = respond(KeId.MLKEM768, initiator.public_bytes())
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    assert initiator.shared_secret(tampered) != secret


@pytest.mark.parametrize("group,length", [(KeId.MLKEM768, 1184), (KeId.MLKEM1024, 1088)])
def test_wrong_ciphertext_length(group, length):
    expected = SIZES[group][1]
    with pytest.raises(KeyExchangeError, match=f"{group.name} peer ciphertext must be {expected} bytes, got {length}"):
        make_key_exchange(group).shared_secret(bytes(length))


def test_wrong_encapsulation_key_length():
    with pytest.raises(KeyExchangeError, match="MLKEM1024 peer encapsulation key must be 1568 bytes, got 1184"):
        respond(KeId.MLKEM1024, make_key_exchange(KeId.MLKEM768).public_bytes())


def test_malformed_encapsulation_key():
    """All 12-bit coefficients 0xFFF are not reduced modulo q = 3329 (FIPS 203 §7.2 check)."""
    with pytest.raises(KeyExchangeError, match="MLKEM768 peer encapsulation key is malformed"):
        respond(KeId.MLKEM768, b"\xff" * 1184)


def test_mlkem512_is_reported_unsupported():
    assert KeId.MLKEM512 not in SUPPORTED_KE
    with pytest.raises(KeyExchangeError, match="unsupported key exchange method MLKEM512"):
        make_key_exchange(KeId.MLKEM512)
    with pytest.raises(KeyExchangeError, match="unsupported key exchange method MLKEM512"):
        respond(KeId.MLKEM512, bytes(800))


def test_kem_groups_listed():
    assert KEM_GROUPS == {KeId.MLKEM768, KeId.MLKEM1024}


@pytest.mark.parametrize("group", [KeId.CURVE25519, KeId.ECP_256])
def test_respond_serves_diffie_hellman_groups_too(group):
    initiator = make_key_exchange(group)
    public, secret = respond(group, initiator.public_bytes())
    assert initiator.shared_secret(public) == secret
