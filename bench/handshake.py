"""Scenario 3: handshake cost, N IKE_SAs (each with a CHILD_SA) with distinct identities.

Cygnet: bench/loadgen.py, one process driving N IkeSession objects from one asyncio loop.
strongSwan: one charon with N connections whose children have start_action = start, so
`swanctl --load-conns` makes charon initiate all N at once (the same all-at-once pattern; one
process, no swanctl process per SA). CPU is time on CPU of all threads (schedstat; Cygnet:
time.process_time(), the same kernel counter). charon's is counted from just before the load to
the Nth "CHILD_SA ... established" line in its log, so it includes parsing the N connections (a few ms)
and installing N CHILD_SAs and virtual IPs into kernel-libipsec, which the Cygnet load
generator does not do (it has no data plane): that favours Cygnet slightly.

The gateway accepts PSK for any identity under *@load.cygnet.test (connection "load",
gateway_options() below), with DoS thresholds raised so no COOKIE or blocking kicks in.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from testbed import (GATEWAY_NAME, Charon, CharonSettings, GatewayOptions, Testbed,
                     topology)
from testbed.conffile import swanctl_secret
from testbed.gateway import DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS

from .clients import client_namespace
from .probe import cpu_seconds_precise as cpu_seconds
from .stats import ratio, summary

LOAD_DOMAIN = "load.cygnet.test"
LOAD_POOL = "10.4.0.0/21"
REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
PSK = "cygnet-bench-load-psk"   # a benchmark-only key for the load identities


def gateway_options() -> GatewayOptions:
    """The benchmark's gateway: the testbed's defaults plus the "load" connection."""
    load = {
        "version": 2,
        "proposals": list(DEFAULT_IKE_PROPOSALS),
        "pools": ["load"],
        "unique": "no",
        "rand_time": "0s",
        "local": {"auth": "psk", "id": GATEWAY_NAME},
        "remote": {"auth": "psk", "id": f"*@{LOAD_DOMAIN}"},
        "children": {"load": {"local_ts": [str(topology.LAN_NET)],
                              "esp_proposals": list(DEFAULT_ESP_PROPOSALS)}},
    }
    return GatewayOptions(
        charon=CharonSettings(cookie_threshold=100000, cookie_threshold_ip=100000,
                              block_threshold=100000, init_limit_half_open=100000),
        extra_config={"connections": {"load": load},
                      "pools": {"load": {"addrs": LOAD_POOL}},
                      "secrets": {"ike-load": {"secret": swanctl_secret(PSK)}}})


def _cygnet(tb: Testbed, workdir: Path, count: int, profile: Path | None = None) -> dict:
    psk_file = workdir / "load.psk"
    psk_file.write_text(PSK)
    os.chmod(psk_file, 0o600)
    argv = [str(PYTHON), "-m", "bench.loadgen", "--gateway", tb.gateway_address,
            "--local", topology.CLIENT_ADDR, "--count", str(count), "--psk-file", str(psk_file)]
    if profile is not None:
        argv += ["--profile", str(profile)]
    result = client_namespace(tb).run(argv, timeout=120)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _strongswan(tb: Testbed, workdir: Path, count: int, run_index: int) -> dict:
    settings = CharonSettings(log_levels={"default": 0})   # only CONTROL lines: cheap logging
    charon = Charon(client_namespace(tb), workdir / f"strongswan-load-{run_index}", settings,
                    name="strongswan-load")
    connections = {}
    for i in range(count):
        connections[f"load{i}"] = {
            "version": 2,
            "remote_addrs": tb.gateway_address,
            "vips": ["0.0.0.0"],
            "proposals": ["default"],
            "local": {"auth": "psk", "id": f"user{i}@{LOAD_DOMAIN}"},
            "remote": {"auth": "psk", "id": GATEWAY_NAME},
            "children": {"c": {"remote_ts": ["0.0.0.0/0"], "esp_proposals": ["default"],
                               "start_action": "start"}},
        }
    config = {"connections": connections, "secrets": {"ike-load": {"secret": swanctl_secret(PSK)}}}
    charon.start()
    try:
        time.sleep(0.2)   # let start-up work settle before the CPU baseline
        log_start = charon.log_path.stat().st_size if charon.log_path.exists() else 0
        cpu0, wall0 = cpu_seconds(charon.pid), time.monotonic()
        charon.load(config)
        established = 0
        deadline = wall0 + 120
        while time.monotonic() < deadline:
            with open(charon.log_path, "rb") as f:
                f.seek(log_start)
                log = f.read().decode(errors="replace")
            established = log.count("established with SPIs")
            if established >= count:
                break
            time.sleep(0.005)
        wall1 = time.monotonic()
        cpu1 = cpu_seconds(charon.pid)
        return {"count": count, "established": established, "cpu_s": cpu1 - cpu0,
                "wall_s": wall1 - wall0}
    finally:
        charon.stop(timeout=15)   # SIGTERM: charon deletes its IKE_SAs at the gateway


def run(tb: Testbed, workdir: Path, count: int, repeats: int, log,
        profile: Path | None = None) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    samples: dict[str, list[dict]] = {"cygnet": [], "strongswan": []}
    for i in range(repeats):
        order = ("cygnet", "strongswan") if i % 2 == 0 else ("strongswan", "cygnet")
        for client in order:
            if client == "cygnet":
                sample = _cygnet(tb, workdir, count)
            else:
                sample = _strongswan(tb, workdir, count, i)
            sample["cpu_ms_per_sa"] = 1000 * sample["cpu_s"] / max(1, sample["established"])
            samples[client].append(sample)
            log(f"handshake {client}: {sample['established']}/{count} up in {sample['wall_s']:.2f} s, "
                f"{sample['cpu_ms_per_sa']:.2f} ms CPU per SA")
            time.sleep(1.0)   # let the gateway finish deleting the previous batch
    results: dict = {"count": count}
    for client, runs in samples.items():
        results[client] = {"runs": runs,
                           "cpu_ms_per_sa": summary([r["cpu_ms_per_sa"] for r in runs]),
                           "wall_s": summary([r["wall_s"] for r in runs]),
                           "all_established": all(r["established"] == count for r in runs)}
    results["cpu_ratio"] = ratio(results["cygnet"]["cpu_ms_per_sa"]["median"],
                                 results["strongswan"]["cpu_ms_per_sa"]["median"])
    results["wall_ratio"] = ratio(results["cygnet"]["wall_s"]["median"],
                                  results["strongswan"]["wall_s"]["median"])
    if profile is not None:
        _cygnet(tb, workdir, count, profile=profile)
    return results
