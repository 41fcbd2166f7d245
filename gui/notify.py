"""Desktop notifications: org.freedesktop.Notifications on the session bus when a notification
server runs there; otherwise the tray icon's balloon; otherwise only the log."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

log = logging.getLogger("cygnet.tray.notify")

NOTIFICATIONS = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"


@dataclass
class Notice:
    summary: str
    body: str
    urgent: bool = False
    via: str = ""        # "notifications", "balloon" or "log"


class Notifier:
    def __init__(self, tray=None):
        self.tray = tray                     # a QSystemTrayIcon, for the balloon fallback
        self.bus: Optional[MessageBus] = None
        self.sent: list[Notice] = []         # what the user was told, newest last
        self._replaces = 0

    async def start(self) -> None:
        try:
            self.bus = await MessageBus(bus_type=BusType.SESSION).connect()
        except Exception as error:  # no session bus (DBUS_SESSION_BUS_ADDRESS unset, …)
            log.info("no session bus (%s): notifications use the tray balloon", type(error).__name__)
            self.bus = None

    def close(self) -> None:
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None

    async def notify(self, summary: str, body: str, urgent: bool = False, icon: str = "") -> Notice:
        notice = Notice(summary, body, urgent)
        if self.bus is not None and await self._send(notice, icon):
            notice.via = "notifications"
        elif self._balloon_possible():
            from PyQt6.QtWidgets import QSystemTrayIcon

            kind = QSystemTrayIcon.MessageIcon.Critical if urgent else QSystemTrayIcon.MessageIcon.Information
            self.tray.showMessage(summary, body, kind, 8000)
            notice.via = "balloon"
        else:
            notice.via = "log"
        log.info("%s: %s", summary, body.replace("\n", " — "))
        self.sent.append(notice)
        return notice

    def _balloon_possible(self) -> bool:
        from PyQt6.QtWidgets import QSystemTrayIcon

        return (self.tray is not None and QSystemTrayIcon.isSystemTrayAvailable()
                and self.tray.isVisible() and self.tray.supportsMessages())

    async def _send(self, notice: Notice, icon: str) -> bool:
        from dbus_fast import Variant

        hints = {"urgency": Variant("y", 2 if notice.urgent else 1),
                 "desktop-entry": Variant("s", "cygnet-tray")}
        reply = await self.bus.call(Message(
            destination=NOTIFICATIONS, path=NOTIFICATIONS_PATH, interface=NOTIFICATIONS,
            member="Notify", signature="susssasa{sv}i",
            body=["Cygnet VPN", self._replaces, icon, notice.summary, notice.body, [], hints, -1]))
        if reply.message_type == MessageType.ERROR:
            return False
        self._replaces = reply.body[0]
        return True
