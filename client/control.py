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


MAX_REQUEST = 64 * 1024  # asyncio's default line limit; real requests are a few dozen bytes


async def _answer(reader: asyncio.StreamReader, handle: Callable[[dict], Awaitable[dict]]) -> dict:
    """The answer to one request line; a bad request gets an error answer, never an exception
    in the server's callback (that would leave the client without a reply)."""
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
    except ValueError:  # asyncio.LimitOverrunError, as readline() reports it
        return {"ok": False, "error": f"bad request: longer than {MAX_REQUEST} bytes"}
    try:
        request = json.loads(line)
    except ValueError as error:  # also UnicodeDecodeError
        return {"ok": False, "error": f"bad request: not JSON ({error})"}
    except RecursionError:
        return {"ok": False, "error": "bad request: nested too deeply"}
    if not isinstance(request, dict):
        return {"ok": False, "error": "bad request: not a JSON object"}
    try:
        return await handle(request)
    except (ValueError, TypeError) as error:
        return {"ok": False, "error": f"bad request: {error}"}


async def serve(name: str, handle: Callable[[dict], Awaitable[dict]]) -> asyncio.AbstractServer:
    """Answer requests for tunnel `name` with `handle(request) -> answer`."""
    ensure_run_dir()
    path = socket_path(name)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await _answer(reader, handle)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    if path.exists():
        path.unlink()
    server = await asyncio.start_unix_server(client, path=str(path), limit=MAX_REQUEST)
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
