"""Goals and the Markdown summary of one benchmark run (the JSON holds every raw number)."""

from __future__ import annotations

from .stats import goal, ratio


def goals(results: dict) -> dict:
    """Each goal of the benchmark issue: the measured value, the goal, met or not."""
    s = {name: entry for name, entry in results["scenarios"].items() if "error" not in entry}
    found: dict = {}
    for method, entry in s.get("tunnel-up", {}).items():
        if isinstance(entry, dict) and "wire_ratio" in entry:
            found[f"tunnel-up {method} wire (x strongSwan)"] = goal(entry["wire_ratio"], 1.0, at_most=True)
            found[f"tunnel-up {method} cold (x strongSwan)"] = goal(entry["cold_ratio"], 1.5, at_most=True)
    for suite, entry in s.get("throughput", {}).items():
        if suite == "profile":
            continue
        for direction in ("upload", "download"):
            d = entry[direction]
            found[f"throughput {suite} {direction} (x strongSwan)"] = goal(d["throughput_ratio"], 0.95, at_most=False)
            found[f"throughput per core {suite} {direction} (x strongSwan)"] = goal(d["per_core_ratio"], 2.0, at_most=False)
    for config, entry in s.get("backtoback", {}).items():
        for direction, d in entry.items():
            found[f"back-to-back {config} {direction} (Gbit/s)"] = goal(d["gbps"]["median"], 1.3, at_most=False)
    if "handshake" in s:
        found["handshake CPU per IKE_SA (x strongSwan)"] = goal(s["handshake"]["cpu_ratio"], 2.0, at_most=True)
    if "memory" in s:
        found["memory RSS connected (MB)"] = goal(s["memory"]["cygnet"]["summary"]["median"], 30.0, at_most=True)
        plugin = s["memory"].get("networkmanager", {}).get("cygnet", {}).get("summary", {}).get("median")
        if plugin is not None:
            found["memory RSS NetworkManager plugin connected (MB)"] = goal(plugin, 30.0, at_most=True)
    # issue 16: longest gap either way per failover, both packet rates (None: never back)
    limits = {"kill": 3.0, "stop": 3.0, "lost-response": 10.0, "stale-node": 15.0}
    for case, by_rate in s.get("ha-failover", {}).items():
        for rate, entry in by_rate.items():
            c = entry.get("cygnet", {})
            if "error" not in c and case in limits:
                gaps = [c.get("out_gap_s"), c.get("back_gap_s")]
                worst = None if None in gaps else max(gaps)
                found[f"HA {case} at {rate}, longest gap (s)"] = dict(
                    goal(worst, limits[case], at_most=True),
                    **({} if worst is not None else {"met": False}))   # never came back
    return found


def _f(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _spread(summary: dict, digits: int = 1) -> str:
    """'median (min–max, IQR x, n)'"""
    if not summary or summary.get("median") is None:
        return "–"
    return (f"{_f(summary['median'], digits)} ({_f(summary['min'], digits)}–{_f(summary['max'], digits)}, "
            f"IQR {_f(summary['iqr'], digits)}, n={summary['n']})")


def markdown(results: dict) -> str:
    m = results["machine"]
    failed = {name: entry["error"] for name, entry in results["scenarios"].items() if "error" in entry}
    s = {name: entry for name, entry in results["scenarios"].items() if name not in failed}
    out = [f"# Cygnet vs strongSwan benchmark, {results['date']} ({results['mode']} run)", "",
           f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, kernel {m['kernel']}, Python {m['python']}, "
           f"{m['strongswan']}",
           f"- Commit: {m['commit']}",
           "- Load average (1/5/15 min): " + ", ".join(f"{k} {v}" for k, v in results["load_average"].items())
           + " — other work shared this machine; compare ratios within this run",
           f"- Both clients' processes in one CPU cgroup: {', '.join(results.get('cgroup', [])) or 'none'}",
           f"- Duration {results.get('duration_s')} s; values are medians (min–max, IQR, n)", ""]

    if "tunnel-up" in s:
        out += ["## Tunnel-up time (ms)", "",
                "wire: first IKE_SA_INIT request to the last IKE_AUTH response (pcap on the client link); "
                "cold: client start to the first ping reply through the tunnel.", "",
                "| method | Cygnet wire | strongSwan wire | ratio | Cygnet cold | strongSwan cold | ratio |",
                "|---|---|---|---|---|---|---|"]
        for method, e in s["tunnel-up"].items():
            if not isinstance(e, dict) or "wire_ratio" not in e:
                continue
            out.append(f"| {method} | {_spread(e['cygnet']['wire'])} | {_spread(e['strongswan']['wire'])} | "
                       f"{_f(e['wire_ratio'])} | {_spread(e['cygnet']['cold'], 0)} | "
                       f"{_spread(e['strongswan']['cold'], 0)} | {_f(e['cold_ratio'])} |")
        out += ["", "Wire time split (medians, ms; client = computing between a response and the next "
                "request, gateway = between a request and its response): "
                + "; ".join(f"{method}: Cygnet {_f(e['cygnet']['wire_client_ms']['median'], 1)} + gateway "
                            f"{_f(e['cygnet']['wire_gateway_ms']['median'], 1)}, strongSwan "
                            f"{_f(e['strongswan']['wire_client_ms']['median'], 1)} + gateway "
                            f"{_f(e['strongswan']['wire_gateway_ms']['median'], 1)}"
                            for method, e in s["tunnel-up"].items()
                            if isinstance(e, dict) and "wire_client_ms" in e.get("cygnet", {}))]
        out += ["", "Where Cygnet's cold start goes (medians, ms from `cygnet up`): "
                + "; ".join(f"{method}: 'contacting' line {_f(e['cygnet']['phases_ms']['start_to_contacting']['median'], 0)}, "
                            f"'tunnel up' line {_f(e['cygnet']['phases_ms']['start_to_tunnel_up_line']['median'], 0)}, "
                            f"IKE_AUTH response to first reply {_f(e['cygnet']['auth_to_first_reply_ms']['median'], 0)} "
                            f"(strongSwan {_f(e['strongswan']['auth_to_first_reply_ms']['median'], 0)})"
                            for method, e in s["tunnel-up"].items()
                            if isinstance(e, dict) and "phases_ms" in e.get("cygnet", {})), ""]
        floor = s["tunnel-up"].get("python_floor")
        psk = s["tunnel-up"].get("psk")
        if floor and psk:
            out += [f"Python floor (interpreter + asyncio + cryptography's binding, started like "
                    f"`cygnet up`, to exit): {_spread(floor['cold'], 0)} ms, "
                    f"x{_f(ratio(floor['cold']['median'], psk['strongswan']['cold']['median']))} of "
                    f"strongSwan's whole PSK cold start.", ""]
        imports = s["tunnel-up"].get("cold_start_imports")
        if imports:
            out += ["Import time of the modules `cygnet up` needs (ms, -X importtime): "
                    + ", ".join(f"{i['module']} {i['ms']}" for i in imports), ""]

    if "throughput" in s:
        out += ["## Throughput through the gateway (iperf3 TCP, Mbit/s)", "",
                "Per core: Mbit/s / client cores used (utime+stime from /proc/<pid>/stat over the run). "
                "Limit: cores used + cores spent runnable but waiting for a CPU (schedstat), medians.", "",
                "| suite | direction | Cygnet | strongSwan | ratio | Cygnet Mbit/s per core | strongSwan per core | ratio | limit |",
                "|---|---|---|---|---|---|---|---|---|"]
        for suite, e in s["throughput"].items():
            if suite == "profile":
                continue
            for direction in ("upload", "download"):
                d = e[direction]
                out.append(f"| {e['name']} | {direction} | {_spread(d['cygnet']['mbps'])} | "
                           f"{_spread(d['strongswan']['mbps'])} | {_f(d['throughput_ratio'])} | "
                           f"{_spread(d['cygnet']['mbps_per_core'], 0)} | {_spread(d['strongswan']['mbps_per_core'], 0)} | "
                           f"{_f(d['per_core_ratio'])} | {d['limit']} |")
        prof = s["throughput"].get("profile")
        if prof:
            out += ["", f"pyinstrument on `cygnet up` (AES-GCM-128, iperf3 up then down, {prof.get('seconds')} s "
                    "recorded), self time as % of the recording: "
                    + ", ".join(f"{name} {pct}%" for name, pct in prof.get("self", [])[:10])]
        out.append("")

    if "backtoback" in s:
        out += ["## Cygnet data plane back to back (two UserspaceDataPlanes, iperf3 TCP, Gbit/s)", "",
                "cores: used (+ runnable but waiting for a CPU). Per busier core: Gbit/s / cores used by "
                "the busier endpoint, an estimate of one dedicated core per side on a loaded machine.", "",
                "| TUN / suite | direction | Gbit/s | per busier core | sender cores | receiver cores | limit |",
                "|---|---|---|---|---|---|---|"]
        for config, e in s["backtoback"].items():
            for direction, d in e.items():
                out.append(f"| {config} | {direction} | {_spread(d['gbps'], 3)} | "
                           f"{_f((d.get('gbps_per_busier_core') or {}).get('median'))} | {_f(d['sender_cores'])} "
                           f"(+{_f(d.get('sender_waiting'))}) | {_f(d['receiver_cores'])} "
                           f"(+{_f(d.get('receiver_waiting'))}) | {d['limit']} |")
        out.append("")

    if "handshake" in s:
        h = s["handshake"]
        out += [f"## Handshake cost: {h['count']} IKE_SAs (+ CHILD_SA) from one process", "",
                "| client | CPU ms per IKE_SA | wall s for all | all up |", "|---|---|---|---|",
                f"| Cygnet (bench/loadgen.py) | {_spread(h['cygnet']['cpu_ms_per_sa'], 2)} | "
                f"{_spread(h['cygnet']['wall_s'], 2)} | {h['cygnet']['all_established']} |",
                f"| strongSwan (charon, start_action=start) | {_spread(h['strongswan']['cpu_ms_per_sa'], 2)} | "
                f"{_spread(h['strongswan']['wall_s'], 2)} | {h['strongswan']['all_established']} |",
                "", f"CPU ratio {_f(h['cpu_ratio'])}, wall ratio {_f(h['wall_ratio'])}.", ""]
        if h.get("profile"):
            out += [f"pyinstrument on the load generator ({h['profile'].get('seconds')} s recorded, wall "
                    "clock, includes the DELETEs), self time as % of the recording: "
                    + ", ".join(f"{name} {pct}%" for name, pct in h["profile"].get("self", [])[:10]), ""]

    if "memory" in s:
        mem = s["memory"]
        out += ["## Memory (RSS of the connected client, MB, PSK)", "",
                f"Cygnet {_spread(mem['cygnet']['summary'])}; strongSwan charon {_spread(mem['strongswan']['summary'])}; "
                f"ratio {_f(mem['ratio'])}.", "",
                "RSS of a fresh interpreter after each import (MB, +growth): "
                + ", ".join(f"{name} {mb} (+{grow})" for name, mb, *rest in mem.get("rss_by_import", [])
                            for grow in (rest[0] if rest else "",)), ""]
        nm = mem.get("networkmanager", {})
        if "cygnet" in nm:
            out += ["NetworkManager plugins, connected through `nmcli connection up` (PSK): "
                    f"cygnet-nm-service {_spread(nm['cygnet']['summary'])}; "
                    f"charon-nm {_spread(nm['strongswan']['summary'])}.", ""]
        elif nm:
            out += ["NetworkManager plugins: " + (nm.get("skipped") or "failed: "
                                                  + nm.get("error", "").strip().splitlines()[-1]), ""]

    if "ha-failover" in s:
        out += ["## HA failovers (longest gap client->LAN / LAN->client, s; – = not back "
                "within the window)", "",
                "| case | LAN->client rate | Cygnet | strongSwan | Cygnet carrying at the end |",
                "|---|---|---|---|---|"]

        def gaps(entry):
            if "error" in entry:
                return "error"
            return f"{_f(entry.get('out_gap_s'))} / {_f(entry.get('back_gap_s'))}"

        for case, by_rate in s["ha-failover"].items():
            for rate, entry in by_rate.items():
                c, charon = entry.get("cygnet", {}), entry.get("strongswan", {})
                out.append(f"| {case} | {rate} | {gaps(c)} | {gaps(charon)} | "
                           f"{'yes' if c.get('carrying_at_end') else 'no'} |")
        out.append("")

    for name, error in failed.items():
        out += [f"## {name}: failed", "", "```", error.strip(), "```", ""]
    out += ["## Goals", "", "| goal | value | target | met |", "|---|---|---|---|"]
    for name, g in results.get("goals", {}).items():
        met = {True: "yes", False: "**no**", None: "–"}[g["met"]]
        out.append(f"| {name} | {_f(g['value'])} | {g['goal']} | {met} |")
    return "\n".join(out) + "\n"
