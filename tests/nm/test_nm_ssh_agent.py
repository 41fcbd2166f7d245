"""NetworkManager `method=agent` (NetworkManager-strongswan's meaning, issue 19): `usercert`
names the key, a real ssh-agent holds it, the socket is the connection's `agent` secret; a
real NetworkManager starts Cygnet's plugin, which signs through the agent against strongSwan."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization

from tests.nm.test_networkmanager_plugin import add_vpn

pytestmark = [pytest.mark.interop, pytest.mark.nm, pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("ssh-agent"), reason="openssh-client missing")]


@pytest.fixture
def agent(pki, tmp_path):
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        key = serialization.load_pem_private_key(pki.bob.key.read_bytes(), None)
        path = tmp_path / "bob.key"
        path.touch(mode=0o600)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
        subprocess.run(["ssh-add", str(path)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True, timeout=30)
        path.unlink()
        yield sock
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("method", [{"method": "agent"}, {"method": "cert", "cert-source": "agent"}])
def test_agent_method_with_the_socket_as_secret(agent, nm_testbed, method):
    from testbed import GATEWAY_NAME

    testbed, nm = nm_testbed
    data = {"address": testbed.gateway_address, "virtual": "yes", "remote-identity": GATEWAY_NAME,
            "certificate": str(testbed.pki.root_ca), "usercert": str(testbed.pki.bob.cert),
            "local-identity": testbed.pki.bob.identity, **method}
    add_vpn(nm, "agent", "cygnet", data)
    nm.nmcli("connection", "edit", "agent",
             input=f"set vpn.secrets agent={agent}\nsave\nquit\n", timeout=30)
    result = nm.nmcli("connection", "up", "agent", timeout=90)
    assert "successfully activated" in result.stdout, result
    sa = testbed.gateway.wait_for_sa()
    assert sa["name"] == "pubkey" and sa["remote-id"] == testbed.pki.bob.identity
    nm.nmcli("connection", "down", "agent", timeout=60)
