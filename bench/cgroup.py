"""One CPU control group for everything the benchmark starts.

This host runs with scheduler autogroups: every process session (setsid) gets its own CPU
share. charon and `cygnet up` would then each get a different share, depending on how many
other sessions are busy, and a comparison between them would measure the scheduler. So the
benchmark moves itself into one fresh group before it starts anything; every process it
starts (gateway, both clients, iperf3, tcpdump) inherits the group, and inside a non-root cgroup
autogroups do not apply. The group is removed at the end (its processes moved back first).

On a cgroup v2 host the group lives directly under /sys/fs/cgroup. On a hybrid host (this one:
the `cpu` controller is mounted as v1 at /sys/fs/cgroup/cpu, v2 at /sys/fs/cgroup/unified
without controllers) the group is made in the v1 `cpu` hierarchy, which is what the scheduler
uses, and in the v2 hierarchy as well, whose cpu.stat counts the group's CPU time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

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
