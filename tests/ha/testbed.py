"""A two-node strongSwan High-Availability cluster (charon's `ha` plugin) in network namespaces.

    client 198.51.100.2 ──┐                       ┌── lan 10.1.0.10 (echo :7, sink :9)
                          │ sw: br0          br1  │   default via 10.1.0.1 (cluster)
    node1 198.51.100.11 ──┤                       ├── node1 10.1.0.2
    node2 198.51.100.12 ──┘                       └── node2 10.1.0.3
    node1 10.2.0.1 ─────── sync link (UDP 4510) ─────── node2 10.2.0.2

Active/passive without CLUSTERIP (this kernel has none): `segment_count = 1`, and the cluster
addresses 198.51.100.1 (what clients dial) and 10.1.0.1 (the LAN's router) live on whichever
node's charon logged "HA segment 1 activated". `take_over()` moves them there and flushes the
neighbour caches of the client and the LAN host, which then ask ARP again (no arping here).
IPv4 only; both nodes load the same swanctl configuration (testbed/gateway.py) and sync
IKE_SAs, CHILD_SAs and message IDs in plain text over their own link.

This reuses testbed by import and composition: `HaTestbed` is a `Testbed` whose topology
is `HaTopology` and whose `gateway` is the currently active node, so the interop helpers
(`CygnetClient`, `strongswan_client`, `ping`, `save_artifacts`) work unchanged.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path

from testbed import CharonSettings, Gateway, GatewayOptions, Namespace, Pki, Testbed, wait_for
from testbed.netns import unique_prefix
from testbed.topology import (CLIENT_ADDR, DNS_SERVERS, LAN_HOST_ADDR, LAN_NET, POOL_NET,
                              NamespaceGroup, _batch, _enable_forwarding, _veth)

CLUSTER_ADDR = "198.51.100.1"        # what the client dials; moves with the active node
CLUSTER_LAN_ADDR = "10.1.0.1"        # the LAN host's router; moves too
NODE_ADDRS = ("198.51.100.11", "198.51.100.12")    # node-local, client-facing
NODE_LAN_ADDRS = ("10.1.0.2", "10.1.0.3")          # node-local: libipsec needs one in its TS
SYNC_ADDRS = ("10.2.0.1", "10.2.0.2")
ACTIVATED = "HA segment 1 activated"


@dataclass
class HaTopology(NamespaceGroup):
    """client, switch (two bridges), node1, node2, lan. Duck-types testbed.Topology."""

    prefix: str = ""

    def __post_init__(self):
        self.prefix = self.prefix or unique_prefix()
        self.client = Namespace(f"{self.prefix}-client")
        self.switch = Namespace(f"{self.prefix}-sw")
        self.nodes = (Namespace(f"{self.prefix}-n1"), Namespace(f"{self.prefix}-n2"))
        self.lan = Namespace(f"{self.prefix}-lan")
        self.gateway = self.nodes[0]      # Testbed's "gateway" role: node1
        self.nat_box = None

    @property
    def namespaces(self) -> list[Namespace]:
        return [self.client, self.switch, *self.nodes, self.lan]

    gateway_address = CLUSTER_ADDR
    gateway_address6 = None

    def create(self) -> "HaTopology":
        for ns in self.namespaces:
            ns.create()
        sw = self.switch
        _batch(sw, ["link add br0 type bridge", "link add br1 type bridge",
                    "link set br0 up", "link set br1 up"])
        _veth(self.client, "eth0", sw, "c0")
        _veth(self.lan, "eth0", sw, "l0")
        ports = ["link set c0 master br0", "link set c0 up",
                 "link set l0 master br1", "link set l0 up"]
        for index, node in enumerate(self.nodes, 1):
            _veth(node, "eth0", sw, f"n{index}o")
            _veth(node, "eth1", sw, f"n{index}l")
            ports += [f"link set n{index}o master br0", f"link set n{index}o up",
                      f"link set n{index}l master br1", f"link set n{index}l up"]
        _batch(sw, ports)
        _veth(self.nodes[0], "eth2", self.nodes[1], "eth2")   # the sync link
        _batch(self.client, [f"addr add {CLIENT_ADDR}/24 dev eth0", "link set eth0 up"])
        for node, outside, inside, sync in zip(self.nodes, NODE_ADDRS, NODE_LAN_ADDRS, SYNC_ADDRS):
            _batch(node, [f"addr add {outside}/24 dev eth0", f"addr add {inside}/24 dev eth1",
                          f"addr add {sync}/30 dev eth2",
                          "link set eth0 up", "link set eth1 up", "link set eth2 up"])
            _enable_forwarding(node)
        _batch(self.lan, [f"addr add {LAN_HOST_ADDR}/24 dev eth0",
                          *(f"addr add {a}/32 dev eth0" for a in DNS_SERVERS),
                          "link set eth0 up",
                          f"route add default via {CLUSTER_LAN_ADDR}"])
        return self


def ha_gateway_options(base: GatewayOptions, index: int) -> GatewayOptions:
    """`base` (same PSK, connections, pools on both nodes) plus the ha plugin for node `index`."""
    ha = {"local": SYNC_ADDRS[index], "remote": SYNC_ADDRS[1 - index],
          "segment_count": 1,
          "monitor": "yes",        # heartbeats: the survivor takes the segment after ~2.1 s
          # No resync: both nodes start before any client, and a resync request (sent ~1 s
          # after start) makes the active node rekey every CHILD_SA and the two nodes copy
          # each other's IKE_SAs back (duplicates with the same SPIs on the survivor).
          "resync": "no",
          "fifo_interface": "no"}
    charon = dataclasses.replace(base.charon, extra_plugins=(*base.charon.extra_plugins, "ha"),
                                 extra={**base.charon.extra, "plugins": {"ha": ha}})
    return dataclasses.replace(base, charon=charon)


def default_ha_options() -> GatewayOptions:
    """IPv4 only (the cluster has no IPv6 addresses)."""
    return GatewayOptions(local_ts=(str(LAN_NET),), pool_v4=str(POOL_NET), pool_v6=None,
                          dns_v4=DNS_SERVERS, dns_v6=())


class HaTestbed(Testbed):
    """Testbed with two HA nodes instead of one gateway. `tb.gateway` is the active node;
    `tb.nodes[i]` each node's Gateway; `kill_active()` then `take_over()` fail over."""

    def __init__(self, pki: Pki, *, gateway_options: GatewayOptions | None = None,
                 capture: bool = False):
        super().__init__(pki, capture=capture, iperf=False, start_gateway=False)
        base = gateway_options or default_ha_options()
        self.topology = HaTopology(prefix=self.topology.prefix)
        self.nodes = [Gateway(ns, self.workdir / f"node{i + 1}", pki, ha_gateway_options(base, i))
                      for i, ns in enumerate(self.topology.nodes)]
        self.gateway = self.nodes[0]
        self.active: int | None = None

    def start(self) -> "HaTestbed":
        super().start()            # namespaces, LAN services, captures (no gateway)
        if self._want_capture:
            self.start_capture(self.topology.nodes[1])
        for node in self.nodes:
            node.start()
        # Whichever node wins the first heartbeat round activates the segment (~0–2 s).
        index = wait_for(self._one_active_node, timeout=15,
                         message=lambda: "not exactly one HA node holds segment 1:\n" + "\n".join(
                             n.charon.log_tail(15) for n in self.nodes))
        self._assign_cluster_addresses(index - 1)
        return self

    def _one_active_node(self) -> int:
        """1-based index of the node holding segment 1 if exactly one does (else 0), by the
        last "HA segment 1 activated/deactivated" line of each node's log."""
        active = [i + 1 for i, node in enumerate(self.nodes)
                  if _segment_lines(_read(node.log_path))[-1:] == [ACTIVATED]]
        return active[0] if len(active) == 1 else 0

    def _assign_cluster_addresses(self, index: int) -> None:
        ns = self.topology.nodes[index]
        ns.ip("addr", "add", f"{CLUSTER_ADDR}/24", "dev", "eth0")
        ns.ip("addr", "add", f"{CLUSTER_LAN_ADDR}/24", "dev", "eth1")
        # Forget the old node's MAC for the cluster addresses; the next packet asks ARP again.
        for other in (self.topology.client, self.topology.lan):
            other.ip("neigh", "flush", "dev", "eth0")
        self.active = index
        self.gateway = self.nodes[index]

    def kill_active(self) -> int:
        """The active node crashes: its charon gets SIGKILL (no DELETE, no segment hand-over)
        and its links go down (a dead machine neither answers nor forwards; its namespace
        would otherwise route packets for the cluster address on to the survivor).
        Returns the index of the killed node."""
        index = self.active
        self._survivor_log_offset = len(_read(self.nodes[1 - index].log_path))
        self.nodes[index].kill()
        _batch(self.topology.nodes[index], [f"link set {dev} down" for dev in ("eth0", "eth1", "eth2")])
        return index

    def take_over(self, timeout: float = 10.0) -> float:
        """Wait until the surviving node activates the segment (its heartbeat watchdog fires
        2.1 s after the last heartbeat), then move the cluster addresses to it. Returns when."""
        survivor = 1 - self.active
        offset = self._survivor_log_offset
        wait_for(lambda: ACTIVATED in _read(self.nodes[survivor].log_path)[offset:],
                 timeout=timeout,
                 interval=0.02, message=lambda: "the surviving node did not take over:\n"
                 + self.nodes[survivor].charon.log_tail(20))
        activated_at = time.monotonic()
        self._assign_cluster_addresses(survivor)
        return activated_at

    def _close_now(self) -> None:
        if not self._closed:
            for node in self.nodes:
                node.charon.kill()
        super()._close_now()


def _segment_lines(log: str) -> list[str]:
    return re.findall(r"HA segment 1 (?:de)?activated", log)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
