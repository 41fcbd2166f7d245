"""RFC 3526 MODP groups 14–18 in IKEv2: KE data and g^ir are padded to the length of the
prime (RFC 7296 §3.4, §2.14); peer values must satisfy 1 < y < p-1 (RFC 6989 §2.1).

The primes in ike/keyexchange.py are checked against the RFC's own definition,
p = 2^N - 2^(N-64) - 1 + 2^64 * (floor(2^(N-130) * pi) + k), with pi computed here.
"""

import warnings

import pytest

from ike import keyexchange
from ike.constants import KeId
from ike.keyexchange import KeyExchangeError, make_key_exchange, public_value_size, respond

# RFC 3526 §2–§7: bits and the offset k of each prime
DEFINITIONS = {
    KeId.MODP_2048: (2048, 124476),
    KeId.MODP_3072: (3072, 1690314),
    KeId.MODP_4096: (4096, 240904),
    KeId.MODP_6144: (6144, 929484),
    KeId.MODP_8192: (8192, 4743158),
}


def floor_pi_times_two_to(bits: int) -> int:
    """floor(pi * 2^bits) by Machin's formula in fixed point (with guard bits)."""
    guard = 64
    one = 1 << (bits + guard)

    def arctan_inverse(x: int) -> int:
        total = term = one // x
        n, sign = 1, -1
        while term:
            term //= x * x
            total += sign * (term // (2 * n + 1))
            sign, n = -sign, n + 1
        return total

    return (16 * arctan_inverse(5) - 4 * arctan_inverse(239)) >> guard


@pytest.mark.parametrize("group", list(DEFINITIONS))
def test_primes_match_rfc3526_definition(group):
    bits, k = DEFINITIONS[group]
    expected = 2**bits - 2 ** (bits - 64) - 1 + 2**64 * (floor_pi_times_two_to(bits - 130) + k)
    assert keyexchange._modp_group(group).p == expected


@pytest.mark.parametrize("group", [KeId.MODP_2048, KeId.MODP_3072, KeId.MODP_4096])
def test_round_trip(group):
    bits = DEFINITIONS[group][0]
    initiator = make_key_exchange(group)
    public = initiator.public_bytes()
    assert len(public) == bits // 8 == public_value_size(group)
    responder_public, responder_secret = respond(group, public)
    secret = initiator.shared_secret(responder_public)
    assert secret == responder_secret
    assert len(secret) == bits // 8


def test_round_trip_8192_and_parameters_are_shared():
    a, b = make_key_exchange(KeId.MODP_8192), make_key_exchange(KeId.MODP_8192)
    assert a._params is b._params  # built once per group
    assert a.shared_secret(b.public_bytes()) == b.shared_secret(a.public_bytes())


def test_against_independent_computation():
    """g^ir computed with Python integers from both private exponents agrees."""
    a, b = make_key_exchange(KeId.MODP_2048), make_key_exchange(KeId.MODP_2048)
    p = keyexchange._modp_group(KeId.MODP_2048).p
    x_a = a._private.private_numbers().x
    y_b = int.from_bytes(b.public_bytes(), "big")
    assert a.shared_secret(b.public_bytes()) == pow(y_b, x_a, p).to_bytes(256, "big")


def test_no_deprecation_warning_escapes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = make_key_exchange(KeId.MODP_3072)
        respond(KeId.MODP_3072, a.public_bytes())


P2048 = keyexchange._modp_group(KeId.MODP_2048).p


@pytest.mark.parametrize("name,value", [
    ("zero", 0), ("one", 1), ("p-1", P2048 - 1), ("p", P2048), ("p+1", P2048 + 1),
    ("all ones", 2**2048 - 1),
])
def test_out_of_range_peer_values_are_rejected(name, value):
    with pytest.raises(KeyExchangeError, match=r"MODP_2048 peer public value is out of range \(must be 1 < y < p-1\)"):
        make_key_exchange(KeId.MODP_2048).shared_secret(value.to_bytes(256, "big"))


def test_smallest_and_largest_valid_values_are_accepted():
    ke = make_key_exchange(KeId.MODP_2048)
    assert len(ke.shared_secret((2).to_bytes(256, "big"))) == 256
    assert len(ke.shared_secret((P2048 - 2).to_bytes(256, "big"))) == 256


@pytest.mark.parametrize("length", [0, 255, 257, 384])
def test_wrong_length_is_rejected(length):
    with pytest.raises(KeyExchangeError, match=f"MODP_2048 peer public value must be 256 bytes, got {length}"):
        make_key_exchange(KeId.MODP_2048).shared_secret(b"\x05" * length)


def test_library_rejection_is_reported_plainly(monkeypatch):
    ke = make_key_exchange(KeId.MODP_2048)

    class Refusing:
        def exchange(self, peer):
            raise ValueError("Error computing shared key.")

    monkeypatch.setattr(ke, "_private", Refusing())
    with pytest.raises(KeyExchangeError, match="MODP_2048 peer public value was rejected: Error computing"):
        ke.shared_secret((5).to_bytes(256, "big"))


def test_short_shared_secret_is_left_padded(monkeypatch):
    """RFC 7296 §2.14: g^ir is padded with zeros to the length of the modulus."""
    ke = make_key_exchange(KeId.MODP_2048)

    class Short:
        def exchange(self, peer):
            return b"\x01" * 255

    monkeypatch.setattr(ke, "_private", Short())
    assert ke.shared_secret((5).to_bytes(256, "big")) == b"\0" + b"\x01" * 255


@pytest.mark.parametrize("group,name", [
    (KeId.MODP_1024, "MODP_1024"), (KeId.MODP_2048_256, "MODP_2048_256"), (99, "group 99"),
])
def test_unsupported_groups(group, name):
    with pytest.raises(KeyExchangeError, match=f"unsupported key exchange method {name}"):
        make_key_exchange(group)
    with pytest.raises(KeyExchangeError, match=f"unsupported key exchange method {name}"):
        public_value_size(group)
