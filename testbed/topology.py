"""The test network: client, optional NAT, gateway and a LAN host, in network namespaces.

    client --(198.51.100.0/24, fd00:5::/64)-- [nat --(203.0.113.0/24, fd00:203::/64)--] gateway
    gateway --(10.1.0.0/24, fd00:1::/64)-- lan

Without NAT the gateway sits directly on the client's link at 198.51.100.1. With NAT, the NAT
namespace owns 198.51.100.1 (the client's default router) and masquerades IPv4 towards the
gateway at 203.0.113.1; IPv6 is routed through it unchanged.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from dataclasses import dataclass

from .netns import Namespace, run, unique_prefix

CLIENT_ADDR = "198.51.100.2"
CLIENT_ADDR6 = "fd00:5::2"
CLIENT_NET6 = ipaddress.ip_network("fd00:5::/64")
CLIENT_ROUTER = "198.51.100.1"        # the gateway without NAT, the NAT box with it
CLIENT_ROUTER6 = "fd00:5::1"
GATEWAY_ADDR_DIRECT = "198.51.100.1"
GATEWAY_ADDR6_DIRECT = "fd00:5::1"
GATEWAY_ADDR_BEHIND_NAT = "203.0.113.1"
GATEWAY_ADDR6_BEHIND_NAT = "fd00:203::1"
NAT_OUTSIDE_ADDR = "203.0.113.254"
NAT_OUTSIDE_ADDR6 = "fd00:203::254"

LAN_NET = ipaddress.ip_network("10.1.0.0/24")
LAN_NET6 = ipaddress.ip_network("fd00:1::/64")
GATEWAY_LAN_ADDR = "10.1.0.1"         # a libipsec gateway must own an address in its local TS
GATEWAY_LAN_ADDR6 = "fd00:1::1"
LAN_HOST_ADDR = "10.1.0.10"
LAN_HOST_ADDR6 = "fd00:1::10"
DNS_SERVERS = ("10.1.0.53", "10.1.0.54")
DNS_SERVERS6 = ("fd00:1::53",)

POOL_NET = ipaddress.ip_network("10.3.0.0/24")
POOL_NET6 = ipaddress.ip_network("fd00:3::/112")

ALL_GATEWAY_ADDRESSES = (GATEWAY_ADDR_DIRECT, GATEWAY_ADDR_BEHIND_NAT,
                         GATEWAY_ADDR6_DIRECT, GATEWAY_ADDR6_BEHIND_NAT)


class NamespaceGroup:
    """What every topology does with all of its namespaces (its `namespaces` property)."""

    namespaces: list[Namespace]

    def wait_links_up(self, timeout: float = 10.0) -> None:
        """Wait until every veth has carrier: until then IPv6 drops packets (no ND yet)."""
        deadline = time.monotonic() + timeout
        for ns in self.namespaces:
            while True:
                links = ns.ip("-o", "link", "show").stdout
                if "NO-CARRIER" not in links and "state DOWN" not in links:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"links in {ns.name} still down: {links}")
                time.sleep(0.02)

    def destroy(self) -> None:
        for ns in reversed(self.namespaces):
            ns.delete()


@dataclass
class Topology(NamespaceGroup):
    """Builds and tears down the namespaces. `nat` is None, "masquerade" or "random-ports"."""

    nat: str | None = None
    prefix: str = ""

    def __post_init__(self):
        if self.nat not in (None, "masquerade", "random-ports"):
            raise ValueError(f"nat must be None, 'masquerade' or 'random-ports', not {self.nat!r}")
        self.prefix = self.prefix or unique_prefix()
        self.client = Namespace(f"{self.prefix}-client")
        self.gateway = Namespace(f"{self.prefix}-gw")
        self.lan = Namespace(f"{self.prefix}-lan")
        self.nat_box = Namespace(f"{self.prefix}-nat") if self.nat else None

    @property
    def namespaces(self) -> list[Namespace]:
        boxes = [self.client, self.nat_box, self.gateway, self.lan]
        return [ns for ns in boxes if ns is not None]

    @property
    def gateway_address(self) -> str:
        """The gateway's outside IPv4 address as the client dials it."""
        return GATEWAY_ADDR_BEHIND_NAT if self.nat else GATEWAY_ADDR_DIRECT

    @property
    def gateway_address6(self) -> str:
        return GATEWAY_ADDR6_BEHIND_NAT if self.nat else GATEWAY_ADDR6_DIRECT

    def create(self) -> "Topology":
        for ns in self.namespaces:
            ns.create()
        if self.nat:
            self._wire_with_nat()
        else:
            self._wire_direct()
        self._wire_lan()
        return self

    # -- wiring ---------------------------------------------------------------------------

    def _wire_direct(self) -> None:
        _veth(self.client, "eth0", self.gateway, "eth0")
        _batch(self.client, [
            f"addr add {CLIENT_ADDR}/24 dev eth0",
            f"addr add {CLIENT_ADDR6}/64 dev eth0 nodad",
            "link set eth0 up",
        ])
        _batch(self.gateway, [
            f"addr add {GATEWAY_ADDR_DIRECT}/24 dev eth0",
            f"addr add {GATEWAY_ADDR6_DIRECT}/64 dev eth0 nodad",
            "link set eth0 up",
        ])

    def _wire_with_nat(self) -> None:
        nat = self.nat_box
        _veth(self.client, "eth0", nat, "eth0")
        _veth(nat, "eth1", self.gateway, "eth0")
        _batch(self.client, [
            f"addr add {CLIENT_ADDR}/24 dev eth0",
            f"addr add {CLIENT_ADDR6}/64 dev eth0 nodad",
            "link set eth0 up",
            f"route add default via {CLIENT_ROUTER}",
            f"route add default via {CLIENT_ROUTER6}",
        ])
        _batch(nat, [
            f"addr add {CLIENT_ROUTER}/24 dev eth0",
            f"addr add {CLIENT_ROUTER6}/64 dev eth0 nodad",
            f"addr add {NAT_OUTSIDE_ADDR}/24 dev eth1",
            f"addr add {NAT_OUTSIDE_ADDR6}/64 dev eth1 nodad",
            "link set eth0 up",
            "link set eth1 up",
        ])
        _batch(self.gateway, [
            f"addr add {GATEWAY_ADDR_BEHIND_NAT}/24 dev eth0",
            f"addr add {GATEWAY_ADDR6_BEHIND_NAT}/64 dev eth0 nodad",
            "link set eth0 up",
            f"route add {CLIENT_NET6} via {NAT_OUTSIDE_ADDR6}",   # IPv6 is routed, not NATed
        ])
        _enable_forwarding(nat)
        random = " random" if self.nat == "random-ports" else ""
        nat.nft(
            "table ip cygtb_nat {\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "eth1" masquerade{random}\n'
            "  }\n"
            "}\n"
        )

    def _wire_lan(self) -> None:
        _veth(self.gateway, "eth1", self.lan, "eth0")
        _batch(self.gateway, [
            f"addr add {GATEWAY_LAN_ADDR}/24 dev eth1",
            f"addr add {GATEWAY_LAN_ADDR6}/64 dev eth1 nodad",
            "link set eth1 up",
        ])
        lan_addresses = [f"addr add {LAN_HOST_ADDR}/24 dev eth0",
                         f"addr add {LAN_HOST_ADDR6}/64 dev eth0 nodad"]
        # The DNS server addresses the gateway hands out live on the LAN host, so they answer.
        lan_addresses += [f"addr add {a}/32 dev eth0" for a in DNS_SERVERS]
        lan_addresses += [f"addr add {a}/128 dev eth0 nodad" for a in DNS_SERVERS6]
        _batch(self.lan, lan_addresses + [
            "link set eth0 up",
            # Replies to the virtual IP pools go back through the gateway.
            f"route add default via {GATEWAY_LAN_ADDR}",
            f"route add default via {GATEWAY_LAN_ADDR6}",
        ])
        _enable_forwarding(self.gateway)


_next_index = itertools.count(10, 2)


def _veth(a: Namespace, a_name: str, b: Namespace, b_name: str) -> None:
    # Created inside `a` with its peer in `b`: never appears in the root namespace.
    # The two ends get different interface indexes: the kernel applies link changes at
    # once only when a device's index differs from its peer's (iflink); with equal
    # indexes (both "2" in fresh namespaces) carrier and IPv6 come up a second late.
    index = next(_next_index)
    a.ip("link", "add", a_name, "index", str(index), "type", "veth",
         "peer", "name", b_name, "index", str(index + 1), "netns", b.name)


def _batch(ns: Namespace, commands: list[str]) -> None:
    run(["ip", "-n", ns.name, "-batch", "-"], input="\n".join(commands) + "\n")


def _enable_forwarding(ns: Namespace) -> None:
    ns.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1"])
