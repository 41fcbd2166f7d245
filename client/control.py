"""The control socket: how `cygnet status` and `cygnet down` reach a running tunnel.

One Unix stream socket per tunnel, /run/cygnet/NAME.sock, in a directory only root can enter
(0700). A request is one JSON object on one line ({"command": "status"} or {"command": "down"});
the answer is one JSON object on one line. Nothing secret is ever sent over it.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Awaitable, Callable


def run_dir() -> Path:
    """Where sockets, route journals and resolv.conf backups live (tests may move it)."""
    return Path(os.environ.get("CYGNET_RUN_DIR", "/run/cygnet"))


def socket_path(name: str) -> Path:
    return run_dir() / f"{name}.sock"


def ensure_run_dir() -> Path:
    directory = run_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


async def serve(name: str, handle: Callable[[dict], Awaitable[dict]]) -> asyncio.AbstractServer:
    """Answer requests for tunnel `name` with `handle(request) -> answer`."""
    ensure_run_dir()
    path = socket_path(name)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            try:
                request = json.loads(line)
                answer = await handle(request)
            except (ValueError, TypeError) as error:
                answer = {"ok": False, "error": f"bad request: {error}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    if path.exists():
        path.unlink()
    server = await asyncio.start_unix_server(client, path=str(path))
    os.chmod(path, 0o600)
    return server


def request(name: str, command: str, timeout: float = 10.0) -> dict:
    """Send one command to a running tunnel (blocking; used by the CLI)."""
    return request_at(socket_path(name), command, timeout)


def request_at(path: Path, command: str, timeout: float = 10.0) -> dict:
    """`request` to the control socket at `path` (tests give each tunnel its own run dir)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def running_tunnels() -> list[str]:
    """Names of tunnels with a live control socket (stale sockets are skipped)."""
    names = []
    directory = run_dir()
    if not directory.is_dir():
        return names
    for path in sorted(directory.glob("*.sock")):
        if is_alive(path.stem):
            names.append(path.stem)
    return names


def is_alive(name: str) -> bool:
    path = socket_path(name)
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
            return True
        except OSError:
            return False
