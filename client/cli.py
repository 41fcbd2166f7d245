"""The `cygnet` command line.

    cygnet up PROFILE [--daemon]     bring a connection up (PROFILE: a name or a .toml path)
    cygnet down [NAME]               take a connection down (all of them without NAME)
    cygnet status [--json]           show connections
    cygnet import FILE.sswan         turn a strongSwan Android profile into a Cygnet profile
    cygnet nm install|uninstall      NetworkManager plugin files

Exit codes: 0 done, 1 failed (the reason is printed), 2 bad arguments or a part that is not
available yet; `cygnet up` in the foreground exits with its failure's kind (client/failure.py's
EXIT_CODES, listed in `cygnet --help`). Start-up stays light: heavy modules (cryptography, pyroute2, asyncio) are
imported inside the commands that need them, never at module level.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Sequence  # not typing: that costs milliseconds at start-up

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2



class _UsageError(Exception):
    def __init__(self, status: int, message: str | None):
        super().__init__(message)
        self.status = status
        self.message = message


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, given the terminal's width. Left to find it, the formatter (made
    for every add_argument) imports shutil, and shutil loads the archive codecs: half a
    megabyte that `cygnet up` would then carry for as long as the tunnel is up."""

    def __init__(self, prog: str, **kwargs):
        kwargs.setdefault("width", _terminal_columns() - 2)  # argparse's own margin
        super().__init__(prog, **kwargs)


class _RawEpilogFormatter(_Formatter):
    """The exit-status table in the epilog keeps its lines."""

    def _fill_text(self, text, width, indent):
        return "".join(indent + line for line in text.splitlines(keepends=True))


@functools.cache  # one look per run: a parser makes a formatter for every argument
def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal's, else 80."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that returns from main() instead of calling sys.exit()."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def exit(self, status: int = 0, message: str | None = None):
        raise _UsageError(status, message)


def build_parser() -> argparse.ArgumentParser:
    from client.failure import EXIT_STATUS_HELP

    parser = _Parser(prog="cygnet", description="Cygnet IKEv2 VPN client", epilog=EXIT_STATUS_HELP,
                     formatter_class=_RawEpilogFormatter)
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    up = commands.add_parser("up", help="bring a connection up")
    up.add_argument("profile", metavar="PROFILE", help="profile name or path to a .toml file")
    up.add_argument("--daemon", action="store_true", help="run in the background once connected")
    up.set_defaults(run=cmd_up)

    down = commands.add_parser("down", help="take a connection down")
    down.add_argument("name", metavar="NAME", nargs="?", help="profile name (default: all)")
    down.set_defaults(run=cmd_down)

    status = commands.add_parser("status", help="show connections")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=cmd_status)

    imp = commands.add_parser("import", help="import a strongSwan Android .sswan profile")
    imp.add_argument("file", metavar="FILE.sswan")
    imp.add_argument("--name", help="profile name (default: from the file's name field)")
    imp.add_argument("--dir", metavar="D", help="where to write NAME.toml "
                                                "(default: ~/.config/cygnet)")
    imp.add_argument("--force", action="store_true", help="replace an existing profile")
    imp.add_argument("--p12-password-file", metavar="FILE",
                     help="file (mode 600) holding the password of the embedded PKCS#12")
    imp.set_defaults(run=cmd_import)

    nm = commands.add_parser("nm", help="NetworkManager plugin files")
    nm.add_argument("action", choices=("install", "uninstall"))
    nm.add_argument("--prefix", default="/", metavar="DIR",
                    help="root to install under (default: /, i.e. /etc/NetworkManager/VPN and "
                         "/etc/dbus-1/system.d)")
    nm.set_defaults(run=cmd_nm)
    return parser


class _VersionAction(argparse.Action):
    """--version, looked up only when asked (importlib.metadata costs ~40 ms at start-up)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {_version()}")
        parser.exit()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("cygnet")
    except Exception:  # not installed, e.g. run from a source tree
        return "0.1.0"


def _error(message: str) -> int:
    print(f"cygnet: {message}", file=sys.stderr)
    return EXIT_FAILED


def _load_commands():
    """client.commands (up/down/status over client.engine), imported only by the commands
    that need it (start-up time)."""
    return importlib.import_module("client.commands")


# ---------------------------------------------------------------------------------------------
# Commands


def cmd_up(args) -> int:
    from client.profile import ProfileError, identity_warning, load_profile

    try:
        profile = load_profile(args.profile)
    except ProfileError as e:
        return _error(str(e))
    from client.preflight import PreflightError, check_profile

    try:  # before the agent, the TUN device, a socket or a DNS lookup exists
        check_profile(profile)
    except PreflightError as e:
        return _error(str(e))
    from ike.proposals import proposal_warnings

    warnings = list(proposal_warnings(profile.ike, profile.esp))  # legacy algorithms named
    if (warning := identity_warning(profile)) is not None:        # remote_id = "%any"
        warnings.append(warning)
    for warning in warnings:
        print(f"cygnet: warning: {warning}", file=sys.stderr)
    from client import netlink_agent

    netlink_agent.import_pyroute2_lazily()
    if not args.daemon:
        # pyroute2 loads in a child while we import the rest (and it probes for kernel ESP).
        netlink_agent.prestart(probe_kernel_esp=profile.dataplane in ("kernel", "auto"))
    return _load_commands().up(profile, daemon=args.daemon)


def cmd_down(args) -> int:
    from client import control, killswitch

    try:  # a kill switch that outlived its engine (failed or killed): `down` lifts it
        left = killswitch.leftovers(args.name, control.running_tunnels())
    except killswitch.FirewallError:
        left = []
    for name in left:
        killswitch.remove(killswitch.table_name(name))
        print(f"kill switch of {name} removed")
    if left and (args.name or not control.running_tunnels()):
        return EXIT_OK
    return _load_commands().down(args.name)


def cmd_status(args) -> int:
    return _load_commands().status(as_json=args.json)


def cmd_import(args) -> int:
    from pathlib import Path

    from client.profile import ProfileError
    from client.secrets import SecretError
    from client.sswan import SswanError, import_sswan

    try:
        result = import_sswan(
            Path(args.file),
            profile_dir=Path(args.dir) if args.dir else None,
            name=args.name,
            force=args.force,
            p12_password_file=Path(args.p12_password_file) if args.p12_password_file else None,
        )
    except (SswanError, ProfileError, SecretError) as e:
        return _error(str(e))
    except OSError as e:
        return _error(f"{e.filename or args.file}: {e.strerror}")
    for warning in result.warnings:
        print(f"cygnet: warning: {warning}", file=sys.stderr)
    print(f"wrote {result.toml_path}; connect with: cygnet up {result.profile.name}")
    return EXIT_OK


def cmd_nm(args) -> int:
    """The front door to nm_plugin/install.py (`cygnet-nm-install`), which does the work."""
    from nm_plugin.install import run

    return run(args.action, args.prefix, prog="cygnet: nm")


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        if e.message:
            # argparse's own messages already start with "cygnet: " / "usage:"
            sys.stderr.write(e.message)
        return e.status
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("cygnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
