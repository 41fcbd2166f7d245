"""The legacy ESP algorithms a profile may name (AES-CTR, 3DES, AES-XCBC, SHA-1, MD5) in the
kernel data plane: `cygnet up` with dataplane = kernel against strongSwan with kernel-netlink
(real kernel ESP on both ends; runs in the VM lane, see conftest.py)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.interop.cygnet_helpers import LAN_HOST, make_cygnet, module_testbed, tcp_echo_transfer

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]

LEGACY_ESP = "aes128ctr-aes256ctr-3des-aes128-aesxcbc-sha1-md5-sha256"


@pytest.fixture(scope="module")
def tb(pki):
    from testbed import DEFAULT_ESP_PROPOSALS, CharonSettings, GatewayOptions

    # The guest loads only the common crypto modules itself; the kernel would ask modprobe
    # for these on first use anyway.
    subprocess.run(["modprobe", "-a", "des3_ede", "des_generic", "xcbc", "md5", "ctr"],
                   capture_output=True, check=False)
    options = GatewayOptions(esp_proposals=(LEGACY_ESP, *DEFAULT_ESP_PROPOSALS),
                             charon=CharonSettings(extra_plugins=("xcbc",)))
    yield from module_testbed(pki, gateway_options=options, capture=False)


# profile esp -> (kernel cipher name, kernel integrity name)
KERNEL_NAMES = {
    "aes128ctr-aesxcbc": ("rfc3686(ctr(aes))", "xcbc(aes)"),
    "3des-sha1": ("cbc(des3_ede)", "hmac(sha1)"),
    "aes128-md5": ("cbc(aes)", "hmac(md5)"),
}


@pytest.mark.parametrize("esp", list(KERNEL_NAMES))
def test_legacy_esp_in_the_kernel(tb, make_cygnet, esp):
    cipher, integrity = KERNEL_NAMES[esp]
    client = make_cygnet(tb)
    client.up(client.profile("psk", esp=esp, dataplane="kernel", virtual_ip=["ipv4"]), timeout=60)
    state = tb.client_ns.ip("-s", "xfrm", "state").stdout
    assert f"enc {cipher} " in state, state
    assert re.search(rf"auth-trunc {re.escape(integrity)} 0x[0-9a-f]+ \(\d+ bits\) 96\n", state), state
    assert tb.ping("client", LAN_HOST, count=2, timeout=3) == 2
    tcp_echo_transfer(tb.client_ns.name, LAN_HOST, 256 * 1024, timeout=60)
    assert client.down() == 0
    client.assert_clean()
