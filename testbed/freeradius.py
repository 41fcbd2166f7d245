"""A FreeRADIUS server (Debian's `freeradius` 3.2) in the LAN namespace, as the EAP server
behind the gateway's `eap-radius` plugin (issue 19).

Its configuration directory is a copy of the package's /etc/freeradius/3.0 with our own
clients.conf, users (files module), EAP certificates (a server certificate for
RADIUS_NAME issued by the testbed's root CA) and no user/group switch. It runs in the
foreground (-X, logging to a file) in its own mount namespace with a private /run, so
nothing of the machine's own FreeRADIUS (installed but disabled) is used or touched.

    radius = FreeRadius(testbed.lan_ns, workdir, pki, users={"ann@corp.test": "pw"},
                        secret="...", client_address=GATEWAY_LAN_ADDR).start()
    ...
    radius.stop()

`gateway_settings(radius)` gives the strongswan.conf `charon.plugins.eap-radius` section.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .netns import Namespace
from .pki import DOMAIN, Pki
from .process import Process
from .topology import LAN_HOST_ADDR

PACKAGE_CONFIG = Path("/etc/freeradius/3.0")
RADIUS_NAME = f"radius.{DOMAIN}"
RADIUS_ADDRESS = LAN_HOST_ADDR
PROGRAM = "freeradius"


def available() -> bool:
    return shutil.which(PROGRAM) is not None and PACKAGE_CONFIG.is_dir()


def _quoted(value: str) -> str:
    if any(c in value for c in '"\\\n'):
        raise ValueError(f"value cannot be written to a FreeRADIUS file: {value!r}")
    return f'"{value}"'


def issue_server_certificate(pki: Pki, name: str, directory: Path) -> tuple[Path, Path]:
    """An RSA-2048 certificate for `name` (SAN dNSName, EKU serverAuth) from the testbed's
    root CA; (certificate, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(pki.root_ca.read_bytes())
    ca_key = serialization.load_pem_private_key(
        (pki.directory / "root-ca.key.pem").read_bytes(), password=None)
    key = rsa.generate_private_key(65537, 2048)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cygnet Test"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "radius.pem", directory / "radius.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class FreeRadius:
    def __init__(self, namespace: Namespace, workdir: Path, pki: Pki, *, users: dict,
                 secret: str, client_address: str, server_name: str = RADIUS_NAME,
                 default_eap_type: str | None = None):
        self.namespace, self.pki = namespace, pki
        self.default_eap_type = default_eap_type   # the method proposed first (Debian: md5)
        self.workdir = Path(workdir)
        self.users, self.secret = dict(users), secret
        self.client_address, self.server_name = client_address, server_name
        self.confdir = self.workdir / "raddb"
        self.log_path = self.workdir / "freeradius.log"
        self.process: Process | None = None

    def _configure(self) -> None:
        if self.confdir.exists():
            shutil.rmtree(self.confdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        shutil.copytree(PACKAGE_CONFIG, self.confdir, symlinks=True)
        certs = self.confdir / "cygnet-certs"
        certs.mkdir()
        cert, key = issue_server_certificate(self.pki, self.server_name, certs)
        shutil.copy(self.pki.root_ca, certs / "ca.pem")

        eap = self.confdir / "mods-available" / "eap"
        text = eap.read_text()
        text = re.sub(r"(?m)^\s*private_key_password = .*$", "", text)
        text = re.sub(r"(?m)^(\s*)private_key_file = .*$", rf"\1private_key_file = {key}", text)
        text = re.sub(r"(?m)^(\s*)certificate_file = .*$", rf"\1certificate_file = {cert}", text)
        text = re.sub(r"(?m)^(\s*)ca_file = .*$", rf"\1ca_file = {certs / 'ca.pem'}", text)
        if self.default_eap_type:       # only the outer one (the first), not the tunnels'
            text = re.sub(r"(?m)^(\s*)default_eap_type = .*$",
                          rf"\1default_eap_type = {self.default_eap_type}", text, count=1)
        eap.write_text(text)

        radiusd = self.confdir / "radiusd.conf"
        text = radiusd.read_text()
        # stay root (the files live in our 0700 work directory); no syslog, no /var/log
        text = re.sub(r"(?m)^(\s*)(user|group) = .*$", "", text)
        text = re.sub(r"(?m)^(\s*)logdir = .*$", rf"\1logdir = {self.workdir}", text)
        radiusd.write_text(text)

        (self.confdir / "clients.conf").write_text(
            f"client gateway {{\n\tipaddr = {self.client_address}\n"
            f"\tsecret = {_quoted(self.secret)}\n}}\n")
        authorize = self.confdir / "mods-config" / "files" / "authorize"
        authorize.unlink()
        authorize.write_text("".join(f"{_quoted(user)} Cleartext-Password := {_quoted(pw)}\n"
                                     for user, pw in self.users.items()))
        for path in (self.confdir / "clients.conf", authorize):
            os.chmod(path, 0o600)

    def start(self, timeout: float = 20.0) -> "FreeRadius":
        self._configure()
        command = (f"mount -t tmpfs cygnet-radius /run && mkdir -p /run/freeradius && "
                   f"exec {PROGRAM} -X -d {self.confdir}")
        log = open(self.log_path, "ab")
        try:
            self.process = Process(
                self.namespace.argv(["unshare", "--mount", "--propagation", "private",
                                     "sh", "-c", command]),
                f"FreeRADIUS in {self.namespace.name}", stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if "Ready to process requests" in text:
                return self
            if not self.process.running:
                break
            time.sleep(0.1)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"FreeRADIUS did not start:\n{tail}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def gateway_settings(radius: FreeRadius) -> dict:
    """strongswan.conf `charon.plugins` entries for a gateway that relays EAP to `radius`."""
    return {"eap-radius": {"server": RADIUS_ADDRESS, "secret": radius.secret}}
