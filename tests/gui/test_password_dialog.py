"""The password prompt the secret agent shows, driven on the real Qt + asyncio loop (qasync)."""

from __future__ import annotations

import asyncio

import pytest
from PyQt6.QtWidgets import QLabel, QLineEdit

from gui.connection import VpnConnection
from gui.password_dialog import PasswordDialog, ask_password

qasync = pytest.importorskip("qasync")

OFFICE = VpnConnection(id="office", data={"address": "gw", "method": "eap", "user": "carol"}, uuid="u-1")


def run_dialog(qapp, retry, answer):
    """ask_password() while a 'user' answers the dialog; returns (result, dialog texts)."""
    seen = {}

    async def scenario():
        task = asyncio.ensure_future(ask_password(OFFICE, retry))
        for _ in range(100):
            await asyncio.sleep(0.01)
            dialogs = [w for w in qapp.topLevelWidgets() if isinstance(w, PasswordDialog) and w.isVisible()]
            if dialogs:
                break
        dialog = dialogs[0]
        seen["labels"] = [label.text() for label in dialog.findChildren(QLabel)]
        seen["echo"] = dialog.password.echoMode()
        answer(dialog)
        return await task

    loop = qasync.QEventLoop(qapp, already_running=False)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(scenario()), seen
    finally:
        asyncio.set_event_loop(None)


def test_prompt_returns_password_and_remember(qapp):
    def answer(dialog):
        dialog.password.setText("typed-secret")
        dialog.remember.setChecked(False)
        dialog.accept()

    result, seen = run_dialog(qapp, retry=False, answer=answer)
    assert result == ("typed-secret", False)
    assert seen["echo"] == QLineEdit.EchoMode.Password
    assert any("needs a password" in text for text in seen["labels"])
    assert "carol" in seen["labels"]


def test_retry_says_the_last_one_was_refused_and_cancel_gives_none(qapp):
    result, seen = run_dialog(qapp, retry=True, answer=lambda dialog: dialog.reject())
    assert result is None
    assert any("refused the last password for “office”" in text for text in seen["labels"])


def test_remember_is_ticked_by_default_and_has_a_mnemonic(qtbot):
    dialog = PasswordDialog(OFFICE)
    qtbot.addWidget(dialog)
    assert dialog.remember.isChecked() and "&" in dialog.remember.text()
