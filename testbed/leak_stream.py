"""A steady stream of what an application sends, for leak tests: run in the client namespace as
`python leak_stream.py UDP_HOST UDP_PORT DNS_SERVER PING6_HOST [INTERVAL]`.

Every INTERVAL seconds (default 0.05) it sends one UDP datagram to UDP_HOST:UDP_PORT, one DNS
query (type A, "leak-N.example.org.") to DNS_SERVER:53 and one ICMPv6 echo request to
PING6_HOST. Errors (no route, blocked by the firewall) are ignored: the stream goes on. It ends
when its stdin closes (so it never outlives the test that started it).
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time


def dns_query(number: int) -> bytes:
    header = struct.pack("!HHHHHH", number & 0xFFFF, 0x0100, 1, 0, 0, 0)
    name = b"".join(bytes([len(p)]) + p for p in (f"leak-{number}".encode(), b"example", b"org"))
    return header + name + b"\0" + struct.pack("!HH", 1, 1)


def echo_request(number: int) -> bytes:
    # The kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket (RFC 3542 §3.1).
    return struct.pack("!BBHHH", 128, 0, 0, os.getpid() & 0xFFFF, number & 0xFFFF) + b"cygnet-leak"


def main(argv: list[str]) -> int:
    udp_host, udp_port, dns_server, ping6_host = argv[:4]
    interval = float(argv[4]) if len(argv) > 4 else 0.05
    udp = socket.socket(socket.AF_INET6 if ":" in udp_host else socket.AF_INET, socket.SOCK_DGRAM)
    dns = socket.socket(socket.AF_INET6 if ":" in dns_server else socket.AF_INET, socket.SOCK_DGRAM)
    icmp6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    for sock in (udp, dns, icmp6):
        sock.setblocking(False)
    number = 0
    while True:
        number += 1
        for sock, data, address in ((udp, b"cygnet-leak %d" % number, (udp_host, int(udp_port))),
                                    (dns, dns_query(number), (dns_server, 53)),
                                    (icmp6, echo_request(number), (ping6_host, 0))):
            try:
                sock.sendto(data, address)
            except OSError:
                pass
        for sock in (udp, dns, icmp6):  # drain answers, if any
            try:
                while sock.recv(65535):
                    pass
            except OSError:
                pass
        ready, _, _ = select.select([sys.stdin], [], [], interval)
        if ready and not sys.stdin.buffer.read1(4096):
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
