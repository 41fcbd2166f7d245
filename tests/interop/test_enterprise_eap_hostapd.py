"""PEAPv0 with cryptobinding (issue 19): hostapd's RADIUS server (testbed/hostapd_radius.py)
behind the gateway's eap-radius plugin sends a Crypto-Binding TLV after the inner
EAP-MSCHAPv2, as Windows NPS does; it fails the authentication if our Compound MAC is wrong,
and derives the MSK from the compound keys when we answered it, so the IKE AUTH that follows
(checked by charon with that MSK) fails unless our MSK matches. TTLS with inner EAP runs too.
"""

from __future__ import annotations

import pytest

from tests.interop.cygnet_helpers import make_cygnet
from tests.interop.test_enterprise_eap_freeradius import _keys, _up_and_ping, radius_testbed
from tests.interop.test_cygnet_errors import fail_to_connect, last_line

pytestmark = [pytest.mark.interop, pytest.mark.netns]
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    from testbed.hostapd_radius import HostapdRadius, available

    if not available():
        pytest.skip("Debian's hostapd is not installed (scripts/setup-debian.sh)")
    yield from radius_testbed(pki, HostapdRadius, "hostapd")


def test_peap_with_cryptobinding(tb, make_cygnet):
    client = make_cygnet(tb)
    _up_and_ping(tb, client, _keys(client, ["peap", "mschapv2"]),
                 "EAP-PEAP: Valid cryptobinding TLV received")


def test_ttls_with_inner_eap_mschapv2(tb, make_cygnet):
    client = make_cygnet(tb)
    _up_and_ping(tb, client, _keys(client, ["ttls", "mschapv2"]),
                 "EAP-MSCHAPV2: Received Success Response - authentication completed")


def test_peap_wrong_password(tb, make_cygnet):
    client = make_cygnet(tb)
    keys = _keys(client, ["peap", "mschapv2"], password="not Ann's password")
    message = last_line(fail_to_connect(client, client.write_profile(keys)))
    assert "authentication failed" in message and "password" in message, message
