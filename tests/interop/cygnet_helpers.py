"""Running the real `cygnet` command in the testbed's client namespace, and checking what it did.

    tb = shared testbed (see `module_testbed`)                 # gateway + LAN, no Cygnet yet
    client = make_cygnet(tb)                                   # fixture: a work dir per test
    client.up(client.profile("psk"))                           # `cygnet up profile.toml`
    assert tb.ping("client", LAN_HOST) == 1
    client.down()                                              # SIGTERM, like Ctrl-C
    client.assert_clean()                                      # no TUN, routes, resolv.conf

Each CygnetClient has its own run directory (CYGNET_RUN_DIR: control socket, route journal,
resolv.conf backup) and its own resolv.conf, bind-mounted over /etc/resolv.conf for the cygnet
process only. Everything cygnet prints (CYGNET_DEBUG=1) goes to `cygnet.log` in the work dir;
on failure it is copied to tests/artifacts/<test>/ with the charon logs.

Test-only engine knobs go through CYGNET_TEST_HOOKS (JSON; see client/testing_hooks.py): fast
retransmissions so dead-peer tests take seconds instead of strongSwan's 165 s, short client
lifetimes for client-initiated rekeys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from client import control

LAN_HOST = "10.1.0.10"
LAN_HOST6 = "fd00:1::10"
DNS_SERVERS = ("10.1.0.53", "10.1.0.54", "fd00:1::53")
# What /etc/resolv.conf holds before the tunnel (the client's "ISP" resolver).
ORIGINAL_RESOLV_CONF = "# before the tunnel\nnameserver 198.51.100.53\nsearch outside.test\n"
# Quick retransmissions for tests that wait for a dead gateway (strongSwan's defaults give up
# after 165 s): sends at 0, 0.5, 1.1, 1.8 s, given up at 2.7 s.
FAST_RETRANSMIT = {"retransmit_tries": 3, "retransmit_timeout": 0.5, "retransmit_base": 1.2}

TEN_MB = 10 * 1024 * 1024


def cygnet_program() -> str:
    """The `cygnet` entry point next to the running interpreter (the project's venv)."""
    candidate = Path(sys.executable).with_name("cygnet")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("cygnet")
    if found is None:
        pytest.skip("the cygnet command is not installed (pip install -e .)")
    return found


# ------------------------------------------------------------------------------ fixtures


def module_testbed(pki, **testbed_kwargs):
    """Generator for a module-scoped testbed fixture (tests that leave the gateway as they
    found it share one: bring-up is ~1 s, a gateway restart is not needed between them).

        @pytest.fixture(scope="module")
        def tb(pki):
            yield from module_testbed(pki, capture=False)
    """
    from testbed import Testbed

    testbed_kwargs.setdefault("iperf", False)
    testbed = Testbed(pki, **testbed_kwargs)
    try:
        testbed.start()
        yield testbed
    finally:
        testbed.close()
        _assert_namespaces_gone(testbed)


def _assert_namespaces_gone(testbed) -> None:
    left = [ns.name for ns in testbed.topology.namespaces if ns.exists()]
    assert not left, f"namespaces left behind: {left}"


@pytest.fixture
def make_cygnet(request, tmp_path):
    """make_cygnet(testbed, name="tunnel") -> CygnetClient; every client's processes are
    ended after the test (by PID), and its log saved with the testbed's on failure."""
    made: list[CygnetClient] = []

    def make(testbed, name: str = "tunnel") -> CygnetClient:
        client = CygnetClient(testbed, tmp_path / f"cygnet-{len(made) + 1}", name)
        made.append(client)
        return client

    yield make
    from tests.conftest import ARTIFACTS_DIR, _test_failed

    failed = _test_failed(request.node)
    for client in made:
        client.kill_everything()
    if failed:
        target = ARTIFACTS_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        target.mkdir(parents=True, exist_ok=True)
        for client in made:
            if client.log_path.exists():
                shutil.copyfile(client.log_path, target / f"{client.dir.name}.log")
        testbeds = {id(c.tb): c.tb for c in made}.values()
        for testbed in testbeds:
            testbed.save_artifacts(target / testbed.topology.prefix)


# ------------------------------------------------------------------------------ the client


class CygnetError(AssertionError):
    pass


class CygnetClient:
    """One cygnet tunnel under test: profile files, secrets (mode 0600), process, checks."""

    def __init__(self, testbed, workdir: Path, name: str = "tunnel"):
        self.tb = testbed
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.name = name
        self.run_dir = self.dir / "run"
        self.resolv_conf = self.dir / "resolv.conf"
        self.resolv_conf.write_text(ORIGINAL_RESOLV_CONF)
        self.log_path = self.dir / "cygnet.log"
        self.hooks: dict = {}
        # argv -> argv that runs a cygnet command somewhere else than the plain client
        # namespace, e.g. inside a systemd-resolved sandbox (testbed/resolved.py)
        self.enter = None
        self.process = None
        self._log_file = None
        self.started_at = 0.0
        self.up_after: float | None = None    # seconds from exec to "tunnel up"
        # What the client namespace looked like before: checked again by assert_clean().
        self.routes_before = self.routes()

    # -- profiles and secrets -------------------------------------------------------------

    def secret_file(self, filename: str, text: str) -> Path:
        path = self.dir / filename
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def write_profile(self, keys: dict, filename: str | None = None) -> Path:
        path = self.dir / (filename or f"{self.name}.toml")
        path.write_text(to_toml(keys))
        return path

    def profile_keys(self, method: str, **overrides) -> dict:
        """Profile keys for `method` against the testbed gateway (see testbed/gateway.py:
        the identity picks the gateway's connection)."""
        from testbed import EAP_IDENTITIES, GATEWAY_NAME, PSK_IDENTITY

        pki = self.tb.pki
        gateway = self.tb.gateway
        keys: dict = {"name": self.name, "gateway": self.tb.gateway_address,
                      "remote_id": GATEWAY_NAME}
        if method == "psk":
            keys.update(auth="psk", local_id=PSK_IDENTITY,
                        psk_file=str(self.secret_file("psk", gateway.psk)))
        elif method in ("rsa", "ecdsa", "ed25519", "chain", "rogue"):
            credential = {"rsa": pki.alice, "ecdsa": pki.bob, "ed25519": pki.carol,
                          "chain": pki.dave, "rogue": pki.mallory}[method]
            keys.update(auth="pubkey", local_id=credential.identity,
                        cert=str(self.certificate_with_chain(credential)),
                        key=str(credential.key), ca=str(pki.root_ca))
        elif method in ("eap-mschapv2", "eap-md5"):
            identity, password = gateway.eap_users[method]
            keys.update(auth=method, eap_identity=identity, local_id=identity,
                        password_file=str(self.secret_file(f"{method}.password", password)),
                        ca=str(pki.root_ca))
        elif method == "eap-tls":
            keys.update(auth="eap-tls", local_id=EAP_IDENTITIES["eap-tls"],
                        cert=str(pki.eaptls.cert), key=str(pki.eaptls.key), ca=str(pki.root_ca))
        else:
            raise ValueError(f"unknown method {method!r}")
        keys.update(overrides)
        return {k: v for k, v in keys.items() if v is not None}

    def profile(self, method: str, **overrides) -> Path:
        return self.write_profile(self.profile_keys(method, **overrides))

    def certificate_with_chain(self, credential) -> Path:
        """The certificate followed by its intermediates: what a profile's `cert` may hold."""
        if not credential.intermediates:
            return credential.cert
        path = self.dir / f"{credential.name}-chain.pem"
        path.write_bytes(b"".join(p.read_bytes() for p in (credential.cert, *credential.intermediates)))
        return path

    def secrets(self) -> list[str]:
        """Every secret of the gateway this client might have been given."""
        gateway = self.tb.gateway
        return [gateway.psk, *(password for _, password in gateway.eap_users.values())]

    # -- running cygnet -------------------------------------------------------------------

    def env(self, **extra) -> dict:
        env = dict(os.environ, CYGNET_RUN_DIR=str(self.run_dir), CYGNET_DEBUG="1",
                   XDG_CONFIG_HOME=str(self.dir / "config"), PYTHONUNBUFFERED="1")
        env.pop("CYGNET_TEST_HOOKS", None)
        if self.hooks:
            env["CYGNET_TEST_HOOKS"] = json.dumps(self.hooks)
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        if self.enter is not None:
            return self.enter([cygnet_program(), *args])
        return self.tb.client_argv([cygnet_program(), *args], resolv_conf=self.resolv_conf)

    def start(self, profile: Path | str, *extra_args: str, **popen_kwargs):
        """`cygnet up PROFILE` in the background; output appended to cygnet.log."""
        assert self.process is None or not self.process.running, "already running"
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"\n=== cygnet up {profile} {' '.join(extra_args)}\n".encode())
        self._log_file.flush()
        self._log_offset = self.log_path.stat().st_size
        self.started_at = time.monotonic()
        self.up_after = None
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        if self.enter is not None:
            from testbed.process import Process

            self.process = Process(self.argv("up", str(profile), *extra_args),
                                   f"cygnet up {Path(str(profile)).name}", stdout=self._log_file,
                                   stderr=subprocess.STDOUT, env=self.env(), **popen_kwargs)
            self.tb.processes.append(self.process)
            return self
        self.process = self.tb.client_popen(
            [cygnet_program(), "up", str(profile), *extra_args], resolv_conf=self.resolv_conf,
            description=f"cygnet up {Path(str(profile)).name}", stdout=self._log_file,
            stderr=subprocess.STDOUT, env=self.env(), **popen_kwargs)
        return self

    def output(self) -> str:
        """What the current (or last) `cygnet up` printed so far."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "_log_offset", 0))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, text: str, timeout: float = 15.0, count: int = 1) -> None:
        """Wait until the current run has printed `text` (`count` times)."""
        from testbed import wait_for

        def seen():
            if self.output().count(text) >= count:
                return True
            if not self.process.running:
                raise CygnetError(f"cygnet exited with {self.process.popen.returncode} before "
                                  f"printing {text!r}:\n{self.tail()}")
            return False

        wait_for(seen, timeout=timeout, interval=0.02,
                 message=lambda: f"cygnet did not print {text!r} within {timeout} s:\n{self.tail()}")

    def wait_up(self, timeout: float = 15.0) -> "CygnetClient":
        self.wait_for_output("tunnel up", timeout)
        self.up_after = time.monotonic() - self.started_at
        return self

    def up(self, profile: Path | str, *extra_args: str, timeout: float = 15.0) -> "CygnetClient":
        return self.start(profile, *extra_args).wait_up(timeout)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise CygnetError(f"cygnet still runs after {timeout} s:\n{self.tail()}") from None

    def down(self, timeout: float = 10.0) -> int:
        """SIGTERM (as Ctrl-C or systemd would), then the exit code."""
        if self.process is None:
            return 0
        if self.process.running:
            self.process.popen.send_signal(signal.SIGTERM)
        code = self.wait_exit(timeout)
        self.process.stop()
        return code

    def kill(self) -> None:
        """SIGKILL the engine: it cannot clean anything up."""
        self.process.popen.kill()
        self.process.wait(5)
        self.process.stop()

    def run(self, *args: str, timeout: float = 30.0, check: bool = False, **env):
        """Run a cygnet command (status, down, import, up --daemon…) to completion in the
        client namespace with this client's run dir; returns CompletedProcess."""
        from testbed import netns

        return netns.run(self.argv(*args), timeout=timeout, check=check, env=self.env(**env))

    def status(self) -> dict:
        """The first tunnel of `cygnet status --json`."""
        result = self.run("status", "--json", check=True)
        reports = json.loads(result.stdout)
        assert reports, f"cygnet status --json lists no tunnel: {result.stdout}"
        return reports[0]

    def control_status(self) -> dict:
        """The tunnel's status straight from its control socket (what `cygnet status --json`
        prints, without starting a Python process: for polling)."""
        answer = control.request_at(self.run_dir / f"{self.name}.sock", "status", timeout=5)
        assert answer.get("ok"), answer
        return answer["status"]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def engine_pids(self) -> list[int]:
        """PIDs of cygnet engines in the client namespace (found by PID listing, then argv)."""
        pids = []
        for pid in self.tb.client_ns.pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"/cygnet") for a in argv) and b"up" in argv:
                pids.append(pid)
        return pids

    def kill_everything(self) -> None:
        """End this client's processes by PID (including a --daemon child)."""
        if self.process is not None:
            if self.process.running:
                self.process.popen.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            self.process.stop()
        for pid in self.engine_pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.engine_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.engine_pids():
            os.kill(pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -- what the system looks like -------------------------------------------------------

    def links(self) -> list[str]:
        out = self.tb.client_ns.ip("-o", "link", "show").stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def tun_links(self) -> list[str]:
        return [name for name in self.links() if name.startswith("cygnet")]

    def routes(self) -> str:
        ns = self.tb.client_ns
        return ns.ip("route", "show").stdout + ns.ip("-6", "route", "show").stdout

    def assert_clean(self) -> None:
        """Nothing left behind: no TUN device, routes as before, resolv.conf as before, no
        journal / backup / socket in the run directory (a --daemon's log stays, as logs do)."""
        assert self.tun_links() == [], f"TUN devices left: {self.tun_links()}"
        assert self.routes() == self.routes_before, (
            f"routes changed:\nbefore:\n{self.routes_before}\nafter:\n{self.routes()}")
        assert self.resolv_conf.read_text() == ORIGINAL_RESOLV_CONF
        left = sorted(p.name for p in self.run_dir.glob("*")
                      if not p.name.endswith(".log")) if self.run_dir.exists() else []
        assert left == [], f"left in the run directory: {left}"


def to_toml(keys: dict) -> str:
    """Flat TOML for a profile (strings, numbers, booleans, lists of strings)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))   # a JSON string is a valid TOML basic string

    return "".join(f"{k} = {value(v)}\n" for k, v in keys.items())


# ------------------------------------------------------------------------------ traffic


def tcp_echo_transfer(namespace: str, host: str, size: int = TEN_MB, *,
                      timeout: float = 30.0, port: int | None = None,
                      rate: float | None = None) -> float:
    """Send `size` random bytes to the LAN echo service and check every byte comes back in
    order; returns the seconds it took. Sends and receives at once (an echo server blocks
    once our receive buffer is full). rate: bytes per second to pace the sender to, so a
    transfer can span a given time without saturating the tunnel."""
    from testbed import netsock
    from testbed.lan_services import ECHO_PORT

    payload = os.urandom(size)
    started = time.monotonic()
    sock = netsock.tcp_connect(namespace, host, port or ECHO_PORT, timeout=5)
    sock.settimeout(timeout)
    errors: list[BaseException] = []

    def send():
        try:
            view = memoryview(payload)
            chunk = 16 * 1024 if rate else 256 * 1024
            for offset in range(0, size, chunk):
                sock.sendall(view[offset:offset + chunk])
                if rate and offset + chunk < size:
                    # Sleep until this many bytes are due at the given rate.
                    due = started + (offset + chunk) / rate
                    time.sleep(max(0.0, due - time.monotonic()))
            sock.shutdown(socket.SHUT_WR)
        except BaseException as error:   # reported by the receiving side
            errors.append(error)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = bytearray()
    try:
        while len(received) < size:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += chunk
    finally:
        sender.join(timeout)   # before closing: the sender may still be shutting down
        sock.close()
    elapsed = time.monotonic() - started
    assert not errors, f"sending failed: {errors[0]!r}"
    assert len(received) == size, f"{len(received)} of {size} bytes came back"
    assert bytes(received) == payload, "the echoed bytes differ from what was sent"
    return elapsed


def ping_flood(namespace: str, destination: str, *, count: int, interval: float = 0.005,
               timeout: float = 30.0) -> tuple[int, int]:
    """`ping -i interval -c count` from the namespace; returns (sent, received)."""
    argv = ["ip", "netns", "exec", namespace, "ping", "-n", "-q", "-i", str(interval),
            "-c", str(count), "-W", "2", destination]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    match = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", result.stdout)
    assert match, f"unexpected ping output: {result.stdout}{result.stderr}"
    return int(match.group(1)), int(match.group(2))


# ------------------------------------------------------------------------------ a terminal


def run_on_terminal(client: CygnetClient, args: list[str], answers: dict[str, str], *,
                    until_exit: bool = True, timeout: float = 20.0) -> tuple[int, str]:
    """Run `cygnet ARGS` with a pseudo-terminal as its controlling terminal (as a user at a
    shell would), typing answers[prompt] + Enter when `prompt` appears. Returns (exit code,
    everything that appeared on the terminal). For `up --daemon`: the parent exits once the
    tunnel is up and the engine lets go of the terminal."""
    import fcntl
    import pty
    import select
    import termios

    master, slave = pty.openpty()

    def controlling_terminal():   # runs in the child after setsid (start_new_session)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        # As in an interactive shell's foreground job: pytest may run with SIGINT ignored
        # (a background job of a script), and ignored signals are inherited across exec.
        for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)

    process = subprocess.Popen(client.argv(*args), stdin=slave, stdout=slave, stderr=slave,
                               env=client.env(), start_new_session=True,
                               preexec_fn=controlling_terminal)
    os.close(slave)
    screen = b""
    pending = dict(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:      # EIO: every process let go of the terminal
                    break
                if not data:
                    break
                screen += data
                for prompt in list(pending):
                    if prompt.encode() in screen:
                        os.write(master, pending.pop(prompt).encode() + b"\n")
            elif not until_exit and process.poll() is not None:
                break
        code = process.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise CygnetError(f"cygnet {' '.join(args)} did not finish:\n"
                          f"{screen.decode(errors='replace')}") from None
    finally:
        os.close(master)
    return code, screen.decode(errors="replace")
