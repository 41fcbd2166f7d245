"""EAP-TTLS AVPs (RFC 5281 §10.1), EAP-GTC (RFC 3748 §5.6) and choosing among the methods a
profile allows (RFC 3748 §5.3.1). The TTLS tunnel itself runs against strongSwan's eap-ttls
server in tests/interop/test_enterprise_eap_strongswan.py."""

import pytest

from ike.eap import EapClient, EapCode, EapError, EapPacket, EapType
from ike.eap_tunnel import AVP_EAP_MESSAGE, decode_avps, encode_avp


def request(kind, data=b"", identifier=7):
    return EapPacket(EapCode.REQUEST, identifier, kind, data).encode()


def test_avp_round_trip_pads_to_four_octets_and_length_excludes_padding():
    avp = encode_avp(AVP_EAP_MESSAGE, b"abcde")
    assert len(avp) == 16 and avp[5:8] == (13).to_bytes(3, "big") and avp[4] == 0x40
    vendor = encode_avp(11, b"x" * 16, vendor=311)
    assert vendor[4] == 0xC0 and len(vendor) == 28
    assert decode_avps(avp + vendor) == [(79, None, b"abcde"), (11, 311, b"x" * 16)]


@pytest.mark.parametrize("bad", [b"\x00\x00\x00\x4f\x40\x00\x00\x20abc", b"\x00\x00"])
def test_truncated_avps_are_refused(bad):
    with pytest.raises(EapError):
        decode_avps(bad)


def test_gtc_answers_the_prompt_with_the_password_and_success_completes():
    client = EapClient("gtc", "carol", password="pässword")
    reply = EapPacket.decode(client.respond(request(EapType.GTC, b"Password: ")))
    assert (reply.code, reply.type, reply.data) == (EapCode.RESPONSE, EapType.GTC,
                                                    "pässword".encode())
    assert client.respond(EapPacket(EapCode.SUCCESS, 8).encode()) is None
    assert client.succeeded and client.msk == b""


def test_server_chooses_among_the_allowed_methods():
    client = EapClient(["ttls", "mschapv2", "gtc"], "carol", password="pw")
    nak = EapPacket.decode(client.respond(request(EapType.MD5_CHALLENGE, b"\x01x")))
    assert nak.type == EapType.NAK and list(nak.data) == [21, 26, 6]
    gtc = EapPacket.decode(client.respond(request(EapType.GTC, b"")))
    assert gtc.type == EapType.GTC and client.method.type == EapType.GTC
    # once a method runs, another one may not start (a Nak only answers the first request)
    assert client.respond(request(EapType.MSCHAPV2, b"\x01\x00\x00\x05x")) is None
    assert "in the middle of GTC" in client.failure_reason


def test_failure_after_refusing_every_proposal_names_them():
    client = EapClient(["mschapv2"], "carol", password="pw")
    client.respond(request(EapType.GTC, b""))
    client.respond(EapPacket(EapCode.FAILURE, 8).encode())
    assert "proposed only EAP-GTC, which the profile does not allow" in client.failure_reason


def test_ttls_without_a_server_name_is_a_configuration_error():
    client = EapClient("ttls", "carol", password="pw", tunnel=None)
    assert client.respond(request(EapType.TTLS, b"\x20")) is None
    assert "name the EAP server's certificate must carry" in client.failure_reason


# PEAPv0 (draft-kamath-pppext-peapv0, MS-PEAP): inner packets and the Result TLV

def test_peap_inner_packets_without_header_get_the_outer_identifier():
    from ike.eap_tunnel import PeapMethod

    md5 = PeapMethod._full_inner_packet(b"\x04\x01x", 9)
    assert (md5.code, md5.identifier, md5.type, md5.data) == (EapCode.REQUEST, 9, 4, b"\x01x")
    # FreeRADIUS sends its first Identity request whole, and EAP-TLV packets keep the header
    whole = PeapMethod._full_inner_packet(b"\x01\x05\x00\x05\x01", 9)
    assert (whole.identifier, whole.type) == (5, EapType.IDENTITY)
    tlv = PeapMethod._full_inner_packet(b"\x01\x06\x00\x0b\x21\x80\x03\x00\x02\x00\x01", 9)
    assert (tlv.identifier, tlv.type, tlv.data) == (6, EapType.TLV, b"\x80\x03\x00\x02\x00\x01")


def test_peap_tlvs():
    from ike.eap_tunnel import TLV_RESULT, decode_tlvs, encode_tlv

    assert encode_tlv(TLV_RESULT, b"\x00\x01") == b"\x80\x03\x00\x02\x00\x01"
    assert decode_tlvs(b"\x80\x03\x00\x02\x00\x01\x00\x0c\x00\x00") == [(3, b"\x00\x01"),
                                                                      (12, b"")]
    with pytest.raises(EapError):
        decode_tlvs(b"\x80\x03\x00\x04\x00\x01")
