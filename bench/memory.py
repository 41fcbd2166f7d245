"""Scenario 4: memory of a connected client, Cygnet (`cygnet up`) vs charon (PSK), and of
the NetworkManager plugins, cygnet-nm-service vs charon-nm (bench/nm_memory.py).

Each client is brought up, a few pings go through the tunnel, and after a short settle the
VmRSS of the client is read: Cygnet's `cygnet up` process with its threads and any child
still alive (the netlink agent, client/netlink_agent.py, leaves once the tunnel is set up);
strongSwan's charon initiator, without the swanctl processes that come and go.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from testbed import Testbed

from . import nm_memory
from .clients import LAN_HOST, METHODS, cold_start_cygnet, cold_start_strongswan, use_gateway_certificate, write_profile
from .probe import tree_rss_mb
from .stats import ratio, summary

SETTLE_SECONDS = 1.0


def run(tb: Testbed, workdir: Path, repeats: int, log) -> dict:
    method = METHODS["psk"]
    use_gateway_certificate(tb, method)
    profile = write_profile(tb, method, workdir / "profiles")
    samples: dict[str, list[float]] = {"cygnet": [], "strongswan": []}
    process_counts: list[int] = []
    for _ in range(repeats):
        _, cygnet = cold_start_cygnet(tb, profile, workdir / "cygnet", keep=True)
        try:
            tb.ping("client", LAN_HOST, count=5, timeout=1)
            time.sleep(SETTLE_SECONDS)
            rss, processes = tree_rss_mb(cygnet.pid)
            samples["cygnet"].append(round(rss, 2))
            process_counts.append(processes)
        finally:
            cygnet.stop()
        _, strongswan = cold_start_strongswan(tb, method, keep=True)
        try:
            tb.ping("client", LAN_HOST, count=5, timeout=1)
            time.sleep(SETTLE_SECONDS)
            samples["strongswan"].append(round(tree_rss_mb(strongswan.charon.pid)[0], 2))
        finally:
            strongswan.stop()
    results = {client: {"rss_mb": values, "summary": summary(values)}
               for client, values in samples.items()}
    results["cygnet"]["processes"] = process_counts
    try:  # last: NetworkManager takes over the client namespace's interface
        results["networkmanager"] = nm_memory.run(tb, workdir / "nm", repeats, log)
    except Exception:  # noqa: BLE001 — recorded; the numbers above still stand
        results["networkmanager"] = {"error": traceback.format_exc(limit=6)}
        log("memory (NetworkManager plugins) failed: " + results["networkmanager"]["error"].splitlines()[-1])
    results["rss_by_import"] = rss_by_import()
    results["ratio"] = ratio(results["cygnet"]["summary"]["median"],
                             results["strongswan"]["summary"]["median"])
    log(f"memory: cygnet {results['cygnet']['summary']['median']} MB, strongswan "
        f"{results['strongswan']['summary']['median']} MB RSS")
    return results


RSS_STEPS = r"""
import importlib, json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
steps = [("python", rss())]
for module in sys.argv[1:]:
    importlib.import_module(module)
    steps.append((module, rss()))
print(json.dumps(steps))
"""
# In the order `cygnet up` needs them: CLI, profile, engine (with asyncio, which the engine
# loads without ssl: importing asyncio first here would count ssl and the system's OpenSSL),
# IKE core (cryptography), data plane, netlink. pyroute2 is not among them: the netlink
# agent, a child, holds it.
RSS_MODULES = ("client.cli", "client.profile", "client.engine",
               "cryptography.hazmat.primitives.ciphers.aead", "ike.session", "client.dataplane",
               "client.tun", "client.netconfig")


def rss_by_import() -> list:
    """How the RSS of a fresh interpreter grows as it imports what `cygnet up` uses (MB)."""
    import json
    import subprocess
    from .clients import REPO
    result = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", RSS_STEPS, *RSS_MODULES],
                            capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        return [["error", result.stderr.strip()[-200:]]]
    steps = json.loads(result.stdout)
    return [[name, round(mb, 1), round(mb - steps[i - 1][1], 1) if i else 0.0]
            for i, (name, mb) in enumerate(steps)]
