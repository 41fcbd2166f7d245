"""EAP-only authentication (RFC 5998) against strongSwan 5.9.8: its `eap-tls` connection
configured with `local.auth = eap` sends no certificate AUTH; the gateway is authenticated
by EAP-TLS (its TLS certificate checked against the profile's CA and name) and the MSK-based
AUTH. A client that does not ask for EAP-only is refused by such a gateway, and a profile
cannot ask for it with a method that does not authenticate the server."""

from __future__ import annotations

import pytest

from tests.interop.cygnet_helpers import LAN_HOST, make_cygnet, module_testbed
from tests.interop.test_cygnet_errors import fail_to_connect, last_line

pytestmark = [pytest.mark.interop, pytest.mark.netns]
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    from testbed import GatewayOptions

    # the testbed's eap-tls connection, but the gateway authenticates by EAP alone
    options = GatewayOptions(extra_config={"connections": {"eap-tls": {"local": {"auth": "eap"}}}})
    yield from module_testbed(pki, capture=False, gateway_options=options)


def test_gateway_authenticated_by_eap_tls_alone(tb, make_cygnet):
    client = make_cygnet(tb)
    client.up(client.write_profile(client.profile_keys("eap-tls", eap_only=True)))
    assert client.status()["state"] == "up"
    assert tb.ping("client", LAN_HOST) == 1
    assert tb.gateway.wait_for_sa()["name"] == "eap-tls"
    import re

    # the gateway's first IKE_AUTH response: its identity and EAP, no AUTH, no certificate
    log = tb.gateway.log_path.read_text()
    assert re.search(r"<eap-tls\|\d+> generating IKE_AUTH response 1 \[ IDr EAP/REQ/ID \]", log)
    assert client.down() == 0
    client.assert_clean()


def test_without_eap_only_such_a_gateway_refuses(tb, make_cygnet):
    client = make_cygnet(tb)
    line = last_line(fail_to_connect(client, client.write_profile(client.profile_keys("eap-tls"))))
    assert "authentication failed" in line
    assert "configured EAP-only authentication, but peer does not support it" in \
        tb.gateway.log_path.read_text()


def test_eap_only_with_a_password_method_is_refused_by_the_profile(tb, make_cygnet):
    client = make_cygnet(tb)
    keys = client.profile_keys("eap-mschapv2", eap_only=True)
    result = client.run("up", str(client.write_profile(keys)), timeout=15)
    assert result.returncode != 0
    assert "'eap_only': needs EAP methods that authenticate the server" in result.stderr + result.stdout

