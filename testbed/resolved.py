"""A real systemd-resolved in the client namespace, with its own system bus, for DNS tests.

Debian's systemd-resolved package is never installed on the machine: its postinst turns the
host's /etc/resolv.conf into a symlink to its stub. `prepare()` unpacks the .deb (apt-get
download + dpkg-deb -x) into a cache directory instead, as the kernel lane does with
libreswan; its binaries use the libsystemd-shared of the installed systemd, which must be the
same version (Debian pins them to each other).

The sandbox is a holder process in the client's network namespace with a private mount
namespace: a tmpfs on /run (the bus socket, resolved's /run/systemd/resolve), /etc/passwd and
/etc/group copies that know the `systemd-resolve` user resolved drops to, a tmpfs on
/etc/systemd holding its resolved.conf (no LLMNR/mDNS, no fallback servers, no cache: every
query is seen by a server), and a file of the test's bind-mounted over /etc/resolv.conf. A
dbus-daemon and systemd-resolved run inside; so does whatever `enter_argv()` wraps (a
`cygnet up`, `resolvectl`), which then finds resolved exactly where it would on a desktop.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
from pathlib import Path
from typing import Sequence

from .netns import Namespace, run
from .process import Process
from .wait import wait_for

CACHE = Path(os.environ.get("CYGNET_RESOLVED_CACHE", "/var/cache/cygnet-test/systemd-resolved"))
BINARY = "lib/systemd/systemd-resolved"
RESOLVECTL = "usr/bin/resolvectl"
BUS_SOCKET = "/run/dbus/system_bus_socket"
RESOLVED_CONF = """[Resolve]
DNS=
FallbackDNS=
Domains=
LLMNR=no
MulticastDNS=no
DNSSEC=no
DNSOverTLS=no
Cache=no
DNSStubListener=yes
ReadEtcHosts=no
"""


def prepare(cache: Path = CACHE) -> Path:
    """The unpacked package's root (unpacked once per version). Raises RuntimeError naming
    what is missing."""
    version = run(["dpkg-query", "-W", "-f=${Version}", "systemd"], check=False).stdout.strip()
    if not version:
        raise RuntimeError("systemd is not installed (its libsystemd-shared runs resolved)")
    root = cache / f"root-{version}"
    if (root / BINARY).exists():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    wanted = f"systemd-resolved={version}"
    found = glob.glob(str(debs / f"systemd-resolved_{version.replace(':', '%3a')}_*.deb"))
    if not found:
        result = subprocess.run(["apt-get", "download", wanted], cwd=debs, capture_output=True,
                                text=True, timeout=120)
        found = glob.glob(str(debs / "systemd-resolved_*.deb"))
        found = [f for f in found if version.split(":")[-1] in f]
        if not found:
            raise RuntimeError(f"cannot download {wanted}: {result.stderr.strip()[-300:]}")
    tmp = cache / f"root-{version}.tmp"
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    subprocess.run(["dpkg-deb", "-x", found[0], str(tmp)], check=True)
    os.replace(tmp, root)
    return root


def _dbus_config(policy_dir: Path) -> str:
    """Debian's system bus configuration without what only a real boot wants, plus resolved's
    policy from the unpacked package."""
    text = Path("/usr/share/dbus-1/system.conf").read_text()
    for tag in ("user", "pidfile", "servicehelper"):
        text = re.sub(rf"<{tag}>.*?</{tag}>", "", text)
    for tag in ("fork", "syslog", "standard_system_servicedirs"):
        text = text.replace(f"<{tag}/>", "")
    return text.replace("<includedir>system.d</includedir>",
                        "<includedir>/usr/share/dbus-1/system.d</includedir>"
                        f"<includedir>{policy_dir}</includedir>")


class ResolvedSandbox:
    """systemd-resolved + its own system bus inside `namespace`. `start()` / `close()`."""

    def __init__(self, namespace: Namespace, workdir: Path, resolv_conf: Path, root: Path):
        self.namespace = namespace
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.resolv_conf = Path(resolv_conf)
        self.root = Path(root)
        self.log_path = self.workdir / "systemd-resolved.log"
        self.holder: Process | None = None
        self.processes: list[Process] = []

    @property
    def resolvectl(self) -> str:
        return str(self.root / RESOLVECTL)

    def start(self, timeout: float = 15.0) -> "ResolvedSandbox":
        w = self.workdir
        (w / "system.conf").write_text(_dbus_config(self.root / "usr/share/dbus-1/system.d"))
        (w / "resolved.conf").write_text(RESOLVED_CONF)
        passwd = Path("/etc/passwd").read_text()
        group = Path("/etc/group").read_text()
        if "\nsystemd-resolve:" not in "\n" + passwd:
            passwd += "systemd-resolve:x:64990:64990:systemd Resolver:/:/usr/sbin/nologin\n"
        if "\nsystemd-resolve:" not in "\n" + group:
            group += "systemd-resolve:x:64990:\n"
        (w / "passwd").write_text(passwd)
        (w / "group").write_text(group)
        mounts = ["mount -t tmpfs cygtb-resolved-run /run", "mkdir -p /run/dbus /run/systemd",
                  f"mount --bind {w / 'passwd'} /etc/passwd", f"mount --bind {w / 'group'} /etc/group",
                  "mount -t tmpfs cygtb-resolved-etc /etc/systemd",
                  f"cp {w / 'resolved.conf'} /etc/systemd/resolved.conf",
                  f"mount --bind {self.resolv_conf} /etc/resolv.conf"]
        script = " && ".join(mounts) + " && echo ready && exec sleep infinity"
        self.holder = Process(self.namespace.argv(["unshare", "--mount", "--propagation", "private",
                                                   "sh", "-c", script]),
                              f"resolved sandbox holder in {self.namespace.name}",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True)
        line = self.holder.popen.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"resolved sandbox mounts failed: {line}{self.holder.popen.stdout.read()}")
        with open(w / "dbus-daemon.log", "ab") as log:
            bus = Process(self.enter_argv(["dbus-daemon", f"--config-file={w / 'system.conf'}",
                                           "--nofork", "--nopidfile"]),
                          "resolved sandbox dbus-daemon", stdout=log, stderr=log,
                          stdin=subprocess.DEVNULL)
        self.processes.append(bus)
        wait_for(lambda: self.run(["test", "-S", BUS_SOCKET], check=False).returncode == 0,
                 timeout=timeout, message="the sandbox's dbus-daemon did not open its socket",
                 abort=lambda: not bus.running)
        with open(self.log_path, "ab") as log:
            resolved = Process(self.enter_argv(["env", "SYSTEMD_LOG_LEVEL=debug",
                                                str(self.root / BINARY)]),
                               "systemd-resolved", stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.processes.append(resolved)
        wait_for(lambda: self.run([self.resolvectl, "status"], check=False).returncode == 0,
                 timeout=timeout, abort=lambda: not resolved.running,
                 message=lambda: f"systemd-resolved did not answer:\n{self.log_tail()}")
        return self

    def enter_argv(self, argv: Sequence[str]) -> list[str]:
        """argv that runs `argv` inside the sandbox (the client netns, the private mounts)."""
        return ["nsenter", "--target", str(self.holder.pid), "--mount", "--net", "--", *argv]

    def run(self, argv: Sequence[str], **kwargs):
        return run(self.enter_argv(argv), **kwargs)

    def link_settings(self, ifname: str) -> dict:
        """What resolved holds for a link: {'dns': [...], 'domains': [...], 'default_route': bool}."""
        out = {}
        for what in ("dns", "domain", "default-route"):
            text = self.run([self.resolvectl, "--no-pager", what, ifname]).stdout
            out[what] = text.split(":", 1)[1].split() if ":" in text else []
        return {"dns": out["dns"], "domains": out["domain"],
                "default_route": out["default-route"] == ["yes"]}

    def query(self, name: str) -> subprocess.CompletedProcess:
        return self.run([self.resolvectl, "--no-pager", "--legend=no", "query", name],
                        check=False, timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.holder is not None:
            self.holder.stop()
            self.holder = None
