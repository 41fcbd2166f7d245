"""A libreswan 4.10 gateway (pluto, kernel XFRM only) in the testbed's gateway namespace.

Debian's `libreswan` conflicts with strongSwan's packages, so it is not installed on the host:
tests/test_kernel_lane.py unpacks the .deb into LIBRESWAN_ROOT (dpkg-deb -x), and inside the VM
that tree is copied over the guest's (tmpfs overlay) root — the host stays untouched and no
pluto ever runs in the host's root namespace.

The gateway mirrors the strongSwan one (testbed/gateway.py): identity gw.cygnet.test,
LAN 10.1.0.0/24 behind it, an address pool from 10.3.0.0/24 and DNS 10.1.0.53 handed out by
mode config (RFC 7296 §3.15 CP payload), PSK for psk@cygnet.test and certificates from the
test root CA for anyone else. pluto runs in its own mount namespace (its /run is private).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from testbed import topology
from testbed.wait import wait_for

LIBRESWAN_ROOT = Path(os.environ.get("CYGNET_LIBRESWAN_ROOT", "/var/cache/cygnet-vm/libreswan-root"))
PLUTO = "/usr/libexec/ipsec/pluto"
POOL = "10.3.0.100-10.3.0.200"
DNS = "10.1.0.53"


def missing() -> str | None:
    """Why libreswan cannot run here (None: it can)."""
    if os.path.exists(PLUTO):
        return None
    if not (LIBRESWAN_ROOT / PLUTO.lstrip("/")).exists():
        return f"libreswan not unpacked at {LIBRESWAN_ROOT} (dpkg-deb -x libreswan_*.deb)"
    if not os.path.exists("/cygnet-job"):
        return "libreswan is only installed inside the VM (it conflicts with strongSwan's packages)"
    return None


def install_into_vm_root() -> None:
    """Copy the unpacked package over the VM's root (a tmpfs overlay: the host is not touched)."""
    if os.path.exists(PLUTO):
        return
    # usr/ and etc/ only: the package's lib/ (systemd units) would collide with the /lib symlink
    for part in ("usr", "etc"):
        subprocess.run(["cp", "-a", f"{LIBRESWAN_ROOT}/{part}/.", f"/{part}/"], check=True)


class LibreswanGateway:
    def __init__(self, testbed, workdir: Path, psk: str):
        self.tb = testbed
        self.ns = testbed.gateway_ns
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.psk = psk
        self.nss = self.dir / "nss"
        self.run_dir = self.dir / "run"
        self.log_path = self.dir / "pluto.log"
        self.ctl = self.run_dir / "pluto.ctl"
        self.process: subprocess.Popen | None = None

    # -- set-up -----------------------------------------------------------------------------

    def _nss_init(self) -> None:
        """NSS database with the root CA (trusted) and the gateway's certificate and key."""
        pki = self.tb.pki
        self.nss.mkdir(exist_ok=True)
        subprocess.run(["certutil", "-N", "-d", f"sql:{self.nss}", "--empty-password"], check=True,
                       capture_output=True)
        subprocess.run(["certutil", "-A", "-d", f"sql:{self.nss}", "-n", "cygnet-root", "-t", "CT,,",
                        "-a", "-i", str(pki.root_ca)], check=True, capture_output=True)
        gateway = pki.gateway_rsa
        p12 = self.dir / "gateway.p12"
        subprocess.run(["openssl", "pkcs12", "-export", "-inkey", str(gateway.key), "-in", str(gateway.cert),
                        "-name", "gateway", "-passout", "pass:", "-out", str(p12)], check=True,
                       capture_output=True)
        subprocess.run(["pk12util", "-i", str(p12), "-d", f"sql:{self.nss}", "-W", ""], check=True,
                       capture_output=True)
        p12.unlink()

    def _write_config(self) -> None:
        gw = topology.GATEWAY_ADDR_DIRECT if not self.tb.topology.nat else topology.GATEWAY_ADDR_BEHIND_NAT
        common = f"""
    ikev2=yes
    left={gw}
    leftsubnet={topology.LAN_NET}
    right=%any
    rightaddresspool={POOL}
    modecfgdns={DNS}
    narrowing=yes
    auto=add
"""
        (self.dir / "ipsec.conf").write_text(f"""config setup
    logfile={self.log_path}
    logtime=yes
    plutodebug=none

conn psk{common}    authby=secret
    leftid=@gw.cygnet.test
    rightid=psk@cygnet.test

conn pubkey{common}    authby=rsasig
    leftcert=gateway
    leftid=@gw.cygnet.test
    leftsendcert=always
    rightid=%fromcert
    rightca=%same
""")
        secrets = self.dir / "ipsec.secrets"
        fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            # (the certificate's key is found in NSS by leftcert; 4.x has no ": RSA" entries)
            f.write(f'@gw.cygnet.test psk@cygnet.test : PSK "{self.psk}"\n')

    def start(self) -> "LibreswanGateway":
        install_into_vm_root()
        self._nss_init()
        self._write_config()
        self.run_dir.mkdir(exist_ok=True)
        argv = self.ns.argv(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             'mount -t tmpfs x /run && mkdir -p /run/pluto && exec "$@"', "sh",
                             PLUTO, "--nofork", "--config", str(self.dir / "ipsec.conf"),
                             "--nssdir", str(self.nss), "--secretsfile", str(self.dir / "ipsec.secrets"),
                             "--rundir", str(self.run_dir), "--ipsecdir", str(self.dir)])
        with open(self.dir / "pluto.stdout", "ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        wait_for(lambda: self.ctl.exists(), timeout=60, message=lambda: f"pluto did not start:\n{self.log_tail()}",
                 abort=lambda: self.process.poll() is not None)
        self.addconn()
        # The LAN's answers to the pool must be routed towards the client before the XFRM
        # policy can take them (pluto's updown adds host routes too; this covers the pool).
        self.ns.ip("route", "replace", "10.3.0.0/24", "via", topology.CLIENT_ADDR)
        return self

    def addconn(self) -> None:
        subprocess.run(self.ns.argv(["/usr/libexec/ipsec/addconn", "--config", str(self.dir / "ipsec.conf"),
                                     "--ctlsocket", str(self.ctl), "--autoall"]),
                       check=True, capture_output=True, timeout=60)
        self.whack("--listen")

    def whack(self, *args: str) -> str:
        result = subprocess.run(self.ns.argv(["/usr/libexec/ipsec/whack", "--ctlsocket", str(self.ctl), *args]),
                                capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr

    def established(self) -> str:
        return self.whack("--trafficstatus")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.dir / "pluto.stdout", self.log_path):
            try:
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
            except FileNotFoundError:
                pass
        return text or "(no log)"

    def save_log(self, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            shutil.copyfile(self.log_path, target / "pluto.log")
