"""A tiny DNS server for tests: `python dns_responder.py LOG ADDRESS [ADDRESS...]` answers
every A query on UDP port 53 of each ADDRESS with 10.1.0.10 (and every other type with no
records), and appends "ADDRESS NAME" to LOG for each query, so a test can tell which server a
resolver asked. Ends when its stdin closes.
"""

from __future__ import annotations

import select
import socket
import struct
import sys


def _name(packet: bytes, offset: int = 12) -> tuple[str, int]:
    labels = []
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    return ".".join(labels), offset + 1


def answer(query: bytes) -> bytes:
    ident, flags = struct.unpack("!HH", query[:4])
    name, end = _name(query)
    qtype = struct.unpack("!H", query[end:end + 2])[0]
    question = query[12:end + 4]
    records = b""
    if qtype == 1:
        records = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton("10.1.0.10")
    reply_flags = 0x8000 | (flags & 0x0100) | 0x0080 | 0x0400  # response, RD copied, RA, AA
    return struct.pack("!HHHHHH", ident, reply_flags, 1, 1 if records else 0, 0, 0) + question + records


def main(argv: list[str]) -> int:
    log_path, addresses = argv[0], argv[1:]
    sockets = {}
    for address in addresses:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, 53))
        sockets[sock] = address
    with open(log_path, "a", buffering=1) as log:
        print("ready", flush=True)
        while True:
            ready, _, _ = select.select([*sockets, sys.stdin], [], [])
            for sock in ready:
                if sock is sys.stdin:
                    if not sys.stdin.buffer.read1(4096):
                        return 0
                    continue
                data, peer = sock.recvfrom(4096)
                try:
                    name, _ = _name(data)
                    log.write(f"{sockets[sock]} {name}\n")
                    sock.sendto(answer(data), peer)
                except (IndexError, struct.error):
                    continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
