"""The SK payload (RFC 7296 §3.14) with AES-GCM (RFC 5282), ChaCha20-Poly1305 (RFC 7634) and
AES-CBC + HMAC-SHA2 (RFC 3602, RFC 4868): round trips, layouts checked against independent
`cryptography` computations, tampering, and malformed authenticated content."""

import os
import struct
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ike.constants import EncrId, ExchangeType, IdType, IntegId, NotifyType, PayloadType
from ike.keys import IkeSaKeys
from ike.payloads import (
    AUTH,
    FLAG_INITIATOR,
    FLAG_RESPONSE,
    Encrypted,
    Header,
    IDi,
    Message,
    Notify,
    ParseError,
    VendorId,
)
from ike.protection import IntegrityError, SkProtector


@dataclass
class Proposal:
    """The three IkeProposal attributes SkProtector reads."""

    encr_id: int
    encr_key_bits: int | None
    integ_id: int | None = None


# (proposal, SK_e size incl. salt, SK_a size)
SUITES = {
    "aes128gcm16": (Proposal(EncrId.AES_GCM_16, 128), 20, 0),
    "aes256gcm16": (Proposal(EncrId.AES_GCM_16, 256), 36, 0),
    "chacha20poly1305": (Proposal(EncrId.CHACHA20_POLY1305, 256), 36, 0),
    "aes128-sha256": (Proposal(EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128), 16, 32),
    "aes256-sha384": (Proposal(EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_384_192), 32, 48),
    "aes256-sha512": (Proposal(EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_512_256), 32, 64),
}


def make_keys(e_size: int, a_size: int) -> IkeSaKeys:
    return IkeSaKeys(sk_d=os.urandom(32), sk_ai=os.urandom(a_size), sk_ar=os.urandom(a_size),
                     sk_ei=os.urandom(e_size), sk_er=os.urandom(e_size),
                     sk_pi=os.urandom(32), sk_pr=os.urandom(32))


def pair(suite: str, **kwargs):
    proposal, e_size, a_size = SUITES[suite]
    keys = make_keys(e_size, a_size)
    return (SkProtector(proposal, keys, True, **kwargs), SkProtector(proposal, keys, False, **kwargs),
            keys)


HEADER = Header(spi_i=b"I" * 8, spi_r=b"R" * 8, next_payload=0, exchange=ExchangeType.IKE_AUTH,
                flags=FLAG_INITIATOR, message_id=1)
PAYLOADS = [IDi(IdType.FQDN, b"client.example"), AUTH(2, b"a" * 32),
            Notify(NotifyType.INITIAL_CONTACT)]


def received(datagram: bytes):
    return datagram, Message.decode(datagram)


@pytest.mark.parametrize("suite", list(SUITES))
def test_round_trip_both_directions(suite):
    initiator, responder, _ = pair(suite)
    request = initiator.seal(HEADER, PAYLOADS)
    assert responder.open(*received(request)) == PAYLOADS
    response_header = Header(b"I" * 8, b"R" * 8, 0, ExchangeType.IKE_AUTH, FLAG_RESPONSE, 1)
    response = responder.seal(response_header, [VendorId(b"v")])
    assert initiator.open(*received(response)) == [VendorId(b"v")]


@pytest.mark.parametrize("suite", list(SUITES))
def test_layout(suite):
    initiator, _, _ = pair(suite)
    datagram = initiator.seal(HEADER, PAYLOADS)
    message = Message.decode(datagram)
    assert message.header.next_payload == PayloadType.SK
    assert message.header.length == len(datagram)
    (sk,) = message.payloads
    assert isinstance(sk, Encrypted) and sk.first_payload == PayloadType.IDi
    cipher_text_len = len(sk.data) - initiator._in.cipher.iv_size - initiator._in.icv_size
    if SUITES[suite][0].encr_id == EncrId.AES_CBC:
        assert len(sk.data) >= 16 + 16 + 16 and cipher_text_len % 16 == 0
    else:
        # AEAD: 8-byte IV, inner chain + pad length octet, 16-byte tag (RFC 5282 §3)
        inner = sum(len(p._encode_body()) + 4 for p in PAYLOADS)
        assert cipher_text_len == inner + 1


@pytest.mark.parametrize("suite", list(SUITES))
def test_either_side_cannot_open_its_own_messages(suite):
    initiator, _, _ = pair(suite)
    with pytest.raises(IntegrityError):
        initiator.open(*received(initiator.seal(HEADER, PAYLOADS)))


@pytest.mark.parametrize("suite", list(SUITES))
@pytest.mark.parametrize("where", ["header", "sk header", "iv", "ciphertext", "icv"])
def test_tampering_anywhere_is_rejected(suite, where):
    initiator, responder, _ = pair(suite)
    datagram = bytearray(initiator.seal(HEADER, PAYLOADS))
    position = {"header": 20, "sk header": 29, "iv": 33, "ciphertext": 60, "icv": len(datagram) - 1}
    datagram[position[where]] ^= 0x01
    datagram = bytes(datagram)
    message = Message.decode(datagram)  # the bits chosen leave the framing intact
    with pytest.raises(IntegrityError):
        responder.open(datagram, message)


def test_aes_gcm_matches_an_independent_computation():
    initiator, _, keys = pair("aes256gcm16")
    datagram = initiator.seal(HEADER, PAYLOADS)
    aad, iv, sealed = datagram[:32], datagram[32:40], datagram[40:]
    assert iv == (1).to_bytes(8, "big")  # counter IVs start at 1
    key, salt = keys.sk_ei[:32], keys.sk_ei[32:]
    plaintext = AESGCM(key).decrypt(salt + iv, sealed, aad)
    assert plaintext[-1] == 0  # no padding needed, pad length 0
    assert plaintext[:-1] == Message(HEADER, PAYLOADS).encode()[28:]


def test_chacha20_poly1305_matches_an_independent_computation():
    initiator, _, keys = pair("chacha20poly1305")
    datagram = initiator.seal(HEADER, PAYLOADS)
    key, salt = keys.sk_ei[:32], keys.sk_ei[32:]
    plaintext = ChaCha20Poly1305(key).decrypt(salt + datagram[32:40], datagram[40:], datagram[:32])
    assert plaintext[:-1] == Message(HEADER, PAYLOADS).encode()[28:]


def test_aes_cbc_hmac_matches_an_independent_computation():
    iv = bytes(range(16))
    initiator, _, keys = pair("aes128-sha256", random_bytes=lambda n: iv[:n])
    datagram = initiator.seal(HEADER, PAYLOADS)
    inner = Message(HEADER, PAYLOADS).encode()[28:]
    pad = -(len(inner) + 1) % 16
    encryptor = Cipher(algorithms.AES(keys.sk_ei), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(inner + bytes(pad) + bytes([pad])) + encryptor.finalize()
    sk_length = 4 + 16 + len(ciphertext) + 16
    header = Header(HEADER.spi_i, HEADER.spi_r, PayloadType.SK, HEADER.exchange, HEADER.flags,
                    HEADER.message_id, 28 + sk_length).encode()
    signed = header + struct.pack("!BBH", PayloadType.IDi, 0, sk_length) + iv + ciphertext
    mac = hmac.HMAC(keys.sk_ai, hashes.SHA256())
    mac.update(signed)
    assert datagram == signed + mac.finalize()[:16]


def test_aead_ivs_are_unique_counters():
    initiator, responder, _ = pair("aes128gcm16")
    ivs = [Message.decode(initiator.seal(HEADER, PAYLOADS)).payloads[0].data[:8] for _ in range(5)]
    assert ivs == [n.to_bytes(8, "big") for n in range(1, 6)]
    # the other direction has its own key and its own counter
    assert Message.decode(responder.seal(HEADER, [])).payloads[0].data[:8] == (1).to_bytes(8, "big")


def test_aead_iv_counter_exhaustion():
    initiator, _, _ = pair("aes128gcm16")
    initiator._out.counter = 2**64 - 1
    with pytest.raises(OverflowError, match="rekey"):
        initiator.seal(HEADER, PAYLOADS)


def test_cbc_ivs_come_from_the_random_source():
    calls = []

    def fake_random(n):
        calls.append(n)
        return b"\x42" * n

    initiator, _, _ = pair("aes256-sha384", random_bytes=fake_random)
    datagram = initiator.seal(HEADER, PAYLOADS)
    assert calls == [16] and datagram[32:48] == b"\x42" * 16


def test_empty_payload_list():
    initiator, responder, _ = pair("aes128-sha256")
    datagram = initiator.seal(HEADER, [])
    assert Message.decode(datagram).payloads[0].first_payload == PayloadType.NONE
    assert responder.open(*received(datagram)) == []


def test_open_chain_returns_plaintext_for_intermediate_auth():
    initiator, responder, _ = pair("aes256gcm16")
    first, inner = responder.open_chain(*received(initiator.seal(HEADER, PAYLOADS)))
    assert first == PayloadType.IDi
    assert inner == Message(HEADER, PAYLOADS).encode()[28:]


def test_open_without_sk_payload():
    _, responder, _ = pair("aes128gcm16")
    with pytest.raises(ValueError, match="no SK payload"):
        responder.open(*received(Message(HEADER, [VendorId(b"x")]).encode()))
    with pytest.raises(ValueError, match="no SK payload"):
        responder.open(*received(Message(HEADER, []).encode()))


@pytest.mark.parametrize("suite", ["aes128gcm16", "aes128-sha256"])
def test_sk_too_short_for_iv_and_icv(suite):
    _, responder, _ = pair(suite)
    datagram = Message(HEADER, [Encrypted(PayloadType.IDi, b"\x00" * 20)]).encode()
    with pytest.raises(IntegrityError, match="cannot hold"):
        responder.open(*received(datagram))


# ---------------------------------------------------------------- authenticated but malformed

def cbc_message(keys: IkeSaKeys, first: int, padded_plaintext: bytes, extra: bytes = b"") -> bytes:
    """An SK message sealed by hand with the initiator's AES-128/HMAC-SHA-256 keys;
    ``extra`` is appended to the ciphertext (to make it a partial block)."""
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(keys.sk_ei), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded_plaintext) + encryptor.finalize() + extra
    sk_length = 4 + 16 + len(ciphertext) + 16
    header = Header(HEADER.spi_i, HEADER.spi_r, PayloadType.SK, HEADER.exchange, HEADER.flags,
                    HEADER.message_id, 28 + sk_length).encode()
    signed = header + struct.pack("!BBH", first, 0, sk_length) + iv + ciphertext
    mac = hmac.HMAC(keys.sk_ai, hashes.SHA256())
    mac.update(signed)
    return signed + mac.finalize()[:16]


def test_pad_length_beyond_plaintext_is_a_parse_error():
    _, responder, keys = pair("aes128-sha256")
    datagram = cbc_message(keys, PayloadType.NONE, bytes(15) + b"\x20")
    with pytest.raises(ParseError) as err:
        responder.open(*received(datagram))
    assert err.value.payload == PayloadType.SK and err.value.offset == 15
    assert err.value.notify == NotifyType.INVALID_SYNTAX


def test_ciphertext_not_whole_blocks_is_a_parse_error():
    _, responder, keys = pair("aes128-sha256")
    datagram = cbc_message(keys, PayloadType.NONE, bytes(16), extra=b"\x01\x02\x03")
    with pytest.raises(ParseError, match="whole number"):
        responder.open(*received(datagram))


def test_malformed_inner_chain_reports_offset_in_plaintext():
    _, responder, keys = pair("aes128-sha256")
    inner = struct.pack("!BBH", PayloadType.NONE, 0, 2)  # Vendor ID with length 2 < 4
    pad = -(len(inner) + 1) % 16
    datagram = cbc_message(keys, PayloadType.VENDOR, inner + bytes(pad) + bytes([pad]))
    with pytest.raises(ParseError) as err:
        responder.open(*received(datagram))
    assert (err.value.payload, err.value.offset) == (PayloadType.VENDOR, 2)


def test_padding_bytes_are_stripped():
    _, responder, keys = pair("aes128-sha256")
    inner = struct.pack("!BBH", PayloadType.NONE, 0, 5) + b"v"
    datagram = cbc_message(keys, PayloadType.VENDOR, inner + b"\xee" * 26 + bytes([26]))
    assert responder.open(*received(datagram)) == [VendorId(b"v")]


# ---------------------------------------------------------------- construction

def test_aead_with_integrity_is_refused():
    keys = make_keys(20, 32)
    with pytest.raises(ValueError, match="AEAD"):
        SkProtector(Proposal(EncrId.AES_GCM_16, 128, IntegId.HMAC_SHA2_256_128), keys, True)


def test_aead_with_integ_none_is_accepted():
    keys = make_keys(20, 0)
    assert SkProtector(Proposal(EncrId.AES_GCM_16, 128, IntegId.NONE), keys, True)


def test_cbc_without_integrity_is_refused():
    with pytest.raises(ValueError, match="integrity"):
        SkProtector(Proposal(EncrId.AES_CBC, 128, None), make_keys(16, 0), True)


def test_repr_carries_no_key_material():
    initiator, _, keys = pair("aes128-sha256")
    text = repr(initiator) + repr(initiator._out) + repr(keys)
    for secret in (keys.sk_ei, keys.sk_ai, keys.sk_er, keys.sk_ar):
        assert secret.hex() not in text and repr(secret) not in text


@pytest.mark.parametrize("text", ["aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha384-ecp256",
                                  "chacha20poly1305-prfsha256-x25519",
                                  "aes256-sha256-modp3072", "aes128-sha384-x25519"])
def test_with_real_proposals_and_derived_keys(text):
    """SkProtector with ike/proposals.py's IkeProposal and ike/keys.py's derived SK_*."""
    from ike.keys import derive_ike_sa_keys
    from ike.proposals import parse_ike_proposals

    (proposal,) = parse_ike_proposals(text)
    keys = derive_ike_sa_keys(proposal, os.urandom(32), os.urandom(32), os.urandom(32),
                              HEADER.spi_i, HEADER.spi_r)
    initiator, responder = SkProtector(proposal, keys, True), SkProtector(proposal, keys, False)
    assert responder.open(*received(initiator.seal(HEADER, PAYLOADS))) == PAYLOADS
