"""The userspace data plane: SA selection by traffic selectors, make-before-break rekeying,
counters and limit events; and (as root) two network namespaces joined by a veth pair, each
running the data plane over a real TUN device, with ping and a byte-exact TCP transfer."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from client import esp
from client.dataplane import SaLimitReached, UserspaceDataPlane
from client.tun import TunDevice
from ike.constants import EncrId, IntegId
from tests.client.test_rfc3948_udp_encap import Endpoint, FakeChildSa, ipv4

REPO = Path(__file__).resolve().parents[2]
NET = ipaddress.ip_network


def mirror(sa):
    """The peer's view of an SA pair: in and out swapped."""
    return replace(sa, spi_in=sa.spi_out, spi_out=sa.spi_in,
                   encr_key_in=sa.encr_key_out, encr_key_out=sa.encr_key_in,
                   integ_key_in=sa.integ_key_out, integ_key_out=sa.integ_key_in,
                   local_ts=sa.remote_ts, remote_ts=sa.local_ts)


@pytest.fixture
def pair():
    """Two endpoints wired to each other over loopback UDP (driven synchronously)."""
    a, b = Endpoint(), Endpoint()
    a.plane.set_peer(b.addr)
    b.plane.set_peer(a.addr)
    b.udp.settimeout(2)
    yield a, b
    a.close()
    b.close()


def deliver(src: Endpoint, dst: Endpoint):
    """Move one datagram from src's wire to dst's plane; returns the inner packet or None."""
    datagram, addr = dst.udp.recvfrom(65536)
    return dst.plane.receive_datagram(memoryview(datagram), addr)


SA = FakeChildSa(local_ts=(NET("10.9.0.2/32"),), remote_ts=(NET("10.20.0.0/16"), NET("192.168.7.0/24")))


def test_packets_outside_the_selectors_are_dropped_not_sent(pair):
    a, b = pair
    a.plane.install_child_sa(SA)
    b.plane.install_child_sa(mirror(SA))
    assert not a.plane.send_packet(ipv4("10.9.0.2", "8.8.8.8"))  # destination not in remote_ts
    assert not a.plane.send_packet(ipv4("10.9.0.3", "10.20.1.1"))  # source not in local_ts
    assert not a.plane.send_packet(b"\x60" + bytes(10))  # truncated IPv6 header
    assert a.plane.global_counters.outside_selectors == 3
    b.udp.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.udp.recv(65536)  # nothing reached the wire, not even in the clear
    b.udp.setblocking(True)
    assert a.plane.send_packet(ipv4("10.9.0.2", "192.168.7.9", b"inside"))
    assert deliver(a, b) == ipv4("10.9.0.2", "192.168.7.9", b"inside")
    assert b.app.recv(2000) == ipv4("10.9.0.2", "192.168.7.9", b"inside")


def test_no_sa_means_nothing_is_sent(pair):
    a, _ = pair
    assert not a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))
    assert a.plane.global_counters.outside_selectors == 1


def test_decrypted_packet_outside_selectors_is_dropped(pair):
    """RFC 4301 §5.2: after decryption the inner addresses must match the SA's selectors."""
    a, b = pair
    wide = replace(SA, local_ts=(NET("0.0.0.0/0"),), remote_ts=(NET("0.0.0.0/0"),))
    a.plane.install_child_sa(wide)  # a sends anything ...
    b.plane.install_child_sa(mirror(SA))  # ... but b only accepts 10.9.0.2 -> its selectors
    assert a.plane.send_packet(ipv4("10.66.0.1", "192.168.7.1"))
    assert deliver(a, b) is None
    assert b.plane.counters()[SA.spi_out].policy_drops_in == 1
    assert b.plane.counters()[SA.spi_out].packets_in == 1  # it was authentic, just not allowed


def test_ipv6_inner_packets(pair):
    a, b = pair
    sa6 = replace(SA, local_ts=(NET("fd00:1::2/128"),), remote_ts=(NET("fd00:2::/64"),))
    a.plane.install_child_sa(sa6)
    b.plane.install_child_sa(mirror(sa6))
    packet = struct.pack(">IHBB16s16s", 6 << 28, 4, 17, 64, ipaddress.ip_address("fd00:1::2").packed,
                         ipaddress.ip_address("fd00:2::99").packed) + b"data"
    assert a.plane.send_packet(packet)
    datagram = b.udp.recv(65536)
    assert b.plane._inbound[sa6.spi_out].inbound.open(datagram)[0] == esp.NEXT_HEADER_IPV6
    assert not a.plane.send_packet(packet.replace(ipaddress.ip_address("fd00:2::99").packed,
                                                  ipaddress.ip_address("fd00:3::99").packed))


def test_dummy_packets_are_dropped_silently(pair):
    a, b = pair
    a.plane.install_child_sa(SA)
    b.plane.install_child_sa(mirror(SA))
    dummy = a.plane._outbound[SA.child_id].outbound.dummy_packet(30)
    assert b.plane.receive_datagram(dummy, a.addr) is None
    assert b.plane.counters()[SA.spi_out].policy_drops_in == 0
    b.app.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.app.recv(2000)


def test_replayed_and_tampered_datagrams_are_counted(pair):
    a, b = pair
    a.plane.install_child_sa(SA)
    b.plane.install_child_sa(mirror(SA))
    a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))
    datagram, addr = b.udp.recvfrom(65536)
    assert b.plane.receive_datagram(datagram, addr) is not None
    assert b.plane.receive_datagram(datagram, addr) is None
    a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))
    tampered = bytearray(b.udp.recv(65536))
    tampered[-3] ^= 1
    assert b.plane.receive_datagram(bytes(tampered), addr) is None
    counters = b.plane.counters()[SA.spi_out]
    assert (counters.packets_in, counters.replay_drops, counters.auth_failures) == (1, 1, 1)
    assert a.plane.counters()[SA.spi_in].packets_out == 2
    assert a.plane.counters()[SA.spi_in].bytes_out == 2 * len(ipv4("10.9.0.2", "10.20.0.1"))


def test_make_before_break_rekey(pair):
    """New inbound SA first, outbound switched, old inbound decrypts until removed."""
    a, b = pair
    old = replace(SA, encr_id=EncrId.AES_CBC, encr_key_bits=256, integ_id=IntegId.HMAC_SHA2_256_128,
                  encr_key_in=bytes(32), encr_key_out=bytes(range(32)),
                  integ_key_in=bytes(range(5, 37)), integ_key_out=bytes(range(9, 41)))
    new = replace(SA, spi_in=b"\x00\x00\x10\x02", spi_out=b"\x00\x00\x20\x02",
                  encr_id=EncrId.CHACHA20_POLY1305, encr_key_bits=256,
                  encr_key_in=bytes(range(40, 76)), encr_key_out=bytes(range(80, 116)))
    a.plane.install_child_sa(old)
    b.plane.install_child_sa(mirror(old))
    b.plane.send_packet(ipv4("10.20.0.1", "10.9.0.2", b"late"))  # in flight during the rekey
    late = a.udp.recvfrom(65536)

    # Responder side (b) installs the new pair but keeps sending on the old one ...
    b.plane.install_child_sa(mirror(new), activate_outbound=False)
    # ... initiator side (a) installs and switches at once.
    a.plane.install_child_sa(new)
    a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1", b"new"))
    datagram = b.udp.recv(65536)
    assert datagram[:4] == new.spi_out
    assert b.plane.receive_datagram(datagram, a.addr) == ipv4("10.9.0.2", "10.20.0.1", b"new")
    assert a.plane.receive_datagram(*late) == ipv4("10.20.0.1", "10.9.0.2", b"late")  # old inbound

    b.plane.activate_outbound(new.spi_out)
    b.plane.send_packet(ipv4("10.20.0.1", "10.9.0.2", b"b new"))
    datagram, addr = a.udp.recvfrom(65536)
    assert datagram[:4] == new.spi_in
    a.plane.remove_child_sa(old.spi_in)
    b.plane.remove_child_sa(mirror(old).spi_in)
    assert set(a.plane.counters()) == {new.spi_in}
    assert a.plane.receive_datagram(datagram, addr) is not None
    assert a.plane.receive_datagram(late[0][:4] + bytes(60), late[1]) is None  # old SPI is gone
    assert a.plane.global_counters.unknown_spi == 1


def test_removing_the_only_sa_stops_traffic(pair):
    a, _ = pair
    a.plane.install_child_sa(SA)
    a.plane.remove_child_sa(SA.spi_in)
    a.plane.remove_child_sa(SA.spi_in)  # unknown: no error
    assert not a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))


def test_soft_limit_becomes_an_event_for_the_engine(pair):
    a, b = pair
    a.plane.limits = esp.SaLimits(soft_packets=3, hard_packets=5)
    a.plane.install_child_sa(SA)
    for _ in range(6):
        a.plane.send_packet(ipv4("10.9.0.2", "10.20.0.1"))
    assert a.events == [
        SaLimitReached(SA.child_id, SA.spi_in, SA.spi_out, "out", "soft", "packets"),
        SaLimitReached(SA.child_id, SA.spi_in, SA.spi_out, "out", "hard", "packets"),
    ]
    assert a.plane.counters()[SA.spi_in].packets_out == 5


def test_keys_are_not_in_reprs():
    assert bytes(range(20)).hex() not in repr(SA) and repr(bytes(range(20))) not in repr(SA)
    from client.dataplane import _Child

    a = Endpoint()
    try:
        a.plane.install_child_sa(SA)
        text = repr(a.plane._inbound[SA.spi_in]) + repr(a.plane.counters())
        assert "encr_key" not in text and repr(bytes(range(20))) not in text
    finally:
        a.close()


# --- real TUN devices in two network namespaces (root) ----------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and TUN")

ENDPOINT_SCRIPT = r"""
import asyncio, ipaddress, json, signal, socket, sys
from dataclasses import replace
sys.path.insert(0, {repo!r})
from client.dataplane import UserspaceDataPlane
from client.tun import TunDevice
from tests.client.test_rfc3948_udp_encap import FakeChildSa
from tests.client.test_userspace_dataplane import mirror
conf = json.loads(sys.argv[1])
sa = FakeChildSa(encr_id=conf["encr_id"], encr_key_bits=conf["bits"], integ_id=conf["integ_id"],
                 encr_key_in=bytes.fromhex(conf["ek_in"]), encr_key_out=bytes.fromhex(conf["ek_out"]),
                 integ_key_in=bytes.fromhex(conf["ik_in"]), integ_key_out=bytes.fromhex(conf["ik_out"]),
                 esn=conf["esn"],
                 local_ts=(ipaddress.ip_network(conf["vip"] + "/32"),),
                 remote_ts=(ipaddress.ip_network(conf["peer_vip"] + "/32"),))
if conf["mirror"]:
    sa = mirror(replace(sa, local_ts=sa.remote_ts, remote_ts=sa.local_ts))
tun = TunDevice.create("cygtun%d", vnet_hdr=conf.get("vnet_hdr", False), tso=conf.get("tso", False))
tun.configure([conf["vip"] + "/32"], mtu=conf.get("mtu", 1400), routes=[conf["peer_vip"] + "/32"])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((conf["addr"], 4500))
async def main():
    plane = UserspaceDataPlane(tun, sock, (conf["peer_addr"], 4500), **conf.get("options", {{}}))
    plane.install_child_sa(sa)
    plane.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", tun.name, flush=True)
    await stop.wait()
    print(json.dumps(vars(plane.global_counters)), flush=True)
    print(json.dumps({{k.hex(): vars(v) | {{"spi_in": v.spi_in.hex(), "spi_out": v.spi_out.hex()}}
                      for k, v in plane.counters().items()}}), flush=True)
    plane.close()
asyncio.run(main())
"""


class Namespaces:
    """Two namespaces joined by a veth pair, 198.51.100.1 <-> 198.51.100.2; removed on close."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.names = (f"cygesp-a{tag}", f"cygesp-b{tag}")
        self.processes: list[subprocess.Popen] = []
        for name in self.names:
            subprocess.run(["ip", "netns", "add", name], check=True)
        a, b = self.names
        subprocess.run(["ip", "link", "add", "veth-cyg-a", "netns", a, "type", "veth",
                        "peer", "name", "veth-cyg-b", "netns", b], check=True)
        for ns, dev, addr in ((a, "veth-cyg-a", "198.51.100.1/24"), (b, "veth-cyg-b", "198.51.100.2/24")):
            self.run(ns, "ip", "addr", "add", addr, "dev", dev)
            self.run(ns, "ip", "link", "set", dev, "up")
            self.run(ns, "ip", "link", "set", "lo", "up")

    def run(self, ns, *command, **kwargs):
        return subprocess.run(["ip", "netns", "exec", ns, *command], check=True, **kwargs)

    def spawn(self, ns, *command, **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(["ip", "netns", "exec", ns, *command], **kwargs)
        self.processes.append(process)
        return process

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def start_endpoints(ns: Namespaces, sa_config: dict, **extra):
    script = ENDPOINT_SCRIPT.format(repo=str(REPO))
    sides = [
        dict(addr="198.51.100.1", peer_addr="198.51.100.2", vip="10.99.0.1", peer_vip="10.99.0.2", mirror=False),
        dict(addr="198.51.100.2", peer_addr="198.51.100.1", vip="10.99.0.2", peer_vip="10.99.0.1", mirror=True),
    ]
    processes = []
    for name, side in zip(ns.names, sides):
        conf = sa_config | side | extra
        process = ns.spawn(name, sys.executable, "-c", script, json.dumps(conf),
                           stdout=subprocess.PIPE, text=True, cwd=REPO)
        processes.append(process)
    for process in processes:
        line = process.stdout.readline()
        assert line.startswith("ready"), f"endpoint did not start: {line!r}"
    return processes


def stop_endpoints(processes) -> list[dict]:
    results = []
    for process in processes:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


PING_SCRIPT = r"""
import socket, struct, sys, time
def checksum(data):
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(2)
replies = 0
for seq in range(1, 4):
    body = struct.pack("!HH", 0x4359, seq) + b"cygnet ping" * 10
    sock.sendto(struct.pack("!BBH", 8, 0, checksum(b"\x08\x00\x00\x00" + body)) + body, (sys.argv[1], 0))
    while True:
        data = sock.recv(2000)
        icmp = data[(data[0] & 15) * 4:]
        if icmp[0] == 0 and icmp[4:8] == body[:4]:
            replies += 1
            break
print(replies)
"""

TCP_SINK = r"""
import hashlib, socket, sys
server = socket.create_server((sys.argv[1], 5001))
print("listening", flush=True)
conn, _ = server.accept()
digest, total = hashlib.sha256(), 0
while chunk := conn.recv(262144):
    digest.update(chunk); total += len(chunk)
conn.sendall(f"{total} {digest.hexdigest()}".encode())
conn.close()
"""

TCP_SOURCE = r"""
import os, socket, sys, hashlib, time
data = os.urandom(int(sys.argv[2]))
conn = socket.create_connection((sys.argv[1], 5001), timeout=30)
start = time.monotonic()
conn.sendall(data)
conn.shutdown(socket.SHUT_WR)
answer = conn.recv(200).decode()
elapsed = time.monotonic() - start
print(answer == f"{len(data)} {hashlib.sha256(data).hexdigest()}", elapsed)
"""

SUITE_CONFIGS = {
    "aes128gcm16": dict(encr_id=int(EncrId.AES_GCM_16), bits=128, integ_id=None,
                        ek_in=bytes(range(20)).hex(), ek_out=bytes(range(50, 70)).hex(), ik_in="", ik_out="",
                        esn=False),
    "aes256-sha256-esn": dict(encr_id=int(EncrId.AES_CBC), bits=256, integ_id=int(IntegId.HMAC_SHA2_256_128),
                              ek_in=bytes(range(32)).hex(), ek_out=bytes(range(50, 82)).hex(),
                              ik_in=bytes(range(100, 132)).hex(), ik_out=bytes(range(140, 172)).hex(), esn=True),
}


@pytest.mark.interop
@needs_root
@pytest.mark.timeout(120)
@pytest.mark.parametrize("offload", [{}, {"vnet_hdr": True}, {"tso": True}], ids=["plain", "gso-write", "tso"])
@pytest.mark.parametrize("suite", list(SUITE_CONFIGS))
def test_tunnel_between_two_namespaces(suite, offload):
    ns = Namespaces()
    try:
        processes = start_endpoints(ns, SUITE_CONFIGS[suite], **offload)
        a, b = ns.names
        ping = ns.run(a, sys.executable, "-c", PING_SCRIPT, "10.99.0.2", capture_output=True, text=True, timeout=20)
        assert ping.stdout.strip() == "3"

        sink = ns.spawn(b, sys.executable, "-c", TCP_SINK, "10.99.0.2", stdout=subprocess.PIPE, text=True)
        assert sink.stdout.readline().startswith("listening")
        size = 4 * 1024 * 1024
        source = ns.run(a, sys.executable, "-c", TCP_SOURCE, "10.99.0.2", str(size),
                        capture_output=True, text=True, timeout=60)
        ok, elapsed = source.stdout.split()
        assert ok == "True", source.stdout + source.stderr
        sink.wait(10)

        counters_a, counters_b = stop_endpoints(processes)
        sa_a = next(iter(counters_a.values()))
        sa_b = next(iter(counters_b.values()))
        assert sa_a["bytes_out"] > size and sa_b["bytes_in"] > size  # every byte crossed (plus headers)
        assert sa_b["auth_failures"] == 0 and sa_b["replay_drops"] == 0
        print(f"{suite} offload={offload}: {size * 8 / float(elapsed) / 1e6:.0f} Mbit/s for {size} bytes;"
              f" a out {sa_a['packets_out']} pkts, b in {sa_b['packets_in']} pkts")
    finally:
        ns.close()
