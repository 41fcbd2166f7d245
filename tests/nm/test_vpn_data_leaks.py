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
