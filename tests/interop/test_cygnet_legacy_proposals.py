"""Proposal strings with strongSwan 5.9.8's meanings against a real strongSwan gateway (issue 20):
the legacy algorithms a profile may name (AES-CTR, 3DES, AES-XCBC, SHA-1, MD5), swanctl's
`default` keyword and strongSwan's silent normalisations each negotiate, and the tunnel carries
traffic through Cygnet's userspace ESP (the gateway runs kernel-libipsec, so both ends do ESP in
software with these algorithms).

The gateway accepts the legacy algorithms in proposals of its own, listed before its defaults
(strongSwan as responder prefers its own order), and loads the `xcbc` plugin for AES-XCBC.
"""

from __future__ import annotations

import pytest

from tests.interop.cygnet_helpers import (LAN_HOST, make_cygnet, module_testbed, ping_flood,
                                          tcp_echo_transfer)

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]

LEGACY_IKE = ("aes128ctr-aes256ctr-3des-aes128-aesxcbc-sha1-md5-sha256"
              "-prfaesxcbc-prfsha1-prfmd5-prfsha256-x25519-modp2048")
LEGACY_ESP = "aes128ctr-aes256ctr-3des-aes128-aesxcbc-sha1-md5-sha256"
LEGACY_ESP_PFS = f"{LEGACY_ESP}-modp2048-x25519"   # a configured group insists on PFS


@pytest.fixture(scope="module")
def tb(pki):
    from testbed import DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS, CharonSettings, GatewayOptions

    options = GatewayOptions(ike_proposals=(LEGACY_IKE, *DEFAULT_IKE_PROPOSALS),
                             esp_proposals=(LEGACY_ESP, LEGACY_ESP_PFS, *DEFAULT_ESP_PROPOSALS),
                             charon=CharonSettings(extra_plugins=("xcbc",)))
    yield from module_testbed(pki, gateway_options=options, capture=False)


# profile (ike, esp) -> what the gateway must report for the IKE_SA and the CHILD_SA, and the
# legacy families `cygnet up` must warn about
LEGACY = {
    "aes128ctr-aesxcbc-modp2048": (
        ("aes128ctr-aesxcbc-modp2048", "aes128ctr-aesxcbc"),
        {"encr-alg": "AES_CTR", "encr-keysize": "128", "integ-alg": "AES_XCBC_96",
         "prf-alg": "PRF_AES128_XCBC", "dh-group": "MODP_2048"},
        {"encr-alg": "AES_CTR", "encr-keysize": "128", "integ-alg": "AES_XCBC_96"},
        ("AES-CTR", "AES-XCBC")),
    "3des-sha1-modp2048": (
        ("3des-sha1-modp2048", "3des-sha1"),
        {"encr-alg": "3DES_CBC", "integ-alg": "HMAC_SHA1_96", "prf-alg": "PRF_HMAC_SHA1",
         "dh-group": "MODP_2048"},
        {"encr-alg": "3DES_CBC", "integ-alg": "HMAC_SHA1_96"},
        ("3DES", "SHA-1")),
    "aes256ctr-sha1-x25519": (
        ("aes256ctr-sha1-x25519", "aes256ctr-sha1"),
        {"encr-alg": "AES_CTR", "encr-keysize": "256", "integ-alg": "HMAC_SHA1_96",
         "prf-alg": "PRF_HMAC_SHA1", "dh-group": "CURVE_25519"},
        {"encr-alg": "AES_CTR", "encr-keysize": "256", "integ-alg": "HMAC_SHA1_96"},
        ("AES-CTR", "SHA-1")),
    "aes128-md5-modp2048": (
        ("aes128-md5-modp2048", "aes128-md5"),
        {"encr-alg": "AES_CBC", "encr-keysize": "128", "integ-alg": "HMAC_MD5_96",
         "prf-alg": "PRF_HMAC_MD5", "dh-group": "MODP_2048"},
        {"encr-alg": "AES_CBC", "encr-keysize": "128", "integ-alg": "HMAC_MD5_96"},
        ("MD5",)),
    "default-keyword": (
        # The gateway prefers its first proposal (AES-CBC-128, SHA-256): only the defaults
        # `default` inserted offer that, the explicit AES-GCM proposals do not.
        ("aes256gcm16-prfsha384-ecp384,default", "aes256gcm16,default"),
        {"encr-alg": "AES_CBC", "encr-keysize": "128", "integ-alg": "HMAC_SHA2_256_128",
         "prf-alg": "PRF_HMAC_SHA2_256", "dh-group": "CURVE_25519"},
        {"encr-alg": "AES_CBC", "encr-keysize": "128", "integ-alg": "HMAC_SHA2_256_128"}, ()),
    "strongswan-normalisations": (
        # integrity beside AEAD (IKE with an explicit PRF, and ESP), ESN in IKE, PRF in ESP
        ("aes128gcm16-prfsha256-sha256-x25519-esn", "aes128gcm16-sha256-prfsha256"),
        {"encr-alg": "AES_GCM_16", "encr-keysize": "128", "prf-alg": "PRF_HMAC_SHA2_256",
         "dh-group": "CURVE_25519"},
        {"encr-alg": "AES_GCM_16", "encr-keysize": "128"}, ()),
}


@pytest.mark.parametrize("case", list(LEGACY))
def test_negotiates_and_carries_traffic(tb, make_cygnet, case):
    (ike, esp), want_ike, want_child, families = LEGACY[case]
    client = make_cygnet(tb)
    client.up(client.profile("psk", ike=ike, esp=esp))

    gateway_sa = tb.gateway.wait_for_sa()
    for key, value in want_ike.items():
        assert gateway_sa[key] == value, (key, gateway_sa)
    if "integ-alg" not in want_ike:
        assert "integ-alg" not in gateway_sa, gateway_sa    # AEAD: no integrity transform
    gateway_child = next(iter(gateway_sa["child-sas"].values()))
    for key, value in want_child.items():
        assert gateway_child[key] == value, (key, gateway_child)
    assert tb.ping("client", LAN_HOST, count=3) == 3
    tcp_echo_transfer(tb.client_ns.name, LAN_HOST, 1 << 20)   # ~750 full-size packets each way

    warnings = [line for line in client.output().splitlines() if "uses legacy" in line]
    warned = {line.split("uses legacy ")[1].split(":")[0] for line in warnings}
    assert warned == set(families), warnings
    assert all(line.startswith("cygnet: warning: proposal '") for line in warnings), warnings
    assert client.down() == 0
    client.assert_clean()


def test_legacy_suites_survive_ike_and_child_rekeys(tb, make_cygnet):
    """Rekeying derives keys with the legacy PRF again (RFC 7296 §2.18: SKEYSEED keyed with
    the 16-byte SK_d of AES-XCBC-PRF-128) and runs a MODP-2048 PFS exchange per CHILD_SA."""
    client = make_cygnet(tb)
    client.hooks = {"ike_rekey_time": 1.0, "ike_rand_time": 0, "esp_soft_packets": 100}
    client.up(client.profile("psk", ike="aes128ctr-aesxcbc-modp2048",
                             esp="aes256ctr-aesxcbc-modp2048"))
    before = client.control_status()

    sent, received = ping_flood(tb.client_ns.name, LAN_HOST, count=250, interval=0.01, timeout=25)
    assert received == sent, f"{sent - received} of {sent} pings lost across the rekeys"

    after = client.control_status()
    assert after["ike_rekeys"] > before["ike_rekeys"] and after["child_rekeys"] > before["child_rekeys"]
    assert after["reconnects"] == 0
    gateway_sa = tb.gateway.wait_for_sa()
    assert (gateway_sa["prf-alg"], gateway_sa["encr-alg"]) == ("PRF_AES128_XCBC", "AES_CTR")
    installed = [c for c in gateway_sa["child-sas"].values() if c["state"] == "INSTALLED"]
    assert [(c["encr-alg"], c["integ-alg"], c["dh-group"]) for c in installed] == [
        ("AES_CTR", "AES_XCBC_96", "MODP_2048")]
    assert client.down() == 0
    client.assert_clean()
