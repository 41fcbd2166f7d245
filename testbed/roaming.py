"""A laptop with two uplinks ("wifi" and "eth"), each through its own router, to one gateway
(and optionally a second gateway for failover), in network namespaces. IPv4 only.

    client wifi0 198.51.100.2/24 ── r1 198.51.100.1 | 10.31.1.2 ── gw eth0 10.31.1.1
    client eth0  10.32.0.2/24    ── r2 10.32.0.1    | 10.31.2.2 ── gw eth2 10.31.2.1
                                  (r2 masquerades when nat_on_eth)
    gateway's public address 203.0.113.1/32 (on its lo); LAN behind it as in topology.py
    second gateway (with_second_gateway): gw2 203.0.113.2/32, reached over
    r1 eth2 10.31.3.2 ── gw2 eth0 10.31.3.1 and r2 eth2 10.31.4.2 ── gw2 eth2 10.31.4.1;
    gw2 eth1 10.1.1.1/24 ── lan eth1 10.1.1.10 (LAN_HOST2), its pool 10.4.0.0/24

The client's default routes: via wifi (metric 100), via eth (metric 200). `wifi_down()` is
Wi-Fi → Ethernet with the old link gone; `renumber_wifi()` a new address on the same link.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .gateway import Gateway
from .netns import Namespace, unique_prefix
from .testbed import Testbed
from .topology import (DNS_SERVERS, GATEWAY_LAN_ADDR, LAN_HOST_ADDR, POOL_NET,
                       NamespaceGroup, _batch, _enable_forwarding, _veth)

GATEWAY_PUBLIC = "203.0.113.1"
GATEWAY2_PUBLIC = "203.0.113.2"
WIFI_ADDR = "198.51.100.2"
WIFI_ADDR_RENUMBERED = "198.51.100.3"
WIFI_ROUTER = "198.51.100.1"
ETH_ADDR = "10.32.0.2"
ETH_ROUTER = "10.32.0.1"
ETH_NET = "10.32.0.0/24"
WIFI_NET = "198.51.100.0/24"
POOL2_NET = "10.4.0.0/24"  # the second gateway's virtual IPs
LAN_HOST2 = "10.1.1.10"  # the LAN host as seen behind the second gateway
FULL_TUNNEL = "0.0.0.0/0"


@dataclass
class RoamingTopology(NamespaceGroup):
    """client, r1 (wifi), r2 (eth), gw, lan [, gw2]. Duck-types testbed.Topology."""

    prefix: str = ""
    nat_on_eth: bool = False
    with_second_gateway: bool = False
    nat = None  # Testbed reads this; the NAT of this topology is r2's (nat_on_eth)

    def __post_init__(self):
        self.prefix = self.prefix or unique_prefix()
        self.client = Namespace(f"{self.prefix}-client")
        self.wifi_router = Namespace(f"{self.prefix}-r1")
        self.eth_router = Namespace(f"{self.prefix}-r2")
        self.gateway = Namespace(f"{self.prefix}-gw")
        self.lan = Namespace(f"{self.prefix}-lan")
        self.gateway2 = Namespace(f"{self.prefix}-gw2") if self.with_second_gateway else None
        self.nat_box = None

    @property
    def namespaces(self) -> list[Namespace]:
        boxes = [self.client, self.wifi_router, self.eth_router, self.gateway, self.gateway2,
                 self.lan]
        return [ns for ns in boxes if ns is not None]

    gateway_address = GATEWAY_PUBLIC
    gateway_address6 = None

    def create(self) -> "RoamingTopology":
        for ns in self.namespaces:
            ns.create()
        c, r1, r2, gw, lan = self.client, self.wifi_router, self.eth_router, self.gateway, self.lan
        # promote_secondaries: renumbering (add the new address, delete the old) keeps the
        # link's routes, as a DHCP renewal with a new lease does; and no IPv6 (link-local
        # routes would come back in another order after a move)
        c.run(["sysctl", "-q", "-w", "net.ipv4.conf.all.promote_secondaries=1",
               "net.ipv4.conf.default.promote_secondaries=1",
               "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
        _veth(c, "wifi0", r1, "eth0")
        _veth(c, "eth0", r2, "eth0")
        _veth(r1, "eth1", gw, "eth0")
        _veth(r2, "eth1", gw, "eth2")
        _veth(gw, "eth1", lan, "eth0")
        _batch(c, [
            f"addr add {WIFI_ADDR}/24 dev wifi0", "link set wifi0 up",
            f"addr add {ETH_ADDR}/24 dev eth0", "link set eth0 up",
            f"route add default via {WIFI_ROUTER} dev wifi0 metric 100",
            f"route add default via {ETH_ROUTER} dev eth0 metric 200",
        ])
        _batch(r1, [f"addr add {WIFI_ROUTER}/24 dev eth0", "link set eth0 up",
                    "addr add 10.31.1.2/24 dev eth1", "link set eth1 up",
                    f"route add {GATEWAY_PUBLIC}/32 via 10.31.1.1"])
        _batch(r2, [f"addr add {ETH_ROUTER}/24 dev eth0", "link set eth0 up",
                    "addr add 10.31.2.2/24 dev eth1", "link set eth1 up",
                    f"route add {GATEWAY_PUBLIC}/32 via 10.31.2.1"])
        _batch(gw, ["addr add 10.31.1.1/24 dev eth0", "link set eth0 up",
                    "addr add 10.31.2.1/24 dev eth2", "link set eth2 up",
                    f"addr add {GATEWAY_PUBLIC}/32 dev lo", "link set lo up",
                    f"addr add {GATEWAY_LAN_ADDR}/24 dev eth1", "link set eth1 up",
                    f"route add {WIFI_NET} via 10.31.1.2",
                    f"route add {ETH_NET} via 10.31.2.2"])
        lan_cmds = [f"addr add {LAN_HOST_ADDR}/24 dev eth0",
                    *(f"addr add {a}/32 dev eth0" for a in DNS_SERVERS),
                    "link set eth0 up", f"route add default via {GATEWAY_LAN_ADDR}"]
        if self.gateway2 is not None:
            self._wire_second_gateway(lan_cmds)
        _batch(lan, lan_cmds)
        for router in (r1, r2, gw):
            _enable_forwarding(router)
        if self.nat_on_eth:
            r2.nft("table ip cygtb_nat {\n  chain postrouting {\n"
                   "    type nat hook postrouting priority srcnat; policy accept;\n"
                   '    oifname "eth1" masquerade\n  }\n}\n')
        return self

    def _wire_second_gateway(self, lan_cmds: list) -> None:
        r1, r2, gw2, lan = self.wifi_router, self.eth_router, self.gateway2, self.lan
        _veth(r1, "eth2", gw2, "eth0")
        _veth(r2, "eth2", gw2, "eth2")
        _veth(gw2, "eth1", lan, "eth1")
        _batch(r1, ["addr add 10.31.3.2/24 dev eth2", "link set eth2 up",
                    f"route add {GATEWAY2_PUBLIC}/32 via 10.31.3.1"])
        _batch(r2, ["addr add 10.31.4.2/24 dev eth2", "link set eth2 up",
                    f"route add {GATEWAY2_PUBLIC}/32 via 10.31.4.1"])
        _batch(gw2, ["addr add 10.31.3.1/24 dev eth0", "link set eth0 up",
                     "addr add 10.31.4.1/24 dev eth2", "link set eth2 up",
                     f"addr add {GATEWAY2_PUBLIC}/32 dev lo", "link set lo up",
                     "addr add 10.1.1.1/24 dev eth1", "link set eth1 up",
                     f"route add {WIFI_NET} via 10.31.3.2",
                     f"route add {ETH_NET} via 10.31.4.2"])
        _enable_forwarding(gw2)
        # The LAN host answers the second gateway's pool through it.
        lan_cmds += [f"addr add {LAN_HOST2}/24 dev eth1", "link set eth1 up",
                     f"route add {POOL2_NET} via 10.1.1.1"]

    # -- what a laptop goes through -----------------------------------------------------

    def wifi_down(self) -> None:
        """Wi-Fi → Ethernet: the Wi-Fi link goes down (its routes go with it)."""
        self.client.ip("link", "set", "wifi0", "down")

    def renumber_wifi(self, new: str = WIFI_ADDR_RENUMBERED, old: str = WIFI_ADDR) -> None:
        """A new address on the same link (a new DHCP lease)."""
        _batch(self.client, [f"addr add {new}/24 dev wifi0", f"addr del {old}/24 dev wifi0"])

    def restore_wifi(self) -> None:
        """Wi-Fi as it was at the start: up, its first address, its default route."""
        addresses = self.client.ip("-o", "addr", "show", "dev", "wifi0").stdout
        commands = ["link set wifi0 up"]
        if f"{WIFI_ADDR}/" not in addresses:
            commands.append(f"addr add {WIFI_ADDR}/24 dev wifi0")
        if f"{WIFI_ADDR_RENUMBERED}/" in addresses:
            commands.append(f"addr del {WIFI_ADDR_RENUMBERED}/24 dev wifi0")
        commands.append(f"route replace default via {WIFI_ROUTER} dev wifi0 metric 100")
        _batch(self.client, commands)


def roaming_gateway_options(base=None, second: bool = False):
    """IPv4 only (this topology has no IPv6)."""
    from .gateway import GatewayOptions

    options = base or GatewayOptions()
    # A full tunnel (everything through the gateway): the hard case for the gateway's own
    # route, which the tunnel's 0.0.0.0/1 + 128.0.0.0/1 would swallow without a pin.
    if second:
        return dataclasses.replace(options, local_ts=(FULL_TUNNEL,), pool_v4=POOL2_NET,
                                   pool_v6=None, dns_v4=(), dns_v6=())
    return dataclasses.replace(options, local_ts=(FULL_TUNNEL,), pool_v4=str(POOL_NET),
                               pool_v6=None, dns_v4=DNS_SERVERS, dns_v6=())


class RoamingTestbed(Testbed):
    """A Testbed on RoamingTopology: `tb.gateway` as usual; `tb.gateway2` with a second
    gateway. `tb.topology.wifi_down()` / `renumber_wifi()` move the client."""

    def __init__(self, pki, *, gateway_options=None, gateway2_options=None,
                 nat_on_eth: bool = False, with_second_gateway: bool = False,
                 capture: bool = False):
        super().__init__(pki, capture=capture, iperf=False, start_gateway=False)
        self.topology = RoamingTopology(prefix=self.topology.prefix, nat_on_eth=nat_on_eth,
                                        with_second_gateway=with_second_gateway)
        self.gateway = Gateway(self.topology.gateway, self.workdir / "gateway", pki,
                               roaming_gateway_options(gateway_options))
        self.gateway2 = None
        if with_second_gateway:
            options = gateway2_options or roaming_gateway_options(
                dataclasses.replace(self.gateway.options), second=True)
            self.gateway2 = Gateway(self.topology.gateway2, self.workdir / "gateway2", pki,
                                    options)

    hosts_file = None  # a file bind-mounted over /etc/hosts for client commands (host names)

    def client_argv(self, argv, *, resolv_conf=None, private_run=False) -> list[str]:
        if self.hosts_file is not None:
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    'mount --bind "$0" /etc/hosts && exec "$@"', str(self.hosts_file), *argv]
        return super().client_argv(argv, resolv_conf=resolv_conf, private_run=private_run)

    def start(self) -> "RoamingTestbed":
        super().start()  # namespaces, LAN services, captures (no gateway yet)
        self.gateway.start()
        if self.gateway2 is not None:
            self.gateway2.start()
        return self

    def blackhole(self, ns) -> None:
        """The gateway stops answering (and forwarding): nft drops everything in `ns`."""
        ns.nft("table inet cygtb_blackhole {\n"
               "  chain input { type filter hook input priority -100; policy drop; }\n"
               "  chain forward { type filter hook forward priority -100; policy drop; }\n"
               "}\n")

    def _close_now(self) -> None:
        if not self._closed and self.gateway2 is not None:
            self.gateway2.charon.kill()
        super()._close_now()
