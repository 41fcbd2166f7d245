"""Moved to testbed/probes.py (bench/ uses it too); kept for old imports."""

from testbed.probes import ProbeStream  # noqa: F401
