"""The netlink agent (client/netlink_agent.py) and NetworkConfig through it, in a namespace of
their own: addresses, split routes and the pinned gateway route really reach the kernel, the
kernel's refusals come back as NetlinkError with their errno, the agent holds none of the
engine's file descriptors, leaves with release() and comes back on the next change, also when
that change is made from inside the engine's running asyncio loop; dataplane = auto's kernel
ESP probe runs in the agent and answers as the probe itself does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.netns import Namespace, unique_prefix

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]

SCRIPT = r"""
import ipaddress, json, os, sys
from pathlib import Path
from client.netconfig import NetworkConfig
from client.netlink_agent import NetlinkError

out = {}
journal = Path(sys.argv[1])
held = open(journal.parent / "engine-file", "w")      # a descriptor of the engine's own
nc = NetworkConfig(journal)
nc.add_address("d0", ipaddress.ip_interface("10.9.0.2/32"))
agent = nc._agent
out["agent_holds_engine_file"] = any(
    os.readlink(f"/proc/{agent._pid}/fd/{fd}").endswith("engine-file")
    for fd in os.listdir(f"/proc/{agent._pid}/fd"))
out["kernel_esp"] = nc.probe_kernel_esp()                 # dataplane = auto's probe, in the agent
out["pyroute2_in_engine"] = any(name.startswith("pyroute2.") for name in sys.modules)
out["xfrm_in_engine"] = "client.xfrm" in sys.modules
out["halves"] = [(r.destination, r.metric) for r in
                 nc.route_through("d0", ipaddress.ip_network("0.0.0.0/0"), "10.9.0.2")]
pin = nc.pin_gateway(ipaddress.ip_address("203.0.113.5"))
out["pin"] = (pin.destination, pin.metric)
try:
    nc.ipr.route("add", dst="10.77.0.0", dst_len=16, oif=987654)
except NetlinkError as error:
    out["refused"] = error.code
first = agent._pid
nc.release()
out["first_agent_gone"] = not os.path.exists(f"/proc/{first}") or \
    open(f"/proc/{first}/stat").read().split()[2] == "Z"
out["journal_routes"] = len(json.loads(journal.read_text())["routes"])
print(json.dumps(out), flush=True)
input()                                                # the test looks at the kernel's tables
async def revert_like_the_engine():                   # forked inside a running asyncio loop
    nc.revert()                                        # a new agent: the last one was released
import asyncio
asyncio.run(revert_like_the_engine())
out2 = {"second_agent": agent._pid not in (None, first), "journal_left": journal.exists()}
from client.xfrm import probe_esp                     # the same probe, made here
out2["kernel_esp_here"] = probe_esp()
nc.close()
print(json.dumps(out2), flush=True)
"""


@pytest.fixture
def namespace():
    ns = Namespace(f"{unique_prefix()}-nla").create()
    try:
        ns.ip("link", "add", "d0", "type", "veth", "peer", "name", "d1")   # no dummy module here
        ns.ip("link", "set", "d1", "up")
        ns.ip("link", "set", "d0", "up")
        ns.ip("addr", "add", "198.51.100.1/24", "dev", "d0")
        ns.ip("route", "add", "default", "via", "198.51.100.254")
        yield ns
    finally:
        ns.delete()


def routes(ns: Namespace) -> set[tuple[str, int]]:
    table = json.loads(ns.ip("-j", "route", "show").stdout)
    return {(r["dst"], r.get("metric", 0)) for r in table}


def test_network_config_through_the_agent(namespace, tmp_path):
    process = subprocess.Popen(namespace.argv([sys.executable, "-c", SCRIPT, str(tmp_path / "t.routes.json")]),
                               cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        first = json.loads(process.stdout.readline())
        assert not first["agent_holds_engine_file"]
        assert not first["pyroute2_in_engine"]
        assert not first["xfrm_in_engine"]
        assert first["halves"] == [["0.0.0.0/1", 0], ["128.0.0.0/1", 0]]
        assert first["pin"] == ["203.0.113.5/32", 0]
        assert first["refused"] == 19                                 # ENODEV, from the kernel
        assert first["first_agent_gone"]
        assert first["journal_routes"] == 3
        addresses = json.loads(namespace.ip("-j", "addr", "show", "d0").stdout)[0]["addr_info"]
        assert "10.9.0.2" in {a["local"] for a in addresses}
        assert {("0.0.0.0/1", 0), ("128.0.0.0/1", 0), ("203.0.113.5", 0)} <= routes(namespace)

        process.stdin.write("\n")
        process.stdin.flush()
        second = json.loads(process.stdout.readline())
        assert second.pop("kernel_esp_here") == first["kernel_esp"]   # the agent's answer is the probe's
        assert second == {"second_agent": True, "journal_left": False}
        assert process.wait(timeout=10) == 0
        assert routes(namespace) == {("default", 0), ("198.51.100.0/24", 0)}
        addresses = json.loads(namespace.ip("-j", "addr", "show", "d0").stdout)[0]["addr_info"]
        assert "10.9.0.2" not in {a["local"] for a in addresses}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_dead_agent_fails_the_call_as_an_oserror_and_the_next_call_forks_anew(namespace):
    script = r"""
import json, os, signal
from client.netlink_agent import AgentGone, NetlinkAgent
agent = NetlinkAgent()
agent.start()
os.kill(agent._pid, signal.SIGKILL)       # e.g. the OOM killer
out = {}
try:
    agent.ipr.link("get", index=1)
except OSError as error:
    out["gone"] = isinstance(error, AgentGone)
out["again"] = agent.ipr.link("get", index=1)[0]["IFLA_IFNAME"]
agent.release()
print(json.dumps(out))
"""
    result = namespace.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert json.loads(result.stdout) == {"gone": True, "again": "lo"}


def test_the_kernel_esp_probe_asked_for_at_start_is_the_agents_first_answer(namespace):
    """`cygnet up` has the agent probe first thing (client/cli.py); the answer must reach the
    probe, never pass for the answer to a netlink call made before anyone read it."""
    script = r"""
import json, sys
from client.netlink_agent import NetlinkAgent
early = NetlinkAgent()
early.start(probe_kernel_esp=True)
unread = NetlinkAgent()
unread.start(probe_kernel_esp=True)
out = {"link": unread.ipr.link("get", index=1)[0]["IFLA_IFNAME"],   # the probe's answer is unread
       "early": early.probe_kernel_esp(), "asked_again": unread.probe_kernel_esp()}
early.release()
unread.release()
from client import xfrm
out["here"] = xfrm.probe_esp()
print(json.dumps(out))
"""
    result = namespace.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(REPO)))
    out = json.loads(result.stdout)
    assert out["link"] == "lo"
    assert out["early"] == out["asked_again"] == out["here"]
    assert out["here"] is None or "ESP" in out["here"] or "IPsec" in out["here"]
