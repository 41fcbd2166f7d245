"""The two clients under comparison, started the way a user starts them.

Cygnet: `cygnet up PROFILE.toml` (a fresh process each time) in the testbed's client namespace.
strongSwan: a fresh charon in the same namespace (testbed StrongswanClient: kernel-libipsec,
its own mount namespace), configured with swanctl, brought up with `swanctl --initiate`.

Both authenticate with the same credentials against the same gateway; METHODS maps the
benchmark's method names to what each side needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from testbed import GATEWAY_NAME, PSK_IDENTITY, CharonSettings, ClientOptions, Testbed, topology
from testbed.charon import CHARON_PLUGINS

from .cgroup import CpuGroup, GroupedNamespace
from .probe import FirstPingReply

REPO = Path(__file__).resolve().parents[1]
CYGNET = REPO / ".venv" / "bin" / "cygnet"
LAN_HOST = topology.LAN_HOST_ADDR


_cpu_group: CpuGroup | None = None


def set_cpu_group(group: CpuGroup | None) -> None:
    """Start every client process from now on inside `group` (see bench/cgroup.py)."""
    global _cpu_group
    _cpu_group = group


def client_namespace(tb: Testbed):
    """The client namespace; its commands join the benchmark's CPU group if there is one."""
    return GroupedNamespace(tb.client_ns, _cpu_group) if _cpu_group else tb.client_ns


def in_cpu_group(argv: list[str]) -> list[str]:
    return _cpu_group.wrap(argv) if _cpu_group else list(argv)


@dataclass(frozen=True)
class Method:
    """One way of authenticating, for both clients."""
    name: str                 # benchmark name
    strongswan_conn: str      # connection name in the strongSwan client's swanctl.conf
    gateway_certificate: str  # GatewayOptions.certificate the gateway presents
    credential: str | None = None   # pki credential (certificate methods)


METHODS = {
    "psk": Method("psk", "psk", "rsa"),
    "ecdsa": Method("ecdsa", "ecdsa", "ecdsa", "bob"),
    "rsa": Method("rsa", "rsa", "rsa", "alice"),
    "eap-mschapv2": Method("eap-mschapv2", "eap-mschapv2", "rsa"),
}


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def write_profile(tb: Testbed, method: Method, workdir: Path, esp: str | None = None) -> Path:
    """A Cygnet profile for `method` against the testbed gateway (secrets in 0600 files)."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [f'gateway = "{tb.gateway_address}"', f'remote_id = "{GATEWAY_NAME}"']
    if method.name == "psk":
        psk = _private(workdir / "psk", tb.gateway.psk)
        lines += ['auth = "psk"', f'psk_file = "{psk}"', f'local_id = "{PSK_IDENTITY}"']
    elif method.name == "eap-mschapv2":
        identity, password = tb.gateway.eap_users["eap-mschapv2"]
        secret = _private(workdir / "eap-password", password)
        lines += ['auth = "eap-mschapv2"', f'local_id = "{identity}"', f'eap_identity = "{identity}"',
                  f'password_file = "{secret}"', f'ca = "{tb.pki.root_ca}"']
    else:
        credential = tb.pki.credentials[method.credential]
        lines += ['auth = "pubkey"', f'local_id = "{credential.identity}"',
                  f'cert = "{credential.cert}"', f'key = "{credential.key}"',
                  f'ca = "{tb.pki.root_ca}"']
    if esp:
        lines.append(f'esp = "{esp}"')
    lines.append("dpd = 0")
    profile = workdir / f"bench-{method.name}{'-' + esp if esp else ''}.toml"
    return _private(profile, "\n".join(lines) + "\n")


def use_gateway_certificate(tb: Testbed, method: Method) -> None:
    """Make the gateway present the certificate type `method` is measured with."""
    if tb.gateway.options.certificate != method.gateway_certificate:
        tb.gateway.reconfigure(replace(tb.gateway.options, certificate=method.gateway_certificate))


class CygnetClient:
    """`cygnet up PROFILE` in the client namespace; `stop()` is Ctrl-C's SIGTERM equivalent."""

    def __init__(self, tb: Testbed, profile: Path, workdir: Path, wrapper: list[str] = ()):
        self.tb = tb
        self.wrapper = list(wrapper)   # e.g. a profiler that runs cygnet in its own process
        self.profile = profile
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.output = workdir / "cygnet.out"
        self.lines: list[tuple[float, str]] = []   # (time.time(), progress line) as printed

    def start(self) -> "CygnetClient":
        self.workdir.mkdir(parents=True, exist_ok=True)
        resolv = self.workdir / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        env = dict(os.environ, CYGNET_RUN_DIR=str(self.workdir / "run"))
        argv = in_cpu_group(self.tb.client_argv([*self.wrapper, str(CYGNET), "up", str(self.profile)],
                                                resolv_conf=resolv))
        # sh, ip netns exec, unshare and sh all exec in place: this PID is cygnet's own.
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        threading.Thread(target=self._read_output, daemon=True).start()
        return self

    def _read_output(self) -> None:
        """Timestamp cygnet's progress lines ("contacting …", "tunnel up …") as they come."""
        with open(self.output, "a") as log:
            for raw in self.process.stdout:
                line = raw.decode(errors="replace").rstrip()
                self.lines.append((time.time(), line))
                log.write(line + "\n")

    def phase_times(self, start: float) -> dict:
        """Seconds from `start` to the first line beginning with each progress word."""
        phases = {}
        for word in ("contacting", "tunnel up"):
            for when, line in self.lines:
                if line.startswith(word):
                    phases[word] = when - start
                    break
        return phases

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 8.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


# How often the baseline polls charon's vici socket while it starts: as a user's tooling would
# (an independent harness polled every 2 ms), not the testbed's relaxed 20 ms.
VICI_POLL_INTERVAL = 0.002
# Debian's default charon (strongswan.d, modular loading) registers aesni before openssl, so its
# AES-CBC and AES-GCM come from aesni, HMAC-SHA-256 from openssl (`swanctl --list-algs`). The
# testbed's load list has no aesni: openssl does all three. The baseline uses the user's choice.
USER_CHARON_PLUGINS = "aesni " + CHARON_PLUGINS


def start_strongswan(tb: Testbed, esp: str | None = None, connection: str | None = None):
    """A fresh charon initiator in the client namespace with only `connection` (a METHODS
    strongswan_conn) and its credentials loaded, as a user's charon for that one measurement;
    every method's connection if None."""
    options = ClientOptions(esp_proposals=(esp,) if esp else ("default",),
                            methods=(connection,) if connection else None,
                            charon=CharonSettings(plugins=USER_CHARON_PLUGINS),
                            vici_poll_interval=VICI_POLL_INTERVAL)
    return tb.strongswan_client(options, role=client_namespace(tb))


@dataclass
class ColdStart:
    """One cold start: wall-clock start, first ping reply through the tunnel, RSS once up."""
    start: float
    reply: float | None
    rss_mb: float | None = None
    phases: dict | None = None     # Cygnet: seconds to its "contacting" and "tunnel up" lines

    @property
    def seconds(self) -> float | None:
        return None if self.reply is None else self.reply - self.start


def cold_start_cygnet(tb: Testbed, profile: Path, workdir: Path, timeout: float = 20.0,
                      keep: bool = False, wrapper: list[str] = ()):
    """Start `cygnet up` and wait for the first ping reply from the LAN host through it.

    Returns (ColdStart, client); the client is stopped unless keep=True.
    """
    pinger = FirstPingReply(tb.client_ns.name, LAN_HOST).start()
    client = CygnetClient(tb, profile, workdir, wrapper)
    start = time.time()
    client.start()
    reply = pinger.wait(timeout)
    result = ColdStart(start, reply)
    if reply is not None and client.process.poll() is None:
        from .probe import tree_rss_mb
        result.rss_mb = tree_rss_mb(client.pid)[0]   # with the netlink agent if it is still there
    elif reply is None:
        client.stop()
        raise RuntimeError(f"cygnet did not bring the tunnel up within {timeout} s:\n{client.log_tail()}")
    if not keep:
        client.stop()
    result.phases = client.phase_times(start)
    return result, client


def cold_start_strongswan(tb: Testbed, method: Method, timeout: float = 20.0,
                          esp: str | None = None, keep: bool = False):
    """Start charon, load its configuration and `swanctl --initiate`; wait for the first reply.

    Returns (ColdStart, StrongswanClient); stopped unless keep=True.
    """
    pinger = FirstPingReply(tb.client_ns.name, LAN_HOST).start()
    start = time.time()
    client = start_strongswan(tb, esp, method.strongswan_conn)
    client.charon.initiate("tunnel", ike=method.strongswan_conn, timeout=timeout)
    reply = pinger.wait(timeout)
    result = ColdStart(start, reply)
    if reply is not None:
        from .probe import rss_mb
        result.rss_mb = rss_mb(client.charon.pid)
    if not keep or reply is None:
        client.stop()
    if reply is None:
        raise RuntimeError(f"strongSwan did not bring the tunnel up:\n{client.charon.log_tail()}")
    return result, client


# What any Python IKE client pays before its first packet: the interpreter, asyncio (loaded
# without ssl, as client/engine.py does) and cryptography's OpenSSL binding (the floor under
# `cygnet up`'s cold start).
PYTHON_FLOOR = ("import sys; sys.modules['ssl'] = None; import asyncio; del sys.modules['ssl'];"
                " import cryptography.hazmat.primitives.ciphers.aead")


def python_floor(tb: Testbed, resolv_conf: Path) -> float:
    """Seconds from starting the venv's Python, the way `cygnet up` is started (namespace,
    private mounts, CPU group), to its exit after importing PYTHON_FLOOR."""
    argv = in_cpu_group(tb.client_argv([str(REPO / ".venv" / "bin" / "python"), "-c", PYTHON_FLOOR],
                                       resolv_conf=resolv_conf))
    start = time.time()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.time() - start
