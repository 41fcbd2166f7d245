"""A throw-away PKI made with strongSwan's `pki` tool: CAs, gateway and client certificates.

Layout (all PEM; private keys mode 0600):

    root CA (RSA-3072)
     |- gateway-rsa      RSA-3072,  SAN gw.cygnet.test + the gateway's IPs, EKU serverAuth+ikeIntermediate
     |- gateway-ecdsa    ECDSA P-256, same names
     |- gateway-other    ECDSA P-256, SAN other.cygnet.test only (an impostor's valid cert)
     |- alice            RSA-2048 client (alice@cygnet.test), also as PKCS#12
     |- bob              ECDSA P-256 client (bob@cygnet.test), also as PKCS#12
     |- carol            Ed25519 client (carol@cygnet.test)
     |- eaptls           ECDSA P-256 client for EAP-TLS (eaptls@cygnet.test)
     `- intermediate-1 (RSA-3072) - intermediate-2 - intermediate-3
            |- gateway-chain  RSA-3072 gateway cert: with the three intermediates its
            |                 IKE_AUTH response is ~5.4 kB, five IKE fragments
            `- dave           RSA-2048 client (dave@cygnet.test): its IKE_AUTH request too
    rogue CA (ECDSA P-256, unrelated)
     `- mallory          ECDSA client (mallory@cygnet.test) that the gateway must reject

`Pki.load_or_create(directory)` reuses a complete PKI found in `directory`.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .requirements import require_plugins
from .topology import ALL_GATEWAY_ADDRESSES

DOMAIN = "cygnet.test"
GATEWAY_NAME = f"gw.{DOMAIN}"
OTHER_SERVER_NAME = f"other.{DOMAIN}"  # gateway-other: same CA, another server
P12_PASSWORD = "cygnet-p12-test"   # test-only secret for the PKCS#12 files
_FORMAT_VERSION = 3
PKI_PLUGINS = "random nonce openssl pem pkcs1 pkcs8 x509 pubkey"
_PKI_CONF = f"pki {{\n  load = {PKI_PLUGINS}\n}}\n"

# name -> (key type, key size or None)
_KEYS = {
    "root-ca": ("rsa", 3072),
    "rogue-ca": ("ecdsa", 256),
    "intermediate-1": ("rsa", 3072),
    "intermediate-2": ("rsa", 3072),
    "intermediate-3": ("rsa", 3072),
    "gateway-rsa": ("rsa", 3072),
    "gateway-ecdsa": ("ecdsa", 256),
    "gateway-chain": ("rsa", 3072),
    "gateway-other": ("ecdsa", 256),
    "alice": ("rsa", 2048),
    "bob": ("ecdsa", 256),
    "carol": ("ed25519", None),
    "eaptls": ("ecdsa", 256),
    "dave": ("rsa", 2048),
    "mallory": ("ecdsa", 256),
}


@dataclass(frozen=True)
class Credential:
    """An end entity: certificate, private key, the intermediates above it, its trust anchor."""

    name: str
    identity: str                 # the ID it authenticates as (a SAN of the certificate)
    key_type: str                 # "rsa", "ecdsa" or "ed25519"
    cert: Path
    key: Path
    ca: Path                      # the root that signed the chain
    intermediates: tuple[Path, ...] = ()   # issuer first, towards the root
    p12: Path | None = None       # PKCS#12 with key, cert and chain (password P12_PASSWORD)


@dataclass
class Pki:
    directory: Path
    root_ca: Path
    rogue_ca: Path
    intermediates: tuple[Path, ...]
    credentials: dict[str, Credential] = field(default_factory=dict)

    # Named shortcuts so tests read like the layout above.
    @property
    def gateway_rsa(self) -> Credential: return self.credentials["gateway-rsa"]
    @property
    def gateway_ecdsa(self) -> Credential: return self.credentials["gateway-ecdsa"]
    @property
    def gateway_chain(self) -> Credential: return self.credentials["gateway-chain"]
    @property
    def gateway_other(self) -> Credential: return self.credentials["gateway-other"]
    @property
    def alice(self) -> Credential: return self.credentials["alice"]
    @property
    def bob(self) -> Credential: return self.credentials["bob"]
    @property
    def carol(self) -> Credential: return self.credentials["carol"]
    @property
    def eaptls(self) -> Credential: return self.credentials["eaptls"]
    @property
    def dave(self) -> Credential: return self.credentials["dave"]
    @property
    def mallory(self) -> Credential: return self.credentials["mallory"]

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike) -> "Pki":
        directory = Path(directory)
        manifest = directory / "manifest.json"
        if manifest.exists():
            data = json.loads(manifest.read_text())
            if data.get("version") == _FORMAT_VERSION:
                return cls._from_manifest(directory, data)
        return cls.create(directory)

    @classmethod
    def create(cls, directory: str | os.PathLike) -> "Pki":
        return _Builder(Path(directory)).build()

    @classmethod
    def _from_manifest(cls, directory: Path, data: dict) -> "Pki":
        def cred(entry: dict) -> Credential:
            entry = dict(entry)
            for key in ("cert", "key", "ca"):
                entry[key] = directory / entry[key]
            entry["intermediates"] = tuple(directory / p for p in entry["intermediates"])
            entry["p12"] = directory / entry["p12"] if entry["p12"] else None
            return Credential(**entry)

        return cls(
            directory=directory,
            root_ca=directory / data["root_ca"],
            rogue_ca=directory / data["rogue_ca"],
            intermediates=tuple(directory / p for p in data["intermediates"]),
            credentials={name: cred(entry) for name, entry in data["credentials"].items()},
        )


class _Builder:
    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.conf = self.dir / "pki.conf"
        self.conf.write_text(_PKI_CONF)
        self.env = {**os.environ, "STRONGSWAN_CONF": str(self.conf)}

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key.pem"

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.cert.pem"

    def pki(self, *args: str) -> bytes:
        result = subprocess.run(["pki", *args], capture_output=True, env=self.env, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"pki {args[0]} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout

    def generate_key(self, name: str) -> None:
        key_type, size = _KEYS[name]
        args = ["--gen", "--type", key_type, "--outform", "pem"]
        if size:
            args += ["--size", str(size)]
        pem = self.pki(*args)
        path = self.key(name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)

    def self_signed(self, name: str, common_name: str) -> None:
        pem = self.pki("--self", "--ca", "--lifetime", "3650", "--in", str(self.key(name)),
                       "--type", "priv", "--dn", f"C=CH, O=Cygnet Test, CN={common_name}",
                       "--outform", "pem")
        self.cert(name).write_bytes(pem)

    def issue(self, name: str, issuer: str, common_name: str, *, sans=(), flags=(),
              ca: bool = False) -> None:
        args = ["--issue", "--cacert", str(self.cert(issuer)), "--cakey", str(self.key(issuer)),
                "--type", "priv", "--in", str(self.key(name)), "--lifetime", "1825",
                "--dn", f"C=CH, O=Cygnet Test, CN={common_name}", "--outform", "pem"]
        for san in sans:
            args += ["--san", san]
        for flag in flags:
            args += ["--flag", flag]
        if ca:
            args.append("--ca")
        self.cert(name).write_bytes(self.pki(*args))

    def build(self) -> Pki:
        require_plugins(PKI_PLUGINS, "pki")
        # Key generation dominates (RSA-4096); run it in parallel processes.
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            list(pool.map(self.generate_key, _KEYS))

        self.self_signed("root-ca", "Cygnet Test Root CA")
        self.self_signed("rogue-ca", "Unrelated Rogue CA")
        self.issue("intermediate-1", "root-ca", "Cygnet Intermediate CA 1", ca=True)
        self.issue("intermediate-2", "intermediate-1", "Cygnet Intermediate CA 2", ca=True)
        self.issue("intermediate-3", "intermediate-2", "Cygnet Intermediate CA 3", ca=True)

        gateway_sans = (GATEWAY_NAME, *ALL_GATEWAY_ADDRESSES)
        gateway_flags = ("serverAuth", "ikeIntermediate")
        for name, issuer in (("gateway-rsa", "root-ca"), ("gateway-ecdsa", "root-ca"),
                             ("gateway-chain", "intermediate-3")):
            self.issue(name, issuer, GATEWAY_NAME, sans=gateway_sans, flags=gateway_flags)
        # a valid server certificate from the same CA for another name: an impostor gateway
        self.issue("gateway-other", "root-ca", OTHER_SERVER_NAME, sans=(OTHER_SERVER_NAME,),
                   flags=gateway_flags)
        clients = {"alice": "root-ca", "bob": "root-ca", "carol": "root-ca",
                   "eaptls": "root-ca", "dave": "intermediate-3", "mallory": "rogue-ca"}
        for name, issuer in clients.items():
            identity = f"{name}@{DOMAIN}"
            self.issue(name, issuer, identity, sans=(identity,), flags=("clientAuth",))

        chain = tuple(self.cert(f"intermediate-{i}") for i in (3, 2, 1))
        credentials = {}
        for name in ("gateway-rsa", "gateway-ecdsa", "gateway-chain", "gateway-other", *clients):
            on_chain = name in ("gateway-chain", "dave")
            credentials[name] = Credential(
                name=name,
                identity={"gateway-other": OTHER_SERVER_NAME}.get(name) or (
                    GATEWAY_NAME if name.startswith("gateway") else f"{name}@{DOMAIN}"),
                key_type=_KEYS[name][0],
                cert=self.cert(name),
                key=self.key(name),
                ca=self.cert("rogue-ca" if name == "mallory" else "root-ca"),
                intermediates=chain if on_chain else (),
                p12=self.pkcs12(name, chain if on_chain else ()) if name in ("alice", "bob")
                else None,
            )
        pki = Pki(directory=self.dir, root_ca=self.cert("root-ca"),
                  rogue_ca=self.cert("rogue-ca"), intermediates=chain,
                  credentials=credentials)
        self.write_manifest(pki)
        return pki

    def pkcs12(self, name: str, chain: tuple[Path, ...]) -> Path:
        # `pki` cannot write PKCS#12; cryptography can.
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import (
            BestAvailableEncryption, load_pem_private_key, pkcs12)

        key = load_pem_private_key(self.key(name).read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(self.cert(name).read_bytes())
        cas = [x509.load_pem_x509_certificate(p.read_bytes())
               for p in (*chain, self.cert("root-ca"))]
        data = pkcs12.serialize_key_and_certificates(
            name.encode(), key, cert, cas, BestAvailableEncryption(P12_PASSWORD.encode()))
        path = self.dir / f"{name}.p12"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def write_manifest(self, pki: Pki) -> None:
        def rel(path: Path | None) -> str | None:
            return str(path.relative_to(self.dir)) if path else None

        def cred(c: Credential) -> dict:
            entry = asdict(c)
            for key in ("cert", "key", "ca", "p12"):
                entry[key] = rel(getattr(c, key))
            entry["intermediates"] = [rel(p) for p in c.intermediates]
            return entry

        manifest = {
            "version": _FORMAT_VERSION,
            "root_ca": rel(pki.root_ca),
            "rogue_ca": rel(pki.rogue_ca),
            "intermediates": [rel(p) for p in pki.intermediates],
            "credentials": {name: cred(c) for name, c in pki.credentials.items()},
        }
        (self.dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
