#!/usr/bin/env python3
"""Throughput of kernel ESP set up by Cygnet vs set up by charon, in the kernel-ESP VM.

    .venv/bin/python bench/kernel_lane.py [--seconds 8] [--output FILE.json]

This host has no kernel ESP, so the measurement runs inside one qemu/TCG VM
(scripts/vm/run_in_vm.py). In the guest: the strongSwan testbed with a kernel-netlink gateway,
then iperf3 from the client namespace to the LAN host through
  1. Cygnet, dataplane = kernel  (SAs installed by client/kernel_dataplane.py),
  2. charon as the client, kernel-netlink (the reference),
  3. Cygnet, dataplane = userspace (Python ESP over a TUN device), for scale,
all with ESP aes128gcm16 on the same gateway. TCG emulates the CPU, so absolute numbers mean
nothing: only the ratios do (1 and 2 differ only in who installed the same kernel SAs).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ESP = "aes128gcm16"


def measure(seconds: float) -> dict:
    """Inside the VM: the three runs; returns Mbit/s per data plane and the ratios."""
    sys.path.insert(0, str(ROOT))
    from client.xfrm import probe_esp
    from tests.interop.cygnet_helpers import CygnetClient, LAN_HOST
    from testbed import ClientOptions, Pki, Testbed, charon

    reason = probe_esp()
    if reason:
        raise SystemExit(f"no kernel ESP here: {reason}")
    charon.CHARON_PLUGINS = charon.CHARON_PLUGINS.replace("kernel-libipsec ", "")
    pki = Pki.load_or_create(os.environ.get("CYGNET_TESTBED_PKI_DIR") or tempfile.mkdtemp())

    def mbps(tb) -> float:
        result = tb.iperf3(seconds=seconds, timeout=seconds * 4 + 60)
        return result["end"]["sum_received"]["bits_per_second"] / 1e6

    results: dict = {"esp": ESP, "seconds": seconds}
    with Testbed(pki, capture=False) as tb:
        for dataplane in ("kernel", "userspace"):
            client = CygnetClient(tb, Path(tempfile.mkdtemp()) / f"cygnet-{dataplane}")
            client.up(client.profile("psk", dataplane=dataplane, esp=ESP, virtual_ip=["ipv4"]), timeout=120)
            tb.wait_for_ping("client", LAN_HOST, timeout=30)
            results[f"cygnet_{dataplane}_mbps"] = round(mbps(tb), 1)
            client.down()
            client.kill_everything()
        reference = tb.strongswan_client(ClientOptions(esp_proposals=(ESP,), virtual_ips=("0.0.0.0",)))
        reference.connect("psk")
        tb.wait_for_ping("client", LAN_HOST, timeout=30)
        results["charon_kernel_mbps"] = round(mbps(tb), 1)
        reference.disconnect("psk")
    results["ratio_cygnet_kernel_to_charon"] = round(results["cygnet_kernel_mbps"] / results["charon_kernel_mbps"], 3)
    results["ratio_cygnet_userspace_to_kernel"] = round(results["cygnet_userspace_mbps"] / results["cygnet_kernel_mbps"], 3)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="iperf3 duration per run")
    parser.add_argument("--output", help="also write the JSON result here")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # in the guest
    args = parser.parse_args()
    if args.inside:
        print("KERNEL_LANE_RESULT " + json.dumps(measure(args.seconds)), flush=True)
        return 0
    spec = importlib.util.spec_from_file_location("run_in_vm", ROOT / "scripts" / "vm" / "run_in_vm.py")
    vm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vm)
    reasons = vm.missing_requirements()
    if reasons:
        print("kernel_lane: cannot boot the VM: " + "; ".join(reasons), file=sys.stderr)
        return 2
    pki_dir = vm.CACHE / "pki"
    sys.path.insert(0, str(ROOT))
    from testbed import Pki

    Pki.load_or_create(pki_dir)  # made on the host: the guest sees it read-only
    started = time.monotonic()
    code, output, _console = vm.run(
        ["env", f"CYGNET_TESTBED_PKI_DIR={pki_dir}", sys.executable, str(Path(__file__).resolve()),
         "--inside", "--seconds", str(args.seconds)], timeout=1200, cwd=str(ROOT))
    lines = [line for line in output.splitlines() if line.startswith("KERNEL_LANE_RESULT ")]
    if code != 0 or not lines:
        print(output[-4000:], file=sys.stderr)
        print(f"kernel_lane: the VM run failed (exit {code})", file=sys.stderr)
        return 1
    result = json.loads(lines[-1].split(" ", 1)[1])
    result["vm_seconds"] = round(time.monotonic() - started)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
