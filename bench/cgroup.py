"""One CPU control group for the clients under comparison.

This host runs with scheduler autogroups: every process session (setsid) gets its own CPU
share, and how much that share is worth depends on how many other sessions are busy at that
moment. So every client process the benchmark compares (`cygnet up`, the charon initiator, the
handshake load generator and the charon doing the same) joins one fresh group before it
starts (`GroupedNamespace` puts `echo $$ > .../cgroup.procs` in front of its command); inside a
non-root cgroup autogroups do not apply, and both clients get the same share. The gateway,
iperf3 and tcpdump stay as the testbed starts them. The group is removed at the end (anything
still inside moved back to the parent first).

On a cgroup v2 host the group lives directly under /sys/fs/cgroup. On a hybrid host (this one:
the `cpu` controller is mounted as v1 at /sys/fs/cgroup/cpu, v2 at /sys/fs/cgroup/unified
without controllers) the group is made in the v1 `cpu` hierarchy, which is what the scheduler
uses, and in the v2 hierarchy as well, whose cpu.stat counts the group's CPU time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from testbed import Namespace

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _hierarchies() -> list[Path]:
    """Roots of the hierarchies to use: v2 (pure or unified) and the v1 cpu controller."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():      # pure cgroup v2
        return [CGROUP_ROOT]
    roots = []
    for candidate in (CGROUP_ROOT / "cpu", CGROUP_ROOT / "unified"):
        if (candidate / "cgroup.procs").exists():
            roots.append(candidate)
    return roots


class CpuGroup:
    """`with CpuGroup("cygnet-bench") as group: group.add(pid)`; `group.add_self()`."""

    def __init__(self, name: str):
        self.name = f"{name}-{os.getpid()}"
        self.paths: list[Path] = []

    def __enter__(self) -> "CpuGroup":
        for root in _hierarchies():
            path = root / self.name
            try:
                path.mkdir()
            except OSError:
                continue
            self.paths.append(path)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def active(self) -> bool:
        return bool(self.paths)

    def add(self, pid: int) -> None:
        """Move process `pid` (all its threads) into the group; its future children follow."""
        for path in self.paths:
            try:
                (path / "cgroup.procs").write_text(f"{pid}\n")
            except (ProcessLookupError, OSError):
                pass

    def add_self(self) -> None:
        self.add(os.getpid())

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """argv that joins this group and then execs `argv` (same PID, nothing forked)."""
        if not self.paths:
            return list(argv)
        join = "; ".join(f"echo $$ > {path / 'cgroup.procs'}" for path in self.paths)
        return ["sh", "-c", f'{join}; exec "$@"', "sh", *argv]

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.paths:
            try:
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return sorted(found)

    def cpu_seconds(self) -> float | None:
        """CPU time of everything in the group so far (v2 cpu.stat, or v1 cpuacct absent: None)."""
        for path in self.paths:
            stat = path / "cpu.stat"
            if stat.exists():
                for line in stat.read_text().splitlines():
                    if line.startswith("usage_usec"):
                        return int(line.split()[1]) / 1e6
        return None

    def close(self) -> None:
        """Move whatever is still inside back to the parent group and remove the group."""
        for path in self.paths:
            parent_procs = path.parent / "cgroup.procs"
            for _ in range(50):
                try:
                    pids = (path / "cgroup.procs").read_text().split()
                except OSError:
                    break
                for pid in pids:
                    try:
                        parent_procs.write_text(f"{pid}\n")
                    except OSError:
                        pass
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
        self.paths = []


class GroupedNamespace(Namespace):
    """A testbed network namespace whose commands (`argv`, `run`) start inside `group`.

    Pass it where the testbed takes a Namespace (Charon, Testbed.strongswan_client(role=...)).
    """

    def __init__(self, namespace: Namespace, group: CpuGroup):
        super().__init__(namespace.name)
        self.group = group

    def argv(self, command: Sequence[str]) -> list[str]:
        return self.group.wrap(super().argv(command))
