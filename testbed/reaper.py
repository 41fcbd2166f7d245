"""Last-resort cleanup: undo everything the testbed created, even on errors or signals.

Every namespace and process the testbed starts registers an undo callback here. Callbacks run
in reverse order (processes before the namespaces they live in) when their owner closes, at
interpreter exit (atexit) and on SIGTERM/SIGHUP (SIGINT becomes KeyboardInterrupt, which
reaches the finalizers and atexit anyway). Processes are ended by their own id
(each one leads its own process group), never by name.

An action is forgotten only after it has run, so a signal that interrupts one makes the
signal handler run it again: every action must be idempotent.
"""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import sys
import threading
import time
from typing import Callable

_lock = threading.RLock()
_callbacks: dict[int, tuple[str, Callable[[], None]]] = {}
_tokens = itertools.count(1)
_atexit_installed = False
_signals_installed = False


def register(description: str, callback: Callable[[], None]) -> int:
    """Remember an undo action; returns a token for `run_one` / `forget`."""
    _install_handlers()
    with _lock:
        token = next(_tokens)
        _callbacks[token] = (description, callback)
        return token


def forget(token: int) -> None:
    with _lock:
        _callbacks.pop(token, None)


def run_one(token: int) -> None:
    """Run one undo action now (if it has not run yet)."""
    with _lock:
        entry = _callbacks.get(token)
    if entry is not None:
        _safely(*entry)
        forget(token)


def run_all() -> None:
    """Run every pending undo action, newest first."""
    while True:
        with _lock:
            if not _callbacks:
                return
            token = max(_callbacks)
            entry = _callbacks[token]
        _safely(*entry)
        forget(token)


def pending() -> list[str]:
    with _lock:
        return [description for _, (description, _) in sorted(_callbacks.items())]


def _safely(description: str, callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception as error:  # cleanup must go on with the rest
        print(f"testbed cleanup: {description} failed: {error}", file=sys.stderr)


def terminate_process_group(pid: int, grace: float = 3.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL it if it lingers."""
    if not _signal_group(pid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.02)
    _signal_group(pid, signal.SIGKILL)


def kill_process_group(pid: int) -> None:
    _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> bool:
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False


def _group_alive(pid: int) -> bool:
    # Reap our own child if it exited, so a zombie does not look alive.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _install_handlers() -> None:
    global _atexit_installed, _signals_installed
    with _lock:
        if not _atexit_installed:
            atexit.register(run_all)
            _atexit_installed = True
        # Signal handlers can only be set from the main thread; retry on later calls.
        if _signals_installed or threading.current_thread() is not threading.main_thread():
            return
        _signals_installed = True
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(signum)
        if previous is signal.SIG_IGN:      # e.g. SIGHUP under nohup: leave it ignored
            continue
        signal.signal(signum, _make_handler(previous))


def _make_handler(previous):
    def handler(signum, frame):
        run_all()
        if callable(previous):
            previous(signum, frame)
        else:
            # The default action for SIGTERM/SIGHUP is to exit: do so, with the usual status.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return handler
