"""The applet's view of NetworkManager, over the system bus with dbus-fast.

Plain method calls (no introspection proxies) so each D-Bus call is visible where it is made:

    Settings.ListConnections / GetSettings / AddConnection      -> Cygnet connections
    Settings.Connection.Update / Delete
    NetworkManager.ActivateConnection / DeactivateConnection    -> Connect / Disconnect
    ActiveConnections, Connection.Active, VPN.Connection        -> what is up, its state
    IP4Config / IP6Config                                        -> addresses, DNS, domains

Signals from NetworkManager (and the VPN plugin's own, which are broadcast on the system bus)
reach `on_signal(callback)` subscribers as dbus_fast Messages.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Optional

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from gui.connection import VpnConnection, is_cygnet

NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
SETTINGS_PATH = "/org/freedesktop/NetworkManager/Settings"
SETTINGS_IFACE = "org.freedesktop.NetworkManager.Settings"
CONNECTION_IFACE = "org.freedesktop.NetworkManager.Settings.Connection"
ACTIVE_IFACE = "org.freedesktop.NetworkManager.Connection.Active"
VPN_CONNECTION_IFACE = "org.freedesktop.NetworkManager.VPN.Connection"
VPN_PLUGIN_IFACE = "org.freedesktop.NetworkManager.VPN.Plugin"
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"

# NMVpnConnectionState
VPN_UNKNOWN, VPN_PREPARE, VPN_NEED_AUTH, VPN_CONNECT, VPN_IP_CONFIG_GET, VPN_ACTIVATED, \
    VPN_FAILED, VPN_DISCONNECTED = range(8)
CONNECTING_STATES = (VPN_PREPARE, VPN_NEED_AUTH, VPN_CONNECT, VPN_IP_CONFIG_GET)


class NmError(Exception):
    """A D-Bus error reply from NetworkManager: `.name` and the message."""

    def __init__(self, name: str, message: str):
        super().__init__(message or name)
        self.name = name


def unwrap(value):
    """dbus_fast Variants (nested in dicts and lists) → plain Python values."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass
class IpConfig:
    """One address family of an active connection, from NetworkManager's IP4Config/IP6Config."""

    addresses: list[str] = field(default_factory=list)   # "10.3.0.1/32"
    dns: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)      # "10.1.0.0/24"


@dataclass
class ActiveVpn:
    """A Cygnet connection NetworkManager is activating or has activated."""

    path: str                      # the active connection's object path
    connection_path: str
    id: str
    uuid: str
    vpn_state: int
    banner: str = ""
    ip4_path: str = "/"
    ip6_path: str = "/"


class NmClient:
    def __init__(self, bus: MessageBus):
        self.bus = bus
        self._subscribers: list[Callable[[Message], None]] = []
        bus.add_message_handler(self._dispatch)

    @classmethod
    async def connect(cls) -> "NmClient":
        """Connect to the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured) and subscribe to
        NetworkManager's signals and the VPN plugins' broadcasts."""
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        client = cls(bus)
        for rule in (f"type='signal',sender='{NM}'", f"type='signal',interface='{VPN_PLUGIN_IFACE}'",
                     "type='signal',interface='org.freedesktop.NetworkManager.cygnet.Plugin'"):
            await client._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "AddMatch", "s", [rule])
        return client

    def close(self) -> None:
        self.bus.disconnect()

    # ------------------------------------------------------------------ plumbing

    def on_signal(self, callback: Callable[[Message], None]) -> None:
        self._subscribers.append(callback)

    def _dispatch(self, message: Message):
        if message.message_type == MessageType.SIGNAL:
            for callback in list(self._subscribers):
                callback(message)
        return None  # never a reply: we only watch

    async def _call(self, destination: str, path: str, interface: str, member: str,
                    signature: str = "", body: Optional[list] = None) -> list:
        reply = await self.bus.call(Message(destination=destination, path=path, interface=interface,
                                            member=member, signature=signature, body=body or []))
        if reply.message_type == MessageType.ERROR:
            raise NmError(reply.error_name or "", reply.body[0] if reply.body else "")
        return reply.body

    async def call(self, path: str, interface: str, member: str, signature: str = "",
                   body: Optional[list] = None) -> list:
        return await self._call(NM, path, interface, member, signature, body)

    async def properties(self, path: str, interface: str) -> dict:
        (values,) = await self.call(path, PROPERTIES_IFACE, "GetAll", "s", [interface])
        return unwrap(values)

    # ------------------------------------------------------------------ connections

    async def get_settings(self, path: str) -> dict:
        """GetSettings as NetworkManager sent it (Variants), for a faithful Update."""
        (settings,) = await self.call(path, CONNECTION_IFACE, "GetSettings")
        return settings

    async def cygnet_connections(self) -> list[VpnConnection]:
        """Every connection of Cygnet's VPN type, sorted by name."""
        (paths,) = await self.call(SETTINGS_PATH, SETTINGS_IFACE, "ListConnections")
        found = []
        for path in paths:
            try:
                settings = await self.get_settings(path)
            except NmError:
                continue  # removed meanwhile, or not visible to us
            if is_cygnet(settings):
                found.append(VpnConnection.from_settings(settings, path))
        return sorted(found, key=lambda c: c.id.lower())

    async def add(self, connection: VpnConnection) -> str:
        (path,) = await self.call(SETTINGS_PATH, SETTINGS_IFACE, "AddConnection", "a{sa{sv}}",
                                  [connection.to_settings()])
        connection.path = path
        return path

    async def update(self, connection: VpnConnection) -> None:
        base = await self.get_settings(connection.path)
        await self.call(connection.path, CONNECTION_IFACE, "Update", "a{sa{sv}}",
                        [connection.to_settings(base)])

    async def delete(self, connection: VpnConnection) -> None:
        await self.call(connection.path, CONNECTION_IFACE, "Delete")

    # ------------------------------------------------------------------ activation

    async def activate(self, connection: VpnConnection) -> str:
        (active,) = await self.call(NM_PATH, NM, "ActivateConnection", "ooo",
                                    [connection.path, "/", "/"])
        return active

    async def deactivate(self, active_path: str) -> None:
        await self.call(NM_PATH, NM, "DeactivateConnection", "o", [active_path])

    async def active_vpns(self, connections: list[VpnConnection]) -> list[ActiveVpn]:
        """The active connections that are Cygnet VPNs, with their VPN state."""
        by_path = {c.path: c for c in connections}
        manager = await self.properties(NM_PATH, NM)
        result = []
        for path in manager.get("ActiveConnections", []):
            try:
                active = await self.properties(path, ACTIVE_IFACE)
                if not active.get("Vpn") or active.get("Connection") not in by_path:
                    continue
                vpn = await self.properties(path, VPN_CONNECTION_IFACE)
            except NmError:
                continue  # gone between the two calls
            result.append(ActiveVpn(path=path, connection_path=active["Connection"],
                                    id=active.get("Id", ""), uuid=active.get("Uuid", ""),
                                    vpn_state=int(vpn.get("VpnState", VPN_UNKNOWN)),
                                    banner=vpn.get("Banner", ""),
                                    ip4_path=active.get("Ip4Config", "/"),
                                    ip6_path=active.get("Ip6Config", "/")))
        return result

    async def ip_config(self, path: str, family: int) -> IpConfig:
        if not path or path == "/":
            return IpConfig()
        iface = f"org.freedesktop.NetworkManager.IP{family}Config"
        try:
            props = await self.properties(path, iface)
        except NmError:
            return IpConfig()
        config = IpConfig()
        config.addresses = [f"{a['address']}/{a['prefix']}" for a in props.get("AddressData", [])]
        if family == 4:
            config.dns = [d["address"] for d in props.get("NameserverData", [])]
        else:
            config.dns = [str(ipaddress.IPv6Address(bytes(d))) for d in props.get("Nameservers", [])]
        config.domains = list(dict.fromkeys(props.get("Domains", []) + props.get("Searches", [])))
        config.routes = [f"{r['dest']}/{r['prefix']}" for r in props.get("RouteData", [])]
        return config


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll an async predicate (used by tests and by the applet's Disconnect)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False
