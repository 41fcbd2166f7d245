"""The status window: what the active Cygnet connection looks like right now.

`StatusInfo` is filled by the tray (gui/tray.py) from NetworkManager (active connection, its
IP4Config/IP6Config, the VPN connection's banner), the VPN plugin's Config signal (tundev,
negotiated algorithms when the plugin reports them) and the TUN device's counters in
/sys/class/net/<tundev>/statistics. The window only renders it; every value is selectable and
"Copy" puts the whole text on the clipboard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PyQt6.QtWidgets import (QDialogButtonBox, QFormLayout, QGroupBox, QLabel, QPlainTextEdit,
                             QPushButton, QVBoxLayout, QWidget)

from gui import icons

SYSFS_NET = Path("/sys/class/net")


@dataclass
class Counters:
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0


def read_counters(tundev: str, root: Path = SYSFS_NET) -> Optional[Counters]:
    """The TUN device's counters: what it received is what came in through the tunnel."""
    stats = root / tundev / "statistics"
    try:
        value = {name: int((stats / name).read_text()) for name in
                 ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")}
    except (OSError, ValueError):
        return None
    return Counters(bytes_in=value["rx_bytes"], bytes_out=value["tx_bytes"],
                    packets_in=value["rx_packets"], packets_out=value["tx_packets"])


@dataclass
class StatusInfo:
    name: str = ""
    state: str = "Disconnected"
    gateway: str = ""
    local_identity: str = ""
    remote_identity: str = ""
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    ike: str = ""                 # negotiated (from the plugin) or "as configured"
    esp: str = ""
    tundev: str = ""
    since: Optional[float] = None  # wall-clock time the tunnel came up
    counters: Optional[Counters] = None
    banner: str = ""
    leaks: str = ""               # kill switch / blocked families (client/killswitch.py)


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def human_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rows(info: StatusInfo, now: Optional[float] = None) -> list[tuple[str, str]]:
    """(label, value) lines: the window's form and the copied text."""
    now = time.time() if now is None else now
    c = info.counters
    return [
        ("Connection", info.name or "—"),
        ("State", info.state),
        ("Gateway", info.gateway or "—"),
        ("Local identity", info.local_identity or "—"),
        ("Gateway identity", info.remote_identity or "—"),
        ("Virtual IPv4", ", ".join(info.ipv4) or "—"),
        ("Virtual IPv6", ", ".join(info.ipv6) or "—"),
        ("DNS servers", ", ".join(info.dns) or "—"),
        ("DNS domains", ", ".join(info.domains) or "—"),
        ("Routes", ", ".join(info.routes) or "all traffic"),
        ("IKE", info.ike or "—"),
        ("ESP", info.esp or "—"),
        ("Interface", info.tundev or "—"),
        ("Leak protection", info.leaks or "—"),
        ("Time up", human_duration(now - info.since) if info.since else "—"),
        ("Received", f"{human_bytes(c.bytes_in)} ({c.packets_in} packets)" if c else "—"),
        ("Sent", f"{human_bytes(c.bytes_out)} ({c.packets_out} packets)" if c else "—"),
    ]


def as_text(info: StatusInfo, now: Optional[float] = None) -> str:
    lines = [f"{label}: {value}" for label, value in rows(info, now)]
    if info.banner:
        lines += ["", "Gateway message:", info.banner]
    return "\n".join(lines) + "\n"


class StatusWindow(QWidget):
    """Shows a StatusInfo; `refresh` (called every second while visible) returns a fresh one."""

    def __init__(self, refresh: Optional[Callable[[], Optional[StatusInfo]]] = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Cygnet VPN status")
        self.setWindowIcon(icons.icon("connected"))
        self.refresh = refresh
        self.info = StatusInfo()
        self._values: dict[str, QLabel] = {}

        layout = QVBoxLayout(self)
        details = QGroupBox("Active connection")
        form = QFormLayout(details)
        for label, _ in rows(self.info):
            value = QLabel()
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                          | Qt.TextInteractionFlag.TextSelectableByKeyboard)
            value.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # reachable with Tab, copyable
            value.setObjectName(label)
            form.addRow(f"{label}:", value)
            self._values[label] = value
        layout.addWidget(details)

        self.banner_box = QGroupBox("Message from the gateway")
        banner_layout = QVBoxLayout(self.banner_box)
        self.banner = QPlainTextEdit()
        self.banner.setReadOnly(True)
        self.banner.setMaximumHeight(90)
        banner_layout.addWidget(self.banner)
        layout.addWidget(self.banner_box)

        buttons = QDialogButtonBox()
        self.copy_button = QPushButton("&Copy")
        self.copy_button.setToolTip("Copy all of this as text")
        self.copy_button.clicked.connect(self.copy)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(self.close)
        layout.addWidget(buttons)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Copy), self, activated=self.copy)
        QShortcut(QKeySequence("Escape"), self, activated=self.close)

        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.tick)
        self.render(self.info)

    def value(self, label: str) -> str:
        return self._values[label].text()

    def render(self, info: StatusInfo) -> None:
        self.info = info
        for label, text in rows(info):
            self._values[label].setText(text)
        self.banner.setPlainText(info.banner)
        self.banner_box.setVisible(bool(info.banner))

    def text(self) -> str:
        return as_text(self.info)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def tick(self) -> None:
        if self.refresh is not None:
            info = self.refresh()
            if info is not None:
                self.render(info)

    def showEvent(self, event) -> None:
        self.copy_button.setFocus()
        self.timer.start()
        self.tick()
        super().showEvent(event)

    def hideEvent(self, event) -> None:
        self.timer.stop()
        super().hideEvent(event)
