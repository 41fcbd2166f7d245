"""Sockets opened inside a network namespace, from this process, without a subprocess.

A socket belongs to the namespace it was created in. A short-lived thread enters the
namespace with setns(2) (which affects only that thread), creates the socket and exits; the
socket then works from any thread. This makes pings and TCP probes cheap and lets tests use
the LAN/client side of the testbed directly.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import select
import socket
import struct
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def socket_in(namespace: str, family: int, type_: int, proto: int = 0) -> socket.socket:
    """Create a socket inside the named network namespace (as in `ip netns`)."""
    result: dict = {}

    def create() -> None:
        try:
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"setns({namespace}): {os.strerror(error)}")
            finally:
                os.close(fd)
            result["socket"] = socket.socket(family, type_, proto)
        except BaseException as error:  # handed to the caller's thread
            result["error"] = error

    thread = threading.Thread(target=create, name=f"setns-{namespace}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["socket"]


def ping(namespace: str, destination: str, *, count: int = 1, timeout: float = 1.0,
         source: str | None = None, size: int = 56) -> int:
    """Send `count` ICMP echo requests; return how many replies came back within `timeout` each."""
    address = ipaddress.ip_address(destination)
    v6 = address.version == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    sock = socket_in(namespace, family, socket.SOCK_RAW, proto)
    identifier = (os.getpid() ^ threading.get_ident()) & 0xFFFF
    replies = 0
    with sock:
        if source:
            sock.bind((source, 0))
        for sequence in range(1, count + 1):
            packet = _echo_request(v6, identifier, sequence, size)
            try:
                sock.sendto(packet, (destination, 0))
            except OSError:  # no route (yet): a lost echo, not an error
                time.sleep(min(timeout, 0.05))
                continue
            if _await_reply(sock, v6, identifier, sequence, destination, timeout):
                replies += 1
    return replies


def _echo_request(v6: bool, identifier: int, sequence: int, size: int) -> bytes:
    icmp_type = 128 if v6 else 8
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    header = struct.pack("!BBHHH", icmp_type, 0, 0, identifier, sequence)
    if v6:
        return header + payload  # the kernel fills the ICMPv6 checksum
    checksum = _inet_checksum(header + payload)
    return struct.pack("!BBHHH", icmp_type, 0, checksum, identifier, sequence) + payload


def _await_reply(sock, v6, identifier, sequence, destination, timeout) -> bool:
    deadline = time.monotonic() + timeout
    want_type = 129 if v6 else 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], remaining)
        if not ready:
            return False
        data, peer = sock.recvfrom(65535)
        if not v6:
            data = data[(data[0] & 0x0F) * 4:]  # raw IPv4 sockets deliver the IP header too
        if len(data) < 8:
            continue
        icmp_type, _, _, got_id, got_seq = struct.unpack("!BBHHH", data[:8])
        if (icmp_type == want_type and got_id == identifier and got_seq == sequence
                and ipaddress.ip_address(peer[0]) == ipaddress.ip_address(destination)):
            return True


def _inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_connect(namespace: str, host: str, port: int, *, timeout: float = 3.0,
                source: str | None = None) -> socket.socket:
    """A connected TCP socket from inside `namespace`."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket_in(namespace, family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if source:
        sock.bind((source, 0))
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def tcp_echo(namespace: str, host: str, port: int, payload: bytes, *,
             timeout: float = 3.0) -> bytes:
    """Send `payload` to an echo server and return what came back (same length)."""
    with tcp_connect(namespace, host, port, timeout=timeout) as sock:
        sock.sendall(payload)
        received = bytearray()
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return bytes(received)
