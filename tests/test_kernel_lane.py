"""The VM lane: kernel ESP tests (tests/kernel/) inside one qemu VM running Debian's kernel.

This host's kernel has no ESP, so this test boots Debian's linux-image-amd64 under qemu (TCG;
scripts/vm/run_in_vm.py: host root read-only over 9p with a tmpfs overlay), runs the whole
tests/kernel suite plus the XFRM layout tests there in ONE pytest process (Python starts ~20x
slower in the guest), and reports the guest's results. The guest's full output is saved to
tests/artifacts/kernel-lane/output.log.

Prepared on the host first, because the guest sees the host read-only: the test PKI, and
libreswan unpacked from its .deb (Debian's libreswan conflicts with strongSwan's packages,
so it is never installed here; the guest copies it over its own tmpfs root).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.interop, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts" / "kernel-lane"
LANE_TIMEOUT = 1500  # seconds for boot + suite under TCG on 2 cores


def _run_in_vm_module():
    spec = importlib.util.spec_from_file_location("run_in_vm", ROOT / "scripts" / "vm" / "run_in_vm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare_libreswan(cache: Path) -> str:
    """Unpack Debian's libreswan .deb under cache/libreswan-root; returns what happened."""
    root = cache / "libreswan-root"
    if (root / "usr/libexec/ipsec/pluto").exists():
        return "libreswan unpacked already"
    debs = sorted(glob.glob("/var/cache/apt/archives/libreswan_*.deb")) + sorted(glob.glob(str(cache / "debs/libreswan_*.deb")))
    if not debs:
        (cache / "debs").mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["apt-get", "download", "libreswan"], cwd=cache / "debs",
                                capture_output=True, text=True, timeout=120)
        debs = sorted(glob.glob(str(cache / "debs/libreswan_*.deb")))
        if not debs:
            return f"libreswan .deb unavailable (apt-get download: {result.stderr.strip()[-200:]})"
    tmp = cache / "libreswan-root.tmp"
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    subprocess.run(["dpkg-deb", "-x", debs[-1], str(tmp)], check=True)
    os.replace(tmp, root)
    return f"unpacked {Path(debs[-1]).name}"


def test_kernel_esp_suite_in_a_vm(pki):
    vm = _run_in_vm_module()
    reasons = vm.missing_requirements()
    if reasons:
        pytest.skip("cannot boot the kernel-ESP VM: " + "; ".join(reasons))
    vm.CACHE.mkdir(parents=True, exist_ok=True)
    libreswan_note = prepare_libreswan(vm.CACHE)
    command = ["env", "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1", f"CYGNET_TESTBED_PKI_DIR={pki.directory}",
               f"CYGNET_LIBRESWAN_ROOT={vm.CACHE / 'libreswan-root'}",
               sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "--durations=15",
               "tests/client/test_xfrm_messages.py", "tests/kernel"]
    started = time.monotonic()
    code, output, console = vm.run(command, timeout=LANE_TIMEOUT, cwd=str(ROOT))
    elapsed = time.monotonic() - started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "output.log").write_text(f"# {libreswan_note}; lane {elapsed:.0f} s\n{output}")
    (ARTIFACTS / "console.log").write_text(console)
    summary = output.strip().splitlines()[-1] if output.strip() else "(no output)"
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", summary)}
    print(f"\nkernel lane: {summary} — {elapsed:.0f} s in the VM ({libreswan_note})")
    assert code != 124, f"the VM lane timed out after {LANE_TIMEOUT} s:\n{output[-4000:]}"
    assert code == 0, f"kernel ESP suite failed in the VM (exit {code}): {summary}\n{output[-8000:]}"
    assert counts.get("passed", 0) > 0, summary
