"""RFC 8031: Curve25519 (group 31) and Curve448 (group 32) in IKEv2. KE data is the 32/56-byte
u-coordinate; an all-zero shared secret (low-order peer point) MUST be rejected (§2.3).

Known answers: RFC 7748 §6.1 and §6.2 Diffie-Hellman vectors.
"""

import pytest
from cryptography.hazmat.primitives.asymmetric import x448, x25519

from ike import keyexchange
from ike.constants import KeId
from ike.keyexchange import KeyExchangeError, make_key_exchange, public_value_size, respond

VECTORS = {
    KeId.CURVE25519: dict(  # RFC 7748 §6.1
        private_cls=x25519.X25519PrivateKey,
        a="77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        a_pub="8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        b="5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        b_pub="de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
        k="4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
    ),
    KeId.CURVE448: dict(  # RFC 7748 §6.2
        private_cls=x448.X448PrivateKey,
        a="9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf5"
          "74a9419744897391006382a6f127ab1d9ac2d8c0a598726b",
        a_pub="9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bb"
              "c836647241d953d40c5b12da88120d53177f80e532c41fa0",
        b="1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120"
          "bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d",
        b_pub="3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972"
              "fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609",
        k="07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56"
          "fd2464c335543936521c24403085d59a449a5037514a879d",
    ),
}


def exchange(group, private_hex):
    private = VECTORS[group]["private_cls"].from_private_bytes(bytes.fromhex(private_hex))
    return keyexchange._MontgomeryExchange(group, private)


@pytest.mark.parametrize("group", list(VECTORS))
def test_rfc7748_vectors_both_ways(group):
    v = VECTORS[group]
    alice, bob = exchange(group, v["a"]), exchange(group, v["b"])
    assert alice.public_bytes().hex() == v["a_pub"]
    assert bob.public_bytes().hex() == v["b_pub"]
    assert alice.shared_secret(bytes.fromhex(v["b_pub"])).hex() == v["k"]
    assert bob.shared_secret(bytes.fromhex(v["a_pub"])).hex() == v["k"]


@pytest.mark.parametrize("group,size", [(KeId.CURVE25519, 32), (KeId.CURVE448, 56)])
def test_round_trip(group, size):
    initiator = make_key_exchange(group)
    assert len(initiator.public_bytes()) == size == public_value_size(group)
    public, secret = respond(group, initiator.public_bytes())
    assert initiator.shared_secret(public) == secret
    assert len(secret) == size


# Points of small order give an all-zero result (RFC 7748 §6, RFC 8031 §2.3).
LOW_ORDER = {
    KeId.CURVE25519: [
        bytes(32),                                   # u = 0
        (1).to_bytes(32, "little"),                  # u = 1
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        (2**255 - 19).to_bytes(32, "little"),        # u = p, i.e. 0 again
    ],
    KeId.CURVE448: [bytes(56), (1).to_bytes(56, "little")],
}


@pytest.mark.parametrize("group,peer", [(g, p) for g, points in LOW_ORDER.items() for p in points])
def test_low_order_points_are_rejected(group, peer):
    with pytest.raises(KeyExchangeError, match=f"{group.name} peer public value is a low-order point"):
        make_key_exchange(group).shared_secret(peer)


def test_all_zero_result_rejected_even_if_the_library_returned_it(monkeypatch):
    """Our own check does not depend on OpenSSL refusing the exchange."""
    ke = make_key_exchange(KeId.CURVE25519)
    monkeypatch.setattr(ke, "_private", type("Fake", (), {"exchange": lambda self, peer: bytes(32)})())
    with pytest.raises(KeyExchangeError, match="all-zero shared secret"):
        ke.shared_secret(bytes.fromhex(VECTORS[KeId.CURVE25519]["b_pub"]))


@pytest.mark.parametrize("group,length,expected", [
    (KeId.CURVE25519, 31, 32), (KeId.CURVE25519, 33, 32), (KeId.CURVE448, 32, 56),
])
def test_wrong_length(group, length, expected):
    with pytest.raises(KeyExchangeError, match=f"{group.name} peer public value must be {expected} bytes, got {length}"):
        make_key_exchange(group).shared_secret(bytes([9]) * length)
