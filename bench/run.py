"""Cygnet vs strongSwan 5.9, measured in the same run on the same testbed.

    cd /work/main && .venv/bin/python -m bench.run [--quick] [--only NAME ...]

Scenarios (NAME): tunnel-up, throughput, backtoback, handshake, memory. Needs root, strongSwan,
iperf3 and tcpdump (the testbed's requirements). Everything the run starts goes into one CPU
cgroup (bench/cgroup.py) that is removed at the end. Results: bench/results/<UTC time>.json
with every raw number, and a Markdown summary next to it (bench/report.py).

Full run ~10 minutes, --quick ~1.5 minutes (fewer repetitions, shorter iperf3 runs, 50 SAs).
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from testbed import Pki, Testbed, missing_requirements, reaper

from . import backtoback, handshake, machine, memory, profiling, report, throughput, tunnel_up
from .cgroup import CpuGroup
from .clients import set_cpu_group

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
PKI_DIR = Path("/var/tmp/cygnet-bench/pki")   # reused between runs: making it takes a while
SCENARIOS = ("tunnel-up", "throughput", "backtoback", "handshake", "memory")


# How much of everything: (full run, --quick)
PLAN = {
    "tunnel_up_runs": (20, 5),
    "iperf_seconds": (4, 2),
    "iperf_repeats": (5, 1),
    "handshake_count": (200, 50),
    "handshake_repeats": (5, 1),
    "memory_repeats": (3, 1),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (~2 minutes)")
    parser.add_argument("--only", action="append", choices=SCENARIOS, metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the pyinstrument profiles (on by default in a full run)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where results go")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    problems = missing_requirements()
    for program in ("iperf3", "tcpdump"):
        if shutil.which(program) is None:
            problems.append(f"program {program!r} not found")
    if problems:
        print("bench: cannot run here: " + "; ".join(problems), file=sys.stderr)
        return 2
    plan = {key: value[1 if args.quick else 0] for key, value in PLAN.items()}
    chosen = args.only or list(SCENARIOS)
    profile = not args.quick and not args.no_profile

    started = datetime.datetime.now(datetime.timezone.utc)
    results: dict = {
        "date": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": machine.describe(),
        "plan": plan,
        "load_average": {"start": machine.load_average()},
        "scenarios": {},
    }
    log(f"bench: {results['mode']} run of {', '.join(chosen)}; load average {results['load_average']['start']}")
    # `cygnet up` is measured as installed: pip byte-compiles a package, so compile ours
    # (into the ignored __pycache__ folders) instead of paying for it at every start.
    compileall.compile_dir(REPO / "client", quiet=1)
    compileall.compile_dir(REPO / "ike", quiet=1)
    compileall.compile_dir(REPO / "nm_plugin", quiet=1)

    workdir = Path(tempfile.mkdtemp(prefix="cygnet-bench-"))
    group = CpuGroup("cygnet-bench").__enter__()
    token = reaper.register(f"remove cgroup {group.name}", group.close)
    try:
        set_cpu_group(group)   # both clients' processes start inside it
        results["cgroup"] = [str(p) for p in group.paths]
        pki = Pki.load_or_create(PKI_DIR)
        scenarios = results["scenarios"]

        def attempt(name: str, function) -> None:
            """Run one scenario; a failure is recorded and the others still run."""
            if name not in chosen:
                return
            results["load_average"][name] = machine.load_average()
            log(f"{name}: starting (load average {results['load_average'][name]})")
            try:
                scenarios[name] = function()
            except Exception as error:
                log(f"{name} failed: {error!r}")
                scenarios[name] = {"error": traceback.format_exc(limit=6)}

        if any(name != "backtoback" for name in chosen):
            with Testbed(pki, gateway_options=handshake.gateway_options()) as tb:
                attempt("tunnel-up", lambda: tunnel_up.run(
                    tb, workdir / "tunnel-up", plan["tunnel_up_runs"], list(tunnel_up.METHODS), log)
                    | {"cold_start_imports": profiling.import_times()})
                attempt("throughput", lambda: throughput.run(
                    tb, workdir / "throughput", plan["iperf_seconds"], plan["iperf_repeats"], log)
                    | ({"profile": profiling.profile_data_plane(tb, workdir / "profile", plan["iperf_seconds"])}
                       if profile else {}))
                attempt("handshake", lambda: _handshake(tb, workdir, plan, profile))
                attempt("memory", lambda: memory.run(tb, workdir / "memory", plan["memory_repeats"], log))
        attempt("backtoback", lambda: backtoback.run(plan["iperf_seconds"], plan["iperf_repeats"], log))
    finally:
        set_cpu_group(None)
        reaper.run_one(token)
        shutil.rmtree(workdir, ignore_errors=True)

    results["load_average"]["end"] = machine.load_average()
    results["duration_s"] = round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1)
    results["goals"] = report.goals(results)
    stem = started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    args.output.mkdir(parents=True, exist_ok=True)
    json_path = args.output / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    md_path = args.output / f"{stem}.md"
    md_path.write_text(report.markdown(results))
    log(f"results: {json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path}, "
        f"{md_path.name} ({results['duration_s']} s)")
    print(report.markdown(results))
    return 0


def _handshake(tb, workdir: Path, plan: dict, profile: bool) -> dict:
    """Scenario 3, plus (full run) a pyinstrument profile of one more load-generator run."""
    profile_path = workdir / "loadgen-profile.json" if profile else None
    results = handshake.run(tb, workdir / "handshake", plan["handshake_count"],
                            plan["handshake_repeats"], log, profile=profile_path)
    if profile_path is not None and profile_path.exists():
        results["profile"] = profiling.top_functions(json.loads(profile_path.read_text()))
    return results


if __name__ == "__main__":
    sys.exit(main())
