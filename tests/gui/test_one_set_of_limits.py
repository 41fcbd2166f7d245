"""One set of limits everywhere: the same out-of-range value is refused by a TOML profile,
by vpn.data when the plugin connects, by a .sswan import and by the editor, each error
carrying the same `connection_schema.limits.Limit` and the same words for the problem."""

from __future__ import annotations

import json

import pytest
from dbus_fast import Variant

from connection_schema import limits
from connection_schema.errors import ProfileError, SswanError, VpnDataError
from gui.connection import VpnConnection
from gui.editor import ConnectionEditor

UUID = "2a9f1d3c-6b1e-4c56-9a1f-0d3c5e7b9a11"
PSK = {"address": "vpn.example.org", "method": "psk", "virtual": "yes"}


def toml_error(tmp_path, key, value) -> ProfileError:
    from client.profile import load_profile

    path = tmp_path / "office.toml"
    path.write_text(f'gateway = "vpn.example.org"\nauth = "psk"\nkeyring = true\n{key} = {value}\n')
    with pytest.raises(ProfileError) as error:
        load_profile(str(path))
    return error.value


def plugin_error(key, value) -> VpnDataError:
    from nm_plugin.vpn_data import activation_from_connection

    vpn = {"service-type": Variant("s", "org.freedesktop.NetworkManager.cygnet"),
           "data": Variant("a{ss}", {**PSK, key: value}),
           "secrets": Variant("a{ss}", {"password": "x" * 20})}
    with pytest.raises(VpnDataError) as error:
        activation_from_connection({"connection": {"id": Variant("s", "office"),
                                                   "uuid": Variant("s", UUID)}, "vpn": vpn})
    return error.value


def editor_message(qtbot, key, value) -> str:
    editor = ConnectionEditor(VpnConnection(id="office", data=dict(PSK), uuid=UUID))
    qtbot.addWidget(editor)
    editor.fields[key].setText(value)
    editor.save()
    assert editor.result() == 0            # not saved
    return editor.error_text(key)


@pytest.mark.gui
@pytest.mark.parametrize("toml_key,nm_key,value,limit", [
    ("dpd", "cygnet-dpd", -1, limits.DPD),
    ("port", "server-port", 70000, limits.PORT),
    ("mtu", "cygnet-mtu", 9001, limits.MTU),
])
def test_the_same_value_is_refused_with_the_same_limit_everywhere(qtbot, tmp_path, toml_key, nm_key,
                                                                   value, limit):
    problem = limit.problem(value)
    from_toml = toml_error(tmp_path, toml_key, value)
    from_plugin = plugin_error(nm_key, str(value))
    assert str(from_toml).endswith(f"key '{toml_key}': {problem}")
    assert str(from_plugin) == f"vpn.data '{nm_key}': {problem}"
    assert from_toml.limit is from_plugin.limit is limit
    assert from_toml.kind == from_plugin.kind == "range"
    message = editor_message(qtbot, nm_key, str(value))
    assert message.startswith(f"'{value}' is not a number from {limit.low} to {limit.upper}.")


def test_a_sswan_file_obeys_the_same_limits(tmp_path):
    from connection_schema.sswan import read_sswan

    path = tmp_path / "o.sswan"
    path.write_text(json.dumps({"uuid": UUID, "name": "o", "type": "ikev2-eap", "mtu": 9001,
                                "remote": {"addr": "gw"}, "local": {"eap_id": "carol"}}))
    with pytest.raises(SswanError) as error:
        read_sswan(path, tmp_path / "m", p12_password=lambda what: b"")
    assert str(error.value).endswith(f"field 'mtu': {limits.MTU.problem(9001)}")
    assert error.value.limit is limits.MTU


@pytest.mark.gui
def test_retransmit_tries_beyond_the_editors_limit_are_refused_by_the_plugin_too(qtbot):
    # Before the schema, the plugin took any number of tries the editor refused.
    assert str(plugin_error("cygnet-retransmit-tries", "21")) == \
        f"vpn.data 'cygnet-retransmit-tries': {limits.RETRANSMIT_TRIES.problem(21)}"
    assert editor_message(qtbot, "cygnet-retransmit-tries", "21") == "'21' is not a number from 0 to 20."
    assert str(plugin_error("cygnet-retransmit-timeout", "0")).endswith("(allowed: from 1 to 600)")
