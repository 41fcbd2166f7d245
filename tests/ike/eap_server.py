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
import hashlib
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
