"""`cygnet-nm-install install|uninstall [--prefix DIR]` (also reached as `cygnet nm ...`): put
the plugin's files where NetworkManager and D-Bus look.

    PREFIX/etc/NetworkManager/VPN/nm-cygnet-service.name   tells NM about vpn-type "cygnet"
    PREFIX/etc/dbus-1/system.d/nm-cygnet-service.conf      lets root own the plugin's bus names
    PREFIX/etc/xdg/autostart/cygnet-tray.desktop           starts the tray applet in each desktop
                                                           session (as the user, never root)
    PREFIX/usr/share/icons/hicolor/scalable/apps/cygnet.svg  the icon that .desktop file names

PREFIX is "/" normally; tests and packagers give a staging root. Paths written *into* the
files are the real ones (as a packager's DESTDIR), found when installing:
`cygnet-nm-service` and `cygnet-nm-auth-dialog` next to the running Python (the venv's bin/)
or on PATH. While no `cygnet-nm-auth-dialog` console script exists, a small launcher running
nm_plugin.auth_dialog with this Python is written beside the .name file instead.

NetworkManager reads .name files only when they are root-owned and not writable by group or
others, so everything is written 0644 (the launcher 0755).
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

NAME_FILE = Path("etc/NetworkManager/VPN/nm-cygnet-service.name")
POLICY_FILE = Path("etc/dbus-1/system.d/nm-cygnet-service.conf")
LAUNCHER = Path("etc/NetworkManager/VPN/cygnet-nm-auth-dialog")
AUTOSTART_FILE = Path("etc/xdg/autostart/cygnet-tray.desktop")
ICON_FILE = Path("usr/share/icons/hicolor/scalable/apps/cygnet.svg")


class InstallError(Exception):
    """Something to tell the user (missing program, unwritable folder)."""


def _data(name: str) -> str:
    return resources.files("nm_plugin").joinpath("data", name).read_text()


def find_program(name: str) -> str | None:
    """A console script of this installation: beside sys.executable first (a venv's bin/),
    then on PATH."""
    beside = Path(sys.executable).parent / name
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def install(prefix: str | Path = "/") -> list[Path]:
    """Write the .name file, the D-Bus policy (and the dialog launcher if needed)."""
    prefix = Path(prefix)
    service = find_program("cygnet-nm-service")
    if service is None:
        raise InstallError("cygnet-nm-service is not installed (pip install cygnet puts it next to cygnet)")
    written = []
    dialog = find_program("cygnet-nm-auth-dialog")
    if dialog is None:
        launcher = prefix / LAUNCHER
        _write(launcher, f"#!{sys.executable}\n"
                         "# Cygnet's NetworkManager auth dialog (written by `cygnet nm install`).\n"
                         "import sys\nfrom nm_plugin.auth_dialog import main\nsys.exit(main())\n", 0o755)
        written.append(launcher)
        dialog = "/" + str(LAUNCHER)
    name_text = (_data("nm-cygnet-service.name.in")
                 .replace("@SERVICE@", service).replace("@AUTH_DIALOG@", dialog))
    tray = find_program("cygnet-tray") or "cygnet-tray"
    autostart = _tray_file("data", "cygnet-tray.desktop").replace("Exec=cygnet-tray", f"Exec={tray}")
    for relative, text in ((NAME_FILE, name_text), (POLICY_FILE, _data("nm-cygnet-service.conf")),
                           (AUTOSTART_FILE, autostart), (ICON_FILE, _tray_file("icons", "cygnet.svg"))):
        _write(prefix / relative, text, 0o644)
        written.append(prefix / relative)
    return written


def _tray_file(folder: str, name: str) -> str:
    return resources.files("gui").joinpath(folder, name).read_text()


def uninstall(prefix: str | Path = "/") -> list[Path]:
    """Remove what install() wrote; returns the files that were there."""
    removed = []
    for relative in (NAME_FILE, POLICY_FILE, LAUNCHER, AUTOSTART_FILE, ICON_FILE):
        path = Path(prefix) / relative
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def run(action: str, prefix: str | Path = "/", prog: str = "cygnet-nm-install:") -> int:
    """Install or uninstall, printing what was written or removed; errors as one line on
    stderr, `PROG ACTION: why`. Returns the exit status (0 done, 1 failed)."""
    try:
        if action == "install":
            for path in install(prefix):
                print(f"wrote {path}")
            print("NetworkManager now knows vpn-type cygnet "
                  "(nmcli connection add type vpn vpn-type cygnet ...)")
        else:
            removed = uninstall(prefix)
            for path in removed:
                print(f"removed {path}")
            if not removed:
                print(f"nothing to remove under {prefix}")
    except InstallError as e:
        print(f"{prog} {action}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{prog} {action}: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """The `cygnet-nm-install` entry point."""
    import argparse

    parser = argparse.ArgumentParser(prog="cygnet-nm-install",
                                     description="Cygnet's NetworkManager plugin files")
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("--prefix", default="/", metavar="DIR",
                        help="root to install under (default: /, i.e. /etc/NetworkManager/VPN and "
                             "/etc/dbus-1/system.d)")
    args = parser.parse_args(argv)
    return run(args.action, args.prefix)


if __name__ == "__main__":
    sys.exit(main())
