"""Scenario 4, second half: memory of the NetworkManager plugins, connected (PSK).

A real NetworkManager 1.42 runs in the testbed's client namespace (tests/nm/sandbox.py, as
the NetworkManager tests run it) with both plugins installed: Cygnet's cygnet-nm-service and
network-manager-strongswan's charon-nm. Each brings the same PSK connection up with
`nmcli connection up`, a few pings go through the tunnel, and after a short settle the VmRSS
of the plugin process NetworkManager started (with any child of it) is read. NetworkManager
starts Cygnet's plugin for each activation; charon-nm stays after its first one, as it would
on a desktop.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from testbed import GATEWAY_NAME, PSK_IDENTITY, Testbed
from testbed.wait import wait_for

from .clients import LAN_HOST
from .probe import tree_rss_mb
from .stats import summary

SETTLE_SECONDS = 1.0
CYGNET = str(Path(sys.executable).parent / "cygnet")
PLUGIN_PROGRAMS = {"cygnet": b"cygnet-nm-service", "strongswan": b"charon-nm"}


def run(tb: Testbed, workdir: Path, repeats: int, log) -> dict:
    """{"cygnet": {...}, "strongswan": {...}} with each plugin's RSS (MB) once connected, or
    {"skipped": why} where NetworkManager cannot run."""
    from tests.nm.sandbox import NetworkManagerSandbox, charon_nm_conf, missing_requirements

    reasons = missing_requirements()
    if reasons:
        return {"skipped": "; ".join(reasons)}
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "strongswan.conf"
    conf.write_text(charon_nm_conf(workdir / "charon-nm.log"))

    def install(root: Path) -> None:
        subprocess.run([CYGNET, "nm", "install", "--prefix", str(root)], check=True,
                       capture_output=True, text=True, timeout=60)

    samples: dict[str, list[float]] = {"cygnet": [], "strongswan": []}
    with NetworkManagerSandbox(tb.client_ns, workdir / "sandbox", prepare=install,
                               nm_env={"STRONGSWAN_CONF": str(conf)}) as nm:
        # A VPN needs an active base connection; its default router does not exist, so the
        # LAN behind the gateway is reachable only through the tunnel.
        nm.nmcli("connection", "add", "type", "ethernet", "con-name", "wired", "ifname", "eth0",
                 "ipv4.method", "manual", "ipv4.addresses", "198.51.100.2/24",
                 "ipv4.gateway", "198.51.100.254", "ipv6.method", "manual",
                 "ipv6.addresses", "fd00:5::2/64")
        nm.nmcli("connection", "up", "wired")
        data = {"address": tb.gateway_address, "method": "psk", "virtual": "yes",
                "remote-identity": GATEWAY_NAME, "user": PSK_IDENTITY}
        for vpn_type in samples:
            name = f"bench-{vpn_type}"
            nm.nmcli("connection", "add", "type", "vpn", "con-name", name, "ifname", "--",
                     "vpn-type", vpn_type, "vpn.data", ", ".join(f"{k}={v}" for k, v in data.items()))
            # The PSK is saved with the connection through nmcli's stdin, never its argv.
            nm.nmcli("connection", "edit", name, timeout=30,
                     input=f"set vpn.secrets password={tb.gateway.psk}\nsave\nquit\n")
        for _ in range(repeats):
            for vpn_type in samples:
                name = f"bench-{vpn_type}"
                nm.nmcli("connection", "up", name, timeout=90)
                try:
                    tb.ping("client", LAN_HOST, count=5, timeout=1)
                    time.sleep(SETTLE_SECONDS)
                    pid = _plugin_pid(nm, PLUGIN_PROGRAMS[vpn_type])
                    samples[vpn_type].append(round(tree_rss_mb(pid)[0], 2))
                finally:
                    nm.nmcli("connection", "down", name, check=False, timeout=60)
                    nm.wait_inactive(name)
                    wait_for(lambda: not tb.gateway.list_sas(), timeout=15,
                             message="the gateway still has the last connection's SAs")
    results = {client: {"rss_mb": values, "summary": summary(values)}
               for client, values in samples.items()}
    log(f"memory (NetworkManager plugins): cygnet-nm-service {results['cygnet']['summary']['median']} MB, "
        f"charon-nm {results['strongswan']['summary']['median']} MB RSS")
    return results


def _plugin_pid(nm, program: bytes) -> int:
    """The plugin process NetworkManager started (found through the sandbox's mount namespace)."""
    for pid in nm.sandbox_pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(program) for part in argv[:2]):
            return pid
    raise RuntimeError(f"no {program.decode()} process in the NetworkManager sandbox")
