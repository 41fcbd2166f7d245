"""EAP inside IKEv2 (RFC 7296 §2.16): the packet codec (RFC 3748) and the client methods
Identity, MD5-Challenge (RFC 3748 §5.4), MSCHAPv2 (RFC 2759 in the EAP framing of
draft-kamath-pppext-eap-mschapv2) and EAP-TLS (RFC 5216).

Sans-I/O: EapClient.respond() takes the bytes of one EAP payload and returns the bytes of
the next one to send (or None). EAP-TLS runs pyOpenSSL over memory BIOs.

    client = EapClient("mschapv2", "carol", password="...")
    reply = client.respond(eap_payload.data)     # None once Success/Failure arrived
    client.succeeded, client.msk, client.failure_reason
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Optional, Sequence, Union

from cryptography.hazmat.primitives import hashes

from . import mschapv2
from .certificates import CertificateError, validate_certificate


class EapCode(IntEnum):
    """RFC 3748 §4."""

    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class EapType(IntEnum):
    """RFC 3748 §5 and the IANA "Method Types" registry (the ones we speak)."""

    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    MD5_CHALLENGE = 4
    GTC = 6
    TLS = 13
    TTLS = 21
    PEAP = 25
    MSCHAPV2 = 26
    TLV = 33  # PEAP's EAP-TLV (Extensions) packets


METHODS = {"md5": EapType.MD5_CHALLENGE, "mschapv2": EapType.MSCHAPV2, "tls": EapType.TLS,
           "gtc": EapType.GTC, "ttls": EapType.TTLS, "peap": EapType.PEAP}
# What "the server chooses" allows when a profile names no method: every password method,
# tunnelled ones first (as charon-nm's EAP round takes whatever the server proposes)
PASSWORD_METHODS = ("peap", "ttls", "mschapv2", "gtc", "md5")


class EapError(ValueError):
    """A malformed EAP packet; the message names the problem."""


class EapConfigurationError(ValueError):
    """Our own EAP settings cannot work (found when the method starts)."""


# ---------------------------------------------------------------------------------------------
# Packet codec (RFC 3748 §4)


@dataclass(frozen=True)
class EapPacket:
    """One EAP packet. `type` and `data` (the Type-Data) exist for Request and Response only."""

    code: EapCode
    identifier: int
    type: Optional[int] = None
    data: bytes = b""

    def encode(self) -> bytes:
        if self.code in (EapCode.SUCCESS, EapCode.FAILURE):
            return struct.pack("!BBH", self.code, self.identifier, 4)
        body = bytes([self.type]) + self.data
        return struct.pack("!BBH", self.code, self.identifier, 4 + len(body)) + body

    @classmethod
    def decode(cls, data: bytes) -> "EapPacket":
        if len(data) < 4:
            raise EapError(f"EAP packet of {len(data)} octets is shorter than its header")
        code, identifier, length = struct.unpack_from("!BBH", data)
        if length < 4 or length > len(data):
            raise EapError(f"EAP length field {length} does not fit the {len(data)} octets "
                           "received")
        try:
            code = EapCode(code)
        except ValueError:
            raise EapError(f"unknown EAP code {code}") from None
        # §4: octets beyond the Length field are padding and ignored
        if code in (EapCode.SUCCESS, EapCode.FAILURE):
            return cls(code, identifier)
        if length < 5:
            raise EapError(f"EAP {code.name} without a Type field")
        kind = data[4]
        kind = EapType(kind) if kind in EapType._value2member_map_ else kind
        return cls(code, identifier, kind, bytes(data[5:length]))


def _response(request: EapPacket, type_: int, data: bytes = b"") -> bytes:
    return EapPacket(EapCode.RESPONSE, request.identifier, type_, data).encode()


# ---------------------------------------------------------------------------------------------
# MD5-Challenge (RFC 3748 §5.4, the CHAP algorithm of RFC 1994 §4.1)


def md5_challenge_response(identifier: int, password: str, challenge: bytes) -> bytes:
    """MD5(Identifier ‖ secret ‖ Challenge)."""
    digest = hashes.Hash(hashes.MD5())
    digest.update(bytes([identifier]) + password.encode("utf-8") + challenge)
    return digest.finalize()


def parse_value_and_name(type_data: bytes) -> tuple[bytes, bytes]:
    """Value-Size ‖ Value ‖ Name (MD5-Challenge and MS-CHAPv2 Challenge/Response)."""
    if not type_data or len(type_data) < 1 + type_data[0]:
        raise EapError("Value-Size exceeds the packet")
    size = type_data[0]
    return type_data[1:1 + size], type_data[1 + size:]


# ---------------------------------------------------------------------------------------------
# MS-CHAPv2 framing (draft-kamath-pppext-eap-mschapv2-02 §2)


class MsChapV2OpCode(IntEnum):
    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4
    CHANGE_PASSWORD = 7


MSCHAPV2_ERRORS = {
    646: "logon is not allowed at this time",
    647: "the account is disabled",
    648: "the password has expired",
    649: "the account has no dial-in permission",
    691: "wrong password",
    709: "changing the password failed",
}


def encode_mschapv2(opcode: int, mschapv2_id: int, data: bytes) -> bytes:
    """OpCode ‖ MS-CHAPv2-ID ‖ MS-Length ‖ Data, where MS-Length counts from OpCode, i.e.
    the EAP Length minus 5."""
    return struct.pack("!BBH", opcode, mschapv2_id, 4 + len(data)) + data


def decode_mschapv2(type_data: bytes) -> tuple[int, int, bytes]:
    """(OpCode, MS-CHAPv2-ID, Data). Responses of type Success/Failure are a lone OpCode."""
    if len(type_data) == 1:
        return type_data[0], 0, b""
    if len(type_data) < 4:
        raise EapError("MS-CHAPv2 packet shorter than its header")
    opcode, mschapv2_id, _ms_length = struct.unpack_from("!BBH", type_data)
    return opcode, mschapv2_id, type_data[4:]


def parse_mschapv2_message(data: bytes) -> dict[str, str]:
    """Fields of "S=… M=…" or "E=691 R=1 C=… V=3 M=…" (RFC 2759 §5, §6). M= runs to the
    end of the message and may contain spaces."""
    text = data.rstrip(b"\x00").decode("utf-8", "replace")
    fields: dict[str, str] = {}
    message_at = text.find("M=")
    if message_at >= 0:
        fields["M"] = text[message_at + 2:]
        text = text[:message_at]
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


# ---------------------------------------------------------------------------------------------
# EAP-TLS framing (RFC 5216 §3.1)

TLS_FLAG_LENGTH = 0x80  # L: a 4-octet TLS Message Length follows the flags
TLS_FLAG_MORE = 0x40  # M: more fragments follow
TLS_FLAG_START = 0x20  # S: EAP-TLS Start (server to peer)
DEFAULT_TLS_FRAGMENT_SIZE = 1024  # TLS data per EAP packet (strongSwan: 1024)
MAX_TLS_MESSAGE = 1 << 20  # refuse to buffer more than this


def tls_fragments(message: bytes, fragment_size: int) -> list[bytes]:
    """Type-Data for each EAP-TLS packet carrying message. The first of several fragments
    has L (with the total length) and every fragment but the last has M."""
    if len(message) <= fragment_size:
        return [bytes([0]) + message]
    pieces = [message[i:i + fragment_size] for i in range(0, len(message), fragment_size)]
    out = [bytes([TLS_FLAG_LENGTH | TLS_FLAG_MORE]) + struct.pack("!I", len(message)) + pieces[0]]
    out += [bytes([TLS_FLAG_MORE]) + piece for piece in pieces[1:-1]]
    out.append(bytes([0]) + pieces[-1])
    return out


def parse_tls_type_data(type_data: bytes) -> tuple[int, Optional[int], bytes]:
    """(flags, TLS Message Length or None, TLS data) of one EAP-TLS packet."""
    if not type_data:
        raise EapError("EAP-TLS packet without its Flags octet")
    flags = type_data[0]
    if flags & TLS_FLAG_LENGTH:
        if len(type_data) < 5:
            raise EapError("EAP-TLS packet with the L flag but no TLS Message Length")
        return flags, struct.unpack_from("!I", type_data, 1)[0], type_data[5:]
    return flags, None, type_data[1:]


class TlsReassembler:
    """Collects the fragments of one TLS message (RFC 5216 §2.1.5)."""

    def __init__(self):
        self._parts: list[bytes] = []
        self._size = 0
        self._expected: Optional[int] = None

    @property
    def in_progress(self) -> bool:
        return bool(self._parts)

    def add(self, flags: int, total: Optional[int], data: bytes) -> Optional[bytes]:
        """The whole message once its last fragment is in, else None."""
        if total is not None and not self._parts:
            if total > MAX_TLS_MESSAGE:
                raise EapError(f"EAP-TLS message of {total} octets is too long")
            self._expected = total
        self._parts.append(data)
        self._size += len(data)
        if self._size > MAX_TLS_MESSAGE or (self._expected is not None
                                            and self._size > self._expected):
            raise EapError("EAP-TLS fragments exceed the announced TLS Message Length")
        if flags & TLS_FLAG_MORE:
            return None
        message = b"".join(self._parts)
        if self._expected is not None and len(message) != self._expected:
            raise EapError(f"EAP-TLS message has {len(message)} octets, announced "
                           f"{self._expected}")
        self._parts, self._size, self._expected = [], 0, None
        return message


def tls_keying_material(connection) -> bytes:
    """RFC 5216 §2.3: Key_Material = TLS-PRF-128(master secret, "client EAP encryption",
    client.random ‖ server.random); MSK = its first 64 octets. RFC 5705 export without
    context computes exactly that PRF."""
    return connection.export_keying_material(b"client EAP encryption", 128)[:64]


def verify_server_chain(chain, config, now: Optional[float], method: str,
                        what: str = "the EAP server's certificate"):
    """The EAP server's TLS chain (EAP-TLS, PEAP, TTLS) against the profile's CAs and the
    server identity it must prove: (verified chain, None) or (None, the failure in words).
    The verified chain is kept for the owner's revocation check (ike/revocation_gate.py)."""
    if now is None:
        return None, f"EAP-{method}: no current time given to check {what}"
    try:
        return validate_certificate(chain[0], chain[1:], config.trust_anchors,
                                    config.server_identity, now), None
    except CertificateError as exc:
        return None, f"EAP-{method} server {exc}"


def pull_tls_output(connection) -> bytes:
    """Everything the TLS engine wants to send (from its memory BIO)."""
    from OpenSSL import SSL

    chunks = []
    while True:
        try:
            chunks.append(connection.bio_read(65536))
        except SSL.WantReadError:
            return b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# Client configuration


@dataclass
class TlsClientConfig:
    """What EAP-TLS needs: our certificate and key, the CAs that may issue the server's
    certificate and the identity that certificate must name (the gateway identity)."""

    certificate: Any  # cryptography x509.Certificate
    private_key: Any = field(repr=False)
    trust_anchors: Union[Sequence[Any], str] = ()
    server_identity: Union[str, tuple] = ""
    intermediates: Sequence[Any] = ()  # our own chain, sent after our certificate
    fragment_size: int = DEFAULT_TLS_FRAGMENT_SIZE


# ---------------------------------------------------------------------------------------------
# Client methods: each turns one Request of its type into the Type-Data of the Response.


class _Method:
    type: EapType
    msk: bytes = b""
    failure_reason: Optional[str] = None
    finished = False  # the method itself considers the peer authenticated

    def handle(self, request: EapPacket) -> Optional[bytes]:  # pragma: no cover
        raise NotImplementedError


class _Md5Method(_Method):
    type = EapType.MD5_CHALLENGE

    def __init__(self, password: str):
        self._password = password

    def handle(self, request):
        challenge, _name = parse_value_and_name(request.data)
        if not challenge:
            raise EapError("EAP-MD5 challenge is empty")
        value = md5_challenge_response(request.identifier, self._password, challenge)
        self.finished = True  # MD5 never authenticates the server; Success ends it
        return bytes([len(value)]) + value


class _MsChapV2Method(_Method):
    type = EapType.MSCHAPV2

    def __init__(self, username: str, password: str, random_bytes: Callable[[int], bytes]):
        self._username, self._password, self._random = username, password, random_bytes
        self._expected_authenticator: Optional[str] = None
        self._nt_response = b""

    def handle(self, request):
        opcode, mschapv2_id, data = decode_mschapv2(request.data)
        if opcode == MsChapV2OpCode.CHALLENGE:
            return self._answer_challenge(mschapv2_id, data)
        if opcode == MsChapV2OpCode.SUCCESS:
            return self._check_success(data)
        if opcode == MsChapV2OpCode.FAILURE:
            return self._failure(data)
        raise EapError(f"unexpected MS-CHAPv2 OpCode {opcode}")

    def _answer_challenge(self, mschapv2_id: int, data: bytes) -> bytes:
        challenge, _server_name = parse_value_and_name(data)
        if len(challenge) != mschapv2.CHALLENGE_SIZE:
            raise EapError(f"MS-CHAPv2 challenge of {len(challenge)} octets, expected 16")
        peer_challenge = self._random(mschapv2.CHALLENGE_SIZE)
        self._nt_response = mschapv2.generate_nt_response(
            challenge, peer_challenge, self._username, self._password)
        self._expected_authenticator = mschapv2.generate_authenticator_response(
            self._password, self._nt_response, peer_challenge, challenge, self._username)
        # RFC 2759 §4: Peer-Challenge ‖ 8 reserved zero octets ‖ NT-Response ‖ Flags (0)
        value = peer_challenge + bytes(8) + self._nt_response + b"\x00"
        response = bytes([len(value)]) + value + self._username.encode("utf-8")
        return encode_mschapv2(MsChapV2OpCode.RESPONSE, mschapv2_id, response)

    def _check_success(self, data: bytes) -> Optional[bytes]:
        received = parse_mschapv2_message(data).get("S", "")
        if self._expected_authenticator is None or not mschapv2.check_authenticator_response(
                self._expected_authenticator, "S=" + received):
            # RFC 2759 §8.8: a wrong authenticator response means the server is not genuine
            self.failure_reason = ("the gateway failed to prove it knows the password "
                                   "(wrong EAP-MSCHAPv2 authenticator response)")
            return None
        self.finished = True
        self.msk = mschapv2.msk(self._password, self._nt_response)
        return bytes([MsChapV2OpCode.SUCCESS])

    def _failure(self, data: bytes) -> bytes:
        fields = parse_mschapv2_message(data)
        try:
            code = int(fields.get("E", "0"))
        except ValueError:
            code = 0
        words = MSCHAPV2_ERRORS.get(code, "authentication failed")
        self.failure_reason = f"{words} (EAP-MSCHAPv2 error {code})"
        # draft-kamath §2: answer a Failure Request with a Failure Response (no retry here)
        return bytes([MsChapV2OpCode.FAILURE])


class _TlsMethod(_Method):
    type = EapType.TLS

    def __init__(self, config: TlsClientConfig, clock: Callable[[], Optional[float]]):
        if config is None:
            raise ValueError("EAP-TLS needs tls=TlsClientConfig(...)")
        if config.certificate is None or config.private_key is None:
            raise ValueError("EAP-TLS needs our certificate and private key")
        if not config.server_identity:
            raise ValueError("EAP-TLS needs the gateway identity its certificate must name")
        self._config, self._clock = config, clock
        self._connection = None
        self._incoming = TlsReassembler()
        self._outgoing: list[bytes] = []
        self._server_checked = False
        self._handshake_done = False

    def _start(self):
        from OpenSSL import SSL

        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_max_proto_version(SSL.TLS1_2_VERSION)  # RFC 5216 keying; TLS 1.3 is RFC 9190
        # strongSwan's own TLS stack (libtls, its EAP-TLS server) does not send RFC 5746
        # renegotiation_info, which OpenSSL 3 refuses by default. EAP-TLS never renegotiates,
        # so the attack RFC 5746 prevents cannot happen here (wpa_supplicant does the same).
        context.set_options(SSL.OP_LEGACY_SERVER_CONNECT)
        # OpenSSL would check validity against the system clock; we check the server's chain
        # ourselves with validate_certificate() and the caller's `now`.
        context.set_verify(SSL.VERIFY_NONE)
        context.use_certificate(self._config.certificate)
        context.use_privatekey(self._config.private_key)
        for cert in self._config.intermediates:
            context.add_extra_chain_cert(cert)
        try:
            context.check_privatekey()
        except SSL.Error:
            raise EapConfigurationError(
                "our EAP-TLS certificate and private key do not belong together") from None
        self._connection = SSL.Connection(context, None)
        self._connection.set_connect_state()

    def handle(self, request):
        flags, total, data = parse_tls_type_data(request.data)
        if flags & TLS_FLAG_START:
            if self._connection is not None:
                raise EapError("second EAP-TLS Start")
            self._start()
            return self._advance(b"")
        if self._connection is None:
            raise EapError("EAP-TLS packet before EAP-TLS Start")
        if self._outgoing and not data and not self._incoming.in_progress:
            return self._outgoing.pop(0)  # the server acknowledged our previous fragment
        message = self._incoming.add(flags, total, data)
        if message is None:
            return bytes([0])  # acknowledge a fragment (RFC 5216 §2.1.5)
        return self._advance(message)

    def _advance(self, received: bytes) -> Optional[bytes]:
        from OpenSSL import SSL

        if received:
            self._connection.bio_write(received)
        try:
            self._connection.do_handshake()
            self._handshake_done = True
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            self.failure_reason = f"EAP-TLS handshake failed: {_tls_error_words(exc)}"
            return None
        if not self._server_checked and not self._check_server():
            return None
        output = pull_tls_output(self._connection)
        if self._handshake_done:
            self.finished = True
            self.msk = tls_keying_material(self._connection)
        if not output:
            return bytes([0])  # nothing to say: acknowledge (final step before Success)
        self._outgoing = tls_fragments(output, self._config.fragment_size)
        return self._outgoing.pop(0)

    def _check_server(self) -> bool:
        chain = self._connection.get_peer_cert_chain(as_cryptography=True)
        if not chain:
            return True  # not yet received
        self._server_checked = True
        self.verified_chain, self.failure_reason = verify_server_chain(
            chain, self._config, self._clock(), "TLS", "the gateway certificate")
        return self.failure_reason is None


def _tls_error_words(exc: Exception) -> str:
    """The reason strings out of pyOpenSSL's nested error tuples."""
    try:
        reasons = [entry[2] for entry in exc.args[0] if entry[2]]
    except (IndexError, TypeError):
        reasons = []
    return ", ".join(reasons) or str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# The client


def _type_name(kind: int) -> str:
    return f"EAP-{EapType(kind).name}" if kind in EapType._value2member_map_ else f"EAP type {kind}"


class EapClient:
    """The peer side of one EAP conversation inside IKE_AUTH.

    method: one name of METHODS ("md5", "mschapv2", "tls", "gtc", "ttls", "peap") or a
    sequence of them: the methods we allow, preferred first. The server proposes a method;
    we take it if allowed, else Nak it naming ours (RFC 3748 §5.3.1). identity: our EAP
    identity (also the MS-CHAPv2 user name). password for the password methods;
    tls=TlsClientConfig for EAP-TLS; tunnel=eap_tunnel.TunnelConfig for PEAP/TTLS. now:
    the current time for certificate checks (respond() may pass a newer one).

    After EAP-Success, `succeeded` is True and `msk` holds the MSK (64 octets; empty for
    MD5 and GTC, which have none). After a failure `failure_reason` says why in plain words.
    """

    def __init__(self, method: Union[str, Sequence[str]], identity: str, password: str = "",
                 tls=None, now: Optional[float] = None,
                 random_bytes: Callable[[int], bytes] = os.urandom, tunnel=None,
                 outer_identity: Optional[str] = None):
        allowed = (method,) if isinstance(method, str) else tuple(method)
        unknown = [m for m in allowed if m not in METHODS]
        if unknown or not allowed:
            raise ValueError(f"unknown EAP method {(unknown or [''])[0]!r}; choose from "
                             f"{', '.join(METHODS)}")
        self.identity = identity
        # what the EAP-Identity response says (RFC 3748 §5.1), e.g. "anonymous@corp.example":
        # PEAP/TTLS send the real identity only inside the tunnel (RFC 5281 §7.3)
        self.outer_identity = outer_identity
        self.allowed = allowed
        self._password, self._tunnel = password, tunnel
        self._random = random_bytes
        self._now = now
        self.method: Optional[_Method] = None  # the method the server proposed and we took
        # EAP-TLS settings are checked now, not when the gateway proposes the method
        self._tls_method = _TlsMethod(tls, lambda: self._now) if "tls" in allowed else None
        self._refused: list[int] = []  # method types the server proposed and we Nak'ed
        self.succeeded = False
        self.failure_reason: Optional[str] = None

    def __repr__(self) -> str:
        name = self.method.type.name if self.method else "/".join(self.allowed)
        return (f"<EapClient {name} identity={self.identity!r} "
                f"succeeded={self.succeeded} failure_reason={self.failure_reason!r}>")

    def _make_method(self, name: str) -> _Method:
        if name == "md5":
            return _Md5Method(self._password)
        if name == "mschapv2":
            return _MsChapV2Method(self.identity, self._password, self._random)
        if name == "tls":
            return self._tls_method
        from . import eap_tunnel

        if name == "gtc":
            return eap_tunnel.GtcMethod(self._password)
        kind = eap_tunnel.TtlsMethod if name == "ttls" else eap_tunnel.PeapMethod
        return kind(self._tunnel, self.identity, self._password, lambda: self._now,
                    self._random)

    @property
    def _method(self) -> Optional[_Method]:  # older name, used by tests
        return self.method

    @property
    def msk(self) -> bytes:
        return self.method.msk if self.succeeded and self.method else b""

    @property
    def done(self) -> bool:
        return self.succeeded or self.failure_reason is not None

    def respond(self, packet_bytes: bytes, now: Optional[float] = None) -> Optional[bytes]:
        """The EAP packet to send back, or None (after Success/Failure or on failure)."""
        if now is not None:
            self._now = now
        if self.done:
            return None
        try:
            packet = EapPacket.decode(packet_bytes)
            return self._dispatch(packet)
        except EapError as exc:
            self._fail(f"malformed EAP message from the gateway: {exc}")
        except EapConfigurationError as exc:
            self._fail(str(exc))
        return None

    def _fail(self, reason: str) -> None:
        self.failure_reason = self.failure_reason or reason

    def _dispatch(self, packet: EapPacket) -> Optional[bytes]:
        if packet.code == EapCode.SUCCESS:
            if self.method is not None and self.method.finished:
                self.succeeded = True
            else:
                name = (self.method.type.name if self.method
                        else "/".join(METHODS[n].name for n in self.allowed))
                self._fail(f"the gateway sent EAP-Success before the {name} method completed")
            return None
        if packet.code == EapCode.FAILURE:
            # A bare EAP-Failure after a password method almost always means a wrong password.
            hint = ("; wrong user name or password?"
                    if self.method is not None and self.method.type != EapType.TLS else "")
            if self.method is None and self._refused:
                names = ", ".join(_type_name(t) for t in self._refused)
                hint = f"; it proposed only {names}, which the profile does not allow"
            self._fail((self.method and self.method.failure_reason)
                       or f"the gateway rejected the EAP authentication (EAP-Failure{hint})")
            return None
        if packet.code != EapCode.REQUEST:
            raise EapError(f"unexpected EAP {packet.code.name}")
        if packet.type == EapType.IDENTITY:
            return _response(packet, EapType.IDENTITY,
                             (self.outer_identity or self.identity).encode("utf-8"))
        if packet.type == EapType.NOTIFICATION:
            return _response(packet, EapType.NOTIFICATION)  # RFC 3748 §5.2: empty response
        if self.method is None:
            # with an anonymous outer identity only methods with a tunnel may run outside
            # (the others would show the real user name): the rest stay for inside the tunnel
            outer = [n for n in self.allowed
                     if not self.outer_identity or n in ("tls", "ttls", "peap")] or self.allowed
            name = next((n for n in outer if METHODS[n] == packet.type), None)
            if name is None:
                # §5.3.1: Nak the proposed method, naming the ones we allow (preferred first)
                self._refused.append(packet.type)
                return _response(packet, EapType.NAK, bytes(METHODS[n] for n in outer))
            self.method = self._make_method(name)
        elif packet.type != self.method.type:
            # §5.3.1: a Nak is only allowed in reply to the first request of a method
            raise EapError(f"request of type {packet.type} in the middle of "
                           f"{self.method.type.name}")
        type_data = self.method.handle(packet)
        if self.method.failure_reason:
            self._fail(self.method.failure_reason)
        if type_data is None:
            return None
        return _response(packet, self.method.type, type_data)
