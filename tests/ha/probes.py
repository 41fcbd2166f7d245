"""A paced one-way UDP probe stream between two namespaces, to time an outage per direction.

    stream = ProbeStream("client-ns", "lan-ns", "10.1.0.10", port=9901, interval=0.02).start()
    ...                                   # break something, repair it
    stream.stop()
    stream.longest_gap()                  # seconds between two consecutive arrivals

Ping measures round trips only; two streams (one each way) show which direction a failover
hurts. Sender and receiver run as threads of the test process with sockets opened inside the
namespaces, so arrival times share one monotonic clock.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from testbed import netsock

_PAYLOAD = struct.Struct(">I")


class ProbeStream:
    def __init__(self, source_ns: str, destination_ns: str, destination: str, *, port: int,
                 interval: float = 0.02):
        self.destination = (destination, port)
        self.interval = interval
        self.arrivals: list[float] = []      # monotonic times of received probes, in order
        self.sent = 0
        self._stop = threading.Event()
        self._receiver_sock = netsock.socket_in(destination_ns, socket.AF_INET, socket.SOCK_DGRAM)
        self._receiver_sock.bind(("0.0.0.0", port))
        self._receiver_sock.settimeout(0.2)
        self._sender_sock = netsock.socket_in(source_ns, socket.AF_INET, socket.SOCK_DGRAM)
        self._threads = [threading.Thread(target=self._send, daemon=True),
                         threading.Thread(target=self._receive, daemon=True)]

    def start(self) -> "ProbeStream":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self._receiver_sock.close()
        self._sender_sock.close()

    def _send(self) -> None:
        next_due = time.monotonic()
        while not self._stop.is_set():
            try:
                self._sender_sock.sendto(_PAYLOAD.pack(self.sent), self.destination)
            except OSError:
                pass   # no route or neighbour for a moment: that probe is lost, as it should be
            self.sent += 1
            next_due += self.interval
            self._stop.wait(max(0.0, next_due - time.monotonic()))

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self._receiver_sock.recv(64)
            except (socket.timeout, OSError):
                continue
            self.arrivals.append(time.monotonic())

    def received_since(self, when: float) -> int:
        return sum(1 for t in self.arrivals if t >= when)

    def first_arrival(self, since: float) -> float:
        return next((t for t in self.arrivals if t >= since), float("inf"))

    def longest_gap(self, since: float = 0.0) -> float:
        """The longest time without a probe arriving, among arrivals after `since`
        (the gap that ends with the first arrival after `since` counts in full)."""
        times = self.arrivals
        gaps = [b - a for a, b in zip(times, times[1:]) if b >= since]
        return max(gaps, default=float("inf"))
