"""Fixtures for tests with a real NetworkManager (see sandbox.py).

  nm_testbed   (testbed, nm): a started strongSwan testbed and a NetworkManager sandbox in its
               client namespace, with Cygnet's plugin installed by `cygnet nm install` and a
               managed wired connection on eth0 (a VPN needs an active base connection).
On failure NM's and charon-nm's logs join the testbed's captures in tests/artifacts/<test>/.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS_DIR, _test_failed
from tests.nm.sandbox import charon_nm_conf, charon_nm_problems

CYGNET = str(Path(sys.executable).parent / "cygnet")

@pytest.fixture
def nm_testbed(testbed_factory, tmp_path, request):
    from tests.nm.sandbox import NetworkManagerSandbox, missing_requirements

    reasons = missing_requirements()
    if reasons:
        pytest.skip("NetworkManager sandbox unavailable: " + "; ".join(reasons))
    problems = charon_nm_problems()      # NM is here, so a missing piece is a broken install
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
    testbed = testbed_factory(iperf=False)
    workdir = tmp_path / "nm"
    workdir.mkdir()
    conf = workdir / "strongswan.conf"
    conf.write_text(charon_nm_conf(workdir / "charon-nm.log"))

    def install(root: Path) -> None:
        subprocess.run([CYGNET, "nm", "install", "--prefix", str(root)], check=True,
                       capture_output=True, text=True, timeout=60)

    nm = NetworkManagerSandbox(testbed.client_ns, workdir, prepare=install,
                               nm_env={"STRONGSWAN_CONF": str(conf)})
    try:
        nm.start()
        nm.nmcli("connection", "add", "type", "ethernet", "con-name", "wired", "ifname", "eth0",
                 "ipv4.method", "manual", "ipv4.addresses", "198.51.100.2/24",
                 # A default router that is not the VPN gateway (and does not exist): the LAN
                 # behind the gateway is then reachable only through the tunnel.
                 "ipv4.gateway", "198.51.100.254", "ipv6.method", "manual",
                 "ipv6.addresses", "fd00:5::2/64")
        nm.nmcli("connection", "up", "wired")
        yield testbed, nm
    finally:
        if _test_failed(request.node):
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
            nm.save_artifacts(ARTIFACTS_DIR / name / "nm")
            charon_log = workdir / "charon-nm.log"
            if charon_log.exists():
                (ARTIFACTS_DIR / name / "nm" / "charon-nm.log").write_bytes(charon_log.read_bytes())
        nm.close()
