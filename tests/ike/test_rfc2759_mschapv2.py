"""MS-CHAPv2: RFC 2759 §9.2 test vectors, RFC 3079 §3.5.3 key derivation, MD4 (RFC 1320
§A.5), and EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2) against the test server."""

import pytest

from ike import mschapv2
from ike.eap import (EapClient, EapCode, EapPacket, EapType, MsChapV2OpCode, decode_mschapv2,
                     encode_mschapv2, parse_mschapv2_message)
from tests.ike.eap_server import EapServer

# RFC 2759 §9.2
USER = "User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE = bytes.fromhex("D02E4386BCE91226")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
AUTHENTICATOR_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
# RFC 3079 §3.5.3 (same inputs)
MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
SEND_START_KEY_128 = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")


@pytest.mark.parametrize("message, digest", [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "043f8582f241db351ce627e153e7f0e4"),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
])
def test_md4_rfc1320_suite(message, digest):
    assert mschapv2.md4(message).hex() == digest


def test_rfc2759_vectors():
    assert mschapv2.nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert mschapv2.hash_nt_password_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH
    assert mschapv2.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE
    assert mschapv2.challenge_response(CHALLENGE, PASSWORD_HASH) == NT_RESPONSE
    assert mschapv2.generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER,
                                         PASSWORD) == NT_RESPONSE
    assert mschapv2.generate_authenticator_response(
        PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER) == AUTHENTICATOR_RESPONSE


def test_check_authenticator_response():
    assert mschapv2.check_authenticator_response(AUTHENTICATOR_RESPONSE,
                                                 AUTHENTICATOR_RESPONSE.lower())
    assert not mschapv2.check_authenticator_response(AUTHENTICATOR_RESPONSE,
                                                     AUTHENTICATOR_RESPONSE[:-1] + "7")


def test_domain_prefix_is_not_hashed():
    assert mschapv2.username_for_challenge("ACME\\User") == b"User"
    assert mschapv2.generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, "ACME\\User",
                                         PASSWORD) == NT_RESPONSE


def test_rfc3079_keys_and_strongswan_msk_layout():
    master = mschapv2.master_key(PASSWORD_HASH_HASH, NT_RESPONSE)
    assert master == MASTER_KEY
    # RFC 3079's example derives the server's send key (= the client's receive key)
    assert mschapv2.asymmetric_start_key(master, client_send=False) == SEND_START_KEY_128
    msk = mschapv2.msk(PASSWORD, NT_RESPONSE)
    assert len(msk) == 64
    assert msk[:16] == mschapv2.asymmetric_start_key(master, client_send=True)
    assert msk[16:32] == SEND_START_KEY_128
    assert msk[32:] == bytes(32)


# --- EAP framing ------------------------------------------------------------------------------

def challenge_request(identifier=7, mschapv2_id=7, challenge=AUTH_CHALLENGE) -> bytes:
    data = bytes([len(challenge)]) + challenge + b"strongSwan"
    return EapPacket(EapCode.REQUEST, identifier, EapType.MSCHAPV2,
                     encode_mschapv2(MsChapV2OpCode.CHALLENGE, mschapv2_id, data)).encode()


def success_request(message: bytes, identifier=8) -> bytes:
    return EapPacket(EapCode.REQUEST, identifier, EapType.MSCHAPV2,
                     encode_mschapv2(MsChapV2OpCode.SUCCESS, 7, message)).encode()


def rfc_client() -> EapClient:
    return EapClient("mschapv2", USER, password=PASSWORD, random_bytes=lambda n: PEER_CHALLENGE)


def test_response_packet_layout_with_rfc_values():
    client = rfc_client()
    response = EapPacket.decode(client.respond(challenge_request()))
    assert (response.code, response.identifier, response.type) == (EapCode.RESPONSE, 7,
                                                                    EapType.MSCHAPV2)
    opcode, mschapv2_id, data = decode_mschapv2(response.data)
    assert (opcode, mschapv2_id) == (MsChapV2OpCode.RESPONSE, 7)
    # MS-Length = EAP Length - 5
    assert int.from_bytes(response.data[2:4], "big") == len(response.encode()) - 5
    assert data[0] == 49
    assert data[1:17] == PEER_CHALLENGE and data[17:25] == bytes(8)
    assert data[25:49] == NT_RESPONSE and data[49] == 0 and data[50:] == b"User"


def test_success_with_correct_authenticator_gives_msk():
    client = rfc_client()
    client.respond(challenge_request())
    # strongSwan's Success message ends in a NUL and carries M=
    reply = client.respond(success_request(AUTHENTICATOR_RESPONSE.encode()
                                           + b" M=Welcome2strongSwan\x00"))
    assert EapPacket.decode(reply).data == bytes([MsChapV2OpCode.SUCCESS])
    assert client.msk == b""  # not before EAP-Success
    assert client.respond(EapPacket(EapCode.SUCCESS, 8).encode()) is None
    assert client.succeeded and client.failure_reason is None
    assert client.msk == mschapv2.msk(PASSWORD, NT_RESPONSE)


@pytest.mark.parametrize("message", [
    b"S=407A5589115FD0D6209F510FE9C04566932CDA57 M=hello",  # one bit off
    b"M=no authenticator at all",
    b"",
])
def test_wrong_server_authenticator_is_an_authentication_failure(message):
    client = rfc_client()
    client.respond(challenge_request())
    assert client.respond(success_request(message)) is None
    assert client.failure_reason == ("the gateway failed to prove it knows the password "
                                     "(wrong EAP-MSCHAPv2 authenticator response)")
    assert not client.succeeded
    assert client.respond(EapPacket(EapCode.SUCCESS, 8).encode()) is None
    assert not client.succeeded and client.msk == b""


def test_success_before_any_challenge_is_refused():
    client = rfc_client()
    assert client.respond(success_request(AUTHENTICATOR_RESPONSE.encode())) is None
    assert "wrong EAP-MSCHAPv2 authenticator response" in client.failure_reason


@pytest.mark.parametrize("message, reason", [
    (b"E=691 R=1 C=00000000000000000000000000000000 V=3 M=bad password",
     "wrong password (EAP-MSCHAPv2 error 691)"),
    (b"E=648 R=0 V=3", "the password has expired (EAP-MSCHAPv2 error 648)"),
    (b"E=12345 R=0", "authentication failed (EAP-MSCHAPv2 error 12345)"),
    (b"E=x", "authentication failed (EAP-MSCHAPv2 error 0)"),
])
def test_failure_request_is_answered_and_explained(message, reason):
    client = rfc_client()
    client.respond(challenge_request())
    request = EapPacket(EapCode.REQUEST, 8, EapType.MSCHAPV2,
                        encode_mschapv2(MsChapV2OpCode.FAILURE, 7, message)).encode()
    reply = EapPacket.decode(client.respond(request))
    assert reply.data == bytes([MsChapV2OpCode.FAILURE])  # Failure Response
    assert client.failure_reason == reason
    assert client.respond(EapPacket(EapCode.FAILURE, 8).encode()) is None
    assert client.failure_reason == reason  # EAP-Failure keeps the precise reason


def test_parse_mschapv2_message():
    assert parse_mschapv2_message(b"S=AB M=Welcome to  the VPN\x00") == {
        "S": "AB", "M": "Welcome to  the VPN"}
    assert parse_mschapv2_message(b"E=691 R=1 C=00 V=3") == {
        "E": "691", "R": "1", "C": "00", "V": "3"}


@pytest.mark.parametrize("type_data, words", [
    (encode_mschapv2(MsChapV2OpCode.CHALLENGE, 1, bytes([8]) + bytes(8) + b"x"),
     "challenge of 8 octets"),
    (encode_mschapv2(MsChapV2OpCode.CHALLENGE, 1, bytes([40]) + bytes(8)),
     "Value-Size exceeds"),
    (encode_mschapv2(MsChapV2OpCode.CHANGE_PASSWORD, 1, b""), "unexpected MS-CHAPv2 OpCode 7"),
    (b"\x01\x02", "shorter than its header"),
])
def test_malformed_mschapv2_requests(type_data, words):
    client = rfc_client()
    assert client.respond(EapPacket(EapCode.REQUEST, 1, EapType.MSCHAPV2, type_data).encode()) \
        is None
    assert client.failure_reason.startswith("malformed EAP message from the gateway")
    assert words in client.failure_reason


# --- against the test server ------------------------------------------------------------------

def converse(client: EapClient, server: EapServer) -> int:
    request, rounds = server.start(), 0
    while not server.done:
        response = client.respond(request)
        assert response is not None, client.failure_reason
        request = server.process(response)
        rounds += 1
    assert client.respond(request) is None
    return rounds


def test_full_exchange_with_server():
    client = EapClient("mschapv2", "carol", password="Sécret pässword")
    server = EapServer("mschapv2", users={"carol": "Sécret pässword"})
    assert converse(client, server) == 3  # Identity, Challenge, Success request
    assert client.succeeded and server.succeeded
    assert client.msk == server.msk and len(client.msk) == 64


def test_wrong_password_with_server():
    client = EapClient("mschapv2", "carol", password="guess")
    server = EapServer("mschapv2", users={"carol": "right"})
    converse(client, server)
    assert not client.succeeded and not server.succeeded
    assert client.failure_reason == "wrong password (EAP-MSCHAPv2 error 691)"
    assert client.msk == b""
