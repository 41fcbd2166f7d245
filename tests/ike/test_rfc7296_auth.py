"""RFC 7296 §2.15 (signed octets, shared-key AUTH) and §2.16 (the EAP MSK as the key)."""

import hashlib
import hmac

import pytest

from ike import auth
from ike.auth import AuthenticationError
from ike.constants import AuthMethod, IdType, PrfId
from ike.payloads import AUTH, IDi, IDr, decode_payloads, encode_payloads
from ike.transforms import make_prf
from tests.ike.eap_server import NOW, Pki

PRF = make_prf(PrfId.HMAC_SHA2_256)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def test_rest_of_id_payload_layout():
    expected = b"\x02\x00\x00\x00vpn.example.org"
    assert auth.rest_of_id_payload(IDr(IdType.FQDN, b"vpn.example.org")) == expected
    assert auth.rest_of_id_payload((IdType.FQDN, b"vpn.example.org")) == expected
    assert auth.rest_of_id_payload(expected) == expected
    # the encoded payload body after the 4-octet generic header is exactly this
    _, encoded = encode_payloads([IDr(IdType.FQDN, b"vpn.example.org")])
    assert encoded[4:] == expected


def test_signed_octets_are_message_nonce_and_maced_id():
    message, nonce, sk_pi = b"IKE_SA_INIT request bytes", b"N" * 32, bytes(range(32))
    id_payload = IDi(IdType.RFC822_ADDR, b"carol@example.org")
    octets = auth.signed_octets(message, nonce, PRF, sk_pi, id_payload)
    maced_id = hmac_sha256(sk_pi, b"\x03\x00\x00\x00carol@example.org")
    assert octets == message + nonce + maced_id
    # a different SK_p (the responder's) gives different octets
    assert auth.signed_octets(message, nonce, PRF, b"x" * 32, id_payload) != octets


def test_psk_auth_is_prf_of_prf_of_secret_and_key_pad():
    octets = b"signed octets"
    expected = hmac_sha256(hmac_sha256(b"topsecret", b"Key Pad for IKEv2"), octets)
    assert auth.psk_auth_data(PRF, b"topsecret", octets) == expected
    assert len(b"Key Pad for IKEv2") == 17  # no terminating NUL (§2.15)


def test_psk_auth_with_sha384_prf():
    prf = make_prf(PrfId.HMAC_SHA2_384)
    inner = hmac.new(b"k", b"Key Pad for IKEv2", hashlib.sha384).digest()
    assert auth.psk_auth_data(prf, b"k", b"o") == hmac.new(inner, b"o", hashlib.sha384).digest()


def test_eap_msk_replaces_the_psk():
    msk = bytes(range(64))
    octets = b"octets"
    data = auth.psk_auth_data(PRF, msk, octets)
    auth.verify_shared_key_auth(AUTH(AuthMethod.SHARED_KEY_MIC, data), PRF, msk, octets)


def test_verify_shared_key_auth_rejects_wrong_secret_and_method():
    octets = b"octets"
    good = AUTH(AuthMethod.SHARED_KEY_MIC, auth.psk_auth_data(PRF, b"right", octets))
    auth.verify_shared_key_auth(good, PRF, b"right", octets)
    with pytest.raises(AuthenticationError, match="does not match our pre-shared key") as info:
        auth.verify_shared_key_auth(good, PRF, b"wrong-secret", octets)
    assert "wrong-secret" not in str(info.value)
    with pytest.raises(AuthenticationError, match="does not match"):
        auth.verify_shared_key_auth(good, PRF, b"right", octets + b"!")
    signed = AUTH(AuthMethod.DIGITAL_SIGNATURE, good.data)
    with pytest.raises(AuthenticationError, match="authenticated with DIGITAL_SIGNATURE, "
                                                  "expected a pre-shared key"):
        auth.verify_shared_key_auth(signed, PRF, b"right", octets)


def test_empty_secret_is_refused():
    with pytest.raises(AuthenticationError, match="shared secret is empty"):
        auth.psk_auth_data(PRF, b"", b"octets")


def test_certificate_authentication_end_to_end():
    """Responder side of §2.15 as the client checks it: validate the certificate, then verify
    AUTH over ResponderSignedOctets with the certificate's key (through payload encoding)."""
    pki = Pki()
    cert, key = pki.issue("vpn.example.org", key_kind="rsa2048")
    idr = IDr(*auth.identity_from_string("vpn.example.org"))
    octets = auth.signed_octets(b"IKE_SA_INIT response", b"Ni" * 16, PRF, b"\x01" * 32, idr)
    method, data = auth.Signer(key).sign(octets, auth.SUPPORTED_HASH_ALGORITHMS)
    first, encoded = encode_payloads([AUTH(method, data)])
    [received] = decode_payloads(first, encoded)
    auth.validate_certificate(cert, [], [pki.cert], (idr.id_type, idr.data), NOW)
    auth.verify_auth(received, octets, cert)
    with pytest.raises(AuthenticationError):
        other_octets = auth.signed_octets(b"IKE_SA_INIT response", b"Ni" * 16, PRF,
                                          b"\x02" * 32, idr)
        auth.verify_auth(received, other_octets, cert)
