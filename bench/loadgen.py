"""Handshake load generator: N IKE_SAs with distinct identities from one process.

Runs inside the client namespace (bench/handshake.py starts it with `ip netns exec`):

    python -m bench.loadgen --gateway 198.51.100.1 --count 200 --psk-file F [--profile OUT]

One asyncio loop drives N sans-I/O IkeSession objects over one UDP socket pair (ports 500 and
4500, as a single client would use); incoming datagrams are handed to the session whose
initiator SPI they carry. All N sessions start at once, like charon with N connections
that have start_action = start. Prints one JSON line: CPU seconds of this process from the
first connect() to the last CHILD_SA, wall time, and how many came up.

Identities are user<i>@load.cygnet.test, PSK authentication, an IPv4 virtual IP requested.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time

from ike import events as ev
from ike.session import IkeSession
from ike.settings import AuthSettings, Settings

NON_ESP_MARKER = b"\0\0\0\0"
LOAD_DOMAIN = "load.cygnet.test"


def cpu_seconds() -> float:
    """CPU time of this process (all threads), nanosecond resolution, like schedstat."""
    return time.process_time()


class LoadGenerator:
    def __init__(self, loop, gateway: str, count: int, psk: bytes, remote_id: str, local: str):
        self.loop = loop
        self.count = count
        self.sock500 = self._socket(500)
        self.sock4500 = self._socket(4500)
        self.sessions: list[IkeSession] = []
        self.by_spi: dict[bytes, int] = {}   # initiator SPI -> session index
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.up: dict[int, float] = {}
        self.deleted: set[int] = set()
        self.all_up = loop.create_future()
        self.all_deleted = loop.create_future()
        for i in range(count):
            settings = Settings(
                remote_address=gateway, local_address=local, local_port=500,
                local_id=f"user{i}@{LOAD_DOMAIN}", remote_id=remote_id,
                auth=AuthSettings(method="psk", psk=psk),
                request_ip6=False, request_dns4=False, request_domains=False, dpd_delay=0.0)
            self.sessions.append(IkeSession(settings, loop.time()))
        loop.add_reader(self.sock500.fileno(), self._readable, self.sock500, False)
        loop.add_reader(self.sock4500.fileno(), self._readable, self.sock4500, True)

    @staticmethod
    def _socket(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
        return sock

    def start(self) -> None:
        now = self.loop.time()
        for index, session in enumerate(self.sessions):
            session.connect(now)
            self._pump(index, session)

    def close_all(self) -> None:
        for index, session in enumerate(self.sessions):
            session.close()
            self._pump(index, session)

    # --- I/O ---

    def _readable(self, sock: socket.socket, nat_t: bool) -> None:
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            if nat_t:
                if data[:4] != NON_ESP_MARKER:
                    continue          # ESP or keepalive: no data plane here
                data = data[4:]
            index = self.by_spi.get(data[:8])
            if index is not None:
                session = self.sessions[index]
                session.receive_datagram(data, addr, self.loop.time())
                self._pump(index, session)

    def _pump(self, index: int, session: IkeSession) -> None:
        now = self.loop.time()
        for data, addr in session.datagrams_to_send(now):
            self.by_spi.setdefault(data[:8], index)
            if addr[1] == 4500:
                self.sock4500.sendto(NON_ESP_MARKER + data, addr)
            else:
                self.sock500.sendto(data, addr)
        while (event := session.next_event()) is not None:
            if isinstance(event, ev.ChildSaEstablished) and index not in self.up:
                self.up[index] = now
                if len(self.up) == self.count and not self.all_up.done():
                    self.all_up.set_result(now)
            elif isinstance(event, ev.IkeSaDeleted):
                self.deleted.add(index)
                if len(self.deleted) == self.count and not self.all_deleted.done():
                    self.all_deleted.set_result(now)
        timer = self.timers.pop(index, None)
        if timer:
            timer.cancel()
        deadline = session.get_timer()
        if deadline is not None:
            self.timers[index] = self.loop.call_at(max(deadline, now), self._on_timer, index)

    def _on_timer(self, index: int) -> None:
        self.timers.pop(index, None)
        session = self.sessions[index]
        session.handle_timer(self.loop.time())
        self._pump(index, session)


async def run(args) -> dict:
    loop = asyncio.get_running_loop()
    psk = open(args.psk_file, "rb").read().strip()
    generator = LoadGenerator(loop, args.gateway, args.count, psk, args.remote_id, args.local)
    cpu0, wall0 = cpu_seconds(), loop.time()
    generator.start()
    try:
        await asyncio.wait_for(generator.all_up, args.timeout)
    except asyncio.TimeoutError:
        pass
    cpu1, wall1 = cpu_seconds(), loop.time()
    result = {"count": args.count, "established": len(generator.up),
              "cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0,
              "first_up_s": min(generator.up.values(), default=wall0) - wall0}
    generator.close_all()
    try:
        await asyncio.wait_for(generator.all_deleted, 10)
    except asyncio.TimeoutError:
        pass
    result["deleted"] = len(generator.deleted)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--local", required=True, help="our address (for NAT detection)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--psk-file", required=True)
    parser.add_argument("--remote-id", default="gw.cygnet.test")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--profile", help="write a pyinstrument JSON profile of the run here")
    args = parser.parse_args(argv)
    if args.profile:
        from pyinstrument import Profiler
        profiler = Profiler(interval=0.0005)
        profiler.start()
        result = asyncio.run(run(args))
        profiler.stop()
        from pyinstrument.renderers import JSONRenderer
        with open(args.profile, "w") as out:
            out.write(profiler.output(JSONRenderer()))
    else:
        result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
