"""Watching the network under a tunnel: link, address and route changes (rtnetlink multicast),
sleep and resume, and where the path to the gateway goes now.

- `NetlinkWatch`: a plain NETLINK_ROUTE socket joined to RTMGRP_LINK, _IPV4_IFADDR,
  _IPV6_IFADDR, _IPV4_ROUTE and _IPV6_ROUTE, read on the event loop. It decodes only the
  message headers it needs to ignore our own changes (the tunnel's interface, the gateway's
  host route, tables other than main) and calls back, debounced: a link going down brings a
  burst of messages. No pyroute2 here: the engine does not load it while connected.
- `SuspendWatch`: a suspend shows as CLOCK_BOOTTIME running ahead of CLOCK_MONOTONIC (they
  differ only by the time spent suspended), checked every few seconds; and, where a system
  bus is reachable, systemd-logind's PrepareForSleep(false) on it (dbus-fast), which comes at
  once on resume.
- `gateway_path()`: the route the kernel would use to the gateway if the tunnel's routes and
  our own host route were not there (a full tunnel's halves would else swallow it), and the
  source address on it. Runs its queries through the netlink agent (client/netlink_agent.py).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import os
import struct
import time
from dataclasses import dataclass
from typing import Callable, Optional

log = logging.getLogger("cygnet")

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 20, 21, 24, 25
RTA_DST, RTA_OIF, RTA_TABLE = 1, 4, 15
MAIN_TABLE = 254
RTNH_F_LINKDOWN = 0x10
RTN_UNICAST = 1
SETTLE = 0.05  # seconds of quiet before re-evaluating (a link going down is a burst)
SUSPEND_CHECK_INTERVAL = 5.0
BUS_TIMEOUT = 5.0  # seconds for the system bus to let us subscribe
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"  # the D-Bus spec's default system bus
SUSPEND_THRESHOLD = 2.0  # seconds BOOTTIME may run ahead between checks before we call it sleep


# ------------------------------------------------------------------------------ rtnetlink


@dataclass(frozen=True)
class Change:
    kind: int  # RTM_*
    ifindex: Optional[int]
    destination: Optional[str] = None  # routes: RTA_DST
    prefixlen: int = 0
    table: int = MAIN_TABLE


def parse_messages(data: bytes) -> list[Change]:
    """The rtnetlink messages in one datagram (link, address, route), headers only."""
    changes = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16 or offset + length > len(data):
            break
        body = data[offset + 16:offset + length]
        if kind in (RTM_NEWLINK, RTM_DELLINK) and len(body) >= 16:
            changes.append(Change(kind, struct.unpack_from("=i", body, 4)[0]))
        elif kind in (RTM_NEWADDR, RTM_DELADDR) and len(body) >= 8:
            changes.append(Change(kind, struct.unpack_from("=I", body, 4)[0]))
        elif kind in (RTM_NEWROUTE, RTM_DELROUTE) and len(body) >= 12:
            family, dst_len, _, _, table = struct.unpack_from("=BBBBB", body, 0)
            attrs = _attributes(body[12:])
            oif = struct.unpack("=I", attrs[RTA_OIF][:4])[0] if len(attrs.get(RTA_OIF, b"")) >= 4 else None
            if RTA_TABLE in attrs and len(attrs[RTA_TABLE]) >= 4:
                table = struct.unpack("=I", attrs[RTA_TABLE][:4])[0]
            destination = None
            if RTA_DST in attrs:
                try:
                    destination = str(ipaddress.ip_address(attrs[RTA_DST]))
                except ValueError:
                    pass
            changes.append(Change(kind, oif, destination, dst_len, table))
        offset += (length + 3) & ~3
    return changes


def _attributes(data: bytes) -> dict[int, bytes]:
    attrs = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        attrs[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return attrs


class NetlinkWatch:
    """Calls `on_change()` once things settle after link/address/route changes that may
    move the path to the gateway. `ignore(change)` filters out our own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_change: Callable[[], None],
                 ignore: Callable[[Change], bool] = lambda change: False,
                 on_wake: Optional[Callable[[], None]] = None):
        self.loop = loop
        self.on_change = on_change
        self.ignore = ignore
        self.on_wake = on_wake  # at the first relevant message: get ready while things settle
        self._pending: Optional[asyncio.TimerHandle] = None
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                                  | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.bind((0, GROUPS))
        except OSError:
            self.sock.close()
            raise
        loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        relevant = False
        for _ in range(64):
            try:
                data = self.sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ENOBUFS: we missed messages; look again to be safe
                relevant = True
                continue
            if any(not self.ignore(change) for change in parse_messages(data)):
                relevant = True
        if relevant and self._pending is None:
            if self.on_wake is not None:
                self.on_wake()
            self._pending = self.loop.call_later(SETTLE, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self.on_change()

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


# ------------------------------------------------------------------------------ sleep


def sleep_offset() -> float:
    """Seconds spent suspended since boot: CLOCK_BOOTTIME counts them, MONOTONIC does not."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) - time.clock_gettime(time.CLOCK_MONOTONIC)


def system_bus_present() -> bool:
    """Is there a system bus to ask? dbus-fast costs ~6 MB of a connected engine's RSS, so it
    is loaded only where logind could be listening (an address in the environment, or the
    default socket)."""
    return bool(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")) or os.path.exists(SYSTEM_BUS_SOCKET)


class SuspendWatch:
    """Calls `on_resume(slept_seconds)` after a suspend: from the clocks (checked every
    SUSPEND_CHECK_INTERVAL), or at once from logind's PrepareForSleep(false) if the system
    bus is there (`start_logind()`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_resume: Callable[[float], None]):
        self.loop = loop
        self.on_resume = on_resume
        self._offset = sleep_offset()
        self._timer = loop.call_later(SUSPEND_CHECK_INTERVAL, self._check)
        self._bus = None
        self._logind_task: Optional[asyncio.Task] = None

    def _check(self) -> None:
        offset = sleep_offset()
        slept, self._offset = offset - self._offset, offset
        self._timer = self.loop.call_later(SUSPEND_CHECK_INTERVAL, self._check)
        if slept > SUSPEND_THRESHOLD:
            self.on_resume(slept)

    def start_logind(self) -> None:
        self._logind_task = self.loop.create_task(self._subscribe_logind())

    async def _subscribe_logind(self) -> None:
        if not system_bus_present():
            log.debug("no system bus: resume is seen from the clocks alone")
            return
        try:
            from dbus_fast import BusType, Message, MessageType
            from dbus_fast.aio import MessageBus

            bus = await asyncio.wait_for(MessageBus(bus_type=BusType.SYSTEM).connect(), BUS_TIMEOUT)
        except Exception as error:  # noqa: BLE001 — no bus, no dbus-fast: the clocks remain
            log.debug("no logind sleep signals: %s", error)
            return
        self._bus = bus
        rule = ("type='signal',interface='org.freedesktop.login1.Manager',"
                "member='PrepareForSleep',path='/org/freedesktop/login1'")

        def on_message(message) -> None:
            if (message.message_type == MessageType.SIGNAL and message.member == "PrepareForSleep"
                    and message.interface == "org.freedesktop.login1.Manager"
                    and message.body == [False]):
                self._offset = sleep_offset()  # the clocks need not report it again
                self.on_resume(0.0)

        bus.add_message_handler(on_message)
        try:
            await asyncio.wait_for(bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule])),
                BUS_TIMEOUT)
        except Exception as error:  # noqa: BLE001
            log.debug("cannot subscribe to PrepareForSleep: %s", error)
            return
        log.debug("watching logind's PrepareForSleep on the system bus")

    def close(self) -> None:
        self._timer.cancel()
        if self._logind_task is not None:
            self._logind_task.cancel()
        if self._bus is not None:
            self._bus.disconnect()


# ------------------------------------------------------------------------------ the path


@dataclass(frozen=True)
class GatewayPath:
    oif: int
    nexthop: Optional[str]
    source: str


def gateway_path(ipr, gateway: ipaddress.IPv4Address | ipaddress.IPv6Address,
                 skip: Callable[[dict], bool]) -> Optional[GatewayPath]:
    """The main-table route the gateway would take without the routes `skip` names (the
    tunnel's, our host route), and our source address on it; None without one."""
    family = 10 if gateway.version == 6 else 2  # plain ints: the agent's calls are marshalled
    best, best_key = None, None
    for route in ipr.route("dump", family=family):
        if route.get("RTA_TABLE", route.get("table")) != MAIN_TABLE or skip(route):
            continue
        if route.get("type", RTN_UNICAST) != RTN_UNICAST or route.get("flags", 0) & RTNH_F_LINKDOWN:
            continue
        oif = route.get("RTA_OIF")
        if oif is None:
            continue  # multipath: not ours to pick from
        destination = route.get("RTA_DST") or ("::" if gateway.version == 6 else "0.0.0.0")
        try:
            network = ipaddress.ip_network(f"{destination}/{route.get('dst_len', 0)}", strict=False)
        except ValueError:
            continue
        if gateway not in network:
            continue
        key = (-network.prefixlen, route.get("RTA_PRIORITY") or 0)
        if best_key is None or key < best_key:
            best, best_key = route, key
    if best is None:
        return None
    try:  # the kernel's choice of source address on that interface
        answer = ipr.route("get", dst=str(gateway), oif=int(best.get("RTA_OIF")))[0]
    except OSError:
        return None
    source = answer.get("RTA_PREFSRC")
    if not source:
        return None
    return GatewayPath(best.get("RTA_OIF"), best.get("RTA_GATEWAY"), source)
