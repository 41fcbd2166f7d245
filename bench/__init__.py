"""Cygnet benchmarks: every figure is a ratio against strongSwan 5.9 measured in the same run,
on the same testbed (testbed). Run them with `python -m bench.run` (see bench/run.py)."""
