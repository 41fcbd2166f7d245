"""Runs the real tray applet (gui.tray.Applet, its NM client and secret agent, offscreen Qt) and
lets a test drive it like a user, one command per stdin line, one JSON answer per stdout line:

    menu                         -> {"menu": ["Connect office", "-", ...]}
    trigger TEXT                 -> {"triggered": TEXT}        (a menu entry, as a click would)
    wait NAME STATE [SECONDS]    -> {"state": STATE}           (connected, connecting, disconnected)
    status                       -> {"status": {label: value}, "text": "..."} (opens the window)
    notices                      -> {"notices": [[summary, body, via], ...]}
    add JSON                     -> {"path": ..., "uuid": ...}  (Settings.AddConnection)
    edit NAME JSON               -> {"done": true}             (Edit…, type into fields, Save: Update)
    import PATH                  -> {"done": true}             (Import .sswan…, Save: AddConnection)
    duplicate NAME               -> {"done": true}             (the window's Duplicate button)
    delete NAME                  -> {"done": true}             (Delete, answer Yes: Connection.Delete)
    connections                  -> {"connections": [{"id":..., "uuid":..., "data": {...}}]}
    agent                        -> {"requests": N}            (GetSecrets answered)
    icons                        -> {"icons": [[state, animated], ...]}  (the tray icon's changes)
    quit

It runs as the unprivileged test user, inside the NetworkManager sandbox's namespaces, on the
sandbox's system bus; the keyring is the session's Secret Service.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


def main() -> int:
    import qasync
    from PyQt6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        return loop.run_until_complete(drive())


async def drive() -> int:
    from gui.connection import VpnConnection
    from gui.nm_client import NmClient
    from gui.secret_agent import SecretAgent
    from gui.tray import Applet
    from gui.status import rows

    nm = await NmClient.connect()
    agent = SecretAgent(prompt=None)
    applet = Applet(nm, agent=agent)
    await applet.start()
    loop = asyncio.get_running_loop()

    def say(obj) -> None:
        print(json.dumps(obj), flush=True)

    def connection(name: str) -> VpnConnection:
        found = applet.find(name)
        if found is None:
            raise LookupError(f"no connection {name!r}")
        return found

    def windows():
        if applet.connections_window is None:
            applet.show_connections()
        return applet.connections_window

    async def save(window) -> None:
        editor = window.editor
        editor.buttons.button(editor.buttons.StandardButton.Save).click()
        if window.editor is not None:  # still open: the editor refused what it was given
            errors = {k: editor.error_text(k) for k in editor.errors if editor.error_text(k)}
            raise ValueError(f"editor refused: {errors}")
        await asyncio.gather(*window.tasks)
        await applet.refresh()

    # What the tray icon showed, as it changed: [overall state, animated?] transitions.
    from PyQt6.QtCore import QTimer

    icon_history: list[list] = []

    def record_icon() -> None:
        now = [applet.state.overall, applet.animation.isActive()]
        if not icon_history or icon_history[-1] != now:
            icon_history.append(now)

    recorder = QTimer()
    recorder.timeout.connect(record_icon)
    recorder.start(10)

    say({"ready": True})
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command, _, rest = line.strip().partition(" ")
        try:
            if command == "quit":
                break
            elif command == "menu":
                say({"menu": [("-" if a.isSeparator() else a.text()) for a in applet.menu.actions()]})
            elif command == "trigger":
                action = next(a for a in applet.menu.actions() if a.text() == rest)
                action.trigger()
                say({"triggered": rest})
            elif command == "wait":
                words = rest.split(" ")
                seconds = float(words.pop()) if words[-1].replace(".", "").isdigit() else 60.0
                state, name = words.pop(), " ".join(words)
                deadline = time.monotonic() + seconds
                while applet.state.state_of(connection(name)) != state:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{name} is {applet.state.state_of(connection(name))}, "
                                           f"not {state}")
                    await asyncio.sleep(0.05)
                say({"state": state})
            elif command == "status":
                applet.show_status()
                window = applet.status_window
                await asyncio.sleep(0.1)
                window.tick()
                say({"status": {label: window.value(label) for label, _ in rows(window.info)},
                     "banner": window.banner.toPlainText(), "text": window.text()})
            elif command == "failure":  # what the plugin last said about a failure
                say({"plugin_failure": applet.plugin_failure, "kind": applet.plugin_failure_kind,
                     "message": applet.plugin_message})
            elif command == "notices":
                say({"notices": [[n.summary, n.body, n.via] for n in applet.notifier.sent]})
            # Editor operations go through the connections window, as its buttons do once the
            # editor dialog is saved (the dialogs themselves are tested offscreen).
            elif command == "add":
                spec = json.loads(rest)
                new = VpnConnection(id=spec["id"], data=spec["data"])
                await windows()._add(new)
                await applet.refresh()
                say({"path": new.path, "uuid": new.uuid, "message": windows().message.text()})
            elif command == "edit":
                # Edit… → type into the editor's fields → Save, as a user would.
                name, _, text = rest.partition(" ")
                window = windows()
                window.list.setCurrentRow([c.id for c in window.connections].index(name))
                window.edit()
                for key, value in json.loads(text).items():
                    window.editor.fields[key].setText(value)
                await save(window)
                say({"done": True, "message": window.message.text()})
            elif command == "import":
                # Import .sswan… → the editor shows the imported connection → Save.
                window = windows()
                window.import_file(rest)
                if window.editor is None:
                    raise RuntimeError(window.message.text())
                await save(window)
                say({"done": True, "message": window.message.text()})
            elif command == "duplicate":
                window = windows()
                window.list.setCurrentRow([c.id for c in window.connections].index(rest))
                window.duplicate()
                await asyncio.gather(*window.tasks)
                await applet.refresh()
                say({"done": True, "message": window.message.text()})
            elif command == "delete":
                # Delete → "Delete the VPN connection …?" → Yes.
                window = windows()
                window.list.setCurrentRow([c.id for c in window.connections].index(rest))
                window.delete()
                window.confirm.button(window.confirm.StandardButton.Yes).click()
                await asyncio.gather(*window.tasks)
                await applet.refresh()
                say({"done": True, "message": window.message.text()})
            elif command == "connections":
                await applet.refresh()
                say({"connections": [{"id": c.id, "uuid": c.uuid, "data": c.data}
                                     for c in applet.state.connections]})
            elif command == "icons":
                say({"icons": icon_history})
            elif command == "agent":
                say({"requests": agent.requests})
            else:
                say({"error": f"unknown command {command!r}"})
        except Exception as error:  # the test sees it and fails with the text
            say({"error": f"{type(error).__name__}: {error}"})
    applet.notifier.close()
    nm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
