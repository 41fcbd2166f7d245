"""Self-tests of the strongSwan testbed: a strongSwan initiator against the testbed gateway.

If these fail, interop failures of Cygnet mean nothing: the testbed itself is broken.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import time

import pytest

pytestmark = pytest.mark.interop

LAN_HOST = "10.1.0.10"
LAN_HOST6 = "fd00:1::10"

# client method -> the gateway connection its identity selects
GATEWAY_CONNECTION = {
    "psk": "psk", "rsa": "pubkey", "ecdsa": "pubkey", "ed25519": "pubkey",
    "eap-mschapv2": "eap-mschapv2", "eap-md5": "eap-md5", "eap-tls": "eap-tls",
}


def assert_tunnel_works(testbed, client_sa):
    from testbed import topology

    vips = [ipaddress.ip_address(v) for v in client_sa["local-vips"]]
    assert [v for v in vips if v in topology.POOL_NET], client_sa
    assert [v for v in vips if v in topology.POOL_NET6], client_sa
    for host in (LAN_HOST, LAN_HOST6):
        testbed.wait_for_ping("client", host, timeout=5)
        assert testbed.ping("client", host, count=3) == 3


@pytest.mark.parametrize("method", list(GATEWAY_CONNECTION))
def test_each_authentication_method_gets_virtual_ips_and_reaches_the_lan(testbed, method):
    client = testbed.strongswan_client()
    client_sa = client.connect(method)

    assert_tunnel_works(testbed, client_sa)
    gateway_sa = testbed.gateway.wait_for_sa()
    assert gateway_sa["name"] == GATEWAY_CONNECTION[method]
    assert gateway_sa["remote-vips"] == client_sa["local-vips"]
    child = next(iter(client_sa["child-sas"].values()))
    assert child["state"] == "INSTALLED"
    assert child["encap"] == "yes"      # kernel-libipsec: always ESP in UDP


def test_dns_attributes_reach_the_client(testbed):
    client = testbed.strongswan_client()
    client.connect("psk")
    written = client.resolv_conf.read_text()
    for server in ("10.1.0.53", "10.1.0.54", "fd00:1::53"):
        assert f"nameserver {server}" in written


def test_tcp_echo_service_through_the_tunnel(testbed):
    from testbed import netsock
    from testbed.lan_services import ECHO_PORT

    testbed.strongswan_client().connect("ecdsa")
    payload = os.urandom(100_000)
    assert netsock.tcp_echo(testbed.client_ns.name, LAN_HOST, ECHO_PORT, payload) == payload


def test_certificate_from_an_unrelated_ca_is_rejected(testbed):
    from testbed import CommandError

    client = testbed.strongswan_client()
    with pytest.raises(CommandError):
        client.connect("rogue", timeout=5)
    assert testbed.gateway.list_sas() == []


def test_through_nat_with_random_source_ports(testbed_factory):
    from testbed import topology

    testbed = testbed_factory(nat="random-ports")
    client_sa = testbed.strongswan_client().connect("rsa")

    assert_tunnel_works(testbed, client_sa)
    gateway_sa = testbed.gateway.wait_for_sa()
    assert gateway_sa["remote-host"] == topology.NAT_OUTSIDE_ADDR
    assert gateway_sa["remote-port"] not in ("500", "4500")   # the NAT picked a random port
    assert gateway_sa["nat-remote"] == "yes"


def fragments_sent(log_text: str) -> list[int]:
    """Fragment counts from charon's "splitting IKE message (N bytes) into K fragments"."""
    return [int(k) for k in re.findall(r"splitting IKE message \(\d+ bytes\) into (\d+)", log_text)]


def test_gateway_chain_makes_its_ike_auth_response_fragment(testbed_factory):
    from testbed import GatewayOptions

    testbed = testbed_factory(gateway_options=GatewayOptions(certificate="chain"))
    client = testbed.strongswan_client()
    client_sa = client.connect("rsa")      # the client's CERTREQ names only the root CA

    assert_tunnel_works(testbed, client_sa)
    gateway_log = testbed.gateway.log_path.read_text()
    assert gateway_log.count("sending issuer cert") == 3
    assert max(fragments_sent(gateway_log)) >= 4
    assert client.log_path.read_text().count("received issuer cert") == 3


def test_client_chain_makes_its_ike_auth_request_fragment(testbed):
    client = testbed.strongswan_client()
    client_sa = client.connect("chain")    # dave, below three intermediates

    assert_tunnel_works(testbed, client_sa)
    assert max(fragments_sent(client.log_path.read_text())) >= 4
    assert testbed.gateway.log_path.read_text().count("received issuer cert") == 3


def test_connects_and_passes_traffic_despite_packet_loss(testbed):
    from testbed import CharonSettings, ClientOptions

    testbed.drop_packets(30, "client")
    fast_retries = CharonSettings(retransmit_timeout=0.5, retransmit_base=1.2,
                                  retransmit_tries=12)
    client = testbed.strongswan_client(ClientOptions(charon=fast_retries))
    client.connect("psk", timeout=60)

    replies = testbed.ping("client", LAN_HOST, count=40, timeout=0.2)
    # Each echo crosses the lossy namespace twice: about half come back.
    assert 4 <= replies <= 36, replies
    testbed.drop_packets(0, "client")
    assert testbed.ping("client", LAN_HOST, count=5) == 5


def test_drop_packets_is_applied_and_removed(testbed):
    gateway = testbed.gateway_address
    testbed.drop_packets(100, "client")
    assert testbed.ping("client", gateway, count=2, timeout=0.2) == 0
    testbed.drop_packets(0, "client")
    assert testbed.ping("client", gateway, count=2) == 2


def test_gateway_options_choose_proposals(testbed_factory):
    from testbed import ClientOptions, GatewayOptions

    options = GatewayOptions(ike_proposals=("aes256-sha384-ecp384",),
                             esp_proposals=("chacha20poly1305",))
    testbed = testbed_factory(gateway_options=options)
    # The client's key share is already ecp384: after an INVALID_KE_PAYLOAD, charon 5.9.8
    # sometimes drops the next response ("already processing") and waits 4 s to retransmit.
    client = testbed.strongswan_client(ClientOptions(
        ike_proposals=("aes128gcm16-prfsha256-ecp384", "aes256-sha384-ecp384"),
        esp_proposals=("aes128gcm16", "chacha20poly1305")))
    client_sa = client.connect("psk")

    assert (client_sa["encr-alg"], client_sa["encr-keysize"]) == ("AES_CBC", "256")
    assert client_sa["integ-alg"] == "HMAC_SHA2_384_192"
    assert client_sa["dh-group"] == "ECP_384"
    child = next(iter(client_sa["child-sas"].values()))
    assert child["encr-alg"] == "CHACHA20_POLY1305"
    assert testbed.ping("client", LAN_HOST, count=2) == 2


def test_short_child_lifetime_makes_the_gateway_rekey(testbed_factory):
    from testbed import GatewayOptions

    testbed = testbed_factory(gateway_options=GatewayOptions(child_rekey_time="2s"))
    client_sa = testbed.strongswan_client().connect("psk")
    first_child = next(iter(client_sa["child-sas"].values()))

    def rekeyed():
        sas = testbed.gateway.list_sas()
        if not sas:  # listed mid-rekey on a loaded machine: ask again
            return False
        children = sas[0]["child-sas"].values()
        return any(c["spi-in"] != first_child["spi-out"] and c["state"] == "INSTALLED"
                   for c in children)

    from testbed import wait_for
    wait_for(rekeyed, timeout=10, message="CHILD_SA was not rekeyed")
    assert testbed.ping("client", LAN_HOST, count=2) == 2


def test_cookie_threshold_makes_the_gateway_demand_cookies(testbed_factory):
    from testbed import CharonSettings, GatewayOptions

    options = GatewayOptions(charon=CharonSettings(cookie_threshold=1))
    testbed = testbed_factory(gateway_options=options)
    client = testbed.strongswan_client()
    # Leave one IKE_SA half-open on the gateway (its IKE_AUTH, on port 4500, never arrives);
    # with a threshold of 1 the next IKE_SA_INIT must be answered with a COOKIE.
    testbed.drop_packets(100, "client", match="udp dport 4500")
    client.charon.swanctl("--initiate", "--child", "tunnel", "--ike", "psk", "--timeout", "1",
                          check=False)
    client.charon.swanctl("--initiate", "--child", "tunnel", "--ike", "rsa", "--timeout", "1",
                          check=False)
    assert "IKE_SA_INIT response 0 [ N(COOKIE) ]" in client.log_path.read_text()


def test_gateway_stop_kill_restart(testbed):
    client = testbed.strongswan_client()
    client.connect("psk")
    gateway = testbed.gateway
    old_pid = gateway.charon.pid

    gateway.kill()
    assert not gateway.running
    with pytest.raises(ProcessLookupError):
        os.kill(old_pid, 0)

    gateway.restart()
    assert gateway.running and gateway.charon.pid != old_pid
    assert gateway.list_sas() == []
    client.disconnect("psk", force=True)    # the new gateway does not know the old SA
    client_sa = client.connect("psk")
    assert_tunnel_works(testbed, client_sa)

    gateway.stop()                       # SIGTERM: charon deletes the SA, telling the client
    assert not gateway.running
    from testbed import wait_for
    wait_for(lambda: client.list_sas() == [], timeout=5,
             message="client did not hear the gateway's DELETE")


def test_client_commands_get_a_private_resolv_conf(testbed, tmp_path):
    host_resolv_conf = open("/etc/resolv.conf").read()
    test_resolv_conf = tmp_path / "resolv.conf"
    test_resolv_conf.write_text("nameserver 10.1.0.53\n")

    result = testbed.client_run(
        ["sh", "-c", "echo 'nameserver 10.1.0.54' >> /etc/resolv.conf; cat /etc/resolv.conf; "
                     "ip -o addr show dev eth0"],
        resolv_conf=test_resolv_conf)

    assert result.stdout.startswith("nameserver 10.1.0.53\nnameserver 10.1.0.54\n")
    assert "198.51.100.2" in result.stdout           # it ran in the client namespace
    assert test_resolv_conf.read_text().endswith("nameserver 10.1.0.54\n")
    assert open("/etc/resolv.conf").read() == host_resolv_conf


def test_secrets_stay_in_private_files_and_out_of_logs(testbed):
    client = testbed.strongswan_client()
    client.connect("eap-mschapv2")
    gateway = testbed.gateway
    for path in (gateway.charon.swanctl_conf_path, client.charon.swanctl_conf_path,
                 *gateway.charon.swanctl_dir.joinpath("private").iterdir(),
                 testbed.pki.alice.key, testbed.pki.alice.p12):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    secrets = [gateway.psk, *(password for _, password in gateway.eap_users.values())]
    logs = gateway.log_path.read_text() + client.log_path.read_text()
    for secret in secrets:
        assert secret not in logs
        assert secret.encode().hex() not in logs


def test_artifacts_hold_captures_and_logs(testbed, tmp_path):
    testbed.strongswan_client().connect("psk")
    testbed.ping("client", LAN_HOST)
    saved = testbed.save_artifacts(tmp_path / "artifacts")
    names = sorted(p.name for p in saved.iterdir())
    assert any(n.endswith("-gw.pcap") for n in names), names
    assert "gateway-charon.log" in names
    gateway_pcap = next(saved.glob("*-gw.pcap"))
    assert gateway_pcap.stat().st_size > 1000
    assert not any("swanctl" in n or n.endswith(".key.pem") for n in names)


def test_closing_removes_namespaces_and_processes(pki):
    from testbed import Testbed

    with Testbed(pki, nat="masquerade") as testbed:
        client = testbed.strongswan_client()
        names = [ns.name for ns in testbed.topology.namespaces]
        pids = [testbed.gateway.charon.pid, client.charon.pid,
                *(p.pid for p in testbed.processes)]
        workdir = testbed.workdir
        assert all(os.path.exists(f"/run/netns/{n}") for n in names)
    assert not any(os.path.exists(f"/run/netns/{n}") for n in names)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not workdir.exists()


def test_bring_up_is_fast(pki):
    from testbed import Testbed

    started = time.monotonic()
    with Testbed(pki, capture=False):
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"testbed bring-up took {elapsed:.2f} s"


def test_ike_over_ipv6_with_an_ecdsa_gateway_and_iperf3_through_the_tunnel(testbed_factory):
    from testbed import ClientOptions, GatewayOptions

    testbed = testbed_factory(gateway_options=GatewayOptions(certificate="ecdsa"))
    client = testbed.strongswan_client(ClientOptions(gateway_address=testbed.gateway_address6))
    client_sa = client.connect("ed25519")
    assert client_sa["remote-host"] == testbed.gateway_address6
    assert_tunnel_works(testbed, client_sa)
    assert "authentication of 'gw.cygnet.test' with ECDSA" in client.log_path.read_text()

    result = testbed.iperf3("client", LAN_HOST, seconds=1)
    assert result["end"]["sum_received"]["bits_per_second"] > 1e6


def test_gateway_dead_peer_detection_clears_a_vanished_client(testbed_factory):
    from testbed import CharonSettings, GatewayOptions, wait_for

    quick_giveup = CharonSettings(retransmit_timeout=0.3, retransmit_base=1.2, retransmit_tries=2)
    testbed = testbed_factory(gateway_options=GatewayOptions(dpd_delay="1s",
                                                             charon=quick_giveup))
    client = testbed.strongswan_client()
    client.connect("psk")
    testbed.gateway.wait_for_sa()

    client.kill()
    wait_for(lambda: testbed.gateway.list_sas() == [], timeout=8,
             message="gateway kept the SA of a dead client")
    assert "giving up after 2 retransmits" in testbed.gateway.log_path.read_text()


@pytest.mark.parametrize("ask_identity", [True, False])
def test_eap_identity_request_is_optional(testbed_factory, ask_identity):
    from testbed import GatewayOptions

    testbed = testbed_factory(gateway_options=GatewayOptions(eap_identity_request=ask_identity))
    testbed.strongswan_client().connect("eap-mschapv2")
    asked = "EAP/REQ/ID" in testbed.gateway.log_path.read_text()
    assert asked == ask_identity
