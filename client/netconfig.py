"""Addresses and routes a tunnel needs, applied over rtnetlink and undone exactly.

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
import struct
from dataclasses import dataclass, field
from pathlib import Path

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
    routes: list[dict] = field(default_factory=list)  # route specs we added (RtNetlink.route)

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

    The netlink requests are short and blocking (RtNetlink, below): they run on the caller's
    thread, the engine's event loop.
    """

    def __init__(self, journal_path: Path):
        self._ipr = RtNetlink()
        self.journal = Journal(journal_path)

    def call(self, function, *args, **kwargs):
        """function(*args, **kwargs). (Once a trip to a netlink worker thread, which pyroute2's
        own asyncio loop needed; kept for the engine's calls.)"""
        return function(*args, **kwargs)

    # -- queries -----------------------------------------------------------------------------
    def ifindex(self, ifname: str) -> int:
        return _ifindex(ifname)

    def current_path(self, destination: ipaddress.IPv4Address | ipaddress.IPv6Address) -> dict:
        """How the kernel reaches `destination` right now: {'oif': …, 'gateway': … or None}."""
        return self._current_path(destination)

    def _current_path(self, destination) -> dict:
        route = self._ipr.route("get", dst=str(destination))[0]
        return {"oif": route.get("RTA_OIF"), "gateway": route.get("RTA_GATEWAY")}

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

    def pin_gateway(self, gateway: ipaddress.IPv4Address | ipaddress.IPv6Address) -> RouteAdded:
        """Keep the gateway reachable the way it was before the tunnel (host route)."""
        return self._pin_gateway(gateway)

    def _pin_gateway(self, gateway) -> RouteAdded:
        path = self._current_path(gateway)
        spec = {"dst": str(gateway), "dst_len": gateway.max_prefixlen, "oif": path["oif"]}
        if path["gateway"]:
            spec["gateway"] = path["gateway"]
        return self._add_route(spec)

    def route_through(self, ifname: str, network: IPNetwork, source: str | None = None) -> list[RouteAdded]:
        return self._route_through(ifname, network, source)

    def _route_through(self, ifname: str, network: IPNetwork, source: str | None) -> list[RouteAdded]:
        index = _ifindex(ifname)
        added = []
        for part in split_full_tunnel(network):
            spec = {"dst": str(part.network_address), "dst_len": part.prefixlen, "oif": index}
            if source:
                spec["prefsrc"] = source
            added.append(self._add_route(spec))
        return added

    def _add_route(self, spec: dict) -> RouteAdded:
        """Add `spec` at the lowest free metric for its destination (see the module text).

        Never `replace`: that would take over a route another tunnel (or the admin) made, and
        our revert would then delete it."""
        spec = {**spec, "family": 10 if ":" in spec["dst"] else 2}
        # IPv4's base metric 0 is the lowest there is: if it is free, no other route to this
        # destination is preferred to ours, and the route dump (the slow part) is not needed.
        optimistic = spec["family"] == 2
        others = [] if optimistic else _routes_to(self._ipr, spec)  # [(metric, oif, gateway)]
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
        shadowed_by = sorted({_ifname(self._ipr, oif) for m, oif, gateway in others
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
        self._ipr.close()


def _ifindex(ifname: str) -> int:
    """The interface's index (from the C library)."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise LookupError(f"network interface {ifname} does not exist") from None


def _routes_to(ipr, spec: dict) -> list[tuple[int, int | None, str | None]]:
    """(metric, oif, gateway) of every main-table route to exactly spec's destination."""
    found = []
    for route in ipr.route("dump", family=spec["family"]):
        if (route.get("RTA_TABLE") == MAIN_TABLE and route["dst_len"] == spec["dst_len"]
                and route.get("RTA_DST") == spec["dst"]):
            metric = route.get("RTA_PRIORITY") or BASE_METRIC[spec["family"]]
            found.append((metric, route.get("RTA_OIF"), route.get("RTA_GATEWAY")))
    return found


def _ifname(ipr, index: int | None) -> str:
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


def clean_stale(journal_path: Path) -> bool:
    """After a crash: undo what a previous run of the same tunnel left. True if it found any.
    The engine uses NetworkConfig.clean_stale()."""
    if not journal_path.exists():
        return False
    journal = Journal.load(journal_path)
    with RtNetlink() as ipr:
        revert_journal(ipr, journal)
    return True


# ------------------------------------------------------------------------------ rtnetlink
# The few rtnetlink requests a tunnel makes, on a plain netlink socket. pyroute2's IPRoute did
# this before; importing it cost `cygnet up` ~4 MB and 60-120 ms of its start-up (it loads
# unittest and ssl), and its own asyncio loop needed a worker thread. The request fields are the
# ones IPRoute sent (protocol static, scope universe, main table), so routes look the same in
# `ip route` and journals of either version revert with the other.

RTM_NEWLINK, RTM_NEWADDR, RTM_DELADDR = 16, 20, 21
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
IFLA_MTU, IFLA_TXQLEN = 4, 13
IFF_UP = 0x1
RTPROT_STATIC, RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE, RTN_UNICAST = 4, 0, 255, 1
_ADDRESS_ATTRS = {RTA_DST: "RTA_DST", RTA_GATEWAY: "RTA_GATEWAY", RTA_PREFSRC: "RTA_PREFSRC"}
_INT_ATTRS = {RTA_OIF: "RTA_OIF", RTA_PRIORITY: "RTA_PRIORITY", RTA_TABLE: "RTA_TABLE"}


class NetlinkError(Exception):
    """The kernel refused a request; `code` is the errno. Like pyroute2's NetlinkError, not an
    OSError: the engine's reconnect loop handles OSErrors, and a refused route is not one."""

    def __init__(self, code: int):
        super().__init__(code, os.strerror(code))
        self.code = code


def _attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


class RtNetlink:
    """A NETLINK_ROUTE socket with the calls NetworkConfig and TunDevice make, spelled as
    pyroute2's IPRoute spells them (`route("add", dst=…, dst_len=…, oif=…)`)."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def __enter__(self) -> "RtNetlink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def _request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request; the bodies of the answers (a dump's parts), after the ACK."""
        self._seq += 1
        self._sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags,
                                    self._seq, 0) + body)
        answers = []
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
                body = data[offset + 16:offset + length]
                offset += (length + 3) & ~3
                if seq != self._seq:
                    continue  # an answer to an earlier request that gave up
                if kind == NLMSG_DONE:
                    return answers
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        raise NetlinkError(code)
                    return answers  # the ACK
                answers.append(body)

    def link(self, command: str, index: int, mtu: int | None = None, txqlen: int | None = None,
             state: str | None = None) -> None:
        assert command == "set"
        flags = change = 0
        if state is not None:
            flags, change = (IFF_UP if state == "up" else 0), IFF_UP
        attrs = b""
        if mtu is not None:
            attrs += _attr(IFLA_MTU, struct.pack("=I", mtu))
        if txqlen is not None:
            attrs += _attr(IFLA_TXQLEN, struct.pack("=I", txqlen))
        self._request(RTM_NEWLINK, 0, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change) + attrs)

    def addr(self, command: str, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        family = _family(address)
        packed = socket.inet_pton(family, address)
        attrs = _attr(IFA_ADDRESS, packed)
        if family == socket.AF_INET:
            attrs = _attr(IFA_LOCAL, packed) + attrs
        kind, request_flags = {"add": (RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL), "del": (RTM_DELADDR, 0)}[command]
        self._request(kind, request_flags,
                      struct.pack("=BBBBI", family, prefixlen, flags, RT_SCOPE_UNIVERSE, index) + attrs)

    def route(self, command: str, family: int | None = None, dst: str | None = None,
              dst_len: int | None = None, oif: int | None = None, gateway: str | None = None,
              prefsrc: str | None = None, priority: int | None = None) -> list[dict]:
        """"add"/"del" a main-table route, "get" the kernel's route to `dst`, or "dump" the
        routes of `family`: as dicts with pyroute2's names (dst_len, RTA_DST, RTA_OIF, …)."""
        if dst is not None and "/" in dst:  # "10.0.0.0/8"
            dst, dst_len = dst.split("/")[0], int(dst.split("/")[1])
        if family is None:
            family = _family(dst)
        if command == "dump":
            return [_parse_route(m) for m in self._request(
                RTM_GETROUTE, NLM_F_DUMP, struct.pack("=BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0))]
        attrs = b""
        full = 32 if family == socket.AF_INET else 128
        if dst is not None:
            attrs += _attr(RTA_DST, socket.inet_pton(family, dst))
        if command == "get":
            return [_parse_route(m) for m in self._request(
                RTM_GETROUTE, 0, struct.pack("=BBBBBBBBI", family, full, 0, 0, 0, 0, 0, 0, 0) + attrs)]
        for kind, value in ((RTA_OIF, oif), (RTA_PRIORITY, priority)):
            if value is not None:
                attrs += _attr(kind, struct.pack("=I", value))
        for kind, value in ((RTA_GATEWAY, gateway), (RTA_PREFSRC, prefsrc)):
            if value is not None:
                attrs += _attr(kind, socket.inet_pton(family, value))
        attrs += _attr(RTA_TABLE, struct.pack("=I", MAIN_TABLE))
        if command == "add":
            header = struct.pack("=BBBBBBBBI", family, dst_len if dst_len is not None else full, 0, 0,
                                 MAIN_TABLE, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
            self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, header + attrs)
        elif command == "del":  # protocol, scope and type 0/NOWHERE: "any" to the kernel
            header = struct.pack("=BBBBBBBBI", family, dst_len if dst_len is not None else full, 0, 0,
                                 MAIN_TABLE, 0, RT_SCOPE_NOWHERE, 0, 0)
            self._request(RTM_DELROUTE, 0, header + attrs)
        else:
            raise ValueError(f"route command {command!r}")
        return []


def _parse_route(message: bytes) -> dict:
    family, dst_len, _, _, table = struct.unpack_from("=BBBBB", message)
    route = {"family": family, "dst_len": dst_len, "RTA_TABLE": table}
    offset = 12
    while offset + 4 <= len(message):
        length, kind = struct.unpack_from("=HH", message, offset)
        if length < 4:
            break
        payload = message[offset + 4:offset + length]
        if kind in _ADDRESS_ATTRS:
            route[_ADDRESS_ATTRS[kind]] = socket.inet_ntop(family, payload)
        elif kind in _INT_ATTRS:
            route[_INT_ATTRS[kind]] = struct.unpack("=I", payload)[0]
        offset += (length + 3) & ~3
    return route
