"""Addresses and routes a tunnel needs, applied with pyroute2 and undone exactly.

Every change is recorded in a `Journal` (a small JSON file under /run/cygnet/) before it is made,
so that `revert()` — or the next start after a crash — removes precisely what Cygnet added and
nothing else.

Routing choice (as strongSwan's Android app and most desktop clients do): the remote traffic
selectors become routes through the TUN device; a full tunnel (0.0.0.0/0 or ::/0) is installed as
two half routes (0.0.0.0/1 + 128.0.0.0/1, ::/1 + 8000::/1) that are more specific than the
default route without replacing it, and the gateway's own address is pinned to the path it had
before the tunnel came up, so IKE and ESP never loop into the tunnel.

Several tunnels at once (e.g. two NetworkManager VPN connections) may route the same network or
pin the same gateway. Routes are therefore added, never replaced, each at the lowest metric no
other route to that destination uses, and the journal records that metric: every tunnel removes
exactly its own routes. Where two tunnels route the same network, the kernel uses the older
route (lower metric); the newer one is a standby that carries the traffic once the older goes.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from client.netlink_agent import NetlinkError, new_agent

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def split_full_tunnel(network: IPNetwork) -> list[IPNetwork]:
    """0.0.0.0/0 → two /1 halves, so the default route stays and still reaches the gateway."""
    if network.prefixlen == 0:
        return list(network.subnets(prefixlen_diff=1))
    return [network]


# The metric a route gets when none is given (IPv6 reads 0 as 1024), and how far above it we look
# for a free one when other tunnels already route the same destination.
BASE_METRIC = {2: 0, 10: 1024}  # by address family: AF_INET, AF_INET6
MAX_METRIC_STEPS = 64
MAIN_TABLE = 254


@dataclass
class RouteAdded:
    """One route a tunnel added: its metric, and the devices of other routes to the same
    destination that the kernel prefers (lower metric, another path) — empty when ours is used."""

    destination: str
    metric: int
    shadowed_by: list[str] = field(default_factory=list)


@dataclass
class Journal:
    """What this tunnel changed, persisted so a crashed run can be cleaned at the next start."""

    path: Path
    addresses: list[tuple[str, str]] = field(default_factory=list)  # (ifname, "10.3.0.1/32")
    routes: list[dict] = field(default_factory=list)  # pyroute2 route specs we added

    def save(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"addresses": self.addresses, "routes": self.routes}))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> "Journal":
        data = json.loads(path.read_text())
        return cls(path, [tuple(a) for a in data["addresses"]], data["routes"])


class NetworkConfig:
    """Adds the virtual IPs and routes of one tunnel, and removes them again.

    The netlink calls run in a forked agent that owns pyroute2 (client/netlink_agent.py):
    each public method is a few short round trips the engine waits for. `release()` lets the
    agent exit once the tunnel is set up; the next change starts a new one.
    """

    def __init__(self, journal_path: Path):
        self._agent = new_agent()
        self._agent.start()  # if not yet: it loads pyroute2 while the engine contacts the gateway
        self._ipr = self._agent.ipr
        self.journal = Journal(journal_path)

    def release(self) -> None:
        """Nothing to change for now: let the agent (and pyroute2's memory) go."""
        self._agent.release()

    def get_ready(self) -> None:
        """Fork the agent now if it was released, so that pyroute2 loads while the engine
        waits for something else (the gateway's answer to our DELETE before a teardown)."""
        self._agent.start()

    def probe_kernel_esp(self) -> str | None:
        """None if the kernel can install an ESP SA, else why not (asked of the agent)."""
        try:
            return self._agent.probe_kernel_esp()
        except OSError as error:  # the agent died (AgentGone): the next change forks anew
            return f"cannot probe for kernel ESP: {error}"

    # Each public method below does all of that change's netlink work (lookups and changes):
    # they run between the IKE_AUTH response and the first packet through the tunnel.

    # -- queries -----------------------------------------------------------------------------
    def current_path(self, destination: ipaddress.IPv4Address | ipaddress.IPv6Address) -> dict:
        """How the kernel reaches `destination` right now: {'oif': …, 'gateway': … or None}."""
        route = self._ipr.route("get", dst=str(destination))[0]
        return {"oif": route.get("RTA_OIF"), "gateway": route.get("RTA_GATEWAY")}

    @property
    def ipr(self):
        """IPRoute calls made by the agent, for TunDevice.configure(ipr=…)."""
        return self._ipr

    # -- changes -----------------------------------------------------------------------------
    def add_address(self, ifname: str, address: IPInterface) -> None:
        self.journal.addresses.append((ifname, str(address)))
        self.journal.save()
        kwargs = {}
        if address.version == 6:
            kwargs["flags"] = 0x02  # IFA_F_NODAD: a virtual IP from the gateway is not ours to test
        self._ipr.addr("add", index=_ifindex(ifname), address=str(address.ip),
                       prefixlen=address.network.prefixlen, **kwargs)

    def remove_address(self, ifname: str, address: IPInterface) -> None:
        try:
            self._ipr.addr("del", index=_ifindex(ifname), address=str(address.ip),
                           prefixlen=address.network.prefixlen)
        except NetlinkError:
            pass  # already gone
        self.journal.addresses = [a for a in self.journal.addresses if a != (ifname, str(address))]
        self.journal.save()

    def pin_gateway(self, gateway: ipaddress.IPv4Address | ipaddress.IPv6Address,
                    path: dict | None = None) -> RouteAdded:
        """Keep the gateway reachable the way it was before the tunnel (host route), or on
        `path` ({'oif': …, 'gateway': …}: client/roaming.py after a network change)."""
        path = path or self.current_path(gateway)
        spec = {"dst": str(gateway), "dst_len": gateway.max_prefixlen, "oif": path["oif"]}
        if path["gateway"]:
            spec["gateway"] = path["gateway"]
        return self._add_route(spec)

    def unpin_gateway(self, gateway: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        """Remove the gateway's host route(s) we added (gone with its link already is fine)."""
        host = {"dst": str(gateway), "dst_len": gateway.max_prefixlen}
        for spec in [s for s in self.journal.routes
                     if s.get("dst") == host["dst"] and s.get("dst_len") == host["dst_len"]]:
            try:
                if _is_present(self._ipr, spec):
                    self._ipr.route("del", **spec)
            except NetlinkError:
                pass
            self.journal.routes.remove(spec)
        self.journal.save()

    def route_through(self, ifname: str, network: IPNetwork, source: str | None = None) -> list[RouteAdded]:
        index = _ifindex(ifname)
        # IPv6 looks at the other routes first (see _add_route): one dump serves both halves.
        dump = self._ipr.route("dump", family=10) if network.version == 6 else None
        added = []
        for part in split_full_tunnel(network):
            spec = {"dst": str(part.network_address), "dst_len": part.prefixlen, "oif": index}
            if source:
                spec["prefsrc"] = source
            added.append(self._add_route(spec, dump))
        return added

    def _add_route(self, spec: dict, dump: list | None = None) -> RouteAdded:
        """Add `spec` at the lowest free metric for its destination (see the module text).

        Never `replace`: that would take over a route another tunnel (or the admin) made, and
        our revert would then delete it."""
        spec = {**spec, "family": 10 if ":" in spec["dst"] else 2}
        # IPv4's base metric 0 is the lowest there is: if it is free, no other route to this
        # destination is preferred to ours, and the route dump (the slow part) is not needed.
        optimistic = spec["family"] == 2
        others = [] if optimistic else _routes_to(self._ipr, spec, dump)  # [(metric, oif, gateway)]
        taken = {metric for metric, _, _ in others}
        metric = BASE_METRIC[spec["family"]]
        self.journal.routes.append(spec)  # journaled before the kernel has it (crash safety)
        for _ in range(MAX_METRIC_STEPS):
            while metric in taken:
                metric += 1
            spec["priority"] = metric
            self.journal.save()
            try:
                self._ipr.route("add", **spec)
                break
            except NetlinkError as error:
                if error.code != errno.EEXIST:
                    raise
                if optimistic:  # metric 0 is taken: look at the other routes after all
                    optimistic = False
                    others = _routes_to(self._ipr, spec)
                    taken = {m for m, _, _ in others}
                taken.add(metric)  # another tunnel added the same route meanwhile
        else:
            raise OSError(f"no free route metric for {spec['dst']}/{spec['dst_len']}")
        shadowed_by = sorted({_ifname(oif) for m, oif, gateway in others
                              if m < metric and (oif, gateway) != (spec["oif"], spec.get("gateway"))})
        return RouteAdded(f"{spec['dst']}/{spec['dst_len']}", metric, shadowed_by)

    def clean_stale(self) -> bool:
        """After a crash: undo what a previous run recorded in this journal's file, before this
        run records anything. True if there was something."""
        if not self.journal.path.exists():
            return False
        try:
            stale = Journal.load(self.journal.path)
        except (ValueError, KeyError, OSError):
            self.journal.path.unlink(missing_ok=True)  # unreadable: nothing we can undo
            return False
        revert_journal(self._ipr, stale)
        return True

    def revert(self) -> None:
        """Remove what the journal lists, newest first; what is already gone is fine."""
        revert_journal(self._ipr, self.journal)

    def close(self) -> None:
        self._agent.release()


def _ifindex(ifname: str) -> int:
    """The interface's index, from the C library (pyroute2's link_lookup dumps every link)."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise LookupError(f"network interface {ifname} does not exist") from None


def _routes_to(ipr, spec: dict, dump: list | None = None) -> list[tuple[int, int | None, str | None]]:
    """(metric, oif, gateway) of every main-table route to exactly spec's destination, from
    `dump` (the family's routes, fetched by the caller) or a fresh dump."""
    found = []
    for route in ipr.route("dump", family=spec["family"]) if dump is None else dump:
        if (route.get("RTA_TABLE") == MAIN_TABLE and route["dst_len"] == spec["dst_len"]
                and route.get("RTA_DST") == spec["dst"]):
            metric = route.get("RTA_PRIORITY") or BASE_METRIC[spec["family"]]
            found.append((metric, route.get("RTA_OIF"), route.get("RTA_GATEWAY")))
    return found


def _ifname(index: int | None) -> str:
    try:
        return socket.if_indextoname(index) if index else "?"
    except OSError:
        return "?"


def _is_present(ipr, spec: dict) -> bool:
    """Our route is still there, at our metric. Checked before deleting: a delete at IPv4
    metric 0 would otherwise remove the first route to that destination at any metric."""
    if "priority" not in spec:  # journals of older versions: they replaced, so at most one
        return True
    return any(metric == spec["priority"] and oif == spec.get("oif") and gateway == spec.get("gateway")
               for metric, oif, gateway in _routes_to(ipr, spec))


def revert_journal(ipr, journal: Journal) -> None:
    for spec in reversed(journal.routes):
        try:
            if _is_present(ipr, spec):
                ipr.route("del", **spec)
        except NetlinkError:
            pass  # gone with its interface, or removed by hand
    for ifname, address in reversed(journal.addresses):
        iface = ipaddress.ip_interface(address)
        try:
            index = _ifindex(ifname)
        except LookupError:
            continue
        try:
            ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except NetlinkError:
            pass
    journal.addresses.clear()
    journal.routes.clear()
    try:
        journal.path.unlink()
    except FileNotFoundError:
        pass

