"""EAP (RFC 3748): packet codec (§4), Identity (§5.1), Notification (§5.2), Nak (§5.3.1),
MD5-Challenge (§5.4) and the client's reaction to Success/Failure (§4.2)."""

import hashlib

import pytest

from ike.eap import (EapClient, EapCode, EapError, EapPacket, EapType, md5_challenge_response)
from tests.ike.eap_server import EapServer


# --- codec ------------------------------------------------------------------------------------

def test_request_and_response_round_trip():
    packet = EapPacket(EapCode.REQUEST, 42, EapType.IDENTITY, b"")
    assert packet.encode() == bytes.fromhex("012a000501")
    assert EapPacket.decode(packet.encode()) == packet
    response = EapPacket(EapCode.RESPONSE, 42, EapType.IDENTITY, b"carol")
    assert EapPacket.decode(response.encode()) == response
    assert response.encode()[2:4] == (10).to_bytes(2, "big")


def test_success_and_failure_are_four_octets():
    assert EapPacket(EapCode.SUCCESS, 9).encode() == bytes.fromhex("03090004")
    assert EapPacket.decode(bytes.fromhex("04090004")) == EapPacket(EapCode.FAILURE, 9)


def test_octets_beyond_length_are_padding():
    assert EapPacket.decode(bytes.fromhex("0101000601ff") + b"padding") == \
        EapPacket(EapCode.REQUEST, 1, EapType.IDENTITY, b"\xff")


def test_unknown_method_type_is_kept_as_number():
    assert EapPacket.decode(bytes.fromhex("0101000663ab")).type == 99


@pytest.mark.parametrize("data, words", [
    (b"\x01\x01\x00", "shorter than its header"),
    (bytes.fromhex("01010009 01"), "length field 9 does not fit the 5 octets"),
    (bytes.fromhex("01010003"), "length field 3"),
    (bytes.fromhex("07010004"), "unknown EAP code 7"),
    (bytes.fromhex("01010004"), "REQUEST without a Type field"),
])
def test_malformed_packets(data, words):
    with pytest.raises(EapError, match=words):
        EapPacket.decode(data)


# --- client behaviour -------------------------------------------------------------------------

def test_identity_request_gets_our_identity():
    client = EapClient("md5", "carol@example.org", password="pw")
    reply = client.respond(EapPacket(EapCode.REQUEST, 5, EapType.IDENTITY, b"hello").encode())
    assert EapPacket.decode(reply) == EapPacket(EapCode.RESPONSE, 5, EapType.IDENTITY,
                                                b"carol@example.org")


def test_notification_gets_an_empty_response():
    client = EapClient("md5", "carol", password="pw")
    reply = client.respond(EapPacket(EapCode.REQUEST, 6, EapType.NOTIFICATION,
                                     b"Password expires soon").encode())
    assert EapPacket.decode(reply) == EapPacket(EapCode.RESPONSE, 6, EapType.NOTIFICATION, b"")
    assert not client.done


@pytest.mark.parametrize("ours, expected", [("md5", 4), ("mschapv2", 26), ("tls", 13)])
def test_other_method_is_naked_with_ours(ours, expected):
    tls = None
    if ours == "tls":
        from ike.eap import TlsClientConfig
        tls = TlsClientConfig(object(), object(), (), "vpn.example.org")
    client = EapClient(ours, "carol", password="pw", tls=tls)
    proposal = EapType.MSCHAPV2 if ours != "mschapv2" else EapType.MD5_CHALLENGE
    reply = client.respond(EapPacket(EapCode.REQUEST, 3, proposal, b"\x10" + bytes(16)).encode())
    assert EapPacket.decode(reply) == EapPacket(EapCode.RESPONSE, 3, EapType.NAK,
                                                bytes([expected]))


def test_server_switches_method_after_nak():
    client = EapClient("md5", "carol", password="pw")
    server = EapServer("mschapv2", users={"carol": "pw"})
    request = server.start()
    while not server.done:
        request = server.process(client.respond(request))
    client.respond(request)
    assert server.method == "md5" and client.succeeded and server.succeeded


def test_md5_challenge_response_value():
    challenge = bytes(range(16))
    expected = hashlib.md5(b"\x07" + b"secret" + challenge).digest()
    assert md5_challenge_response(7, "secret", challenge) == expected
    client = EapClient("md5", "carol", password="secret")
    request = EapPacket(EapCode.REQUEST, 7, EapType.MD5_CHALLENGE,
                        bytes([16]) + challenge + b"gateway").encode()
    reply = EapPacket.decode(client.respond(request))
    assert reply.type == EapType.MD5_CHALLENGE
    assert reply.data == bytes([16]) + expected


@pytest.mark.parametrize("password, ok", [("secret", True), ("wrong", False)])
def test_md5_against_server(password, ok):
    client = EapClient("md5", "carol", password=password)
    server = EapServer("md5", users={"carol": "secret"})
    request = server.start()
    while not server.done:
        request = server.process(client.respond(request))
    assert client.respond(request) is None
    assert client.succeeded is ok and server.succeeded is ok
    assert client.msk == b""  # MD5 derives no MSK
    if not ok:
        assert client.failure_reason == ("the gateway rejected the EAP authentication "
                                         "(EAP-Failure; wrong user name or password?)")


def test_md5_with_empty_challenge_is_malformed():
    client = EapClient("md5", "carol", password="pw")
    request = EapPacket(EapCode.REQUEST, 1, EapType.MD5_CHALLENGE, b"\x00").encode()
    assert client.respond(request) is None
    assert client.failure_reason == ("malformed EAP message from the gateway: "
                                     "EAP-MD5 challenge is empty")


def test_success_before_the_method_ran_is_refused():
    client = EapClient("mschapv2", "carol", password="pw")
    assert client.respond(EapPacket(EapCode.SUCCESS, 1).encode()) is None
    assert not client.succeeded
    assert client.failure_reason == ("the gateway sent EAP-Success before the MSCHAPV2 "
                                     "method completed")


def test_nothing_more_is_sent_once_done():
    client = EapClient("md5", "carol", password="pw")
    client.respond(EapPacket(EapCode.FAILURE, 1).encode())
    assert client.done
    assert client.respond(EapPacket(EapCode.REQUEST, 2, EapType.IDENTITY).encode()) is None


def test_garbage_and_unexpected_codes_fail_in_plain_words():
    client = EapClient("md5", "carol", password="pw")
    assert client.respond(b"\x01") is None
    assert client.failure_reason.startswith("malformed EAP message from the gateway")
    client = EapClient("md5", "carol", password="pw")
    assert client.respond(EapPacket(EapCode.RESPONSE, 1, EapType.IDENTITY).encode()) is None
    assert "unexpected EAP RESPONSE" in client.failure_reason


def test_bad_configuration():
    with pytest.raises(ValueError, match="unknown EAP method 'pap'"):
        EapClient("pap", "carol")
    with pytest.raises(ValueError, match="EAP-TLS needs tls="):
        EapClient("tls", "carol")


def test_password_never_in_repr():
    client = EapClient("mschapv2", "carol", password="hunter2")
    assert "hunter2" not in repr(client)
    assert "carol" in repr(client)


def test_server_rejects_out_of_order_responses():
    server = EapServer("md5", users={"carol": "pw"})
    server.start()
    bad = EapPacket(EapCode.RESPONSE, 99, EapType.IDENTITY, b"carol").encode()
    assert EapPacket.decode(server.process(bad)).code == EapCode.FAILURE
    with pytest.raises(RuntimeError):
        server.process(bad)


def test_anonymous_outer_identity_and_no_password_method_outside_the_tunnel():
    """§5.1: the Identity response may be a privacy identity; the real one goes inside the
    PEAP/TTLS tunnel (RFC 5281 §7.3), so a password method proposed outside is Nak'ed."""
    from ike.eap_tunnel import TunnelConfig

    tunnel = TunnelConfig(trust_anchors=(), server_identity="radius.example.org")
    client = EapClient(["peap", "ttls", "mschapv2"], "carol@corp.example", password="pw",
                       tunnel=tunnel, outer_identity="anonymous@corp.example")
    reply = client.respond(EapPacket(EapCode.REQUEST, 1, EapType.IDENTITY, b"").encode())
    assert EapPacket.decode(reply).data == b"anonymous@corp.example"
    reply = EapPacket.decode(client.respond(
        EapPacket(EapCode.REQUEST, 2, EapType.MSCHAPV2, b"\x01\x02\x00\x20" + bytes(17)).encode()))
    assert reply.type == EapType.NAK and reply.data == bytes([EapType.PEAP, EapType.TTLS])
    # without an outer identity the same client would take MSCHAPv2 (and show the real name)
    plain = EapClient(["peap", "ttls", "mschapv2"], "carol@corp.example", password="pw",
                      tunnel=tunnel)
    reply = plain.respond(EapPacket(EapCode.REQUEST, 1, EapType.IDENTITY, b"").encode())
    assert EapPacket.decode(reply).data == b"carol@corp.example"
