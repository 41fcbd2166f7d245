"""Fuzz target: ESP open (client/esp.py) on packets whose plaintext is arbitrary but correctly
authenticated, so the code after the ICV check (trailer, padding, next header) sees hostile
data: the first byte picks AES-GCM or AES-CBC+HMAC-SHA256 and a sequence-number mode.

InboundSa.open must return (next header, inner packet) or raise one of its EspError kinds."""

from __future__ import annotations

import struct

from client.esp import EspError, InboundSa
from ike.transforms import make_cipher, make_integrity

SPI = b"\x10\x20\x30\x40"
GCM, CBC, HMAC_SHA256 = 20, 12, 12
KEYS = {GCM: bytes(range(20)), CBC: bytes(range(32, 48))}
INTEG_KEY = bytes(range(64, 96))


class _Peer:
    """One inbound SA and the sealing side with the same keys."""

    def __init__(self, encr_id: int):
        self.encr_id = encr_id
        integ = None if encr_id == GCM else HMAC_SHA256
        self.inbound = InboundSa(SPI, encr_id, 128, KEYS[encr_id], integ, INTEG_KEY)
        self.cipher = make_cipher(encr_id, 128, KEYS[encr_id])
        self.integrity = None if integ is None else make_integrity(integ, INTEG_KEY)
        self.seq = 0

    def seal(self, plaintext: bytes, seq: int) -> bytes:
        header = SPI + struct.pack("!I", seq & 0xFFFFFFFF)
        if self.encr_id == GCM:
            iv = struct.pack("!Q", seq)
            plaintext = plaintext + b"\x00" * (-len(plaintext) % 4)  # ESP's 4-byte alignment
            return header + iv + self.cipher.encrypt(iv, plaintext, header)
        iv = (seq.to_bytes(16, "big"))
        plaintext = plaintext + b"\x00" * (-len(plaintext) % 16) or b"\x00" * 16
        body = header + iv + self.cipher.encrypt(iv, plaintext)
        return body + self.integrity.sign(body)


_PEERS: dict[int, _Peer] = {}


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, plaintext = data[0], data[1:]
    encr_id = GCM if mode & 1 else CBC
    peer = _PEERS.get(encr_id) or _PEERS.setdefault(encr_id, _Peer(encr_id))
    if mode & 2 and len(plaintext) >= 4:  # a sequence number of the input's choosing
        seq, plaintext = struct.unpack("!I", plaintext[:4])[0], plaintext[4:]
    else:
        peer.seq += 1
        seq = peer.seq
    if len(plaintext) < 2:
        plaintext = plaintext + b"\x00\x04"[len(plaintext):]
    packet = peer.seal(plaintext, seq)
    try:
        next_header, inner = peer.inbound.open(packet)
    except EspError:
        return
    assert isinstance(next_header, int) and len(inner) <= len(packet)


SEEDS: list[bytes] = [
    b"\x00" + bytes(20) + b"\x01\x02\x02\x04",       # CBC, IPv4-ish inner, 2 bytes of padding
    b"\x01" + b"\x45" + bytes(19) + b"\x00\x04",      # GCM, no padding
    b"\x03" + b"\x00\x00\x00\x05" + bytes(10) + b"\xff\x29",  # GCM, own seq, pad length 255
    b"\x02" + b"\xff\xff\xff\xff" + bytes(30) + b"\x00\x3b",  # CBC, dummy packet (59)
]
