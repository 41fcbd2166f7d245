"""cygnet-tray: the system-tray applet for Cygnet VPN connections in NetworkManager.

Runs as the desktop user (never root), on one asyncio loop shared with Qt (qasync), with one
D-Bus library (dbus-fast) on two buses:
  - the system bus: NetworkManager (gui/nm_client.py) and our secret agent (gui/secret_agent.py);
  - the session bus: desktop notifications (gui/notify.py), the keyring (Secret Service).

`Applet` holds the state (TrayState: connections, their VPN states, the last failure), keeps it
current from NetworkManager's signals, and drives the tray icon, its menu (gui/menu.py), the
status window (gui/status.py) and the connections window (gui/connections_window.py).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
import time
from typing import Optional

from PyQt6.QtCore import QObject, QTimer
from PyQt6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from gui import icons
from gui.connection import VpnConnection, split_list
from gui.failures import explain, is_failure
from gui.menu import CONNECTING, MenuHandlers, TrayState, fill_menu
from gui.nm_client import (CONNECTING_STATES, VPN_ACTIVATED, VPN_CONNECTION_IFACE, VPN_DISCONNECTED,
                           VPN_FAILED, VPN_PLUGIN_IFACE, ActiveVpn, IpConfig, NmClient, NmError,
                           unwrap)
from gui.notify import Notifier
from gui.status import StatusInfo, StatusWindow, read_counters
from gui.tasks import BackgroundTasks

log = logging.getLogger("cygnet.tray")

CYGNET_PLUGIN_IFACE = "org.freedesktop.NetworkManager.cygnet.Plugin"
ROOT_REFUSAL = ("cygnet-tray: refusing to run as root. The tray applet belongs to the desktop "
                "user: start it from your desktop session as yourself; NetworkManager does the "
                "privileged work.")

VPN_STATE_WORDS = {1: "preparing", 2: "waiting for the password", 3: "connecting",
                   4: "getting the IP configuration", 5: "connected", 6: "failed", 7: "disconnected"}


class Applet(QObject):
    def __init__(self, nm: NmClient, notifier: Optional[Notifier] = None, agent=None):
        super().__init__()
        self.nm = nm
        self.agent = agent
        self.state = TrayState()
        self.active: dict[str, ActiveVpn] = {}          # uuid -> active connection
        self.ip: dict[str, tuple[IpConfig, IpConfig]] = {}
        self.since: dict[str, float] = {}               # uuid -> when it came up
        self.plugin_config: dict = {}                   # the plugin's last Config signal
        self.plugin_banner = ""
        self.plugin_failure: Optional[int] = None
        self.plugin_message = ""
        self.plugin_failure_kind: Optional[str] = None  # client.failure.FailureKind token
        self._reported: set[str] = set()                # active paths already notified as ended
        self._refresh_task: Optional[asyncio.Task] = None
        self._refresh_again = False
        self.tasks = BackgroundTasks(lambda error: log.error("%s", error, exc_info=error))
        self.quit_requested: Optional[asyncio.Future] = None   # made by start()

        self.menu = QMenu()
        self.tray = QSystemTrayIcon(icons.icon("disconnected"))
        self.tray.setContextMenu(self.menu)
        self.tray.activated.connect(self._tray_activated)
        self.notifier = notifier or Notifier(self.tray)
        self.notifier.tray = self.tray
        self.handlers = MenuHandlers(connect=self.connect_vpn, disconnect=self.disconnect_vpn,
                                     edit=self.show_connections, status=self.show_status,
                                     quit=self.quit)
        self.status_window: Optional[StatusWindow] = None
        self.connections_window = None
        self._frame = 0
        self.animation = QTimer(self)
        self.animation.setInterval(250)
        self.animation.timeout.connect(self._next_frame)
        app = QApplication.instance()
        if app is not None and hasattr(app, "paletteChanged"):
            app.paletteChanged.connect(lambda _palette: self._render())
        nm.on_signal(self._on_signal)
        self._render()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.quit_requested = asyncio.get_running_loop().create_future()
        await self.notifier.start()
        if self.agent is not None:
            await self.agent.register(self.nm.bus)
        await self.refresh()
        self.tray.show()

    def quit(self) -> None:
        if self.quit_requested is not None and not self.quit_requested.done():
            self.quit_requested.set_result(0)

    def run(self, coroutine) -> asyncio.Task:
        return self.tasks.run(coroutine)

    # ------------------------------------------------------------------ state from NM

    async def refresh(self) -> None:
        """Re-read the connections and what is active; one refresh at a time."""
        if self._refresh_task is not None and not self._refresh_task.done():
            self._refresh_again = True
            return await asyncio.shield(self._refresh_task)
        self._refresh_task = asyncio.ensure_future(self._refresh())
        await self._refresh_task

    async def _refresh(self) -> None:
        while True:
            self._refresh_again = False
            try:
                connections = await self.nm.cygnet_connections()
                # An active connection that already reported failed/disconnected is over, even if
                # NetworkManager still lists it for a moment (or a refresh read it just before).
                actives = [a for a in await self.nm.active_vpns(connections)
                           if a.path not in self._reported]
                ip = {}
                for active in actives:
                    if active.vpn_state == VPN_ACTIVATED:
                        ip[active.uuid] = (await self.nm.ip_config(active.ip4_path, 4),
                                           await self.nm.ip_config(active.ip6_path, 6))
            except NmError as error:
                log.warning("NetworkManager: %s", error)
                return
            self.state.connections = connections
            self.active = {a.uuid: a for a in actives}
            self.state.vpn_states = {a.uuid: a.vpn_state for a in actives}
            self.ip = ip
            for uuid, active in self.active.items():
                if active.vpn_state == VPN_ACTIVATED:
                    self.since.setdefault(uuid, time.time())
            for uuid in list(self.since):
                if uuid not in self.active:
                    del self.since[uuid]
            self._render()
            if self.connections_window is not None:
                self.connections_window.show_connections(connections)
            if not self._refresh_again:
                return

    def schedule_refresh(self) -> None:
        self.run(self.refresh())

    def _on_signal(self, message) -> None:
        interface, member = message.interface, message.member
        if interface == VPN_CONNECTION_IFACE and member == "VpnStateChanged":
            state, reason = message.body
            self.run(self._vpn_state_changed(message.path, state, reason))
        elif interface == VPN_PLUGIN_IFACE:
            self._plugin_signal(member, message.body)
        elif interface == CYGNET_PLUGIN_IFACE and member == "Failed":
            # Cygnet's plugin says why: NM's code, the message, and the failure's kind.
            self.plugin_failure, self.plugin_message = int(message.body[0]), str(message.body[1])
            self.plugin_failure_kind = str(message.body[2]) if len(message.body) > 2 else None
        elif member in ("PropertiesChanged", "NewConnection", "ConnectionRemoved", "Updated",
                        "Removed", "StateChanged"):
            self.schedule_refresh()

    def _plugin_signal(self, member: str, body: list) -> None:
        if member == "Config":
            self.plugin_config = unwrap(body[0])
        elif member == "LoginBanner":
            self.plugin_banner = str(body[0])
        elif member == "Failure":
            self.plugin_failure = int(body[0])

    async def _vpn_state_changed(self, path: str, state: int, reason: int) -> None:
        active = next((a for a in self.active.values() if a.path == path), None)
        if state in CONNECTING_STATES and active is None:
            await self.refresh()
            active = next((a for a in self.active.values() if a.path == path), None)
        name = active.id if active else "VPN"
        if state == VPN_CONNECTING_FIRST:
            self.state.last_failure = ""
            self.plugin_failure, self.plugin_message, self.plugin_failure_kind = None, "", None
        if state == VPN_ACTIVATED:
            await self.refresh()
            info = self.status_info()
            address = ", ".join(info.ipv4 + info.ipv6) or "no virtual address"
            await self.notifier.notify(f"Connected to {name}", f"Address {address}",
                                       icon=str(icons.svg_path("connected")))
        elif state in (VPN_FAILED, VPN_DISCONNECTED) and path not in self._reported:
            self._reported.add(path)
            if is_failure(reason):
                text = explain(reason, self.plugin_failure, self.plugin_message, self.plugin_failure_kind)
                self.state.last_failure = text
                await self.notifier.notify(f"{name}: connection failed", text, urgent=True,
                                           icon=str(icons.svg_path("failed")))
            else:
                await self.notifier.notify(f"Disconnected from {name}", "The VPN connection was closed.",
                                           icon=str(icons.svg_path("disconnected")))
            await self.refresh()
        else:
            self.schedule_refresh()

    # ------------------------------------------------------------------ actions

    def find(self, name_or_uuid: str) -> Optional[VpnConnection]:
        return next((c for c in self.state.connections if name_or_uuid in (c.id, c.uuid)), None)

    def connect_vpn(self, connection: VpnConnection) -> asyncio.Task:
        return self.run(self._connect(connection))

    async def _connect(self, connection: VpnConnection) -> None:
        self.state.last_failure = ""
        self.plugin_failure, self.plugin_message, self.plugin_failure_kind = None, "", None
        try:
            await self.nm.activate(connection)
        except NmError as error:
            text = f"NetworkManager could not start it: {error}"
            self.state.last_failure = text
            await self.notifier.notify(f"{connection.id}: connection failed", text, urgent=True)
        await self.refresh()

    def disconnect_vpn(self, connection: VpnConnection) -> asyncio.Task:
        return self.run(self._disconnect(connection))

    async def _disconnect(self, connection: VpnConnection) -> None:
        active = self.active.get(connection.uuid)
        if active is None:
            return
        try:
            await self.nm.deactivate(active.path)
        except NmError as error:
            log.warning("disconnect %s: %s", connection.id, error)
        await self.refresh()

    def show_status(self) -> None:
        if self.status_window is None:
            self.status_window = StatusWindow(refresh=self.status_info)
        self.status_window.show()
        self.status_window.raise_()
        self.status_window.activateWindow()

    def show_connections(self) -> None:
        from gui.connections_window import ConnectionsWindow

        if self.connections_window is None:
            self.connections_window = ConnectionsWindow(self.nm)
        self.connections_window.show_connections(self.state.connections)
        self.connections_window.show()
        self.connections_window.raise_()
        self.connections_window.activateWindow()

    def _tray_activated(self, reason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            if self.state.overall in ("connected", "connecting"):
                self.show_status()
            else:
                self.show_connections()

    # ------------------------------------------------------------------ what the user sees

    def _render(self) -> None:
        fill_menu(self.menu, self.state, self.handlers)
        overall = self.state.overall
        if overall == CONNECTING:
            if not self.animation.isActive():
                self.animation.start()
        else:
            self.animation.stop()
        self.tray.setIcon(icons.icon(overall, self._frame))
        self.tray.setToolTip(self.state.tooltip())

    def _next_frame(self) -> None:
        self._frame += 1
        self.tray.setIcon(icons.icon("connecting", self._frame))

    def status_info(self) -> StatusInfo:
        """The status of the first active (or activating) Cygnet connection."""
        info = StatusInfo()
        active = next((a for a in self.active.values() if a.vpn_state == VPN_ACTIVATED), None) \
            or next(iter(self.active.values()), None)
        if active is None:
            return info
        connection = self.find(active.uuid)
        data = connection.data if connection else {}
        info.name = active.id
        info.state = VPN_STATE_WORDS.get(active.vpn_state, "unknown").capitalize()
        info.gateway = data.get("address", "")
        info.local_identity = data.get("local-identity") or data.get("user", "")
        info.remote_identity = data.get("remote-identity") or info.gateway
        ip4, ip6 = self.ip.get(active.uuid, (IpConfig(), IpConfig()))
        info.ipv4, info.ipv6 = virtual_addresses(ip4.addresses), virtual_addresses(ip6.addresses)
        info.dns = ip4.dns + ip6.dns
        info.domains = list(dict.fromkeys(ip4.domains + ip6.domains))
        info.routes = tunnel_routes(ip4.routes + ip6.routes, info.ipv4 + info.ipv6)
        config = self.plugin_config
        custom = data.get("proposal") == "yes"
        info.ike = config.get("cygnet-ike") or ("as configured: " + ", ".join(split_list(data.get("ike", "")))
                                                 if custom and data.get("ike") else "strongSwan's defaults")
        info.esp = config.get("cygnet-esp") or ("as configured: " + ", ".join(split_list(data.get("esp", "")))
                                                 if custom and data.get("esp") else "strongSwan's defaults")
        info.tundev = config.get("tundev") or find_interface(ip4.addresses + ip6.addresses)
        info.since = self.since.get(active.uuid)
        info.counters = read_counters(info.tundev) if info.tundev else None
        info.banner = active.banner or self.plugin_banner
        info.leaks = config.get("cygnet-leaks") or \
            ("kill switch on" if data.get("cygnet-kill-switch") == "yes" else "")
        return info


VPN_CONNECTING_FIRST = CONNECTING_STATES[0]


def virtual_addresses(addresses: list[str]) -> list[str]:
    """The addresses the gateway assigned (the kernel's link-local IPv6 address left out)."""
    return [a for a in addresses if not ipaddress.ip_interface(a).ip.is_link_local]


def tunnel_routes(routes: list[str], own: list[str]) -> list[str]:
    """The networks sent through the tunnel: each once, without the default route, link-local
    prefixes and the prefix routes of our own addresses."""
    mine = [ipaddress.ip_interface(a).ip for a in own]
    result = []
    for text in dict.fromkeys(routes):
        network = ipaddress.ip_network(text, strict=False)
        if network.prefixlen == 0 or network.network_address.is_link_local:
            continue
        if any(address in network for address in mine if address.version == network.version):
            continue
        result.append(str(network))
    return result


def find_interface(addresses: list[str]) -> str:
    """The interface holding one of these addresses ("10.3.0.1/32"): the VPN's TUN device, when
    the plugin's Config signal (which names it) was sent before the applet started."""
    if not addresses:
        return ""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return ""
    wanted = {a.split("/")[0] for a in addresses}
    with IPRoute() as ipr:
        for message in ipr.get_addr():
            if message.get_attr("IFA_ADDRESS") in wanted:
                links = ipr.get_links(message["index"])
                return links[0].get_attr("IFLA_IFNAME") if links else ""
    return ""


# ---------------------------------------------------------------------------------- main


async def run_applet(app: QApplication) -> int:
    from gui.password_dialog import ask_password
    from gui.secret_agent import SecretAgent

    try:
        nm = await NmClient.connect()
    except Exception as error:
        print(f"cygnet-tray: cannot reach the system bus: {error}", file=sys.stderr)
        return 1
    applet = Applet(nm, agent=SecretAgent(prompt=ask_password))
    try:
        await applet.start()
    except (NmError, RuntimeError) as error:
        print(f"cygnet-tray: NetworkManager: {error}", file=sys.stderr)
        nm.close()
        return 1
    if not QSystemTrayIcon.isSystemTrayAvailable():
        log.warning("no system tray yet: the icon appears when the desktop's tray does")
    # SIGTERM / SIGINT (logout, Ctrl+C) end the applet cleanly. Python runs signal handlers only
    # when it has control, so a timer hands it control now and then inside Qt's loop.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: applet.quit())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    code = await applet.quit_requested
    wake.stop()
    log.info("quitting")
    try:
        await applet.agent.unregister(nm.bus)
    except Exception:  # NetworkManager may be gone already
        pass
    applet.notifier.close()
    nm.close()
    return code


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="cygnet-tray",
                                     description="Tray applet for Cygnet VPN connections in NetworkManager")
    parser.add_argument("--debug", action="store_true", help="log D-Bus traffic decisions")
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        print(ROOT_REFUSAL, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="cygnet-tray: %(levelname)s %(message)s")
    import qasync

    app = QApplication(sys.argv[:1])
    app.setApplicationName("cygnet-tray")
    app.setApplicationDisplayName("Cygnet VPN")
    app.setDesktopFileName("cygnet-tray")
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(icons.icon("cygnet"))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        return loop.run_until_complete(run_applet(app))


if __name__ == "__main__":
    sys.exit(main())
