"""Background processes that the testbed starts, each in its own process group."""

from __future__ import annotations

import subprocess
from typing import Sequence

from . import reaper


class Process:
    """A started command; `stop()` ends its whole process group (by PID) and reaps it."""

    def __init__(self, argv: Sequence[str], description: str, **popen_kwargs):
        self.argv = list(argv)
        self.description = description
        self.popen = subprocess.Popen(self.argv, start_new_session=True, **popen_kwargs)
        self._token = reaper.register(f"stop {description} (pid {self.popen.pid})", self._end)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        reaper.run_one(self._token)

    def _end(self) -> None:
        reaper.terminate_process_group(self.popen.pid)
        try:
            self.popen.wait(1)
        except subprocess.TimeoutExpired:
            reaper.kill_process_group(self.popen.pid)
            self.popen.wait(1)

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
