"""ESP security associations in userspace (RFC 4303, tunnel mode).

An ESP SA is one-way, so there are two classes:

* ``OutboundSa.seal(inner_packet, next_header)`` builds one ESP packet
  (SPI, sequence number, IV, encrypted payload + padding + trailer, ICV).
* ``InboundSa.open(esp_packet)`` checks the anti-replay window, authenticates and decrypts,
  and returns ``(next_header, inner_packet)``.

Packet layout (RFC 4303 §2)::

    SPI (4) | Sequence Number (4) | IV | Payload | Padding | Pad Length (1) | Next Header (1) | ICV

Algorithms come from ``ike.transforms`` (one crypto layer for IKE and ESP): AEAD ciphers
(AES-GCM RFC 4106, ChaCha20-Poly1305 RFC 7634) authenticate SPI‖Seq as AAD; AES-CBC (and the
legacy 3DES-CBC RFC 2451 and AES-CTR RFC 3686) is paired with an integrity algorithm (HMAC-SHA2
RFC 4868, or legacy HMAC-SHA1-96, HMAC-MD5-96, AES-XCBC-MAC-96) computed over
SPI‖Seq‖IV‖ciphertext.

With Extended Sequence Numbers (ESN) only the low 32 bits travel in the packet; the high 32 bits
are added to the AAD (RFC 4106 §5: SPI‖Seq-high‖Seq-low) or appended to the ICV input
(RFC 4303 §2.2.1) and reconstructed by the receiver (RFC 4303 Appendix A2).

Volume limits never contain IKE logic: when a soft limit is crossed the SA calls ``on_limit``
once (the engine then rekeys); when a hard limit is reached it refuses to work.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Callable

from ike.transforms import IntegrityError, make_cipher, make_integrity

NEXT_HEADER_IPV4 = 4
NEXT_HEADER_IPV6 = 41
NEXT_HEADER_NONE = 59  # "dummy packet" (RFC 4303 §2.6): receivers drop it silently

SPI_SIZE = 4
SEQ_SIZE = 4
HEADER_SIZE = SPI_SIZE + SEQ_SIZE
TRAILER_SIZE = 2  # pad length + next header

SEQ32_MAX = 0xFFFFFFFF
# Ask for a rekey this many packets before a 32-bit counter would have to cycle (RFC 4303 §3.3.3).
SEQ32_SOFT_MARGIN = 1 << 22
DEFAULT_REPLAY_WINDOW = 1024
# After this many replay drops in a row, check whether the peer restarted its counter. A packet
# left of the whole window is checked at once: no reordering explains it, and a peer that sends
# a packet a second (an HA gateway that took over an idle tunnel) would otherwise wait 16 s.
STALE_RUN_CHECK = 16

# Monotonic padding bytes 1, 2, 3, … (RFC 4303 §2.4); slicing this avoids building them per packet.
_PADDING = bytes(range(1, 256))
# Padding ‖ Pad Length ‖ Next Header, for every pad length up to a block (16 bytes), built once
# for the next headers the data plane sends.
_TAILS = {next_header: [_PADDING[:pad] + bytes((pad, next_header)) for pad in range(16)]
          for next_header in (NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_NONE)}

_pack_header = struct.Struct(">4sI").pack
_pack_header_iv64 = struct.Struct(">4sIQ").pack
_pack_esn_aad = struct.Struct(">4sII").pack
_pack_u32 = struct.Struct(">I").pack
_unpack_seq = struct.Struct(">I").unpack_from


class EspError(Exception):
    """A received ESP packet was rejected. Messages never carry key material."""


class MalformedPacket(EspError):
    """Too short, wrong length alignment or bad padding."""


class ReplayedPacket(EspError):
    """Sequence number already seen or left of the anti-replay window (RFC 4303 §3.4.3)."""


class AuthenticationFailed(EspError):
    """The ICV did not verify: the packet was forged, damaged or belongs to another key."""


class SaExhausted(Exception):
    """The SA reached a hard limit (sequence space, packets or bytes): it must be replaced."""


@dataclass
class SaLimits:
    """Volume limits of one SA; None means unlimited. Bytes count inner (cleartext) packets."""

    soft_packets: int | None = None
    hard_packets: int | None = None
    soft_bytes: int | None = None
    hard_bytes: int | None = None


LimitCallback = Callable[[str, str], None]  # (severity "soft"|"hard", what "packets"|"bytes"|"sequence")


def _cipher_alignment(cipher) -> int:
    """The payload+trailer must fill whole cipher blocks and end on a 4-byte boundary (§2.4)."""
    if cipher.aead:
        return 4
    return max(cipher.block_size, 4)


_NEVER = float("inf")


class _VolumeLimits:
    """Packet/byte counters of one SA and its soft/hard limits.

    The hot path only compares the counters with two thresholds (the next limit due);
    ``crossed`` does the bookkeeping when one is reached: soft fires once, hard exhausts the SA.
    """

    def __init__(self, limits: SaLimits | None, on_limit: LimitCallback | None):
        self.limits = limits or SaLimits()
        self.on_limit = on_limit
        self.soft_fired = False
        self.exhausted = False

    def thresholds(self) -> tuple[float, float]:
        """(packets, bytes) at which ``crossed`` must be called next."""
        limits = self.limits
        if self.exhausted:
            return _NEVER, _NEVER
        if not self.soft_fired:
            return (_min(limits.soft_packets, limits.hard_packets), _min(limits.soft_bytes, limits.hard_bytes))
        return (_min(limits.hard_packets), _min(limits.hard_bytes))

    def crossed(self, packets: int, byte_count: int) -> None:
        limits = self.limits
        if not self.soft_fired and (_reached(packets, limits.soft_packets) or _reached(byte_count, limits.soft_bytes)):
            self.soft_fired = True
            self.fire("soft", "packets" if _reached(packets, limits.soft_packets) else "bytes")
        if _reached(packets, limits.hard_packets) or _reached(byte_count, limits.hard_bytes):
            self.exhausted = True
            self.fire("hard", "packets" if _reached(packets, limits.hard_packets) else "bytes")

    def fire(self, severity: str, what: str) -> None:
        if self.on_limit is not None:
            self.on_limit(severity, what)


def _min(*values) -> float:
    return min((v for v in values if v is not None), default=_NEVER)


def _reached(count: int, limit: int | None) -> bool:
    return limit is not None and count >= limit


class ReplayWindow:
    """Sliding anti-replay window over 64-bit sequence numbers (RFC 4303 §3.4.3, Appendix A).

    ``top`` is the highest authenticated sequence number; bit i of ``bitmap`` says whether
    ``top - i`` was received. ``check`` is called before decryption (cheap reject), ``update``
    only after the ICV verified, so forged packets can never move the window.
    """

    __slots__ = ("size", "top", "bitmap", "_mask")

    def __init__(self, size: int = DEFAULT_REPLAY_WINDOW):
        if size < 64:
            raise ValueError("RFC 4303 §3.4.3 asks for a window of at least 64 packets")
        self.size = size
        self.top = 0
        self.bitmap = 0
        self._mask = (1 << size) - 1

    def check(self, seq: int) -> bool:
        """True if ``seq`` is new and not left of the window."""
        if seq == 0:
            return False  # the first packet sent carries 1 (§3.3.3); 0 is never valid
        top = self.top
        if seq > top:
            return True
        offset = top - seq
        if offset >= self.size:
            return False
        return not (self.bitmap >> offset) & 1

    def update(self, seq: int) -> None:
        top = self.top
        if seq > top:
            shift = seq - top
            self.bitmap = ((self.bitmap << shift) | 1) & self._mask if shift < self.size else 1
            self.top = seq
        else:
            self.bitmap |= 1 << (top - seq)


def infer_esn_high(window_top: int, window_size: int, seq_low: int) -> int | None:
    """The high 32 bits of a received ESN sequence number (RFC 4303 Appendix A2.2).

    Returns None when the packet would belong before sequence number 1 (cannot be valid).
    """
    top_low = window_top & SEQ32_MAX
    top_high = window_top >> 32
    bottom_low = (top_low - window_size + 1) & SEQ32_MAX
    if top_low >= window_size - 1:
        # Case A: the window lies within one 2^32 subspace.
        return top_high if seq_low >= bottom_low else top_high + 1
    # Case B: the window spans two subspaces; numbers at its far left belong to the previous one.
    if seq_low >= bottom_low:
        return top_high - 1 if top_high > 0 else None
    return top_high


class _EspSa:
    """What both directions of one SPI set up alike: the SPI, ESN, and the cipher and integrity
    objects bound to this direction's keys (built once, reused; kept as plain attributes
    because the per-packet code reads them)."""

    def __init__(self, spi: bytes, esn: bool, encr_id: int, encr_key_bits: int, encr_key: bytes,
                 integ_id: int | None, integ_key: bytes):
        if len(spi) != SPI_SIZE:
            raise ValueError("an ESP SPI has 4 bytes")
        self.spi = bytes(spi)
        self.esn = esn
        self._cipher = make_cipher(encr_id, encr_key_bits, encr_key)
        self._aead = self._cipher.aead
        if self._aead:
            self._integrity = None
            self.icv_size = self._cipher.icv_size
        else:
            if integ_id is None:
                raise ValueError("a non-AEAD cipher needs an integrity algorithm")
            self._integrity = make_integrity(integ_id, integ_key)
            self.icv_size = self._integrity.icv_size
        self._iv_size = self._cipher.iv_size
        self._unique_iv = self._cipher.unique_iv
        self._alignment = _cipher_alignment(self._cipher)


class OutboundSa(_EspSa):
    """Encrypts inner IP packets into ESP packets for one SPI."""

    def __init__(
        self,
        spi: bytes,
        encr_id: int,
        encr_key_bits: int,
        encr_key: bytes,
        integ_id: int | None = None,
        integ_key: bytes = b"",
        *,
        esn: bool = False,
        limits: SaLimits | None = None,
        on_limit: LimitCallback | None = None,
        initial_seq: int = 0,
    ):
        super().__init__(spi, esn, encr_id, encr_key_bits, encr_key, integ_id, integ_key)
        # Bytes added around an inner packet, minus padding: what the caller must leave for MTU.
        self.overhead = HEADER_SIZE + self._iv_size + TRAILER_SIZE + self.icv_size
        self.seq = initial_seq  # last sequence number sent (64-bit with ESN)
        self._seq_max = (1 << 64) - 1 if esn else SEQ32_MAX
        self._seq_soft = -1 if esn else SEQ32_MAX - SEQ32_SOFT_MARGIN
        self.packets = 0
        self.bytes = 0  # inner packet bytes
        self._limits = _VolumeLimits(limits, on_limit)
        self._next_packets, self._next_bytes = self._limits.thresholds()
        self._random_ivs = b""
        self._random_pos = 0

    def _next_cbc_iv(self) -> bytes:
        """CBC needs unpredictable IVs (RFC 3602 §2.3); fetch randomness in bulk to save syscalls."""
        size = self._iv_size
        if self._random_pos + size > len(self._random_ivs):
            self._random_ivs = os.urandom(size * 256)
            self._random_pos = 0
        start = self._random_pos
        self._random_pos = start + size
        return self._random_ivs[start : start + size]

    def seal_parts(self, payload, next_header: int) -> tuple[bytes, bytes]:
        """Encrypt one inner packet; returns (SPI‖Seq‖IV, ciphertext‖ICV) for a gathered send.

        Raises SaExhausted when the sequence space or a hard limit is used up.
        """
        seq = self.seq + 1
        if seq > self._seq_max or self._limits.exhausted:
            if seq > self._seq_max and not self._limits.exhausted:
                self._limits.exhausted = True
                self._limits.fire("hard", "sequence")
            raise SaExhausted("ESP SA exhausted: a rekeyed SA must replace it")
        self.seq = seq
        if seq == self._seq_soft:
            self._limits.fire("soft", "sequence")
        length = len(payload)
        self.packets += 1
        self.bytes += length
        if self.packets >= self._next_packets or self.bytes >= self._next_bytes:
            self._limits.crossed(self.packets, self.bytes)
            self._next_packets, self._next_bytes = self._limits.thresholds()
        seq_low = seq & SEQ32_MAX
        pad_length = -(length + TRAILER_SIZE) % self._alignment
        tails = _TAILS.get(next_header)
        tail = tails[pad_length] if tails else _PADDING[:pad_length] + bytes((pad_length, next_header))
        plaintext = b"".join((payload, tail))
        if self._aead:
            # The 8-byte IV must never repeat under one key (RFC 4106 §3.1): the counter is unique.
            header = _pack_header_iv64(self.spi, seq_low, seq)
            aad = _pack_esn_aad(self.spi, seq >> 32, seq_low) if self.esn else header[:HEADER_SIZE]
            body = self._cipher.encrypt(header[HEADER_SIZE:], plaintext, aad)
        else:
            # AES-CTR needs a unique IV (RFC 3686 §3.1): the sequence number; CBC an
            # unpredictable one.
            iv = seq.to_bytes(8, "big") if self._unique_iv else self._next_cbc_iv()
            header = _pack_header(self.spi, seq_low) + iv
            ciphertext = self._cipher.encrypt(iv, plaintext, b"")
            signed = header + ciphertext
            if self.esn:
                signed += _pack_u32(seq >> 32)  # RFC 4303 §2.2.1: high bits are signed, not sent
            body = ciphertext + self._integrity.sign(signed)
        return header, body

    def seal(self, payload, next_header: int) -> bytes:
        header, body = self.seal_parts(payload, next_header)
        return header + body

    def dummy_packet(self, length: int = 0) -> bytes:
        """An ESP packet with Next Header 59 that the peer drops silently (RFC 4303 §2.6)."""
        return self.seal(bytes(length), NEXT_HEADER_NONE)


class InboundSa(_EspSa):
    """Verifies, decrypts and replay-checks ESP packets received on one SPI."""

    def __init__(
        self,
        spi: bytes,
        encr_id: int,
        encr_key_bits: int,
        encr_key: bytes,
        integ_id: int | None = None,
        integ_key: bytes = b"",
        *,
        esn: bool = False,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
        limits: SaLimits | None = None,
        on_limit: LimitCallback | None = None,
    ):
        super().__init__(spi, esn, encr_id, encr_key_bits, encr_key, integ_id, integ_key)
        self._min_length = HEADER_SIZE + self._iv_size + TRAILER_SIZE + self.icv_size
        self._iv_end = HEADER_SIZE + self._iv_size
        self.window = ReplayWindow(replay_window)
        self.packets = 0
        self.bytes = 0
        self._limits = _VolumeLimits(limits, on_limit)
        self._next_packets, self._next_bytes = self._limits.thresholds()
        self.replay_drops = 0
        self.auth_failures = 0
        self.malformed_drops = 0
        self._stale_run = 0  # replay drops since the last accepted packet
        self._reset_reported = False

    def open(self, packet) -> tuple[int, bytes]:
        """Return (next_header, inner packet) of one ESP packet (bytes or memoryview).

        Raises ReplayedPacket, AuthenticationFailed or MalformedPacket (and counts them);
        Next Header 59 (dummy) is returned like any other so the caller can drop it.
        """
        length = len(packet)
        if length < self._min_length:
            self.malformed_drops += 1
            raise MalformedPacket("ESP packet too short")
        window = self.window
        seq_low = _unpack_seq(packet, SPI_SIZE)[0]
        if self.esn:
            high = infer_esn_high(window.top, window.size, seq_low)
            seq = -1 if high is None else (high << 32) | seq_low
        else:
            seq = seq_low
        # In-order packets (seq above the window) skip the bitmap lookup.
        if seq <= window.top and (seq < 0 or not window.check(seq)):
            self.replay_drops += 1
            self._stale_run += 1
            if not self._reset_reported and seq > 0 and (
                    self._stale_run >= STALE_RUN_CHECK or window.top - seq >= window.size):
                self._check_sequence_reset(packet, seq)
            raise ReplayedPacket("ESP sequence number replayed or outside the window")
        if self._limits.exhausted:
            raise SaExhausted("ESP SA exhausted: a rekeyed SA must replace it")

        iv_end = self._iv_end
        icv_start = length - self.icv_size
        if (icv_start - iv_end) % self._alignment:
            self.malformed_drops += 1
            raise MalformedPacket("ESP ciphertext is not a whole number of blocks")
        try:
            if self._aead:
                aad = _pack_esn_aad(self.spi, seq >> 32, seq_low) if self.esn else packet[:HEADER_SIZE]
                plaintext = self._cipher.decrypt(packet[HEADER_SIZE:iv_end], packet[iv_end:], aad)
            else:
                signed = packet[:icv_start]
                if self.esn:
                    signed = bytes(signed) + _pack_u32(seq >> 32)
                self._integrity.verify(signed, packet[icv_start:])
                plaintext = self._cipher.decrypt(packet[HEADER_SIZE:iv_end], packet[iv_end:icv_start], b"")
        except IntegrityError:
            self.auth_failures += 1
            raise AuthenticationFailed("ESP ICV verification failed") from None
        # Authenticated: only now may the window move (RFC 4303 §3.4.3).
        window.update(seq)
        self._stale_run = 0

        pad_length = plaintext[-2]
        payload_end = len(plaintext) - TRAILER_SIZE - pad_length
        if pad_length and (payload_end < 0 or plaintext[payload_end:-TRAILER_SIZE] != _PADDING[:pad_length]):
            self.malformed_drops += 1
            raise MalformedPacket("ESP padding is not 1, 2, 3, … (RFC 4303 §2.4)")
        self.packets += 1
        self.bytes += payload_end
        if self.packets >= self._next_packets or self.bytes >= self._next_bytes:
            self._limits.crossed(self.packets, self.bytes)
            self._next_packets, self._next_bytes = self._limits.thresholds()
        return plaintext[-1], plaintext[:payload_end]

    def _check_sequence_reset(self, packet, seq: int) -> None:
        """Many replay drops in a row, or a packet left of the whole window: if this
        "replayed" packet is authentic, the peer most likely restarted its sequence counter
        under the same keys (an HA gateway taking over does exactly that). The window stays
        untouched (the packet is still dropped); the owner is told once, as a soft limit, so
        that it rekeys the SA at once instead of losing traffic until the peer's counter passes
        ours again. Replayed captures would pass this check too, so it does nothing but ask
        for that one rekey."""
        iv_end = self._iv_end
        icv_start = len(packet) - self.icv_size
        if (icv_start - iv_end) % self._alignment:
            return
        try:
            if self._aead:
                aad = _pack_esn_aad(self.spi, seq >> 32, seq & SEQ32_MAX) if self.esn else packet[:HEADER_SIZE]
                self._cipher.decrypt(packet[HEADER_SIZE:iv_end], packet[iv_end:], aad)
            else:
                signed = bytes(packet[:icv_start]) + (_pack_u32(seq >> 32) if self.esn else b"")
                self._integrity.verify(signed, packet[icv_start:])  # no decryption: CBC state
        except IntegrityError:
            return
        self._reset_reported = True
        self._limits.fire("soft", "sequence-reset")

