"""Tray applet tests. Qt runs on the offscreen platform (no display needed); the variable must
be set before pytest-qt's qapp fixture creates the QApplication."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # Qt warns without one

import pytest  # noqa: E402

pytest.importorskip("PyQt6.QtWidgets", reason="the gui extra (PyQt6) is not installed")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed")
