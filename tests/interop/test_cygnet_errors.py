"""What the user sees when the tunnel cannot come up: a plain-language reason, a non-zero exit
code, and nothing left behind (no TUN device, no routes, resolv.conf untouched, no state files).
"""

from __future__ import annotations

import pytest

from tests.interop.cygnet_helpers import make_cygnet, module_testbed

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


def fail_to_connect(client, profile, timeout: float = 15.0) -> str:
    """Run `cygnet up` to its end; it must fail. Returns what it printed."""
    client.start(profile)
    code = client.wait_exit(timeout)
    output = client.output()
    assert code != 0, f"cygnet up succeeded?\n{output}"
    assert "tunnel up" not in output
    assert "Traceback" not in output, output
    client.process.stop()
    client.assert_clean()
    return output


def last_line(output: str) -> str:
    """The line cygnet ends with (debug lines carry a timestamp and a logger name)."""
    lines = [line for line in output.splitlines() if line.startswith("cygnet: ")]
    assert lines, output
    return lines[-1]


def test_wrong_psk(tb, make_cygnet):
    client = make_cygnet(tb)
    keys = client.profile_keys("psk")
    keys["psk_file"] = str(client.secret_file("wrong-psk", "not the gateway's key"))
    profile = client.write_profile(keys)
    output = fail_to_connect(client, profile)
    message = last_line(output)
    assert "authentication failed" in message
    assert "pre-shared key" in message or "PSK" in message, message

    # `up --daemon` says the same and fails too, leaving no engine behind.
    result = client.run("up", "--daemon", str(profile), timeout=20)
    assert result.returncode == 1
    assert last_line(result.stdout) == message
    assert client.engine_pids() == []
    client.assert_clean()


def test_wrong_eap_password(tb, make_cygnet):
    client = make_cygnet(tb)
    keys = client.profile_keys("eap-mschapv2")
    keys["password_file"] = str(client.secret_file("wrong-password", "not-the-password"))
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert "authentication failed" in message
    assert "password" in message, message


def test_wrong_password_exits_with_the_authentication_status(tb, make_cygnet):
    """The failure's kind, not its words, makes the exit status (client/failure.py EXIT_CODES);
    an unreachable gateway exits differently (test_cygnet_cli: 1)."""
    from client.failure import EXIT_CODES, FailureKind

    client = make_cygnet(tb)
    keys = client.profile_keys("eap-mschapv2")
    keys["password_file"] = str(client.secret_file("wrong-password", "not-the-password"))
    client.start(client.write_profile(keys))
    code = client.wait_exit(15)
    assert code == EXIT_CODES[FailureKind.AUTHENTICATION] == 3, client.output()
    assert code != EXIT_CODES[FailureKind.GATEWAY_UNREACHABLE]
    client.process.stop()
    client.assert_clean()


def test_untrusted_gateway_exits_with_the_identity_status(tb, make_cygnet):
    """A gateway that cannot prove itself (certificate from a CA we do not trust) is not a
    wrong password: its own exit status."""
    from client.failure import EXIT_CODES, FailureKind

    client = make_cygnet(tb)
    client.start(client.profile("rsa", ca=str(tb.pki.rogue_ca)))
    code = client.wait_exit(15)
    assert code == EXIT_CODES[FailureKind.IDENTITY_MISMATCH] == 4, client.output()
    client.process.stop()
    client.assert_clean()


def test_wrong_eap_md5_password(tb, make_cygnet):
    client = make_cygnet(tb)
    keys = client.profile_keys("eap-md5")
    keys["password_file"] = str(client.secret_file("wrong-password", "not-the-password"))
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert "authentication failed" in message
    assert "password" in message, message


def test_gateway_certificate_from_another_ca(tb, make_cygnet):
    client = make_cygnet(tb)
    # We trust only the rogue CA: the gateway's certificate (from the test root) must be refused.
    profile = client.profile("rsa", ca=str(tb.pki.rogue_ca))
    message = last_line(fail_to_connect(client, profile))
    assert "authentication failed" in message
    assert "certificate for gw.cygnet.test is not signed by a trusted CA" in message, message


def test_client_certificate_the_gateway_does_not_trust(tb, make_cygnet):
    client = make_cygnet(tb)
    message = last_line(fail_to_connect(client, client.profile("rogue")))
    assert "authentication failed: the gateway rejected our certificate" in message, message


def test_gateway_identity_mismatch(tb, make_cygnet):
    client = make_cygnet(tb)
    profile = client.profile("ecdsa", remote_id="vpn.elsewhere.test")
    message = last_line(fail_to_connect(client, profile))
    assert "vpn.elsewhere.test" in message, message


def test_no_common_proposal(tb, make_cygnet):
    client = make_cygnet(tb)
    # The gateway offers no 3DES and no MODP-1536.
    profile = client.profile("psk", ike="3des-sha256-modp1536")
    message = last_line(fail_to_connect(client, profile))
    assert "proposal" in message, message
