"""Two Cygnet VPN connections active at once in one real NetworkManager.

The .name file says supports-multiple-connections=true, so NetworkManager starts one
cygnet-nm-service per activation, each owning its own bus name
(org.freedesktop.NetworkManager.cygnet.Connection_N). Each runs its own engine: its own TUN
device, virtual IP from the gateway's pool, IKE_SA and routes. Both tunnels end at the testbed
gateway: one authenticates with a PSK, the other with EAP-MSCHAPv2.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path

import pytest

from tests.nm.test_networkmanager_plugin import (add_vpn, cygnet_plugin_pids, interfaces,
                                                 password_for, up, vpn_data,
                                                 wait_gateway_without_sas)
from testbed import netsock, topology, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.slow]

LAN_HOST = topology.LAN_HOST_ADDR     # 10.1.0.10
LAN_HOST6 = topology.LAN_HOST_ADDR6   # fd00:1::10
LAN_NET, LAN_NET6 = "10.1.0.0/24", "fd00:1::/64"


# ------------------------------------------------------------------------------ helpers


def bus_names(nm) -> dict[int, str]:
    """{pid: --bus-name} of the running cygnet-nm-service processes."""
    names = {}
    for pid in cygnet_plugin_pids(nm):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        names[pid] = argv[argv.index("--bus-name") + 1] if "--bus-name" in argv else ""
    return names


def plugin_pid(nm, name: str) -> int:
    """The PID of the plugin process that connected `name` (from its log line)."""
    found = re.findall(rf"cygnet-nm-service\[(\d+)\]: INFO connecting '{re.escape(name)}'",
                       nm.log_tail(4000, grep="cygnet-nm-service"))
    assert found, f"no plugin connected {name}"
    return int(found[-1])


def tun_of(nm, address: str) -> str:
    """The cygnet TUN device that holds `address`."""
    for line in nm.run(["ip", "-o", "-4", "addr", "show"]).stdout.splitlines():
        fields = line.split()
        if fields[1].startswith("cygnet") and fields[3].split("/")[0] == address:
            return fields[1]
    raise AssertionError(f"no cygnet device has {address}")


def vpn_address(nm, name: str) -> str:
    """The connection's IPv4 address from the gateway's pool, as NetworkManager shows it."""
    addresses = [ipaddress.ip_interface(a) for a in nm.connection_fields(name)["IP4.ADDRESS"]]
    pool = [a for a in addresses if a.ip in topology.POOL_NET]
    assert len(pool) == 1, addresses
    return str(pool[0].ip)


def route_device(nm, destination: str) -> str:
    """The device the kernel picks for `destination` right now."""
    out = nm.run(["ip", "route", "get", destination]).stdout
    match = re.search(r"\bdev (\S+)", out)
    assert match, out
    return match.group(1)


def routes(nm, destination: str) -> list[str]:
    """`ip route show exact DESTINATION` lines of the main table."""
    return nm.run(["ip", "route", "show", "exact", destination]).stdout.splitlines()


def echo_through(testbed, device: str, host: str = LAN_HOST) -> bytes:
    """A TCP echo to the LAN host from a socket bound to `device` (SO_BINDTODEVICE): only
    routes through that tunnel are used, whichever tunnel the kernel would pick otherwise."""
    sock = netsock.socket_in(testbed.client_ns.name, socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        sock.settimeout(5)
        sock.connect((host, 7))
        payload = f"through {device}".encode()
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


def gateway_sas_by_connection(testbed) -> dict[str, list[str]]:
    """{gateway connection name: virtual IPs it leased} for every IKE_SA the gateway has."""
    return {sa["name"]: sa["remote-vips"] for sa in testbed.gateway.list_sas()}


def bring_up_both(testbed, nm, **extra_by_method):
    """Add and activate "office-psk" and "office-eap"; return {method: (name, address, tun)}."""
    connections = {}
    for method in ("psk", "eap"):
        name = f"office-{method}"
        add_vpn(nm, name, "cygnet", vpn_data(testbed, method, **extra_by_method.get(method, {})))
        result = up(nm, name, password_for(testbed, method))
        assert "successfully activated" in result.stdout, result
        address = vpn_address(nm, name)
        connections[method] = (name, address, tun_of(nm, address))
    return connections


# ------------------------------------------------------------------------------ tests


def test_two_connections_each_with_its_own_process_tunnel_and_address(nm_testbed):
    testbed, nm = nm_testbed
    # Each connection narrows the tunnel to one address family of the LAN, so each family is
    # reachable through exactly one of the two tunnels. (By family, not by host: the gateway's
    # charon routes a narrowed selector only if it holds an address inside it.)
    conns = bring_up_both(testbed, nm, psk={"remote-ts": LAN_NET}, eap={"remote-ts": LAN_NET6})
    (psk_name, psk_ip, psk_tun), (eap_name, eap_ip, eap_tun) = conns["psk"], conns["eap"]

    # One plugin process per connection, each on its own Connection_N bus name.
    # (a plugin process of an earlier activation may still be exiting: wait for it to go)
    names = wait_for(lambda: (lambda n: n if len(n) == 2 else None)(bus_names(nm)), timeout=10,
                     message=lambda: f"not one plugin per connection: {bus_names(nm)}")
    assert len(names) == 2, names
    assert len(set(names.values())) == 2, names
    for name in names.values():
        assert re.fullmatch(r"org\.freedesktop\.NetworkManager\.cygnet\.Connection_\d+", name), names
    # Both connected, each with its own address and TUN device (the second did not end the first).
    for name in (psk_name, eap_name):
        assert nm.vpn_state(name) == "5 - VPN connected"
    assert psk_ip != eap_ip and psk_tun != eap_tun
    # The gateway has two IKE_SAs, each with the address NetworkManager shows.
    sas = gateway_sas_by_connection(testbed)
    assert set(sas) == {"psk", "eap-mschapv2"}, sas
    assert psk_ip in sas["psk"] and eap_ip in sas["eap-mschapv2"], sas
    # Each narrowed network goes through its own tunnel, and both carry traffic.
    assert route_device(nm, LAN_HOST) == psk_tun
    assert route_device(nm, LAN_HOST6) == eap_tun
    testbed.wait_for_ping("client", LAN_HOST, timeout=5)
    testbed.wait_for_ping("client", LAN_HOST6, timeout=5)
    assert netsock.tcp_echo(testbed.client_ns.name, LAN_HOST, 7, b"psk tunnel") == b"psk tunnel"
    assert netsock.tcp_echo(testbed.client_ns.name, LAN_HOST6, 7, b"eap tunnel") == b"eap tunnel"
    eap_pid = plugin_pid(nm, eap_name)
    assert eap_pid in names

    # Taking one down leaves the other connected and working.
    nm.nmcli("connection", "down", psk_name)
    nm.wait_inactive(psk_name)
    wait_for(lambda: "psk" not in gateway_sas_by_connection(testbed), timeout=10,
             message=lambda: f"the PSK IKE_SA is still there: {testbed.gateway.list_sas()}")
    wait_for(lambda: psk_tun not in interfaces(nm), timeout=5, message=f"{psk_tun} still there")
    wait_for(lambda: cygnet_plugin_pids(nm) == [eap_pid], timeout=5,
             message=lambda: f"plugins running: {bus_names(nm)} (want only {eap_pid})")
    assert nm.vpn_state(eap_name) == "5 - VPN connected"
    assert list(gateway_sas_by_connection(testbed)) == ["eap-mschapv2"]
    assert route_device(nm, LAN_HOST6) == eap_tun
    testbed.wait_for_ping("client", LAN_HOST6, timeout=5)
    assert testbed.ping("client", LAN_HOST, timeout=0.5) == 0  # that was the PSK tunnel's

    nm.nmcli("connection", "down", eap_name)
    wait_gateway_without_sas(testbed)
    wait_for(lambda: not cygnet_plugin_pids(nm), timeout=5, message="a plugin did not exit")


def test_two_connections_to_the_same_network_keep_their_own_routes(nm_testbed):
    testbed, nm = nm_testbed
    gateway_pin = str(testbed.gateway_address)
    pins_before = routes(nm, gateway_pin)
    conns = bring_up_both(testbed, nm)            # both tunnel the whole LAN (and fd00:1::/64)
    (psk_name, psk_ip, psk_tun), (eap_name, eap_ip, eap_tun) = conns["psk"], conns["eap"]

    # The second tunnel did not take the LAN route from the first: the first keeps the
    # traffic, the second's own route waits behind it with a higher metric ...
    assert route_device(nm, LAN_HOST) == psk_tun
    lan_routes = routes(nm, LAN_NET)
    assert any(f"dev {psk_tun}" in r and f"src {psk_ip}" in r and "metric" not in r
               for r in lan_routes), lan_routes
    assert any(f"dev {eap_tun}" in r and f"src {eap_ip}" in r and "metric 1" in r
               for r in lan_routes), lan_routes
    lan_routes6 = nm.run(["ip", "-6", "route", "show", "exact", LAN_NET6]).stdout.splitlines()
    assert any(f"dev {psk_tun}" in r and "metric 1024" in r for r in lan_routes6), lan_routes6
    assert any(f"dev {eap_tun}" in r and "metric 1025" in r for r in lan_routes6), lan_routes6
    # ... and the plugin says so in NetworkManager's log.
    assert f"10.1.0.0/24 is already routed through {psk_tun}" in nm.log_tail(4000, grep="cygnet-nm-service")
    # Both tunnels carry traffic (the second when a socket is bound to its device).
    testbed.wait_for_ping("client", LAN_HOST, timeout=5)
    assert echo_through(testbed, psk_tun) == f"through {psk_tun}".encode()
    assert echo_through(testbed, eap_tun) == f"through {eap_tun}".encode()

    # Down the second: the first's routes are all still there (before, the second's clean-up
    # deleted the gateway's host route both had pinned), and its traffic flows.
    nm.nmcli("connection", "down", eap_name)
    nm.wait_inactive(eap_name)
    wait_for(lambda: eap_tun not in interfaces(nm), timeout=5, message=f"{eap_tun} still there")
    assert nm.vpn_state(psk_name) == "5 - VPN connected"
    assert route_device(nm, LAN_HOST) == psk_tun
    assert len(routes(nm, gateway_pin)) == len(pins_before) + 1, routes(nm, gateway_pin)
    assert any(f"dev {psk_tun}" in r and "metric" not in r for r in routes(nm, LAN_NET))
    testbed.wait_for_ping("client", LAN_HOST, timeout=5)

    # The second again, then down the first: the second's route takes over the LAN.
    up(nm, eap_name, password_for(testbed, "eap"))
    eap_tun = tun_of(nm, vpn_address(nm, eap_name))
    assert route_device(nm, LAN_HOST) == psk_tun
    nm.nmcli("connection", "down", psk_name)
    nm.wait_inactive(psk_name)
    wait_for(lambda: "psk" not in gateway_sas_by_connection(testbed), timeout=10,
             message=lambda: f"the PSK IKE_SA is still there: {testbed.gateway.list_sas()}")
    # NetworkManager calls the connection inactive as it asks the plugin to disconnect; the
    # plugin's clean-up (routes, then its TUN device) ends a moment later.
    wait_for(lambda: psk_tun not in interfaces(nm), timeout=5, message=f"{psk_tun} still there")
    assert nm.vpn_state(eap_name) == "5 - VPN connected"
    assert route_device(nm, LAN_HOST) == eap_tun
    assert len(routes(nm, gateway_pin)) == len(pins_before) + 1, routes(nm, gateway_pin)
    testbed.wait_for_ping("client", LAN_HOST, timeout=5)
    assert netsock.tcp_echo(testbed.client_ns.name, LAN_HOST, 7, b"eap only") == b"eap only"

    nm.nmcli("connection", "down", eap_name)
    wait_gateway_without_sas(testbed)
    wait_for(lambda: routes(nm, gateway_pin) == pins_before, timeout=5,
             message=lambda: f"host routes to the gateway left: {routes(nm, gateway_pin)}")
    assert not routes(nm, LAN_NET)
