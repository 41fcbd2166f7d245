"""Cygnet's own SVG icons (gui/icons/*.svg), drawn in the desktop palette's colours.

Outlines in the SVGs are `currentColor`; here it becomes the palette's window-text colour, so
the icons read on a light and on a dark panel alike (and change when the palette does).
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QByteArray, QRectF, Qt
from PyQt6.QtGui import QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PyQt6.QtSvg import QSvgRenderer

ICON_DIR = Path(__file__).parent / "icons"
STATES = ("disconnected", "connecting", "connected", "failed")
CONNECTING_FRAMES = 4
SIZES = (16, 22, 24, 32, 48, 64)


def svg_path(name: str) -> Path:
    return ICON_DIR / f"{name}.svg"


def outline_colour() -> str:
    app = QGuiApplication.instance()
    if app is None:
        return "#000000"
    return app.palette().color(QPalette.ColorRole.WindowText).name()


def icon(name: str, frame: int = 0) -> QIcon:
    """QIcon for a state ("connecting" takes an animation frame) or "cygnet"."""
    if name == "connecting":
        name = f"connecting-{frame % CONNECTING_FRAMES}"
    text = svg_path(name).read_text().replace("currentColor", outline_colour())
    renderer = QSvgRenderer(QByteArray(text.encode()))
    result = QIcon()
    for size in SIZES:
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        result.addPixmap(pixmap)
    return result
