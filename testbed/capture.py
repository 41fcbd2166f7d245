"""tcpdump in a namespace, written to a pcap file (kept as an artifact when a test fails)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .netns import Namespace
from .process import Process
from .wait import wait_for


class PacketCapture:
    def __init__(self, namespace: Namespace, pcap: Path, interface: str = "any"):
        self.namespace = namespace
        self.pcap = Path(pcap)
        self.interface = interface
        self.process: Process | None = None
        self._stderr = self.pcap.with_suffix(".tcpdump.log")

    def start(self, timeout: float = 5.0) -> "PacketCapture":
        argv = self.namespace.argv(["tcpdump", "-i", self.interface, "-n", "-U", "--immediate-mode",
                                    "-s", "0", "-w", str(self.pcap)])
        with open(self._stderr, "wb") as stderr:
            self.process = Process(argv, f"tcpdump in {self.namespace.name}",
                                   stdout=subprocess.DEVNULL, stderr=stderr,
                                   stdin=subprocess.DEVNULL)
        # Packets sent before tcpdump says "listening" would be missing from the file.
        wait_for(lambda: b"listening on" in self._stderr.read_bytes(), timeout=timeout,
                 message=lambda: f"tcpdump did not start: {self._stderr.read_text()}",
                 abort=lambda: not self.process.running)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()   # SIGTERM: tcpdump flushes and closes the file
            self.process = None
