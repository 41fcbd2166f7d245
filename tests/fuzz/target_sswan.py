"""Fuzz target: a strongSwan Android .sswan file through `cygnet import` (client.sswan),
writing into a temporary folder.

Allowed outcome besides success: SswanError (one line). The written profile is read back by
import_sswan itself and must mean the same."""
from __future__ import annotations

import base64
import datetime
import json
import tempfile
import warnings
from pathlib import Path

from client.sswan import SswanError, import_sswan

_FOLDER = Path(tempfile.mkdtemp(prefix="cygnet-fuzz-sswan-"))
_INPUT = _FOLDER / "in.sswan"
_PROFILES = _FOLDER / "profiles"


def _ca_der() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.derive_private_key(1234567, ec.SECP256R1())  # fixed: reproducible seeds
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fuzz CA")])
    day = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(day).not_valid_after(day + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


_UUID = "2b2a9c7e-64b4-4b8e-9d0c-1f4f3a7c0e11"
SEEDS = [json.dumps(obj).encode() for obj in (
    {"uuid": _UUID, "name": "Office VPN", "type": "ikev2-eap",
     "remote": {"addr": "vpn.example.org", "port": 4500, "id": "vpn.example.org",
                "cert": base64.b64encode(_ca_der()).decode(), "certreq": False},
     "local": {"eap_id": "carol", "id": "carol@example.org"},
     "ike-proposal": "aes256-sha256-modp2048", "esp-proposal": "aes128gcm16", "mtu": 1400,
     "split-tunneling": {"subnets": "10.0.0.0/8 fd00::/8", "excluded": ["10.1.0.0/16", "10.2.0.1-10.2.0.9"],
                         "block-ipv4": True},
     "dns-servers": "198.51.100.53", "apps": ["x"]},
    {"uuid": _UUID, "name": "Lab", "type": "ikev2-byod-eap", "remote": {"addr": "203.0.113.9"},
     "local": {"eap_id": "dave"}, "split-tunneling": {"excluded": "fd00::1 fd00::2/127"}},
    {"uuid": _UUID, "name": "Certs", "type": "ikev2-cert", "remote": {"addr": "vpn.example.org"},
     "local": {"p12": base64.b64encode(b"\x30\x03\x02\x01\x03").decode(), "rsa-pss": True}},
)]


def one_input(data: bytes) -> None:
    _INPUT.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # ask: an encrypted PKCS#12 gets a wrong password, never a prompt.
            import_sswan(_INPUT, _PROFILES, name="fuzz", force=True, ask=lambda _prompt: "wrong")
        except SswanError:
            pass
