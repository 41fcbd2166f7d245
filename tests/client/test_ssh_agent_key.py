"""Signing IKE AUTH (RFC 7427, RFC 7296 §3.8, RFC 4754) through a real ssh-agent
(client/ssh_agent_key.py): the key is added with ssh-add, never read by Cygnet."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

pytestmark = pytest.mark.skipif(not shutil.which("ssh-agent"), reason="openssh-client missing")


@pytest.fixture
def agent(tmp_path):
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"])
        yield sock
    finally:
        process.terminate()
        process.wait(10)


def _add(agent, tmp_path, key, name):
    path = tmp_path / name
    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    subprocess.run(["ssh-add", str(path)], env={**os.environ, "SSH_AUTH_SOCK": str(agent)},
                   check=True, capture_output=True, timeout=30)


def _cert(key):
    import datetime as dt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carol@example.org")])
    now = dt.datetime.now(dt.timezone.utc)
    signer = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(5).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(signer, hashes.SHA256()))


@pytest.mark.parametrize("kind", ["rsa", "p256", "p384", "ed25519"])
@pytest.mark.parametrize("announced", [None, (2, 3, 4, 5)])  # strongSwan sends 2-5
def test_agent_signs_auth_that_verifies(agent, tmp_path, kind, announced):
    from client.ssh_agent_key import agent_key
    from ike.auth import Signer, verify_auth
    from ike.payloads import AUTH

    key = {"rsa": lambda: rsa.generate_private_key(65537, 2048),
           "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
           "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
           "ed25519": ed25519.Ed25519PrivateKey.generate}[kind]()
    _add(agent, tmp_path, key, f"{kind}.key")
    cert = _cert(key)
    stand_in = agent_key(str(agent), cert)
    with pytest.raises(TypeError, match="stays in ssh-agent"):
        stand_in.private_bytes()
    octets = b"IKE_SA_INIT | Nr | prf(SK_pi, IDi')"
    if kind == "ed25519" and announced is None:
        return  # RFC 8420 needs the Identity hash announced; nothing to sign with
    method, data = Signer(stand_in).sign(octets, announced)
    verify_auth(AUTH(method, data), octets, cert)


def test_rsa_pss_and_sha384_are_refused_in_words(agent, tmp_path):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from client.ssh_agent_key import agent_key

    key = rsa.generate_private_key(65537, 2048)
    _add(agent, tmp_path, key, "rsa.key")
    stand_in = agent_key(str(agent), _cert(key))
    with pytest.raises(TypeError, match="cannot sign RSA with sha384"):
        stand_in.sign(b"x", padding.PKCS1v15(), hashes.SHA384())
    with pytest.raises(TypeError, match="and PSS"):
        stand_in.sign(b"x", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


def test_missing_key_and_agent_are_one_line(agent, tmp_path):
    from client.ssh_agent_key import AgentError, agent_key

    cert = _cert(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(AgentError, match="holds no key for our certificate"):
        agent_key(str(agent), cert)
    with pytest.raises(AgentError, match="^cannot talk to ssh-agent at /nonexistent.sock: "):
        agent_key("/nonexistent.sock", cert)
