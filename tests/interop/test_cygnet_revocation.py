"""Revocation of the gateway's certificate (issue 19) against real strongSwan: its
certificate names a CRL served over HTTP and a real `openssl ocsp` responder (delegated
signer) in the LAN namespace (testbed/revocation.py); strongSwan's strict / ifuri /
relaxed policies as the profile's `revocation`."""

from __future__ import annotations

import pytest

from tests.interop.cygnet_helpers import make_cygnet, module_testbed
from tests.interop.test_cygnet_errors import fail_to_connect, last_line

pytestmark = [pytest.mark.interop, pytest.mark.netns]
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


@pytest.fixture(scope="module")
def services(tb):
    from testbed.revocation import RevocationServices

    services = RevocationServices(tb, tb.workdir / "revocation").start()
    yield services
    services.stop()


def _gateway_with(tb, services, case):
    from testbed import GatewayOptions

    tb.gateway.reconfigure(GatewayOptions(certificate=services.credential(case).name))


def _profile(client, policy):
    return client.write_profile(client.profile_keys("rsa", revocation=policy))


def _up_down(tb, client, profile):
    client.up(profile)
    assert client.status()["state"] == "up"
    assert tb.gateway.wait_for_sa()["name"] == "pubkey"
    assert client.down() == 0
    client.assert_clean()


def test_good_certificate_passes_strict(tb, services, make_cygnet):
    _gateway_with(tb, services, "good")
    client = make_cygnet(tb)
    _up_down(tb, client, _profile(client, "strict"))
    assert "checking whether the gateway's certificate is revoked" in client.output()


@pytest.mark.parametrize("policy", ["relaxed", "strict"])
def test_revoked_certificate_fails_with_a_clear_line(tb, services, make_cygnet, policy):
    from testbed.revocation import OCSP_URL

    _gateway_with(tb, services, "revoked")
    client = make_cygnet(tb)
    line = last_line(fail_to_connect(client, _profile(client, policy)))
    serial = f"{services.serials['revoked']:x}"
    assert f"the gateway's certificate 'CN=gw.cygnet.test,O=Cygnet Test' (serial {serial})" in line
    assert "was revoked on 2026-01-02 03:04:05 UTC (reason: key_compromise)" in line
    assert f"says the OCSP responder at {OCSP_URL}" in line


def test_revoked_on_the_crl(tb, services, make_cygnet):
    from testbed.revocation import CRL_URL

    _gateway_with(tb, services, "crlrevoked")
    client = make_cygnet(tb)
    line = last_line(fail_to_connect(client, _profile(client, "relaxed")))
    assert "was revoked on 2026-01-02 03:04:05 UTC (reason: key_compromise)" in line
    assert f"says the CRL at {CRL_URL}" in line
    assert "GET /root.crl" in services.log()


def test_unknown_to_the_responder(tb, services, make_cygnet):
    _gateway_with(tb, services, "unknown")
    client = make_cygnet(tb)
    line = last_line(fail_to_connect(client, _profile(client, "strict")))
    assert "no valid revocation status" in line and "(revocation = strict)" in line
    assert "the OCSP responder does not know the certificate" in line
    client = make_cygnet(tb)
    _up_down(tb, client, _profile(client, "relaxed"))


@pytest.mark.parametrize("policy, comes_up", [("relaxed", True), ("ifuri", False),
                                              ("strict", False)])
def test_servers_down(tb, services, make_cygnet, policy, comes_up):
    _gateway_with(tb, services, "down")
    client = make_cygnet(tb)
    if comes_up:
        _up_down(tb, client, _profile(client, policy))
    else:
        line = last_line(fail_to_connect(client, _profile(client, policy)))
        assert f"no valid revocation status" in line and f"(revocation = {policy})" in line
        assert "refused" in line.lower()


@pytest.mark.parametrize("policy, comes_up", [("ifuri", True), ("strict", False)])
def test_certificate_without_uris(tb, services, make_cygnet, policy, comes_up):
    _gateway_with(tb, services, "nouri")
    client = make_cygnet(tb)
    if comes_up:
        _up_down(tb, client, _profile(client, policy))
    else:
        line = last_line(fail_to_connect(client, _profile(client, policy)))
        assert "names no CRL or OCSP server" in line



def test_revoked_eap_server_certificate(tb, services, make_cygnet):
    """EAP-only (RFC 5998): the gateway's only certificate is its EAP-TLS server certificate;
    it is checked before our answer to it is sent."""
    from testbed import GatewayOptions

    tb.gateway.reconfigure(GatewayOptions(
        certificate=services.credential("revoked").name,
        extra_config={"connections": {"eap-tls": {"local": {"auth": "eap"}}}}))
    client = make_cygnet(tb)
    keys = client.profile_keys("eap-tls", eap_only=True, revocation="relaxed")
    line = last_line(fail_to_connect(client, client.write_profile(keys)))
    serial = f"{services.serials['revoked']:x}"
    assert f"the EAP server's certificate 'CN=gw.cygnet.test,O=Cygnet Test' (serial {serial})" in line
    assert "was revoked on 2026-01-02 03:04:05 UTC (reason: key_compromise)" in line
    # the same gateway with a good certificate
    tb.gateway.reconfigure(GatewayOptions(
        certificate=services.credential("good").name,
        extra_config={"connections": {"eap-tls": {"local": {"auth": "eap"}}}}))
    client = make_cygnet(tb)
    client.up(client.write_profile(client.profile_keys("eap-tls", eap_only=True,
                                                       revocation="strict")))
    assert tb.gateway.wait_for_sa()["name"] == "eap-tls"
    assert client.down() == 0
    client.assert_clean()
