"""Scenario 2: data-plane throughput through the tunnel, Cygnet vs strongSwan.

iperf3 TCP from the client namespace to the LAN host behind the gateway, both directions
(upload: client -> LAN; download: iperf3 --reverse), for AES-GCM-128 and AES-CBC-128 +
HMAC-SHA-256. Cygnet's userspace ESP (`cygnet up` with `esp = ...`) against strongSwan's
kernel-libipsec client (charon with esp_proposals = ...), both against the same libipsec gateway.

CPU: utime+stime from /proc/<pid>/stat of the client process (and of the gateway's charon, to
see which side is the limit) over the iperf3 run. "Per core" = Mbit/s / client cores used.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from testbed import Testbed

from .clients import LAN_HOST, METHODS, cold_start_cygnet, cold_start_strongswan, use_gateway_certificate, write_profile
from .probe import CpuMeter
from .stats import ratio, summary

# A process that used (or used plus waited for) this much of a core wanted all one thread can get.
CPU_BOUND = 0.8
SUITES = {"aes128gcm16": "AES-GCM-128", "aes128-sha256": "AES-CBC-128 + HMAC-SHA-256"}
DIRECTIONS = ("upload", "download")


def iperf3(tb: Testbed, seconds: float, reverse: bool) -> dict:
    """iperf3 from the client namespace to the LAN host; its JSON, or {"error": ...}."""
    argv = ["iperf3", "--client", LAN_HOST, "--time", str(seconds), "--json"]
    if reverse:
        argv.append("--reverse")
    result = tb.run("client", argv, timeout=seconds + 20, check=False)
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return {"error": (result.stderr or result.stdout).strip()[-300:] or "iperf3 failed"}
    if "sum_received" not in data.get("end", {}):
        return {"error": data.get("error", "iperf3 reported no result")}
    return data


def _iperf(tb: Testbed, client_pid: int, seconds: float, direction: str) -> dict:
    pids = {"client": client_pid, "gateway": tb.gateway.charon.pid}
    for attempt in range(3):   # the server may still be busy with the previous test
        with CpuMeter(pids) as meter:
            result = iperf3(tb, seconds, reverse=(direction == "download"))
        if "error" not in result:
            break
        time.sleep(1)
    else:
        raise RuntimeError(f"iperf3 {direction} failed three times: {result['error']}")
    mbps = result["end"]["sum_received"]["bits_per_second"] / 1e6
    client_cores = meter.cores["client"]
    return {"mbps": round(mbps, 1), "client_cores": round(client_cores, 3),
            "gateway_cores": round(meter.cores["gateway"], 3),
            "client_waiting": round(meter.waiting["client"], 3),
            "machine_busy": round(meter.machine_busy, 3),
            "gateway_waiting": round(meter.waiting["gateway"], 3),
            "mbps_per_core": round(mbps / client_cores, 1) if client_cores > 0 else None,
            "retransmits": result["end"].get("sum_sent", {}).get("retransmits")}


def run(tb: Testbed, workdir: Path, seconds: float, repeats: int, log) -> dict:
    method = METHODS["psk"]
    use_gateway_certificate(tb, method)
    results: dict = {}
    for suite in SUITES:
        samples: dict = {(c, d): [] for c in ("cygnet", "strongswan") for d in DIRECTIONS}
        profile = write_profile(tb, method, workdir / "profiles", esp=suite)
        _, cygnet = cold_start_cygnet(tb, profile, workdir / "cygnet", keep=True)
        try:
            for _ in range(repeats):
                for direction in DIRECTIONS:
                    samples["cygnet", direction].append(_iperf(tb, cygnet.pid, seconds, direction))
        finally:
            cygnet.stop()
        _, strongswan = cold_start_strongswan(tb, method, esp=suite, keep=True)
        try:
            for _ in range(repeats):
                for direction in DIRECTIONS:
                    samples["strongswan", direction].append(
                        _iperf(tb, strongswan.charon.pid, seconds, direction))
        finally:
            strongswan.stop()

        entry: dict = {"name": SUITES[suite]}
        for direction in DIRECTIONS:
            d: dict = {}
            for client in ("cygnet", "strongswan"):
                runs = samples[client, direction]
                d[client] = {"runs": runs,
                             "mbps": summary([r["mbps"] for r in runs]),
                             "mbps_per_core": summary([r["mbps_per_core"] for r in runs]),
                             "client_cores": summary([r["client_cores"] for r in runs]),
                             "gateway_cores": summary([r["gateway_cores"] for r in runs]),
                             "client_waiting": summary([r["client_waiting"] for r in runs]),
                             "gateway_waiting": summary([r["gateway_waiting"] for r in runs])}
            d["throughput_ratio"] = ratio(d["cygnet"]["mbps"]["median"], d["strongswan"]["mbps"]["median"])
            d["per_core_ratio"] = ratio(d["cygnet"]["mbps_per_core"]["median"],
                                        d["strongswan"]["mbps_per_core"]["median"])
            d["limit"] = _limit(d)
            entry[direction] = d
            log(f"throughput {suite} {direction}: cygnet {d['cygnet']['mbps']['median']} Mbit/s "
                f"({d['cygnet']['client_cores']['median']} cores), strongswan "
                f"{d['strongswan']['mbps']['median']} Mbit/s ({d['strongswan']['client_cores']['median']} cores); "
                f"x{d['throughput_ratio']:.2f}, per core x{d['per_core_ratio']:.2f}; {d['limit']}")
        results[suite] = entry
    return results


def _limit(d: dict) -> str:
    """Which side limited each run. A process that used a core, or used plus waited for one
    (schedstat) about a core, wanted all the CPU one thread can have: CPU-bound, and starved by
    other load if much of that was waiting."""
    notes = []
    for client in ("cygnet", "strongswan"):
        parts, bound = [], []
        for side in ("client", "gateway"):
            used = d[client][f"{side}_cores"]["median"] or 0.0
            waited = d[client][f"{side}_waiting"]["median"] or 0.0
            parts.append(f"{side} {used:.2f}+{waited:.2f} waiting")
            if used + waited >= CPU_BOUND:
                bound.append(f"{side} CPU" + (" (starved by other load)" if waited >= 0.3 else ""))
        notes.append(f"{client}: {', '.join(parts)} cores" + (f" -> {' and '.join(bound)}" if bound else ""))
    return "; ".join(notes)
