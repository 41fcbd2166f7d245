"""Addresses and routes a tunnel needs, applied with pyroute2 and undone exactly.

Every change is recorded in a `Journal` (a small JSON file under /run/cygnet/) before it is made,
so that `revert()` — or the next start after a crash — removes precisely what Cygnet added and
nothing else.

Routing choice (as strongSwan's Android app and most desktop clients do): the remote traffic
selectors become routes through the TUN device; a full tunnel (0.0.0.0/0 or ::/0) is installed as
two half routes (0.0.0.0/1 + 128.0.0.0/1, ::/1 + 8000::/1) that are more specific than the
default route without replacing it, and the gateway's own address is pinned to the path it had
before the tunnel came up, so IKE and ESP never loop into the tunnel.
"""
from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def split_full_tunnel(network: IPNetwork) -> list[IPNetwork]:
    """0.0.0.0/0 → two /1 halves, so the default route stays and still reaches the gateway."""
    if network.prefixlen == 0:
        return list(network.subnets(prefixlen_diff=1))
    return [network]


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

    pyroute2's synchronous IPRoute runs its own asyncio loop, which cannot nest inside the
    engine's: every netlink call therefore runs on one worker thread that owns the socket
    (the calls are short; the engine waits for each).
    """

    def __init__(self, journal_path: Path):
        from concurrent.futures import ThreadPoolExecutor

        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._ipr = self._worker.submit(_open_iproute).result()
        self.journal = Journal(journal_path)

    def call(self, function, *args, **kwargs):
        """Run function(*args, **kwargs) on the netlink thread and return its result."""
        return self._worker.submit(function, *args, **kwargs).result()

    # -- queries -----------------------------------------------------------------------------
    def ifindex(self, ifname: str) -> int:
        return self.call(self._ifindex, ifname)

    def _ifindex(self, ifname: str) -> int:
        found = self._ipr.link_lookup(ifname=ifname)
        if not found:
            raise LookupError(f"network interface {ifname} does not exist")
        return found[0]

    def current_path(self, destination: ipaddress.IPv4Address | ipaddress.IPv6Address) -> dict:
        """How the kernel reaches `destination` right now: {'oif': …, 'gateway': … or None}."""
        route = self.call(self._ipr.route, "get", dst=str(destination))[0]
        return {"oif": route.get("RTA_OIF"), "gateway": route.get("RTA_GATEWAY")}

    # -- changes -----------------------------------------------------------------------------
    def add_address(self, ifname: str, address: IPInterface) -> None:
        self.journal.addresses.append((ifname, str(address)))
        self.journal.save()
        kwargs = {}
        if address.version == 6:
            kwargs["flags"] = 0x02  # IFA_F_NODAD: a virtual IP from the gateway is not ours to test
        self.call(self._ipr.addr, "add", index=self.ifindex(ifname), address=str(address.ip),
                  prefixlen=address.network.prefixlen, **kwargs)

    def remove_address(self, ifname: str, address: IPInterface) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self.call(self._ipr.addr, "del", index=self.ifindex(ifname), address=str(address.ip),
                      prefixlen=address.network.prefixlen)
        except NetlinkError:
            pass  # already gone
        self.journal.addresses = [a for a in self.journal.addresses if a != (ifname, str(address))]
        self.journal.save()

    def pin_gateway(self, gateway: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        """Keep the gateway reachable the way it was before the tunnel (host route)."""
        path = self.current_path(gateway)
        spec = {"dst": str(gateway), "dst_len": gateway.max_prefixlen, "oif": path["oif"]}
        if path["gateway"]:
            spec["gateway"] = path["gateway"]
        self._add_route(spec)

    def route_through(self, ifname: str, network: IPNetwork, source: str | None = None) -> None:
        for part in split_full_tunnel(network):
            spec = {"dst": str(part.network_address), "dst_len": part.prefixlen,
                    "oif": self.ifindex(ifname)}
            if source:
                spec["prefsrc"] = source
            self._add_route(spec)

    def _add_route(self, spec: dict) -> None:
        family = 6 if ":" in spec["dst"] else 2
        spec = {**spec, "family": 10 if family == 6 else 2}
        self.journal.routes.append(spec)
        self.journal.save()
        self.call(self._ipr.route, "replace", **spec)

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
        self.call(revert_journal, self._ipr, stale)
        return True

    def revert(self) -> None:
        """Remove what the journal lists, newest first; what is already gone is fine."""
        self.call(revert_journal, self._ipr, self.journal)

    def close(self) -> None:
        self.call(self._ipr.close)
        self._worker.shutdown()


def _open_iproute():
    from pyroute2 import IPRoute  # imported lazily: start-up time matters for `cygnet up`

    return IPRoute()


def revert_journal(ipr, journal: Journal) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    for spec in reversed(journal.routes):
        try:
            ipr.route("del", **spec)
        except NetlinkError:
            pass  # gone with its interface, or removed by hand
    for ifname, address in reversed(journal.addresses):
        iface = ipaddress.ip_interface(address)
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            continue
        try:
            ipr.addr("del", index=found[0], address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except NetlinkError:
            pass
    journal.addresses.clear()
    journal.routes.clear()
    try:
        journal.path.unlink()
    except FileNotFoundError:
        pass


def clean_stale(journal_path: Path) -> bool:
    """After a crash: undo what a previous run of the same tunnel left. True if it found any.
    Not inside a running asyncio loop (pyroute2's IPRoute runs its own): the engine uses
    NetworkConfig.clean_stale() instead."""
    if not journal_path.exists():
        return False
    from pyroute2 import IPRoute

    journal = Journal.load(journal_path)
    with IPRoute() as ipr:
        revert_journal(ipr, journal)
    return True
