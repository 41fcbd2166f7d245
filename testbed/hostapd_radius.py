"""hostapd (Debian's package) as a RADIUS server with its integrated EAP server, in the LAN
namespace: the second EAP server implementation for the enterprise tests (issue 19). Unlike
FreeRADIUS 3.2 it sends PEAPv0's Crypto-Binding TLV (as Windows NPS does), checks ours and
then derives the MSK from the compound keys, so a tunnel that comes up proves both.

    radius = HostapdRadius(testbed.lan_ns, workdir, users={"ann@corp.test": "pw"},
                           secret="...", client_address=GATEWAY_LAN_ADDR, pki=pki).start()
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .freeradius import RADIUS_NAME, issue_server_certificate
from .netns import Namespace
from .pki import Pki
from .process import Process

PROGRAM = "/usr/sbin/hostapd"


def available() -> bool:
    return os.access(PROGRAM, os.X_OK)


def _quoted(value: str) -> str:
    if any(c in value for c in '"\n'):
        raise ValueError(f"value cannot be written to a hostapd file: {value!r}")
    return f'"{value}"'


class HostapdRadius:
    def __init__(self, namespace: Namespace, workdir: Path, pki: Pki, *, users: dict,
                 secret: str, client_address: str, server_name: str = RADIUS_NAME):
        self.namespace, self.pki = namespace, pki
        self.workdir = Path(workdir)
        self.users, self.secret = dict(users), secret
        self.client_address, self.server_name = client_address, server_name
        self.log_path = self.workdir / "hostapd.log"
        self.process: Process | None = None

    def _configure(self) -> Path:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        os.chmod(self.workdir, 0o700)
        cert, key = issue_server_certificate(self.pki, self.server_name, self.workdir)
        users = self.workdir / "eap_users"
        lines = []
        for user, password in self.users.items():
            # phase 1: the outer identity may run PEAP or TTLS; phase 2 ([2]): the inner methods
            lines.append(f"{_quoted(user)} PEAP,TTLS")
            lines.append(f"{_quoted(user)} MSCHAPV2,MD5,GTC {_quoted(password)} [2]")
        users.write_text("\n".join(lines) + "\n")
        clients = self.workdir / "radius_clients"
        if " " in self.secret or "\n" in self.secret:
            raise ValueError("the RADIUS secret must not contain blanks")
        clients.write_text(f"{self.client_address}/32 {self.secret}\n")
        conf = self.workdir / "hostapd.conf"
        conf.write_text("\n".join([
            "driver=none", "interface=cygnet-as", "logger_stdout=-1", "logger_stdout_level=0",
            f"radius_server_clients={clients}", "radius_server_auth_port=1812",
            "eap_server=1", f"eap_user_file={users}",
            f"ca_cert={self.pki.root_ca}", f"server_cert={cert}", f"private_key={key}",
            # TLS 1.2 at most: PEAP/TTLS keying here is defined for it
            "tls_flags=[DISABLE-TLSv1.3]", ""]))
        for path in (users, clients, conf):
            os.chmod(path, 0o600)
        return conf

    def start(self, timeout: float = 15.0) -> "HostapdRadius":
        conf = self._configure()
        log = open(self.log_path, "ab")
        try:
            self.process = Process(self.namespace.argv([PROGRAM, "-dd", str(conf)]),
                                   f"hostapd RADIUS server in {self.namespace.name}",
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if "Setup of interface done" in text:
                return self
            if not self.process.running:
                break
            time.sleep(0.1)
        tail = self.log()[-3000:]
        self.stop()
        raise RuntimeError(f"hostapd did not start as a RADIUS server:\n{tail}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
