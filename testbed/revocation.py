"""Revocation services for the gateway's certificate (issue 19): a CRL over HTTP (Python's
http.server) and a real `openssl ocsp` responder, both in the LAN namespace at
REVOCATION_ADDR, reachable from the client namespace before any tunnel (a host route
through the gateway, which forwards).

    services = RevocationServices(testbed, workdir).start()
    GatewayOptions(certificate=services.credential("revoked").name)  # installed in the PKI
    ...
    services.stop()

Gateway certificates (ECDSA P-256 from the testbed root CA, names and usages as
gateway-ecdsa), by what their CRL distribution point / OCSP AIA extensions say:

    good        both; OCSP "good", not on the CRL
    revoked     both; OCSP "revoked" (keyCompromise), on the CRL
    crlrevoked  CRL only; on the CRL
    unknown     OCSP only; not in the responder's index, so it answers "unknown"
    down        both, pointing to ports where nothing listens
    nouri       neither

The OCSP responder signs with a delegated certificate (id-kp-OCSPSigning, issued by the root).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from .pki import GATEWAY_NAME, Credential
from .process import Process
from .topology import ALL_GATEWAY_ADDRESSES, CLIENT_ROUTER

REVOCATION_ADDR = "10.1.0.80"
CRL_URL = f"http://{REVOCATION_ADDR}/root.crl"
OCSP_PORT = 8080
OCSP_URL = f"http://{REVOCATION_ADDR}:{OCSP_PORT}/"
DOWN_CRL_URL = f"http://{REVOCATION_ADDR}:81/root.crl"
DOWN_OCSP_URL = f"http://{REVOCATION_ADDR}:8081/"
REVOKED_AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
CASES = {  # name -> (CRL URL, OCSP URL, in the OCSP index as)
    "good": (CRL_URL, OCSP_URL, "V"),
    "revoked": (CRL_URL, OCSP_URL, "R"),
    "crlrevoked": (CRL_URL, None, "R"),
    "unknown": (None, OCSP_URL, None),
    "down": (DOWN_CRL_URL, DOWN_OCSP_URL, "V"),
    "nouri": (None, None, "V"),
}


def _x509():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return x509, hashes, serialization, ec


class RevocationServices:
    def __init__(self, testbed, workdir: Path):
        self.tb, self.pki = testbed, testbed.pki
        self.dir = Path(workdir)
        self.processes: list[Process] = []
        self.serials: dict[str, int] = {}

    def credential(self, case: str) -> Credential:
        return self.pki.credentials[f"gateway-rev-{case}"]

    # -- certificates, CRL, index -----------------------------------------------------------

    def _issue(self, ca_cert, ca_key, subject_cn, key, *, crl=None, ocsp=None, eku, sans=()):
        x509, hashes, _, _ = _x509()
        from cryptography.x509.oid import NameOID
        import ipaddress

        now = dt.datetime.now(dt.timezone.utc)
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cygnet Test"),
                                      x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
             .issuer_name(ca_cert.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1))
             .not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.ExtendedKeyUsage(eku), critical=False))
        if sans:
            names = []
            for san in sans:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(san)))
                except ValueError:
                    names.append(x509.DNSName(san))
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if crl:
            b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(crl)], None, None, None)]), critical=False)
        if ocsp:
            b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(ocsp))]), critical=False)
        return b.sign(ca_key, hashes.SHA256())

    def _write(self, path: Path, data: bytes, private: bool = False) -> Path:
        if private:
            path.touch(mode=0o600)
        path.write_bytes(data)
        return path

    def _make_files(self) -> None:
        x509, hashes, serialization, ec = _x509()
        from cryptography.x509.oid import ExtendedKeyUsageOID

        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        (self.dir / "www").mkdir(exist_ok=True)
        ca_cert = x509.load_pem_x509_certificate(self.pki.root_ca.read_bytes())
        ca_key = serialization.load_pem_private_key(
            (self.pki.directory / "root-ca.key.pem").read_bytes(), password=None)
        pem = serialization.Encoding.PEM

        def key_pem(key):
            return key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())

        gateway_usages = [ExtendedKeyUsageOID.SERVER_AUTH, x509.ObjectIdentifier("1.3.6.1.5.5.7.3.17")]
        index, revoked = [], []
        expiry = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).strftime("%y%m%d%H%M%SZ")
        for case, (crl, ocsp, state) in CASES.items():
            key = ec.generate_private_key(ec.SECP256R1())
            cert = self._issue(ca_cert, ca_key, GATEWAY_NAME, key, crl=crl, ocsp=ocsp,
                               eku=gateway_usages, sans=(GATEWAY_NAME, *ALL_GATEWAY_ADDRESSES))
            name = f"gateway-rev-{case}"
            cert_path = self._write(self.dir / f"{name}.cert.pem", cert.public_bytes(pem))
            key_path = self._write(self.dir / f"{name}.key.pem", key_pem(key), private=True)
            self.pki.credentials[name] = replace(
                self.pki.gateway_ecdsa, name=name, cert=cert_path, key=key_path)
            self.serials[case] = cert.serial_number
            subject = "/O=Cygnet Test/CN=" + GATEWAY_NAME
            if state == "R":
                revoked.append(cert.serial_number)
                when = REVOKED_AT.strftime("%y%m%d%H%M%SZ")
                index.append(f"R\t{expiry}\t{when},keyCompromise\t{cert.serial_number:X}\tunknown\t{subject}")
            elif state == "V":
                index.append(f"V\t{expiry}\t\t{cert.serial_number:X}\tunknown\t{subject}")
        (self.dir / "index.txt").write_text("\n".join(index) + "\n")
        (self.dir / "index.txt.attr").write_text("unique_subject = no\n")  # all are gw.cygnet.test

        b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
             .last_update(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
             .next_update(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)))
        for serial in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(REVOKED_AT)
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                .build())
        crl = b.sign(ca_key, hashes.SHA256())
        self._write(self.dir / "www" / "root.crl", crl.public_bytes(serialization.Encoding.DER))

        responder_key = ec.generate_private_key(ec.SECP256R1())
        responder = self._issue(ca_cert, ca_key, "Cygnet Test OCSP responder", responder_key,
                                eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
        self._write(self.dir / "ocsp.cert.pem", responder.public_bytes(pem))
        self._write(self.dir / "ocsp.key.pem", key_pem(responder_key), private=True)

    # -- processes --------------------------------------------------------------------------

    def start(self) -> "RevocationServices":
        self._make_files()
        lan, client = self.tb.lan_ns, self.tb.client_ns
        lan.ip("addr", "add", f"{REVOCATION_ADDR}/32", "dev", "eth0")
        # before the tunnel, the client reaches the services through the gateway (it forwards)
        client.ip("route", "add", f"{REVOCATION_ADDR}/32", "via", CLIENT_ROUTER)
        log = open(self.dir / "services.log", "ab")
        try:
            self.processes.append(Process(lan.argv(
                [sys.executable, "-m", "http.server", "80", "--bind", REVOCATION_ADDR,
                 "--directory", str(self.dir / "www")]),
                f"CRL server in {lan.name}", stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL))
            self.processes.append(Process(lan.argv(
                ["openssl", "ocsp", "-index", str(self.dir / "index.txt"),
                 "-port", str(OCSP_PORT), "-CA", str(self.pki.root_ca),
                 "-rsigner", str(self.dir / "ocsp.cert.pem"), "-rkey", str(self.dir / "ocsp.key.pem"),
                 "-nmin", "60", "-ignore_err"]),
                f"openssl ocsp in {lan.name}", stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL))
        finally:
            log.close()
        self._wait_listening((80, OCSP_PORT))
        return self

    def _wait_listening(self, ports, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.tb.lan_ns.run(["ss", "-Hltn"]).stdout
            if all(f":{p} " in out for p in ports):  # openssl 3.0 binds the port on any address
                return
            if not all(p.running for p in self.processes):
                break
            time.sleep(0.1)
        log = (self.dir / "services.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"the CRL/OCSP servers did not start:\n{log}")

    def stop_ocsp(self) -> None:
        self.processes[1].stop()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        for case in CASES:
            self.pki.credentials.pop(f"gateway-rev-{case}", None)

    def log(self) -> str:
        return (self.dir / "services.log").read_text(errors="replace")
