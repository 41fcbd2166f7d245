"""`make demo`: a real strongSwan gateway in a network namespace, Cygnet connecting from another.

What it shows, step by step:
1. builds the namespaces (client ─ gateway ─ LAN) and a throw-away PKI, starts charon;
2. writes a Cygnet profile (EAP-MSCHAPv2 against the gateway's certificate, like a road
   warrior with a user name and password) and runs `cygnet up --daemon` in the client namespace;
3. prints the virtual IP and DNS the gateway handed out (`cygnet status`) and the resolv.conf
   Cygnet wrote;
4. pings a host behind the gateway through the tunnel, over IPv4 and IPv6;
5. `cygnet down`, and removes every namespace and process it started.

Nothing runs in this machine's own network namespace.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed import (GATEWAY_NAME, EAP_IDENTITIES, Pki, Testbed, missing_plugins,  # noqa: E402
                     missing_requirements)
from testbed import topology  # noqa: E402

CYGNET = str(Path(sys.executable).with_name("cygnet"))


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(result: subprocess.CompletedProcess) -> None:
    for line in (result.stdout or "").splitlines():
        print(f"   {line}")


def main() -> int:
    problems = missing_requirements() or missing_plugins()
    if problems:
        print("demo cannot run here: " + "; ".join(problems), file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="cygnet-demo-"))
    try:
        return run_demo(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_demo(work: Path) -> int:
    step("making a throw-away PKI and starting a strongSwan gateway in a network namespace")
    pki = Pki.load_or_create(work / "pki")
    with Testbed(pki, iperf=False) as bed:
        print(f"   gateway {GATEWAY_NAME} at {bed.gateway_address}, LAN host {topology.LAN_HOST_ADDR} behind it")

        identity, password = bed.gateway.eap_users["eap-mschapv2"]
        password_file = work / "password"
        password_file.write_text(password)
        password_file.chmod(0o600)
        profile = work / "demo.toml"
        profile.write_text(
            f'gateway = "{bed.gateway_address}"\n'
            f'remote_id = "{GATEWAY_NAME}"\n'
            f'auth = "eap-mschapv2"\n'
            f'eap_identity = "{identity}"\n'
            f'password_file = "{password_file}"\n'
            f'ca = "{pki.root_ca}"\n')
        resolv = work / "resolv.conf"
        resolv.write_text("# the client's own resolv.conf\nnameserver 198.51.100.53\n")
        env = dict(os.environ, CYGNET_RUN_DIR=str(work / "run"))

        def cygnet(*args: str, check: bool = True) -> subprocess.CompletedProcess:
            return bed.client_run([CYGNET, *args], resolv_conf=resolv, env=env, check=check, timeout=60)

        step(f"cygnet up (EAP-MSCHAPv2 as {identity}) from the client namespace")
        up = cygnet("up", "--daemon", str(profile), check=False)
        show(up)
        if up.returncode != 0:
            print((up.stderr or "").strip(), file=sys.stderr)
            print("demo: the tunnel did not come up", file=sys.stderr)
            return 1

        try:
            step("what the gateway gave us (cygnet status)")
            show(cygnet("status"))
            step("the client's resolv.conf while the tunnel is up")
            for line in resolv.read_text().splitlines():
                print(f"   {line}")

            ok = True
            for target in (topology.LAN_HOST_ADDR, topology.LAN_HOST_ADDR6):
                step(f"ping {target} (a host behind the gateway) through the tunnel")
                ping = bed.run("client", ["ping", "-c", "3", "-i", "0.2", "-W", "2", str(target)], check=False)
                show(ping)
                if ping.returncode != 0:
                    print(f"   ping failed (exit {ping.returncode}) {ping.stderr.strip()}")
                ok = ok and ping.returncode == 0
            step("the tunnel's counters after the pings (cygnet status)")
            show(cygnet("status"))
        finally:
            step("cygnet down")
            show(cygnet("down", "demo", check=False))

        step("the client's resolv.conf after the tunnel")
        for line in resolv.read_text().splitlines():
            print(f"   {line}")
        step("tearing down the namespaces and the gateway")
    print("\ndemo " + ("succeeded: Cygnet reached the LAN behind strongSwan through its tunnel" if ok
                       else "FAILED: pings through the tunnel did not all succeed"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
