"""`cygnet up` with the key in ssh-agent (charon-nm's `agent` method, issue 19): the profile
names the certificate, a real ssh-agent holds the key (ssh-add) and signs IKE_AUTH against
real strongSwan; a certificate whose key the agent lacks is one clear line."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization

from tests.interop.cygnet_helpers import make_cygnet, module_testbed
from tests.interop.test_cygnet_errors import fail_to_connect, last_line

pytestmark = [pytest.mark.interop, pytest.mark.netns,
              pytest.mark.skipif(not shutil.which("ssh-agent"), reason="openssh-client missing")]
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


@pytest.fixture(scope="module")
def agent(tb):
    """An ssh-agent (a Unix socket, no network) holding alice's RSA, bob's ECDSA and carol's
    Ed25519 keys."""
    folder = tb.workdir / "ssh-agent"
    folder.mkdir(mode=0o700)
    sock = folder / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for credential in (tb.pki.alice, tb.pki.bob, tb.pki.carol):
            key = serialization.load_pem_private_key(credential.key.read_bytes(), None)
            path = folder / f"{credential.name}.key"
            path.touch(mode=0o600)
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.OpenSSH,
                                               serialization.NoEncryption()))
            subprocess.run(["ssh-add", str(path)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                           check=True, capture_output=True, timeout=30)
            path.unlink()  # only the agent has it now
        yield sock
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("method", ["rsa", "ecdsa", "ed25519"])
def test_up_with_the_key_in_ssh_agent(tb, agent, make_cygnet, monkeypatch, method):
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    client = make_cygnet(tb)
    keys = client.profile_keys(method)
    del keys["key"]
    keys["ssh_agent"] = True
    client.up(client.write_profile(keys))
    assert client.status()["state"] == "up"
    assert tb.gateway.wait_for_sa()["name"] == "pubkey"
    assert client.down() == 0
    client.assert_clean()


def test_a_certificate_the_agent_has_no_key_for(tb, agent, make_cygnet, monkeypatch):
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    client = make_cygnet(tb)
    keys = client.profile_keys("chain")     # dave: RSA, not in the agent
    del keys["key"]
    keys["ssh_agent"] = True
    line = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert line.endswith("holds no key for our certificate (ssh-add the private key of 'cert')")
