"""“Edit connections…”: the list of Cygnet connections with New, Edit, Duplicate, Delete,
Import (.sswan) and Export (.sswan). Changes go straight to NetworkManager through `backend`
(a gui.nm_client.NmClient: cygnet_connections, add, update, delete)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Callable, Optional

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (QDialogButtonBox, QFileDialog, QHBoxLayout, QInputDialog, QLabel,
                             QLineEdit, QListWidget, QListWidgetItem, QMessageBox, QPushButton,
                             QVBoxLayout, QWidget)

from gui import icons
from gui.connection import ConversionError, VpnConnection, export_sswan, import_sswan
from gui.editor import ConnectionEditor
from gui.tasks import BackgroundTasks

log = logging.getLogger("cygnet.tray.editor")


def material_dir(name: str) -> Path:
    """Where key material from imported .sswan files is kept (mode 0700, the user's own)."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in name) or "imported"
    return Path(data_home) / "cygnet" / "sswan" / safe


class ConnectionsWindow(QWidget):
    def __init__(self, backend, parent=None):
        super().__init__(parent)
        self.backend = backend
        self.connections: list[VpnConnection] = []
        self.tasks = BackgroundTasks(lambda error: self.say(f"NetworkManager refused: {error}", error=True))
        self.editor: Optional[ConnectionEditor] = None   # the open editor, if any
        self.confirm: Optional[QMessageBox] = None       # the open "Delete?" question, if any
        self.setWindowTitle("Cygnet VPN connections")
        self.setWindowIcon(icons.icon("cygnet"))

        layout = QHBoxLayout(self)
        left = QVBoxLayout()
        caption = QLabel("&Connections:")
        self.list = QListWidget()
        caption.setBuddy(self.list)
        self.list.itemActivated.connect(lambda _item: self.edit())
        self.list.currentRowChanged.connect(self._selection_changed)
        left.addWidget(caption)
        left.addWidget(self.list)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        left.addWidget(self.message)
        layout.addLayout(left, 1)

        buttons = QVBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for key, text, handler in (("new", "&New…", self.new), ("edit", "&Edit…", self.edit),
                                   ("duplicate", "D&uplicate", self.duplicate),
                                   ("delete", "&Delete", self.delete),
                                   ("import", "&Import .sswan…", self.import_file),
                                   ("export", "E&xport .sswan…", self.export_file)):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, h=handler: h())
            buttons.addWidget(button)
            self.buttons[key] = button
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.close)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self._selection_changed(-1)

    # ------------------------------------------------------------------ list

    def run(self, coroutine) -> asyncio.Task:
        return self.tasks.run(coroutine)

    async def reload(self) -> None:
        self.connections = await self.backend.cygnet_connections()
        self.show_connections(self.connections)

    def show_connections(self, connections: list[VpnConnection]) -> None:
        current = self.selected()
        self.connections = list(connections)
        self.list.clear()
        for connection in self.connections:
            item = QListWidgetItem(f"{connection.id} — {connection.gateway or 'no gateway'}")
            item.setData(Qt.ItemDataRole.UserRole, connection.uuid)
            self.list.addItem(item)
            if current is not None and connection.uuid == current.uuid:
                self.list.setCurrentItem(item)
        if self.list.currentRow() < 0 and self.connections:
            self.list.setCurrentRow(0)
        self._selection_changed(self.list.currentRow())

    def selected(self) -> Optional[VpnConnection]:
        row = self.list.currentRow()
        return self.connections[row] if 0 <= row < len(self.connections) else None

    def _selection_changed(self, row: int) -> None:
        for key in ("edit", "duplicate", "delete", "export"):
            self.buttons[key].setEnabled(row >= 0)

    def say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #b3261e;" if error else "")
        self.message.setText(text)

    # ------------------------------------------------------------------ actions

    def open_editor(self, connection: VpnConnection, title: str, saved: Callable) -> ConnectionEditor:
        """Show the editor (window-modal, without blocking the event loop); `saved(edited)`
        runs when the user saves."""
        editor = ConnectionEditor(connection, self, title)
        editor.setWindowModality(Qt.WindowModality.WindowModal)

        def finished(result: int) -> None:
            if result == ConnectionEditor.DialogCode.Accepted:
                edited = editor.connection()
                if editor.key_passphrase():  # the key's passphrase: the secret agent's keyring
                    from gui.secret_agent import KeyringStore

                    self.run(KeyringStore().set(edited.keyring_user, editor.key_passphrase()))
                saved(edited)
            editor.deleteLater()
            self.editor = None

        editor.finished.connect(finished)
        self.editor = editor
        editor.open()
        return editor

    def new(self) -> None:
        self.open_editor(VpnConnection(id="New VPN", data={"method": "eap", "virtual": "yes"}),
                         "New VPN connection", lambda edited: self.run(self._add(edited)))

    def edit(self) -> None:
        connection = self.selected()
        if connection is not None:
            self.open_editor(connection, "", lambda edited: self.run(self._update(edited)))

    def duplicate(self) -> None:
        connection = self.selected()
        if connection is not None:
            self.run(self._add(connection.duplicate(f"{connection.id} (copy)")))

    def delete(self) -> None:
        connection = self.selected()
        if connection is None:
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Delete connection",
                          f"Delete the VPN connection “{connection.id}”?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)

        def finished(_result: int) -> None:
            if box.clickedButton() is box.button(QMessageBox.StandardButton.Yes):
                self.run(self._delete(connection))
            box.deleteLater()
            self.confirm = None

        box.finished.connect(finished)
        self.confirm = box
        box.open()

    def import_file(self, path: Optional[str] = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import a strongSwan profile", "",
                                                  "strongSwan profiles (*.sswan);;All files (*)")
        if not path:
            return
        try:
            connection, warnings = import_sswan(Path(path), material_dir(Path(path).stem), self.ask_password)
        except ConversionError as error:
            self.say(str(error), error=True)
            return
        self.open_editor(connection, "Imported VPN connection", lambda edited: self.run(self._add(edited)))
        if warnings:
            self.say("Not imported: " + "; ".join(w.split(": ", 1)[-1] for w in warnings))

    def ask_password(self, prompt: str) -> str:
        text, ok = QInputDialog.getText(self, "Password", f"Password for {prompt}:",
                                        QLineEdit.EchoMode.Password)
        return text if ok else ""

    def export_file(self, path: Optional[str] = None) -> None:
        connection = self.selected()
        if connection is None:
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export as strongSwan profile",
                                                  f"{connection.id}.sswan", "strongSwan profiles (*.sswan)")
        if not path:
            return
        try:
            write_sswan(connection, Path(path))
        except (ConversionError, OSError, ValueError) as error:
            self.say(f"Cannot export: {error}", error=True)
            return
        self.say(f"Exported to {path}")

    async def _add(self, connection: VpnConnection) -> None:
        await self.backend.add(connection)
        self.say(f"Added “{connection.id}”.")
        await self.reload()

    async def _update(self, connection: VpnConnection) -> None:
        await self.backend.update(connection)
        self.say(f"Saved “{connection.id}”.")
        await self.reload()

    async def _delete(self, connection: VpnConnection) -> None:
        await self.backend.delete(connection)
        self.say(f"Deleted “{connection.id}”.")
        await self.reload()


def write_sswan(connection: VpnConnection, path: Path) -> None:
    """Export; mode 0600 because a certificate connection's file holds the private key."""
    text = json.dumps(export_sswan(connection), indent=2) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
