"""CI smoke of every fuzz target (tests/fuzz/target_*.py): a few thousand mutated inputs each,
no crash, no hang. `make fuzz` runs them for as long as asked."""
from __future__ import annotations

import pytest

from tests.fuzz import run

SMOKE_INPUTS = 3000


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", run.discover())
def test_target_survives_a_smoke_run(name):
    report = run.fuzz_target(name, max_inputs=SMOKE_INPUTS, seconds=240, timeout=5, seed=13, memory_mb=2048)
    assert report.ok, run.format_report(report)
    assert report.inputs > 0


def test_runner_reports_crashes_and_hangs(tmp_path, monkeypatch):
    """The runner itself: an exception is a crash, a slow input a hang, both saved."""
    monkeypatch.setattr(run, "CRASH_DIR", tmp_path)

    def one_input(data: bytes) -> None:
        if data.startswith(b"boom"):
            raise ValueError("found")
        if data.startswith(b"slow"):
            while True:
                pass

    report = run.Report("demo")
    inputs = iter([b"fine", b"boom1", b"slow", b"boom2", None])
    run.run_inputs("demo", one_input, lambda: next(inputs), 100, 60, 0.2, report)
    assert (report.inputs, report.crashes, report.hangs) == (4, 2, 1)
    assert "ValueError: found" in report.first_failure
    assert len(list(tmp_path.glob("demo-*.bin"))) == 3


def test_mutator_is_reproducible_and_varies():
    import random

    a = run.Mutator([b"gateway = 1"], random.Random(5))
    b = run.Mutator([b"gateway = 1"], random.Random(5))
    first = [a.next() for _ in range(200)]
    assert first == [b.next() for _ in range(200)]
    assert len(set(first)) > 100
