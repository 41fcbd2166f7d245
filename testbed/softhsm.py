"""A SoftHSM2 token (Debian's softhsm2) holding keys generated on it, with certificates
from the testbed root CA (issue 19, smartcards). Its state lives in `directory`; point
SOFTHSM2_CONF at `token.conf` for every process that uses it.

    token = SoftToken.create(directory, pki, pin="123456")
    token.add_key("rsa", label="vpn-rsa", key_id=b"\\x01")   # certificate stored on the token too
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .pki import DOMAIN, Pki

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "cygnet-test"
SO_PIN = "87654321"


def available() -> bool:
    return os.path.exists(MODULE) and shutil.which("softhsm2-util") is not None


@dataclass
class SoftToken:
    directory: Path
    pki: Pki
    pin: str
    certs: dict = field(default_factory=dict)  # label -> certificate path

    @property
    def conf(self) -> Path:
        return self.directory / "token.conf"

    @property
    def env(self) -> dict:
        return {"SOFTHSM2_CONF": str(self.conf)}

    @classmethod
    def create(cls, directory, pki: Pki, pin: str) -> "SoftToken":
        directory = Path(directory)
        (directory / "tokens").mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        token = cls(directory, pki, pin)
        token.conf.write_text(f"directories.tokendir = {directory / 'tokens'}\n"
                              "objectstore.backend = file\nlog.level = ERROR\n")
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
                        "--pin", pin, "--so-pin", SO_PIN], env={**os.environ, **token.env},
                       check=True, capture_output=True, timeout=30)
        return token

    def add_key(self, kind: str, label: str, key_id: bytes, identity: str | None = None) -> Path:
        """Generate an RSA-2048 or ECDSA P-256 key on the token, issue its certificate
        (identity: an e-mail SAN, default LABEL@cygnet.test) and store it on the token.
        In a child process: SoftHSM reads SOFTHSM2_CONF once per process, so this one
        may not load it (another test's token would be used)."""
        import json
        import sys

        request = {"directory": str(self.directory), "root_ca": str(self.pki.root_ca),
                   "root_key": str(self.pki.directory / "root-ca.key.pem"), "pin": self.pin,
                   "kind": kind, "label": label, "key_id": key_id.hex(),
                   "identity": identity or f"{label}@{DOMAIN}"}
        subprocess.run([sys.executable, "-m", "testbed.softhsm"], input=json.dumps(request),
                       text=True, check=True, capture_output=True, timeout=60,
                       env={**os.environ, **self.env},
                       cwd=str(Path(__file__).resolve().parent.parent))
        path = self.directory / f"{label}.cert.pem"
        self.certs[label] = path
        return path


def _generate(request: dict) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters
    from asn1crypto.core import OctetString
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    label, key_id = request["label"], bytes.fromhex(request["key_id"])
    token = pkcs11.lib(MODULE).get_token(token_label=TOKEN_LABEL)
    with token.open(rw=True, user_pin=request["pin"]) as session:
        if request["kind"] == "rsa":
            public, _ = session.generate_keypair(KeyType.RSA, 2048, store=True, label=label,
                                                 id=key_id)
            public_key = rsa.RSAPublicNumbers(
                int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                int.from_bytes(public[Attribute.MODULUS], "big")).public_key()
        else:
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True)
            public, _ = params.generate_keypair(store=True, label=label, id=key_id)
            point = OctetString.load(public[Attribute.EC_POINT]).native
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        identity = request["identity"]
        ca_cert = x509.load_pem_x509_certificate(Path(request["root_ca"]).read_bytes())
        ca_key = serialization.load_pem_private_key(Path(request["root_key"]).read_bytes(), None)
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cygnet Test"),
                                         x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
                .issuer_name(ca_cert.subject).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity)]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        session.create_object({Attribute.CLASS: ObjectClass.CERTIFICATE,
                               Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                               Attribute.TOKEN: True, Attribute.LABEL: label,
                               Attribute.ID: key_id,
                               Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
                               Attribute.SUBJECT: cert.subject.public_bytes()})
    (Path(request["directory"]) / f"{label}.cert.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM))


if __name__ == "__main__":
    import json
    import sys

    _generate(json.loads(sys.stdin.read()))
