"""An impostor gateway is refused (issue 13 §1), against real strongSwan.

With no remote_id, the gateway must prove the address we dialled as a subjectAltName of its
certificate, as charon-nm and the strongSwan Android app require. The impostor holds a valid
certificate from the same CA, for another name: another server's (gateway-other) or a user's
(alice). Refused on the CLI and .sswan paths (tests/nm covers NetworkManager) with a message
naming what was expected and what was presented; the honest gateway still connects.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid

import pytest

from tests.interop.cygnet_helpers import LAN_HOST, make_cygnet, module_testbed

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


@contextlib.contextmanager
def impostor(testbed, credential: str):
    """The gateway presents `credential`'s certificate (and identity) for one test."""
    from dataclasses import replace

    original = testbed.gateway.options
    identity = testbed.pki.credentials[credential].identity
    testbed.gateway.reconfigure(replace(original, certificate=credential, gateway_id=identity))
    try:
        yield
    finally:
        testbed.gateway.reconfigure(original)


def refused(client, profile) -> str:
    client.start(profile)
    code = client.wait_exit(20)
    output = client.output()
    assert code != 0, output
    assert "tunnel up" not in output and "Traceback" not in output, output
    client.process.stop()
    client.assert_clean()
    return [line for line in output.splitlines() if line.startswith("cygnet: ")][-1]


PRESENTED = {
    "gateway-other": "the gateway presented CN=other.cygnet.test,O=Cygnet Test,C=CH, "
                     "SAN DNS:other.cygnet.test",
    "alice": "the gateway presented CN=alice@cygnet.test,O=Cygnet Test,C=CH, "
             "SAN email:alice@cygnet.test",
}


def test_the_honest_gateway_connects_without_remote_id(tb, make_cygnet):
    client = make_cygnet(tb)
    client.up(client.profile("ecdsa", remote_id=None))
    assert tb.ping("client", LAN_HOST) == 1
    assert client.down() == 0
    client.assert_clean()


@pytest.mark.parametrize("credential", list(PRESENTED))
@pytest.mark.parametrize("method", ["ecdsa", "eap-mschapv2"])
def test_an_impostor_with_a_certificate_from_the_same_ca_is_refused(tb, make_cygnet,
                                                                    credential, method):
    client = make_cygnet(tb)
    with impostor(tb, credential):
        message = refused(client, client.profile(method, remote_id=None))
    assert (f"gateway identity mismatch: expected a certificate for {tb.gateway_address}, "
            f"{PRESENTED[credential]}") in message, message


def test_remote_id_any_accepts_the_impostor_and_warns(tb, make_cygnet):
    client = make_cygnet(tb)
    with impostor(tb, "gateway-other"):
        client.up(client.profile("ecdsa", remote_id="%any"))
        assert 'warning: remote_id = "%any"' in client.output()
        assert client.down() == 0
    client.assert_clean()


def _sswan(client, tb, name: str) -> str:
    identity, _ = tb.gateway.eap_users["eap-mschapv2"]
    path = client.dir / f"{name}.sswan"
    path.write_text(json.dumps({
        "uuid": str(uuid.uuid4()), "name": name, "type": "ikev2-eap",
        "remote": {"addr": tb.gateway_address,  # no remote.id: the tray's default
                   "cert": base64.b64encode(tb.pki.root_ca.read_bytes()).decode()},
        "local": {"eap_id": identity},
    }))
    result = client.run("import", str(path), "--dir", str(client.dir / "profiles"))
    assert result.returncode == 0, result.stderr
    toml = result.stdout.split("wrote ", 1)[1].split(";", 1)[0]
    # the password a user would type at the prompt, from a file instead
    _, password = tb.gateway.eap_users["eap-mschapv2"]
    secret = client.secret_file(f"{name}.password", password)
    with open(toml, "a") as f:
        f.write(f'password_file = "{secret}"\n')
    return toml


def test_sswan_without_remote_id_connects_to_the_honest_gateway(tb, make_cygnet):
    client = make_cygnet(tb)
    client.up(_sswan(client, tb, "honest"))
    assert client.down() == 0
    client.assert_clean()


def test_sswan_without_remote_id_refuses_an_impostor(tb, make_cygnet):
    client = make_cygnet(tb)
    toml = _sswan(client, tb, "impostor")
    with impostor(tb, "gateway-other"):
        message = refused(client, toml)
    assert (f"gateway identity mismatch: expected a certificate for {tb.gateway_address}, "
            f"{PRESENTED['gateway-other']}") in message, message
