"""RFC 5903: ECP groups 19/20/21 in IKEv2. KE data is x ‖ y (each coordinate padded to the
field size, no SEC 1 prefix, §7); the shared secret is the x coordinate of the common point.
RFC 6989 §2.3: a peer value must be a point on the curve.

Known answers: RFC 5903 §8.1 (P-256) and §8.2 (P-384); for P-521, the ECDH vector of RFC 5114
Appendix A.6 (the same curve, IKE group 21).
"""

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ike import keyexchange
from ike.constants import KeId
from ike.keyexchange import KeyExchangeError, make_key_exchange, public_value_size, respond


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


VECTORS = {
    KeId.ECP_256: dict(  # RFC 5903 §8.1
        curve=ec.SECP256R1(),
        i="C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
        gi="DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180"
           "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
        gr="D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63"
           "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
        r="C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
        girx="D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
    ),
    KeId.ECP_384: dict(  # RFC 5903 §8.2
        curve=ec.SECP384R1(),
        i="099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655"
          "E35B5380 41E649EE 3FAEF896 783AB194",
        gi="667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6"
           "DE3AC808 ACB4BDB4 C88732AE E95F41AA"
           "9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E"
           "EB9FCFF3 C2C947DA E69B4C63 4573A81C",
        gr="E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D"
           "0D1AC43A 0336DEF9 6FDA41D0 774A3571"
           "DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF"
           "F83FA401 42209DFF 5EAAD96D B9E6386C",
        r=None,
        girx="11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4"
             "D6031355 69B9E9D0 9CF5D4A2 70F59746",
    ),
    KeId.ECP_521: dict(  # RFC 5114 Appendix A.6
        curve=ec.SECP521R1(),
        i="0113f82da825735e3d97276683b2b74277bad27335ea71664af2430cc4f33459b9669ee78b3ffb9b"
          "8683015d344dcbfef6fb9af4c6c470be254516cd3c1a1fb47362",
        gi="01ebb34dd75721abf8adc9dbed17889cbb9765d90a7c60f2cef007bb0f2b26e14881fd4442e689d6"
           "1cb2dd046ee30e3ffd20f9a45bbdf6413d583a2dbf59924fd35c00f6b632d194c0388e22d8437e55"
           "8c552ae195adfd153f92d74908351b2f8c4eda94edb0916d1b53c020b5eecaed1a5fc38a233e4830"
           "587bb2ee3489b3b42a5a86a4",
        gr="010ebfafc6e85e08d24bfffcc1a4511db0e634beeb1b6dec8c5939ae44766201af6200430ba97c8a"
           "c6a0e9f08b33ce7e9feeb5ba4ee5e0d81510c24295b8a08d023500a4a6ec300df9e257b0372b5e7a"
           "bfef093436719a77887ebb0b18cf8099b9f4212b6e30a1419c18e029d36863cc9d448f4dba4d2a0e"
           "60711be572915fbd4fef2695",
        r="00cee3480d8645a17d249f2776d28bae616952d1791fdb4b70f7c3378732aa1b22928448bcd1dc24"
          "96d435b01048066ebe4f72903c361b1a9dc1193dc2c9d0891b96",
        girx="00cdea89621cfa46b132f9e4cfe2261cde2d4368eb5656634c7cc98c7a00cde54ed1866a0dd3e6"
             "126c9d2f845daff82ceb1da08f5d87521bb0ebeca77911169c20cc",
    ),
}


def exchange_with_private(group, private_hex):
    private_key = ec.derive_private_key(int.from_bytes(h(private_hex), "big"), VECTORS[group]["curve"])
    return keyexchange._EcpExchange(group, private_key)


@pytest.mark.parametrize("group", list(VECTORS))
def test_known_answer_initiator(group):
    vector = VECTORS[group]
    initiator = exchange_with_private(group, vector["i"])
    assert initiator.public_bytes() == h(vector["gi"])  # x ‖ y, no 0x04 prefix
    assert initiator.shared_secret(h(vector["gr"])) == h(vector["girx"])


@pytest.mark.parametrize("group", [g for g, v in VECTORS.items() if v["r"]])
def test_known_answer_responder(group):
    vector = VECTORS[group]
    responder = exchange_with_private(group, vector["r"])
    assert responder.public_bytes() == h(vector["gr"])
    assert responder.shared_secret(h(vector["gi"])) == h(vector["girx"])


@pytest.mark.parametrize("group,public_size,secret_size", [
    (KeId.ECP_256, 64, 32), (KeId.ECP_384, 96, 48), (KeId.ECP_521, 132, 66),
])
def test_round_trip_and_sizes(group, public_size, secret_size):
    initiator = make_key_exchange(group)
    assert initiator.group == group
    assert len(initiator.public_bytes()) == public_size == public_value_size(group)
    responder_public, responder_secret = respond(group, initiator.public_bytes())
    secret = initiator.shared_secret(responder_public)
    assert secret == responder_secret and len(secret) == secret_size


@pytest.mark.parametrize("group", list(VECTORS))
def test_point_not_on_curve_is_rejected(group):
    bad = bytearray(h(VECTORS[group]["gr"]))
    bad[-1] ^= 1  # y changed: (x, y') is not on the curve
    with pytest.raises(KeyExchangeError, match=f"{group.name} peer public value is not a point on the curve"):
        make_key_exchange(group).shared_secret(bytes(bad))


@pytest.mark.parametrize("group", list(VECTORS))
def test_all_zero_value_is_rejected(group):
    """(0, 0) stands in for the point at infinity in some encodings; it is not on the curve."""
    with pytest.raises(KeyExchangeError, match="not a point on the curve"):
        make_key_exchange(group).shared_secret(bytes(public_value_size(group)))


def test_coordinate_not_below_p_is_rejected():
    """RFC 6989 §2.3: coordinates must be smaller than p; x = p is an alias of x = 0."""
    p = 2**256 - 2**224 + 2**192 + 2**96 - 1
    value = p.to_bytes(32, "big") + h(VECTORS[KeId.ECP_256]["gr"])[32:]
    with pytest.raises(KeyExchangeError, match="not a point on the curve"):
        make_key_exchange(KeId.ECP_256).shared_secret(value)


@pytest.mark.parametrize("length", [0, 63, 65])
def test_wrong_length_is_rejected(length):
    with pytest.raises(KeyExchangeError, match=f"ECP_256 peer public value must be 64 bytes, got {length}"):
        make_key_exchange(KeId.ECP_256).shared_secret(bytes(length))


def test_sec1_encoding_is_not_accepted():
    """A peer that sends 0x04 ‖ x ‖ y is non-conforming; the 65 bytes are refused."""
    value = b"\x04" + h(VECTORS[KeId.ECP_256]["gr"])
    with pytest.raises(KeyExchangeError, match="must be 64 bytes, got 65"):
        make_key_exchange(KeId.ECP_256).shared_secret(value)


def test_repr_names_group_only():
    assert repr(make_key_exchange(KeId.ECP_384)) == "<_EcpExchange ECP_384>"
