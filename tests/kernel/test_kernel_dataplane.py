"""`cygnet up` with dataplane = kernel against strongSwan with kernel-netlink: real kernel ESP on
both ends (runs in the VM lane; see conftest.py).

Each tunnel must carry pings (IPv4 and IPv6) and TCP, show moving counters in `ip -s xfrm
state` and `cygnet status`, and leave nothing in the kernel when it ends (SAs, policies, the
xfrm interface), also after a SIGKILL (the next start removes it).
"""

from __future__ import annotations

import ipaddress
import os
import re
import time

import pytest

from client.kernel_dataplane import reqid_of
from tests.interop.cygnet_helpers import (DNS_SERVERS, LAN_HOST, LAN_HOST6, make_cygnet,
                                          module_testbed, ping_flood, tcp_echo_transfer)

from testbed import wait_for

pytestmark = pytest.mark.interop
__all__ = ["make_cygnet"]

MB = 1024 * 1024


@pytest.fixture(scope="module")
def tb(pki):
    yield from module_testbed(pki, capture=False)


@pytest.fixture(scope="module")
def tb_nat(pki):
    yield from module_testbed(pki, capture=False, nat="masquerade")


# ------------------------------------------------------------------------------ helpers


def tunnel_status(client) -> dict:
    """`cygnet status` of this client's tunnel, asked over its control socket from this process
    (a new Python process costs seconds under TCG)."""
    from client import control

    saved = os.environ.get("CYGNET_RUN_DIR")
    os.environ["CYGNET_RUN_DIR"] = str(client.run_dir)
    try:
        return control.request(client.name, "status")["status"]
    finally:
        if saved is None:
            del os.environ["CYGNET_RUN_DIR"]
        else:
            os.environ["CYGNET_RUN_DIR"] = saved


def xfrm_state(tb) -> str:
    return tb.client_ns.ip("-s", "xfrm", "state").stdout


def xfrm_policy(tb) -> str:
    return tb.client_ns.ip("xfrm", "policy").stdout


def sa_counters(text: str) -> dict[str, tuple[int, int]]:
    """SPI -> (bytes, packets) from `ip -s xfrm state` ("lifetime current: N(bytes), M(packets)")."""
    result = {}
    for block in re.split(r"\n(?=src )", text):
        spi = re.search(r"spi (0x[0-9a-f]+)", block)
        current = re.search(r"lifetime current:\s*\n?\s*(\d+)\(bytes\), (\d+)\(packets\)", block)
        if spi and current:
            result[spi.group(1)] = (int(current.group(1)), int(current.group(2)))
    return result


def assert_kernel_clean(client) -> None:
    tb = client.tb
    assert xfrm_state(tb).strip() == "", f"SAs left:\n{xfrm_state(tb)}"
    assert xfrm_policy(tb).strip() == "", f"policies left:\n{xfrm_policy(tb)}"
    links = [name for name in client.links() if name.startswith("cygx")]
    assert links == [], f"xfrm interfaces left: {links}"
    client.assert_clean()


def kernel_profile(client, method: str, **overrides):
    return client.profile(method, dataplane="kernel", **overrides)


def check_tunnel(client, *, tcp_bytes: int = MB, ipv6: bool = True) -> dict:
    """Pings, a TCP round trip and counters through an established tunnel; returns status."""
    tb = client.tb
    status = tunnel_status(client)
    assert status["state"] == "up"
    assert status["dataplane"] == "kernel"
    assert status["interface"].startswith("cygx")
    before = sa_counters(xfrm_state(tb))
    assert len(before) == 2, f"expected one SA pair in the kernel:\n{xfrm_state(tb)}"

    assert tb.ping("client", LAN_HOST, count=3, timeout=3) == 3
    if ipv6:
        assert tb.ping("client", LAN_HOST6, count=2, timeout=3) == 2
    tcp_echo_transfer(tb.client_ns.name, LAN_HOST, tcp_bytes, timeout=60)

    after = sa_counters(xfrm_state(tb))
    for spi, (octets, packets) in after.items():
        assert octets > before[spi][0] + tcp_bytes // 2, f"SA {spi}: counters did not move"
        assert packets > before[spi][1]
    # cygnet status reads the same counters back from the kernel
    [child] = tunnel_status(client)["children"]
    assert child["bytes_in"] > tcp_bytes // 2 and child["bytes_out"] > tcp_bytes // 2
    assert child["packets_in"] > 3 and child["packets_out"] > 3
    return status


# ------------------------------------------------------------------------------ tests


def test_psk_tunnel_with_virtual_ips_dns_ping_and_tcp(tb, make_cygnet):
    client = make_cygnet(tb)
    client.up(kernel_profile(client, "psk"), timeout=60)
    status = check_tunnel(client)

    vips = [ipaddress.ip_address(v) for v in status["virtual_ips"]]
    assert any(v.version == 4 for v in vips) and any(v.version == 6 for v in vips)
    assert sorted(status["dns"]) == sorted(DNS_SERVERS)
    assert "nameserver 10.1.0.53" in client.resolv_conf.read_text()
    links = client.tb.client_ns.ip("-d", "addr", "show", status["interface"]).stdout
    assert "xfrm" in links and all(str(v) in links for v in vips)
    # policies from the negotiated selectors, each with a template carrying our reqid
    policies = xfrm_policy(tb)
    for direction in ("out", "in", "fwd"):
        assert f"dir {direction}" in policies
    assert f"reqid {reqid_of(1)} mode tunnel" in policies, policies
    # the gateway sees real kernel SAs (no UDP encapsulation without NAT)
    [gateway_sa] = tb.gateway.list_sas()
    assert gateway_sa["name"] == "psk"
    assert "encap" not in xfrm_state(tb)

    assert client.down() == 0
    assert_kernel_clean(client)
    assert tb.gateway.list_sas() == []


def test_certificate_tunnel_with_dataplane_auto(tb, make_cygnet):
    """dataplane = auto picks the kernel here (it can install an ESP SA) and says so."""
    client = make_cygnet(tb)
    client.up(client.profile("rsa", dataplane="auto"), timeout=60)
    assert "data plane: kernel" in client.output()
    check_tunnel(client, ipv6=False)
    assert client.down() == 0
    assert_kernel_clean(client)


@pytest.mark.parametrize("esp", ["aes256gcm16", "chacha20poly1305", "aes128-sha256",
                                 "aes256-sha384"])
def test_each_esp_algorithm(tb, make_cygnet, esp):
    client = make_cygnet(tb)
    client.up(kernel_profile(client, "psk", esp=esp, virtual_ip=["ipv4"]), timeout=60)
    state = xfrm_state(tb)
    expected = {"aes256gcm16": "rfc4106(gcm(aes))", "chacha20poly1305": "rfc7539esp(chacha20,poly1305)",
                "aes128-sha256": "hmac(sha256)", "aes256-sha384": "hmac(sha384)",
                }[esp]
    assert expected in state
    if "-sha" in esp:  # RFC 4868: ICV truncated to half the hash
        bits = {"sha256": 128, "sha384": 192, "sha512": 256}[esp.split("-")[1]]
        assert re.search(rf"auth-trunc hmac\(sha\d+\) 0x[0-9a-f]+ \(\d+ bits\) {bits}\n", state), state
    assert tb.ping("client", LAN_HOST, count=2, timeout=3) == 2
    tcp_echo_transfer(tb.client_ns.name, LAN_HOST, 256 * 1024, timeout=60)
    assert client.down() == 0
    assert_kernel_clean(client)


def test_nat_traversal_uses_udp_encapsulation(tb_nat, make_cygnet):
    client = make_cygnet(tb_nat)
    client.up(kernel_profile(client, "psk"), timeout=60)
    state = xfrm_state(tb_nat)
    assert "encap type espinudp sport 4500" in state, state
    check_tunnel(client, tcp_bytes=MB)
    assert client.down() == 0
    assert_kernel_clean(client)


def test_child_and_ike_rekey_with_traffic_flowing(tb, make_cygnet):
    client = make_cygnet(tb)
    client.hooks = {"child_rekey_time": 12, "child_rand_time": 0, "child_life_time": 60,
                    "ike_rekey_time": 20, "ike_rand_time": 0}
    client.up(kernel_profile(client, "psk", virtual_ip=["ipv4"]), timeout=60)
    first = tunnel_status(client)
    [child] = first["children"]
    # ~26 s of pings at 10/s spans a CHILD_SA rekey (12 s) and an IKE rekey (20 s)
    sent, received = ping_flood(tb.client_ns.name, LAN_HOST, count=260, interval=0.1, timeout=90)
    assert received >= sent - 3, f"lost {sent - received} of {sent} pings across the rekeys"
    later = tunnel_status(client)
    spis = {c["spi_in"] for c in later["children"]}
    assert child["spi_in"] not in spis, "the CHILD_SA was not rekeyed"
    assert later["child_rekeys"] >= 1 and later["ike_rekeys"] >= 1, later
    # make-before-break: the old pair is removed a grace period after the rekey
    wait_for(lambda: len(sa_counters(xfrm_state(tb))) == 2, timeout=20,
             message=lambda: f"old SAs stay after the rekey:\n{xfrm_state(tb)}")
    tcp_echo_transfer(tb.client_ns.name, LAN_HOST, 256 * 1024, timeout=60)
    assert client.down() == 0
    assert_kernel_clean(client)


def test_kernel_soft_byte_limit_triggers_a_rekey(tb, make_cygnet):
    """A volume limit in the kernel SA: its soft EXPIRE must make the engine rekey."""
    client = make_cygnet(tb)
    client.hooks = {"esp_soft_bytes": 200_000, "esp_hard_bytes": 50 * MB}
    client.up(kernel_profile(client, "psk", virtual_ip=["ipv4"]), timeout=60)
    [child] = tunnel_status(client)["children"]
    tcp_echo_transfer(tb.client_ns.name, LAN_HOST, MB, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spis = {c["spi_in"] for c in tunnel_status(client)["children"]}
        if child["spi_in"] not in spis and spis:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no rekey after the soft byte limit:\n{client.tail()}\n{xfrm_state(tb)}")
    assert tb.ping("client", LAN_HOST, count=2, timeout=3) == 2
    assert client.down() == 0
    assert_kernel_clean(client)


def test_killed_engine_leaves_state_that_the_next_start_removes(tb, make_cygnet):
    client = make_cygnet(tb)
    profile = kernel_profile(client, "psk", virtual_ip=["ipv4"])
    client.up(profile, timeout=60)
    client.kill()
    assert sa_counters(xfrm_state(tb)), "SIGKILL cannot remove kernel SAs"
    client.up(profile, timeout=60)
    assert "previous run" in client.output()
    assert len(sa_counters(xfrm_state(tb))) == 2, xfrm_state(tb)
    assert tb.ping("client", LAN_HOST, count=2, timeout=3) == 2
    assert client.down() == 0
    assert_kernel_clean(client)
