"""Signature AUTH: RFC 7427 Digital Signature (method 14), the classic methods 1
(RFC 7296 §3.8) and 9/10/11 (RFC 4754), and the SIGNATURE_HASH_ALGORITHMS notify (§4)."""

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ike import auth
from ike.auth import AuthenticationError, Signer, verify_auth
from ike.constants import AuthMethod, HashAlgorithm
from ike.payloads import AUTH
from tests.ike.eap_server import Pki, make_key

OCTETS = b"InitiatorSignedOctets: RealMessage1 | NonceRData | MACedIDForI" * 3
ALL = auth.SUPPORTED_HASH_ALGORITHMS
KEYS = {kind: make_key(kind) for kind in ("rsa2048", "ec256", "ec384", "ec521", "ed25519")}

# RFC 7427 Appendix A encodings
SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
SHA512_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010d0500")
ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
ECDSA_WITH_SHA384 = bytes.fromhex("300a06082a8648ce3d040303")
ED25519 = bytes.fromhex("300506032b6570")


def algorithm_identifier(data: bytes) -> bytes:
    return data[1:1 + data[0]]


def tamper(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize("rsa_pss", [False, True])
@pytest.mark.parametrize("peer_hashes", [None, (), ALL, (HashAlgorithm.SHA2_512,
                                                         HashAlgorithm.IDENTITY)])
def test_every_signature_kind_verifies_and_tampering_fails(kind, rsa_pss, peer_hashes):
    key = KEYS[kind]
    signer = Signer(key, rsa_pss=rsa_pss)
    if kind == "ed25519" and not peer_hashes:
        with pytest.raises(AuthenticationError, match="does not accept EdDSA"):
            signer.sign(OCTETS, peer_hashes)
        return
    method, data = signer.sign(OCTETS, peer_hashes)
    payload = AUTH(method, data)
    verify_auth(payload, OCTETS, key.public_key())
    with pytest.raises(AuthenticationError, match="does not verify"):
        verify_auth(payload, OCTETS + b"x", key.public_key())
    with pytest.raises(AuthenticationError):
        verify_auth(AUTH(method, tamper(data)), OCTETS, key.public_key())
    other = make_key(kind)
    with pytest.raises(AuthenticationError, match="does not verify"):
        verify_auth(payload, OCTETS, other.public_key())


def test_rsa_uses_sha256_pkcs1_when_announced_and_method_1_otherwise():
    key = KEYS["rsa2048"]
    method, data = Signer(key).sign(OCTETS, ALL)
    assert method == AuthMethod.DIGITAL_SIGNATURE
    assert data[0] == len(SHA256_WITH_RSA) and algorithm_identifier(data) == SHA256_WITH_RSA
    assert len(data) == 1 + len(SHA256_WITH_RSA) + 256
    method, data = Signer(key).sign(OCTETS, (HashAlgorithm.SHA2_512,))
    assert algorithm_identifier(data) == SHA512_WITH_RSA
    # only SHA-1 announced, or no notify at all: classic RSA with SHA-1 (RFC 7296 §3.8)
    for peer in (None, (HashAlgorithm.SHA1,)):
        method, data = Signer(key).sign(OCTETS, peer)
        assert method == AuthMethod.RSA_DIGITAL_SIGNATURE and len(data) == 256
        key.public_key().verify(data, OCTETS, padding.PKCS1v15(), hashes.SHA1())


def test_rsa_pss_carries_explicit_parameters():
    key = KEYS["rsa2048"]
    _, data = Signer(key, rsa_pss=True).sign(OCTETS, ALL)
    identifier = algorithm_identifier(data)
    assert bytes.fromhex("06092a864886f70d01010a") in identifier  # id-RSASSA-PSS
    assert bytes.fromhex("06092a864886f70d010108") in identifier  # id-mgf1
    assert bytes.fromhex("0609608648016503040201") in identifier  # SHA-256
    assert identifier.endswith(bytes.fromhex("a203020120"))  # saltLength 32
    signature = data[1 + data[0]:]
    key.public_key().verify(signature, OCTETS, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                            hashes.SHA256())


def test_pss_parameters_from_a_peer_are_honoured():
    """A gateway may pick other PSS parameters (here SHA-384, MGF1-SHA-256, salt 20)."""
    key = KEYS["rsa2048"]
    der = auth._der
    sha384 = auth._algorithm_identifier("2.16.840.1.101.3.4.2.2", b"\x05\x00")
    sha256 = auth._algorithm_identifier("2.16.840.1.101.3.4.2.1", b"\x05\x00")
    params = der(0x30, der(0xA0, sha384)
                 + der(0xA1, auth._algorithm_identifier("1.2.840.113549.1.1.8", sha256))
                 + der(0xA2, der(0x02, b"\x14")))
    identifier = auth._algorithm_identifier("1.2.840.113549.1.1.10", params)
    signature = key.sign(OCTETS, padding.PSS(padding.MGF1(hashes.SHA256()), 20),
                         hashes.SHA384())
    payload = AUTH(AuthMethod.DIGITAL_SIGNATURE, bytes([len(identifier)]) + identifier + signature)
    verify_auth(payload, OCTETS, key.public_key())
    # absent parameters mean SHA-1 (RFC 4055 defaults), which we refuse
    bare = auth._algorithm_identifier("1.2.840.113549.1.1.10", der(0x30, b""))
    sha1_sig = key.sign(OCTETS, padding.PSS(padding.MGF1(hashes.SHA1()), 20), hashes.SHA1())
    with pytest.raises(AuthenticationError, match="SHA-1"):
        verify_auth(AUTH(14, bytes([len(bare)]) + bare + sha1_sig), OCTETS, key.public_key())


@pytest.mark.parametrize("kind, method, size, identifier", [
    ("ec256", AuthMethod.ECDSA_SHA256_P256, 64, ECDSA_WITH_SHA256),
    ("ec384", AuthMethod.ECDSA_SHA384_P384, 96, ECDSA_WITH_SHA384),
    ("ec521", AuthMethod.ECDSA_SHA512_P521, 132, None),
])
def test_ecdsa_classic_is_raw_r_s_and_rfc7427_is_der(kind, method, size, identifier):
    key = KEYS[kind]
    classic_method, raw = Signer(key).sign(OCTETS, None)
    assert classic_method == method and len(raw) == size
    m, data = Signer(key).sign(OCTETS, ALL)
    assert m == AuthMethod.DIGITAL_SIGNATURE
    if identifier:
        assert algorithm_identifier(data) == identifier  # hash matched to the curve
    decode_dss_signature(data[1 + data[0]:])  # DER ECDSA-Sig-Value


def test_ecdsa_falls_back_to_another_announced_hash():
    _, data = Signer(KEYS["ec256"]).sign(OCTETS, (HashAlgorithm.SHA2_384,))
    assert algorithm_identifier(data) == ECDSA_WITH_SHA384


def test_ed448_signs_and_verifies():
    key = ed448.Ed448PrivateKey.generate()
    method, data = Signer(key).sign(OCTETS, (HashAlgorithm.IDENTITY,))
    assert algorithm_identifier(data) == bytes.fromhex("300506032b6571")
    verify_auth(AUTH(method, data), OCTETS, key.public_key())
    with pytest.raises(AuthenticationError, match="signed with Ed448, but its certificate "
                                                  "holds a Ed25519 key"):
        verify_auth(AUTH(method, data), OCTETS, KEYS["ed25519"].public_key())
    with pytest.raises(AuthenticationError, match="holds a Ed448 key"):
        verify_auth(AUTH(*Signer(KEYS["ec256"]).sign(OCTETS, ALL)), OCTETS, key.public_key())


def test_long_der_lengths():
    assert auth._der(0x04, bytes(200))[:3] == b"\x04\x81\xc8"
    assert auth._der(0x04, bytes(300))[:4] == b"\x04\x82\x01\x2c"


def test_ed25519_identifier():
    _, data = Signer(KEYS["ed25519"]).sign(OCTETS, (HashAlgorithm.IDENTITY,))
    assert algorithm_identifier(data) == ED25519 and len(data) == 1 + 7 + 64


def test_verify_with_a_certificate():
    pki = Pki()
    cert, key = pki.issue("vpn.example.org", key_kind="ec384")
    method, data = Signer(key).sign(OCTETS, ALL)
    verify_auth(AUTH(method, data), OCTETS, cert)


def test_key_type_mismatch_is_explained():
    method, data = Signer(KEYS["ec256"]).sign(OCTETS, ALL)
    with pytest.raises(AuthenticationError, match="signed with ECDSA, but its certificate "
                                                  "holds a RSA-2048 key"):
        verify_auth(AUTH(method, data), OCTETS, KEYS["rsa2048"].public_key())
    method, data = Signer(KEYS["ec256"]).sign(OCTETS, None)
    with pytest.raises(AuthenticationError, match="holds an ECDSA secp384r1 key"):
        verify_auth(AUTH(method, data), OCTETS, KEYS["ec384"].public_key())
    with pytest.raises(AuthenticationError, match="holds a Ed25519 key"):
        verify_auth(AUTH(method, data), OCTETS, KEYS["ed25519"].public_key())
    method, data = Signer(KEYS["rsa2048"]).sign(OCTETS, None)
    with pytest.raises(AuthenticationError, match="RSA \\(method 1\\).*ECDSA secp256r1"):
        verify_auth(AUTH(method, data), OCTETS, KEYS["ec256"].public_key())
    method, data = Signer(KEYS["ed25519"]).sign(OCTETS, ALL)
    with pytest.raises(AuthenticationError, match="signed with Ed25519"):
        verify_auth(AUTH(method, data), OCTETS, KEYS["ec256"].public_key())


def test_classic_ecdsa_with_wrong_length_fails():
    with pytest.raises(AuthenticationError, match="does not verify"):
        verify_auth(AUTH(AuthMethod.ECDSA_SHA256_P256, bytes(63)), OCTETS,
                    KEYS["ec256"].public_key())


def test_sha1_in_rfc7427_is_refused():
    key = KEYS["ec256"]
    identifier = auth._algorithm_identifier("1.2.840.10045.4.1")  # ecdsa-with-SHA1
    signature = key.sign(OCTETS, ec.ECDSA(hashes.SHA1()))
    with pytest.raises(AuthenticationError, match="signed with SHA-1"):
        verify_auth(AUTH(14, bytes([len(identifier)]) + identifier + signature), OCTETS,
                    key.public_key())


@pytest.mark.parametrize("data, words", [
    (b"", "AUTH payload is empty"),
    (b"\x05\x30\x03\x02\x01\x00sig", "malformed: AlgorithmIdentifier does not start with an OID"),
    (b"\x03\x04\x01\x00sig", "malformed: AlgorithmIdentifier is not a SEQUENCE"),
    (b"\x09\x30\x07\x06\x05\x2b\x0e\x03\x02\x1asig", "unsupported signature algorithm 1.3.14"),
    (b"\x20\x30\x10\x06", "malformed: truncated"),
])
def test_malformed_digital_signature_payloads(data, words):
    with pytest.raises(AuthenticationError, match=words):
        verify_auth(AUTH(AuthMethod.DIGITAL_SIGNATURE, data), OCTETS, KEYS["ec256"].public_key())


def test_pss_with_unsupported_mask_or_hash():
    der = auth._der
    bad_mgf = auth._algorithm_identifier(
        "1.2.840.113549.1.1.10",
        der(0x30, der(0xA1, auth._algorithm_identifier("1.2.3.4"))))
    with pytest.raises(AuthenticationError, match="unsupported PSS mask generation"):
        verify_auth(AUTH(14, bytes([len(bad_mgf)]) + bad_mgf + b"s"), OCTETS,
                    KEYS["rsa2048"].public_key())
    bad_hash = auth._algorithm_identifier(
        "1.2.840.113549.1.1.10",
        der(0x30, der(0xA0, auth._algorithm_identifier("1.2.3.4"))))
    with pytest.raises(AuthenticationError, match="unsupported hash algorithm 1.2.3.4"):
        verify_auth(AUTH(14, bytes([len(bad_hash)]) + bad_hash + b"s"), OCTETS,
                    KEYS["rsa2048"].public_key())
    not_sequence = auth._algorithm_identifier("1.2.840.113549.1.1.10", b"\x05\x01\x00")
    with pytest.raises(AuthenticationError, match="parameters are not a SEQUENCE"):
        verify_auth(AUTH(14, bytes([len(not_sequence)]) + not_sequence + b"s"), OCTETS,
                    KEYS["rsa2048"].public_key())


def test_methods_that_are_not_signatures():
    with pytest.raises(AuthenticationError, match="pre-shared key where a certificate"):
        verify_auth(AUTH(AuthMethod.SHARED_KEY_MIC, b"x"), OCTETS, KEYS["ec256"].public_key())
    with pytest.raises(AuthenticationError, match="used DSS_DIGITAL_SIGNATURE, which we do not"):
        verify_auth(AUTH(AuthMethod.DSS_DIGITAL_SIGNATURE, b"x"), OCTETS,
                    KEYS["ec256"].public_key())
    with pytest.raises(AuthenticationError, match="authentication method 200"):
        verify_auth(AUTH(200, b"x"), OCTETS, KEYS["ec256"].public_key())


def test_signer_refuses_unusable_keys():
    with pytest.raises(TypeError, match="cannot sign with a"):
        Signer(dsa.generate_private_key(2048))
    with pytest.raises(TypeError, match="secp256k1 is not usable"):
        Signer(ec.generate_private_key(ec.SECP256K1()))
    assert "private_key" not in repr(Signer(KEYS["ec256"]))


def test_hash_algorithm_notify_codec():
    data = auth.encode_hash_algorithms()
    assert data == bytes.fromhex("0002000300040005")
    assert auth.decode_hash_algorithms(data) == ALL
    assert auth.decode_hash_algorithms(b"\x00\x02\x01\x00") == (HashAlgorithm.SHA2_256, 256)
    with pytest.raises(AuthenticationError, match="odd length"):
        auth.decode_hash_algorithms(b"\x00\x02\x00")
