"""Desktop notifications reach a real notification server (dunst, on an Xvfb display and a
private session bus); without one they fall back to the log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.gui.desktop_session import DesktopSession

REPO = Path(__file__).resolve().parents[2]
DISPLAY = ":74"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(p) for p in ("dunst", "dunstctl", "Xvfb", "setpriv",
                                                          "gnome-keyring-daemon")),
    reason="needs root, dunst, Xvfb, gnome-keyring")


@pytest.fixture
def session():
    folder = tempfile.mkdtemp(prefix="cygnet-notify-")
    os.chmod(folder, 0o755)
    xvfb = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{DISPLAY[1:]}").exists():
            assert xvfb.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.05)
        with DesktopSession(Path(folder) / "session", user="nobody") as desktop:
            desktop.env["DISPLAY"] = DISPLAY
            try:
                desktop.python_argv = desktop.python()
            except PermissionError as error:
                pytest.skip(str(error))
            yield desktop
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def probe(session, *args):
    result = session.run([*session.python_argv, "-m", "tests.gui.notify_probe", *args], cwd=str(REPO))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_failure_notification_reaches_the_notification_server(session):
    dunst = session.popen(["dunst"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while session.run(["dunstctl", "is-paused"]).returncode != 0:
        assert dunst.poll() is None and time.monotonic() < deadline, "dunst did not start"
        time.sleep(0.1)

    body = "The gateway refused the login: wrong user name or password.\nauthentication failed"
    assert probe(session, "office: connection failed", body, "--urgent") == {"via": "notifications"}
    assert probe(session, "Connected to office", "Address 10.3.0.1/32") == {"via": "notifications"}

    session.run(["dunstctl", "close-all"])
    time.sleep(0.3)
    history = {n["summary"]["data"]: n for n in
               json.loads(session.run(["dunstctl", "history"]).stdout)["data"][0]}
    failure, connected = history["office: connection failed"], history["Connected to office"]
    assert failure["appname"]["data"] == "Cygnet VPN"
    assert failure["body"]["data"] == body
    # Urgency shows in dunst's timeouts: critical notifications stay until dismissed (0).
    assert failure["timeout"]["data"] == 0 and connected["timeout"]["data"] > 0


def test_without_a_notification_server_the_log_says_it(session):
    assert probe(session, "Connected to office", "Address 10.3.0.1/32") == {"via": "log"}
