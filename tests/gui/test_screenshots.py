"""The screenshot run (scripts/screenshots.py) under Xvfb with trayer as the tray host."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PyQt6.QtGui import QImage

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("trayer")),
                                reason="needs xvfb and trayer (scripts/setup-debian.sh)")

EXPECTED = ("tray-menu", "icon-disconnected", "icon-connecting", "icon-connected", "icon-failed",
            "status", "editor", "editor-network", "editor-error", "connections")


def test_screenshot_run_writes_every_image(tmp_path, qapp):
    result = subprocess.run([sys.executable, str(REPO / "scripts/screenshots.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    for name in EXPECTED:
        image = QImage(str(tmp_path / f"{name}.png"))
        assert not image.isNull(), name
    menu = QImage(str(tmp_path / "tray-menu.png"))
    assert menu.width() > 150 and menu.height() > 100          # the open menu, not just the icon
    # The tray host really shows the (green) connected icon: it is in the top right corner.
    greens = [menu.pixelColor(x, y) for x in range(menu.width() - 30, menu.width())
              for y in range(0, 28)]
    assert any(c.green() > 120 and c.red() < 100 and c.blue() < 120 for c in greens)
    editor = QImage(str(tmp_path / "editor.png"))
    assert editor.width() >= 600
