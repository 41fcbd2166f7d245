"""The Encrypted payload SK (RFC 7296 §3.14) and IKE fragmentation SKF (RFC 7383).

Layout of the protected content, inside SK (and each SKF after its fragment header)::

    IV | encrypt(inner payloads | padding | pad length) | ICV

* AES-CBC + HMAC (RFC 7296 §3.14): the IV is random, the plaintext is padded to the
  16-byte block; the ICV is the truncated HMAC over the whole message from the first
  octet of the IKE header up to (not including) the ICV.
* AEAD — AES-GCM (RFC 5282 §3, §5.1) and ChaCha20-Poly1305 (RFC 7634 §3): the 8-byte IV is
  explicit, the salt comes from the key material (ike/transforms.py), no padding is needed
  beyond the pad-length octet, the ICV is the AEAD tag and the additional authenticated data
  is the IKE header plus the SK payload's generic header (for SKF also its Fragment Number
  and Total Fragments fields, RFC 7383 §2.5.3).

Errors: anything that cannot be authenticated raises ``IntegrityError`` (the message must be
dropped silently); an authenticated message whose content is malformed raises ``ParseError``
(the session may answer INVALID_SYNTAX).

Nonces: AEAD IVs come from a per-direction counter, because a repeated nonce under one key is
fatal for GCM/ChaCha20; CBC IVs are random. Both sources can be replaced for tests.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field, replace
from typing import Callable

from .constants import IntegId, PayloadType
from .payloads import (
    GENERIC_HEADER_SIZE,
    HEADER_SIZE,
    Encrypted,
    EncryptedFragment,
    Header,
    Message,
    ParseError,
    decode_payloads,
    encode_payloads,
)
from .transforms import IntegrityError, make_cipher, make_integrity

__all__ = [
    "FragmentReassembler",
    "IntegrityError",
    "SkProtector",
    "fragment_overhead",
]

_SKF_FIELDS = struct.Struct("!HH")  # Fragment Number, Total Fragments (RFC 7383 §2.5)
_IPV4_HEADER = 20
_IPV6_HEADER = 40
_UDP_HEADER = 8
_NON_ESP_MARKER = 4  # four zero octets before IKE on port 4500 (RFC 3948 §2.2)


def fragment_overhead(ip_version: int = 6, non_esp_marker: bool = True) -> int:
    """Bytes between an IP datagram's start and the IKE header (RFC 7383 §2.5.1).

    The defaults are the worst case (IPv6, NAT-T port 4500), so a size computed with them
    fits whatever path the message takes.
    """
    ip = _IPV4_HEADER if ip_version == 4 else _IPV6_HEADER
    return ip + _UDP_HEADER + (_NON_ESP_MARKER if non_esp_marker else 0)


def _proposal_algorithms(proposal) -> tuple[int, int | None, int | None]:
    """(encr id, key bits, integ id) from an IkeProposal (ike/proposals.py)."""
    integ = proposal.integ_id
    if integ == IntegId.NONE:
        integ = None
    return proposal.encr_id, proposal.encr_key_bits, integ


@dataclass
class _Direction:
    """Cipher and integrity for one direction of an IKE SA, plus its IV source."""

    cipher: object = field(repr=False)
    integrity: object | None = field(repr=False)
    counter: int = 0

    @property
    def icv_size(self) -> int:
        return self.cipher.icv_size if self.cipher.aead else self.integrity.icv_size


class SkProtector:
    """Seals and opens SK/SKF payloads for one IKE SA.

    ``proposal`` is the chosen IkeProposal (encr_id, encr_key_bits, integ_id), ``keys`` the
    IkeSaKeys; the initiator sends with SK_ei/SK_ai and receives with SK_er/SK_ar.
    ``random_bytes`` supplies CBC IVs (default ``os.urandom``).
    """

    def __init__(self, proposal, keys, is_initiator: bool,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        encr_id, key_bits, integ_id = _proposal_algorithms(proposal)
        e_out, a_out, e_in, a_in = (
            (keys.sk_ei, keys.sk_ai, keys.sk_er, keys.sk_ar) if is_initiator
            else (keys.sk_er, keys.sk_ar, keys.sk_ei, keys.sk_ai)
        )
        self._out = self._direction(encr_id, key_bits, integ_id, e_out, a_out)
        self._in = self._direction(encr_id, key_bits, integ_id, e_in, a_in)
        self._random_bytes = random_bytes

    @staticmethod
    def _direction(encr_id, key_bits, integ_id, sk_e, sk_a) -> _Direction:
        cipher = make_cipher(encr_id, key_bits, sk_e)
        if cipher.aead:
            # RFC 5282 §8: a combined-mode cipher is negotiated without an integrity transform.
            if integ_id is not None:
                raise ValueError("an AEAD cipher must not be combined with an integrity algorithm")
            return _Direction(cipher, None)
        if integ_id is None:
            raise ValueError("a non-AEAD cipher needs an integrity algorithm")
        return _Direction(cipher, make_integrity(integ_id, sk_a))

    def __repr__(self) -> str:
        return f"<SkProtector {self._out.cipher!r}>"

    # ------------------------------------------------------------------ sizes

    def _max_chunk(self, room: int) -> int:
        """Largest inner-payload chunk whose protected form fits ``room`` bytes after the
        payload header (IV + ciphertext + ICV)."""
        cipher = self._out.cipher
        space = room - cipher.iv_size - self._out.icv_size
        space -= space % cipher.block_size  # ciphertext is whole blocks
        return space - 1  # the pad length octet

    # ------------------------------------------------------------------ sealing

    def _next_iv(self) -> bytes:
        cipher = self._out.cipher
        if cipher.unique_iv:
            # Unique per key: a counter (RFC 5282 §3.1, RFC 7634 §2, RFC 5930 §2 allow any
            # unique value).
            self._out.counter += 1
            if self._out.counter >= 1 << 64:
                raise OverflowError("IV counter exhausted: rekey the IKE SA")
            return self._out.counter.to_bytes(cipher.iv_size, "big")
        return self._random_bytes(cipher.iv_size)

    def _protect(self, prefix: bytes, inner: bytes) -> bytes:
        """Encrypt ``inner`` and return the whole datagram ``prefix`` + IV + ct + ICV.

        ``prefix`` is everything before the IV (IKE header, SK/SKF headers) with every
        length already set to the final value, as both the AAD and the ICV need it.
        """
        cipher = self._out.cipher
        pad = -(len(inner) + 1) % cipher.block_size
        plaintext = inner + bytes(pad) + bytes([pad])
        iv = self._next_iv()
        if cipher.aead:
            return prefix + iv + cipher.encrypt(iv, plaintext, prefix)
        signed = prefix + iv + cipher.encrypt(iv, plaintext, b"")
        return signed + self._out.integrity.sign(signed)

    def _protected_size(self, inner_size: int) -> int:
        cipher = self._out.cipher
        padded = inner_size + 1
        padded += -padded % cipher.block_size
        return cipher.iv_size + padded + self._out.icv_size

    def seal(self, header: Header, payloads: list) -> bytes:
        """The datagram carrying ``payloads`` inside one SK payload."""
        first, inner = encode_payloads(payloads)
        sk_length = GENERIC_HEADER_SIZE + self._protected_size(len(inner))
        header = replace(header, next_payload=PayloadType.SK, length=HEADER_SIZE + sk_length)
        prefix = header.encode() + struct.pack("!BBH", first, 0, sk_length)
        return self._protect(prefix, inner)

    def seal_fragments(self, header: Header, payloads: list, max_datagram: int, *,
                       ip_version: int = 6, non_esp_marker: bool = True) -> list[bytes]:
        """The message split into SKF fragments (RFC 7383 §2.5), each fitting an IP datagram
        of ``max_datagram`` bytes once IP/UDP headers (and the non-ESP marker) are added.

        The inner payload chain is cut into chunks; each chunk is padded, encrypted and
        authenticated on its own. Fragment 1 names the first inner payload, the others 0.
        """
        first, inner = encode_payloads(payloads)
        room = (max_datagram - fragment_overhead(ip_version, non_esp_marker)
                - HEADER_SIZE - GENERIC_HEADER_SIZE - _SKF_FIELDS.size)
        chunk_size = self._max_chunk(room)
        if chunk_size < 1:
            raise ValueError(f"a {max_datagram}-byte datagram leaves no room for fragment data")
        chunks = [inner[i:i + chunk_size] for i in range(0, len(inner), chunk_size)] or [b""]
        if len(chunks) > 0xFFFF:
            raise ValueError(f"message needs {len(chunks)} fragments, more than 65535")
        datagrams = []
        for number, chunk in enumerate(chunks, start=1):
            skf_length = (GENERIC_HEADER_SIZE + _SKF_FIELDS.size
                          + self._protected_size(len(chunk)))
            fragment_header = replace(header, next_payload=PayloadType.SKF,
                                      length=HEADER_SIZE + skf_length)
            next_payload = first if number == 1 else PayloadType.NONE
            prefix = (fragment_header.encode()
                      + struct.pack("!BBH", next_payload, 0, skf_length)
                      + _SKF_FIELDS.pack(number, len(chunks)))
            datagrams.append(self._protect(prefix, chunk))
        return datagrams

    # ------------------------------------------------------------------ opening

    def _unprotect(self, message_bytes: bytes, protected: bytes, what: PayloadType) -> bytes:
        """Authenticate and decrypt the IV|ct|ICV at the end of ``message_bytes``; returns
        the inner bytes with padding removed."""
        cipher = self._in.cipher
        icv_size = self._in.icv_size
        if len(protected) < cipher.iv_size + icv_size + 1:
            raise IntegrityError(
                f"{what.name} content of {len(protected)} bytes cannot hold IV, ICV and pad length"
            )
        prefix = message_bytes[:len(message_bytes) - len(protected)]
        iv = protected[:cipher.iv_size]
        if cipher.aead:
            plaintext = cipher.decrypt(iv, protected[cipher.iv_size:], prefix)
        else:
            # RFC 7296 §3.14: check the ICV before decrypting anything.
            self._in.integrity.verify(message_bytes[:-icv_size], protected[-icv_size:])
            ciphertext = protected[cipher.iv_size:-icv_size]
            if not ciphertext or len(ciphertext) % cipher.block_size:
                raise ParseError(
                    f"ciphertext of {len(ciphertext)} bytes is not a whole number of "
                    f"{cipher.block_size}-byte blocks", payload=what, offset=len(prefix) + cipher.iv_size,
                )
            plaintext = cipher.decrypt(iv, ciphertext, b"")
        pad_length = plaintext[-1]
        if pad_length + 1 > len(plaintext):
            raise ParseError(
                f"pad length {pad_length} exceeds the {len(plaintext)}-byte plaintext",
                payload=what, offset=len(plaintext) - 1,
            )
        return plaintext[:len(plaintext) - pad_length - 1]

    def open_chain(self, message_bytes: bytes, message: Message) -> tuple[int, bytes]:
        """Authenticate and decrypt the SK payload of ``message`` (decoded from
        ``message_bytes``); returns (first inner payload type, inner chain bytes).

        The bytes are what RFC 9242 §3.3 IntAuth computations need.
        """
        sk = message.payloads[-1] if message.payloads else None
        if not isinstance(sk, Encrypted):
            raise ValueError("message has no SK payload (SKF goes to a FragmentReassembler)")
        return sk.first_payload, self._unprotect(bytes(message_bytes), sk.data, PayloadType.SK)

    def open(self, message_bytes: bytes, message: Message) -> list:
        """The payloads inside the SK payload of ``message``."""
        first, inner = self.open_chain(message_bytes, message)
        return decode_payloads(first, inner)

    def open_fragment(self, message_bytes: bytes, fragment: EncryptedFragment) -> bytes:
        """Authenticate and decrypt one SKF fragment; returns its chunk of the inner chain."""
        return self._unprotect(bytes(message_bytes), fragment.data, PayloadType.SKF)


@dataclass
class _FragmentSet:
    total: int
    first_payload: int = PayloadType.NONE
    chunks: dict[int, bytes] = field(default_factory=dict, repr=False)


class FragmentReassembler:
    """Collects SKF fragments per message and returns the whole inner payload chain.

    Sets are keyed by (message ID, is response): the peer's requests and its responses to
    ours number their message IDs independently, so both may be in flight with one ID.

    RFC 7383 §2.6: every fragment is authenticated on its own before it is kept (one that
    fails raises IntegrityError and is forgotten; the others stay); duplicates are ignored;
    a fragment announcing more fragments than the stored set means the peer re-fragmented
    with a smaller size (§2.5.2), so the old set is dropped and collection starts over,
    while one announcing fewer is stale and dropped.
    """

    def __init__(self, protector: SkProtector, max_fragments: int = 256) -> None:
        self.protector = protector
        self.max_fragments = max_fragments
        self._sets: dict[tuple[int, bool], _FragmentSet] = {}

    def pending(self) -> list[tuple[int, bool]]:
        """(message ID, is response) of every incomplete fragment set."""
        return list(self._sets)

    def discard(self, message_id: int, is_response: bool | None = None) -> None:
        """Forget incomplete sets of ``message_id`` (of both directions if None)."""
        for key in [k for k in self._sets if k[0] == message_id
                    and is_response in (None, k[1])]:
            del self._sets[key]

    def add_chain(self, message_bytes: bytes, message: Message) -> tuple[int, bytes] | None:
        """Add one fragment; when the set is complete return (first payload type, inner
        chain bytes) and forget the set, else None."""
        fragment = message.payloads[-1] if message.payloads else None
        if not isinstance(fragment, EncryptedFragment):
            raise ValueError("message has no SKF payload")
        if fragment.total > self.max_fragments:
            raise ParseError(
                f"{fragment.total} fragments exceed the limit of {self.max_fragments}",
                payload=PayloadType.SKF, offset=len(message_bytes) - len(fragment.data) - 2,
            )
        key = (message.header.message_id, message.header.is_response)
        current = self._sets.get(key)
        if current is not None and fragment.total < current.total:
            return None  # stale fragment of an older, coarser fragmentation
        if current is not None and fragment.number in current.chunks and fragment.total == current.total:
            return None  # duplicate (e.g. a retransmission)
        chunk = self.protector.open_fragment(message_bytes, fragment)  # may raise IntegrityError
        if current is None or fragment.total > current.total:
            current = self._sets[key] = _FragmentSet(fragment.total)
        current.chunks[fragment.number] = chunk
        if fragment.number == 1:
            current.first_payload = fragment.first_payload
        if len(current.chunks) < current.total:
            return None
        del self._sets[key]
        inner = b"".join(current.chunks[n] for n in range(1, current.total + 1))
        return current.first_payload, inner

    def add(self, message_bytes: bytes, message: Message) -> list | None:
        """Add one fragment; when the set is complete return the decoded inner payloads."""
        result = self.add_chain(message_bytes, message)
        if result is None:
            return None
        first, inner = result
        return decode_payloads(first, inner)
