"""Polling with a deadline: the one way the testbed waits for things to happen."""

from __future__ import annotations

import time
from typing import Callable


def wait_for(condition: Callable[[], object], *, timeout: float, interval: float = 0.02,
             message: str | Callable[[], str] = "condition not met",
             abort: Callable[[], bool] | None = None):
    """Call `condition` until it returns something truthy; return that value.

    Raises TimeoutError after `timeout` seconds (with `message`, or what the callable says),
    or at once if `abort()` becomes true (e.g. the process we wait for has died).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if abort is not None and abort():
            raise RuntimeError(message() if callable(message) else message)
        if time.monotonic() >= deadline:
            raise TimeoutError(message() if callable(message) else message)
        time.sleep(interval)
