"""EAP-TLS (RFC 5216): fragmentation (§2.1.5, §3.1), the handshake in memory against a
pyOpenSSL server, the MSK (§2.3) and the server certificate check."""

import hashlib
import hmac

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from ike.eap import (TLS_FLAG_LENGTH, TLS_FLAG_MORE, TLS_FLAG_START, EapClient, EapCode,
                     EapError, EapPacket, EapType, TlsClientConfig, TlsReassembler,
                     parse_tls_type_data, tls_fragments)
from tests.ike.eap_server import NOW, EapServer, Pki, TlsServerConfig


# --- framing ----------------------------------------------------------------------------------

def test_small_message_is_one_packet_without_length():
    assert tls_fragments(b"hello", 10) == [b"\x00hello"]
    assert parse_tls_type_data(b"\x00hello") == (0, None, b"hello")


def test_fragments_carry_length_first_and_more_flags():
    message = bytes(range(256)) * 3  # 768 octets
    parts = tls_fragments(message, 300)
    assert len(parts) == 3
    flags, total, data = parse_tls_type_data(parts[0])
    assert flags == TLS_FLAG_LENGTH | TLS_FLAG_MORE and total == 768 and len(data) == 300
    assert parse_tls_type_data(parts[1])[:2] == (TLS_FLAG_MORE, None)
    assert parse_tls_type_data(parts[2])[:2] == (0, None)
    reassembler = TlsReassembler()
    results = [reassembler.add(*parse_tls_type_data(p)) for p in parts]
    assert results[:2] == [None, None] and results[2] == message
    assert not reassembler.in_progress


@pytest.mark.parametrize("parts, words", [
    ([b"\xc0\x00\x00\x00\x05abc", b"\x00defg"], "exceed the announced"),
    ([b"\xc0\x00\x00\x00\x09abc", b"\x00def"], "has 6 octets, announced 9"),
    ([b"\xc0\xff\xff\xff\xffabc"], "is too long"),
])
def test_reassembly_errors(parts, words):
    reassembler = TlsReassembler()
    with pytest.raises(EapError, match=words):
        for part in parts:
            reassembler.add(*parse_tls_type_data(part))


@pytest.mark.parametrize("type_data, words", [
    (b"", "without its Flags octet"),
    (b"\x80\x00\x01", "L flag but no TLS Message Length"),
])
def test_malformed_tls_type_data(type_data, words):
    with pytest.raises(EapError, match=words):
        parse_tls_type_data(type_data)


# --- handshake --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki():
    return Pki(key_kind="rsa2048")


@pytest.fixture(scope="module")
def server_credentials(pki):
    return pki.issue("vpn.example.org", key_kind="rsa3072")


@pytest.fixture(scope="module")
def client_credentials(pki):
    return pki.issue("carol@example.org", key_kind="rsa3072",
                     eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))


def make_pair(pki, server_credentials, client_credentials, *, client_fragment=1024,
              server_fragment=1024, identity="vpn.example.org", anchors=None, now=NOW):
    server = EapServer("tls", tls=TlsServerConfig(*server_credentials, client_ca=pki.cert),
                       fragment_size=server_fragment)
    client = EapClient("tls", "carol@example.org", tls=TlsClientConfig(
        *client_credentials, trust_anchors=anchors if anchors is not None else [pki.cert],
        server_identity=identity, fragment_size=client_fragment), now=now)
    return client, server


def converse(client, server):
    """Run until one side stops; returns the (request, response) pairs exchanged."""
    log, request = [], server.start()
    while not server.done:
        response = client.respond(request)
        log.append((request, response))
        if response is None:
            return log
        request = server.process(response)
    log.append((request, client.respond(request)))
    return log


def tls_flags(packet: bytes):
    decoded = EapPacket.decode(packet)
    if decoded.type != EapType.TLS:
        return None
    return parse_tls_type_data(decoded.data)[0]


def test_full_handshake_with_fragmentation_both_ways(pki, server_credentials,
                                                     client_credentials):
    client, server = make_pair(pki, server_credentials, client_credentials,
                               client_fragment=300, server_fragment=400)
    log = converse(client, server)
    assert client.succeeded and server.succeeded, (client.failure_reason,
                                                   server.failure_reason)
    assert len(client.msk) == 64 and client.msk == server.msk
    requests = [tls_flags(req) for req, _ in log]
    responses = [tls_flags(resp) for _, resp in log if resp is not None]
    assert TLS_FLAG_START in requests
    # both directions sent L+M first fragments and M middle fragments
    assert TLS_FLAG_LENGTH | TLS_FLAG_MORE in requests and TLS_FLAG_MORE in requests
    assert TLS_FLAG_LENGTH | TLS_FLAG_MORE in responses and TLS_FLAG_MORE in responses
    for req, _ in log[:-1]:
        assert len(req) <= 5 + 5 + 400 + 1  # header, flags+length, fragment
    assert EapPacket.decode(log[-1][0]).code == EapCode.SUCCESS


def test_handshake_without_fragmentation(pki, server_credentials, client_credentials):
    client, server = make_pair(pki, server_credentials, client_credentials,
                               client_fragment=16384, server_fragment=16384)
    log = converse(client, server)
    assert client.succeeded and client.msk == server.msk
    assert all(tls_flags(req) in (None, 0, TLS_FLAG_START) for req, _ in log)


def test_msk_is_the_rfc5216_prf_output(pki, server_credentials, client_credentials):
    """§2.3: Key_Material = TLS-PRF(master_secret, "client EAP encryption",
    client.random ‖ server.random), MSK = the first 64 octets (TLS 1.2 P_hash, RFC 5246 §5)."""
    client, server = make_pair(pki, server_credentials, client_credentials)
    lines = []
    server.tls.keylog = lines.append  # NSS key log: "CLIENT_RANDOM <random> <master secret>"
    converse(client, server)
    connection = server._tls
    digest = hashlib.sha384 if "SHA384" in connection.get_cipher_name() else hashlib.sha256
    [secret] = [bytes.fromhex(line.split()[2].decode()) for line in lines
                if line.startswith(b"CLIENT_RANDOM")]
    assert len(secret) == 48
    seed = b"client EAP encryption" + connection.client_random() + connection.server_random()
    a, output = seed, b""
    while len(output) < 64:
        a = hmac.new(secret, a, digest).digest()
        output += hmac.new(secret, a + seed, digest).digest()
    assert connection.get_protocol_version_name() == "TLSv1.2"
    assert client.msk == output[:64]


def test_wrong_gateway_identity(pki, server_credentials, client_credentials):
    client, server = make_pair(pki, server_credentials, client_credentials,
                               identity="198.51.100.1")
    converse(client, server)
    assert not client.succeeded and client.msk == b""
    assert client.failure_reason == ("EAP-TLS server certificate for vpn.example.org does not "
                                     "match the gateway identity 198.51.100.1")


def test_server_certificate_from_untrusted_ca(pki, server_credentials, client_credentials):
    client, server = make_pair(pki, server_credentials, client_credentials,
                               anchors=[Pki("Other CA").cert])
    converse(client, server)
    assert "is not signed by a trusted CA" in client.failure_reason


def test_expired_server_certificate(pki, server_credentials, client_credentials):
    later = server_credentials[0].not_valid_after_utc.timestamp() + 60
    client, server = make_pair(pki, server_credentials, client_credentials, now=later)
    converse(client, server)
    assert "expired on" in client.failure_reason


def test_time_must_be_given(pki, server_credentials, client_credentials):
    client, server = make_pair(pki, server_credentials, client_credentials, now=None)
    converse(client, server)
    assert client.failure_reason == ("EAP-TLS: no current time given to check the gateway "
                                     "certificate")


def test_server_refuses_client_from_other_ca(pki, server_credentials):
    stranger = Pki("Stranger CA").issue("carol@example.org",
                                        eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    client, server = make_pair(pki, server_credentials, stranger)
    converse(client, server)
    assert not server.succeeded and not client.succeeded
    assert client.failure_reason == ("the gateway rejected the EAP authentication "
                                     "(EAP-Failure)")


def test_tls_alert_from_server_is_reported(pki, server_credentials, client_credentials):
    client, server = make_pair(pki, server_credentials, client_credentials)
    client.respond(server.start())  # identity
    client.respond(EapPacket(EapCode.REQUEST, 2, EapType.TLS, bytes([TLS_FLAG_START])).encode())
    # a fatal handshake_failure alert record instead of a ServerHello
    alert = bytes.fromhex("15030300020228")
    assert client.respond(EapPacket(EapCode.REQUEST, 3, EapType.TLS,
                                    b"\x00" + alert).encode()) is None
    assert client.failure_reason.startswith("EAP-TLS handshake failed: ")


def test_protocol_errors(pki, client_credentials):
    config = TlsClientConfig(*client_credentials, trust_anchors=[pki.cert],
                             server_identity="vpn.example.org")
    client = EapClient("tls", "carol", tls=config, now=NOW)
    assert client.respond(EapPacket(EapCode.REQUEST, 1, EapType.TLS, b"\x00abc").encode()) \
        is None
    assert "EAP-TLS packet before EAP-TLS Start" in client.failure_reason
    client = EapClient("tls", "carol", tls=config, now=NOW)
    start = EapPacket(EapCode.REQUEST, 1, EapType.TLS, bytes([TLS_FLAG_START])).encode()
    assert client.respond(start) is not None
    assert client.respond(start) is None
    assert "second EAP-TLS Start" in client.failure_reason


def test_configuration_errors_and_secret_hiding(client_credentials):
    with pytest.raises(ValueError, match="gateway identity"):
        EapClient("tls", "carol", tls=TlsClientConfig(*client_credentials))
    config = TlsClientConfig(*client_credentials, server_identity="vpn.example.org")
    assert "private_key" not in repr(config)


def test_chains_through_intermediates_both_ways(pki):
    server_ca = pki.issue("Server Sub CA", ca=True)
    client_ca = pki.issue("Client Sub CA", ca=True)
    server_cert, server_key = pki.issue("vpn.example.org", issuer=server_ca)
    client_cert, client_key = pki.issue("carol@example.org", issuer=client_ca,
                                        eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    server = EapServer("tls", tls=TlsServerConfig(server_cert, server_key, client_ca=pki.cert,
                                                  intermediates=(server_ca[0],)))
    client = EapClient("tls", "carol@example.org", tls=TlsClientConfig(
        client_cert, client_key, trust_anchors=[pki.cert], server_identity="vpn.example.org",
        intermediates=(client_ca[0],)))
    request = server.start()
    while not server.done:
        response = client.respond(request, now=NOW)  # time may also come with each packet
        assert response is not None, client.failure_reason
        request = server.process(response)
    client.respond(request)
    assert client.succeeded and server.succeeded and client.msk == server.msk


def test_mismatched_key_is_reported(pki, client_credentials):
    other_key = Pki().issue("x")[1]
    client = EapClient("tls", "carol", now=NOW, tls=TlsClientConfig(
        client_credentials[0], other_key, [pki.cert], "vpn.example.org"))
    start = EapPacket(EapCode.REQUEST, 1, EapType.TLS, bytes([TLS_FLAG_START])).encode()
    assert client.respond(start) is None
    assert client.failure_reason == ("our EAP-TLS certificate and private key do not belong "
                                     "together")


def test_certificate_and_key_are_required(client_credentials):
    with pytest.raises(ValueError, match="needs our certificate and private key"):
        EapClient("tls", "carol", tls=TlsClientConfig(None, None, (), "vpn.example.org"))


def test_accepts_a_server_without_rfc5746_renegotiation_info(pki, server_credentials,
                                                              client_credentials):
    """strongSwan's libtls EAP-TLS server sends no renegotiation_info; OpenSSL 3 refuses such
    a server ("unsafe legacy renegotiation disabled") unless the client allows it. Found
    against charon 5.9.8 in tests/interop/test_cygnet_auth.py."""
    from OpenSSL import SSL

    client, server = make_pair(pki, server_credentials, client_credentials)
    converse(client, server)
    assert client.succeeded
    # pyOpenSSL has no getter once a Connection exists: ask OpenSSL itself.
    options = SSL._lib.SSL_get_options(client._method._connection._ssl)
    assert options & SSL.OP_LEGACY_SERVER_CONNECT
