"""Test-only EAP server methods and a throw-away PKI, to drive ike/eap.py in memory.

EapServer
---------
    server = EapServer("mschapv2", users={"carol": "secret"})
    request = server.start()                 # first EAP-Request (Identity)
    while not server.done:
        response = client.respond(request)   # the client under test
        request = server.process(response)   # next Request, or Success / Failure
    server.succeeded, server.msk             # outcome and the 64-octet MSK (b"" for MD5)

method: "md5", "mschapv2" or "tls" (after EAP-Identity, the server proposes this method;
a Nak naming another method we know switches to it, RFC 3748 §5.3.1).
users: identity → password (md5, mschapv2). tls: a TlsServerConfig (certificate, key and
the CA that must have issued the client's certificate). fragment_size bounds the TLS data
per EAP-TLS packet so that tests can force fragmentation both ways.

Pki
---
    pki = Pki()                                  # root CA, ECDSA P-256 unless key_kind says
    cert, key = pki.issue("vpn.example.org")     # server cert with SAN dNSName, EKU serverAuth
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A fixed "now" for tests: 2026-06-01 00:00:00 UTC.
NOW = 1_780_272_000.0
NOW_DT = dt.datetime.fromtimestamp(NOW, dt.timezone.utc)
IKE_INTERMEDIATE = x509.ObjectIdentifier("1.3.6.1.5.5.8.2.2")


def make_key(kind: str = "ec256"):
    """A fresh private key: "rsa2048", "rsa3072", "ec256", "ec384", "ec521" or "ed25519"."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(65537, int(kind[3:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    curves = {"ec256": ec.SECP256R1(), "ec384": ec.SECP384R1(), "ec521": ec.SECP521R1()}
    return ec.generate_private_key(curves[kind])


def _sign_hash(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _san_entry(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if "@" in name:
        return x509.RFC822Name(name)
    return x509.DNSName(name)


class Pki:
    """A root CA that issues CA, intermediate and end-entity certificates for tests."""

    def __init__(self, name: str = "Test Root CA", key_kind: str = "ec256"):
        self.key = make_key(key_kind)
        self.cert = self._build(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
                                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cygnet"),
                                           x509.NameAttribute(NameOID.COMMON_NAME, name)]),
                                self.key.public_key(), None, self.key, ca=True)

    def _build(self, subject, public_key, issuer_cert, issuer_key, *, ca, san=(), eku=None,
               not_before=None, not_after=None, path_length=None, key_usage=None,
               extra_extensions=()):
        issuer_name = issuer_cert.subject if issuer_cert is not None else subject
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(issuer_name).public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or NOW_DT - dt.timedelta(days=30))
                   .not_valid_after(not_after or NOW_DT + dt.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length),
                                  critical=True))
        if ca or key_usage is not None:
            usage = key_usage or dict(key_cert_sign=True, crl_sign=True)
            flags = dict(digital_signature=False, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                         decipher_only=False)
            flags.update(usage)
            builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san_entry(n) for n in san]), critical=False)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        for extension, critical in extra_extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, _sign_hash(issuer_key))

    def issue(self, cn: str, *, san: Optional[tuple] = None, issuer=None, key=None,
              key_kind: str = "ec256", ca: bool = False, eku=(ExtendedKeyUsageOID.SERVER_AUTH,),
              dn: Optional[x509.Name] = None, **options):
        """(certificate, private key) for CN=cn signed by issuer ((cert, key), default the
        root). san defaults to (cn,) for end entities and () for CAs; eku=None omits EKU."""
        key = key or make_key(key_kind)
        issuer_cert, issuer_key = issuer or (self.cert, self.key)
        subject = dn or x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
                                   x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cygnet"),
                                   x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        if san is None:
            san = () if ca else (cn,)
        cert = self._build(subject, key.public_key(), issuer_cert, issuer_key, ca=ca, san=san,
                           eku=None if ca else eku, **options)
        return cert, key


# ---------------------------------------------------------------------------------------------
# EAP server (the authenticator side), test-only

from ike import mschapv2  # noqa: E402  (kept next to the server that uses it)
from ike.eap import (  # noqa: E402
    EapCode, EapError, EapPacket, EapType, MsChapV2OpCode, TLS_FLAG_START, TlsReassembler,
    decode_mschapv2, encode_mschapv2, md5_challenge_response, parse_tls_type_data,
    parse_value_and_name, pull_tls_output, tls_fragments, tls_keying_material)

_METHOD_TYPES = {"md5": EapType.MD5_CHALLENGE, "mschapv2": EapType.MSCHAPV2,
                 "tls": EapType.TLS}


@dataclass
class TlsServerConfig:
    """The server's certificate and key, and the CA that must have issued client certs."""

    certificate: Any
    private_key: Any = field(repr=False)
    client_ca: Any = None
    intermediates: tuple = ()
    keylog: Optional[Any] = None  # callback(line: bytes) with NSS key-log lines, for tests


class EapServer:
    """Server side of EAP-Identity, MD5-Challenge, MSCHAPv2 and EAP-TLS (see module doc)."""

    def __init__(self, method: str, users: Optional[dict] = None,
                 tls: Optional[TlsServerConfig] = None, fragment_size: int = 1024,
                 server_name: str = "cygnet-test"):
        if method not in _METHOD_TYPES:
            raise ValueError(f"unknown EAP method {method!r}")
        self.method = method
        self.users = dict(users or {})
        self.tls = tls
        self.fragment_size = fragment_size
        self.server_name = server_name
        self.identity: Optional[str] = None
        self.msk = b""
        self.succeeded = False
        self.done = False
        self.failure_reason: Optional[str] = None
        self._identifier = 0
        self._state = "identity"
        self._challenge = b""

    # --- plumbing ---
    def _request(self, type_: int, data: bytes) -> bytes:
        self._identifier = (self._identifier + 1) % 256
        return EapPacket(EapCode.REQUEST, self._identifier, type_, data).encode()

    def _success(self, msk: bytes) -> bytes:
        self.msk, self.succeeded, self.done = msk, True, True
        return EapPacket(EapCode.SUCCESS, self._identifier).encode()

    def _failure(self, reason: str) -> bytes:
        self.failure_reason, self.done = reason, True
        return EapPacket(EapCode.FAILURE, self._identifier).encode()

    def start(self) -> bytes:
        """The first request: EAP-Request/Identity."""
        return self._request(EapType.IDENTITY, b"")

    def process(self, response_bytes: bytes) -> bytes:
        """The next Request, or EAP-Success / EAP-Failure."""
        if self.done:
            raise RuntimeError("the EAP conversation is over")
        try:
            response = EapPacket.decode(response_bytes)
        except EapError as exc:
            return self._failure(f"malformed response: {exc}")
        if response.code != EapCode.RESPONSE or response.identifier != self._identifier:
            return self._failure("unexpected packet or identifier")
        if response.type == EapType.IDENTITY and self._state == "identity":
            self.identity = response.data.decode("utf-8")
            return self._begin_method()
        if response.type == EapType.NAK:
            # RFC 3748 §5.3.1: the Nak lists the methods the client wants instead
            offered = {t: name for name, t in _METHOD_TYPES.items()}
            wanted = [offered[t] for t in response.data if t in offered]
            if not wanted or self._state not in _METHOD_TYPES:
                return self._failure("client wants no method we offer")
            self.method = wanted[0]
            return self._begin_method()
        if response.type != _METHOD_TYPES[self.method]:
            return self._failure(f"unexpected response type {response.type}")
        return getattr(self, f"_process_{self.method}")(response)

    def _begin_method(self) -> bytes:
        self._state = self.method
        if self.method == "md5":
            self._challenge = os.urandom(16)
            return self._request(EapType.MD5_CHALLENGE, bytes([16]) + self._challenge
                                 + self.server_name.encode())
        if self.method == "mschapv2":
            self._challenge = os.urandom(mschapv2.CHALLENGE_SIZE)
            self._mschapv2_id = self._identifier + 1
            data = bytes([16]) + self._challenge + self.server_name.encode()
            return self._request(EapType.MSCHAPV2, encode_mschapv2(
                MsChapV2OpCode.CHALLENGE, self._mschapv2_id, data))
        return self._begin_tls()

    # --- MD5-Challenge ---
    def _process_md5(self, response: EapPacket) -> bytes:
        value, _ = parse_value_and_name(response.data)
        password = self.users.get(self.identity)
        if password is not None and value == md5_challenge_response(
                self._identifier, password, self._challenge):
            return self._success(b"")
        return self._failure("wrong MD5 response")

    # --- MSCHAPv2 ---
    def _process_mschapv2(self, response: EapPacket) -> bytes:
        opcode, _, data = decode_mschapv2(response.data)
        if self._state == "mschapv2-success-sent":
            if opcode == MsChapV2OpCode.SUCCESS:
                return self._success(self._mschapv2_msk)
            return self._failure("client refused our authenticator response")
        if self._state == "mschapv2-failure-sent":
            return self._failure("wrong password")
        if opcode != MsChapV2OpCode.RESPONSE:
            return self._failure(f"unexpected MS-CHAPv2 OpCode {opcode}")
        value, name = parse_value_and_name(data)
        peer_challenge, nt_response = value[:16], value[24:48]
        username = name.decode("utf-8")
        password = self.users.get(username)
        expected = (mschapv2.generate_nt_response(self._challenge, peer_challenge, username,
                                                  password) if password is not None else None)
        if expected is None or expected != nt_response:
            self._state = "mschapv2-failure-sent"
            message = (f"E=691 R=0 C={self._challenge.hex().upper()} V=3 "
                       "M=Authentication failed").encode()
            return self._request(EapType.MSCHAPV2, encode_mschapv2(
                MsChapV2OpCode.FAILURE, self._mschapv2_id, message))
        self._state = "mschapv2-success-sent"
        self._mschapv2_msk = mschapv2.msk(password, nt_response)
        authenticator = mschapv2.generate_authenticator_response(
            password, nt_response, peer_challenge, self._challenge, username)
        return self._request(EapType.MSCHAPV2, encode_mschapv2(
            MsChapV2OpCode.SUCCESS, self._mschapv2_id, f"{authenticator} M=Welcome".encode()))

    # --- EAP-TLS ---
    def _begin_tls(self) -> bytes:
        from OpenSSL import SSL, crypto

        if self.tls is None:
            raise ValueError("EAP-TLS needs tls=TlsServerConfig(...)")
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_max_proto_version(SSL.TLS1_2_VERSION)
        context.use_certificate(self.tls.certificate)
        context.use_privatekey(self.tls.private_key)
        for cert in self.tls.intermediates:
            context.add_extra_chain_cert(cert)
        if self.tls.keylog is not None:
            context.set_keylog_callback(lambda conn, line: self.tls.keylog(line))
        if self.tls.client_ca is not None:
            context.get_cert_store().add_cert(crypto.X509.from_cryptography(self.tls.client_ca))
            context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                               lambda conn, cert, errno, depth, ok: bool(ok))
        self._tls = SSL.Connection(context, None)
        self._tls.set_accept_state()
        self._tls_in = TlsReassembler()
        self._tls_out: list[bytes] = []
        self._tls_finished = False
        return self._request(EapType.TLS, bytes([TLS_FLAG_START]))

    def _process_tls(self, response: EapPacket) -> bytes:
        from OpenSSL import SSL

        flags, total, data = parse_tls_type_data(response.data)
        if self._tls_out and not data:
            return self._request(EapType.TLS, self._tls_out.pop(0))  # client acked a fragment
        if self._tls_finished and not data:
            return self._success(tls_keying_material(self._tls))  # final ack after Finished
        message = self._tls_in.add(flags, total, data)
        if message is None:
            return self._request(EapType.TLS, bytes([0]))  # ack the client's fragment
        self._tls.bio_write(message)
        try:
            self._tls.do_handshake()
            self._tls_finished = True
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            return self._failure(f"TLS handshake failed: {exc}")
        output = pull_tls_output(self._tls)
        if not output:
            return self._failure("TLS engine had nothing to send")
        self._tls_out = tls_fragments(output, self.fragment_size)
        return self._request(EapType.TLS, self._tls_out.pop(0))
