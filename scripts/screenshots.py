#!/usr/bin/env python3
"""Screenshots of the tray applet for the README: docs/screenshots/*.png.

Starts a virtual X server (Xvfb) with a system tray (trayer), then shows the applet's real
widgets — the tray icon and its menu, the status window, the connection editor (also with an
inline proposal error) and the connections list — filled with a demonstration state (the
addresses and names of the strongSwan testbed), and grabs them from the X screen.

    python scripts/screenshots.py [--out docs/screenshots] [--dark]

Needs: xvfb, trayer, the Qt xcb libraries (scripts/setup-debian.sh installs them) and the gui
extra (PyQt6). Every process it starts is ended by PID before it exits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DISPLAY = ":73"
SCREEN = "1024x720x24"


def start_x(workdir: Path, panel: str) -> list[subprocess.Popen]:
    """Xvfb and trayer (a tray host in the top right corner)."""
    for tool in ("Xvfb", "trayer"):
        if shutil.which(tool) is None:
            sys.exit(f"screenshots: {tool} is missing (apt-get install xvfb trayer)")
    started = []
    socket = Path(f"/tmp/.X11-unix/X{DISPLAY[1:]}")
    xvfb = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", SCREEN, "-nolisten", "tcp", "-noreset"],
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "Xvfb.log", "w"))
    started.append(xvfb)
    deadline = time.monotonic() + 10
    while not socket.exists():
        if xvfb.poll() is not None or time.monotonic() > deadline:
            stop(started)
            sys.exit(f"screenshots: Xvfb did not start (see {workdir / 'Xvfb.log'})")
        time.sleep(0.05)
    env = {**os.environ, "DISPLAY": DISPLAY}
    started.append(subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "percent", "--width", "100",
                                     "--height", "28", "--iconspacing", "4", "--transparent", "true",
                                     "--alpha", "0", "--tint", panel, "--SetDockType", "true"],
                                    env=env, stdout=subprocess.DEVNULL,
                                    stderr=open(workdir / "trayer.log", "w")))
    return started


def stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def demo():
    """The state the screenshots show: two connections, "Office" connected."""
    from gui.connection import VpnConnection
    from gui.menu import TrayState
    from gui.nm_client import VPN_ACTIVATED
    from gui.status import Counters, StatusInfo

    office = VpnConnection(id="Office", uuid="u-office", data={
        "address": "vpn.cygnet.test", "method": "eap", "user": "carol", "virtual": "yes",
        "remote-identity": "vpn.cygnet.test",
        "proposal": "yes", "ike": "aes256gcm16-prfsha384-x25519", "esp": "aes256gcm16",
        "remote-ts": "10.1.0.0/24;fd00:1::/64", "cygnet-domains": "office.cygnet.test"})
    lab = VpnConnection(id="Lab (certificate)", uuid="u-lab", data={
        "address": "198.51.100.1", "method": "cert", "virtual": "yes",
        "usercert": "/home/carol/.local/share/cygnet/lab/cert.pem",
        "userkey": "/home/carol/.local/share/cygnet/lab/key.pem"})
    state = TrayState(connections=[lab, office], vpn_states={"u-office": VPN_ACTIVATED})
    info = StatusInfo(name="Office", state="Connected", gateway="vpn.cygnet.test",
                      local_identity="carol", remote_identity="vpn.cygnet.test",
                      ipv4=["10.3.0.1/32"], ipv6=["fd00:3::1/128"],
                      dns=["10.1.0.53", "10.1.0.54", "fd00:1::53"], domains=["office.cygnet.test"],
                      routes=["10.1.0.0/24", "fd00:1::/64"],
                      ike="as configured: aes256gcm16-prfsha384-x25519",
                      esp="as configured: aes256gcm16", tundev="cygnet0",
                      since=time.time() - 3725,
                      counters=Counters(bytes_in=18_874_368, bytes_out=2_412_544,
                                        packets_in=14_230, packets_out=9_811),
                      banner="Welcome to the Cygnet test office.\nAuthorized users only.")
    return state, info


def dark_palette():
    from PyQt6.QtGui import QColor, QPalette

    palette = QPalette()
    roles = QPalette.ColorRole
    for role, colour in ((roles.Window, "#2b2b2b"), (roles.WindowText, "#e6e6e6"),
                         (roles.Base, "#1e1e1e"), (roles.AlternateBase, "#2b2b2b"),
                         (roles.Text, "#e6e6e6"), (roles.Button, "#353535"),
                         (roles.ButtonText, "#e6e6e6"), (roles.Highlight, "#3d7fc4"),
                         (roles.HighlightedText, "#ffffff"), (roles.ToolTipBase, "#353535"),
                         (roles.ToolTipText, "#e6e6e6"), (roles.PlaceholderText, "#8a8a8a")):
        palette.setColor(role, QColor(colour))
    return palette


def shoot(out: Path, dark: bool) -> list[Path]:
    from PyQt6.QtCore import QPoint, QRect
    from PyQt6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

    from gui import icons
    from gui.connections_window import ConnectionsWindow
    from gui.editor import ConnectionEditor
    from gui.menu import MenuHandlers, fill_menu
    from gui.status import StatusWindow

    app = QApplication([sys.argv[0], "-platform", "xcb"])
    app.setStyle("Fusion")
    if dark:
        app.setPalette(dark_palette())
    suffix = "-dark" if dark else ""
    written = []

    def settle(seconds: float = 0.4) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    def grab(rect: QRect, name: str) -> None:
        settle()
        path = out / f"{name}{suffix}.png"
        app.primaryScreen().grabWindow(0, rect.x(), rect.y(), rect.width(), rect.height()).save(str(path))
        written.append(path)

    state, info = demo()
    deadline = time.monotonic() + 10
    while not QSystemTrayIcon.isSystemTrayAvailable():
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: no system tray appeared (is trayer running?)")
        settle(0.1)

    # 1. The tray icon (connected) with its menu open below it.
    tray = QSystemTrayIcon(icons.icon("connected"))
    menu = QMenu()
    nothing = MenuHandlers(*(lambda *a: None,) * 5)
    fill_menu(menu, state, nothing)
    tray.setContextMenu(menu)
    tray.show()
    settle(1.0)
    icon_rect = tray.geometry()
    if icon_rect.isEmpty():
        icon_rect = QRect(app.primaryScreen().geometry().width() - 30, 0, 28, 28)
    menu.popup(QPoint(icon_rect.right() + 1 - menu.sizeHint().width(), icon_rect.bottom() + 1))
    settle(0.6)
    menu_rect = menu.geometry()
    # The panel across the top, the menu hanging from the icon: nothing of the bare X root shows.
    right = max(menu_rect.right(), icon_rect.right() + 2)
    top_right = QRect(menu_rect.left(), 0, right - menu_rect.left() + 1, menu_rect.bottom() + 1)
    grab(top_right, "tray-menu")
    menu.hide()

    # 2. The four icon states, side by side (for the README's legend).
    for index, name in enumerate(("disconnected", "connecting", "connected", "failed")):
        tray.setIcon(icons.icon(name, 1))
        settle(0.3)
        grab(icon_rect.adjusted(-2, 0, 2, 0), f"icon-{name}")

    # 3. The status window.
    status = StatusWindow()
    status.render(info)
    status.move(40, 60)
    status.show()
    status.activateWindow()
    settle(0.8)
    grab(status.frameGeometry(), "status")
    status.hide()

    # 4. The editor, then with an inline error in the proposals.
    editor = ConnectionEditor(state.connections[1])
    editor.move(40, 60)
    editor.resize(620, editor.sizeHint().height())
    editor.show()
    settle(0.8)
    grab(editor.frameGeometry(), "editor")
    editor.tabs.setCurrentIndex(2)
    grab(editor.frameGeometry(), "editor-network")
    editor.tabs.setCurrentIndex(1)
    editor.fields["ike"].setText("aes256gcm16-prfsha384-x25519, aes128-sha1-modp1024x")
    editor.save()
    settle(0.5)
    grab(editor.frameGeometry(), "editor-error")
    editor.hide()

    # 5. The connections list.
    window = ConnectionsWindow(backend=None)
    window.show_connections(state.connections)
    window.say("Exported to /home/carol/Office.sswan")
    window.move(40, 60)
    window.resize(560, 300)
    window.show()
    settle(0.8)
    grab(window.frameGeometry(), "connections")
    window.hide()
    tray.hide()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--dark", action="store_true", help="a dark palette instead of the light one")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="cygnet-screenshots-"))
    os.environ.update(DISPLAY=DISPLAY, QT_QPA_PLATFORM="xcb", XDG_RUNTIME_DIR=str(workdir))
    os.environ.pop("WAYLAND_DISPLAY", None)
    processes = start_x(workdir, "0x2b2b2b" if args.dark else "0xe4e4e4")  # the panel colour
    try:
        written = shoot(args.out, args.dark)
    finally:
        stop(processes)
        shutil.rmtree(workdir, ignore_errors=True)
    for path in written:
        print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
