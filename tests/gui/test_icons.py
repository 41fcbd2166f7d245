"""The tray icon's look per state, from Cygnet's own SVGs, in the palette's colours."""

from __future__ import annotations

from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication

from gui import icons


def image(name, frame=0, size=32):
    return icons.icon(name, frame).pixmap(size, size).toImage()


def test_each_state_has_its_own_icon(qapp):
    images = {name: image(name) for name in ("disconnected", "connected", "failed", "connecting")}
    for name, img in images.items():
        assert not img.isNull(), name
    names = list(images)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert images[a] != images[b], (a, b)


def test_connecting_is_animated(qapp):
    frames = [image("connecting", n) for n in range(icons.CONNECTING_FRAMES)]
    assert len({f.cacheKey() for f in frames}) == len(frames)
    assert frames[0] != frames[1] and frames[1] != frames[2]
    assert image("connecting", icons.CONNECTING_FRAMES) == frames[0]


def test_outline_follows_the_palette(qapp):
    original = QApplication.palette()
    try:
        for text_colour in ("#000000", "#ffffff"):
            palette = QPalette(original)
            palette.setColor(QPalette.ColorRole.WindowText, QColor(text_colour))
            QApplication.setPalette(palette)
            assert icons.outline_colour() == text_colour
            # The disconnected icon is drawn in the outline colour only.
            img = image("disconnected", size=64)
            opaque = [img.pixelColor(x, y) for x in range(64) for y in range(64)
                      if img.pixelColor(x, y).alpha() == 255]
            assert opaque and all(c.name() == text_colour for c in opaque)
    finally:
        QApplication.setPalette(original)
