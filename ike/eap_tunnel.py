"""Tunnelled EAP methods: EAP-TTLSv0 (RFC 5281) and PEAPv0 (draft-kamath-pppext-peapv0,
MS-PEAP), plus EAP-GTC (RFC 3748 §5.6), for ike/eap.py's EapClient.

The TLS tunnel is pyOpenSSL over memory BIOs (TLS 1.2, as for EAP-TLS), framed like EAP-TLS
(RFC 5216 §3.1; the low three flag bits carry the method version, 0 here). We present no
certificate; the server's chain is checked like the gateway's (trust anchors + the name the
certificate must carry), before anything is sent inside the tunnel.

Inside TTLS the client speaks first (RFC 5281 §7.1): AVPs (§10) carrying EAP (§11.1,
EAP-Message AVPs run through an inner EapClient). Inner PAP and MS-CHAP-V2 are to follow.
Inside PEAPv0 the server speaks first; EAP packets travel without their 4-octet header
except EAP-TLV (type 33) ones, and the result comes as a Result TLV the client echoes
(MS-PEAP §2.2.8).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

from . import mschapv2
from .eap import (DEFAULT_TLS_FRAGMENT_SIZE, TLS_FLAG_START, EapCode, EapConfigurationError,
                  EapError, EapPacket, EapType, TlsReassembler, _Method, _tls_error_words,
                  parse_tls_type_data, pull_tls_output, tls_fragments, verify_server_chain)

INNER_EAP_METHODS = ("mschapv2", "md5", "gtc")
TTLS_INNER = ("eap", "pap", "mschapv2")


@dataclass
class TunnelConfig:
    """What PEAP/TTLS need: the CAs that may issue the EAP server's certificate, the name
    that certificate must carry, the EAP methods allowed inside the tunnel and what runs
    inside TTLS: "eap" (one of those methods), "pap" or "mschapv2" (RFC 5281 §11.2)."""

    trust_anchors: Union[Sequence[Any], str] = ()
    server_identity: Union[str, tuple] = ""
    inner_methods: Sequence[str] = INNER_EAP_METHODS
    ttls_inner: str = "eap"
    fragment_size: int = DEFAULT_TLS_FRAGMENT_SIZE


# ---------------------------------------------------------------------------------------------
# EAP-GTC (RFC 3748 §5.6): the request is a prompt, the response the password


class GtcMethod(_Method):
    type = EapType.GTC

    def __init__(self, password: str):
        self._password = password

    def handle(self, request):
        # GTC proves nothing about the server; within IKE the gateway's certificate does that
        self.finished = True
        return self._password.encode("utf-8")


# ---------------------------------------------------------------------------------------------
# The TLS tunnel shared by TTLS and PEAP


class _TunnelMethod(_Method):
    name = ""
    keying_label = b""

    def __init__(self, config: Optional[TunnelConfig], identity: str, password: str,
                 clock: Callable[[], Optional[float]], random_bytes: Callable[[int], bytes]):
        if config is None or not config.server_identity:
            raise EapConfigurationError(
                f"EAP-{self.name} needs the name the EAP server's certificate must carry")
        self._config, self._clock, self._random = config, clock, random_bytes
        self._identity, self._password = identity, password
        self._connection = None
        self._incoming = TlsReassembler()
        self._outgoing: list[bytes] = []
        self._tunnel_up = False

    def _start(self):
        from OpenSSL import SSL

        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        # RFC 5281 / PEAP keying is defined for TLS <= 1.2 (TLS 1.3 needs RFC 9427)
        context.set_max_proto_version(SSL.TLS1_2_VERSION)
        context.set_options(SSL.OP_LEGACY_SERVER_CONNECT | SSL.OP_NO_TICKET)
        context.set_verify(SSL.VERIFY_NONE)  # checked in _check_server() with our clock
        self._connection = SSL.Connection(context, None)
        self._connection.set_connect_state()

    def handle(self, request):
        flags, total, data = parse_tls_type_data(request.data)
        if flags & TLS_FLAG_START:
            if self._connection is not None:
                raise EapError(f"second EAP-{self.name} Start")
            self._start()
            return self._advance(b"", request)
        if self._connection is None:
            raise EapError(f"EAP-{self.name} packet before its Start")
        if self._outgoing and not data and not self._incoming.in_progress:
            return self._outgoing.pop(0)  # the server acknowledged our previous fragment
        message = self._incoming.add(flags, total, data)
        if message is None:
            return bytes([0])  # acknowledge a fragment (RFC 5216 §2.1.5)
        return self._advance(message, request)

    def _advance(self, received: bytes, request: EapPacket) -> Optional[bytes]:
        from OpenSSL import SSL

        if received:
            self._connection.bio_write(received)
        if not self._tunnel_up:
            try:
                self._connection.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                self.failure_reason = (f"EAP-{self.name} TLS handshake failed: "
                                       f"{_tls_error_words(exc)}")
                return None
            else:
                if not self._check_server():
                    return None
                self._tunnel_up = True
                self._send_inner(self._tunnel_established())
        if self._tunnel_up:
            for plaintext in self._read_application_data():
                self._send_inner(self._inner(plaintext, request))
                if self.failure_reason:
                    return None
            if self.failure_reason:
                return None
        output = pull_tls_output(self._connection)
        if not output:
            return bytes([0])  # nothing to say: acknowledge
        self._outgoing = tls_fragments(output, self._config.fragment_size)
        return self._outgoing.pop(0)

    def _read_application_data(self) -> list[bytes]:
        from OpenSSL import SSL

        records = []
        while True:
            try:
                records.append(self._connection.recv(65536))
            except SSL.WantReadError:
                return records
            except SSL.Error:
                # close_notify (strongSwan's TTLS server closes when it cannot run the inner
                # method we accept) or a broken record: the tunnel is over either way
                self.failure_reason = (f"the EAP server closed the EAP-{self.name} tunnel (does "
                                       "it support the inner methods the profile allows?)")
                return records

    def _send_inner(self, plaintext: Optional[bytes]) -> None:
        if plaintext:
            self._connection.send(plaintext)

    def _check_server(self) -> bool:
        chain = self._connection.get_peer_cert_chain(as_cryptography=True)
        if not chain:
            self.failure_reason = f"EAP-{self.name} server sent no certificate"
            return False
        self.verified_chain, self.failure_reason = verify_server_chain(
            chain, self._config, self._clock(), self.name)
        return self.failure_reason is None

    def _tls_keys(self, label: bytes, size: int) -> bytes:
        """TLS-PRF(master secret, label, client.random ‖ server.random): RFC 5705 export
        without context is exactly that PRF."""
        return self._connection.export_keying_material(label, size)

    # subclasses
    def _tunnel_established(self) -> Optional[bytes]:
        return None

    def _inner(self, plaintext: bytes, request: EapPacket) -> Optional[bytes]:  # pragma: no cover
        raise NotImplementedError


def _inner_eap_client(config: TunnelConfig, identity: str, password: str, clock, random_bytes):
    from .eap import EapClient

    methods = [m for m in config.inner_methods if m in INNER_EAP_METHODS]
    if not methods:
        raise EapConfigurationError("no password method allowed inside the EAP tunnel")
    return EapClient(methods, identity, password=password, now=clock(), random_bytes=random_bytes)


# ---------------------------------------------------------------------------------------------
# EAP-TTLSv0 (RFC 5281)

AVP_FLAG_VENDOR = 0x80
AVP_FLAG_MANDATORY = 0x40
AVP_USER_NAME = 1
AVP_USER_PASSWORD = 2
AVP_EAP_MESSAGE = 79
VENDOR_MICROSOFT = 311  # RFC 2548 attributes
MS_CHAP_ERROR = 2
MS_CHAP_CHALLENGE = 11
MS_CHAP2_RESPONSE = 25
MS_CHAP2_SUCCESS = 26


def encode_avp(code: int, data: bytes, vendor: Optional[int] = None) -> bytes:
    """RFC 5281 §10.1: Code ‖ Flags ‖ Length(3) ‖ [Vendor-ID] ‖ Data, padded to 4 octets
    (the Length excludes the padding)."""
    flags = AVP_FLAG_MANDATORY | (AVP_FLAG_VENDOR if vendor is not None else 0)
    header_size = 12 if vendor is not None else 8
    length = header_size + len(data)
    out = struct.pack("!IB", code, flags) + length.to_bytes(3, "big")
    if vendor is not None:
        out += struct.pack("!I", vendor)
    return out + data + bytes(-length % 4)


def decode_avps(data: bytes) -> list[tuple[int, Optional[int], bytes]]:
    """[(code, vendor or None, data)] of a sequence of AVPs."""
    avps, at = [], 0
    while at < len(data):
        if len(data) - at < 8:
            raise EapError("truncated EAP-TTLS AVP header")
        code, flags = struct.unpack_from("!IB", data, at)
        length = int.from_bytes(data[at + 5:at + 8], "big")
        header_size = 12 if flags & AVP_FLAG_VENDOR else 8
        if length < header_size or at + length > len(data):
            raise EapError(f"EAP-TTLS AVP length {length} does not fit")
        vendor = struct.unpack_from("!I", data, at + 8)[0] if flags & AVP_FLAG_VENDOR else None
        avps.append((code, vendor, data[at + header_size:at + length]))
        at += length + (-length % 4)
    return avps


class TtlsMethod(_TunnelMethod):
    type = EapType.TTLS
    name = "TTLS"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._config.ttls_inner not in TTLS_INNER:
            raise EapConfigurationError(f"unknown EAP-TTLS inner method "
                                        f"{self._config.ttls_inner!r}")
        self._inner_eap = None
        self._expected_authenticator: Optional[str] = None
        self._ident = -1

    @property
    def msk(self) -> bytes:
        # RFC 5281 §8: keying material = PRF-128(master, "ttls keying material", randoms)
        return self._tls_keys(b"ttls keying material", 64) if self.finished else b""

    def _tunnel_established(self):
        user_name = encode_avp(AVP_USER_NAME, self._identity.encode("utf-8"))
        inner = self._config.ttls_inner
        if inner == "pap":
            # §11.2.5: the password padded with NULs to a multiple of 16 octets (at least 16)
            password = self._password.encode("utf-8")
            password += bytes(-len(password) % 16 if password else 16)
            self.finished = True  # TLS authenticated the server; the server decides now
            return user_name + encode_avp(AVP_USER_PASSWORD, password)
        if inner == "mschapv2":
            return user_name + self._mschapv2_response()
        self._inner_eap = _inner_eap_client(self._config, self._identity, self._password,
                                            self._clock, self._random)
        identity = EapPacket(EapCode.RESPONSE, 0, EapType.IDENTITY,
                             self._identity.encode("utf-8")).encode()
        return encode_avp(AVP_EAP_MESSAGE, identity)

    def _mschapv2_response(self) -> bytes:
        # §11.2.4: challenge and identifier come from the TLS keys, not from the server
        keys = self._tls_keys(b"ttls challenge", 17)
        challenge, ident = keys[:16], keys[16]
        peer_challenge = self._random(16)
        nt_response = mschapv2.generate_nt_response(challenge, peer_challenge, self._identity,
                                                    self._password)
        self._expected_authenticator = mschapv2.generate_authenticator_response(
            self._password, nt_response, peer_challenge, challenge, self._identity)
        self._ident = ident
        response = bytes([ident, 0]) + peer_challenge + bytes(8) + nt_response
        return (encode_avp(MS_CHAP_CHALLENGE, challenge, VENDOR_MICROSOFT)
                + encode_avp(MS_CHAP2_RESPONSE, response, VENDOR_MICROSOFT))

    def _inner(self, plaintext, request):
        reply = b""
        for code, vendor, data in decode_avps(plaintext):
            if vendor == VENDOR_MICROSOFT and code == MS_CHAP2_SUCCESS:
                self._check_mschapv2_success(data)
            elif vendor == VENDOR_MICROSOFT and code == MS_CHAP_ERROR:
                self.failure_reason = ("wrong user name or password "
                                       "(MS-CHAPv2 error inside EAP-TTLS)")
            elif vendor is None and code == AVP_EAP_MESSAGE:
                reply += self._inner_eap_message(data)
        return reply or None

    def _check_mschapv2_success(self, data: bytes) -> None:
        if (self._expected_authenticator is None or not data or data[0] != self._ident
                or not mschapv2.check_authenticator_response(
                    self._expected_authenticator, data[1:].decode("ascii", "replace"))):
            self.failure_reason = ("the EAP server failed to prove it knows the password "
                                   "(wrong MS-CHAPv2 authenticator response inside EAP-TTLS)")
            return
        self.finished = True

    def _inner_eap_message(self, data: bytes) -> bytes:
        if self._inner_eap is None:
            raise EapError("EAP-TTLS server sent an EAP-Message for a non-EAP inner method")
        answer = self._inner_eap.respond(data, self._clock())
        if self._inner_eap.failure_reason:
            self.failure_reason = f"EAP-TTLS inner {self._inner_eap.failure_reason}"
            return b""
        inner_method = self._inner_eap.method
        if inner_method is not None and inner_method.finished:
            self.finished = True
        return encode_avp(AVP_EAP_MESSAGE, answer) if answer else b""


# ---------------------------------------------------------------------------------------------
# PEAPv0 (draft-kamath-pppext-peapv0-00, MS-PEAP)

TLV_FLAG_MANDATORY = 0x8000
TLV_RESULT = 3
TLV_CRYPTO_BINDING = 12
RESULT_SUCCESS = 1
RESULT_FAILURE = 2


def encode_tlv(kind: int, value: bytes, mandatory: bool = True) -> bytes:
    return struct.pack("!HH", kind | (TLV_FLAG_MANDATORY if mandatory else 0),
                       len(value)) + value


def decode_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    tlvs, at = [], 0
    while at < len(data):
        if len(data) - at < 4:
            raise EapError("truncated PEAP TLV")
        kind, length = struct.unpack_from("!HH", data, at)
        if at + 4 + length > len(data):
            raise EapError(f"PEAP TLV length {length} does not fit")
        tlvs.append((kind & 0x3FFF, data[at + 4:at + 4 + length]))
        at += 4 + length
    return tlvs


class PeapMethod(_TunnelMethod):
    type = EapType.PEAP
    name = "PEAP"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._inner_eap = _inner_eap_client(self._config, self._identity, self._password,
                                            self._clock, self._random)
        self._ipmk: Optional[bytes] = None  # set once cryptobinding was used

    @property
    def msk(self) -> bytes:
        if not self.finished:
            return b""
        if self._ipmk is not None:
            # MS-PEAP §3.1.5.7: with cryptobinding the MSK is the first 64 octets of
            # CSK = PRF+(IPMK, "Session Key Generating Function" ‖ 0x00, 128)
            return peap_prf_plus(self._ipmk, b"Session Key Generating Function\x00", 128)[:64]
        # without cryptobinding: the EAP-TLS derivation (RFC 5216 §2.3)
        return self._tls_keys(b"client EAP encryption", 64)

    def _inner(self, plaintext, request):
        packet = self._full_inner_packet(plaintext, request.identifier)
        if packet.type == EapType.TLV:
            return self._extensions(packet)
        answer = self._inner_eap.respond(packet.encode(), self._clock())
        if self._inner_eap.failure_reason:
            self.failure_reason = f"PEAP inner {self._inner_eap.failure_reason}"
            return None
        if answer is None:
            return None
        return answer[4:]  # PEAPv0 sends inner EAP packets without their header

    @staticmethod
    def _full_inner_packet(plaintext: bytes, identifier: int) -> EapPacket:
        """PEAPv0 strips the EAP header off inner packets, but EAP-TLV packets keep it and
        FreeRADIUS also sends its first Identity request whole (wpa_supplicant copes the
        same way)."""
        if len(plaintext) >= 5 and plaintext[0] == EapCode.REQUEST:
            length = struct.unpack_from("!H", plaintext, 2)[0]
            if plaintext[4] == EapType.TLV or (length == 5 == len(plaintext)
                                               and plaintext[4] == EapType.IDENTITY):
                return EapPacket.decode(plaintext)
        if not plaintext:
            raise EapError("empty PEAP inner packet")
        return EapPacket(EapCode.REQUEST, identifier, plaintext[0], plaintext[1:])

    def _extensions(self, packet: EapPacket) -> bytes:
        result = binding = None
        for kind, value in decode_tlvs(packet.data):
            if kind == TLV_RESULT and len(value) == 2:
                result = struct.unpack("!H", value)[0]
            elif kind == TLV_CRYPTO_BINDING:
                binding = value
        if result is None:
            raise EapError("PEAP EAP-TLV request without a Result TLV")
        inner_method = self._inner_eap.method
        tlv = b""
        if result == RESULT_SUCCESS and inner_method is not None and inner_method.finished:
            answer = RESULT_SUCCESS
            if binding is not None:
                tlv_binding = self._crypto_binding(binding, inner_method.msk)
                if tlv_binding is None:
                    answer = RESULT_FAILURE
                tlv = tlv_binding or b""
            self.finished = answer == RESULT_SUCCESS
        else:
            self.failure_reason = ("the EAP server refused the PEAP inner authentication; "
                                   "wrong user name or password?")
            answer = RESULT_FAILURE
        tlv = encode_tlv(TLV_RESULT, struct.pack("!H", answer)) + tlv
        # on failure _advance() still sends this, then stops
        return EapPacket(EapCode.RESPONSE, packet.identifier, EapType.TLV, tlv).encode()

    def _crypto_binding(self, request: bytes, inner_msk: bytes) -> Optional[bytes]:
        """MS-PEAP §2.2.8.3.4, §3.1.5.5: check the server's Crypto-Binding TLV (it binds the
        inner method's keys to this tunnel, against a man in the middle that relays the
        inner method) and build ours. None (and failure_reason) if it does not verify."""
        if len(request) != CRYPTO_BINDING_SIZE or request[3] != 0:  # SubType 0: request
            self.failure_reason = "malformed PEAP Crypto-Binding TLV from the EAP server"
            return None
        # ISK: the inner method's keys (EAP-MSCHAPv2: send ‖ receive key), 32 octets
        isk = inner_msk[:32].ljust(32, b"\x00")
        temp_key = self._tls_keys(b"client EAP encryption", 64)[:40]
        imck = peap_prf_plus(temp_key, b"Inner Methods Compound Keys" + isk, 60)
        ipmk, cmk = imck[:40], imck[40:]
        expected = _compound_mac(cmk, request[:36] + bytes(20))
        if not hmac.compare_digest(expected, request[36:]):
            self.failure_reason = ("PEAP cryptobinding failed: the EAP server's Compound MAC "
                                   "does not match (the inner authentication was relayed?)")
            return None
        self._ipmk = ipmk
        nonce = request[4:36]
        response = bytes([0, 0, 0, 1]) + nonce  # Reserved, Version 0, RecvVersion 0, Response
        mac = _compound_mac(cmk, response + bytes(20))
        return encode_tlv(TLV_CRYPTO_BINDING, response + mac, mandatory=False)


CRYPTO_BINDING_SIZE = 56  # Reserved, Version, RecvVersion, SubType, Nonce(32), MAC(20)


def _compound_mac(cmk: bytes, binding_value: bytes) -> bytes:
    """HMAC-SHA1(CMK, the whole Crypto-Binding TLV with a zero MAC ‖ the PEAP type)."""
    tlv = struct.pack("!HH", TLV_CRYPTO_BINDING, CRYPTO_BINDING_SIZE) + binding_value
    return hmac.new(cmk, tlv + bytes([EapType.PEAP]), hashlib.sha1).digest()


def peap_prf_plus(key: bytes, label_and_seed: bytes, size: int) -> bytes:
    """PEAPv0's PRF+ (MS-PEAP §3.1.5.5.2.2): T(n) = HMAC-SHA1(key, T(n-1) ‖ label ‖ seed ‖
    n ‖ 0x00 0x00), T(0) empty; the output is T(1) ‖ T(2) ‖ … cut to size."""
    out, block, counter = b"", b"", 0
    while len(out) < size:
        counter += 1
        block = hmac.new(key, block + label_and_seed + bytes([counter, 0, 0]),
                         hashlib.sha1).digest()
        out += block
    return out[:size]
