"""Where Cygnet spends its time: pyinstrument on `cygnet up` carrying iperf3 traffic and on the
handshake load generator (bench/loadgen.py --profile), -X importtime on the cold-start imports."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYINSTRUMENT = REPO / ".venv" / "bin" / "pyinstrument"
PYTHON = REPO / ".venv" / "bin" / "python"


def profile_data_plane(tb, workdir: Path, seconds: float) -> dict:
    """Run `cygnet up` (PSK, AES-GCM-128) under pyinstrument, push iperf3 through it both ways,
    and return where its main thread (the event loop: IKE and the ESP data plane) spent time.

    py-spy would sample from outside, but cannot read this interpreter's version here
    ("Failed to find python version from target process"), so pyinstrument runs inside.
    """
    from .clients import METHODS, cold_start_cygnet, use_gateway_certificate, write_profile
    from .throughput import iperf3

    method = METHODS["psk"]
    use_gateway_certificate(tb, method)
    profile = write_profile(tb, method, workdir / "profiles", esp="aes128gcm16")
    output = workdir / "data-plane-profile.json"
    wrapper = [str(PYINSTRUMENT), "--renderer", "json", "--outfile", str(output)]
    _, client = cold_start_cygnet(tb, profile, workdir / "cygnet-profiled", keep=True, wrapper=wrapper)
    try:
        for reverse in (False, True):
            iperf3(tb, seconds, reverse)
    finally:
        client.stop()   # SIGTERM: cygnet exits normally and pyinstrument writes its report
    if not output.exists():
        return {}
    return top_functions(json.loads(output.read_text()))


def top_functions(report: dict, limit: int = 12) -> dict:
    """From a pyinstrument JSON report: functions by self time and by inclusive time (% of
    the whole recording; a function that recurses counts once per path)."""
    root = report["root_frame"]
    total = root["time"] or 1.0
    self_time: Counter = Counter()
    inclusive: Counter = Counter()

    def walk(frame: dict, on_path: frozenset) -> None:
        name = f"{frame['function']} ({_short(frame.get('file_path_short') or frame.get('file_path') or '')})"
        children = frame.get("children", [])
        self_time[name] += frame["time"] - sum(child["time"] for child in children)
        if name not in on_path:
            inclusive[name] += frame["time"]
        for child in children:
            walk(child, on_path | {name})

    walk(root, frozenset())

    def table(counter: Counter) -> list:
        return [[name, round(100 * t / total, 1)] for name, t in counter.most_common(limit)]

    return {"seconds": round(total, 2), "self": table(self_time), "inclusive": table(inclusive)}


def _short(path: str) -> str:
    for marker in ("/work/main/", "site-packages/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def import_times(limit: int = 10) -> list:
    """Cumulative import time (ms) of the heaviest modules `cygnet up` loads before it can send
    its first packet (python -X importtime, one fresh interpreter)."""
    modules = "client.engine, ike.session, client.dataplane, client.netconfig, client.tun, client.dns"
    result = subprocess.run([str(PYTHON), "-X", "importtime", "-c", f"import {modules}"],
                            capture_output=True, text=True, cwd=REPO)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            cumulative = int(parts[1].strip())
        except ValueError:
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((cumulative, depth, name.strip()))
    top_level = sorted((r for r in rows if r[1] == 0), reverse=True)
    total = sum(r[0] for r in top_level)
    return [{"module": name, "ms": round(us / 1000, 1)} for us, _, name in top_level[:limit]] + [
        {"module": "(all top-level imports)", "ms": round(total / 1000, 1)}]
