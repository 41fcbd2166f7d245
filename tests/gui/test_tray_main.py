"""cygnet-tray refuses to run as root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check the refusal")
def test_refuses_root_with_a_clear_message():
    result = subprocess.run([sys.executable, "-m", "gui.tray"], capture_output=True, text=True,
                            timeout=60, cwd=str(REPO), env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 2
    assert "refusing to run as root" in result.stderr
    assert "desktop user" in result.stderr


def test_main_refuses_root_in_process(monkeypatch, capsys):
    from gui import tray

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert tray.main([]) == 2
    assert capsys.readouterr().err.startswith("cygnet-tray: refusing to run as root.")


def test_autostart_desktop_file():
    text = (REPO / "gui/data/cygnet-tray.desktop").read_text()
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert text.startswith("[Desktop Entry]\n")
    assert lines["Type"] == "Application" and lines["Exec"] == "cygnet-tray"
    assert lines["X-GNOME-Autostart-enabled"] == "true"
