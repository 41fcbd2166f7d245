"""The control socket answers every request line, bad ones with an error (issue 13 §3)."""
from __future__ import annotations

import asyncio
import json

import pytest

from client import control


async def _exchange(tmp_path, monkeypatch, payload: bytes) -> tuple[bytes, list]:
    monkeypatch.setenv("CYGNET_RUN_DIR", str(tmp_path / "run"))
    seen = []

    async def handle(request: dict) -> dict:  # as Tunnel.handle_control: request.get(...)
        seen.append(request)
        return {"ok": True, "command": request.get("command")}

    server = await control.serve("t", handle)
    try:
        reader, writer = await asyncio.open_unix_connection(str(control.socket_path("t")))
        writer.write(payload)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        return answer, seen
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("payload, error", [
    (b'["status"]\n', "not a JSON object"),
    (b'"status"\n', "not a JSON object"),
    (b"x" * (70 * 1024) + b"\n", "longer than"),
    (b"\xff\xfe\n", "not JSON"),
    (b"[" * 100_000 + b"\n", "bad request"),
])
def test_bad_request_gets_an_error_answer(tmp_path, monkeypatch, payload, error):
    answer, seen = asyncio.run(_exchange(tmp_path, monkeypatch, payload))
    reply = json.loads(answer)
    assert reply["ok"] is False and error in reply["error"]
    assert seen == []


def test_good_request_still_answered(tmp_path, monkeypatch):
    answer, seen = asyncio.run(_exchange(tmp_path, monkeypatch, b'{"command": "status"}\n'))
    assert json.loads(answer) == {"ok": True, "command": "status"}
    assert seen == [{"command": "status"}]
