"""A throw-away desktop session for one user: its own session bus (dbus-daemon) and an unlocked
gnome-keyring Secret Service on it, in private XDG folders. Everything started here is ended
by PID in close().

    with DesktopSession(tmp_dir, user="nobody") as session:
        subprocess.run(session.argv(["python", "..."]), env=session.env)

`prefix` (e.g. the NetworkManager sandbox's nsenter argv) is put before every command, so the
session can live inside the sandbox's namespaces; `user` runs everything as that user
(setpriv), never as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence

KEYRING_PASSWORD = "cygnet-test-keyring"


class DesktopSession:
    def __init__(self, workdir: Path, user: Optional[str] = None, prefix: Sequence[str] = ()):
        self.workdir = Path(workdir)
        self.user = user
        self.prefix = list(prefix)
        self.processes: list[subprocess.Popen] = []
        entry = pwd.getpwnam(user) if user else pwd.getpwuid(os.getuid())
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.home = self.workdir / "home"
        self.runtime = self.workdir / "runtime"
        self.bus_address = f"unix:path={self.runtime}/bus"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home), "USER": entry.pw_name, "LOGNAME": entry.pw_name,
            "XDG_RUNTIME_DIR": str(self.runtime), "XDG_DATA_HOME": str(self.home / ".local/share"),
            "XDG_CONFIG_HOME": str(self.home / ".config"), "XDG_CACHE_HOME": str(self.home / ".cache"),
            "DBUS_SESSION_BUS_ADDRESS": self.bus_address,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
            "QT_QPA_PLATFORM": "offscreen", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
        }

    def argv(self, command: Sequence[str]) -> list[str]:
        drop = []
        if self.user:  # the user's own ids, no supplementary groups, only the session's variables
            drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--",
                    "env", "-i", *(f"{k}={v}" for k, v in self.env.items())]
        return [*self.prefix, *drop, *command]

    def python(self) -> list[str]:
        """A Python the session's user may run, with this project and its virtualenv's packages.
        The virtualenv's interpreter may live where only root can reach it (e.g. under /root);
        then the system's python3 of the same version runs with the virtualenv's site-packages."""
        import sys
        import sysconfig

        project = Path(__file__).resolve().parents[2]
        if self.run(["test", "-r", str(project / "gui" / "tray.py")], timeout=30).returncode != 0:
            raise PermissionError(f"{self.user} cannot read {project}: the project must be in a folder "
                                  "others may enter (e.g. not under /root)")
        if self.run([sys.executable, "-c", "pass"], timeout=30).returncode == 0:
            return [sys.executable]
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        system = shutil.which(version, path="/usr/bin:/bin")
        if system is None:
            raise RuntimeError(f"{sys.executable} is not executable by {self.user} and there is no "
                               f"/usr/bin/{version}")
        self.env["PYTHONPATH"] = os.pathsep.join([str(project), sysconfig.get_paths()["purelib"]])
        return [system]

    def popen(self, command: Sequence[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(self.argv(command), env={**os.environ, **self.env}, **kwargs)
        self.processes.append(process)
        return process

    def run(self, command: Sequence[str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(command), env={**os.environ, **self.env}, timeout=timeout,
                              capture_output=True, text=True, **kwargs)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "DesktopSession":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        for folder in (self.workdir, self.home, self.runtime, self.home / ".local/share",
                       self.home / ".config", self.home / ".cache"):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, self.uid, self.gid)
            folder.chmod(0o700)
        self.dbus = self.popen(["dbus-daemon", "--session", "--nofork", "--nopidfile",
                                f"--address={self.bus_address}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(lambda: (self.runtime / "bus").exists(), "session bus socket")
        self.keyring = self.popen(["gnome-keyring-daemon", "--foreground", "--unlock",
                                   "--components=secrets"],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.keyring.stdin.write(KEYRING_PASSWORD.encode())
        self.keyring.stdin.close()
        self._wait(self._secrets_on_bus, "org.freedesktop.secrets on the session bus")

    def _secrets_on_bus(self) -> bool:
        result = self.run(["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus",
                           "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                           "string:org.freedesktop.secrets"], timeout=10)
        return "boolean true" in result.stdout

    def _wait(self, predicate, what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{what}: {process.args[-4:]} exited with {process.returncode}")
            time.sleep(0.05)
        raise TimeoutError(f"desktop session: no {what} after {timeout:.0f} s")

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)
