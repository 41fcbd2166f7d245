"""ESP packet processing (RFC 4303) with AES-GCM (RFC 4106), ChaCha20-Poly1305 (RFC 7634)
and AES-CBC + HMAC-SHA2 (RFC 3602, RFC 4868), with and without Extended Sequence Numbers."""

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from client.esp import (
    NEXT_HEADER_IPV4,
    NEXT_HEADER_IPV6,
    NEXT_HEADER_NONE,
    SEQ32_MAX,
    AuthenticationFailed,
    InboundSa,
    MalformedPacket,
    OutboundSa,
    ReplayedPacket,
    ReplayWindow,
    SaExhausted,
    SaLimits,
    infer_esn_high,
)
from ike.constants import EncrId, IntegId

SPI = bytes.fromhex("c0ffee01")

# (name, encr_id, key bits, encr keymat bytes incl. salt, integ_id, integ key bytes, ICV bytes)
SUITES = [
    ("aes128gcm16", EncrId.AES_GCM_16, 128, 20, None, 0, 16),
    ("aes256gcm16", EncrId.AES_GCM_16, 256, 36, None, 0, 16),
    ("chacha20poly1305", EncrId.CHACHA20_POLY1305, 256, 36, None, 0, 16),
    ("aes128-sha256", EncrId.AES_CBC, 128, 16, IntegId.HMAC_SHA2_256_128, 32, 16),
    ("aes256-sha384", EncrId.AES_CBC, 256, 32, IntegId.HMAC_SHA2_384_192, 48, 24),
    ("aes256-sha512", EncrId.AES_CBC, 256, 32, IntegId.HMAC_SHA2_512_256, 64, 32),
]


def keys(n, seed):
    return bytes((seed + i) & 0xFF for i in range(n))


def sa_pair(suite, esn=False, **inbound_options):
    _, encr, bits, encr_len, integ, integ_len, _ = suite
    ekey, ikey = keys(encr_len, 1), keys(integ_len, 101)
    out = OutboundSa(SPI, encr, bits, ekey, integ, ikey, esn=esn)
    inb = InboundSa(SPI, encr, bits, ekey, integ, ikey, esn=esn, **inbound_options)
    return out, inb


IPV4_PACKET = bytes.fromhex("45000054000040004001") + bytes(10) + b"ping" * 19


@pytest.mark.parametrize("esn", [False, True], ids=["seq32", "esn"])
@pytest.mark.parametrize("suite", SUITES, ids=[s[0] for s in SUITES])
def test_round_trip_every_algorithm(suite, esn):
    out, inb = sa_pair(suite, esn)
    for length in (0, 1, 2, 3, 13, 14, 15, 16, 17, 1400):
        inner = keys(length, length)
        packet = out.seal(inner, NEXT_HEADER_IPV6)
        assert packet[:4] == SPI
        assert len(packet) - suite[6] - 8 - out._iv_size >= length + 2
        assert inb.open(packet) == (NEXT_HEADER_IPV6, inner)
    assert inb.packets == out.packets == 10


@pytest.mark.parametrize("suite", SUITES, ids=[s[0] for s in SUITES])
def test_wrong_key_fails_authentication(suite):
    out, _ = sa_pair(suite)
    _, encr, bits, encr_len, integ, integ_len, _ = suite
    other = InboundSa(SPI, encr, bits, keys(encr_len, 7), integ, keys(integ_len, 7))
    with pytest.raises(AuthenticationFailed):
        other.open(out.seal(IPV4_PACKET, NEXT_HEADER_IPV4))
    assert other.auth_failures == 1


@settings(max_examples=50, deadline=None)
@given(inner=st.binary(max_size=300), next_header=st.sampled_from([4, 41, 59]))
def test_round_trip_any_payload(inner, next_header):
    out, inb = sa_pair(SUITES[0], esn=True)
    assert inb.open(out.seal(inner, next_header)) == (next_header, inner)


# --- Known-answer checks: build the expected packet with `cryptography` directly -----------


def test_gcm_packet_layout_matches_hand_built_packet():
    """RFC 4303 §2 layout, RFC 4106 §3-5: nonce = salt‖IV, AAD = SPI‖Seq, ICV = 16-byte tag."""
    keymat = keys(20, 1)
    out = OutboundSa(SPI, EncrId.AES_GCM_16, 128, keymat)
    out.seal(b"x", NEXT_HEADER_IPV4)  # sequence number 1
    packet = out.seal(IPV4_PACKET, NEXT_HEADER_IPV4)  # sequence number 2

    seq = 2
    iv = struct.pack(">Q", seq)
    pad_length = -(len(IPV4_PACKET) + 2) % 4
    plaintext = IPV4_PACKET + bytes(range(1, pad_length + 1)) + bytes([pad_length, 4])
    aad = SPI + struct.pack(">I", seq)
    expected = aad + iv + AESGCM(keymat[:16]).encrypt(keymat[16:] + iv, plaintext, aad)
    assert packet == expected


def test_gcm_esn_aad_carries_high_bits():
    """RFC 4106 §5: with ESN the AAD is SPI‖Seq-high‖Seq-low, only Seq-low is sent."""
    keymat = keys(20, 1)
    out = OutboundSa(SPI, EncrId.AES_GCM_16, 128, keymat, esn=True, initial_seq=(5 << 32) | 0xFFFFFFFF)
    packet = out.seal(IPV4_PACKET, NEXT_HEADER_IPV4)  # sequence number 6 << 32 (low half 0)
    seq = 6 << 32
    iv = struct.pack(">Q", seq)
    pad_length = -(len(IPV4_PACKET) + 2) % 4
    plaintext = IPV4_PACKET + bytes(range(1, pad_length + 1)) + bytes([pad_length, 4])
    aad = SPI + struct.pack(">II", 6, 0)
    sent_header = SPI + struct.pack(">I", 0)
    assert packet == sent_header + iv + AESGCM(keymat[:16]).encrypt(keymat[16:] + iv, plaintext, aad)


def test_chacha20_poly1305_layout():
    """RFC 7634 §2-3: 256-bit key, 4-byte salt, 8-byte IV, AAD as for GCM."""
    keymat = keys(36, 9)
    out = OutboundSa(SPI, EncrId.CHACHA20_POLY1305, 256, keymat)
    packet = out.seal(b"abc", NEXT_HEADER_IPV6)
    iv = packet[8:16]
    aad = packet[:8]
    plaintext = ChaCha20Poly1305(keymat[:32]).decrypt(keymat[32:] + iv, packet[16:], aad)
    assert plaintext == b"abc" + b"\x01\x02\x03" + b"\x03\x29"  # 3 + 3 padding + 2 = 8 bytes

@pytest.mark.parametrize("esn", [False, True], ids=["seq32", "esn"])
def test_cbc_hmac_layout_verified_by_hand(esn):
    """RFC 4303 §2, §2.2.1: ICV over SPI‖Seq‖IV‖ciphertext (‖Seq-high with ESN), 16-byte blocks."""
    ekey, ikey = keys(16, 3), keys(32, 4)
    start = (1 << 32) - 1 if esn else 0
    out = OutboundSa(SPI, EncrId.AES_CBC, 128, ekey, IntegId.HMAC_SHA2_256_128, ikey, esn=esn, initial_seq=start)
    packet = out.seal(IPV4_PACKET, NEXT_HEADER_IPV4)
    seq = start + 1
    assert packet[4:8] == struct.pack(">I", seq & SEQ32_MAX)
    iv, ciphertext, icv = packet[8:24], packet[24:-16], packet[-16:]
    signed = packet[:-16] + (struct.pack(">I", seq >> 32) if esn else b"")
    assert icv == hmac.new(ikey, signed, hashlib.sha256).digest()[:16]
    decryptor = Cipher(algorithms.AES(ekey), modes.CBC(iv)).decryptor()
    plaintext = decryptor.update(ciphertext) + decryptor.finalize()
    pad_length = -(len(IPV4_PACKET) + 2) % 16
    assert plaintext == IPV4_PACKET + bytes(range(1, pad_length + 1)) + bytes([pad_length, 4])


def test_cbc_ivs_differ_between_packets():
    out, _ = sa_pair(SUITES[3])
    ivs = {out.seal(b"same", 4)[8:24] for _ in range(300)}
    assert len(ivs) == 300


# --- Padding and dummy packets (RFC 4303 §2.4, §2.6) -------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=[s[0] for s in SUITES])
def test_padding_aligns_ciphertext(suite):
    out, _ = sa_pair(suite)
    block = 16 if suite[4] is not None else 4
    header = 8 + out._iv_size
    for length in range(40):
        packet = out.seal(bytes(length), 4)
        encrypted = len(packet) - header - suite[6]
        assert encrypted % block == 0
        assert length + 2 <= encrypted < length + 2 + block


def _gcm_packet_with_trailer(keymat, seq, body_and_trailer):
    iv = struct.pack(">Q", seq)
    aad = SPI + struct.pack(">I", seq)
    return aad + iv + AESGCM(keymat[:16]).encrypt(keymat[16:] + iv, body_and_trailer, aad)


def test_non_monotonic_padding_is_rejected():
    keymat = keys(20, 1)
    inb = InboundSa(SPI, EncrId.AES_GCM_16, 128, keymat)
    good = _gcm_packet_with_trailer(keymat, 1, b"abcd" + b"\x01\x02" + b"\x02\x04")
    assert inb.open(good) == (4, b"abcd")
    bad = _gcm_packet_with_trailer(keymat, 2, b"abcd" + b"\x00\x00" + b"\x02\x04")
    with pytest.raises(MalformedPacket):
        inb.open(bad)
    too_long = _gcm_packet_with_trailer(keymat, 3, b"ab" + b"\x09\x04")
    with pytest.raises(MalformedPacket):
        inb.open(too_long)
    assert inb.malformed_drops == 2


def test_dummy_packet_has_next_header_59():
    out, inb = sa_pair(SUITES[0])
    assert inb.open(out.dummy_packet(20)) == (NEXT_HEADER_NONE, bytes(20))


def test_truncated_packet_is_malformed():
    out, inb = sa_pair(SUITES[3])
    with pytest.raises(MalformedPacket):
        inb.open(out.seal(b"x", 4)[:20])
    packet = out.seal(b"x" * 20, 4)
    with pytest.raises(MalformedPacket):  # ciphertext no longer a whole number of blocks
        inb.open(packet[:40] + packet[41:])


# --- Tampering ----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=[s[0] for s in SUITES])
@pytest.mark.parametrize("where", ["seq", "iv", "ciphertext", "icv"])
def test_tampered_packet_is_rejected(suite, where):
    out, inb = sa_pair(suite)
    packet = bytearray(out.seal(IPV4_PACKET, 4))
    iv_end = 8 + out._iv_size
    index = {"seq": 7, "iv": 9, "ciphertext": iv_end + 5, "icv": len(packet) - 1}[where]
    packet[index] ^= 0x40
    with pytest.raises(AuthenticationFailed):
        inb.open(bytes(packet))
    assert inb.auth_failures == 1


def test_forged_packet_does_not_move_the_replay_window():
    """RFC 4303 §3.4.3: the window is updated only after the ICV verified."""
    out, inb = sa_pair(SUITES[0])
    first = out.seal(b"1", 4)
    out.seq = 5000
    forged = bytearray(out.seal(b"far ahead", 4))
    forged[-1] ^= 1
    with pytest.raises(AuthenticationFailed):
        inb.open(bytes(forged))
    assert inb.window.top == 0
    assert inb.open(first) == (4, b"1")


# --- Anti-replay window (RFC 4303 §3.4.3) ----------------------------------------------------


def test_replay_duplicates_and_out_of_order():
    out, inb = sa_pair(SUITES[0], replay_window=128)
    packets = [out.seal(struct.pack(">H", i), 4) for i in range(1, 301)]  # sequence numbers 1..300
    inb.open(packets[9])  # seq 10 first
    for i in (2, 0, 5, 8):  # older but inside the window: accepted once
        assert inb.open(packets[i])[1] == struct.pack(">H", i + 1)
    for i in (9, 2, 0):
        with pytest.raises(ReplayedPacket):
            inb.open(packets[i])
    inb.open(packets[299])  # window advances to 300: 172 and below are too old
    with pytest.raises(ReplayedPacket):
        inb.open(packets[170])  # seq 171 = 300 - 129
    assert inb.open(packets[172])[1] == struct.pack(">H", 173)  # seq 173 = 300 - 127: last slot
    with pytest.raises(ReplayedPacket):
        inb.open(packets[299])
    assert inb.replay_drops == 5


def test_replay_window_unit():
    window = ReplayWindow(64)
    assert not window.check(0)
    for seq in (1, 3, 2, 64, 65):
        assert window.check(seq)
        window.update(seq)
        assert not window.check(seq)
    assert window.check(4)  # gap within the window stays open
    assert not window.check(1)  # 65 - 1 = 64 = window size: too old
    window.update(10_000)
    assert window.bitmap == 1 and not window.check(10_000 - 64) and window.check(10_000 - 63)


def test_window_must_be_at_least_64():
    with pytest.raises(ValueError):
        ReplayWindow(32)


# --- Sequence numbers, ESN, limits ----------------------------------------------------------


def test_32bit_sequence_never_cycles():
    """RFC 4303 §3.3.3: without ESN the counter must not wrap; the SA must be replaced."""
    events = []
    out = OutboundSa(SPI, EncrId.AES_GCM_16, 128, keys(20, 1), initial_seq=SEQ32_MAX - 1,
                     on_limit=lambda severity, what: events.append((severity, what)))
    assert out.seal(b"last", 4)[4:8] == b"\xff\xff\xff\xff"
    with pytest.raises(SaExhausted):
        out.seal(b"one too many", 4)
    assert ("hard", "sequence") in events


def test_32bit_sequence_soft_limit_asks_for_rekey():
    events = []
    from client.esp import SEQ32_SOFT_MARGIN

    out = OutboundSa(SPI, EncrId.AES_GCM_16, 128, keys(20, 1), initial_seq=SEQ32_MAX - SEQ32_SOFT_MARGIN - 2,
                     on_limit=lambda severity, what: events.append((severity, what)))
    out.seal(b"", 4)
    assert events == []
    out.seal(b"", 4)
    out.seal(b"", 4)
    assert events == [("soft", "sequence")]


@pytest.mark.parametrize("suite", [SUITES[0], SUITES[3]], ids=["gcm", "cbc"])
def test_esn_crosses_the_32bit_boundary(suite):
    out, inb = sa_pair(suite, esn=True)
    out.seq = inb.window.top = (1 << 32) - 3  # as if 2^32 - 3 packets had passed
    inb.window.bitmap = 1
    packets = [out.seal(bytes([i]), 4) for i in range(6)]
    assert [p[4:8] for p in packets[1:4]] == [b"\xff\xff\xff\xff", b"\0\0\0\0", b"\0\0\0\1"]
    for i in (0, 3, 1, 5, 2, 4):
        assert inb.open(packets[i]) == (4, bytes([i]))
    assert inb.window.top == (1 << 32) + 3
    with pytest.raises(ReplayedPacket):
        inb.open(packets[1])


def test_esn_high_bits_inference():
    """RFC 4303 Appendix A2.2, cases A and B."""
    w = 64
    top = (7 << 32) | 1000  # case A
    assert infer_esn_high(top, w, 1000 - 63) == 7
    assert infer_esn_high(top, w, 5000) == 7
    assert infer_esn_high(top, w, 10) == 8  # far below the window: must be the next subspace
    top = (7 << 32) | 10  # case B: window reaches into subspace 6
    assert infer_esn_high(top, w, SEQ32_MAX - 5) == 6
    assert infer_esn_high(top, w, 5) == 7
    assert infer_esn_high(top, w, 5000) == 7
    assert infer_esn_high(0, w, SEQ32_MAX) is None  # before sequence number 1


def test_esn_mismatch_fails_authentication():
    """Both ends must agree on ESN: the AAD differs (RFC 4106 §5) even for high bits 0."""
    out, _ = sa_pair(SUITES[0], esn=False)
    _, inb = sa_pair(SUITES[0], esn=True)
    with pytest.raises(AuthenticationFailed):
        inb.open(out.seal(b"", 4))


def test_volume_soft_and_hard_limits():
    events = []
    out = OutboundSa(SPI, EncrId.AES_GCM_16, 128, keys(20, 1),
                     limits=SaLimits(soft_bytes=250, hard_packets=5),
                     on_limit=lambda severity, what: events.append((severity, what)))
    for _ in range(4):
        out.seal(bytes(100), 4)
    assert events == [("soft", "bytes")]
    out.seal(bytes(100), 4)  # the 5th and last packet: the SA is used up now
    assert events == [("soft", "bytes"), ("hard", "packets")]
    with pytest.raises(SaExhausted):
        out.seal(bytes(100), 4)
    assert events == [("soft", "bytes"), ("hard", "packets")]


@pytest.mark.parametrize("suite", [SUITES[0], SUITES[3]], ids=["gcm", "cbc"])
def test_peer_restarting_its_counter_asks_for_a_rekey(suite):
    """An HA gateway taking over restarts ESP sequence numbers at 1 with the same keys: the
    replay window drops everything; the receiver notices authentic "replays" and asks once."""
    _, encr, bits, encr_len, integ, integ_len, _ = suite
    ekey, ikey = keys(encr_len, 1), keys(integ_len, 101)
    events = []
    inb = InboundSa(SPI, encr, bits, ekey, integ, ikey, replay_window=64,
                    on_limit=lambda severity, what: events.append((severity, what)))
    first_node = OutboundSa(SPI, encr, bits, ekey, integ, ikey)
    for _ in range(200):
        inb.open(first_node.seal(b"x", 4))
    second_node = OutboundSa(SPI, encr, bits, ekey, integ, ikey)  # same SA, counter from 1
    forged = bytearray(second_node.seal(b"y", 4))
    forged[-1] ^= 1
    for _ in range(40):  # forged stale packets never trigger it
        with pytest.raises(ReplayedPacket):
            inb.open(bytes(forged))
    assert events == []
    for _ in range(40):
        with pytest.raises(ReplayedPacket):
            inb.open(second_node.seal(b"y", 4))
    assert events == [("soft", "sequence-reset")]
    assert inb.window.top == 200  # nothing moved


def test_one_authentic_packet_left_of_the_window_asks_for_a_rekey_at_once():
    """A peer that sends a packet a second must not wait 16 s for the rekey: a packet left of
    the whole window is no reordering, so the first authentic one is enough. Duplicates inside
    the window still need the long run."""
    _, encr, bits, encr_len, integ, integ_len, _ = SUITES[0]
    ekey, ikey = keys(encr_len, 1), keys(integ_len, 101)
    events = []
    inb = InboundSa(SPI, encr, bits, ekey, integ, ikey, replay_window=64,
                    on_limit=lambda severity, what: events.append((severity, what)))
    first_node = OutboundSa(SPI, encr, bits, ekey, integ, ikey)
    sent = [first_node.seal(b"x", 4) for _ in range(200)]
    for packet in sent:
        inb.open(packet)
    for packet in sent[-5:]:   # seq 196..200: duplicates inside the window
        with pytest.raises(ReplayedPacket):
            inb.open(packet)
    assert events == []
    second_node = OutboundSa(SPI, encr, bits, ekey, integ, ikey)  # counter from 1
    with pytest.raises(ReplayedPacket):
        inb.open(second_node.seal(b"y", 4))
    assert events == [("soft", "sequence-reset")]


def test_keys_never_appear_in_repr():
    out, inb = sa_pair(SUITES[3])
    key_hex = keys(16, 1).hex()
    for obj in (out, inb, out._cipher, inb._integrity):
        assert key_hex not in repr(obj) and keys(16, 1) not in repr(obj).encode()
