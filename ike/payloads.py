"""IKEv2 message and payload wire format (RFC 7296 §3, RFC 7383 §2.5).

Decoding is strict: every length is checked against its container, and a failure raises
:class:`ParseError` naming the payload, the byte offset and the Notify the session should
answer with. Encoding fills in lengths, "last" markers and the next-payload chain, so that
``decode(encode(x)) == x`` for every value this module can produce.

Reserved fields are sent as zero and ignored on receipt, as RFC 7296 §3.2 asks.
Payloads carry only public data; the SK payload's content stays opaque here
(see ike/protection.py).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field, replace
from typing import ClassVar

from .constants import (
    IKE_MAJOR_VERSION,
    IKE_MINOR_VERSION,
    AuthMethod,
    CertEncoding,
    CfgType,
    ConfigAttr,
    EncrId,
    EsnId,
    ExchangeType,
    IdType,
    IntegId,
    KeId,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformAttr,
    TransformType,
    TsType,
)

FLAG_INITIATOR = 0x08
FLAG_VERSION = 0x10  # "I could speak a higher major version" (RFC 7296 §3.1)
FLAG_RESPONSE = 0x20

HEADER_SIZE = 28
GENERIC_HEADER_SIZE = 4
_CRITICAL_BIT = 0x80
_ATTR_TV_BIT = 0x8000  # Attribute Format bit: value is in the type/value word (RFC 7296 §3.3.5)

NONCE_MIN_SIZE = 16  # RFC 7296 §3.9
NONCE_MAX_SIZE = 256


# --------------------------------------------------------------------------- errors


class ParseError(Exception):
    """A received message that is malformed.

    ``payload`` is the payload type being parsed (None for the IKE header or the message as a
    whole), ``offset`` the byte offset of the offending field in the datagram (or in the
    decrypted payload chain), ``notify`` what to answer with and ``notify_data`` its data.
    """

    def __init__(
        self,
        reason: str,
        *,
        payload: PayloadType | int | None = None,
        offset: int = 0,
        notify: NotifyType = NotifyType.INVALID_SYNTAX,
        notify_data: bytes = b"",
    ) -> None:
        self.reason = reason
        self.payload = payload
        self.offset = offset
        self.notify = notify
        self.notify_data = notify_data
        super().__init__(reason)

    def __str__(self) -> str:
        return f"{_payload_name(self.payload)} at byte {self.offset}: {self.reason}"


def _payload_name(payload: int | None) -> str:
    if payload is None:
        return "IKE message"
    try:
        return f"{PayloadType(payload).name} payload"
    except ValueError:
        return f"payload type {payload}"


def _as_enum(enum_cls, value: int):
    """The enum member for ``value`` if the registry knows it, else the plain int."""
    try:
        return enum_cls(value)
    except ValueError:
        return value


def _require(condition: bool, reason: str, payload, offset: int) -> None:
    if not condition:
        raise ParseError(reason, payload=payload, offset=offset)


# --------------------------------------------------------------------------- header


@dataclass
class Header:
    """The fixed 28-byte IKE header (RFC 7296 §3.1)."""

    spi_i: bytes
    spi_r: bytes
    next_payload: int
    exchange: int
    flags: int
    message_id: int
    length: int = 0

    _FORMAT: ClassVar[struct.Struct] = struct.Struct("!8s8sBBBBII")

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)

    @property
    def from_initiator(self) -> bool:
        return bool(self.flags & FLAG_INITIATOR)

    def encode(self) -> bytes:
        if len(self.spi_i) != 8 or len(self.spi_r) != 8:
            raise ValueError("IKE SPIs must be 8 bytes each")
        version = (IKE_MAJOR_VERSION << 4) | IKE_MINOR_VERSION
        return self._FORMAT.pack(
            self.spi_i, self.spi_r, self.next_payload, version,
            self.exchange, self.flags, self.message_id, self.length,
        )

    @classmethod
    def decode(cls, data: bytes) -> Header:
        if len(data) < HEADER_SIZE:
            raise ParseError(
                f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte IKE header",
                offset=len(data),
            )
        spi_i, spi_r, next_payload, version, exchange, flags, message_id, length = (
            cls._FORMAT.unpack_from(data)
        )
        # Only the major version matters; a higher minor version must be accepted (§2.5).
        if version >> 4 != IKE_MAJOR_VERSION:
            raise ParseError(
                f"major version {version >> 4} is not {IKE_MAJOR_VERSION}",
                offset=17,
                notify=NotifyType.INVALID_MAJOR_VERSION,
            )
        return cls(
            spi_i, spi_r, _as_enum(PayloadType, next_payload), _as_enum(ExchangeType, exchange),
            flags, message_id, length,
        )


# --------------------------------------------------------------------------- payload base


class Payload:
    """Mixin for payload dataclasses: ``TYPE`` plus body encode/decode.

    ``offset`` passed to ``_decode_body`` is where the body starts in the datagram/chain,
    so errors can point at the exact byte.
    """

    TYPE: ClassVar[PayloadType]
    critical: bool

    def _encode_body(self) -> bytes:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool):  # pragma: no cover
        raise NotImplementedError


# --------------------------------------------------------------------------- SA payload


_TRANSFORM_ID_ENUMS = {
    TransformType.ENCR: EncrId,
    TransformType.PRF: PrfId,
    TransformType.INTEG: IntegId,
    TransformType.KE: KeId,
    TransformType.ESN: EsnId,
    **{TransformType(t): KeId for t in range(TransformType.ADDKE1, TransformType.ADDKE7 + 1)},
}

_LAST = 0  # value of the "Last Substruc" octet on the final proposal/transform (§3.3.1)
_MORE_PROPOSALS = 2
_MORE_TRANSFORMS = 3


@dataclass
class Transform:
    """Transform substructure (RFC 7296 §3.3.2).

    ``extra_attributes`` holds, verbatim, any attribute other than Key Length; RFC 7296
    §3.3.6 says a transform with an attribute we do not understand must be rejected, which is
    the proposal chooser's job, so it is kept rather than dropped.
    """

    type: int
    id: int
    key_length: int | None = None
    extra_attributes: bytes = b""

    _HEADER: ClassVar[struct.Struct] = struct.Struct("!BxHBxH")

    def encode(self, last: bool) -> bytes:
        attributes = b""
        if self.key_length is not None:
            attributes = struct.pack("!HH", _ATTR_TV_BIT | TransformAttr.KEY_LENGTH, self.key_length)
        attributes += self.extra_attributes
        length = self._HEADER.size + len(attributes)
        marker = _LAST if last else _MORE_TRANSFORMS
        return self._HEADER.pack(marker, length, self.type, self.id) + attributes

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int, offset: int) -> tuple[Transform, int, bool]:
        """Decode the transform at ``data[pos:end]``; returns (transform, next pos, is_last)."""
        sa = PayloadType.SA
        _require(end - pos >= cls._HEADER.size, "truncated transform substructure", sa, offset + pos)
        marker, length, t_type, t_id = cls._HEADER.unpack_from(data, pos)
        _require(marker in (_LAST, _MORE_TRANSFORMS),
                 f"transform 'last substruc' is {marker}, not 0 or 3", sa, offset + pos)
        _require(length >= cls._HEADER.size,
                 f"transform length {length} is shorter than its 8-byte header", sa, offset + pos + 2)
        _require(pos + length <= end,
                 f"transform length {length} overruns its proposal", sa, offset + pos + 2)
        key_length = None
        extra = bytearray()
        a = pos + cls._HEADER.size
        stop = pos + length
        while a < stop:
            _require(stop - a >= 4, "truncated transform attribute", sa, offset + a)
            word, value = struct.unpack_from("!HH", data, a)
            attr_type = word & ~_ATTR_TV_BIT
            if word & _ATTR_TV_BIT:
                attr_end = a + 4
            else:  # TLV format: the second word is the value's length
                attr_end = a + 4 + value
                _require(attr_end <= stop, "transform attribute overruns its transform", sa, offset + a + 2)
            if attr_type == TransformAttr.KEY_LENGTH:
                _require(bool(word & _ATTR_TV_BIT), "Key Length attribute must use TV format", sa, offset + a)
                _require(key_length is None, "duplicate Key Length attribute", sa, offset + a)
                key_length = value
            else:
                extra += data[a:attr_end]
            a = attr_end
        t_type = _as_enum(TransformType, t_type)
        id_enum = _TRANSFORM_ID_ENUMS.get(t_type)
        t_id = _as_enum(id_enum, t_id) if id_enum else t_id
        return cls(t_type, t_id, key_length, bytes(extra)), stop, marker == _LAST


@dataclass
class Proposal:
    """Proposal substructure (RFC 7296 §3.3.1)."""

    number: int
    protocol: int
    spi: bytes
    transforms: list[Transform]

    _HEADER: ClassVar[struct.Struct] = struct.Struct("!BxHBBBB")

    def encode(self, last: bool) -> bytes:
        if len(self.transforms) > 255:
            raise ValueError("a proposal holds at most 255 transforms")
        body = b"".join(
            t.encode(last=i == len(self.transforms) - 1) for i, t in enumerate(self.transforms)
        )
        length = self._HEADER.size + len(self.spi) + len(body)
        marker = _LAST if last else _MORE_PROPOSALS
        header = self._HEADER.pack(
            marker, length, self.number, self.protocol, len(self.spi), len(self.transforms)
        )
        return header + self.spi + body

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int, offset: int) -> tuple[Proposal, int, bool]:
        sa = PayloadType.SA
        _require(end - pos >= cls._HEADER.size, "truncated proposal substructure", sa, offset + pos)
        marker, length, number, protocol, spi_size, count = cls._HEADER.unpack_from(data, pos)
        _require(marker in (_LAST, _MORE_PROPOSALS),
                 f"proposal 'last substruc' is {marker}, not 0 or 2", sa, offset + pos)
        _require(length >= cls._HEADER.size + spi_size,
                 f"proposal length {length} cannot hold its header and {spi_size}-byte SPI",
                 sa, offset + pos + 2)
        _require(pos + length <= end, f"proposal length {length} overruns the SA payload",
                 sa, offset + pos + 2)
        spi_start = pos + cls._HEADER.size
        spi = bytes(data[spi_start:spi_start + spi_size])
        stop = pos + length
        t_pos = spi_start + spi_size
        transforms = []
        last = t_pos >= stop  # an empty transform list has no "last" transform
        while t_pos < stop:
            _require(not last, "data after the transform marked last", sa, offset + t_pos)
            transform, t_pos, last = Transform.decode(data, t_pos, stop, offset)
            transforms.append(transform)
        _require(last or not transforms, "last transform is not marked last", sa, offset + stop)
        _require(len(transforms) == count,
                 f"proposal announces {count} transforms but holds {len(transforms)}",
                 sa, offset + pos + 7)
        return cls(number, _as_enum(ProtocolId, protocol), spi, transforms), stop, marker == _LAST


@dataclass
class SA(Payload):
    """Security Association payload (RFC 7296 §3.3)."""

    TYPE: ClassVar[PayloadType] = PayloadType.SA
    proposals: list[Proposal]
    critical: bool = False

    def _encode_body(self) -> bytes:
        if not self.proposals:
            raise ValueError("an SA payload needs at least one proposal")
        return b"".join(
            p.encode(last=i == len(self.proposals) - 1) for i, p in enumerate(self.proposals)
        )

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool) -> SA:
        proposals = []
        pos = 0
        last = False
        while pos < len(body):
            _require(not last, "data after the proposal marked last", cls.TYPE, offset + pos)
            proposal, pos, last = Proposal.decode(body, pos, len(body), offset)
            proposals.append(proposal)
        _require(last, "SA payload without a proposal marked last", cls.TYPE, offset + pos)
        return cls(proposals, critical)


# --------------------------------------------------------------------------- simple payloads


@dataclass
class KE(Payload):
    """Key Exchange payload (RFC 7296 §3.4)."""

    TYPE: ClassVar[PayloadType] = PayloadType.KE
    group: int
    data: bytes
    critical: bool = False

    def _encode_body(self) -> bytes:
        return struct.pack("!H2x", self.group) + self.data

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool) -> KE:
        _require(len(body) >= 4, "KE payload shorter than its 4-byte group header", cls.TYPE, offset)
        (group,) = struct.unpack_from("!H", body)
        return cls(_as_enum(KeId, group), bytes(body[4:]), critical)


class _TypeAndDataPayload(Payload):
    """Shared codec for payloads laid out as a one-octet type, 3 reserved octets, then data
    (ID §3.5, AUTH §3.8, CP header §3.15) or a one-octet type straight followed by data
    (CERT §3.6, CERTREQ §3.7)."""

    _TYPE_FIELD: ClassVar[str]
    _TYPE_ENUM: ClassVar[type]
    _RESERVED: ClassVar[int] = 3

    def _encode_body(self) -> bytes:
        kind = getattr(self, self._TYPE_FIELD)
        return bytes([kind]) + bytes(self._RESERVED) + self.data

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool):
        header = 1 + cls._RESERVED
        _require(len(body) >= header, f"payload shorter than its {header}-byte header", cls.TYPE, offset)
        return cls(_as_enum(cls._TYPE_ENUM, body[0]), bytes(body[header:]), critical)


@dataclass
class IDi(_TypeAndDataPayload):
    """Identification of the initiator (RFC 7296 §3.5)."""

    TYPE: ClassVar[PayloadType] = PayloadType.IDi
    _TYPE_FIELD: ClassVar[str] = "id_type"
    _TYPE_ENUM: ClassVar[type] = IdType
    id_type: int
    data: bytes
    critical: bool = False


@dataclass
class IDr(_TypeAndDataPayload):
    """Identification of the responder (RFC 7296 §3.5)."""

    TYPE: ClassVar[PayloadType] = PayloadType.IDr
    _TYPE_FIELD: ClassVar[str] = "id_type"
    _TYPE_ENUM: ClassVar[type] = IdType
    id_type: int
    data: bytes
    critical: bool = False


@dataclass
class CERT(_TypeAndDataPayload):
    """Certificate payload (RFC 7296 §3.6)."""

    TYPE: ClassVar[PayloadType] = PayloadType.CERT
    _TYPE_FIELD: ClassVar[str] = "encoding"
    _TYPE_ENUM: ClassVar[type] = CertEncoding
    _RESERVED: ClassVar[int] = 0
    encoding: int
    data: bytes
    critical: bool = False


@dataclass
class CERTREQ(_TypeAndDataPayload):
    """Certificate Request payload (RFC 7296 §3.7); data is concatenated SHA-1 key hashes."""

    TYPE: ClassVar[PayloadType] = PayloadType.CERTREQ
    _TYPE_FIELD: ClassVar[str] = "encoding"
    _TYPE_ENUM: ClassVar[type] = CertEncoding
    _RESERVED: ClassVar[int] = 0
    encoding: int
    data: bytes
    critical: bool = False


@dataclass
class AUTH(_TypeAndDataPayload):
    """Authentication payload (RFC 7296 §3.8)."""

    TYPE: ClassVar[PayloadType] = PayloadType.AUTH
    _TYPE_FIELD: ClassVar[str] = "method"
    _TYPE_ENUM: ClassVar[type] = AuthMethod
    method: int
    data: bytes
    critical: bool = False


@dataclass
class Nonce(Payload):
    """Nonce payload (RFC 7296 §3.9): 16 to 256 octets."""

    TYPE: ClassVar[PayloadType] = PayloadType.NONCE
    data: bytes
    critical: bool = False

    def _encode_body(self) -> bytes:
        if not NONCE_MIN_SIZE <= len(self.data) <= NONCE_MAX_SIZE:
            raise ValueError(f"nonce of {len(self.data)} bytes is outside 16..256")
        return self.data

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool) -> Nonce:
        _require(NONCE_MIN_SIZE <= len(body) <= NONCE_MAX_SIZE,
                 f"nonce of {len(body)} bytes is outside 16..256", cls.TYPE, offset)
        return cls(bytes(body), critical)


@dataclass
class Notify(Payload):
    """Notify payload (RFC 7296 §3.10)."""

    TYPE: ClassVar[PayloadType] = PayloadType.NOTIFY
    type: int
    protocol: int = 0
    spi: bytes = b""
    data: bytes = b""
    critical: bool = False

    def _encode_body(self) -> bytes:
        return struct.pack("!BBH", self.protocol, len(self.spi), self.type) + self.spi + self.data

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool) -> Notify:
        _require(len(body) >= 4, "Notify payload shorter than its 4-byte header", cls.TYPE, offset)
        protocol, spi_size, n_type = struct.unpack_from("!BBH", body)
        _require(4 + spi_size <= len(body), f"SPI size {spi_size} overruns the Notify payload",
                 cls.TYPE, offset + 1)
        spi = bytes(body[4:4 + spi_size])
        return cls(_as_enum(NotifyType, n_type), _as_enum(ProtocolId, protocol), spi,
                   bytes(body[4 + spi_size:]), critical)


@dataclass
class Delete(Payload):
    """Delete payload (RFC 7296 §3.11): for IKE no SPIs, for AH/ESP 4-byte SPIs."""

    TYPE: ClassVar[PayloadType] = PayloadType.DELETE
    protocol: int
    spis: list[bytes]
    critical: bool = False

    def _encode_body(self) -> bytes:
        spi_size = len(self.spis[0]) if self.spis else 0
        if any(len(spi) != spi_size for spi in self.spis):
            raise ValueError("all SPIs of a Delete payload must have the same size")
        return struct.pack("!BBH", self.protocol, spi_size, len(self.spis)) + b"".join(self.spis)

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool) -> Delete:
        _require(len(body) >= 4, "Delete payload shorter than its 4-byte header", cls.TYPE, offset)
        protocol, spi_size, count = struct.unpack_from("!BBH", body)
        _require(len(body) - 4 == spi_size * count,
                 f"{count} SPIs of {spi_size} bytes do not fill the {len(body) - 4} bytes given",
                 cls.TYPE, offset + 2)
        _require(spi_size > 0 or count == 0, "SPI size 0 with a non-zero SPI count",
                 cls.TYPE, offset + 1)
        spis = [bytes(body[4 + i * spi_size:4 + (i + 1) * spi_size]) for i in range(count)]
        return cls(_as_enum(ProtocolId, protocol), spis, critical)


@dataclass
class VendorId(Payload):
    """Vendor ID payload (RFC 7296 §3.12)."""

    TYPE: ClassVar[PayloadType] = PayloadType.VENDOR
    data: bytes
    critical: bool = False

    def _encode_body(self) -> bytes:
        return self.data

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool) -> VendorId:
        return cls(bytes(body), critical)


# --------------------------------------------------------------------------- traffic selectors

_TS_ADDRESS_SIZE = {TsType.IPV4_ADDR_RANGE: 4, TsType.IPV6_ADDR_RANGE: 16}
_TS_HEADER = struct.Struct("!BBHHH")  # type, IP protocol, length, start port, end port


@dataclass
class TrafficSelector:
    """One traffic selector (RFC 7296 §3.13.1), addresses as ``ipaddress`` objects."""

    ts_type: int
    ip_protocol: int
    start_port: int
    end_port: int
    start_addr: ipaddress.IPv4Address | ipaddress.IPv6Address
    end_addr: ipaddress.IPv4Address | ipaddress.IPv6Address

    @classmethod
    def from_network(cls, network, protocol: int = 0, ports: tuple[int, int] = (0, 65535)):
        network = ipaddress.ip_network(network)
        ts_type = TsType.IPV4_ADDR_RANGE if network.version == 4 else TsType.IPV6_ADDR_RANGE
        return cls(ts_type, protocol, ports[0], ports[1],
                   network.network_address, network.broadcast_address)

    def to_network_range(self) -> tuple:
        """The address range as the shortest tuple of ``ipaddress`` networks covering it."""
        if self.start_addr > self.end_addr:
            raise ValueError(f"traffic selector range {self.start_addr}-{self.end_addr} is empty")
        return tuple(ipaddress.summarize_address_range(self.start_addr, self.end_addr))

    def encode(self) -> bytes:
        size = _TS_ADDRESS_SIZE.get(self.ts_type)
        start, end = self.start_addr.packed, self.end_addr.packed
        if size is None or len(start) != size or len(end) != size:
            raise ValueError(f"addresses {self.start_addr}, {self.end_addr} do not fit TS type {self.ts_type}")
        return _TS_HEADER.pack(self.ts_type, self.ip_protocol, _TS_HEADER.size + 2 * size,
                               self.start_port, self.end_port) + start + end


@dataclass
class UnknownTrafficSelector:
    """A selector of a type we do not implement (e.g. RFC 9478 TS_SECLABEL), kept verbatim
    so the session can refuse it with TS_UNACCEPTABLE rather than failing the parse."""

    raw: bytes

    @property
    def ts_type(self) -> int:
        return self.raw[0]

    def encode(self) -> bytes:
        return self.raw


def _decode_selector(data: bytes, pos: int, payload: PayloadType, offset: int):
    _require(len(data) - pos >= 4, "truncated traffic selector", payload, offset + pos)
    ts_type = data[pos]
    (length,) = struct.unpack_from("!H", data, pos + 2)
    _require(length >= 4, f"traffic selector length {length} is shorter than 4", payload, offset + pos + 2)
    _require(pos + length <= len(data), f"traffic selector length {length} overruns the payload",
             payload, offset + pos + 2)
    size = _TS_ADDRESS_SIZE.get(ts_type)
    if size is None:
        return UnknownTrafficSelector(bytes(data[pos:pos + length])), pos + length
    _require(length == _TS_HEADER.size + 2 * size,
             f"selector length {length} is wrong for TS type {ts_type}", payload, offset + pos + 2)
    _, ip_protocol, _, start_port, end_port = _TS_HEADER.unpack_from(data, pos)
    a = pos + _TS_HEADER.size
    start = ipaddress.ip_address(bytes(data[a:a + size]))
    end = ipaddress.ip_address(bytes(data[a + size:a + 2 * size]))
    return TrafficSelector(TsType(ts_type), ip_protocol, start_port, end_port, start, end), pos + length


class _TrafficSelectorPayload(Payload):
    """Shared codec for TSi and TSr (RFC 7296 §3.13)."""

    selectors: list

    def _encode_body(self) -> bytes:
        if len(self.selectors) > 255:
            raise ValueError("at most 255 traffic selectors fit in one payload")
        return struct.pack("!B3x", len(self.selectors)) + b"".join(s.encode() for s in self.selectors)

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool):
        _require(len(body) >= 4, "TS payload shorter than its 4-byte header", cls.TYPE, offset)
        count = body[0]
        selectors = []
        pos = 4
        while pos < len(body):
            selector, pos = _decode_selector(body, pos, cls.TYPE, offset)
            selectors.append(selector)
        _require(len(selectors) == count,
                 f"payload announces {count} selectors but holds {len(selectors)}", cls.TYPE, offset)
        return cls(selectors, critical)


@dataclass
class TSi(_TrafficSelectorPayload):
    TYPE: ClassVar[PayloadType] = PayloadType.TSi
    selectors: list
    critical: bool = False


@dataclass
class TSr(_TrafficSelectorPayload):
    TYPE: ClassVar[PayloadType] = PayloadType.TSr
    selectors: list
    critical: bool = False


# --------------------------------------------------------------------------- configuration


@dataclass
class ConfigAttribute:
    """One configuration attribute (RFC 7296 §3.15.1); value is the raw octets."""

    type: int
    value: bytes = b""

    def encode(self) -> bytes:
        if not 0 <= self.type < 0x8000:
            raise ValueError(f"configuration attribute type {self.type} does not fit 15 bits")
        return struct.pack("!HH", self.type, len(self.value)) + self.value


@dataclass
class CP(Payload):
    """Configuration payload (RFC 7296 §3.15)."""

    TYPE: ClassVar[PayloadType] = PayloadType.CP
    cfg_type: int
    attributes: list[ConfigAttribute]
    critical: bool = False

    def _encode_body(self) -> bytes:
        return struct.pack("!B3x", self.cfg_type) + b"".join(a.encode() for a in self.attributes)

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool) -> CP:
        _require(len(body) >= 4, "CP payload shorter than its 4-byte header", cls.TYPE, offset)
        attributes = []
        pos = 4
        while pos < len(body):
            _require(len(body) - pos >= 4, "truncated configuration attribute", cls.TYPE, offset + pos)
            attr_type, length = struct.unpack_from("!HH", body, pos)
            _require(pos + 4 + length <= len(body),
                     f"configuration attribute length {length} overruns the CP payload",
                     cls.TYPE, offset + pos + 2)
            # The top bit is reserved and must be ignored on receipt (§3.15.1).
            attributes.append(ConfigAttribute(_as_enum(ConfigAttr, attr_type & 0x7FFF),
                                              bytes(body[pos + 4:pos + 4 + length])))
            pos += 4 + length
        return cls(_as_enum(CfgType, body[0]), attributes, critical)


@dataclass
class EAP(Payload):
    """EAP payload (RFC 7296 §3.16): data is the whole EAP packet, parsed by ike/eap.py."""

    TYPE: ClassVar[PayloadType] = PayloadType.EAP
    data: bytes
    critical: bool = False

    def _encode_body(self) -> bytes:
        return self.data

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool) -> EAP:
        _require(len(body) >= 4, "EAP packet shorter than its 4-byte header", cls.TYPE, offset)
        (eap_length,) = struct.unpack_from("!H", body, 2)
        _require(eap_length == len(body),
                 f"EAP length {eap_length} differs from the payload's {len(body)} bytes",
                 cls.TYPE, offset + 2)
        return cls(bytes(body), critical)


# --------------------------------------------------------------------------- encrypted payloads


@dataclass
class Encrypted(Payload):
    """Encrypted and Authenticated payload SK (RFC 7296 §3.14).

    ``first_payload`` travels in the generic header's Next Payload field; ``data`` is
    IV || ciphertext || ICV and is handled by ike/protection.py.
    """

    TYPE: ClassVar[PayloadType] = PayloadType.SK
    first_payload: int
    data: bytes
    critical: bool = False

    def _encode_body(self) -> bytes:
        return self.data

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool, first_payload: int = 0):
        return cls(_as_enum(PayloadType, first_payload), bytes(body), critical)


@dataclass
class EncryptedFragment(Payload):
    """Encrypted and Authenticated Fragment payload SKF (RFC 7383 §2.5).

    Only fragment 1 carries the inner chain's first payload type; the others carry 0.
    """

    TYPE: ClassVar[PayloadType] = PayloadType.SKF
    first_payload: int
    number: int
    total: int
    data: bytes
    critical: bool = False

    def _encode_body(self) -> bytes:
        return struct.pack("!HH", self.number, self.total) + self.data

    @classmethod
    def _decode_body(cls, body: bytes, offset: int, critical: bool, first_payload: int = 0):
        _require(len(body) >= 4, "SKF payload shorter than its 4-byte fragment header", cls.TYPE, offset)
        number, total = struct.unpack_from("!HH", body)
        # RFC 7383 §2.6: number 0 or above the total is invalid.
        _require(1 <= number <= total, f"fragment number {number} is outside 1..{total}", cls.TYPE, offset)
        return cls(_as_enum(PayloadType, first_payload), number, total, bytes(body[4:]), critical)


_ENCRYPTED_TYPES = (PayloadType.SK, PayloadType.SKF)

PAYLOAD_CLASSES: dict[int, type[Payload]] = {
    cls.TYPE: cls
    for cls in (SA, KE, IDi, IDr, CERT, CERTREQ, AUTH, Nonce, Notify, Delete, VendorId,
                TSi, TSr, CP, EAP, Encrypted, EncryptedFragment)
}


# --------------------------------------------------------------------------- payload chains


def encode_payloads(payloads) -> tuple[int, bytes]:
    """Encode a payload chain; returns (type of the first payload, bytes).

    SK/SKF must be last: their Next Payload field names the first *inner* payload.
    """
    chunks = []
    for i, payload in enumerate(payloads):
        is_last = i == len(payloads) - 1
        if payload.TYPE in _ENCRYPTED_TYPES:
            if not is_last:
                raise ValueError(f"{payload.TYPE.name} must be the last payload of a message")
            next_type = payload.first_payload
        else:
            next_type = PayloadType.NONE if is_last else payloads[i + 1].TYPE
        body = payload._encode_body()
        length = GENERIC_HEADER_SIZE + len(body)
        if length > 0xFFFF:
            raise ValueError(f"{payload.TYPE.name} payload of {length} bytes exceeds 65535")
        flags = _CRITICAL_BIT if payload.critical else 0
        chunks.append(struct.pack("!BBH", next_type, flags, length) + body)
    first = payloads[0].TYPE if payloads else PayloadType.NONE
    return first, b"".join(chunks)


def _decode_chain(first_type: int, data: bytes, start: int, base_offset: int,
                  allow_encrypted: bool) -> list:
    payloads = []
    next_type = first_type
    pos = start
    end = len(data)
    while next_type != PayloadType.NONE:
        here = base_offset + pos
        _require(end - pos >= GENERIC_HEADER_SIZE, "truncated generic payload header", next_type, here)
        following, flags, length = struct.unpack_from("!BBH", data, pos)
        critical = bool(flags & _CRITICAL_BIT)
        _require(length >= GENERIC_HEADER_SIZE,
                 f"payload length {length} is shorter than its 4-byte header", next_type, here + 2)
        _require(pos + length <= end,
                 f"payload length {length} overruns the message ({end - pos} bytes left)",
                 next_type, here + 2)
        body = data[pos + GENERIC_HEADER_SIZE:pos + length]
        body_offset = here + GENERIC_HEADER_SIZE
        cls = PAYLOAD_CLASSES.get(next_type)
        if next_type in _ENCRYPTED_TYPES:
            _require(allow_encrypted, "encrypted payload inside an encrypted payload", next_type, here)
            payloads.append(cls._decode_body(body, body_offset, critical, following))
            pos += length
            # RFC 7296 §3.14 / RFC 7383 §2.5: SK and SKF must be the last payload.
            _require(pos == end, f"{end - pos} bytes follow the {PayloadType(next_type).name} payload, "
                                 "which must be last", next_type, base_offset + pos)
            return payloads
        if cls is None:
            if critical:  # RFC 7296 §2.5: reject the message, name the payload type
                raise ParseError(
                    "unsupported payload marked critical", payload=next_type, offset=here,
                    notify=NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, notify_data=bytes([next_type]),
                )
            # unknown and not critical: skip it
        else:
            payloads.append(cls._decode_body(body, body_offset, critical))
        next_type = following
        pos += length
    _require(pos == end, f"{end - pos} bytes of trailing data after the last payload",
             None, base_offset + pos)
    return payloads


def decode_payloads(first_type: int, data: bytes, base_offset: int = 0) -> list:
    """Decode a payload chain that fills ``data`` exactly (e.g. an SK plaintext).

    ``base_offset`` is added to byte offsets in errors.
    """
    return _decode_chain(first_type, bytes(data), 0, base_offset, allow_encrypted=False)


# --------------------------------------------------------------------------- message


@dataclass
class Message:
    """An IKE message: header plus payload chain."""

    header: Header
    payloads: list = field(default_factory=list)

    def encode(self) -> bytes:
        """The datagram, with Next Payload and Length of the header filled in."""
        first, body = encode_payloads(self.payloads)
        header = replace(self.header, next_payload=first, length=HEADER_SIZE + len(body))
        return header.encode() + body

    @classmethod
    def decode(cls, data: bytes) -> Message:
        header = Header.decode(data)
        if header.length != len(data):
            raise ParseError(f"header length {header.length} differs from the datagram's "
                             f"{len(data)} bytes", offset=24)
        payloads = _decode_chain(header.next_payload, bytes(data), HEADER_SIZE, 0, allow_encrypted=True)
        return cls(header, payloads)

    def get(self, cls):
        """The first payload of class ``cls``, or None."""
        return next((p for p in self.payloads if isinstance(p, cls)), None)

    def all(self, cls) -> list:
        return [p for p in self.payloads if isinstance(p, cls)]

    def notifies(self, notify_type: int) -> list[Notify]:
        return [p for p in self.payloads if isinstance(p, Notify) and p.type == notify_type]
