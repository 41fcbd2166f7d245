"""Watching processes and the tunnel: first ping reply, CPU time and RSS from /proc."""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time

from testbed import netsock

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (man 5 proc).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def schedstat(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for a CPU) of a process's live threads,
    from /proc/<pid>/task/<tid>/schedstat. The waiting time shows CPU starvation: a process
    that used 0.3 cores and waited 0.6 wanted a whole core but other load took it."""
    on_cpu = waiting = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                fields = f.read().split()
        except (FileNotFoundError, ProcessLookupError):
            continue    # the thread ended meanwhile
        on_cpu += int(fields[0])
        waiting += int(fields[1])
    return on_cpu / 1e9, waiting / 1e9


def cpu_seconds_precise(pid: int) -> float:
    """CPU time of a process's live threads in nanosecond resolution: the first field of
    /proc/<pid>/task/<tid>/schedstat (time on CPU), summed. /proc/<pid>/stat counts in clock
    ticks (10 ms here), too coarse for a few dozen handshakes."""
    return schedstat(pid)[0]


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (VmRSS from /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mb(pid: int) -> tuple[float, int]:
    """(RSS in MB, number of processes) of a process and all its descendants: Cygnet's netlink
    agent (client/netlink_agent.py) counts while it is alive."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, count, todo = 0.0, 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += rss_mb(current)
        except OSError:
            continue
        count += 1
        todo.extend(children.get(current, []))
    return total, count


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]              # idle + iowait
    total = sum(values[:8])                   # user … steal (guest time is inside user)
    return total - idle, total


class CpuMeter:
    """CPU time of some processes over a stretch of wall time: `with CpuMeter({"client": pid})`.

    cores[name]: utime+stime (/proc/<pid>/stat) / wall time; waiting[name]: time its threads
    were runnable but had no CPU (schedstat) / wall time; machine_busy: share of all CPUs busy.
    """

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.cores: dict[str, float] = {}
        self.waiting: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def __enter__(self) -> "CpuMeter":
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._wait = {name: schedstat(pid)[1] for name, pid in self.pids.items()}
        self._machine = machine_cpu()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.monotonic() - self._t0
        busy, total = (now - before for now, before in zip(machine_cpu(), self._machine))
        self.machine_busy = busy / total if total else 0.0   # all CPUs, 0..1
        for name, pid in self.pids.items():
            self.cpu[name] = cpu_seconds(pid) - self._start[name]
            self.cores[name] = self.cpu[name] / self.wall
            self.waiting[name] = (schedstat(pid)[1] - self._wait[name]) / self.wall


class FirstPingReply:
    """Pings a host from a namespace every `interval` seconds until the first reply arrives.

    Start it before the VPN client: `wait()` returns the wall-clock time (time.time()) of the
    first echo reply, i.e. the moment traffic first made it through the tunnel and back.
    """

    def __init__(self, namespace: str, destination: str, interval: float = 0.002):
        self.destination = destination
        self.interval = interval
        self.sock = netsock.socket_in(namespace, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.identifier = (os.getpid() ^ id(self)) & 0xFFFF
        self.reply_time: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="first-ping", daemon=True)

    def start(self) -> "FirstPingReply":
        self._thread.start()
        return self

    def wait(self, timeout: float) -> float | None:
        self._thread.join(timeout)
        self.stop()
        return self.reply_time

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()

    def _run(self) -> None:
        sequence = 0
        while not self._stop.is_set():
            sequence = (sequence + 1) & 0xFFFF
            header = struct.pack("!BBHHH", 8, 0, 0, self.identifier, sequence)
            body = b"cygnet-bench"
            checksum = netsock._inet_checksum(header + body)
            try:
                self.sock.sendto(struct.pack("!BBHHH", 8, 0, checksum, self.identifier, sequence)
                                 + body, (self.destination, 0))
            except OSError:
                pass                     # no route yet
            deadline = time.monotonic() + self.interval
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    ready, _, _ = select.select([self.sock], [], [], remaining)
                except (OSError, ValueError):
                    return
                if not ready:
                    break
                data, peer = self.sock.recvfrom(2048)
                now = time.time()
                icmp = data[(data[0] & 0x0F) * 4:]
                if (len(icmp) >= 8 and icmp[0] == 0 and peer[0] == self.destination
                        and struct.unpack("!H", icmp[4:6])[0] == self.identifier):
                    self.reply_time = now
                    return
