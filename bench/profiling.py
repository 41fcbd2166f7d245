"""Where Cygnet spends its time: py-spy on the data plane, pyinstrument on the handshake load
generator (bench/loadgen.py --profile), -X importtime on the cold-start imports."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY_SPY = REPO / ".venv" / "bin" / "py-spy"
PYTHON = REPO / ".venv" / "bin" / "python"


def py_spy_record(pid: int, seconds: float, output: Path) -> subprocess.Popen:
    """Start sampling process `pid` (all threads, native frames off) into a collapsed-stack file."""
    argv = [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(int(max(1, seconds))),
            "--rate", "250", "--format", "raw", "--output", str(output), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_functions(collapsed: Path, limit: int = 12) -> dict:
    """From py-spy's collapsed stacks: the functions with the most samples on top of the stack
    (self time) and anywhere on the stack (inclusive time), as percentages of all samples."""
    self_counts: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(frame) for frame in stack.split(";")]
        self_counts[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return {"samples": 0, "self": [], "inclusive": []}

    def table(counter: Counter) -> list:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(limit)]

    return {"samples": total, "self": table(self_counts), "inclusive": table(inclusive)}


def _short(frame: str) -> str:
    """'recv (client/dataplane.py:123)' -> 'recv (client/dataplane.py)' with the path shortened."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("/work/main/", "site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


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
