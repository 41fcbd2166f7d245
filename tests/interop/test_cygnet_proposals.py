"""Negotiation against strongSwan: every proposal family Cygnet offers, INVALID_KE_PAYLOAD,
COOKIE, IKE fragmentation of a long certificate chain, and NAT with random source ports.

The algorithms are checked on both sides: what `cygnet status` reports and what the gateway
says it installed (swanctl --list-sas), and traffic must pass in both directions.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.interop.cygnet_helpers import (LAN_HOST, LAN_HOST6, make_cygnet, module_testbed,
                                          tcp_echo_transfer)

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


@contextlib.contextmanager
def gateway_options(testbed, **changes):
    """Load other connections into the running gateway for one test, then the defaults again."""
    from dataclasses import replace

    original = testbed.gateway.options
    testbed.gateway.reconfigure(replace(original, **changes))
    try:
        yield
    finally:
        testbed.gateway.reconfigure(original)


def tunnel_works(testbed, client, size: int = 1 << 20) -> None:
    assert testbed.ping("client", LAN_HOST, count=2) == 2
    assert testbed.ping("client", LAN_HOST6, count=2) == 2
    tcp_echo_transfer(testbed.client_ns.name, LAN_HOST6, size)


# (profile ike, profile esp) -> what the gateway must report for the IKE_SA and the CHILD_SA
PROPOSALS = {
    "aes128gcm-x25519": (("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
                         {"encr-alg": "AES_GCM_16", "encr-keysize": "128",
                          "prf-alg": "PRF_HMAC_SHA2_256", "dh-group": "CURVE_25519"},
                         {"encr-alg": "AES_GCM_16", "encr-keysize": "128"}),
    "aes256gcm-ecp256": (("aes256gcm16-prfsha384-ecp256", "aes256gcm16"),
                         {"encr-alg": "AES_GCM_16", "encr-keysize": "256",
                          "prf-alg": "PRF_HMAC_SHA2_384", "dh-group": "ECP_256"},
                         {"encr-alg": "AES_GCM_16", "encr-keysize": "256"}),
    "chacha20-ecp384": (("chacha20poly1305-prfsha256-ecp384", "chacha20poly1305"),
                        {"encr-alg": "CHACHA20_POLY1305", "dh-group": "ECP_384"},
                        {"encr-alg": "CHACHA20_POLY1305"}),
    "aes256cbc-modp2048": (("aes256-sha384-modp2048", "aes256-sha256"),
                           {"encr-alg": "AES_CBC", "encr-keysize": "256",
                            "integ-alg": "HMAC_SHA2_384_192", "prf-alg": "PRF_HMAC_SHA2_384",
                            "dh-group": "MODP_2048"},
                           {"encr-alg": "AES_CBC", "encr-keysize": "256",
                            "integ-alg": "HMAC_SHA2_256_128"}),
    "aes128cbc-modp3072-pfs": (("aes128-sha256-modp3072", "aes128-sha384-modp3072"),
                               {"encr-alg": "AES_CBC", "encr-keysize": "128",
                                "integ-alg": "HMAC_SHA2_256_128", "dh-group": "MODP_3072"},
                               {"encr-alg": "AES_CBC", "encr-keysize": "128",
                                "integ-alg": "HMAC_SHA2_384_192"}),
}


@pytest.mark.parametrize("family", list(PROPOSALS))
def test_proposal_family(tb, make_cygnet, family):
    (ike, esp), want_ike, want_child = PROPOSALS[family]
    client = make_cygnet(tb)
    client.up(client.profile("psk", ike=ike, esp=esp))

    gateway_sa = tb.gateway.wait_for_sa()
    for key, value in want_ike.items():
        assert gateway_sa[key] == value, (key, gateway_sa)
    gateway_child = next(iter(gateway_sa["child-sas"].values()))
    for key, value in want_child.items():
        assert gateway_child[key] == value, (key, gateway_child)
    status = client.status()
    # Reported in full (the PRF is named even where the profile let it follow the integrity).
    assert set(ike.split("-")) <= set(status["ike_proposal"].split("-")), status["ike_proposal"]
    (child,) = status["children"]
    assert child["encryption"].endswith(want_child.get("encr-keysize", "256"))
    tunnel_works(tb, client)
    assert client.down() == 0
    client.assert_clean()


def test_invalid_ke_payload_makes_us_retry_with_the_group_the_gateway_wants(tb, make_cygnet):
    client = make_cygnet(tb)
    log_start = tb.gateway.log_path.stat().st_size
    with gateway_options(tb, ike_proposals=("aes128gcm16-prfsha256-x25519",)):
        # Our KE payload carries ecp256 (our first group); the gateway accepts only x25519.
        client.up(client.profile("psk", ike="aes128gcm16-prfsha256-ecp256-x25519"))
        assert tb.gateway.wait_for_sa()["dh-group"] == "CURVE_25519"
        assert tb.ping("client", LAN_HOST) == 1
        assert client.down() == 0
    log = tb.gateway.log_path.read_text()[log_start:]
    assert "N(INVAL_KE)" in log, "the gateway never asked for another group"
    client.assert_clean()


def test_long_certificate_chains_are_fragmented_both_ways(tb, make_cygnet):
    client = make_cygnet(tb)
    log_start = tb.gateway.log_path.stat().st_size
    with gateway_options(tb, certificate="chain"):
        # dave's certificate also hangs below three RSA-4096 intermediates.
        client.up(client.profile("chain"))
        assert tb.gateway.wait_for_sa()["remote-id"] == "dave@cygnet.test"
        tunnel_works(tb, client)
        assert client.down() == 0
    log = tb.gateway.log_path.read_text()[log_start:]
    assert "splitting IKE message" in log            # the gateway fragmented its IKE_AUTH
    assert "parsed IKE_AUTH request 1 [ EF(1/" in log   # and reassembled ours
    client.assert_clean()


def test_cookie_challenge(testbed_factory, make_cygnet):
    from testbed import CharonSettings, GatewayOptions

    tb = testbed_factory(gateway_options=GatewayOptions(charon=CharonSettings(cookie_threshold=1)),
                         iperf=False)
    # Leave one half-open IKE_SA on the gateway: a strongSwan client whose IKE_AUTH never
    # arrives. With a threshold of 1 the gateway must then answer us with a COOKIE.
    reference = tb.strongswan_client()
    tb.drop_packets(100, "client", match="udp dport 4500")
    reference.charon.swanctl("--initiate", "--child", "tunnel", "--ike", "psk", "--timeout", "1",
                             check=False)
    reference.charon.kill()          # frees UDP 500/4500 in the client namespace for Cygnet
    tb.drop_packets(0, "client")

    client = make_cygnet(tb)
    client.up(client.profile("psk"))
    assert "IKE_SA_INIT response 0 [ N(COOKIE) ]" in tb.gateway.log_path.read_text()
    assert tb.ping("client", LAN_HOST) == 1
    assert client.down() == 0
    client.assert_clean()


def test_nat_with_random_source_ports(testbed_factory, make_cygnet):
    from testbed import topology

    tb = testbed_factory(nat="random-ports", iperf=False)
    client = make_cygnet(tb)
    client.up(client.profile("eap-mschapv2"))

    gateway_sa = tb.gateway.wait_for_sa()
    assert gateway_sa["remote-host"] == topology.NAT_OUTSIDE_ADDR
    assert gateway_sa["remote-port"] not in ("500", "4500")    # the NAT picked another port
    assert gateway_sa["nat-remote"] == "yes"
    assert client.status()["nat"] is True
    tunnel_works(tb, client, size=4 << 20)
    assert client.down() == 0
    client.assert_clean()


def test_ike_and_esp_over_ipv6(tb, make_cygnet):
    from testbed import topology

    client = make_cygnet(tb)
    client.up(client.profile("ed25519", gateway=tb.gateway_address6))
    gateway_sa = tb.gateway.wait_for_sa()
    assert gateway_sa["remote-host"] == topology.CLIENT_ADDR6
    assert client.status()["gateway"] == tb.gateway_address6
    tunnel_works(tb, client)
    assert client.down() == 0
    client.assert_clean()


@pytest.mark.parametrize("method", ["ecdsa", "eap-md5"])
def test_gateway_with_an_ecdsa_certificate(tb, make_cygnet, method):
    client = make_cygnet(tb)
    log_start = tb.gateway.log_path.stat().st_size
    with gateway_options(tb, certificate="ecdsa"):
        client.up(client.profile(method))
        assert tb.ping("client", LAN_HOST) == 1
        assert client.down() == 0
    assert "authentication of 'gw.cygnet.test' (myself) with ECDSA" in \
        tb.gateway.log_path.read_text()[log_start:]
    client.assert_clean()
