"""Scenario 2b: Cygnet's data plane against an uncapped peer.

Two Cygnet UserspaceDataPlanes back to back on mirrored, made-up SAs in two fresh network
namespaces joined by a veth pair (no strongSwan: its libipsec gateway caps scenario 2), iperf3
across the tunnel in both directions. Reports Gbit/s and the CPU each endpoint used, so the
side that limits can be named.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from ike.constants import EncrId, IntegId
from testbed import Namespace
from testbed.netns import unique_prefix
from testbed.process import Process

from .probe import CpuMeter
from .stats import summary

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"

# A process that used (or used plus waited for) this much of a core wanted all one thread can get.
CPU_BOUND = 0.8
SUITES = {
    "aes128gcm16": dict(encr_id=int(EncrId.AES_GCM_16), bits=128, integ_id=None, ek=20, ik=0),
    "aes128-sha256": dict(encr_id=int(EncrId.AES_CBC), bits=128,
                          integ_id=int(IntegId.HMAC_SHA2_256_128), ek=16, ik=32),
}
SIDES = ({"addr": "198.51.100.1", "peer_addr": "198.51.100.2", "vip": "10.99.0.1", "peer_vip": "10.99.0.2"},
         {"addr": "198.51.100.2", "peer_addr": "198.51.100.1", "vip": "10.99.0.2", "peer_vip": "10.99.0.1"})


def _sa_configs(suite: str) -> tuple[dict, dict]:
    """Key material for both ends: a's outbound SA is b's inbound SA and vice versa."""
    s = SUITES[suite]
    keys = {name: os.urandom(n).hex() for name, n in
            (("ek_ab", s["ek"]), ("ek_ba", s["ek"]), ("ik_ab", s["ik"]), ("ik_ba", s["ik"]))}
    common = {"encr_id": s["encr_id"], "bits": s["bits"], "integ_id": s["integ_id"]}
    a = dict(common, spi_in="0000b001", spi_out="0000a001", ek_in=keys["ek_ba"], ek_out=keys["ek_ab"],
             ik_in=keys["ik_ba"], ik_out=keys["ik_ab"])
    b = dict(common, spi_in="0000a001", spi_out="0000b001", ek_in=keys["ek_ab"], ek_out=keys["ek_ba"],
             ik_in=keys["ik_ab"], ik_out=keys["ik_ba"])
    return a, b


class BackToBack:
    """Two namespaces, a veth pair, one data-plane endpoint and an iperf3 server; close() undoes it."""

    def __init__(self, suite: str, offloads: dict):
        prefix = unique_prefix()
        self.a, self.b = Namespace(f"{prefix}-dpa"), Namespace(f"{prefix}-dpb")
        self.processes: list[Process] = []
        try:
            self._start(suite, offloads)
        except BaseException:
            self.close()
            raise

    def _start(self, suite: str, offloads: dict) -> None:
        self.a.create()
        self.b.create()
        self.a.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", self.b.name)
        for ns, side in ((self.a, SIDES[0]), (self.b, SIDES[1])):
            ns.ip("addr", "add", side["addr"] + "/24", "dev", "eth0")
            ns.ip("link", "set", "eth0", "up")
        self.endpoints = []
        for ns, side, sa in zip((self.a, self.b), SIDES, _sa_configs(suite)):
            conf = json.dumps(side | sa | offloads)
            process = Process(ns.argv([str(PYTHON), "-m", "bench.dataplane_endpoint", conf]),
                              f"data-plane endpoint in {ns.name}", stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
            self.processes.append(process)
            self.endpoints.append(process)
        for process in self.endpoints:
            line = process.popen.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"data-plane endpoint did not start: {line!r}")
        server = Process(self.b.argv(["iperf3", "--server", "--bind", SIDES[1]["vip"]]), "iperf3 server",
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(server)
        time.sleep(0.3)

    def iperf(self, seconds: float, reverse: bool) -> dict:
        pids = {"sender": self.endpoints[1 if reverse else 0].pid,
                "receiver": self.endpoints[0 if reverse else 1].pid}
        argv = ["iperf3", "--client", SIDES[1]["vip"], "--time", str(seconds), "--json"]
        if reverse:
            argv.append("--reverse")
        with CpuMeter(pids) as meter:
            result = self.a.run(argv, timeout=seconds + 20, check=False)
        try:
            data = json.loads(result.stdout)
        except ValueError:
            data = {"error": (result.stderr or result.stdout).strip()[-300:] or "iperf3 failed"}
        cores = {"sender_cores": round(meter.cores["sender"], 3),
                 "receiver_cores": round(meter.cores["receiver"], 3),
                 "sender_waiting": round(meter.waiting["sender"], 3),
                 "receiver_waiting": round(meter.waiting["receiver"], 3),
                 "machine_busy": round(meter.machine_busy, 3)}
        if "error" in data or "sum_received" not in data.get("end", {}):
            return {"gbps": None, "error": data.get("error", "no result"), **cores}
        gbps = data["end"]["sum_received"]["bits_per_second"] / 1e9
        busier = max(cores["sender_cores"], cores["receiver_cores"])
        # What one dedicated core per endpoint would carry if throughput scaled with CPU: an
        # estimate for a loaded machine, not a measurement.
        per_core = round(gbps / busier, 3) if busier > 0 else None
        return {"gbps": round(gbps, 3), "gbps_per_busier_core": per_core,
                "retransmits": data["end"]["sum_sent"].get("retransmits"), **cores}

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.b.delete()
        self.a.delete()


def run(seconds: float, repeats: int, log, suites=("aes128gcm16",)) -> dict:
    results: dict = {}
    # What `cygnet up` uses (vnet: IFF_VNET_HDR, received TCP segments written to the TUN
    # coalesced), a plain TUN (what a mobile platform's descriptor usually is) and TSO.
    for offload_name, offloads in (("vnet", {"vnet_hdr": True}), ("plain", {}), ("tso", {"tso": True})):
        for suite in suites:
            setup = BackToBack(suite, offloads)
            try:
                entry = {}
                for direction, reverse in (("a_to_b", False), ("b_to_a", True)):
                    runs = [setup.iperf(seconds, reverse) for _ in range(repeats)]
                    gbps = summary([r["gbps"] for r in runs])
                    median = {key: summary([r[key] for r in runs])["median"] for key in
                              ("sender_cores", "receiver_cores", "sender_waiting", "receiver_waiting",
                               "machine_busy")}
                    entry[direction] = {"runs": runs, "gbps": gbps,
                                        "gbps_per_busier_core": summary(
                                            [r.get("gbps_per_busier_core") for r in runs]),
                                        **median,
                                        "limit": _limit(gbps["median"], median, runs)}
                    log(f"back-to-back {offload_name} {suite} {direction}: {gbps['median']} Gbit/s, "
                        f"sender {median['sender_cores']:.2f} (+{median['sender_waiting']:.2f} waiting) / "
                        f"receiver {median['receiver_cores']:.2f} (+{median['receiver_waiting']:.2f}) "
                        f"cores -> {entry[direction]['limit']}")
                results[f"{offload_name}/{suite}"] = entry
            finally:
                setup.close()
    return results


def _limit(gbps, cores: dict, runs: list) -> str:
    """Which endpoint limited: the one that used (or used plus waited for) about a core."""
    if gbps is None:
        return "iperf3 failed: " + "; ".join(r["error"] for r in runs if r.get("error"))
    demand = {side: cores[f"{side}_cores"] + cores[f"{side}_waiting"] for side in ("sender", "receiver")}
    side = max(demand, key=demand.get)
    if demand[side] < CPU_BOUND:
        if cores["machine_busy"] >= 0.9:
            return (f"the machine's CPUs ({100 * cores['machine_busy']:.0f}% busy: both endpoints, "
                    "iperf3 and the kernel share them)")
        return "neither endpoint nor the machine at full CPU (iperf3 / TCP window / kernel)"
    starved = " (starved by other load)" if cores[f"{side}_waiting"] >= 0.3 else ""
    return f"{side} CPU{starved}"
