"""Running a command on a pseudo-terminal, for the tests of prompts that must not echo."""

from __future__ import annotations

import os
import pty
import select
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_on_terminal(argv: list[str], typed: bytes, timeout: float = 30.0) -> str:
    """Run argv with a pseudo-terminal as its controlling terminal, type `typed` at the first
    prompt, and return everything it printed."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(REPO)
        os.execv(argv[0], argv)
    output, sent = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if not sent and b": " in output:
                os.write(fd, typed)
                sent = True
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    return output.decode(errors="replace")
