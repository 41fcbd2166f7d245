"""Enterprise EAP methods against strongSwan's own EAP servers (issue 19): the `eap-ttls`
plugin (TTLSv0 with inner EAP-MD5 or EAP-MSCHAPv2) and `eap-gtc` (checked by the
`xauth-generic` backend against swanctl secrets). Debian 12 has no eap-peap plugin.

(strongSwan's TTLS server runs one inner EAP method for all connections, phase2_method =
md5 here, and does not switch on a Nak.)

The client either names the method (`auth = "eap-ttls"`) or lets the server choose
(`auth = "eap"` with `eap_methods`): a method the profile forbids must fail with a clear
message, and the TTLS server's certificate must carry the expected name.
"""

from __future__ import annotations

import pytest

from tests.interop.cygnet_helpers import LAN_HOST, make_cygnet, module_testbed
from tests.interop.test_cygnet_errors import fail_to_connect, last_line

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]

TTLS_MD5 = "ttls-md5@cygnet.test"
TTLS_MSCHAPV2 = "ttls-mschapv2@cygnet.test"  # the same server, an inner Nak
GTC = "gtc@cygnet.test"
PASSWORDS = {TTLS_MD5: "ttls md5 secret", TTLS_MSCHAPV2: "ttls mschapv2 secret",
             GTC: "gtc secret"}


def _gateway_options(pki):
    from testbed import GATEWAY_NAME, GatewayOptions
    from testbed.charon import CharonSettings
    from testbed.conffile import swanctl_secret

    base = GatewayOptions()
    _GATEWAY_CERT = pki.gateway_rsa.cert.name
    conn = {"version": 2, "proposals": list(base.ike_proposals), "pools": ["v4", "v6"],
            "send_cert": "always",
            "local": {"auth": "pubkey", "id": GATEWAY_NAME, "certs": _GATEWAY_CERT}}
    child = {"local_ts": list(base.local_ts), "esp_proposals": list(base.esp_proposals)}

    def connection(auth: str, identity: str, **remote) -> dict:
        return {**conn, "remote": {"auth": auth, "id": identity, "eap_id": "%any", **remote},
                "children": {auth: dict(child)}}

    connections = {"ttls-md5": connection("eap-ttls", TTLS_MD5),
                   "ttls-mschapv2": connection("eap-ttls", TTLS_MSCHAPV2),
                   "gtc": connection("eap-gtc", GTC)}
    secrets = {}
    for n, (identity, password) in enumerate(PASSWORDS.items()):
        secrets[f"eap-ent{n}"] = {"id": identity, "secret": swanctl_secret(password)}
        secrets[f"xauth-ent{n}"] = {"id": identity, "secret": swanctl_secret(password)}
    charon = CharonSettings(
        extra_plugins=("eap-ttls", "eap-gtc", "xauth-generic"),
        extra={"plugins": {"eap-gtc": {"backend": "generic"},
                           # the inner method strongSwan's TTLS server starts with; a Nak
                           # from the client switches it (ttls-mschapv2 below)
                           "eap-ttls": {"phase2_method": "md5"}}})
    return GatewayOptions(charon=charon,
                          extra_config={"connections": connections, "secrets": secrets})


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False, gateway_options=_gateway_options(pki))


def _keys(client, identity: str, auth: str, **extra) -> dict:
    from testbed import GATEWAY_NAME

    keys = {"name": client.name, "gateway": client.tb.gateway_address,
            "remote_id": GATEWAY_NAME, "auth": auth, "eap_identity": identity,
            "local_id": identity, "ca": str(client.tb.pki.root_ca),
            "password_file": str(client.secret_file("password", PASSWORDS[identity]))}
    keys.update(extra)
    return keys


def _up_and_ping(tb, client, keys, connection: str) -> None:
    try:
        client.up(client.write_profile(keys))
    except Exception:
        print(tb.gateway.log_path.read_text()[-6000:])  # what the EAP server said
        raise
    assert client.status()["state"] == "up"
    assert tb.gateway.wait_for_sa()["name"] == connection
    assert tb.ping("client", LAN_HOST, count=2) == 2
    assert client.down() == 0
    client.assert_clean()
    # (failed attempts of other tests may leave half-open SAs until charon times them out)
    assert [sa for sa in tb.gateway.list_sas() if sa["state"] == "ESTABLISHED"] == []


@pytest.mark.parametrize("auth", ["eap-ttls", "eap"])
def test_ttls_with_inner_eap_md5(tb, make_cygnet, auth):
    client = make_cygnet(tb)
    _up_and_ping(tb, client, _keys(client, TTLS_MD5, auth), "ttls-md5")


def test_ttls_inner_method_the_profile_forbids(tb, make_cygnet):
    # strongSwan's TTLS server starts inner EAP-MD5 (phase2_method); we allow only MSCHAPv2
    # inside and Nak. It does not switch (charon 5.9.8 closes the tunnel: "peer does not
    # support EAP_MD5"), so the connection must fail with a message saying why.
    client = make_cygnet(tb)
    keys = _keys(client, TTLS_MSCHAPV2, "eap-ttls", eap_methods=["mschapv2"])
    log_start = tb.gateway.log_path.stat().st_size
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert "closed the EAP-TTLS tunnel" in message, message
    assert "received tunneled EAP-TTLS AVP [EAP/RES/NAK]" in \
        tb.gateway.log_path.read_text()[log_start:]


def test_gtc_server_chooses(tb, make_cygnet):
    client = make_cygnet(tb)
    _up_and_ping(tb, client, _keys(client, GTC, "eap"), "gtc")


def test_gtc_wrong_password(tb, make_cygnet):
    client = make_cygnet(tb)
    keys = _keys(client, GTC, "eap-gtc")
    keys["password_file"] = str(client.secret_file("wrong", "not the password"))
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert "authentication failed" in message and "password" in message, message


def test_method_the_profile_forbids(tb, make_cygnet):
    client = make_cygnet(tb)
    keys = _keys(client, GTC, "eap", eap_methods=["ttls", "mschapv2"])
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert "authentication failed" in message, message
    assert "GTC" in message and "does not allow" in message, message


def test_ttls_server_certificate_with_another_name(tb, make_cygnet):
    client = make_cygnet(tb)
    keys = _keys(client, TTLS_MD5, "eap-ttls", eap_server_id="radius.elsewhere.test")
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert "EAP-TTLS server" in message and "radius.elsewhere.test" in message, message
