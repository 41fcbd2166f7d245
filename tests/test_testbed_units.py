"""Unit tests of the testbed's pure parts (no root, no namespaces, no charon)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.conffile import render
from testbed.gateway import (EAP_IDENTITIES, PSK_IDENTITY, GatewayOptions,
                             gateway_config)
from testbed.pki import Credential, Pki
from testbed.strongswan_client import ClientOptions, client_config
from testbed.vici_text import parse_pretty
from testbed.wait import wait_for

LIST_SAS_PRETTY = """\
list-sa event {
  home {
    uniqueid = 1
    state = ESTABLISHED
    local-id = C=CH, O=Cygnet Test, CN=alice@cygnet.test
    local-vips = [
      10.3.0.1
      fd00:3::1
    ]
    child-sas {
      home-1 {
        state = INSTALLED
        local-ts = [
          10.3.0.1/32
        ]
      }
    }
  }
}
list-sas reply {
}
"""


def test_parse_pretty_keeps_values_with_spaces_lists_and_sections():
    [event] = parse_pretty(LIST_SAS_PRETTY)
    sa = event["home"]
    assert sa["local-id"] == "C=CH, O=Cygnet Test, CN=alice@cygnet.test"
    assert sa["local-vips"] == ["10.3.0.1", "fd00:3::1"]
    assert sa["child-sas"]["home-1"]["local-ts"] == ["10.3.0.1/32"]
    assert parse_pretty(LIST_SAS_PRETTY, kind="reply") == [{}]


def test_parse_pretty_rejects_what_it_does_not_understand():
    with pytest.raises(ValueError):
        parse_pretty("list-sa event {\n  what is this\n}\n")


def test_render_nested_settings():
    text = render({"a": {"b": 1, "c": ["x", "y"], "d": True, "skip": None}, "e": "f g"})
    assert text == "a {\n  b = 1\n  c = x, y\n  d = yes\n}\ne = f g"


def test_render_refuses_values_that_would_break_the_file():
    with pytest.raises(ValueError):
        render({"secret": 'pass"word}'})


def _fake_pki(tmp_path: Path) -> Pki:
    def cred(name, identity):
        return Credential(name=name, identity=identity, key_type="rsa",
                          cert=tmp_path / f"{name}.cert.pem", key=tmp_path / f"{name}.key.pem",
                          ca=tmp_path / "root-ca.cert.pem")

    names = {"gateway-rsa": "gw.cygnet.test", "gateway-ecdsa": "gw.cygnet.test",
             "gateway-chain": "gw.cygnet.test", "alice": "alice@cygnet.test",
             "bob": "bob@cygnet.test", "carol": "carol@cygnet.test",
             "dave": "dave@cygnet.test", "eaptls": "eaptls@cygnet.test",
             "mallory": "mallory@cygnet.test"}
    return Pki(directory=tmp_path, root_ca=tmp_path / "root-ca.cert.pem",
               rogue_ca=tmp_path / "rogue-ca.cert.pem", intermediates=(),
               credentials={n: cred(n, i) for n, i in names.items()})


def test_gateway_config_selects_connections_by_identity(tmp_path):
    options = GatewayOptions(certificate="ecdsa", child_rekey_time="5s", dpd_delay="2s")
    config = gateway_config(options, _fake_pki(tmp_path))

    connections = config["connections"]
    assert set(connections) == {"psk", "pubkey", "eap-mschapv2", "eap-md5", "eap-tls"}
    assert connections["psk"]["remote"] == {"auth": "psk", "id": PSK_IDENTITY}
    assert connections["pubkey"]["remote"]["id"] == "%any"
    for method, identity in EAP_IDENTITIES.items():
        assert connections[method]["remote"] == {"auth": method, "id": identity,
                                                 "eap_id": "%any"}
    assert connections["pubkey"]["local"]["certs"] == "gateway-ecdsa.cert.pem"
    assert connections["pubkey"]["dpd_delay"] == "2s"
    assert connections["psk"]["children"]["psk"]["rekey_time"] == "5s"
    assert connections["psk"]["pools"] == ["v4", "v6"]
    assert config["pools"]["v4"]["dns"] == ["10.1.0.53", "10.1.0.54"]


def test_secrets_are_hex_encoded_and_never_in_repr(tmp_path):
    options = GatewayOptions(psk='tricky "psk" {with} #chars')
    config = gateway_config(options, _fake_pki(tmp_path))
    assert config["secrets"]["ike-psk"]["secret"] == "0x" + options.psk.encode().hex()
    render(config)   # hex makes any secret writable
    assert options.psk not in repr(options)
    assert options.eap_passwords["eap-md5"] not in repr(options)


def test_each_gateway_gets_fresh_secrets():
    assert GatewayOptions().psk != GatewayOptions().psk


def test_extra_settings_are_merged_into_every_connection(tmp_path):
    options = GatewayOptions(extra_connection={"local": {"id": "198.51.100.1"}},
                             extra_child={"mode": "tunnel"})
    config = gateway_config(options, _fake_pki(tmp_path))
    for name, conn in config["connections"].items():
        assert conn["local"]["id"] == "198.51.100.1"
        assert conn["local"]["auth"] in ("psk", "pubkey")
        assert conn["children"][name]["mode"] == "tunnel"


def test_client_config_uses_the_gateway_secrets(tmp_path):
    gateway = GatewayOptions()
    config = client_config("198.51.100.1", _fake_pki(tmp_path), gateway, ClientOptions())
    assert config["secrets"]["ike-psk"]["secret"] == "0x" + gateway.psk.encode().hex()
    assert config["connections"]["ed25519"]["local"]["id"] == "carol@cygnet.test"
    assert config["connections"]["eap-md5"]["local"]["eap_id"] == EAP_IDENTITIES["eap-md5"]
    assert config["connections"]["psk"]["vips"] == ["0.0.0.0", "::"]


def test_client_config_for_one_method_holds_only_its_connection_and_secret(tmp_path):
    # a benchmark baseline loads what a user's charon would for one measurement, nothing more
    gateway, pki = GatewayOptions(), _fake_pki(tmp_path)
    psk = client_config("198.51.100.1", pki, gateway, ClientOptions(methods=("psk",)))
    assert list(psk["connections"]) == ["psk"] and list(psk["secrets"]) == ["ike-psk"]
    eap = client_config("198.51.100.1", pki, gateway, ClientOptions(methods=("eap-mschapv2",)))
    assert list(eap["connections"]) == ["eap-mschapv2"]
    assert list(eap["secrets"]) == ["eap-eap-mschapv2"]


def test_wait_for_returns_the_value_or_times_out():
    values = iter([0, None, "done"])
    assert wait_for(lambda: next(values), timeout=1, interval=0) == "done"
    with pytest.raises(TimeoutError, match="never"):
        wait_for(lambda: False, timeout=0.05, message="never")
    with pytest.raises(RuntimeError, match="gone"):
        wait_for(lambda: False, timeout=5, abort=lambda: True, message="gone")


def test_reaper_runs_an_action_once_and_survives_failures(capsys):
    from testbed import reaper

    calls = []
    token = reaper.register("count", lambda: calls.append("ran"))
    assert "count" in reaper.pending()
    reaper.run_one(token)
    reaper.run_one(token)
    assert calls == ["ran"] and "count" not in reaper.pending()

    def broken():
        raise OSError("already gone")

    reaper.run_one(reaper.register("broken cleanup", broken))
    assert "broken cleanup failed: already gone" in capsys.readouterr().err
