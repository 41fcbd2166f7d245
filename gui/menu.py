"""The tray menu, rebuilt from the current state whenever NetworkManager reports a change.

    Connect office                 (one line per Cygnet connection NetworkManager knows:
    Disconnect lab (connected)      Connect, or Disconnect while it is active or activating)
    ───────────
    Edit connections…
    Status…                        (enabled while a connection is active)
    ───────────
    Quit
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from PyQt6.QtWidgets import QMenu

from gui.connection import VpnConnection
from gui.nm_client import CONNECTING_STATES, VPN_ACTIVATED

DISCONNECTED, CONNECTING, CONNECTED, FAILED = "disconnected", "connecting", "connected", "failed"


@dataclass
class TrayState:
    connections: list[VpnConnection] = field(default_factory=list)
    vpn_states: dict[str, int] = field(default_factory=dict)   # uuid -> NMVpnConnectionState
    last_failure: str = ""                                      # cleared by the next attempt

    def state_of(self, connection: VpnConnection) -> str:
        vpn_state = self.vpn_states.get(connection.uuid)
        if vpn_state == VPN_ACTIVATED:
            return CONNECTED
        if vpn_state in CONNECTING_STATES:
            return CONNECTING
        return DISCONNECTED

    @property
    def overall(self) -> str:
        """The icon's state: connected beats connecting beats failed beats disconnected."""
        states = {self.state_of(c) for c in self.connections}
        if CONNECTED in states:
            return CONNECTED
        if CONNECTING in states:
            return CONNECTING
        return FAILED if self.last_failure else DISCONNECTED

    def tooltip(self) -> str:
        active = [f"{c.id}: {self.state_of(c)}" for c in self.connections
                  if self.state_of(c) != DISCONNECTED]
        if active:
            return "Cygnet VPN — " + "; ".join(active)
        if self.last_failure:
            return "Cygnet VPN — failed: " + self.last_failure.splitlines()[0]
        return "Cygnet VPN — not connected"


@dataclass
class MenuHandlers:
    connect: Callable[[VpnConnection], None]
    disconnect: Callable[[VpnConnection], None]
    edit: Callable[[], None]
    status: Callable[[], None]
    quit: Callable[[], None]


def _label(text: str) -> str:
    return text.replace("&", "&&")  # a literal & in a connection name is not a mnemonic


def fill_menu(menu: QMenu, state: TrayState, handlers: MenuHandlers) -> None:
    menu.clear()
    if not state.connections:
        placeholder = menu.addAction("No Cygnet VPN connections")
        placeholder.setEnabled(False)
    for connection in state.connections:
        current = state.state_of(connection)
        if current == DISCONNECTED:
            action = menu.addAction(f"Connect {_label(connection.id)}")
            action.triggered.connect(lambda _=False, c=connection: handlers.connect(c))
        else:
            action = menu.addAction(f"Disconnect {_label(connection.id)} ({current})")
            action.triggered.connect(lambda _=False, c=connection: handlers.disconnect(c))
        action.setObjectName(f"vpn:{connection.uuid}")
    menu.addSeparator()
    menu.addAction("&Edit connections…").triggered.connect(lambda _=False: handlers.edit())
    status = menu.addAction("&Status…")
    status.setEnabled(state.overall in (CONNECTED, CONNECTING))
    status.triggered.connect(lambda _=False: handlers.status())
    menu.addSeparator()
    menu.addAction("&Quit").triggered.connect(lambda _=False: handlers.quit())


def action_texts(menu: QMenu) -> list[str]:
    """The menu as text lines ("-" for a separator, "(disabled)" noted): for tests."""
    lines = []
    for action in menu.actions():
        if action.isSeparator():
            lines.append("-")
        else:
            lines.append(action.text() + ("" if action.isEnabled() else " (disabled)"))
    return lines
