"""Fuzz target: what a CRL distribution point or an OCSP responder answers (client/revocation.py).
The bytes come from the network before the gateway is trusted; every input must end in a
Status (good, revoked, no answer) and never raise. Seeds: a real CRL and real OCSP
responses (good, revoked) for a test certificate, made with cryptography's builders."""
from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from client.revocation import crl_status, ocsp_status

_NOW = dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc)
_NONCE = b"0123456789abcdef"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


_CA_KEY = ec.generate_private_key(ec.SECP256R1())
_CA = (x509.CertificateBuilder().subject_name(_name("CA")).issuer_name(_name("CA"))
       .public_key(_CA_KEY.public_key()).serial_number(1).not_valid_before(_NOW - dt.timedelta(days=1))
       .not_valid_after(_NOW + dt.timedelta(days=9))
       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
       .sign(_CA_KEY, hashes.SHA256()))
_GW = (x509.CertificateBuilder().subject_name(_name("gw")).issuer_name(_CA.subject)
       .public_key(ec.generate_private_key(ec.SECP256R1()).public_key()).serial_number(2)
       .not_valid_before(_NOW - dt.timedelta(days=1)).not_valid_after(_NOW + dt.timedelta(days=9))
       .sign(_CA_KEY, hashes.SHA256()))


def _ocsp(status):
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    return (ocsp.OCSPResponseBuilder()
            .add_response(cert=_GW, issuer=_CA, algorithm=hashes.SHA1(), cert_status=status,
                          this_update=_NOW, next_update=_NOW + dt.timedelta(hours=1),
                          revocation_time=_NOW if revoked else None,
                          revocation_reason=x509.ReasonFlags.key_compromise if revoked else None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, _CA)
            .add_extension(x509.OCSPNonce(_NONCE), critical=False)
            .sign(_CA_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


_CRL = (x509.CertificateRevocationListBuilder().issuer_name(_CA.subject).last_update(_NOW)
        .next_update(_NOW + dt.timedelta(days=1))
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(2)
                                 .revocation_date(_NOW).build())
        .sign(_CA_KEY, hashes.SHA256()))

SEEDS = [b"\x00" + _ocsp(ocsp.OCSPCertStatus.GOOD), b"\x00" + _ocsp(ocsp.OCSPCertStatus.REVOKED),
         b"\x01" + _CRL.public_bytes(serialization.Encoding.DER),
         b"\x01" + _CRL.public_bytes(serialization.Encoding.PEM)]


def one_input(data: bytes) -> None:
    if not data:
        return
    now = (_NOW + dt.timedelta(minutes=1)).timestamp()
    if data[0] % 2 == 0:
        status = ocsp_status(data[1:], _GW, _CA, _NONCE, now, "fuzz")
    else:
        status = crl_status(data[1:], _GW, _CA, now, "fuzz")
    assert status.state in ("good", "revoked", "no answer")
