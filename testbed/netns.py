"""Network namespaces with unique per-run names, and commands run inside them."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from . import reaper

# Every name starts with this and the creating process's PID, so parallel runs never collide
# and leftovers of a killed run can be told apart from live ones.
NAME_PREFIX = "cygtb"
_counter = itertools.count(1)


def unique_prefix() -> str:
    """A fresh prefix such as 'cygtb1234-3' for one testbed's namespaces."""
    return f"{NAME_PREFIX}{os.getpid()}-{next(_counter)}"


class CommandError(RuntimeError):
    """A command failed; carries its output so test failures explain themselves."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"{' '.join(self.argv)} exited with {returncode}: {stderr.strip() or stdout.strip()}"
        )


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0,
        input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command to completion, capturing text output."""
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                            input=input, env=env)
    if check and result.returncode != 0:
        raise CommandError(argv, result.returncode, result.stdout, result.stderr)
    return result


class Namespace:
    """One network namespace. `create()` registers its removal with the reaper."""

    def __init__(self, name: str):
        self.name = name
        self._token: int | None = None

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    def create(self) -> "Namespace":
        run(["ip", "netns", "add", self.name])
        self._token = reaper.register(f"delete namespace {self.name}", self._delete)
        # Fresh veths would otherwise change link-local addresses after DAD, which charon
        # takes for roaming. Set before any interface exists so every interface inherits it.
        self.run(["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
                  "net.ipv6.conf.default.accept_dad=0"])
        self.ip("link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        if self._token is not None:
            reaper.run_one(self._token)
            self._token = None

    def _delete(self) -> None:
        # Any process still inside keeps the namespace alive: end them by PID first.
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        run(["ip", "netns", "del", self.name], check=False)

    def exists(self) -> bool:
        return Path("/run/netns", self.name).exists()

    def pids(self) -> list[int]:
        result = run(["ip", "netns", "pids", self.name], check=False)
        return [int(p) for p in result.stdout.split()]

    def argv(self, command: Sequence[str]) -> list[str]:
        """The argv that runs `command` inside this namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, command: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
        return run(self.argv(command), **kwargs)

    def sysctl(self, key: str, value: str) -> None:
        """Set a per-namespace kernel setting (net.*)."""
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def ip(self, *args: str) -> subprocess.CompletedProcess:
        """`ip -n NAME ...`: acts on this namespace without entering it."""
        return run(["ip", "-n", self.name, *args])

    def nft(self, ruleset: str) -> None:
        """Load an nftables ruleset (text) into this namespace."""
        self.run(["nft", "-f", "-"], input=ruleset)


def sweep_stale_namespaces() -> list[str]:
    """Remove what testbed runs that died without cleaning up (SIGKILL) left behind.

    Only names of the form cygtb<pid>-... with a dead <pid> are touched: namespaces in
    /run/netns (processes still inside are killed by PID first) and work directories in the
    temp dir. Returns the names removed.
    """
    removed = []
    netns_dir = Path("/run/netns")
    entries = list(netns_dir.iterdir()) if netns_dir.is_dir() else []
    entries += list(Path(tempfile.gettempdir()).glob(f"{NAME_PREFIX}[0-9]*"))
    for entry in entries:
        pid_text = entry.name[len(NAME_PREFIX):].split("-", 1)[0]
        if (not entry.name.startswith(NAME_PREFIX) or not pid_text.isdigit()
                or _pid_alive(int(pid_text))):
            continue
        if entry.parent == netns_dir:
            Namespace(entry.name)._delete()
        else:
            shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed


def _pid_alive(pid: int) -> bool:
    """True if `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")
