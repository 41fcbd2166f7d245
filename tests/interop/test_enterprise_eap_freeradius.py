"""Enterprise EAP through RADIUS (issue 19): a strongSwan gateway with the `eap-radius` plugin
relays EAP to a real FreeRADIUS 3.2 (Debian's package, testbed/freeradius.py) in the
LAN namespace, which picks the method. FreeRADIUS proposes EAP-MD5 first (its
default_eap_type); the client Naks it naming the methods its profile allows, and FreeRADIUS
switches to the first of them it runs.
"""

from __future__ import annotations

import secrets

import pytest

from tests.interop.cygnet_helpers import LAN_HOST, make_cygnet, module_testbed
from tests.interop.test_cygnet_errors import fail_to_connect, last_line

pytestmark = [pytest.mark.interop, pytest.mark.netns]
__all__ = ["make_cygnet"]

USER = "ann@corp.test"
PASSWORD = "Ann's enterprise password"
RADIUS_SECRET = secrets.token_urlsafe(18)


def _gateway_options(pki):
    from testbed import GATEWAY_NAME, GatewayOptions
    from testbed.charon import CharonSettings

    base = GatewayOptions()
    connection = {
        "version": 2, "proposals": list(base.ike_proposals), "pools": ["v4", "v6"],
        "send_cert": "always",
        "local": {"auth": "pubkey", "id": GATEWAY_NAME, "certs": pki.gateway_rsa.cert.name},
        "remote": {"auth": "eap-radius", "id": "*@corp.test", "eap_id": "%any"},
        "children": {"radius": {"local_ts": list(base.local_ts),
                                "esp_proposals": list(base.esp_proposals)}}}
    charon = CharonSettings(extra_plugins=("eap-radius",), extra={"plugins": {
        "eap-radius": {"server": _radius_address(), "secret": RADIUS_SECRET}}})
    return GatewayOptions(charon=charon, extra_config={"connections": {"radius": connection}})


def _radius_address():
    from testbed.freeradius import RADIUS_ADDRESS

    return RADIUS_ADDRESS


def radius_testbed(pki, server_class, subdir: str):
    """A module testbed whose gateway asks the RADIUS server `server_class` (FreeRadius or
    HostapdRadius) on the LAN; yields the testbed with `.radius` set, stops both after."""
    from testbed import topology

    testbeds = module_testbed(pki, capture=False, gateway_options=_gateway_options(pki))
    testbed = next(testbeds)
    try:
        testbed.radius = server_class(testbed.lan_ns, testbed.workdir / subdir, pki,
                                      users={USER: PASSWORD}, secret=RADIUS_SECRET,
                                      client_address=topology.GATEWAY_LAN_ADDR).start()
        try:
            yield testbed
        finally:
            testbed.radius.stop()
    finally:
        testbeds.close()


@pytest.fixture(scope="module")
def tb(pki):
    from testbed.freeradius import FreeRadius, available

    if not available():
        pytest.skip("Debian's freeradius is not installed (scripts/setup-debian.sh)")
    yield from radius_testbed(pki, FreeRadius, "radius")


def _keys(client, methods, password=PASSWORD, **extra) -> dict:
    from testbed import GATEWAY_NAME
    from testbed.freeradius import RADIUS_NAME

    keys = {"name": client.name, "gateway": client.tb.gateway_address,
            "remote_id": GATEWAY_NAME, "auth": "eap", "eap_methods": methods,
            "eap_identity": USER, "ca": str(client.tb.pki.root_ca),
            "eap_server_id": RADIUS_NAME,
            "password_file": str(client.secret_file("password", password))}
    keys.update(extra)
    return keys


def _up_and_ping(tb, client, keys, expect_in_radius_log: str) -> None:
    log_start = len(tb.radius.log())
    try:
        client.up(client.write_profile(keys))
    except Exception:
        print(tb.radius.log()[log_start:][-8000:])  # what FreeRADIUS said
        raise
    assert client.status()["state"] == "up"
    assert tb.gateway.wait_for_sa()["name"] == "radius"
    assert tb.ping("client", LAN_HOST, count=2) == 2
    assert expect_in_radius_log in tb.radius.log()[log_start:]
    assert client.down() == 0
    client.assert_clean()
    assert [sa for sa in tb.gateway.list_sas() if sa["state"] == "ESTABLISHED"] == []


@pytest.mark.parametrize("methods, inner, radius_says", [
    (["ttls"], ["mschapv2"], "eap_mschapv2"),      # TTLS, inner EAP-MSCHAPv2 after a Nak
    (["ttls"], ["md5"], "eap_md5"),                # TTLS, inner EAP-MD5
    (["peap"], ["mschapv2"], "eap_peap"),         # PEAPv0, inner EAP-MSCHAPv2
    (["gtc"], [], "eap_gtc"),
    (["mschapv2"], [], "eap_mschapv2"),
])
def test_methods_the_radius_server_runs(tb, make_cygnet, methods, inner, radius_says):
    client = make_cygnet(tb)
    _up_and_ping(tb, client, _keys(client, methods + inner), radius_says)


@pytest.mark.parametrize("inner", ["pap", "mschapv2"])
def test_ttls_with_inner_pap_and_mschapv2(tb, make_cygnet, inner):
    client = make_cygnet(tb)
    keys = _keys(client, ["ttls"], ttls_inner=inner)
    _up_and_ping(tb, client, keys, {"pap": "pap: User authenticated successfully",
                                    "mschapv2": "mschap: Client is using MS-CHAPv2"}[inner])


@pytest.mark.parametrize("inner", ["pap", "mschapv2"])
def test_ttls_inner_pap_and_mschapv2_wrong_password(tb, make_cygnet, inner):
    client = make_cygnet(tb)
    keys = _keys(client, ["ttls"], ttls_inner=inner, password="not Ann's password")
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert "authentication failed" in message and "password" in message, message


@pytest.mark.parametrize("method", ["ttls", "peap", "gtc"])
def test_wrong_password(tb, make_cygnet, method):
    client = make_cygnet(tb)
    keys = _keys(client, [method, "mschapv2"], password="not Ann's password")
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert "authentication failed" in message and "password" in message, message


@pytest.mark.parametrize("method", ["ttls", "peap"])
def test_wrong_server_certificate_name_inside_the_tunnel(tb, make_cygnet, method):
    client = make_cygnet(tb)
    keys = _keys(client, [method, "mschapv2"], eap_server_id="radius.elsewhere.test")
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert f"EAP-{method.upper()} server" in message, message
    assert "radius.elsewhere.test" in message, message


@pytest.mark.parametrize("auth", ["eap-tls", "eap"])
def test_eap_tls_through_radius(tb, make_cygnet, auth):
    pki = tb.pki
    client = make_cygnet(tb)
    keys = _keys(client, ["tls"], auth=auth, eap_identity=pki.eaptls.identity,
                 local_id="eaptls@corp.test", cert=str(pki.eaptls.cert), key=str(pki.eaptls.key))
    del keys["password_file"]
    if auth == "eap-tls":
        del keys["eap_methods"]
    _up_and_ping(tb, client, keys, "eap_tls: (TLS) Creating attributes from client certificate")


def test_the_method_the_server_proposes_first_is_refused_when_the_profile_forbids_it(
        tb, make_cygnet):
    # FreeRADIUS proposes EAP-MD5 (default_eap_type); the profile allows only GTC: we Nak
    # naming GTC and the server switches.
    client = make_cygnet(tb)
    log_start = len(tb.radius.log())
    _up_and_ping(tb, client, _keys(client, ["gtc"]), "eap_gtc")
    log = tb.radius.log()[log_start:]
    assert "Peer sent packet with method EAP NAK (3)" in log
    assert "eap_md5: Issuing MD5 Challenge" in log or "EAP MD5 (4)" in log


@pytest.mark.parametrize("method", ["peap", "ttls"])
def test_anonymous_outer_identity(tb, make_cygnet, method):
    """The EAP-Identity response (and so the outer RADIUS User-Name) is the anonymous one; the
    real user name goes only inside the TLS tunnel, where FreeRADIUS checks the password."""
    client = make_cygnet(tb)
    log_start = len(tb.radius.log())
    keys = _keys(client, [method, "mschapv2"], eap_anonymous_identity="anonymous@corp.test",
                 local_id=USER)
    _up_and_ping(tb, client, keys, 'User-Name = "anonymous@corp.test"')
    log = tb.radius.log()[log_start:]
    lines = log.splitlines()
    outer = [lines[n + 1] for n, line in enumerate(lines[:-1]) if "Received Access-Request" in line]
    assert outer and all('User-Name = "anonymous@corp.test"' in line for line in outer), outer
    assert f"files: users: Matched entry {USER}" in log  # the real user, inside the tunnel
