"""The tray menu and icon state for each combination of connections and VPN states."""

from __future__ import annotations

from PyQt6.QtWidgets import QMenu

from gui.connection import VpnConnection
from gui.menu import MenuHandlers, TrayState, action_texts, fill_menu
from gui.nm_client import VPN_ACTIVATED, VPN_CONNECT, VPN_NEED_AUTH


def connections():
    return [VpnConnection(id="Lab & Co", data={"address": "lab.example"}, uuid="u-lab"),
            VpnConnection(id="office", data={"address": "vpn.example"}, uuid="u-office")]


class Recorder:
    def __init__(self):
        self.calls = []

    def handlers(self):
        return MenuHandlers(connect=lambda c: self.calls.append(("connect", c.id)),
                            disconnect=lambda c: self.calls.append(("disconnect", c.id)),
                            edit=lambda: self.calls.append(("edit",)),
                            status=lambda: self.calls.append(("status",)),
                            quit=lambda: self.calls.append(("quit",)))


def build(qtbot, state):
    menu = QMenu()
    recorder = Recorder()
    fill_menu(menu, state, recorder.handlers())
    return menu, recorder


def test_no_connections(qtbot):
    menu, _ = build(qtbot, TrayState())
    assert action_texts(menu) == ["No Cygnet VPN connections (disabled)", "-", "&Edit connections…",
                                  "&Status… (disabled)", "-", "&Quit"]
    assert TrayState().overall == "disconnected"


def test_disconnected_lists_connect_for_each(qtbot):
    state = TrayState(connections=connections())
    menu, recorder = build(qtbot, state)
    assert action_texts(menu) == ["Connect Lab && Co", "Connect office", "-", "&Edit connections…",
                                  "&Status… (disabled)", "-", "&Quit"]
    menu.actions()[1].trigger()
    menu.actions()[0].trigger()
    assert recorder.calls == [("connect", "office"), ("connect", "Lab & Co")]
    assert state.tooltip() == "Cygnet VPN — not connected"


def test_connecting_offers_disconnect_and_status(qtbot):
    state = TrayState(connections=connections(), vpn_states={"u-office": VPN_NEED_AUTH})
    menu, recorder = build(qtbot, state)
    assert action_texts(menu)[:2] == ["Connect Lab && Co", "Disconnect office (connecting)"]
    assert "&Status…" in action_texts(menu)
    assert state.overall == "connecting"
    menu.actions()[1].trigger()
    assert recorder.calls == [("disconnect", "office")]


def test_connected(qtbot):
    state = TrayState(connections=connections(),
                      vpn_states={"u-office": VPN_ACTIVATED, "u-lab": VPN_CONNECT})
    menu, recorder = build(qtbot, state)
    assert action_texts(menu)[:2] == ["Disconnect Lab && Co (connecting)", "Disconnect office (connected)"]
    assert state.overall == "connected"
    assert state.tooltip() == "Cygnet VPN — Lab & Co: connecting; office: connected"
    for action in menu.actions():
        if action.text() in ("&Edit connections…", "&Status…", "&Quit"):
            action.trigger()
    assert recorder.calls == [("edit",), ("status",), ("quit",)]


def test_failed_shows_until_the_next_attempt(qtbot):
    state = TrayState(connections=connections(), last_failure="The gateway could not be reached.\nmore")
    menu, _ = build(qtbot, state)
    assert state.overall == "failed"
    assert state.tooltip() == "Cygnet VPN — failed: The gateway could not be reached."
    assert "&Status… (disabled)" in action_texts(menu)
    state.vpn_states["u-office"] = VPN_CONNECT
    assert state.overall == "connecting"


def test_every_menu_entry_has_a_mnemonic_or_is_a_connection(qtbot):
    menu, _ = build(qtbot, TrayState(connections=connections()))
    fixed = [a.text() for a in menu.actions() if not a.isSeparator() and not a.objectName()]
    assert all("&" in text for text in fixed if "No Cygnet" not in text)
