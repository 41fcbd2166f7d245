"""Scenario 1: tunnel-up time, on the wire and cold, Cygnet vs strongSwan's initiator.

For each authentication method both clients are started from nothing, alternately, `runs`
times each, against the same gateway while tcpdump records the client's link:

- cold: from starting the client (`cygnet up`, or charon + swanctl --load-all + swanctl
  --initiate) to the first ping reply from the LAN host through the tunnel;
- wire: from the first IKE_SA_INIT request to the IKE_AUTH response that completes the
  CHILD_SA, read from the pcap (bench/pcap.py), so process start-up is excluded;
- RSS of the connected client (scenario 4 uses the PSK figures).
"""

from __future__ import annotations

import time
from pathlib import Path

from testbed import Testbed

from . import pcap
from .clients import (METHODS, cold_start_cygnet, cold_start_strongswan, python_floor,
                      use_gateway_certificate, write_profile)
from .stats import ratio, summary


def run(tb: Testbed, workdir: Path, runs: int, methods: list[str], log) -> dict:
    capture = tb.start_capture("client", "eth0")
    windows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    cold: dict[tuple[str, str], list[float]] = {}
    rss: dict[tuple[str, str], list[float]] = {}
    phases: dict[str, list[dict]] = {}
    for name in methods:
        method = METHODS[name]
        use_gateway_certificate(tb, method)
        profile = write_profile(tb, method, workdir / "profiles")
        for i in range(runs):
            # Alternate who goes first, so drift in machine load hits both alike.
            order = ("cygnet", "strongswan") if i % 2 == 0 else ("strongswan", "cygnet")
            for client in order:
                if client == "cygnet":
                    result, _ = cold_start_cygnet(tb, profile, workdir / "cygnet")
                else:
                    result, _ = cold_start_strongswan(tb, method)
                windows.setdefault((name, client), []).append((result.start, result.reply + 0.001))
                cold.setdefault((name, client), []).append(result.seconds)
                rss.setdefault((name, client), []).append(result.rss_mb)
                if result.phases is not None:
                    phases.setdefault(name, []).append(result.phases)
                time.sleep(0.1)   # let the DELETE exchange finish off the wire
        log(f"tunnel-up {name}: cygnet cold {summary(cold[name, 'cygnet'])['median'] * 1000:.0f} ms, "
            f"strongswan cold {summary(cold[name, 'strongswan'])['median'] * 1000:.0f} ms")
    resolv = workdir / "floor-resolv.conf"
    resolv.parent.mkdir(parents=True, exist_ok=True)
    resolv.write_text("nameserver 127.0.0.1\n")
    floor = [round(python_floor(tb, resolv) * 1000, 3) for _ in range(runs)]
    time.sleep(0.3)
    capture.stop()
    packets = pcap.ike_packets(capture.pcap)

    results = {"python_floor": {"cold_ms": floor, "cold": summary(floor)}}
    for name in methods:
        entry = {}
        for client in ("cygnet", "strongswan"):
            found = pcap.handshakes(packets, windows[name, client])
            wire = [None if h is None else h[1] - h[0] for h in found]
            # From the IKE_AUTH response on the wire to the first ping reply: installing the
            # CHILD_SA, addresses, routes (and DNS) until traffic flows.
            after = [None if h is None else w[1] - 0.001 - h[1]
                     for h, w in zip(found, windows[name, client])]
            splits = [pcap.who_waited(packets, h) for h in found if h is not None]
            entry[client] = {
                "wire_ms": [None if w is None else round(w * 1000, 3) for w in wire],
                # Of the wire time: the client's computing between a response and its next
                # request, and the gateway's between a request and its response.
                "wire_client_ms": summary([x["client_s"] * 1000 for x in splits]),
                "wire_gateway_ms": summary([x["gateway_s"] * 1000 for x in splits]),
                "auth_to_first_reply_ms": summary([None if a is None else a * 1000 for a in after]),
                "cold_ms": [round(c * 1000, 3) for c in cold[name, client]],
                "rss_mb": [round(r, 2) for r in rss[name, client] if r is not None],
            }
            entry[client]["wire"] = summary(entry[client]["wire_ms"])
            entry[client]["cold"] = summary(entry[client]["cold_ms"])
            entry[client]["rss"] = summary(entry[client]["rss_mb"])
        entry["cygnet"]["phases_ms"] = {
            "start_to_contacting": summary([p["contacting"] * 1000 for p in phases.get(name, [])
                                            if "contacting" in p]),
            "start_to_tunnel_up_line": summary([p["tunnel up"] * 1000 for p in phases.get(name, [])
                                                if "tunnel up" in p])}
        entry["wire_ratio"] = ratio(entry["cygnet"]["wire"]["median"], entry["strongswan"]["wire"]["median"])
        entry["cold_ratio"] = ratio(entry["cygnet"]["cold"]["median"], entry["strongswan"]["cold"]["median"])
        # One example exchange per client, to see where the time goes.
        entry["example_exchanges"] = {
            client: pcap.exchange_summary(packets, windows[name, client][-1])
            for client in ("cygnet", "strongswan")}
        results[name] = entry
        log(f"tunnel-up {name}: wire cygnet {entry['cygnet']['wire']['median']} ms vs strongswan "
            f"{entry['strongswan']['wire']['median']} ms (x{entry['wire_ratio']:.2f}); cold x{entry['cold_ratio']:.2f}")
    return results
