"""DNS that follows the tunnel (issue 17) with a real systemd-resolved: Debian's package,
unpacked (never installed: testbed/resolved.py), running in the client namespace with its own
system bus, as on a desktop, with the café's resolver set on the uplink link (as
NetworkManager sets what DHCP gave). The strongSwan gateway sends INTERNAL_DNS_DOMAIN (RFC 8598) through
its attr plugin. Two DNS servers log who asks them: the gateway's (10.1.0.53 behind it, only
through the tunnel) and the café's (198.51.100.53 on the client's uplink).
"""

from __future__ import annotations

import os

import pytest

from tests.interop.cygnet_helpers import make_cygnet

pytestmark = [pytest.mark.interop, pytest.mark.netns]
__all__ = ["make_cygnet"]

DOMAIN = "corp.cygnet.test"
GATEWAY_DNS = "10.1.0.53"
CAFE_DNS = "198.51.100.53"


@pytest.fixture
def dns_bed(testbed_factory, make_cygnet, tmp_path):
    """(testbed, cygnet client running inside the resolved sandbox, sandbox, DNS servers)."""
    from testbed import CharonSettings, GatewayOptions, resolved, wire

    try:
        root = resolved.prepare()
    except RuntimeError as error:
        pytest.skip(f"systemd-resolved unavailable: {error}")
    options = GatewayOptions(charon=CharonSettings(
        extra_plugins=("attr",), extra={"plugins": {"attr": {"25": DOMAIN}}}))
    tb = testbed_factory(nat="masquerade", capture=False, iperf=False, gateway_options=options)
    wire.add_isp_resolver(tb)
    servers = wire.DnsServers(tb, tmp_path / "dns-queries.log",
                              {"lan": [GATEWAY_DNS, "10.1.0.54", "fd00:1::53"], "nat": [CAFE_DNS]})
    client = make_cygnet(tb)
    sandbox = resolved.ResolvedSandbox(tb.client_ns, tmp_path / "resolved", client.resolv_conf, root)
    try:
        sandbox.start()
        # The café's DHCP server gave the uplink its resolver (as NetworkManager would set it)
        sandbox.run([sandbox.resolvectl, "dns", "eth0", CAFE_DNS])
        path = f"{root / 'usr/bin'}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        client.enter = lambda argv: sandbox.enter_argv(["env", f"PATH={path}", *argv])
        yield tb, client, sandbox, servers
    finally:
        client.kill_everything()
        sandbox.close()


def asked_where(servers, sandbox, name: str) -> tuple[bool, bool]:
    """Resolve `name` through resolved; (the gateway's server asked, the café's asked)."""
    result = sandbox.query(name)
    assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}\n{sandbox.log_tail()}"
    assert "10.1.0.10" in result.stdout
    return name in servers.asked(GATEWAY_DNS) + servers.asked("fd00:1::53"), \
        name in servers.asked(CAFE_DNS)


def test_full_tunnel_makes_the_gateways_servers_the_only_ones(dns_bed):
    tb, client, sandbox, servers = dns_bed
    assert asked_where(servers, sandbox, "before.example.org") == (False, True)

    client.up(client.profile("psk"))
    status = client.control_status()
    assert status["dns_mode"].startswith("exclusive"), status["dns_mode"]
    link = sandbox.link_settings(status["interface"])
    assert GATEWAY_DNS in link["dns"]
    assert link["domains"] == ["~.", DOMAIN] and link["default_route"] is True
    assert asked_where(servers, sandbox, "during.example.org") == (True, False)
    assert asked_where(servers, sandbox, f"intranet.{DOMAIN}") == (True, False)
    assert "; DNS exclusive" in client.run("status").stdout

    assert client.down() == 0
    assert asked_where(servers, sandbox, "after.example.org") == (False, True)


def test_split_tunnel_sends_only_the_gateways_domains_to_its_servers(dns_bed):
    tb, client, sandbox, servers = dns_bed
    client.up(client.profile("psk", remote_ts=["10.1.0.0/24", "fd00:1::/64"]))
    status = client.control_status()
    assert status["domains"] == [DOMAIN]                  # INTERNAL_DNS_DOMAIN from strongSwan
    assert status["dns_mode"] == f"split: {DOMAIN} through the tunnel"
    link = sandbox.link_settings(status["interface"])
    assert link["domains"] == [f"~{DOMAIN}"] and link["default_route"] is False
    assert asked_where(servers, sandbox, f"intranet.{DOMAIN}") == (True, False)
    assert asked_where(servers, sandbox, "www.example.org") == (False, True)
    assert client.down() == 0
