"""vpn.data's leak keys (issue 17) become the profile's kill_switch / allow_lan / block_ipvN.
No NetworkManager needed."""

from __future__ import annotations

import pytest

from nm_plugin.vpn_data import VpnDataError, activation_from_connection
from tests.nm.test_vpn_data import PSK, connection

SECRET = {"password": "a-long-pre-shared-key-123"}


def profile(**data):
    return activation_from_connection(connection({**PSK, **data}, SECRET)).profile


def test_leak_keys_default_to_off_and_automatic():
    p = profile()
    assert (p.kill_switch, p.allow_lan, p.block_ipv4, p.block_ipv6) == (False, False, None, None)


def test_leak_keys_are_read():
    p = profile(**{"cygnet-kill-switch": "yes", "cygnet-allow-lan": "yes",
                   "cygnet-block-ipv4": "no", "cygnet-block-ipv6": "yes"})
    assert (p.kill_switch, p.allow_lan, p.block_ipv4, p.block_ipv6) == (True, True, False, True)


def test_a_bad_leak_value_names_the_key():
    with pytest.raises(VpnDataError, match="vpn.data 'cygnet-kill-switch': 'on' is not yes or no"):
        profile(**{"cygnet-kill-switch": "on"})


def test_leak_settings_survive_profile_to_vpn_data_and_back():
    from connection_schema.vpn_data import profile_from_vpn_data, vpn_data_from_profile

    p = profile(**{"cygnet-kill-switch": "yes", "cygnet-block-ipv6": "no"})
    data = vpn_data_from_profile(p)
    assert data["cygnet-kill-switch"] == "yes" and data["cygnet-block-ipv6"] == "no"
    assert "cygnet-allow-lan" not in data and "cygnet-block-ipv4" not in data
    back = profile_from_vpn_data(data, uuid="0b7e2c44-1111-2222-3333-444455556666")
    assert (back.kill_switch, back.allow_lan, back.block_ipv4, back.block_ipv6) == (True, False, None, False)


def test_block_ipv6_goes_out_to_sswan_as_the_apps_flag():
    from connection_schema.sswan import sswan_from_profile

    eap = {"method": "eap", "user": "carol", "cygnet-block-ipv6": "yes"}
    exported = sswan_from_profile(profile(**eap), "u-1", "office")
    assert exported["split-tunneling"] == {"block-ipv6": True}
