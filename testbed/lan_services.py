"""TCP services for the LAN host: echo (port 7) and sink/discard (port 9), IPv4 and IPv6.

Run inside the LAN namespace as `python lan_services.py`. Plain threads: the
traffic in tests is small, and bulk throughput is measured with iperf3 instead.
"""

from __future__ import annotations

import socket
import sys
import threading

ECHO_PORT = 7
SINK_PORT = 9


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too, as ::ffff:a.b.c.d
    sock.bind(("::", port))
    sock.listen(64)
    return sock


def _serve(listener: socket.socket, handle) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def _sink(conn: socket.socket) -> None:
    with conn:
        while conn.recv(1 << 20):
            pass


def main() -> None:
    services = [(_listen(ECHO_PORT), _echo), (_listen(SINK_PORT), _sink)]
    for listener, handler in services:
        threading.Thread(target=_serve, args=(listener, handler), daemon=True).start()
    print("ready", flush=True)
    # Runs until the testbed kills it; stdin closing also ends it.
    sys.stdin.read()


if __name__ == "__main__":
    main()
