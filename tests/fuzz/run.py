"""Run the fuzz targets: ``python -m tests.fuzz.run [NAME ...] --inputs N --seconds S``.

Each target (tests/fuzz/target_NAME.py) runs in its own forked process, for N inputs or S
seconds, whichever comes first, under a memory limit. The inputs come from atheris (coverage
guided, libFuzzer) when it is installed and ``--engine atheris`` is asked for, else from a
mutation loop seeded from the target's SEEDS: byte flips, random bytes, insertions,
deletions, truncation, duplication of a slice, and splicing two seeds.

Reported per target: inputs run, crashes (an exception escaping one_input; each crashing
input is saved as tests/fuzz/crashes/NAME-<sha256>.bin), hangs (one input taking longer than
--timeout seconds, cut off by SIGALRM, saved likewise) and the process's peak memory
(getrusage ru_maxrss). The exit status is 1 if any target crashed or hung.

Replay a saved input: ``python -m tests.fuzz.run NAME --replay tests/fuzz/crashes/FILE``.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import random
import resource
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

FUZZ_DIR = Path(__file__).resolve().parent
CRASH_DIR = FUZZ_DIR / "crashes"
MAX_INPUT = 64 * 1024


class Hang(BaseException):
    """One input ran past the per-input timeout (BaseException: targets catch Exception)."""


@dataclass
class Report:
    target: str
    inputs: int = 0
    crashes: int = 0
    hangs: int = 0
    peak_rss_mb: float = 0.0
    seconds: float = 0.0
    engine: str = "mutate"
    saved: list = field(default_factory=list)   # crashing / hanging inputs written
    first_failure: str = ""                     # the first traceback, for the report

    @property
    def ok(self) -> bool:
        return self.crashes == 0 and self.hangs == 0


def discover() -> list[str]:
    """Target names: tests/fuzz/target_NAME.py -> NAME."""
    return sorted(p.stem[len("target_"):] for p in FUZZ_DIR.glob("target_*.py"))


def load(name: str):
    return importlib.import_module(f"tests.fuzz.target_{name}")


# ------------------------------------------------------------------------------ mutations


class Mutator:
    """Seeded, reproducible mutations of the target's seeds (and of inputs derived from them)."""

    def __init__(self, seeds: list[bytes], rng: random.Random):
        self.seeds = [bytes(s) for s in seeds] or [b""]
        self.rng = rng
        self.pool: list[bytes] = list(self.seeds)  # recent inputs, to stack mutations over time

    def next(self) -> bytes:
        rng = self.rng
        data = bytearray(rng.choice(self.pool))
        for _ in range(rng.choice((1, 1, 2, 3, 4, 8))):
            data = self._mutate(data)
        data = bytes(data[:MAX_INPUT])
        if rng.random() < 0.1:
            self.pool.append(data)
            if len(self.pool) > 256:
                del self.pool[len(self.seeds) + rng.randrange(len(self.pool) - len(self.seeds))]
        return data

    def _mutate(self, data: bytearray) -> bytearray:
        rng = self.rng
        kind = rng.randrange(8)
        n = len(data)
        if kind == 0 and n:      # flip bits in one byte
            data[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif kind == 1 and n:    # a random or an interesting byte
            data[rng.randrange(n)] = rng.choice((0, 0xFF, 0x7F, 0x80, 0x20, 0x0A, 0x22, 0x5C,
                                                 0x5B, 0x7B, rng.randrange(256)))
        elif kind == 2:          # insert random bytes
            at = rng.randrange(n + 1)
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif kind == 3 and n:    # delete a slice
            at = rng.randrange(n)
            del data[at:at + rng.randrange(1, 17)]
        elif kind == 4 and n:    # truncate
            del data[rng.randrange(n):]
        elif kind == 5 and n:    # duplicate a slice somewhere (repetition, nesting)
            at, size = rng.randrange(n), rng.randrange(1, 65)
            piece = data[at:at + size] * rng.choice((1, 2, 16, 256))
            to = rng.randrange(n + 1)
            data[to:to] = piece
        elif kind == 6:          # splice: our head, another seed's tail
            other = rng.choice(self.seeds)
            data = data[:rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1):]
        elif kind == 7 and n:    # a seed's token in place of a slice (keys, values, brackets)
            other = rng.choice(self.seeds)
            if other:
                at = rng.randrange(len(other))
                piece = other[at:at + rng.randrange(1, 33)]
                to = rng.randrange(n)
                data[to:to + rng.randrange(0, 9)] = piece
        return data


# ------------------------------------------------------------------------------ running one target


def _on_alarm(signum, frame):
    raise Hang()


def _save(name: str, data: bytes) -> str:
    CRASH_DIR.mkdir(exist_ok=True)
    path = CRASH_DIR / f"{name}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return os.path.relpath(path)


def run_inputs(name: str, one_input: Callable[[bytes], None], inputs: Callable[[], Optional[bytes]],
               max_inputs: int, seconds: float, timeout: float, report: Report) -> None:
    """Feed `inputs()` to one_input until max_inputs, seconds, or inputs() returns None."""
    signal.signal(signal.SIGALRM, _on_alarm)
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    while report.inputs < max_inputs and time.monotonic() < deadline:
        data = inputs()
        if data is None:
            break
        report.inputs += 1
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            one_input(data)
        except Hang:
            report.hangs += 1
            failure = f"hang: one input took more than {timeout} s"
        except BaseException:  # noqa: BLE001 — what escapes one_input is the finding
            if isinstance(sys.exc_info()[1], KeyboardInterrupt):
                raise
            report.crashes += 1
            failure = traceback.format_exc(limit=-12)
        else:
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if len(report.saved) < 20:
            report.saved.append(_save(name, data))
        if not report.first_failure:
            report.first_failure = failure
    report.seconds = round(time.monotonic() - started, 1)


def fuzz_target(name: str, max_inputs: int, seconds: float, timeout: float, seed: int,
                memory_mb: int) -> Report:
    """One target in a forked child (its own memory limit and peak RSS); the report comes back
    over a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            report = Report(name)
            module = load(name)
            mutator = Mutator(list(getattr(module, "SEEDS", [b""])), random.Random(seed))
            # The seeds themselves first, then mutations.
            pending = list(mutator.seeds)
            run_inputs(name, module.one_input, lambda: pending.pop(0) if pending else mutator.next(),
                       max_inputs, seconds, timeout, report)
            report.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            os.write(write_end, json.dumps(asdict(report)).encode())
        except BaseException:  # noqa: BLE001 — a broken target is reported by the parent
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        report = Report(name, crashes=1,
                        first_failure=f"the target's process died (status {os.waitstatus_to_exitcode(status)})")
        return report
    raw = json.loads(data)
    return Report(**raw)


def fuzz_with_atheris(name: str, max_inputs: int, seconds: float, timeout: float,
                      memory_mb: int) -> Report:
    """libFuzzer through atheris, in a subprocess; its summary line gives the counts."""
    import subprocess

    CRASH_DIR.mkdir(exist_ok=True)
    args = [sys.executable, "-m", "tests.fuzz.run", name, "--atheris-worker", "--",
            f"-runs={max_inputs}", f"-max_total_time={max(1, int(seconds))}",
            f"-timeout={max(1, int(timeout))}", f"-rss_limit_mb={memory_mb}",
            f"-artifact_prefix={CRASH_DIR}/{name}-", "-print_final_stats=1"]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, cwd=FUZZ_DIR.parent.parent)
    report = Report(name, engine="atheris", seconds=round(time.monotonic() - started, 1))
    for line in done.stderr.splitlines():
        if line.startswith("stat::number_of_executed_units:"):
            report.inputs = int(line.split(":")[-1])
        if line.startswith("stat::peak_rss_mb:"):
            report.peak_rss_mb = float(line.split(":")[-1])
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-30:])
        if "timeout" in done.stderr and "ERROR: libFuzzer: timeout" in done.stderr:
            report.hangs = 1
        else:
            report.crashes = 1
        report.first_failure = tail
    return report


def _atheris_worker(name: str, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports():
        module = load(name)
    corpus = []  # libFuzzer takes seeds from a folder: write them to a temporary one
    import tempfile

    seeds_dir = tempfile.mkdtemp(prefix=f"cygnet-fuzz-{name}-")
    for i, seed in enumerate(getattr(module, "SEEDS", [])):
        Path(seeds_dir, f"seed-{i}").write_bytes(seed)
        corpus.append(seeds_dir)
    atheris.Setup([sys.argv[0], *libfuzzer_args, *corpus[:1]], module.one_input)
    atheris.Fuzz()


# ------------------------------------------------------------------------------ command line


def format_report(r: Report) -> str:
    line = (f"{r.target:14} {r.engine:8} inputs={r.inputs:<9} crashes={r.crashes:<3} hangs={r.hangs:<3} "
            f"peak_rss={r.peak_rss_mb:.0f}MB time={r.seconds:.0f}s")
    if r.saved:
        line += "\n    saved: " + " ".join(r.saved[:5]) + (" ..." if len(r.saved) > 5 else "")
    if r.first_failure:
        line += "\n    " + r.first_failure.strip().replace("\n", "\n    ")
    return line


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--atheris-worker" in argv:
        at = argv.index("--atheris-worker")
        _atheris_worker(argv[0], argv[at + 2:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"targets (default: all: {', '.join(discover())})")
    parser.add_argument("--inputs", type=int, default=int(os.environ.get("FUZZ_INPUTS", 10**9)),
                        help="inputs per target (env FUZZ_INPUTS)")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 60)),
                        help="seconds per target (env FUZZ_SECONDS; default 60)")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("FUZZ_TIMEOUT", 2)),
                        help="seconds one input may take before it counts as a hang (default 2)")
    parser.add_argument("--memory-mb", type=int, default=int(os.environ.get("FUZZ_MEMORY_MB", 2048)),
                        help="address-space limit per target process (default 2048)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", 1)),
                        help="random seed of the mutation loop (reproducible runs)")
    parser.add_argument("--engine", choices=("mutate", "atheris"),
                        default=os.environ.get("FUZZ_ENGINE", "mutate"))
    parser.add_argument("--json", action="store_true", help="one JSON report per line")
    parser.add_argument("--replay", type=Path, help="run one saved input through the target, with its traceback")
    args = parser.parse_args(argv)

    names = args.names or discover()
    unknown = [n for n in names if n not in discover()]
    if unknown:
        parser.error(f"no target {', '.join(unknown)} (known: {', '.join(discover())})")
    if args.replay:
        load(names[0]).one_input(args.replay.read_bytes())  # raises with the full traceback
        print("no crash")
        return 0
    failed = False
    for name in names:
        if args.engine == "atheris":
            report = fuzz_with_atheris(name, args.inputs, args.seconds, args.timeout, args.memory_mb)
        else:
            report = fuzz_target(name, args.inputs, args.seconds, args.timeout, args.seed, args.memory_mb)
        print(json.dumps(asdict(report)) if args.json else format_report(report), flush=True)
        failed |= not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
