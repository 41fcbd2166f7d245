"""`make demo` is the README's main job: keep it working (it builds its own testbed)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.interop
def test_demo_connects_shows_virtual_ip_and_dns_and_pings_through_the_tunnel():
    from testbed import missing_requirements

    if missing_requirements():
        pytest.skip("testbed unavailable: " + "; ".join(missing_requirements()))
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], capture_output=True,
                            text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(REPO)})
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "virtual IP 10.3.0." in out and "DNS 10.1.0.53 10.1.0.54" in out
    assert out.count("3 received, 0% packet loss") == 2  # IPv4 and IPv6 through the tunnel
    assert out.rstrip().endswith("demo succeeded: Cygnet reached the LAN behind strongSwan through its tunnel")
    # the client's own resolv.conf came back
    assert out.split("after the tunnel", 1)[1].count("nameserver 198.51.100.53") == 1
