"""A real NetworkManager 1.42, isolated in namespaces, for tests of VPN plugins.

    with NetworkManagerSandbox(testbed.client_ns, workdir) as nm:   # NM in the client netns
        nm.install_cygnet()                      # `cygnet nm install --prefix <sandbox root>`
        nm.nmcli("connection", "add", "type", "vpn", "vpn-type", "cygnet", ...)
        nm.nmcli("connection", "up", "office")

Isolation (see shared/NOTES.md, "NetworkManager 1.42 in a sandbox"): NM joins the network
namespace it is given (the testbed's client namespace, so its VPN reaches the testbed gateway);
a "holder" process owns a private mount and UTS namespace (`unshare -m -u`) with
  - a tmpfs on /run (NM's state, the bus socket, pid files),
  - private copies of /etc/NetworkManager, /var/lib/NetworkManager, /etc/resolv.conf and
    /etc/dbus-1/system.d bind-mounted over the real ones (the sandbox root under `workdir`),
  - /sys remounted read-only (NM then manages the devices instead of leaving them "strictly
    unmanaged", as it does in containers),
and its own `dbus-daemon --system` inside. dbus-daemon, NetworkManager and every nmcli run
enter the holder's namespaces with nsenter. Nothing runs in the root namespace; everything is
ended by PID (the VPN plugins NM starts are re-parented to PID 1, so they are found through
their mount namespace).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Sequence

from testbed import reaper
from testbed.netns import CommandError, Namespace, run
from testbed.process import Process
from testbed.wait import wait_for

NM_BINARY = "/usr/sbin/NetworkManager"
DBUS_DAEMON = "/usr/bin/dbus-daemon"
BUS_SOCKET = "/run/dbus/system_bus_socket"

# Directories/files of the host that get private copies inside the sandbox.
PRIVATE_DIRS = ("etc/NetworkManager", "var/lib/NetworkManager", "etc/dbus-1/system.d")

NM_CONF = """\
[main]
plugins=keyfile
no-auto-default=*
auth-polkit=false
hostname-mode=none
rc-manager=unmanaged
dhcp=internal

[logging]
level=DEBUG
domains=ALL,VPN:TRACE,VPN_PLUGIN:TRACE
"""


def missing_requirements() -> list[str]:
    """Why the sandbox cannot run here (empty: it can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("not root")
    for program in (NM_BINARY, DBUS_DAEMON, shutil.which("nmcli") or "nmcli",
                    shutil.which("nsenter") or "nsenter"):
        if not os.access(program, os.X_OK):
            reasons.append(f"{program} missing (apt-get install network-manager dbus-daemon)")
    return reasons


def dbus_config(source: Path = Path("/usr/share/dbus-1/system.conf")) -> str:
    """Debian's system bus configuration, minus what only a real boot wants: no user switch,
    no fork, no activation of system services, no syslog, no pid file."""
    text = source.read_text()
    for tag in ("user", "pidfile", "servicehelper"):
        text = re.sub(rf"<{tag}>.*?</{tag}>", "", text)
    for tag in ("fork", "syslog", "standard_system_servicedirs"):
        text = text.replace(f"<{tag}/>", "")
    # A relative includedir is taken from the config file's folder: make it absolute.
    return text.replace("<includedir>system.d</includedir>",
                        "<includedir>/usr/share/dbus-1/system.d</includedir>")


class NetworkManagerSandbox:
    """NetworkManager + its own system bus inside `namespace`. `start()` / `close()`."""

    def __init__(self, namespace: Namespace, workdir: str | Path, nm_conf: str = NM_CONF,
                 prepare=None, nm_env: dict | None = None):
        """prepare(root): called with the sandbox root (its private /etc) before the bus and
        NM start, e.g. to run `cygnet nm install --prefix ROOT`."""
        self.prepare = prepare
        self.nm_env = nm_env  # extra environment for NM and the plugins it starts
        self.namespace = namespace
        self.workdir = Path(workdir)
        self.root = self.workdir / "root"          # the private /etc, /var/lib copies
        self.nm_conf = nm_conf
        self.log_path = self.workdir / "NetworkManager.log"
        self.dbus_log_path = self.workdir / "dbus-daemon.log"
        self.holder: Process | None = None
        self.dbus: Process | None = None
        self.nm: Process | None = None
        self._token: int | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> "NetworkManagerSandbox":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "NetworkManagerSandbox":
        self._token = reaper.register(f"close NetworkManager sandbox in {self.namespace.name}",
                                      self._close_now)
        self._prepare_root()
        if self.prepare is not None:
            self.prepare(self.root)
        self._start_holder()
        self.start_dbus()
        self.start_networkmanager()
        return self

    def _prepare_root(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        nm_etc = self.root / "etc/NetworkManager"
        for sub in ("VPN", "conf.d", "system-connections", "dispatcher.d"):
            (nm_etc / sub).mkdir(parents=True, exist_ok=True)
        (nm_etc / "NetworkManager.conf").write_text(self.nm_conf)
        (self.root / "var/lib/NetworkManager").mkdir(parents=True, exist_ok=True)
        system_d = self.root / "etc/dbus-1/system.d"
        system_d.mkdir(parents=True, exist_ok=True)
        for policy in Path("/etc/dbus-1/system.d").glob("*.conf"):
            shutil.copy(policy, system_d / policy.name)
        (self.root / "etc/resolv.conf").write_text("# sandbox resolv.conf (NM: rc-manager=unmanaged)\n")
        (self.workdir / "system.conf").write_text(dbus_config())
        # NM refuses .name files that group or others may write.
        for path in [self.root, *self.root.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)

    def _start_holder(self) -> None:
        mounts = ["mount -t tmpfs cygnet-nm-run /run", "mkdir -p /run/dbus",
                  "mount -o remount,ro /sys"]
        for sub in (*PRIVATE_DIRS, "etc/resolv.conf"):
            mounts.append(f"mount --bind {self.root / sub} /{sub}")
        # `exec sleep` keeps the namespaces alive until close() ends it by PID.
        script = " && ".join(mounts) + " && echo ready && exec sleep infinity"
        argv = self.namespace.argv(["unshare", "--mount", "--uts", "--propagation", "private",
                                    "sh", "-c", script])
        self.holder = Process(argv, f"NM sandbox holder in {self.namespace.name}",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True)
        line = self.holder.popen.stdout.readline()
        if line.strip() != "ready":
            rest = self.holder.popen.stdout.read() if not self.holder.running else ""
            raise RuntimeError(f"NM sandbox mounts failed: {line}{rest}")

    def enter_argv(self, argv: Sequence[str]) -> list[str]:
        """argv that runs `argv` inside the sandbox (its netns, mount ns and UTS ns)."""
        return ["nsenter", "--target", str(self.holder.pid), "--mount", "--net", "--uts",
                "--", *argv]

    def start_dbus(self) -> None:
        with open(self.dbus_log_path, "ab") as log:
            self.dbus = Process(self.enter_argv([DBUS_DAEMON, f"--config-file={self.workdir}/system.conf",
                                                 "--nofork", "--nopidfile"]),
                                "sandbox dbus-daemon", stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
        wait_for(lambda: self._run(["test", "-S", BUS_SOCKET], check=False).returncode == 0,
                 timeout=10, message="sandbox dbus-daemon did not open its socket",
                 abort=lambda: not self.dbus.running)

    def start_networkmanager(self, timeout: float = 20.0) -> None:
        with open(self.log_path, "ab") as log:
            self.nm = Process(self.enter_argv([NM_BINARY, "--no-daemon", "--debug"]),
                              "sandbox NetworkManager", stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL, env={**os.environ, **(self.nm_env or {})})
        wait_for(lambda: self.nmcli("-t", "-f", "RUNNING", "general", check=False)
                 .stdout.strip() == "running",
                 timeout=timeout, interval=0.1, message=lambda: "NetworkManager did not start:\n"
                 + self.log_tail(), abort=lambda: not self.nm.running)

    def stop_networkmanager(self) -> None:
        if self.nm is not None:
            self.nm.stop()
            self.nm = None

    def close(self) -> None:
        if self._token is not None:
            reaper.run_one(self._token)
            self._token = None

    def _close_now(self) -> None:
        self.stop_networkmanager()
        # VPN plugins were started by NM (double fork, re-parented to PID 1): find what lives
        # in our mount namespace and end it by PID, before the bus and the namespace go.
        for pid in self.sandbox_pids():
            _terminate(pid)
        if self.dbus is not None:
            self.dbus.stop()
            self.dbus = None
        if self.holder is not None:
            self.holder.stop()
            self.holder = None

    def sandbox_pids(self) -> list[int]:
        """PIDs of every process in the holder's mount namespace but the holder itself."""
        if self.holder is None or not self.holder.running:
            return []
        try:
            mnt = os.readlink(f"/proc/{self.holder.pid}/ns/mnt")
        except OSError:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.holder.pid:
                continue
            try:
                if os.readlink(entry / "ns/mnt") == mnt:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    # -- running things inside --------------------------------------------------------------

    def _run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0,
             input: str | None = None, env: dict | None = None):
        return run(self.enter_argv(argv), check=check, timeout=timeout, input=input, env=env)

    def run(self, argv: Sequence[str], **kwargs):
        """Run a command inside the sandbox to completion (see netns.run for kwargs)."""
        return self._run(argv, **kwargs)

    def nmcli(self, *args: str, check: bool = True, timeout: float = 60.0,
              input: str | None = None):
        return self._run(["nmcli", *args], check=check, timeout=timeout, input=input)

    def popen(self, argv: Sequence[str], description: str, **kwargs) -> Process:
        return Process(self.enter_argv(argv), description, **kwargs)

    def read_file(self, path: str) -> str:
        """A file as the sandbox sees it (e.g. /run/NetworkManager/resolv.conf)."""
        return self._run(["cat", path]).stdout

    # -- NetworkManager state -------------------------------------------------------------

    def connection_fields(self, name: str) -> dict[str, list[str]]:
        """`nmcli -t con show NAME` as {field: [values]} (IP4.ADDRESS[1] → IP4.ADDRESS)."""
        out = self.nmcli("-t", "connection", "show", name, check=False).stdout
        fields: dict[str, list[str]] = {}
        for line in out.splitlines():
            key, _, value = line.partition(":")
            key = re.sub(r"\[\d+\]$", "", key)
            fields.setdefault(key, []).append(value)
        return fields

    def vpn_state(self, name: str) -> str:
        """VPN.VPN-STATE of an active connection ('' when it is not active)."""
        values = self.connection_fields(name).get("VPN.VPN-STATE", [""])
        return values[0]

    def active_connections(self) -> list[str]:
        out = self.nmcli("-t", "-f", "NAME", "connection", "show", "--active").stdout
        return out.split()

    def wait_vpn_state(self, name: str, wanted: str, timeout: float = 30.0) -> None:
        wait_for(lambda: wanted in self.vpn_state(name), timeout=timeout, interval=0.1,
                 message=lambda: f"VPN {name} not {wanted!r} (now {self.vpn_state(name)!r});"
                                 f" NM log:\n{self.log_tail()}")

    def wait_inactive(self, name: str, timeout: float = 30.0) -> None:
        wait_for(lambda: name not in self.active_connections(), timeout=timeout, interval=0.1,
                 message=lambda: f"{name} is still active; NM log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60, grep: str | None = None) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        if grep:
            text = [line for line in text if grep in line]
        return "\n".join(text[-lines:])

    def log_since(self, mark: int) -> str:
        """The NM log after byte offset `mark` (take one with log_mark())."""
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def log_mark(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def save_artifacts(self, destination: str | Path) -> None:
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        for path in (self.log_path, self.dbus_log_path):
            if path.exists():
                shutil.copyfile(path, destination / path.name)


def _terminate(pid: int, grace: float = 3.0) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


# charon-nm (network-manager-strongswan) for the side-by-side tests. STRONGSWAN_CONF replaces
# /etc/strongswan.conf for it (NM passes its environment on); kernel-libipsec must be listed
# explicitly before kernel-netlink, as this kernel has no ESP.
CHARON_NM_PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 pkcs12 x509 constraints pubkey curve25519 "
    "aes sha1 sha2 md5 hmac gcm chapoly kdf "
    "kernel-libipsec kernel-netlink socket-default eap-identity eap-mschapv2 eap-md5 eap-tls"
)


def charon_nm_problems() -> list[str]:
    """What charon-nm and NM's VPN plugin support need that is not installed (one line each,
    naming the Debian package): charon-nm, like charon, starts without a missing plugin."""
    from testbed.requirements import NM_VPN_DIR, missing_plugins, missing_programs
    problems = missing_programs("/usr/lib/ipsec/charon-nm") + missing_plugins(CHARON_NM_PLUGINS)
    if not NM_VPN_DIR.is_dir():
        problems.append(f"{NM_VPN_DIR} missing; install Debian package network-manager")
    return problems


def charon_nm_conf(log_path: Path) -> str:
    return (
        "charon-nm {\n"
        f"  load = {CHARON_NM_PLUGINS}\n"
        "  retransmit_tries = 2\n"
        "  retransmit_timeout = 1.0\n"
        "  filelog {\n"
        f"    main {{\n      path = {log_path}\n      time_format = %H:%M:%S\n"
        "      default = 1\n      ike = 2\n      flush_line = yes\n    }\n"
        "    stderr {\n      default = 1\n    }\n"
        "  }\n"
        "}\n"
    )


__all__ = ["NetworkManagerSandbox", "missing_requirements", "dbus_config", "CommandError",
           "charon_nm_conf", "charon_nm_problems"]
