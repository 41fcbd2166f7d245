"""The whole testbed as one context manager: topology + gateway + LAN services (+ captures).

    with Testbed(pki) as tb:                       # gateway up, ready for clients
        tb.client_run(["cygnet", "up", ...], resolv_conf=my_resolv)
        assert tb.ping("client", "10.1.0.10") == 1
        tb.gateway.kill()
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from . import netsock, reaper
from .capture import PacketCapture
from .gateway import Gateway, GatewayOptions
from .lan_services import ECHO_PORT, SINK_PORT
from .netns import Namespace, run, sweep_stale_namespaces
from .pki import Pki
from .process import Process
from .strongswan_client import ClientOptions, StrongswanClient
from .topology import Topology
from .wait import wait_for

LOSS_TABLE = "cygtb_loss"
IPERF_PORT = 5201


def _listening(pid: int, port: int) -> bool:
    """Whether a TCP socket listens on `port` in the network namespace of process `pid`."""
    wanted = f":{port:04X} "
    for table in ("tcp", "tcp6"):
        try:
            lines = open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]
        except OSError:
            return False
        # Fields: sl local_address rem_address st ...; st 0A is LISTEN.
        if any(wanted in f"{fields[1]} " and fields[3] == "0A"
               for fields in (line.split() for line in lines)):
            return True
    return False


class Testbed:
    """Namespaces, a running strongSwan gateway and LAN services; `close()` removes it all.

    nat: None (client and gateway share a link), "masquerade" or "random-ports".
    capture: run tcpdump in the client and gateway namespaces (see `save_artifacts`).
    """

    def __init__(self, pki: Pki, *, nat: str | None = None,
                 gateway_options: GatewayOptions | None = None, capture: bool = False,
                 lan_services: bool = True, iperf: bool = True, start_gateway: bool = True):
        self.pki = pki
        self.topology = Topology(nat=nat)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.topology.prefix}-"))
        # Registered first, so it runs last: after the processes that write into it.
        self._workdir_token = reaper.register(
            f"remove {self.workdir}", lambda: shutil.rmtree(self.workdir, ignore_errors=True))
        self.gateway = Gateway(self.topology.gateway, self.workdir / "gateway", pki,
                               gateway_options)
        self._want_capture = capture
        self._want_lan_services = lan_services
        self._want_iperf = iperf
        self._start_gateway = start_gateway
        self.captures: list[PacketCapture] = []
        self.processes: list[Process] = []
        self.clients: list[StrongswanClient] = []
        self._cleanup_token: int | None = None
        self._closed = False

    # -- names and addresses --------------------------------------------------------------

    @property
    def client_ns(self) -> Namespace: return self.topology.client
    @property
    def gateway_ns(self) -> Namespace: return self.topology.gateway
    @property
    def lan_ns(self) -> Namespace: return self.topology.lan
    @property
    def nat_ns(self) -> Namespace | None: return self.topology.nat_box
    @property
    def gateway_address(self) -> str: return self.topology.gateway_address
    @property
    def gateway_address6(self) -> str: return self.topology.gateway_address6

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> "Testbed":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "Testbed":
        sweep_stale_namespaces()
        self._cleanup_token = reaper.register(f"close testbed {self.topology.prefix}",
                                              self._close_now)
        self.topology.create()
        if self._want_capture:
            self.start_capture(self.gateway_ns)
            self.start_capture(self.client_ns)
        if self._want_lan_services:
            self._start_lan_services()
        if self._start_gateway:
            self.gateway.start()
        # Veth carrier comes up asynchronously: wait for it last, overlapping the above.
        self.topology.wait_links_up()
        if self._want_lan_services:
            for process, port in self._lan_ports:
                wait_for(lambda: _listening(process.pid, port), timeout=10,
                         message=f"{process.description} is not listening on port {port}",
                         abort=lambda: not process.running)
        return self

    def close(self) -> None:
        if self._cleanup_token is not None:
            reaper.run_one(self._cleanup_token)
            self._cleanup_token = None
        elif not self._closed:
            self._close_now()

    def _close_now(self) -> None:
        if self._closed:
            return
        self._closed = True
        for client in self.clients:
            client.charon.kill()
        self.gateway.charon.kill()
        for process in reversed(self.processes):
            process.stop()
        for capture in self.captures:
            capture.stop()
        self.topology.destroy()
        reaper.run_one(self._workdir_token)

    # -- LAN services ---------------------------------------------------------------------

    def _start_lan_services(self) -> None:
        # Run as a plain script: it needs nothing from this package. Its stdin is a pipe
        # from us, so it also ends if this process dies without cleaning up.
        script = Path(__file__).with_name("lan_services.py")
        echo = Process(self.lan_ns.argv([sys.executable, str(script)]),
                       "LAN echo/sink services", stdin=subprocess.PIPE,
                       stdout=subprocess.DEVNULL)
        self.processes.append(echo)
        self._lan_ports = [(echo, ECHO_PORT), (echo, SINK_PORT)]
        if self._want_iperf and shutil.which("iperf3"):
            iperf = Process(self.lan_ns.argv(["iperf3", "--server", "--port", str(IPERF_PORT)]),
                            "iperf3 server", stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            self.processes.append(iperf)
            self._lan_ports.append((iperf, IPERF_PORT))

    # -- running things -------------------------------------------------------------------

    def namespace(self, role: str | Namespace) -> Namespace:
        """"client", "gateway", "lan" or "nat" -> Namespace (a Namespace passes through)."""
        if isinstance(role, Namespace):
            return role
        found = {"client": self.client_ns, "gateway": self.gateway_ns, "gw": self.gateway_ns,
                 "lan": self.lan_ns, "nat": self.nat_ns}.get(role)
        if found is None:
            raise ValueError(f"no namespace {role!r} in this testbed")
        return found

    def run(self, role: str | Namespace, argv: Sequence[str], **kwargs):
        """Run a command to completion in a namespace (see netns.run for kwargs)."""
        return self.namespace(role).run(argv, **kwargs)

    def client_argv(self, argv: Sequence[str], *, resolv_conf: str | Path | None = None,
                    private_run: bool = False) -> list[str]:
        """argv running `argv` in the client namespace inside a private mount namespace.

        resolv_conf: a file bind-mounted over /etc/resolv.conf for that process only, so a
        VPN client under test can rewrite "its" resolv.conf without touching the host's.
        private_run: also mount an empty tmpfs on /run (for pid files and sockets).
        """
        mounts = []
        if private_run:
            mounts.append("mount -t tmpfs cygtb-run /run")
        if resolv_conf is not None:
            mounts.append('mount --bind "$0" /etc/resolv.conf')
        script = " && ".join(mounts + ['exec "$@"'])
        return self.client_ns.argv(["unshare", "--mount", "--propagation", "private",
                                    "sh", "-c", script,
                                    str(resolv_conf) if resolv_conf else "sh", *argv])

    def client_run(self, argv: Sequence[str], *, resolv_conf=None, private_run=False,
                   timeout: float = 60.0, check: bool = True, env: dict | None = None):
        """Run a command to completion in the client namespace (private mounts, see above)."""
        return run(self.client_argv(argv, resolv_conf=resolv_conf, private_run=private_run),
                   timeout=timeout, check=check, env=env)

    def client_popen(self, argv: Sequence[str], *, resolv_conf=None, private_run=False,
                     description: str | None = None, **popen_kwargs) -> Process:
        """Start a long-running command in the client namespace; stopped on close()."""
        process = Process(self.client_argv(argv, resolv_conf=resolv_conf,
                                           private_run=private_run),
                          description or f"client command {argv[0]}", **popen_kwargs)
        self.processes.append(process)
        return process

    def popen(self, role: str | Namespace, argv: Sequence[str], description: str | None = None,
              **popen_kwargs) -> Process:
        """Start a long-running command in any namespace; stopped on close()."""
        ns = self.namespace(role)
        process = Process(ns.argv(argv), description or f"{argv[0]} in {ns.name}",
                          **popen_kwargs)
        self.processes.append(process)
        return process

    def ping(self, role: str | Namespace, destination: str, **kwargs) -> int:
        """ICMP echo from a namespace; returns the number of replies (see netsock.ping)."""
        return netsock.ping(self.namespace(role).name, destination, **kwargs)

    def wait_for_ping(self, role: str | Namespace, destination: str,
                      timeout: float = 10.0) -> None:
        wait_for(lambda: self.ping(role, destination, timeout=0.3), timeout=timeout,
                 message=f"{destination} does not answer pings from {role}")

    def iperf3(self, role: str | Namespace = "client", server: str = "10.1.0.10",
               seconds: float = 3.0, reverse: bool = False, extra_args: Sequence[str] = (),
               timeout: float | None = None) -> dict:
        """Run an iperf3 client against the LAN host's `iperf3 -s`; returns iperf3's JSON.

        Throughput in bit/s: result["end"]["sum_received"]["bits_per_second"].
        """
        argv = ["iperf3", "--client", server, "--time", str(seconds), "--json", *extra_args]
        if reverse:
            argv.append("--reverse")
        result = self.run(role, argv, timeout=timeout or seconds + 20)
        return json.loads(result.stdout)

    # -- impairments ----------------------------------------------------------------------

    def drop_packets(self, percent: int, role: str | Namespace = "client",
                     match: str = "") -> None:
        """Drop `percent` % of packets entering and leaving a namespace (nftables numgen).

        match: an nftables match to limit the loss, e.g. "udp" or "udp dport 4500".
        Replaces any loss set before; percent=0 removes it.
        """
        if not 0 <= percent <= 100:
            raise ValueError("percent must be within 0..100")
        ns = self.namespace(role)
        rules = f"table inet {LOSS_TABLE}\ndelete table inet {LOSS_TABLE}\n"
        if percent:
            chance = "" if percent == 100 else f"numgen random mod 100 < {percent}"
            rule = f"{match} {chance} drop".strip()
            chains = "".join(
                f"  chain {hook} {{ type filter hook {hook} priority -50; policy accept; "
                f"{rule}; }}\n" for hook in ("input", "output", "forward"))
            rules += f"table inet {LOSS_TABLE} {{\n{chains}}}\n"
        ns.nft(rules)

    # -- strongSwan reference client --------------------------------------------------------

    def strongswan_client(self, options: ClientOptions | None = None,
                          role: str | Namespace = "client") -> StrongswanClient:
        """Start a charon initiator in the client namespace (or `role`), configured for
        every method against this gateway; stopped on close()."""
        index = len(self.clients) + 1
        client = StrongswanClient(self.namespace(role), self.workdir / f"strongswan-client-{index}",
                                  self.pki, self.gateway_address, self.gateway.options, options)
        self.clients.append(client)
        return client.start()

    # -- evidence -------------------------------------------------------------------------

    def start_capture(self, role: str | Namespace, interface: str = "any") -> PacketCapture:
        ns = self.namespace(role)
        capture = PacketCapture(ns, self.workdir / f"{ns.name}.pcap", interface).start()
        self.captures.append(capture)
        return capture

    def save_artifacts(self, destination: str | Path) -> Path:
        """Copy pcaps and charon logs into `destination` (e.g. tests/artifacts/<test>).

        Captures keep running (tcpdump writes every packet at once with -U), so a testbed
        shared by several tests can save artifacts more than once.
        """
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        # Configuration files hold secrets: only logs and captures leave the work dir.
        for pattern in ("*.pcap", "*/charon.log", "*/charon.stdout", "*.tcpdump.log"):
            for path in self.workdir.glob(pattern):
                name = path.name if path.parent == self.workdir else f"{path.parent.name}-{path.name}"
                shutil.copyfile(path, destination / name)
        return destination
