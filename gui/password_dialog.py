"""The password prompt the secret agent shows when the keyring has nothing (or a wrong one)."""

from __future__ import annotations

import asyncio
from typing import Optional

from PyQt6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit,
                             QVBoxLayout)

from gui import icons
from gui.connection import VpnConnection


class PasswordDialog(QDialog):
    def __init__(self, connection: VpnConnection, retry: bool = False, parent=None):
        super().__init__(parent)
        self.setWindowTitle("VPN password")
        self.setWindowIcon(icons.icon("cygnet"))
        what = connection.secret_kind if connection.secret_kind != "none" else "password"
        if retry:
            text = f"The gateway refused the last {what} for “{connection.id}”. Try again:"
        else:
            text = f"The VPN connection “{connection.id}” needs a {what}."
        layout = QVBoxLayout(self)
        message = QLabel(text)
        message.setWordWrap(True)
        layout.addWidget(message)
        form = QFormLayout()
        user = connection.data.get("user")
        if user and connection.method == "eap":
            form.addRow("User name:", QLabel(user))
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        caption = QLabel(f"&{what[0].upper()}{what[1:]}:")
        caption.setBuddy(self.password)
        form.addRow(caption, self.password)
        layout.addLayout(form)
        self.remember = QCheckBox("&Remember in the keyring")
        self.remember.setChecked(True)
        layout.addWidget(self.remember)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.password.setFocus()


async def ask_password(connection: VpnConnection, retry: bool) -> Optional[tuple[str, bool]]:
    """Show the dialog without blocking the event loop; (password, remember) or None."""
    dialog = PasswordDialog(connection, retry)
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    dialog.finished.connect(lambda result: done.done() or done.set_result(result))
    dialog.open()
    dialog.raise_()
    dialog.activateWindow()
    try:
        result = await done
        if result != QDialog.DialogCode.Accepted or not dialog.password.text():
            return None
        return dialog.password.text(), dialog.remember.isChecked()
    finally:
        dialog.password.clear()
        dialog.deleteLater()
