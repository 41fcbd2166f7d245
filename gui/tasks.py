"""Coroutines the applet starts from Qt callbacks (menu clicks, D-Bus signals)."""

from __future__ import annotations

import asyncio
from typing import Callable


class BackgroundTasks(set):
    """The running tasks, held until done: asyncio keeps only weak references to tasks, so an
    unreferenced one may vanish mid-flight. A task's failure goes to `on_error`."""

    def __init__(self, on_error: Callable[[BaseException], None]):
        super().__init__()
        self._on_error = on_error

    def run(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._on_error(task.exception())
