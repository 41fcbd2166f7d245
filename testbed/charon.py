"""One charon daemon in a network namespace and its own mount namespace, driven by swanctl.

charon's pid file is fixed at /var/run/charon.pid, so each charon gets a private mount
namespace with a tmpfs on /run. Its settings come from a private strongswan.conf
(STRONGSWAN_CONF replaces /etc/strongswan.conf), its vici socket and log live in its work
directory, and kernel-libipsec (userspace ESP over TUN) is loaded before kernel-netlink because
this kernel has no ESP.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import reaper
from .conffile import merge_settings, render, write_private
from .netns import CommandError, Namespace, run
from .requirements import require_plugins
from .vici_text import parse_pretty
from .wait import wait_for

CHARON = "/usr/lib/ipsec/charon"

CHARON_PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 pkcs12 x509 constraints pubkey curve25519 "
    "aes sha1 sha2 md5 hmac gcm chapoly kdf "
    "kernel-libipsec kernel-netlink socket-default vici "
    "eap-identity eap-mschapv2 eap-md5 eap-tls resolve"
)
SWANCTL_SUBDIRS = ("x509", "x509ca", "x509aa", "x509ocsp", "x509crl", "x509ac", "pubkey",
                   "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12")
SWANCTL_PLUGINS = "random nonce openssl pem pkcs1 pkcs8 pkcs12 x509 pubkey"


@dataclass
class CharonSettings:
    """strongswan.conf knobs tests vary. None keeps charon's default."""

    cookie_threshold: int | None = None
    cookie_threshold_ip: int | None = None
    block_threshold: int | None = None
    init_limit_half_open: int | None = None
    retransmit_timeout: float | None = None
    retransmit_tries: int | None = None
    retransmit_base: float | None = None
    fragment_size: int | None = None
    extra_plugins: tuple[str, ...] = ()          # e.g. ("ha",), appended to charon.load
    # charon.load (order picks crypto implementations); read when the settings are made, so a
    # lane that patches CHARON_PLUGINS (the VM lane drops kernel-libipsec) still takes effect
    plugins: str = field(default_factory=lambda: CHARON_PLUGINS)
    log_levels: dict = field(default_factory=lambda: {
        "default": 1, "ike": 2, "cfg": 2, "knl": 1, "net": 1, "enc": 1, "esp": 1})
    extra: dict = field(default_factory=dict)   # merged into the charon {} section


class Charon:
    """A charon process. `start()` / `stop()` / `kill()` / `restart()`; `swanctl(...)`."""

    def __init__(self, namespace: Namespace, workdir: Path, settings: CharonSettings | None = None,
                 name: str = "charon"):
        self.namespace = namespace
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        self.settings = settings or CharonSettings()
        self.conf_path = self.workdir / "strongswan.conf"
        self.vici_path = self.workdir / "charon.vici"
        self.log_path = self.workdir / "charon.log"
        self.output_path = self.workdir / "charon.stdout"
        self.resolv_conf_path = self.workdir / "resolv.conf"   # what charon's resolve plugin writes
        self.swanctl_dir = self.workdir / "swanctl"
        self.swanctl_conf_path = self.swanctl_dir / "swanctl.conf"
        self.process: subprocess.Popen | None = None
        self._token: int | None = None
        self._loaded_config: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 20.0, poll_interval: float = 0.02) -> "Charon":
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        # charon starts without a missing plugin and fails much later: check the files first
        require_plugins((*self.settings.plugins.split(), *self.settings.extra_plugins), self.name)
        self._write_strongswan_conf()
        self.resolv_conf_path.touch()
        if self.vici_path.exists():
            self.vici_path.unlink()
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "STRONGSWAN_CONF": str(self.conf_path)}
        # `ip netns exec` and `unshare` exec in place, and so does the shell: the PID we get
        # is charon's own. A new session makes it lead a process group we can signal.
        argv = self.namespace.argv([
            "unshare", "--mount", "--propagation", "private",
            "sh", "-c", 'mount -t tmpfs cygtb-run /run && exec "$0"', CHARON])
        with open(self.output_path, "ab") as output:
            self.process = subprocess.Popen(argv, env=env, stdout=output, stderr=output,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self._token = reaper.register(f"stop {self.name} (pid {self.process.pid})",
                                      self._terminate)
        wait_for(self._vici_ready, timeout=timeout, interval=poll_interval,
                 message=lambda: f"{self.name} did not open its vici socket; output:\n"
                                 f"{self._output_tail()}\nlog tail:\n{self.log_tail()}",
                 abort=lambda: not self.running)
        if self._loaded_config is not None:
            self.load(self._loaded_config)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, as an orderly shutdown: charon deletes its SAs (sends DELETEs) first."""
        if self.process is None:
            return
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._forget()

    def kill(self) -> None:
        """SIGKILL: the gateway vanishes without a word (for dead-peer tests)."""
        if self.process is None:
            return
        if self.running:
            self.process.kill()
        self.process.wait()
        self._forget()

    def restart(self, timeout: float = 20.0) -> "Charon":
        """Stop (SIGTERM) and start again with the same settings and loaded swanctl config."""
        self.stop()
        return self.start(timeout)

    def _terminate(self) -> None:
        if self.process is not None:
            reaper.terminate_process_group(self.process.pid)
            try:
                self.process.wait(1)
            except subprocess.TimeoutExpired:
                pass

    def _forget(self) -> None:
        if self._token is not None:
            reaper.forget(self._token)
            self._token = None

    def _vici_ready(self) -> bool:
        if not self.vici_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.vici_path))
                return True
            except OSError:
                return False

    def _output_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.output_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(none)"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # -- configuration --------------------------------------------------------------------

    def _write_strongswan_conf(self) -> None:
        s = self.settings
        charon = {
            "load": " ".join((s.plugins, *s.extra_plugins)),
            "cookie_threshold": s.cookie_threshold,
            "cookie_threshold_ip": s.cookie_threshold_ip,
            "block_threshold": s.block_threshold,
            "init_limit_half_open": s.init_limit_half_open,
            "retransmit_timeout": s.retransmit_timeout,
            "retransmit_tries": s.retransmit_tries,
            "retransmit_base": s.retransmit_base,
            "fragment_size": s.fragment_size,
            "filelog": {"main": {"path": str(self.log_path), "time_format": "%H:%M:%S",
                                 "ike_name": True, "append": True, "flush_line": True,
                                 **s.log_levels}},
            "plugins": {
                "vici": {"socket": f"unix://{self.vici_path}"},
                # Never touch the host's resolv.conf (nor run resolvconf).
                "resolve": {"file": str(self.resolv_conf_path),
                            "resolvconf": {"path": "/nonexistent/resolvconf"}},
            },
        }
        merge_settings(charon, s.extra)
        tree = {"charon": charon,
                "swanctl": {"load": SWANCTL_PLUGINS, "socket": f"unix://{self.vici_path}"}}
        self.conf_path.write_text(render(tree) + "\n")

    def install_credentials(self, certs=(), cacerts=(), private_keys=(),
                            replace: bool = False) -> None:
        """Copy certificate and key files into this charon's swanctl directory (loaded by
        the next `load()`). replace=True first removes what an earlier call installed."""
        for subdir, files, private in (("x509", certs, False), ("x509ca", cacerts, False),
                                       ("private", private_keys, True)):
            target = self.swanctl_dir / subdir
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
            if replace:
                for old in target.iterdir():
                    old.unlink()
            for path in files:
                destination = target / Path(path).name
                shutil.copyfile(path, destination)
                os.chmod(destination, 0o600 if private else 0o644)

    def load(self, config: dict | str) -> None:
        """Write swanctl.conf (mode 0600: it holds secrets) and load everything in it."""
        text = config if isinstance(config, str) else render(config)
        self.swanctl_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for subdir in SWANCTL_SUBDIRS:  # swanctl complains about each missing one
            (self.swanctl_dir / subdir).mkdir(exist_ok=True, mode=0o700)
        write_private(self.swanctl_conf_path, text)
        self._loaded_config = text
        self.swanctl("--load-all", "--noprompt", "--clear", "--file", str(self.swanctl_conf_path))

    # -- control --------------------------------------------------------------------------

    def swanctl(self, *args: str, check: bool = True, timeout: float = 30.0):
        """Run swanctl against this charon (from the root namespace: vici is a unix socket)."""
        env = {"PATH": os.environ.get("PATH", ""), "STRONGSWAN_CONF": str(self.conf_path)}
        argv = ["swanctl", *args, "--uri", f"unix://{self.vici_path}"]
        return run(argv, check=check, timeout=timeout, env=env)

    def list_sas(self, ike: str | None = None) -> list[dict]:
        """Current IKE_SAs as dicts (vici's list-sa events): name, state, child-sas, ..."""
        args = ["--list-sas", "--pretty", "--noblock"]
        if ike:
            args += ["--ike", ike]
        events = parse_pretty(self.swanctl(*args).stdout)
        sas = []
        for event in events:
            for name, sa in event.items():
                sas.append({"name": name, **sa})
        return sas

    def initiate(self, child: str, ike: str | None = None, timeout: float = 30.0) -> None:
        """Bring a connection up; raises CommandError with charon's log tail if it fails."""
        args = ["--initiate", "--child", child, "--timeout", str(int(max(1, timeout)))]
        if ike:
            args += ["--ike", ike]
        try:
            self.swanctl(*args, timeout=timeout + 5)
        except CommandError as error:
            raise CommandError(error.argv, error.returncode, error.stdout,
                               error.stderr + "\n" + error.stdout + "\n--- charon log ---\n"
                               + self.log_tail(60)) from None

    def terminate(self, ike: str, timeout: float = 10.0, check: bool = True,
                  force: bool = False) -> None:
        """Delete an IKE_SA. force=True drops it locally without waiting for the peer
        (for a peer that is gone or no longer knows the SA)."""
        args = ["--terminate", "--ike", ike]
        args += ["--force"] if force else ["--timeout", str(int(max(1, timeout)))]
        self.swanctl(*args, check=check, timeout=timeout + 5)

    def wait_for_sa(self, predicate=None, timeout: float = 10.0) -> dict:
        """Wait for an ESTABLISHED IKE_SA (matching `predicate(sa)` if given); return it."""
        found: dict = {}

        def check() -> bool:
            for sa in self.list_sas():
                if sa.get("state") == "ESTABLISHED" and (predicate is None or predicate(sa)):
                    found["sa"] = sa
                    return True
            return False

        wait_for(check, timeout=timeout, interval=0.05,
                 message=lambda: f"no matching IKE_SA in {self.name}; log tail:\n"
                                 f"{self.log_tail()}")
        return found["sa"]
